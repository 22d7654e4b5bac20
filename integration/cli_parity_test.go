package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leaderd/leaderd/integration/consultest"
)

// consulSessions lists the sessions Consul holds: id → name.
func consulSessions(t *testing.T, addr string) map[string]string {
	t.Helper()
	_, body := httpGet(t, addr, "/v1/session/list")
	var list []struct{ ID, Name string }
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatalf("session list: %v\n%s", err, body)
	}
	m := map[string]string{}
	for _, s := range list {
		m[s.ID] = s.Name
	}
	return m
}

// keyHolder is the session holding key, "" if none.
func keyHolder(t *testing.T, addr, key string) string {
	t.Helper()
	_, body := httpGet(t, addr, "/v1/kv/"+key)
	var kv []struct{ Session string }
	_ = json.Unmarshal([]byte(body), &kv)
	if len(kv) == 0 {
		return ""
	}
	return kv[0].Session
}

// TestRunTimeout: -timeout (and consul lock's -try) gives up with exit 4
// when another instance leads, takes nothing from it, and leaves no
// session behind; -name names the session in Consul.
func TestRunTimeout(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	const key = "services/cron/leader"
	seedKey(t, agent.Addr, key)
	h := newHub()
	env := []string{"CONSUL_HTTP_ADDR=" + agent.Addr}
	holder := start(t, h, "holder", env, "run", "-service", "cron", "-name", "nightly report on holder", "-log-format", "json", "--", "sh", "-c", childScript)
	elected := waitChild(t, h, 20*time.Second, 0)
	sess := keyHolder(t, agent.Addr, key)
	if name := consulSessions(t, agent.Addr)[sess]; name != "nightly report on holder" {
		t.Errorf("the holder's session is named %q, want the -name", name)
	}
	for _, flag := range []string{"-timeout", "-try"} {
		t.Run(flag, func(t *testing.T) {
			t0 := time.Now()
			code, _, stderr := runOnce(t, 20*time.Second, env, "run", "-service", "cron", flag, "2s", "-log-format", "json", "--", "sh", "-c", "echo must not run; exit 9")
			took := time.Since(t0)
			if code != 4 {
				t.Errorf("exit code %d, want 4; stderr:\n%s", code, stderr)
			}
			if took < 2*time.Second || took > 6*time.Second {
				t.Errorf("gave up after %v, want just over 2s", took)
			}
			t.Logf("%s 2s: exit %d after %v", flag, code, took.Round(time.Millisecond))
			if strings.Contains(stderr, "child started") {
				t.Errorf("the command ran:\n%s", stderr)
			}
			sessions := consulSessions(t, agent.Addr)
			if len(sessions) != 1 || sessions[sess] == "" {
				t.Errorf("sessions after giving up: %v, want only the holder's %s", sessions, sess)
			}
			if got := keyHolder(t, agent.Addr, key); got != sess {
				t.Errorf("key held by %q after giving up, want the holder's %s", got, sess)
			}
		})
	}
	if elected.p != holder {
		t.Fatalf("%s leads", elected.p.name)
	}
	holder.signal(t, syscall.SIGTERM)
	if code := holder.exit(t, 5*time.Second); code != 0 {
		t.Errorf("holder exited %d", code)
	}
}

// TestRunPassStdin: with -pass-stdin the command reads leaderd's stdin
// (through the keeper); without it, /dev/null.
func TestRunPassStdin(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	seedKey(t, agent.Addr, "services/stdin/leader")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"passed", []string{"-pass-stdin"}, "got hello"},
		{"not passed", nil, "got EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"run", "-service", "stdin"}, tc.args...)
			args = append(args, "--", "sh", "-c", `read -r l || l=EOF; echo "got $l"`)
			cmd := exec.Command(leaderdBin, args...)
			cmd.Env = append(baseEnv(), "CONSUL_HTTP_ADDR="+agent.Addr)
			cmd.Stdin = strings.NewReader("hello\n")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			done := make(chan struct{})
			var out []byte
			var err error
			go func() { out, err = cmd.Output(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("leaderd still running after 30s; stderr:\n%s", stderr.String())
			}
			if err != nil {
				t.Fatalf("leaderd: %v; stderr:\n%s", err, stderr.String())
			}
			if got := strings.TrimSpace(string(out)); got != tc.want {
				t.Errorf("the command said %q, want %q", got, tc.want)
			}
		})
	}
}

// cronHosts runs `leaderd run -timeout 30s -service <service> -- sh -c
// job` on n "hosts" at once, as cron would, and returns their exit codes.
func cronHosts(t *testing.T, n int, env []string, service, job string) []int {
	t.Helper()
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			codes[i], _, _ = runOnce(t, 60*time.Second, env, "run", "-timeout", "30s", "-service", service, "--", "sh", "-c", job)
		})
	}
	wg.Wait()
	return codes
}

func countRuns(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return len(strings.Fields(string(b)))
}

// TestCronRecipe: three hosts run the same nightly job through
// `leaderd run -timeout 30s`. A short job alone runs once per host: each
// waiting host wins as soon as the one before finishes (a release is
// instant). With the README's recipe, a done-marker in Consul written by
// the job and checked first, it runs exactly once, unless the winner dies
// mid-job: then a waiting host takes over and runs it again.
func TestCronRecipe(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	consul := consultest.Binary(t)
	dir := t.TempDir()
	env := []string{"CONSUL_HTTP_ADDR=" + agent.Addr, "PATH=" + filepath.Dir(consul) + ":" + os.Getenv("PATH")}
	if filepath.Base(consul) != "consul" {
		// The recipe calls `consul`; the cached binary has a versioned name.
		link := filepath.Join(dir, "bin", "consul")
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(consul, link); err != nil {
			t.Fatal(err)
		}
		env[1] = "PATH=" + filepath.Dir(link) + ":" + os.Getenv("PATH")
	}

	t.Run("naive", func(t *testing.T) {
		seedKey(t, agent.Addr, "services/naive/leader")
		runs := filepath.Join(dir, "naive-runs")
		codes := cronHosts(t, 3, env, "naive", `echo "$LEADERD_ID" >> `+runs+`; sleep 1`)
		n := countRuns(t, runs)
		t.Logf("naive: the job ran %d times on 3 hosts; exit codes %v", n, codes)
		if n < 2 {
			t.Errorf("the job ran %d times; this test shows the hazard the recipe avoids, expected it to run again", n)
		}
	})

	// The winner's host dies mid-job: no marker, so a host still waiting
	// takes over once Consul ends the dead session (check-ttl + lock-delay
	// with the defaults) and runs the job again: at least once, not once.
	t.Run("winner dies", func(t *testing.T) {
		seedKey(t, agent.Addr, "services/crashy/leader")
		runs := filepath.Join(dir, "crashy-runs")
		job := `marker="crashy/done/$(date -u +%F)"
if consul kv get "$marker" >/dev/null 2>&1; then exit 0; fi
echo "$LEADERD_ID" >> ` + runs + `
if [ "$(wc -l < ` + runs + `)" -eq 1 ]; then echo "job hangs"; exec sleep 600; fi
consul kv put "$marker" "$LEADERD_ID token $LEADERD_TOKEN"`
		h := newHub()
		hosts := []*proc{
			start(t, h, "h1", env, "run", "-timeout", "30s", "-service", "crashy", "-log-format", "json", "--", "sh", "-c", job),
			start(t, h, "h2", env, "run", "-timeout", "30s", "-service", "crashy", "-log-format", "json", "--", "sh", "-c", job),
		}
		hung := h.wait(t, 20*time.Second, 0, "the job hanging", func(l logLine) bool { return l.stdout && l.raw == "job hangs" })
		winner, other := hung.p, hosts[0]
		if other == winner {
			other = hosts[1]
		}
		t0 := time.Now()
		winner.signal(t, syscall.SIGKILL)
		if code := other.exit(t, 30*time.Second); code != 0 {
			t.Errorf("%s exited %d, want 0 (it ran the job)", other.name, code)
		}
		n := countRuns(t, runs)
		t.Logf("winner dies: %s finished the job %v after %s was SIGKILLed; the job ran %d times", other.name, time.Since(t0).Round(100*time.Millisecond), winner.name, n)
		if n != 2 {
			t.Errorf("the job ran %d times, want 2 (the dead winner's, then the takeover's)", n)
		}
	})

	t.Run("done marker", func(t *testing.T) {
		seedKey(t, agent.Addr, "services/nightly/leader")
		runs := filepath.Join(dir, "recipe-runs")
		job := `marker="nightly/done/$(date -u +%F)"
if consul kv get "$marker" >/dev/null 2>&1; then echo "already done"; exit 0; fi
echo "$LEADERD_ID" >> ` + runs + `; sleep 1
consul kv put "$marker" "$LEADERD_ID token $LEADERD_TOKEN"`
		codes := cronHosts(t, 3, env, "nightly", job)
		n := countRuns(t, runs)
		t.Logf("recipe: the job ran %d time(s) on 3 hosts; exit codes %v", n, codes)
		if n != 1 {
			t.Errorf("the job ran %d times, want exactly once", n)
		}
		for _, c := range codes {
			if c != 0 && c != 4 {
				t.Errorf("exit codes %v: want 0 (ran, or found it done) or 4 (gave up)", codes)
				break
			}
		}
	})
}
