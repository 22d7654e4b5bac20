package integration

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leaderd/leaderd/integration/consultest"
)

// Crash failover with the default flags: the check (-check-ttl 3s) goes
// critical, then the lock-delay (10s) runs; the slack is for a loaded
// machine.
const defaultFailoverBound = 3*time.Second + 10*time.Second + 7*time.Second

// TestManyDefaults: several leaderd on one host with the default flags (a
// new user's first test: no -listen, no -id, no timing flags) all start,
// each serving its status on its own port, each registered with Consul
// against the port it actually bound; exactly one child runs through a
// graceful handover and a crash of the leader.
func TestManyDefaults(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{}) // session_ttl_min 10s, as in production
	seedKey(t, agent.Addr, "services/many/leader")
	h := newHub()
	childLog := filepath.Join(t.TempDir(), "child.log")
	env := []string{"CONSUL_HTTP_ADDR=" + agent.Addr, "CHILD_LOG=" + childLog}
	const n = 4
	var procs []*proc
	addrs := map[*proc]string{}
	seen := map[string]*proc{}
	for i := range n {
		p := start(t, h, fmt.Sprintf("m%d", i), env, "run", "-service", "many", "-publish", "consul-tags", "-log-format", "json",
			"--", "sh", "-c", childScript)
		procs = append(procs, p)
		addr := statusAddr(t, h, p)
		if q := seen[addr]; q != nil {
			t.Fatalf("%s and %s both say they listen on %s", q.name, p.name, addr)
		}
		seen[addr], addrs[p] = p, addr
	}
	onDefault := 0
	for _, p := range procs {
		if addrs[p] == "127.0.0.1:8787" {
			onDefault++
		}
		_, body := httpGet(t, addrs[p], "/v1/status")
		var st struct{ ID, Listen string }
		if err := json.Unmarshal([]byte(body), &st); err != nil || st.Listen != addrs[p] {
			t.Errorf("%s: /v1/status = %s, want listen %s", p.name, body, addrs[p])
		}
	}
	if onDefault > 1 {
		t.Errorf("%d instances on 127.0.0.1:8787", onDefault)
	}
	var where []string
	for _, p := range procs {
		where = append(where, p.name+"="+addrs[p])
	}
	t.Logf("status addresses: %s (at most one gets the default port; the others fall back to free ones)", strings.Join(where, " "))

	// -publish consul-tags: each instance's check probes its own address.
	for _, p := range procs {
		h.wait(t, 20*time.Second, 0, p.name+" registered", from(p, "registered service"))
	}
	// The agent reports the URL it probed in the check's output once the
	// check has run (within its 5s interval, staggered).
	want := map[string]*proc{}
	for _, p := range procs {
		want["HTTP GET http://"+addrs[p]+"/v1/health: 200 OK"] = p
	}
	var body string
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(15 * time.Second); ; <-tick.C {
		_, body = httpGet(t, agent.Addr, "/v1/agent/checks")
		var checks map[string]struct{ Type, Output string }
		if err := json.Unmarshal([]byte(body), &checks); err != nil {
			t.Fatalf("agent checks: %v\n%s", err, body)
		}
		probed := 0
		for prefix := range want {
			for _, c := range checks {
				if c.Type == "http" && strings.HasPrefix(c.Output, prefix) {
					probed++
					break
				}
			}
		}
		if probed == len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not probe each instance's own status address (%v); checks:\n%s", want, body)
		}
	}

	first := waitChild(t, h, 20*time.Second, 0)
	leader1 := first.p

	// Graceful handover.
	mark, t0 := h.mark(), time.Now()
	leader1.signal(t, syscall.SIGTERM)
	if code := leader1.exit(t, 5*time.Second); code != 0 {
		t.Errorf("%s exited %d after SIGTERM, want 0", leader1.name, code)
	}
	second := waitChild(t, h, 5*time.Second, mark)
	t.Logf("graceful handover with the defaults: %s's child started %v after SIGTERM to %s", second.p.name, time.Since(t0).Round(time.Millisecond), leader1.name)

	// Crash: SIGKILL the leader.
	leader2, pid2 := second.p, int(second.num("pid"))
	mark, t0 = h.mark(), time.Now()
	leader2.signal(t, syscall.SIGKILL)
	leader2.exit(t, 5*time.Second)
	waitGone(t, pid2, 2*time.Second)
	third := waitChild(t, h, defaultFailoverBound, mark)
	t.Logf("crash failover with the defaults: %s's child started %v after SIGKILL of %s (bound %v)", third.p.name, time.Since(t0).Round(time.Millisecond), leader2.name, defaultFailoverBound)

	for _, p := range procs {
		if p != leader1 && p != leader2 {
			p.signal(t, syscall.SIGTERM)
		}
	}
	for _, p := range procs {
		if p != leader1 && p != leader2 {
			if code := p.exit(t, 10*time.Second); code != 0 {
				t.Errorf("%s exited %d, want 0", p.name, code)
			}
		}
	}

	// One child at a time, in order: the first leader's child until its
	// SIGTERM, the second's until the SIGKILL (no end line: its death was
	// waited for above), then the third's until the end.
	evs := readChildLog(t, childLog)
	var got []string
	for _, ev := range evs {
		got = append(got, ev.Kind)
	}
	if strings.Join(got, " ") != "start term start start term" || evs[0].ID != evs[1].ID || evs[2].ID == evs[0].ID || evs[3].ID == evs[2].ID {
		t.Errorf("child log %+v: want start and term of one candidate, then a start each of two others", evs)
	} else if !evs[3].At.After(t0) || evs[2].At.Before(evs[1].At) {
		t.Errorf("child log %+v: a child started before the previous one ended", evs)
	}
}
