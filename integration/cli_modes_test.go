package integration

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunFastFailover: with -check-ttl the session is bound to a TTL check
// leaderd passes every check-ttl/3; when the leader is SIGKILLed the check
// goes critical check-ttl after its last pass, Consul invalidates the
// session, and a follower takes over once the lock-delay has passed: about
// check-ttl + lock-delay (the fast settings: 1s + 2s), far below the
// session TTL's 2×TTL + lock-delay, and never before the lock-delay.
func TestRunFastFailover(t *testing.T) {
	agent := fastAgent(t)
	h := newHub()
	env := []string{"CONSUL_HTTP_ADDR=" + agent.Addr, "CHILD_LOG=" + filepath.Join(t.TempDir(), "child.log")}
	const checkTTL, lockDelay = time.Second, 2 * time.Second
	args := func(id string) []string {
		return []string{"run", "-service", "fast", "-id", id, "-ttl", "10s", "-check-ttl", checkTTL.String(),
			"-lock-delay", lockDelay.String(), "-kill-timeout", killTimeout, "-listen", "", "-log-format", "json",
			"--", "sh", "-c", childScript}
	}
	a := start(t, h, "a", env, args("a")...)
	first := waitChild(t, h, 20*time.Second, 0)
	if first.p != a {
		t.Fatalf("%s leads, want a (b is not started yet)", first.p.name)
	}
	b := start(t, h, "b", env, args("b")...)
	h.wait(t, 20*time.Second, 0, "b following a", from(b, "leader changed"))

	mark, t0 := h.mark(), time.Now()
	a.signal(t, syscall.SIGKILL)
	a.exit(t, 5*time.Second)
	waitGone(t, int(first.num("pid")), 2*time.Second)
	// The agent marks the check critical checkTTL after the last pass (at
	// most checkTTL/3 before the kill) and invalidates the session; the
	// lock-delay runs from then.
	earliest, bound := checkTTL-checkTTL/3+lockDelay, checkTTL+lockDelay+2*time.Second
	second := waitChild(t, h, bound, mark)
	elected := lineTime(t, h.wait(t, time.Second, mark, "b's election", from(second.p, "elected"))).Sub(t0)
	t.Logf("fast failover: b elected %v and its child started %v after SIGKILL of a (allowed %v..%v; check TTL %v, lock-delay %v, session TTL 10s)",
		elected, time.Since(t0), earliest, bound, checkTTL, lockDelay)
	if second.p != b {
		t.Errorf("%s took over, want b", second.p.name)
	}
	if elected < earliest {
		t.Errorf("b elected %v after the crash, before Consul's earliest %v (check TTL − its pass interval + lock-delay)", elected, earliest)
	}
	b.signal(t, syscall.SIGTERM)
	if code := b.exit(t, 5*time.Second); code != 0 {
		t.Errorf("b exit code = %d, want 0", code)
	}
}

// TestRunConsulTags: -publish consul-tags registers the instance with the
// leader tag while it leads, and deregisters it on exit.
func TestRunConsulTags(t *testing.T) {
	agent := fastAgent(t)
	h := newHub()
	p := start(t, h, "tags", []string{"CONSUL_HTTP_ADDR=" + agent.Addr},
		runArgs("tagged", "t1", "-publish", "consul-tags", "-tags", "blue,v2", "-address", "127.0.0.1:7000")...)
	h.wait(t, 20*time.Second, 0, "registration as leader", func(l logLine) bool {
		return from(p, "registered service")(l) && l.str("tag") == "leader"
	})
	var entries []struct {
		ServiceID, ServiceAddress string
		ServicePort               int
		ServiceTags               []string
		ServiceMeta               map[string]string
	}
	// The agent syncs its local registration to the catalog on its own
	// (anti-entropy), a moment after the register call returned.
	var body string
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(10 * time.Second); ; <-tick.C {
		_, body = httpGet(t, agent.Addr, "/v1/catalog/service/tagged?tag=leader")
		if err := json.Unmarshal([]byte(body), &entries); err != nil {
			t.Fatalf("catalog: %v\n%s", err, body)
		}
		if len(entries) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(entries) != 1 || !slices.Equal(entries[0].ServiceTags, []string{"leader", "blue", "v2"}) ||
		entries[0].ServiceAddress != "127.0.0.1" || entries[0].ServicePort != 7000 || entries[0].ServiceMeta["leaderd_id"] != "t1" {
		t.Errorf("catalog ?tag=leader = %s, want t1 at 127.0.0.1:7000 tagged leader,blue,v2", body)
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.exit(t, 5*time.Second); code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
	_, body = httpGet(t, agent.Addr, "/v1/catalog/service/tagged")
	if strings.TrimSpace(body) != "[]" {
		t.Errorf("catalog after exit = %s, want [] (deregistered)", body)
	}
}

// TestRunSecondSignal: a second SIGTERM doesn't wait out -kill-timeout for
// a child that ignores SIGTERM: the child is killed at once.
func TestRunSecondSignal(t *testing.T) {
	agent := fastAgent(t)
	// A key left by a release: a missing key would cost a lease window
	// (lock-delay + margin: 10s + 5.5s).
	seedKey(t, agent.Addr, "services/stubborn/leader")
	h := newHub()
	const kill = 5 * time.Second
	p := start(t, h, "stubborn", []string{"CONSUL_HTTP_ADDR=" + agent.Addr},
		"run", "-service", "stubborn", "-id", "s", "-ttl", "20s", "-kill-timeout", kill.String(), "-listen", "", "-log-format", "json",
		"--", "sh", "-c", `trap '' TERM; echo ready; exec sleep 1000`)
	h.wait(t, 20*time.Second, 0, "the child", func(l logLine) bool { return l.stdout && l.raw == "ready" })
	t0 := time.Now()
	p.signal(t, syscall.SIGTERM)
	h.wait(t, 5*time.Second, 0, "the stop", from(p, "stopping child"))
	p.signal(t, syscall.SIGTERM)
	if code := p.exit(t, kill); code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
	if d := time.Since(t0); d >= kill {
		t.Errorf("stopped after %v: the second signal did not cut -kill-timeout %v short", d, kill)
	}
}
