package integration

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/leaderd/leaderd/integration/consultest"
)

// Short leases so failovers take seconds; TTL-only sessions (-check-ttl
// 0), so a crash is detected by the session TTL. -kill-timeout 500ms makes
// leaderd's margin 1s: a leader's lease is its last proof + lock-delay −
// margin = 1s, renewed every min(TTL/3, lease/3) ≈ 333ms.
const (
	testTTL       = 3 * time.Second
	testLockDelay = 2 * time.Second
	killTimeout   = "500ms"
	testRenew     = (testLockDelay - time.Second) / 3
	// Consul invalidates a TTL session TTL..2×TTL after its last renew
	// (at most a renew interval before a crash), then keeps the key from
	// everyone for the lock-delay; a follower acquires one round trip
	// later. failoverBound allows 2s more for a loaded two-core machine.
	failoverEarliest = testTTL - testRenew + testLockDelay
	failoverBound    = 2*testTTL + testLockDelay + 2*time.Second
)

// waitChild waits for a leaderd to start its child, then for that child
// to say it runs (so its signal traps are set), and returns leaderd's
// "child started" line.
func waitChild(t *testing.T, h *hub, timeout time.Duration, mark int) logLine {
	t.Helper()
	l := h.wait(t, timeout, mark, "a child start", from(nil, "child started"))
	h.wait(t, 5*time.Second, mark, l.p.name+"'s child running", func(c logLine) bool {
		return c.p == l.p && childSaid("start")(c)
	})
	return l
}

func fastAgent(t *testing.T) *consultest.Agent {
	return consultest.Start(t, consultest.Options{HCL: []string{`session_ttl_min = "1s"`}})
}

func runArgs(service, id string, extra ...string) []string {
	args := []string{"run", "-service", service, "-id", id, "-ttl", testTTL.String(), "-lock-delay", testLockDelay.String(),
		"-check-ttl", "0", "-kill-timeout", killTimeout, "-listen", "127.0.0.1:0", "-log-format", "json"}
	return append(args, extra...)
}

// TestRunElection: three `leaderd run` processes with a child each. Exactly
// one child runs at a time; the endpoints agree on who leads; SIGTERM hands
// over at once (a release imposes no lock-delay); SIGKILL of the leader
// kills its child too and a follower takes over once Consul expired the
// session and the lock-delay passed, not before; fencing tokens increase.
func TestRunElection(t *testing.T) {
	agent := fastAgent(t)
	h := newHub()
	childLog := filepath.Join(t.TempDir(), "child.log")
	env := []string{"CONSUL_HTTP_ADDR=" + agent.Addr, "CHILD_LOG=" + childLog}
	procs := map[string]*proc{}
	addr := map[*proc]string{}
	for _, id := range []string{"a", "b", "c"} {
		p := start(t, h, id, env, runArgs("itest", id, "--", "sh", "-c", childScript)...)
		procs[id] = p
		addr[p] = statusAddr(t, h, p)
	}

	first := waitChild(t, h, 20*time.Second, 0)
	leader1, token1 := first.p, first.num("token")
	for _, p := range procs {
		wantCode, wantRole := 503, "follower"
		if p == leader1 {
			wantCode, wantRole = 200, "leader"
		}
		if code, body := httpGet(t, addr[p], "/v1/leader"); code != wantCode {
			t.Errorf("%s: GET /v1/leader = %d %s, want %d", p.name, code, body, wantCode)
		}
		if code, body := httpGet(t, addr[p], "/v1/health"); code != 200 {
			t.Errorf("%s: GET /v1/health = %d %s, want 200", p.name, code, body)
		}
		_, body := httpGet(t, addr[p], "/v1/status")
		var st struct {
			Role, Key       string
			Token           int64
			ConsulReachable bool `json:"consul_reachable"`
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("%s: /v1/status: %v\n%s", p.name, err, body)
		}
		if st.Role != wantRole || st.Key != "services/itest/leader" || !st.ConsulReachable {
			t.Errorf("%s: /v1/status = %s, want role %s on services/itest/leader, consul reachable", p.name, body, wantRole)
		}
		if p == leader1 && st.Token != token1 {
			t.Errorf("%s: /v1/status token %d, the child got %d", p.name, st.Token, token1)
		}
	}
	_, metrics := httpGet(t, addr[leader1], "/metrics")
	for _, want := range []string{"leaderd_is_leader 1\n", `leaderd_transitions_total{reason="elected"} 1` + "\n", "leaderd_renew_latency_seconds_count "} {
		if !strings.Contains(metrics, want) {
			t.Errorf("leader /metrics lacks %q:\n%s", want, metrics)
		}
	}

	// Graceful: SIGTERM stops the child, releases, exits 0 within Nomad's
	// default 5s kill timeout; a follower takes over at once.
	mark, t0 := h.mark(), time.Now()
	leader1.signal(t, syscall.SIGTERM)
	if code := leader1.exit(t, 5*time.Second); code != 0 {
		t.Errorf("%s exited %d after SIGTERM, want 0", leader1.name, code)
	}
	second := waitChild(t, h, 5*time.Second, mark)
	t.Logf("graceful handover: %s stopped and %s's child started %v after SIGTERM", leader1.name, second.p.name, time.Since(t0))
	if second.num("token") <= token1 {
		t.Errorf("token %d after %d: fencing tokens must increase", second.num("token"), token1)
	}

	// Crash: SIGKILL the leader. Its keeper kills its child at once, and a
	// follower takes over once Consul expired the session and the
	// lock-delay passed.
	leader2, pid2 := second.p, int(second.num("pid"))
	mark, t0 = h.mark(), time.Now()
	leader2.signal(t, syscall.SIGKILL)
	leader2.exit(t, 5*time.Second)
	waitGone(t, pid2, 2*time.Second)
	third := waitChild(t, h, failoverBound, mark)
	failover := time.Since(t0)
	elected := h.wait(t, time.Second, mark, "the election", from(third.p, "elected"))
	t.Logf("crash failover: %s elected %v and its child started %v after SIGKILL of %s (allowed %v..%v)",
		third.p.name, lineTime(t, elected).Sub(t0), failover, leader2.name, failoverEarliest, failoverBound)
	if d := lineTime(t, elected).Sub(t0); d < failoverEarliest {
		t.Errorf("%s elected %v after the crash, before Consul's earliest %v (TTL − renew interval + lock-delay)", third.p.name, d, failoverEarliest)
	}
	if third.num("token") <= second.num("token") {
		t.Errorf("token %d after %d: fencing tokens must increase", third.num("token"), second.num("token"))
	}

	third.p.signal(t, syscall.SIGTERM)
	if code := third.p.exit(t, 5*time.Second); code != 0 {
		t.Errorf("%s exited %d after SIGTERM, want 0", third.p.name, code)
	}

	// The child log: one child at a time, in token order.
	got := readChildLog(t, childLog)
	want := []childEvent{
		{Kind: "start", Token: uint64(token1), ID: leader1.name},
		{Kind: "term", Token: uint64(token1), ID: leader1.name},
		{Kind: "start", Token: uint64(second.num("token")), ID: leader2.name},
		{Kind: "start", Token: uint64(third.num("token")), ID: third.p.name},
		{Kind: "term", Token: uint64(third.num("token")), ID: third.p.name},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(childEvent{}, "PID", "At")); diff != "" {
		t.Fatalf("child log (-want +got):\n%s", diff)
	}
	if !got[1].At.Before(got[2].At) {
		t.Errorf("second child started at %v, before the first stopped at %v", got[2].At, got[1].At)
	}
	if !got[3].At.After(t0) {
		t.Errorf("third child started at %v, before the second leader was killed at %v", got[3].At, t0)
	}
}

// TestRunSignals: SIGHUP reaches the child; SIGINT stops it with SIGINT,
// releases the key (nobody leads right after) and exits 0.
func TestRunSignals(t *testing.T) {
	agent := fastAgent(t)
	h := newHub()
	env := []string{"CONSUL_HTTP_ADDR=" + agent.Addr, "CHILD_LOG=" + filepath.Join(t.TempDir(), "child.log")}
	p := start(t, h, "sig", env, runArgs("signals", "sig", "--", "sh", "-c", childScript)...)
	h.wait(t, 20*time.Second, 0, "the child start", childSaid("start"))

	p.signal(t, syscall.SIGHUP)
	h.wait(t, 5*time.Second, 0, "the child's SIGHUP", childSaid("hup"))

	t0 := time.Now()
	p.signal(t, syscall.SIGINT)
	h.wait(t, 5*time.Second, 0, "the child's SIGINT", childSaid("int"))
	if code := p.exit(t, 5*time.Second); code != 0 {
		t.Errorf("exit code after SIGINT = %d, want 0", code)
	}
	t.Logf("stopped %v after SIGINT", time.Since(t0))
	code, out, errOut := runOnce(t, 10*time.Second, env, "leader", "-service", "signals")
	if code != 3 || strings.TrimSpace(out) != "no leader" {
		t.Errorf("leaderd leader after SIGINT: exit %d, stdout %q, stderr %q; want 3, \"no leader\" (the key was released)", code, out, errOut)
	}
}

// TestRunChildExit: a child that exits by itself ends the run with its
// code and releases leadership; with -restart the candidate resigns and
// the child starts again on the next term.
func TestRunChildExit(t *testing.T) {
	agent := fastAgent(t)
	env := []string{"CONSUL_HTTP_ADDR=" + agent.Addr}
	tests := []struct {
		name   string
		script string
		want   int
	}{
		{"success", "exit 0", 0},
		{"failure", "exit 7", 7},
		{"killed by a signal", "kill -KILL $$", 128 + 9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			service := "exit-" + strings.ReplaceAll(tc.name, " ", "-")
			code, _, stderr := runOnce(t, 30*time.Second, env, runArgs(service, "x", "--", "sh", "-c", tc.script)...)
			if code != tc.want {
				t.Errorf("exit code = %d, want %d\n%s", code, tc.want, stderr)
			}
			if code, out, _ := runOnce(t, 10*time.Second, env, "leader", "-service", service); code != 3 {
				t.Errorf("leaderd leader afterwards: exit %d, %q; want 3 (leadership released)", code, out)
			}
		})
	}

	t.Run("restart", func(t *testing.T) {
		h := newHub()
		p := start(t, h, "restart", env, runArgs("exit-restart", "r", "-restart", "--", "sh", "-c", "echo started $LEADERD_TOKEN; exit 3")...)
		one := h.wait(t, 20*time.Second, 0, "the first child", from(p, "child started"))
		two := h.wait(t, 20*time.Second, h.mark(), "the child again, on a new term", func(l logLine) bool {
			return from(p, "child started")(l) && l.num("token") > one.num("token")
		})
		t.Logf("child restarted on term %d after term %d", two.num("token"), one.num("token"))
		p.signal(t, syscall.SIGTERM)
		if code := p.exit(t, 5*time.Second); code != 0 {
			t.Errorf("exit code after SIGTERM = %d, want 0", code)
		}
	})
}
