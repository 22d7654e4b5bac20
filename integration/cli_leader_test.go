package integration

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/leaderd/leaderd/integration/consultest"
)

// watchedLeader is the leader id on a `leaderd leader -watch -json` line:
// "" for {"leader": null}; ok is false for any other line.
func watchedLeader(l logLine) (id string, ok bool) {
	if !l.stdout {
		return "", false
	}
	v, has := l.f["leader"]
	if !has {
		return "", false
	}
	if v == nil {
		return "", true
	}
	m, _ := v.(map[string]any)
	id, _ = m["id"].(string)
	return id, true
}

// TestLeaderCommand: `leaderd leader` tells "a leads" (0) from "nobody
// leads" (3), and -watch prints every change as a JSON line.
func TestLeaderCommand(t *testing.T) {
	agent := fastAgent(t)
	env := []string{"CONSUL_HTTP_ADDR=" + agent.Addr}

	code, out, _ := runOnce(t, 10*time.Second, env, "leader", "-service", "watched")
	if code != 3 || out != "no leader\n" {
		t.Errorf("no leader: exit %d, stdout %q; want 3, \"no leader\\n\"", code, out)
	}

	h := newHub()
	watcher := start(t, h, "watch", env, "leader", "-service", "watched", "-watch", "-json")
	isLeader := func(want string) func(logLine) bool {
		return func(l logLine) bool { id, ok := watchedLeader(l); return ok && id == want }
	}
	h.wait(t, 10*time.Second, 0, "the watcher's first line (no leader)", isLeader(""))

	a := start(t, h, "a", env, runArgs("watched", "a")...)
	h.wait(t, 20*time.Second, 0, "the watcher seeing a", isLeader("a"))

	code, out, _ = runOnce(t, 10*time.Second, env, "leader", "-service", "watched")
	if code != 0 || !regexp.MustCompile(`^leader=a address=- token=\d+ since=\S+ session=\S+\n$`).MatchString(out) {
		t.Errorf("a leads: exit %d, stdout %q; want 0 and leader=a ...", code, out)
	}
	code, out, _ = runOnce(t, 10*time.Second, env, "leader", "-key", "services/watched/leader", "-json")
	var one struct {
		Leader struct {
			ID      string `json:"id"`
			Token   uint64 `json:"token"`
			Session string `json:"session"`
		} `json:"leader"`
	}
	if err := json.Unmarshal([]byte(out), &one); err != nil || code != 0 || one.Leader.ID != "a" || one.Leader.Token == 0 || one.Leader.Session == "" {
		t.Errorf("a leads, -json: exit %d, stdout %q (%v); want 0 and a's record with token and session", code, out, err)
	}

	b := start(t, h, "b", env, runArgs("watched", "b")...)
	h.wait(t, 20*time.Second, 0, "b campaigning", from(b, "leader changed"))
	a.signal(t, syscall.SIGTERM)
	h.wait(t, 10*time.Second, 0, "the watcher seeing b", isLeader("b"))
	mark := h.mark()
	b.signal(t, syscall.SIGTERM)
	h.wait(t, 10*time.Second, mark, "the watcher seeing nobody", isLeader(""))
	watcher.signal(t, syscall.SIGINT)
	if code := watcher.exit(t, 5*time.Second); code != 0 {
		t.Errorf("watcher exit code after SIGINT = %d, want 0", code)
	}

	// Every change, in order; a release may show as "nobody" before b.
	var seen []string
	for _, l := range h.lines {
		if id, ok := watchedLeader(l); ok && l.p == watcher {
			seen = append(seen, id)
		}
	}
	compact := strings.ReplaceAll(strings.Join(seen, ","), ",,b", ",b")
	if diff := cmp.Diff(",a,b,", compact); diff != "" {
		t.Errorf("watched leaders %q (-want +got):\n%s", seen, diff)
	}
}

// TestBadInputBinary: the real binary exits 2 with one line naming the
// setting, for every kind of bad input, before talking to Consul.
func TestBadInputBinary(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"unparsable duration", nil, []string{"run", "-service", "x", "-ttl", "abc"}, `leaderd run: invalid value "abc" for flag -ttl: time: invalid duration "abc"`},
		{"negative ttl", []string{"LEADERD_TTL=-1s"}, []string{"run", "-service", "x"}, `leaderd run: invalid LEADERD_TTL: ttl -1s must be between 1s and 24h0m0s`},
		{"lock-delay over 60s", nil, []string{"run", "-service", "x", "-lock-delay", "2m"}, `leaderd run: invalid -lock-delay: lock delay 2m0s must be above 0s and at most 1m0s: it is the leader's lease (Consul caps it at 1m0s)`},
		// The safety rule: the lock-delay is the lease, so it can't be 0,
		// and lock-delay − margin (kill-timeout + 500ms) must hold two
		// renew intervals of at least 100ms each.
		{"lock-delay 0", nil, []string{"run", "-service", "x", "-lock-delay", "0s"}, `leaderd run: invalid -lock-delay 0s: must be above 0s: the lock-delay is the leader's lease, all that protects it when Consul ends its session without telling it (README: Guarantees)`},
		{"lock-delay 0 from env", []string{"LEADERD_LOCK_DELAY=0s"}, []string{"run", "-service", "x"}, `leaderd run: invalid LEADERD_LOCK_DELAY 0s: must be above 0s: the lock-delay is the leader's lease, all that protects it when Consul ends its session without telling it (README: Guarantees)`},
		{"lease shorter than two renews", nil, []string{"run", "-service", "x", "-lock-delay", "3s", "-kill-timeout", "500ms", "-renew-interval", "1500ms"},
			`leaderd run: invalid -lock-delay, -kill-timeout, -renew-interval: lock delay 3s - margin 1s = 2s leaves less than two renew intervals (2×1.5s): raise the lock delay, or lower the margin or the renew interval (margin = kill-timeout + 500ms)`},
		{"kill-timeout eats the lease", nil, []string{"run", "-service", "x", "-lock-delay", "2s", "-kill-timeout", "1500ms"},
			`leaderd run: invalid -lock-delay, -kill-timeout, -renew-interval: lock delay 2s - margin 2s = 0s leaves less than two renew intervals (2×3.333333333s): raise the lock delay, or lower the margin or the renew interval (margin = kill-timeout + 500ms)`},
		{"renew interval under 100ms", nil, []string{"run", "-service", "x", "-renew-interval", "50ms"},
			`leaderd run: invalid -renew-interval, -lock-delay: renew interval 50ms is below 100ms (by default it is a third of lock delay − margin): raise the lock delay or lower the margin`},
		{"default renew interval under 100ms", nil, []string{"run", "-service", "x", "-lock-delay", "1200ms", "-kill-timeout", "500ms"},
			`leaderd run: invalid -renew-interval, -lock-delay: renew interval 66.666666ms is below 100ms (by default it is a third of lock delay − margin): raise the lock delay or lower the margin`},
		{"key with leading slash", nil, []string{"run", "-key", "/services/x/leader"}, `leaderd run: invalid -key "/services/x/leader": a Consul key must not start with '/'`},
		{"listen taken", nil, []string{"run", "-service", "x", "-listen", taken.Addr().String()}, `leaderd run: invalid -listen "` + taken.Addr().String() + `": listen tcp ` + taken.Addr().String() + `: bind: address already in use`},
		{"unreadable token file", nil, []string{"run", "-service", "x", "-token-file", "/nonexistent/token"}, `leaderd run: invalid -token-file: open /nonexistent/token: no such file or directory`},
		{"unreadable token file from env", []string{"CONSUL_HTTP_TOKEN_FILE=/nonexistent/token"}, []string{"run", "-service", "x"}, `leaderd run: consul settings: token file (CONSUL_HTTP_TOKEN_FILE): open /nonexistent/token: no such file or directory`},
		{"unknown subcommand", nil, []string{"lead"}, `leaderd: unknown command "lead" (see leaderd -h)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runOnce(t, 10*time.Second, tc.env, tc.args...)
			if code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			if diff := cmp.Diff(tc.want+"\n", stderr); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}

// TestACLDenied: without the permissions it needs, leaderd run exits 1
// with Consul's message naming the missing permission, and never shows
// the token.
func TestACLDenied(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{ACL: true, HCL: []string{`session_ttl_min = "1s"`}})
	tokenFile := filepath.Join(t.TempDir(), "token")
	// A syntactically valid token Consul doesn't know.
	const unknown = "3f1c1b8e-0b7a-4c55-9a51-6f1f3d0c0a11"
	if err := os.WriteFile(tokenFile, []byte(unknown+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"anonymous", nil, "Permission denied"},
		{"unknown token", []string{"CONSUL_HTTP_TOKEN_FILE=" + tokenFile}, "ACL not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := append([]string{"CONSUL_HTTP_ADDR=" + agent.Addr}, tc.env...)
			code, _, stderr := runOnce(t, 15*time.Second, env, runArgs("acl", "x")...)
			if code != 1 {
				t.Errorf("exit code = %d, want 1", code)
			}
			last := lastLine(stderr)
			if !strings.HasPrefix(last, "leaderd run: ") || !strings.Contains(last, tc.want) {
				t.Errorf("last stderr line %q, want leaderd run: ... %s", last, tc.want)
			}
			if strings.Contains(stderr, unknown) || strings.Contains(stderr, agent.Token) {
				t.Error("stderr contains a token")
			}
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestDemo: `leaderd demo` runs to completion and leaves no Consul behind.
func TestDemo(t *testing.T) {
	env := []string{"CONSUL_BIN=" + consultest.Binary(t)}
	code, out, stderr := runOnce(t, 2*time.Minute, env, "demo")
	t.Logf("leaderd demo:\n%s", out)
	if code != 0 {
		t.Fatalf("exit code = %d, want 0; stderr:\n%s", code, stderr)
	}
	for _, want := range []string{"graceful handover:", "stopped acting as leader", "never two leaders", "measured: graceful handover", "stopping the consul agent"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	checkAgentGone(t, out)
}

// TestDemoInterrupted: Ctrl-C stops the demo and its Consul agent.
func TestDemoInterrupted(t *testing.T) {
	h := newHub()
	p := start(t, h, "demo", []string{"CONSUL_BIN=" + consultest.Binary(t)}, "demo")
	// The election, or the demo giving up (its error line on stderr): a
	// demo that fails fails this test at once.
	l := h.wait(t, time.Minute, 0, "the demo's election", func(l logLine) bool {
		return l.stdout && strings.Contains(l.raw, "elected, fencing token") || !l.stdout && strings.HasPrefix(l.raw, "leaderd demo: ")
	})
	if !l.stdout {
		t.Fatalf("the demo failed before its first election: %s", l.raw)
	}
	p.signal(t, syscall.SIGINT)
	if code := p.exit(t, 15*time.Second); code != 1 {
		t.Errorf("exit code after SIGINT = %d, want 1", code)
	}
	var out strings.Builder
	for _, l := range h.lines {
		if l.stdout {
			out.WriteString(l.raw + "\n")
		}
	}
	if !strings.Contains(out.String(), "interrupted; everything was stopped") {
		t.Errorf("output lacks the interruption notice:\n%s", out.String())
	}
	checkAgentGone(t, out.String())
}

// checkAgentGone finds the demo agent's address in its output and checks
// nothing answers there any more.
func checkAgentGone(t *testing.T, out string) {
	t.Helper()
	m := regexp.MustCompile(`consul dev agent at (http://127\.0\.0\.1:\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no agent address in the demo output")
	}
	c := http.Client{Timeout: 2 * time.Second}
	if resp, err := c.Get(m[1] + "/v1/status/leader"); err == nil {
		resp.Body.Close()
		t.Errorf("the demo's consul agent at %s still answers after the demo", m[1])
	}
}

// TestConsulRefusesTTL: a TTL below the agent's session_ttl_min (10s by
// default) passes leaderd's own check (1s..24h) and is refused by Consul;
// leaderd exits 1 with Consul's message instead of retrying forever.
func TestConsulRefusesTTL(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	env := []string{"CONSUL_HTTP_ADDR=" + agent.Addr}
	code, _, stderr := runOnce(t, 15*time.Second, env, "run", "-service", "short", "-ttl", "5s", "-kill-timeout", "500ms", "-listen", "")
	if code != 1 {
		t.Errorf("exit code = %d, want 1", code)
	}
	if last := lastLine(stderr); !strings.HasPrefix(last, "leaderd run: ") || !strings.Contains(last, "Invalid Session TTL") {
		t.Errorf("last stderr line %q, want leaderd run: ... Invalid Session TTL ...", last)
	}
}
