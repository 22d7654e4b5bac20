package integration

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/elect"
	"github.com/leaderd/leaderd/integration/consultest"
	"github.com/leaderd/leaderd/integration/history"
)

// The handover tests: a leader that lets go (SIGTERM) stops its child,
// then moves the key in one transaction [unlock ours, lock theirs] to the
// best live candidate, which leads on seeing its own session on the key.
// Each leaderd talks to Consul through a consulTap of its own, so a test
// sees which candidate wrote what, and can act at the very moment a
// handover passes.

// handoverRig is a handover test's world: one Consul agent, a fault rig,
// and a tap per candidate.
type handoverRig struct {
	*faultRig
	agent  *consultest.Agent
	client *consulhttp.Client
	key    string
	procs  map[string]*faultProc
	taps   map[string]*consulTap
}

// transferChild: the child takes 1s to stop after SIGTERM, as real
// programs do; leaderd kills its group at -kill-timeout (500ms), so a
// handover comes about half a second after the signal.
var transferChild = history.ChildStopDelayEnv + "=1"

// newHandoverRig starts candidate names[0] and waits until it leads, then
// the others, each following it, and waits until all are registered.
// Every leaderd runs with flags and its child with env on top of
// transferChild.
func newHandoverRig(t *testing.T, service string, flags, env []string, names ...string) *handoverRig {
	t.Helper()
	agent := faultAgent(t)
	tr := &handoverRig{faultRig: newFaultRig(t, service), agent: agent, client: consulClient(t, agent.Addr), key: elect.KeyFor(service),
		procs: map[string]*faultProc{}, taps: map[string]*consulTap{}}
	for i, name := range names {
		tap := startConsulTap(t, name, agent.Addr)
		tr.taps[name] = tap
		p := tr.start(name, tap.addr, flags, append([]string{transferChild}, env...)...)
		tr.procs[name] = p
		if i == 0 {
			tr.leading(30*time.Second, 0, p)
		} else {
			tr.following(30*time.Second, 0, p, names[0])
		}
	}
	tr.registered(len(names), 30*time.Second)
	return tr
}

// registered waits until n candidates are live in the registry and returns
// them, best first. Nothing announces a registration to the test: it polls.
func (tr *handoverRig) registered(n int, timeout time.Duration) []elect.CandidateEntry {
	tr.t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(timeout); ; <-tick.C {
		es, _, err := elect.Candidates(context.Background(), tr.client, tr.key)
		live := 0
		for _, e := range es {
			if e.Live {
				live++
			}
		}
		if err == nil && live == n {
			return es
		}
		if time.Now().After(deadline) {
			tr.t.Fatalf("%d live candidates registered after %v, want %d (err %v): %+v", live, timeout, n, err, es)
		}
	}
}

// successorOf is the best live candidate other than the leader: who a
// handover goes to.
func successorOf(es []elect.CandidateEntry) elect.CandidateEntry {
	for _, e := range es {
		if e.Live && !e.Leading {
			return e
		}
	}
	return elect.CandidateEntry{}
}

// keyNow reads the election key.
func (tr *handoverRig) keyNow() consulhttp.KVPair {
	tr.t.Helper()
	p, _, err := tr.client.GetKV(context.Background(), tr.key, consulhttp.QueryOptions{})
	if err != nil || p == nil {
		tr.t.Fatalf("read %s: %+v, %v", tr.key, p, err)
	}
	return *p
}

// acquiresSince are the lone locks of the key that reached Consul from
// from on, by candidate.
func (tr *handoverRig) acquiresSince(from time.Time) map[string][]tapTxn {
	out := map[string][]tapTxn{}
	for name, tap := range tr.taps {
		if xs := tap.seen(from, func(x tapTxn) bool { return x.lonelock(tr.key) }); len(xs) > 0 {
			out[name] = xs
		}
	}
	return out
}

// stopAll stops every candidate still running, the leader last so that
// nobody is handed the key on the way out.
func (tr *handoverRig) stopAll(leader string) {
	tr.t.Helper()
	for name, p := range tr.procs {
		if name != leader && !p.exited() {
			p.stop()
		}
	}
	if p := tr.procs[leader]; p != nil && !p.exited() {
		p.stop()
	}
}

func (p *faultProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// TestFaultHandoverOneSuccessor: five candidates; the leader lets go: it
// is SIGTERMed, or its child exits by itself under -restart (it stays a
// candidate). It stops its child (a SIGTERMed child is killed at
// -kill-timeout), then hands the key in one transaction to the best live
// candidate, which leads with no lock-delay and no race: the followers
// send no acquire at all, the key's LockIndex goes up by exactly one (the
// handover's lock), and the successor's child starts well within the
// lock-delay after the old child died.
func TestFaultHandoverOneSuccessor(t *testing.T) {
	t.Parallel()
	// The child's lifetime under -restart: longer than the rig takes to
	// start, so every candidate is registered when the leader lets go.
	const lifetime = 10 * time.Second
	for _, restart := range []bool{false, true} {
		name := map[bool]string{false: "SIGTERM", true: "child exits under -restart"}[restart]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var flags, env []string
			if restart {
				flags = []string{"-restart"}
				env = []string{fmt.Sprintf("%s=%d", history.ChildLifetimeEnv, int(lifetime.Seconds()))}
			}
			tr := newHandoverRig(t, "handover", flags, env, "a", "b", "c", "d", "e")
			want := successorOf(tr.registered(5, 10*time.Second))
			before := tr.keyNow()

			mark := tr.mark()
			var sent time.Time
			if restart {
				// If the rig took longer than the lifetime, this fails with
				// the timeline: the exit came before the mark.
				sent = tr.wait(lifetime+10*time.Second, mark, "a's child exiting", func(e history.Event) bool {
					return e.Kind == history.ChildStop && e.Candidate == "a" && e.Note == "exit"
				}).At
			} else {
				sent = tr.note(history.Fault, "a", "SIGTERM")
				tr.procs["a"].signal(syscall.SIGTERM)
			}
			next := tr.leading(10*time.Second, mark, nil)
			if restart {
				tr.following(10*time.Second, mark, tr.procs["a"], next.elected.Candidate)
			} else if code := tr.procs["a"].exit(10 * time.Second); code != 0 {
				t.Errorf("leaderd a exited %d after SIGTERM, want 0", code)
			}
			after := tr.keyNow()
			dead := tr.wait(5*time.Second, mark, "a's child reaped", evIs(history.ChildReaped, "a"))

			handovers := tr.taps["a"].seen(sent, func(x tapTxn) bool { return x.handover(tr.key) })
			acquires := tr.acquiresSince(sent)
			gap := next.elected.At.Sub(dead.At)
			t.Logf("%s: a's child reaped %s later; %s elected %s after that, its child started %s after it; handover txns from a: %d; acquires from anyone: %v; LockIndex %d → %d",
				name, faultMS(dead.At.Sub(sent)), next.elected.Candidate, faultMS(gap), faultMS(next.child.At.Sub(dead.At)), len(handovers), acquires, before.LockIndex, after.LockIndex)

			if next.elected.Candidate != want.ID {
				t.Errorf("%s leads after the handover, want %s, the best live candidate", next.elected.Candidate, want.ID)
			}
			if len(handovers) != 1 || handovers[0].Code != http.StatusOK || handovers[0].Ops[0].Session != before.Session || handovers[0].Ops[1].Session != want.Session {
				t.Errorf("a's handover transactions %+v, want one [unlock %s, lock %s] answered 200", handovers, before.Session, want.Session)
			}
			if len(acquires) != 0 {
				t.Errorf("acquires reached Consul during a handover: %+v; the successor should lead on the handover alone", acquires)
			}
			if n := tr.taps["a"].releasedSince(sent); n != 0 {
				t.Errorf("a sent %d releases as well as its handover", n)
			}
			if after.Session != want.Session || after.LockIndex != before.LockIndex+1 {
				t.Errorf("after the handover the key is held by %s with LockIndex %d, want %s's session %s with LockIndex %d (one lock)",
					after.Session, after.LockIndex, want.ID, want.Session, before.LockIndex+1)
			}
			if bound := faultLockDelay / 2; gap > bound {
				t.Errorf("%s elected %v after a's child died, want well under the lock-delay %v (at most %v)", next.elected.Candidate, gap, faultLockDelay, bound)
			}
			tr.stopAll(next.elected.Candidate)
			tr.verify(history.Options{})
		})
	}
}

// destroySession destroys session sid on the agent at addr, as an
// operator's `consul session destroy` does. Safe off the test goroutine.
func destroySession(addr, sid string) error {
	req, err := http.NewRequest(http.MethodPut, "http://"+addr+"/v1/session/destroy/"+sid, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PUT /v1/session/destroy/%s: %s", sid, resp.Status)
	}
	return nil
}

// TestFaultHandoverToStoppingSuccessor: the leader and its best successor
// are stopped together, as a rolling deploy two at a time or a job stop
// does: the successor's SIGTERM comes as the handover goes to Consul. Both
// stop gracefully, so the key must not end up in a lock-delay: the
// successor, handed the key while it shuts down, has to pass it on or
// release it, not let its session's destroy invalidate it. A third
// candidate leads well within the lock-delay, never two at once.
func TestFaultHandoverToStoppingSuccessor(t *testing.T) {
	t.Parallel()
	tr := newHandoverRig(t, "stopping", nil, nil, "a", "b", "c", "d")
	succ := successorOf(tr.registered(4, 10*time.Second))
	victim := tr.procs[succ.ID]
	var once sync.Once
	stopped := make(chan time.Time, 1)
	tr.taps["a"].onTxn(func(ops []tapOp) {
		if (tapTxn{Ops: ops}).handover(tr.key) {
			once.Do(func() {
				at := tr.note(history.Fault, victim.name, "SIGTERM as a's handover to it is sent")
				syscall.Kill(victim.pid, syscall.SIGTERM)
				stopped <- at
			})
		}
	})
	mark := tr.mark()
	tr.note(history.Fault, "a", "SIGTERM")
	tr.procs["a"].signal(syscall.SIGTERM)
	for _, p := range []*faultProc{tr.procs["a"], victim} {
		if code := p.exit(10 * time.Second); code != 0 {
			t.Errorf("leaderd %s exited %d after SIGTERM, want 0", p.name, code)
		}
	}
	var at time.Time
	select {
	case at = <-stopped:
	default:
		t.Fatalf("a sent no handover transaction; the history:\n%s", tr.h.Timeline())
	}
	next := tr.wait(faultLockDelay+3*faultSlack, mark, "a leader other than a and "+succ.ID, func(e history.Event) bool {
		return e.Kind == history.Elected && e.Candidate != "a" && e.Candidate != succ.ID
	})
	handovers := tr.taps["a"].seen(at.Add(-time.Second), func(x tapTxn) bool { return x.handover(tr.key) })
	var sHand []tapTxn
	if tap := tr.taps[succ.ID]; tap != nil {
		sHand = tap.seen(at, func(x tapTxn) bool { return x.handover(tr.key) })
	}
	took := next.At.Sub(at)
	t.Logf("%s SIGTERMed as a's handover to it was sent (answered %+v); %s's own handovers %d, releases %d; %s elected %s later",
		succ.ID, handovers, succ.ID, len(sHand), tr.taps[succ.ID].releasedSince(at), next.Candidate, faultMS(took))
	if bound := faultLockDelay / 2; took > bound {
		t.Errorf("%s elected %v after the successor's SIGTERM, want well under the lock-delay %v (at most %v): the key sat in a lock-delay though everyone stopped gracefully",
			next.Candidate, took, faultLockDelay, bound)
	}
	tr.stopAll(next.Candidate)
	tr.verify(history.Options{})
}

// TestFaultTransferRequest: a transfer request (elect.RequestTransfer,
// what `leaderd transfer` will write) names a candidate that is not the
// best. The leader stops its child, hands the key to that one in one
// transaction and follows; nobody races for the key. A request naming no
// live candidate changes nothing. The leader deletes each request it acted
// on.
func TestFaultTransferRequest(t *testing.T) {
	t.Parallel()
	tr := newHandoverRig(t, "transfer", nil, nil, "a", "b", "c", "d")
	es := tr.registered(4, 10*time.Second)
	var c elect.CandidateEntry
	for _, e := range es {
		if e.ID == "c" {
			c = e
		}
	}
	if successorOf(es).ID == "c" {
		t.Fatalf("c is the best successor already: %+v", es)
	}
	before := tr.keyNow()

	mark := tr.mark()
	sent := tr.note(history.Note, "", "transfer request to c")
	if _, err := elect.RequestTransfer(context.Background(), tr.client, tr.key, "c"); err != nil {
		t.Fatal(err)
	}
	next := tr.leading(10*time.Second, mark, tr.procs["c"])
	tr.following(10*time.Second, mark, tr.procs["a"], "c")
	tr.requestGone(10 * time.Second)
	handovers := tr.taps["a"].seen(sent, func(x tapTxn) bool { return x.handover(tr.key) })
	acquires := tr.acquiresSince(sent)
	after := tr.keyNow()
	t.Logf("transfer to c: elected %s after the request; a's handovers %+v; acquires %v; LockIndex %d → %d",
		faultMS(next.elected.At.Sub(sent)), handovers, acquires, before.LockIndex, after.LockIndex)
	if len(handovers) != 1 || handovers[0].Ops[1].Session != c.Session || handovers[0].Code != http.StatusOK {
		t.Errorf("a's handovers %+v, want one to c's session %s", handovers, c.Session)
	}
	if len(acquires) != 0 {
		t.Errorf("acquires during a transfer: %v", acquires)
	}
	if after.Session != c.Session || after.LockIndex != before.LockIndex+1 {
		t.Errorf("after the transfer the key is held by %s with LockIndex %d, want c's session %s with LockIndex %d",
			after.Session, after.LockIndex, c.Session, before.LockIndex+1)
	}

	// A request for nobody: c stays leader.
	noted := tr.note(history.Note, "", "transfer request to zz (no such candidate)")
	if _, err := elect.RequestTransfer(context.Background(), tr.client, tr.key, "zz"); err != nil {
		t.Fatal(err)
	}
	tr.requestGone(10 * time.Second)
	if evs := tr.events(history.SteppedDown, "", noted, time.Time{}); len(evs) > 0 {
		t.Errorf("a transfer request for no live candidate ended a term: %v", evs)
	}
	if k := tr.keyNow(); k.Session != c.Session {
		t.Errorf("after a transfer request for nobody the key is held by %s, want c's %s", k.Session, c.Session)
	}
	tr.stopAll("c")
	tr.verify(history.Options{})
}

// requestGone waits until the leader has deleted the transfer request.
func (tr *handoverRig) requestGone(timeout time.Duration) {
	tr.t.Helper()
	pollUntil(tr.t, timeout, "the transfer request deleted", func() bool {
		p, _, err := tr.client.GetKV(context.Background(), elect.TransferKey(tr.key), consulhttp.QueryOptions{})
		return err == nil && p == nil
	})
}
