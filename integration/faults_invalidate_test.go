package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leaderd/leaderd/integration/consultest"
	"github.com/leaderd/leaderd/integration/history"
)

// TestFaultInvalidate: Consul invalidates the leader's session at a moment
// the leader does not choose and may not hear of (the safety rule in
// DESIGN.md): its agent leaves, its node is pruned, an operator destroys
// the session, its check is failed. After an invalidation only the
// lock-delay keeps the follower out, so the leader must have its child
// dead within its lease, lock-delay − margin after its latest proof. The
// child takes 1s to stop after SIGTERM, as real programs do. Afterwards
// the old leader must be able to lead again (a session of its own), except
// on a pruned node.
//
// Two candidates: a leads through a Consul *client* agent, so its session
// belongs to the client's node; b follows through the server. Each fault
// runs with leaderd's default flags and with the fast settings, twice. The
// checker is strict: any overlap of two terms fails. Once the lock-delay
// is over a new term must lead: b's, or a's own on a new session when its
// agent still serves it (after a destroy or a failed check a often wins
// the race). The takeover time is logged from the moment the fault set
// off the invalidation to the start of the new leader's child.
func TestFaultInvalidate(t *testing.T) {
	t.Parallel()
	for _, f := range invalidations {
		for _, s := range invalidateSettings {
			t.Run(f.name+"/"+s.name, func(t *testing.T) {
				t.Parallel()
				srv := consultest.Start(t, consultest.Options{})
				for run := 1; run <= invalidateRuns; run++ {
					t.Run(fmt.Sprintf("run%d", run), func(t *testing.T) {
						// A client of its own: what a run leaves on its agent
						// (a pruned node, leaderd's check) is not the next
						// run's subject.
						cl := consultest.StartClient(t, srv, consultest.Options{})
						invalidateRun(t, invalidateEnv{srv: srv, client: cl}, f, s, run)
					})
				}
			})
		}
	}
}

// invalidateRuns is how many times each fault runs with each setting.
const invalidateRuns = 2

// invalidateSetting is a set of flags the fault runs with.
type invalidateSetting struct {
	name  string
	flags []string // on top of leaderd run's own defaults
}

var invalidateSettings = []invalidateSetting{
	// -ttl 10s -lock-delay 10s -check-ttl 3s -kill-timeout 2s
	{name: "defaults"},
	{name: "fast", flags: []string{"-check-ttl", "1s", "-lock-delay", "2s", "-kill-timeout", "500ms"}},
}

// invalidateEnv is what a fault acts on.
type invalidateEnv struct {
	srv, client *consultest.Agent
	r           *faultRig
	leader      string // the leader's candidate id
	session     sessionInfo
}

// invalidation is one way Consul ends the leader's session.
type invalidation struct {
	name string
	// inject sets off the invalidation and returns the moment it did so:
	// from then on Consul may invalidate the session at any instant.
	inject func(t *testing.T, e invalidateEnv) time.Time
	// pruned: the leader's node stays out of the catalog after the fault
	// (until its agent restarts, and then up to a minute more: the rejoin
	// waits for the servers' periodic reconcile), so the old leader can't
	// be a candidate again within the test.
	pruned bool
}

var invalidations = []invalidation{
	{
		// A routine restart of the local agent (SIGTERM, as systemd does):
		// a client agent leaves the cluster on SIGTERM, the servers
		// deregister its node ~0.3s later and with it every session on
		// it; the agent itself exits ~3s after the signal, then starts
		// again.
		name: "client agent restart",
		inject: func(t *testing.T, e invalidateEnv) time.Time {
			at := e.r.note(history.Fault, e.leader, "SIGTERM to the leader's consul client agent")
			e.client.Terminate()
			e.r.note(history.Note, e.leader, "consul client agent exited; starting it again")
			e.client.Restart(t)
			e.r.note(history.Heal, e.leader, "consul client agent back")
			return at
		},
	},
	{
		// `consul force-leave` of a live node does nothing (the member
		// is marked leaving and refutes it); of a failed one it only
		// deregisters a node whose serfHealth-bound sessions died when it
		// failed. `-prune` of a live node erases it: serf holds the
		// command ~8s, then the leader deregisters the node (reason
		// "reaped"), destroying its sessions while its agent and leaderd
		// run on. See devconsul's package doc for the measurements.
		//
		// And while serf holds the command it holds its member lock on
		// the server: the server stops answering gossip probes, the
		// client marks it failed within a second and answers "No known
		// Consul servers" until it hears from it again. So the leader is
		// cut off first (it steps down at its lease end, lease_expired)
		// and its node reaped ~7s later. The fault's moment is the reap
		// (the command's return): the invalidation.
		name: "force-leave -prune",
		inject: func(t *testing.T, e invalidateEnv) time.Time {
			e.r.note(history.Note, e.leader, "consul force-leave -prune %s sent", e.client.NodeName)
			e.srv.ForceLeave(t, e.client.NodeName, true)
			return e.r.note(history.Fault, e.leader, "consul force-leave -prune %s returned: node reaped", e.client.NodeName)
		},
		pruned: true,
	},
	{
		// An operator's `consul session destroy <id>`.
		name: "session destroy",
		inject: func(t *testing.T, e invalidateEnv) time.Time {
			at := e.r.note(history.Fault, e.leader, "PUT /v1/session/destroy/%s", e.session.ID)
			consulAPI(t, e.srv, http.MethodPut, "/v1/session/destroy/"+e.session.ID, nil, nil)
			return at
		},
	},
	{
		// The session's bound check goes critical (fast crash detection:
		// leaderd's own TTL check, leaderd:<id>, on its agent). leaderd
		// passes the check every check-ttl/3, so a pass may reach the
		// agent before it has synced the critical status to the servers:
		// fail it again until the session is gone.
		name: "check critical",
		inject: func(t *testing.T, e invalidateEnv) time.Time {
			check := "leaderd:" + e.leader
			if !slices.Contains(e.session.checks(), check) {
				t.Fatalf("the leader's session is bound to %v, not to its check %s", e.session.checks(), check)
			}
			path := "/v1/agent/check/fail/" + url.PathEscape(check) + "?note=" + url.QueryEscape("failed by the test")
			at := e.r.note(history.Fault, e.leader, "PUT /v1/agent/check/fail/%s", check)
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for deadline := at.Add(10 * time.Second); ; <-tick.C {
				consulAPI(t, e.client, http.MethodPut, path, nil, nil)
				var infos []sessionInfo
				consulAPI(t, e.srv, http.MethodGet, "/v1/session/info/"+e.session.ID, nil, &infos)
				if len(infos) == 0 {
					return at
				}
				if time.Now().After(deadline) {
					t.Fatalf("session %s still valid 10s after its check %s was first failed", e.session.ID, check)
				}
			}
		},
	},
}

// sessionInfo is the part of /v1/session/info we read.
type sessionInfo struct {
	ID, Node      string
	LockDelay     time.Duration // nanoseconds in the JSON
	NodeChecks    []string
	ServiceChecks []struct{ ID string }
}

func (s sessionInfo) checks() []string {
	ids := slices.Clone(s.NodeChecks)
	for _, c := range s.ServiceChecks {
		ids = append(ids, c.ID)
	}
	return ids
}

// holderSession returns the session holding key, read from agent a.
func holderSession(t *testing.T, a *consultest.Agent, key string) sessionInfo {
	t.Helper()
	var kv []struct{ Session string }
	consulAPI(t, a, http.MethodGet, "/v1/kv/"+key, nil, &kv)
	if len(kv) != 1 || kv[0].Session == "" {
		t.Fatalf("key %s: %+v, want one entry held by a session", key, kv)
	}
	var infos []sessionInfo
	consulAPI(t, a, http.MethodGet, "/v1/session/info/"+kv[0].Session, nil, &infos)
	if len(infos) != 1 {
		t.Fatalf("session %s of key %s: %+v, want one", kv[0].Session, key, infos)
	}
	return infos[0]
}

func invalidateRun(t *testing.T, env invalidateEnv, f invalidation, s invalidateSetting, run int) {
	service := fmt.Sprintf("inv-%s-%s-%d", strings.ReplaceAll(strings.ReplaceAll(f.name, " ", "-"), "--", "-"), s.name, run)
	key := "services/" + service + "/leader"
	seedKey(t, env.srv.Addr, key)
	r := newFaultRig(t, service)
	r.settings = nil // leaderd's own defaults under s.flags
	child := history.ChildStopDelayEnv + "=1"
	a := r.start("a", env.client.Addr, s.flags, child)
	r.leading(30*time.Second, 0, a)
	b := r.start("b", env.srv.Addr, s.flags, child)
	r.following(30*time.Second, 0, b, "a")

	env.r, env.leader = r, "a"
	env.session = holderSession(t, env.srv, key)
	if env.session.Node != env.client.NodeName {
		t.Fatalf("a's session %s is on node %s, want the client's node %s", env.session.ID, env.session.Node, env.client.NodeName)
	}
	lockDelay := env.session.LockDelay
	if lockDelay <= 0 {
		t.Errorf("a's session has lock-delay %v: nothing keeps b out after an invalidation", lockDelay)
	}
	// Consul lets b in lock-delay after the invalidation; b's next acquire
	// comes after at most that much again (its retry wait), and a loaded
	// machine adds seconds.
	bound := 2*lockDelay + 10*time.Second

	mark, before := r.mark(), time.Now()
	at := f.inject(t, env)
	// Whoever acquires first once the lock-delay is over leads: b, or a
	// with a new session when its agent is still serving it.
	next := r.leading(bound, mark, nil)
	// When did a step down and its child die, from the fault's moment (a
	// negative time: before it, as when a was cut off first)?
	down, dead := "did not step down", "was not seen dead"
	if evs := r.events(history.SteppedDown, "a", before, time.Time{}); len(evs) > 0 {
		down = fmt.Sprintf("stepped down (%s) at %s", evs[0].Note, faultMS(evs[0].At.Sub(at)))
	}
	for _, e := range r.events(history.ChildReaped, "a", before, time.Time{}) {
		dead = "was dead at " + faultMS(e.At.Sub(at))
		break
	}
	t.Logf("%s, %s (lock-delay %v), times from the fault: takeover %s (the new leader's child started); %s elected at %s; a %s, its child %s",
		f.name, s.name, lockDelay, faultMS(next.child.At.Sub(at)), next.elected.Candidate, faultMS(next.elected.At.Sub(at)), down, dead)
	if !f.pruned {
		// The old leader is a candidate again: it has a new session.
		candidateAgain(t, env, 30*time.Second)
	}
	// The leader last, so that nobody is elected on the way out.
	if next.elected.Candidate == "a" {
		a, b = b, a
	}
	a.stop()
	b.stop()
	r.verify(history.Options{Settle: []history.Settle{{What: "after " + f.name, After: at, Within: bound}}})
}

// candidateAgain waits until the old leader has a session again (through
// its client agent, whose node holds only its sessions): it can lead
// again. A check left critical on the agent (a re-registration keeps an
// existing check's status) would keep it from ever creating one.
func candidateAgain(t *testing.T, e invalidateEnv, timeout time.Duration) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(timeout); ; <-tick.C {
		var infos []sessionInfo
		consulAPI(t, e.srv, http.MethodGet, "/v1/session/node/"+url.PathEscape(e.client.NodeName), nil, &infos)
		for _, s := range infos {
			if s.ID != e.session.ID {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("%s has no new session %v after the fault: it can't lead again; the history:\n%s", e.leader, timeout, e.r.h.Timeline())
			return
		}
	}
}
