package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leaderd/leaderd/integration/consultest"
)

// hookSaid matches a hook's stdout line "hook <id> <role> ..." of p.
func hookSaid(p *proc, role string) func(logLine) bool {
	return func(l logLine) bool {
		f := strings.Fields(l.raw)
		return l.p == p && l.stdout && len(f) >= 3 && f[0] == "hook" && f[2] == role
	}
}

// hookLines are p's hook lines so far, without the "hook <id>" prefix.
func hookLines(h *hub, p *proc) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, l := range h.lines {
		if f := strings.Fields(l.raw); l.p == p && l.stdout && len(f) >= 3 && f[0] == "hook" {
			out = append(out, strings.Join(f[2:], " "))
		}
	}
	return out
}

// TestRunHooks: each role change runs -hook once, in order, with the role,
// reason, token and leader in its environment and without leaderd's
// Consul token: a leader whose child exits (-restart) sees leader →
// stepped_down released → follower of the new leader.
func TestRunHooks(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	seedKey(t, agent.Addr, "services/hooked/leader")
	h := newHub()
	env := []string{"CONSUL_HTTP_ADDR=" + agent.Addr, "CONSUL_HTTP_TOKEN=s3cret-token"}
	hook := `echo "hook $LEADERD_ID $LEADERD_ROLE reason=$LEADERD_REASON token=$LEADERD_TOKEN leader=$LEADERD_LEADER_ID key=$LEADERD_KEY secret=[$CONSUL_HTTP_TOKEN]"`
	// The child exits on SIGHUP (leaderd forwards it): with -restart that
	// ends the term and the others take over.
	child := `trap 'exit 0' HUP; echo "start $LEADERD_TOKEN"; while :; do sleep 1 & wait $!; done`
	run := func(id string) *proc {
		return start(t, h, id, env, "run", "-service", "hooked", "-id", id, "-restart", "-hook", hook, "-log-format", "json", "--", "sh", "-c", child)
	}
	a := run("a")
	h.wait(t, 20*time.Second, 0, "a's leader hook", hookSaid(a, "leader"))
	b, c := run("b"), run("c")
	h.wait(t, 20*time.Second, 0, "b's follower hook", hookSaid(b, "follower"))
	h.wait(t, 20*time.Second, 0, "c's follower hook", hookSaid(c, "follower"))

	mark := h.mark()
	a.signal(t, syscall.SIGHUP)
	next := h.wait(t, 20*time.Second, mark, "a new leader's hook", func(l logLine) bool {
		return hookSaid(b, "leader")(l) || hookSaid(c, "leader")(l)
	})
	other := b
	if next.p == b {
		other = c
	}
	h.wait(t, 20*time.Second, mark, "a's follower hook", hookSaid(a, "follower"))
	h.wait(t, 20*time.Second, mark, other.name+"'s second follower hook", hookSaid(other, "follower"))

	tokenA := tokenOf(t, hookLines(h, a)[0])
	tokenN := tokenOf(t, hookLines(h, next.p)[1])
	key := " key=services/hooked/leader secret=[]"
	want := map[*proc][]string{
		a: {
			"leader reason= token=" + tokenA + " leader=a" + key,
			"stepped_down reason=released token=" + tokenA + " leader=a" + key,
			"follower reason= token=" + tokenN + " leader=" + next.p.name + key,
		},
		next.p: {
			"follower reason= token=" + tokenA + " leader=a" + key,
			"leader reason= token=" + tokenN + " leader=" + next.p.name + key,
		},
		other: {
			"follower reason= token=" + tokenA + " leader=a" + key,
			"follower reason= token=" + tokenN + " leader=" + next.p.name + key,
		},
	}
	for p, w := range want {
		got := hookLines(h, p)
		t.Logf("%s's hooks: %q", p.name, got)
		if !slices.Equal(got, w) {
			t.Errorf("%s's hooks:\n got %q\nwant %q", p.name, got, w)
		}
	}

	// A graceful stop runs the stepped_down hook before leaderd exits.
	mark = h.mark()
	next.p.signal(t, syscall.SIGTERM)
	if code := next.p.exit(t, 10*time.Second); code != 0 {
		t.Errorf("%s exited %d", next.p.name, code)
	}
	if got := hookLines(h, next.p); len(got) != 3 || !strings.HasPrefix(got[2], "stepped_down reason=shutdown token="+tokenN) {
		t.Errorf("%s's hooks after SIGTERM: %q, want a stepped_down shutdown last", next.p.name, got)
	}
	for _, p := range []*proc{a, other} {
		p.signal(t, syscall.SIGTERM)
		p.exit(t, 10*time.Second)
	}
}

func tokenOf(t *testing.T, hookLine string) string {
	t.Helper()
	for _, f := range strings.Fields(hookLine) {
		if v, ok := strings.CutPrefix(f, "token="); ok {
			if _, err := strconv.ParseUint(v, 10, 64); err != nil || v == "0" {
				t.Fatalf("bad token in hook line %q", hookLine)
			}
			return v
		}
	}
	t.Fatalf("no token in hook line %q", hookLine)
	return ""
}

// TestRunHookTimeout: a hook that hangs delays nothing: its leader hands
// over on SIGTERM at once, and the hook's process group is killed at
// -hook-timeout; a failing hook is counted in leaderd_hooks_total and
// changes nothing else.
func TestRunHookTimeout(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	seedKey(t, agent.Addr, "services/stuck/leader")
	h := newHub()
	pidFile := filepath.Join(t.TempDir(), "hung.pid")
	env := []string{"CONSUL_HTTP_ADDR=" + agent.Addr}
	hook := `case "$LEADERD_ID/$LEADERD_ROLE" in
a/leader) echo $$ > ` + pidFile + `; echo "hook a hang"; exec sleep 600 ;;
*/follower) echo "hook $LEADERD_ID follower failing"; exit 3 ;;
esac
echo "hook $LEADERD_ID $LEADERD_ROLE"`
	const hookTimeout = 5 * time.Second
	run := func(id string) *proc {
		return start(t, h, id, env, "run", "-service", "stuck", "-id", id, "-listen", "127.0.0.1:0", "-hook", hook,
			"-hook-timeout", hookTimeout.String(), "-log-format", "json", "--", "sh", "-c", childScript)
	}
	a := run("a")
	waitChild(t, h, 20*time.Second, 0)
	h.wait(t, 10*time.Second, 0, "a's hook hanging", hookSaid(a, "hang"))
	t0 := time.Now()
	b := run("b")
	bAddr := statusAddr(t, h, b)
	h.wait(t, 20*time.Second, 0, "b's failing follower hook", hookSaid(b, "follower"))

	// The hung hook delays neither a's step-down nor b's takeover.
	mark, tStop := h.mark(), time.Now()
	a.signal(t, syscall.SIGTERM)
	taken := waitChild(t, h, 3*time.Second, mark)
	if taken.p != b {
		t.Fatalf("%s took over", taken.p.name)
	}
	handover := time.Since(tStop)
	t.Logf("handover %v after SIGTERM while a's leader hook hung", handover.Round(time.Millisecond))
	if handover > 2*time.Second {
		t.Errorf("handover took %v behind a hung hook", handover)
	}

	// a's hook is killed at its timeout; a then exits.
	h.wait(t, hookTimeout+5*time.Second, 0, "a's hook timing out", from(a, "hook timed out; killed its process group"))
	b2, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b2)))
	waitGone(t, pid, 2*time.Second)
	t.Logf("the hung hook was killed %v after it started (timeout %v)", time.Since(t0).Round(100*time.Millisecond), hookTimeout)
	if code := a.exit(t, 10*time.Second); code != 0 {
		t.Errorf("a exited %d, want 0", code)
	}

	// b: its follower hook failed (counted), its leader hook ran.
	h.wait(t, 10*time.Second, mark, "b's leader hook", hookSaid(b, "leader"))
	_, metrics := httpGet(t, bAddr, "/metrics")
	for _, want := range []string{`leaderd_hooks_total{result="failed"} 1`, `leaderd_hooks_total{result="ok"} 1`, `leaderd_hooks_total{result="timeout"} 0`} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("b's /metrics lacks %q", want)
		}
	}
	b.signal(t, syscall.SIGTERM)
	b.exit(t, 10*time.Second)
}
