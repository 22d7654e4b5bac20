package integration

import (
	"fmt"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leaderd/leaderd/integration/history"
)

// Handovers that meet a fault: the successor vanishes or crashes while
// the key moves to it, and the rank-ordered takeover after a real crash.

// TestFaultHandoverSuccessorVanishes: the successor's session is destroyed
// during the leader's handover.
//
// Before the transaction reaches Consul: it fails as a whole (the key
// stays the leader's), the leader hands over to the next live candidate
// from a fresh read or falls back to a plain release, and exactly one
// other candidate leads at once, never two at a time.
//
// Right after Consul committed it (before the leader hears back): the key
// is held by a destroyed session, so Consul keeps it for that session's
// lock-delay. The successor may lead briefly on its last proof (it can't
// know yet), and must be dead before anyone else leads; nobody else may
// lead before the lock-delay is over.
func TestFaultHandoverSuccessorVanishes(t *testing.T) {
	t.Parallel()
	t.Run("before the handover commits", func(t *testing.T) {
		t.Parallel()
		tr := newHandoverRig(t, "vanish-before", nil, nil, "a", "b", "c", "d")
		want := successorOf(tr.registered(4, 10*time.Second))
		before := tr.keyNow()
		var once sync.Once
		destroyed := make(chan string, 1)
		tr.taps["a"].onTxn(func(ops []tapOp) {
			if !(tapTxn{Ops: ops}).handover(tr.key) {
				return
			}
			once.Do(func() {
				sid := ops[1].Session
				tr.note(history.Fault, "", "handover to session %s on its way: destroying that session", sid)
				if err := destroySession(tr.agent.Addr, sid); err != nil {
					t.Errorf("destroy session %s: %v", sid, err)
				}
				destroyed <- sid
			})
		})

		mark := tr.mark()
		sent := tr.note(history.Fault, "a", "SIGTERM")
		tr.procs["a"].signal(syscall.SIGTERM)
		next := tr.leading(10*time.Second, mark, nil)
		if code := tr.procs["a"].exit(10 * time.Second); code != 0 {
			t.Errorf("leaderd a exited %d after SIGTERM, want 0", code)
		}
		var sid string
		select {
		case sid = <-destroyed:
		default:
			t.Fatalf("a sent no handover transaction; the history:\n%s", tr.h.Timeline())
		}
		handovers := tr.taps["a"].seen(sent, func(x tapTxn) bool { return x.handover(tr.key) })
		acquires := tr.acquiresSince(sent)
		dead := tr.wait(5*time.Second, mark, "a's child reaped", evIs(history.ChildReaped, "a"))
		after := tr.keyNow()
		t.Logf("a handed over to %s (session %s, destroyed on the way): answers %+v; then %d release(s); %s elected %s after a's child died; acquires %v; LockIndex %d → %d",
			want.ID, sid, handovers, tr.taps["a"].releasedSince(sent), next.elected.Candidate, faultMS(next.elected.At.Sub(dead.At)), acquires, before.LockIndex, after.LockIndex)

		if sid != want.Session {
			t.Errorf("a handed over to session %s, want %s's %s (the best live candidate)", sid, want.ID, want.Session)
		}
		// The first handover is rolled back. Then either a second one,
		// from a fresh read of the registry (the first used the leader's
		// watch), moves the key to another live candidate, or a plain
		// release lets exactly one acquire win.
		if len(handovers) == 0 || handovers[0].Code == http.StatusOK {
			t.Fatalf("a's handover transactions %+v, want the first rolled back", handovers)
		}
		won := 0
		for _, xs := range acquires {
			for _, x := range xs {
				if x.Code == http.StatusOK {
					won++
				}
			}
		}
		releases := tr.taps["a"].releasedSince(sent)
		switch {
		case len(handovers) == 2 && handovers[1].Code == http.StatusOK:
			if handovers[1].Ops[1].Session == sid || releases != 0 || won != 0 {
				t.Errorf("a's second handover %+v, %d releases, %d acquires won; want it to another live session, nothing else", handovers[1], releases, won)
			}
		case len(handovers) == 1:
			if releases != 1 || won != 1 {
				t.Errorf("a sent %d releases after its handover failed and %d acquires won, want 1 and 1", releases, won)
			}
		default:
			t.Errorf("a's handover transactions %+v, want a rolled back one, then at most one that moved the key", handovers)
		}
		if next.elected.Candidate == "a" {
			t.Errorf("a leads again after its SIGTERM")
		}
		if after.LockIndex != before.LockIndex+1 {
			t.Errorf("LockIndex %d → %d, want exactly one new holder", before.LockIndex, after.LockIndex)
		}
		tr.stopAll(next.elected.Candidate)
		tr.verify(history.Options{})
	})

	t.Run("right after the handover commits", func(t *testing.T) {
		t.Parallel()
		tr := newHandoverRig(t, "vanish-after", nil, nil, "a", "b", "c", "d")
		want := successorOf(tr.registered(4, 10*time.Second))
		var once sync.Once
		type destroy struct {
			at       time.Time
			handover tapTxn
		}
		destroyed := make(chan destroy, 1)
		tr.taps["a"].afterTxn(func(x tapTxn) {
			if !x.handover(tr.key) || x.Code != http.StatusOK {
				return
			}
			once.Do(func() {
				sid := x.Ops[1].Session
				at := tr.note(history.Fault, "", "handover to session %s committed (index %d): destroying that session", sid, x.Index)
				if err := destroySession(tr.agent.Addr, sid); err != nil {
					t.Errorf("destroy session %s: %v", sid, err)
				}
				destroyed <- destroy{at, x}
			})
		})

		mark := tr.mark()
		sent := tr.note(history.Fault, "a", "SIGTERM")
		tr.procs["a"].signal(syscall.SIGTERM)
		if code := tr.procs["a"].exit(10 * time.Second); code != 0 {
			t.Errorf("leaderd a exited %d after SIGTERM, want 0", code)
		}
		var d destroy
		select {
		case d = <-destroyed:
		default:
			t.Fatalf("a's handover did not commit; the history:\n%s", tr.h.Timeline())
		}
		// A term after the handover's: Consul lets nobody in before the
		// destroyed session's lock-delay is over.
		bound := faultLockDelay + 2*faultSlack
		next := tr.wait(bound+faultSlack, mark, "a term after the destroyed successor's", func(e history.Event) bool {
			return e.Kind == history.Elected && e.Token > d.handover.Index
		})
		child := tr.wait(10*time.Second, mark, "the child of "+next.Candidate, func(e history.Event) bool {
			return e.Kind == history.ChildStart && e.Candidate == next.Candidate && e.Token == next.Token
		})
		handed := "did not lead on the handover"
		if evs := tr.events(history.Elected, want.ID, sent, time.Time{}); len(evs) > 0 && evs[0].Token == d.handover.Index {
			handed = fmt.Sprintf("led on the handover from %s after the destroy", faultMS(evs[0].At.Sub(d.at)))
		}
		took := next.At.Sub(d.at)
		t.Logf("a handed over to %s (index %d); its session destroyed right after: %s %s; %s elected %s after the destroy (lock-delay %v), its child started %s after it",
			want.ID, d.handover.Index, want.ID, handed, next.Candidate, faultMS(took), faultLockDelay, faultMS(child.At.Sub(d.at)))
		if d.handover.Ops[1].Session != want.Session {
			t.Errorf("a handed over to session %s, want %s's %s (the best live candidate)", d.handover.Ops[1].Session, want.ID, want.Session)
		}
		if n := tr.taps["a"].releasedSince(sent); n != 0 {
			t.Errorf("a sent %d releases after its handover succeeded, want none", n)
		}
		if next.Candidate == "a" {
			t.Errorf("a leads again after its SIGTERM")
		}
		if took < faultLockDelay {
			t.Errorf("%s elected %v after the successor's session was destroyed, inside its lock-delay %v", next.Candidate, took, faultLockDelay)
		}
		if took > bound {
			t.Errorf("%s elected %v after the successor's session was destroyed, want within %v", next.Candidate, took, bound)
		}
		tr.stopAll(next.Candidate)
		tr.verify(history.Options{Settle: []history.Settle{{What: "after the destroy", After: d.at, Within: bound}}})
	})
}

// TestFaultHandoverRacingCrash: the leader is SIGTERMed and its best
// successor SIGKILLed together: at the signal, or just as the handover
// transaction goes to Consul. The key may go to the dead successor's
// session, which Consul expires TTL..2×TTL after its last renew, then
// keeps the key for the lock-delay; or, if the session is gone first, the
// handover fails and the leader releases. Either way: never two leaders,
// and a leader again within the crash bound.
func TestFaultHandoverRacingCrash(t *testing.T) {
	t.Parallel()
	for _, atTxn := range []bool{false, true} {
		name := map[bool]string{false: "kill with the SIGTERM", true: "kill as the handover is sent"}[atTxn]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tr := newHandoverRig(t, "race", nil, nil, "a", "b", "c", "d")
			succ := successorOf(tr.registered(4, 10*time.Second))
			victim := tr.procs[succ.ID]
			kill := func() time.Time {
				at := tr.note(history.Fault, victim.name, "SIGKILL")
				syscall.Kill(victim.pid, syscall.SIGKILL)
				return at
			}
			killed := make(chan time.Time, 1)
			if atTxn {
				var once sync.Once
				tr.taps["a"].onTxn(func(ops []tapOp) {
					if (tapTxn{Ops: ops}).handover(tr.key) {
						once.Do(func() { killed <- kill() })
					}
				})
			}
			mark := tr.mark()
			tr.note(history.Fault, "a", "SIGTERM")
			tr.procs["a"].signal(syscall.SIGTERM)
			if !atTxn {
				killed <- kill()
			}
			if code := tr.procs["a"].exit(10 * time.Second); code != 0 {
				t.Errorf("leaderd a exited %d after SIGTERM, want 0", code)
			}
			var at time.Time
			select {
			case at = <-killed:
			default:
				t.Fatalf("a sent no handover transaction; the history:\n%s", tr.h.Timeline())
			}
			victim.exit(5 * time.Second)
			// The crash bound of TestFaultKillLeader, from the kill, plus a
			// second for a's child to stop (killed at -kill-timeout).
			bound := 2*faultTTL + faultLockDelay + faultSlack + time.Second
			next := tr.leading(bound+faultSlack, mark, nil)
			handovers := tr.taps["a"].seen(at.Add(-5*time.Second), func(x tapTxn) bool { return x.handover(tr.key) })
			t.Logf("%s killed (%s); a's handover to it answered %+v; %s elected %s after the kill",
				succ.ID, name, handovers, next.elected.Candidate, faultMS(next.elected.At.Sub(at)))
			if next.elected.Candidate == "a" || next.elected.Candidate == succ.ID {
				t.Errorf("%s leads: a was stopped and %s killed", next.elected.Candidate, succ.ID)
			}
			if d := next.elected.At.Sub(at); d > bound {
				t.Errorf("a leader again %v after the kill, more than the bound %v", d, bound)
			}
			gone := tr.events(history.ProcGone, victim.name, at, time.Time{})[0].At
			tr.stopAll(next.elected.Candidate)
			tr.verify(history.Options{Settle: []history.Settle{{What: "after the handover and the kill", After: gone, Within: bound}}})
		})
	}
}

// TestFaultKillLeaderRankedProcesses: the rank-ordered takeover of
// TestFaultRankedFailoverHundred with real leaderd processes and a real
// crash: twelve candidates, the leader SIGKILLed. Once Consul expires its
// session and the lock-delay is over, the longest-waiting candidate leads,
// and the crowd sends a handful of acquires, counted at the taps.
func TestFaultKillLeaderRankedProcesses(t *testing.T) {
	t.Parallel()
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"}
	tr := newHandoverRig(t, "ranked-kill", nil, nil, names...)
	es := tr.registered(len(names), 10*time.Second)
	want := successorOf(es)
	before := tr.keyNow()

	mark := tr.mark()
	killed := tr.procs["a"].kill()
	bound := 2*faultTTL + faultLockDelay + faultSlack
	next := tr.leading(bound+faultSlack, mark, nil)
	for _, name := range names[1:] {
		if name != next.elected.Candidate {
			tr.following(10*time.Second, mark, tr.procs[name], next.elected.Candidate)
		}
	}
	acquires := tr.acquiresSince(killed)
	n, won := 0, 0
	for _, xs := range acquires {
		for _, x := range xs {
			n++
			if x.Code == http.StatusOK {
				won++
			}
		}
	}
	after := tr.keyNow()
	t.Logf("SIGKILL of a: %s elected %s later (allowed %s..%s); %d acquires reached Consul, %d won: %v; LockIndex %d → %d",
		next.elected.Candidate, faultMS(next.elected.At.Sub(killed)), faultMS(faultTTL-faultRenew+faultLockDelay), faultMS(bound), n, won, acquires, before.LockIndex, after.LockIndex)
	if next.elected.Candidate != want.ID {
		t.Errorf("%s leads after the crash, want %s (ranked first: the longest waiting)", next.elected.Candidate, want.ID)
	}
	if d := next.elected.At.Sub(killed); d > bound {
		t.Errorf("failover took %v, more than the bound %v", d, bound)
	}
	if n > 5 || won != 1 {
		t.Errorf("%d acquires by %d candidates reached Consul after the crash (%d won), want a handful and one winner", n, len(names)-1, won)
	}
	gone := tr.events(history.ProcGone, "a", killed, time.Time{})[0].At
	tr.stopAll(next.elected.Candidate)
	tr.verify(history.Options{Settle: []history.Settle{{What: "after SIGKILL of a", After: gone, Within: bound}}})
}
