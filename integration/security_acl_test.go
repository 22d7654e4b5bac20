package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leaderd/leaderd/integration/consultest"
)

// TestACLLeastPrivilege proves the policy in testdata/leaderd-consul-policy.hcl
// on a real ACL agent (default deny): `leaderd run` with every feature that
// needs a permission (the default -check-ttl, -publish consul-tags, a
// child) works with exactly that policy, and without any one of its rules
// stops with exit 1 and one line naming the permission Consul reported
// missing. The node rule is for the session's TTL check, on by default:
// with -check-ttl 0 leaderd works without it. The token, from the
// environment or from a file, never shows in leaderd's output, its HTTP
// endpoints or its command line.
func TestACLLeastPrivilege(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{ACL: true, HCL: []string{`session_ttl_min = "1s"`}})
	const service = "acl-least"
	rules := leastPrivilegeRules(t, service, agent.NodeName)
	kinds := make([]string, len(rules))
	for i, r := range rules {
		kinds[i] = r.kind
	}
	if want := []string{"key_prefix", "session", "node", "service"}; !slices.Equal(kinds, want) {
		t.Fatalf("%s has rules %v, want %v (update this test with the file)", policyFile, kinds, want)
	}
	full := aclToken(t, agent, "leaderd-least-privilege", joinRules(rules))
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "consul-token")
	if err := os.WriteFile(tokenFile, []byte(full+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Short leases, but leaderd's default -check-ttl (3s): the policy is
	// for the defaults.
	args := func(id string, extra ...string) []string {
		a := []string{"run", "-service", service, "-id", id, "-ttl", testTTL.String(), "-lock-delay", testLockDelay.String(),
			"-kill-timeout", killTimeout, "-listen", "127.0.0.1:0", "-log-format", "json", "-publish", "consul-tags", "-tags", "blue"}
		a = append(a, extra...)
		return append(a, "--", "sh", "-c", childScript)
	}
	base := []string{"CONSUL_HTTP_ADDR=" + agent.Addr, "CHILD_LOG=" + filepath.Join(dir, "child.log")}
	// A free key that exists: a first election on a missing key waits out
	// a lease window, which is not the subject here.
	consulAPI(t, agent, http.MethodPut, "/v1/kv/services/"+service+"/leader", map[string]bool{"released": true}, nil)

	t.Run("token in CONSUL_HTTP_TOKEN", func(t *testing.T) {
		runWithLeastPrivilege(t, agent, service, full, "leaderd:env", append(base, "CONSUL_HTTP_TOKEN="+full), args("env"))
	})
	t.Run("token in a file (-token-file)", func(t *testing.T) {
		runWithLeastPrivilege(t, agent, service, full, "leaderd:file", base, args("file", "-token-file", tokenFile))
	})
	t.Run("-check-ttl 0 needs no node rule", func(t *testing.T) {
		noNode := slices.DeleteFunc(slices.Clone(rules), func(r policyRule) bool { return r.kind == "node" })
		tok := aclToken(t, agent, "leaderd-no-check", joinRules(noNode))
		runWithLeastPrivilege(t, agent, service, tok, "", append(base, "CONSUL_HTTP_TOKEN="+tok), args("nocheck", "-check-ttl", "0"))
	})
	t.Run("leaderd leader needs key read only", func(t *testing.T) {
		tok := aclToken(t, agent, "leaderd-leader", `key "services/`+service+`/leader" { policy = "read" }`)
		code, out, stderr := runOnce(t, 10*time.Second, append(base, "CONSUL_HTTP_TOKEN="+tok), "leader", "-service", service)
		if code != 3 || out != "no leader\n" {
			t.Errorf("leaderd leader: exit %d, stdout %q, stderr %q; want 3 and \"no leader\" (the key was released)", code, out, stderr)
		}
	})

	t.Run("leaderd transfer and leader -candidates need no more", func(t *testing.T) {
		h := newHub()
		env := append(base, "CONSUL_HTTP_TOKEN="+full)
		p := start(t, h, "acl-transfer", env, args("xfer")...)
		waitChild(t, h, 20*time.Second, 0)
		// No other candidate: nothing can move, but the request is written
		// and withdrawn with the policy's rights (exit 4, not 1).
		code, _, stderr := runOnce(t, 15*time.Second, env, "transfer", "-service", service, "-timeout", "1s")
		if code != 4 || strings.Contains(stderr, "lacks permission") {
			t.Errorf("leaderd transfer: exit %d, stderr %q; want 4 (no other candidate), no permission missing", code, stderr)
		}
		ro := aclToken(t, agent, "leaderd-candidates", `key_prefix "services/`+service+`/leader" { policy = "read" }`)
		code, out, stderr := runOnce(t, 10*time.Second, append(base, "CONSUL_HTTP_TOKEN="+ro), "leader", "-service", service, "-candidates")
		if code != 0 || !strings.Contains(out, "leader=xfer ") {
			t.Errorf("leaderd leader -candidates: exit %d, stdout %q, stderr %q; want 0 and xfer leading", code, out, stderr)
		}
		p.signal(t, syscall.SIGTERM)
		if code := p.exit(t, 5*time.Second); code != 0 {
			t.Errorf("exit code after SIGTERM = %d, want 0", code)
		}
	})

	t.Run("a key rule instead of key_prefix: no registry entry", func(t *testing.T) {
		// A policy written for a leaderd before the registry: it still
		// elects, with a warning, and nobody can hand over to it.
		old := slices.Clone(rules)
		old[0].text = strings.Replace(old[0].text, "key_prefix ", "key ", 1)
		tok := aclToken(t, agent, "leaderd-old-key-rule", joinRules(old))
		h := newHub()
		p := start(t, h, "acl-old", append(base, "CONSUL_HTTP_TOKEN="+tok), args("old")...)
		waitChild(t, h, 20*time.Second, 0)
		// It warns once that it runs without the registry, naming the
		// permission (Consul rolls a denied transaction back with 409) ...
		warn := h.wait(t, 10*time.Second, 0, "a registry warning", func(l logLine) bool {
			return !l.stdout && l.p == p && l.str("level") == "WARN" && strings.Contains(l.msg(), "no permission on the candidate registry")
		})
		if !strings.Contains(warn.raw, "key:write") {
			t.Errorf("registry warning %s: want the permission Consul named (key:write)", warn.raw)
		}
		t.Logf("the warning: %s", warn.raw)
		// ... and has no entry: nobody can hand over to it.
		code, out, stderr := runOnce(t, 10*time.Second, append(base, "CONSUL_HTTP_TOKEN="+agent.Token), "leader", "-service", service, "-candidates")
		if code != 0 || !strings.Contains(out, "leader=old ") || !strings.Contains(out, "(not in the registry)") {
			t.Errorf("leaderd leader -candidates: exit %d, stdout %q, stderr %q; want old leading, not in the registry", code, out, stderr)
		}
		p.signal(t, syscall.SIGTERM)
		if code := p.exit(t, 5*time.Second); code != 0 {
			t.Errorf("exit code after SIGTERM = %d, want 0", code)
		}
	})

	// Without any one rule, with the defaults: exit 1, one line naming
	// what Consul said is missing. The key is watched before anything is
	// written to it, so its missing rule shows as key:read; the node rule
	// is missed when leaderd registers its session's TTL check.
	want := map[string]string{"key_prefix": "key:read", "session": "session:write", "node": "node:write", "service": "service:write"}
	for i, r := range rules {
		t.Run("without the "+r.kind+" rule", func(t *testing.T) {
			less := slices.Delete(slices.Clone(rules), i, i+1)
			tok := aclToken(t, agent, "leaderd-without-"+r.kind, joinRules(less))
			code, stdout, stderr := runOnce(t, 15*time.Second, append(base, "CONSUL_HTTP_TOKEN="+tok), args("less-"+r.kind)...)
			if code != 1 {
				t.Errorf("exit code = %d, want 1", code)
			}
			last := lastLine(stderr)
			t.Logf("exit %d: %s", code, last)
			perm := "lacks permission '" + want[r.kind] + "'"
			if !strings.HasPrefix(last, "leaderd run: ") || !strings.Contains(last, perm) {
				t.Errorf("last stderr line %q\nwant \"leaderd run: ...%s...\"", last, perm)
			}
			if strings.Contains(stdout, "start ") {
				t.Errorf("the child ran without the permissions: %q", stdout)
			}
			if strings.Contains(stdout+stderr, tok) || strings.Contains(stdout+stderr, agent.Token) {
				t.Error("output shows a token")
			}
		})
	}
}

// runWithLeastPrivilege runs one candidate with every feature and checks
// that each works, that the token shows nowhere, and that a SIGTERM
// cleans up what the permissions allowed it to create. checkID is the
// session's TTL check, "" when -check-ttl is 0.
func runWithLeastPrivilege(t *testing.T, agent *consultest.Agent, service, token, checkID string, env, args []string) {
	t.Helper()
	h := newHub()
	p := start(t, h, "acl", env, args...)
	addr := statusAddr(t, h, p)
	child := waitChild(t, h, 20*time.Second, 0)
	id := args[slices.Index(args, "-id")+1]

	// -publish consul-tags: the instance is in the catalog, tagged leader.
	h.wait(t, 10*time.Second, 0, "registration as leader", func(l logLine) bool {
		return from(p, "registered service")(l) && l.str("tag") == "leader"
	})
	var entries []struct {
		ServiceID   string
		ServiceTags []string
	}
	consulAPI(t, agent, http.MethodGet, "/v1/catalog/service/"+service+"?tag=leader", nil, &entries)
	if len(entries) != 1 || !slices.Contains(entries[0].ServiceTags, "blue") {
		t.Errorf("catalog ?tag=leader = %+v, want this instance tagged leader and blue", entries)
	}
	// The session is bound to the node's health (serfHealth) and, unless
	// -check-ttl 0, to leaderd's TTL check, passing.
	var checks map[string]struct{ Status string }
	consulAPI(t, agent, http.MethodGet, "/v1/agent/checks", nil, &checks)
	wantChecks := []string{"serfHealth"}
	if checkID != "" {
		if want := "leaderd:" + id; checkID != want {
			t.Fatalf("check id %q, want %q (the test is wrong)", checkID, want)
		}
		if checks[checkID].Status != "passing" {
			t.Errorf("agent check %q = %+v, want passing (all checks: %v)", checkID, checks[checkID], checks)
		}
		wantChecks = append(wantChecks, checkID)
	} else if _, ok := checks["leaderd:"+id]; ok {
		t.Errorf("check leaderd:%s registered with -check-ttl 0 (all checks: %v)", id, checks)
	}
	var sessions []struct{ NodeChecks []string }
	consulAPI(t, agent, http.MethodGet, "/v1/session/node/"+agent.NodeName, nil, &sessions)
	if len(sessions) != 1 || !slices.Equal(sessions[0].NodeChecks, wantChecks) {
		t.Errorf("sessions on the node = %+v, want one bound to %q", sessions, wantChecks)
	}

	// The token shows nowhere a user or a scraper can look.
	for _, path := range []string{"/v1/leader", "/v1/health", "/v1/status", "/metrics"} {
		code, body := httpGet(t, addr, path)
		if path == "/v1/leader" && code != http.StatusOK {
			t.Errorf("GET %s = %d, want 200 on the leader", path, code)
		}
		if strings.Contains(body, token) {
			t.Errorf("GET %s shows the token", path)
		}
	}
	if cl := cmdline(t, p.cmd.Process.Pid); strings.Contains(cl, token) {
		t.Errorf("the command line shows the token: %s", cl)
	}
	if cl := cmdline(t, int(child.num("pid"))); strings.Contains(cl, token) {
		t.Errorf("the child's command line shows the token: %s", cl)
	}

	p.signal(t, syscall.SIGTERM)
	if code := p.exit(t, 5*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	// Everything the permissions allowed was cleaned up with them.
	consulAPI(t, agent, http.MethodGet, "/v1/catalog/service/"+service, nil, &entries)
	if len(entries) != 0 {
		t.Errorf("catalog after exit = %+v, want the instance deregistered", entries)
	}
	checks = nil
	consulAPI(t, agent, http.MethodGet, "/v1/agent/checks", nil, &checks)
	if _, ok := checks["leaderd:"+id]; ok {
		t.Errorf("check leaderd:%s still registered after exit", id)
	}
	for _, l := range h.lines {
		if strings.Contains(l.raw, token) {
			t.Errorf("output shows the token: %s", l.raw)
		}
		if strings.Contains(l.raw, "denied") || strings.Contains(l.raw, "lacks permission") {
			t.Errorf("a permission was missing: %s", l.raw)
		}
	}
}
