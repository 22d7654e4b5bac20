package integration

import (
	"testing"
	"time"

	"github.com/leaderd/leaderd/integration/history"
)

// TestFaultKillLeader: the leader is SIGKILLed. Its child dies with it
// (the keeper kills it when leaderd's pipe ends), and a follower takes over
// within the bound of the configuration: Consul's TTL timer (TTL..2×TTL
// after the last renew) with TTL-only sessions, check TTL with fast crash
// detection; then, either way, the lock-delay: an invalidation keeps the
// key from everyone that long, so no follower may lead before it is over.
func TestFaultKillLeader(t *testing.T) {
	t.Parallel()
	// The fast settings: a check passed every 333ms, lock-delay 2s.
	const checkTTL, fastLockDelay = time.Second, 2 * time.Second
	tests := []struct {
		name  string
		flags []string
		// earliest and bound: when a follower may and must lead, after the
		// kill.
		earliest, bound time.Duration
	}{
		{
			name: "ttl",
			// Consul expires the session between TTL and 2×TTL after the
			// last renew, which was at most a renew interval before the
			// kill; then the lock-delay runs.
			earliest: faultTTL - faultRenew + faultLockDelay,
			bound:    2*faultTTL + faultLockDelay + faultSlack,
		},
		{
			name:  "check-ttl",
			flags: []string{"-ttl", "10s", "-check-ttl", checkTTL.String(), "-lock-delay", fastLockDelay.String()},
			// The check goes critical check-ttl after its last pass (at most
			// check-ttl/3 before the kill), then the lock-delay runs. The
			// session TTL (2×10s) plays no part.
			earliest: checkTTL - checkTTL/3 + fastLockDelay,
			bound:    checkTTL + fastLockDelay + faultSlack,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			agent := faultAgent(t)
			r := newFaultRig(t, "kill")
			a := r.start("a", agent.Addr, tc.flags)
			first := r.leading(20*time.Second, 0, a)
			var followers []*faultProc
			for _, id := range []string{"b", "c"} {
				p := r.start(id, agent.Addr, tc.flags)
				r.following(20*time.Second, 0, p, "a")
				followers = append(followers, p)
			}

			mark := r.mark()
			killed := a.kill()
			gone := r.wait(2*time.Second, mark, "a's child gone (the keeper)", func(e history.Event) bool {
				return e.Kind == history.ChildGone && e.PID == first.child.PID
			})
			next := r.leading(tc.bound+faultSlack, mark, nil)
			failover := next.child.At.Sub(killed)
			t.Logf("SIGKILL of a: its child seen gone after %s; %s elected %s and its child started %s after the kill (allowed %s..%s)",
				faultMS(gone.At.Sub(killed)), next.child.Candidate, faultMS(next.elected.At.Sub(killed)), faultMS(failover), faultMS(tc.earliest), faultMS(tc.bound))
			if failover > tc.bound {
				t.Errorf("failover took %v, more than the bound %v", failover, tc.bound)
			}
			if next.elected.At.Sub(killed) < tc.earliest {
				t.Errorf("failover took %v, less than Consul's earliest %v: was the session released?", failover, tc.earliest)
			}
			procGone := r.events(history.ProcGone, "a", killed, time.Time{})[0].At
			r.verify(history.Options{Settle: []history.Settle{{What: "after SIGKILL of a", After: procGone, Within: tc.bound}}})
			for _, p := range followers {
				p.stop()
			}
		})
	}
}

// TestFaultFreezeLeader: the leader and its child are SIGSTOPped for longer
// than the lease (until the follower leads), then resumed. The follower
// leads only after the frozen leader's lease (from its last proof, in its
// debug log) is over; the resumed leader steps down at once without acting
// as leader and follows. Its child must be dead before the follower's
// starts: the keeper kills it, frozen or not, at the lease end.
func TestFaultFreezeLeader(t *testing.T) {
	t.Parallel()
	for _, whole := range []bool{false, true} {
		name := map[bool]string{false: "leaderd resumed first", true: "all resumed"}[whole]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			agent := faultAgent(t)
			r := newFaultRig(t, "freeze")
			debug := []string{"-log-level", "debug"}
			a := r.start("a", agent.Addr, debug)
			r.leading(20*time.Second, 0, a)
			b := r.start("b", agent.Addr, debug)
			r.following(20*time.Second, 0, b, "a")

			mark := r.mark()
			apid, cpid := r.freeze(a)
			frozenAt := r.events(history.Frozen, "a", time.Time{}, time.Time{})[0].At
			// The fault is the freeze; it lasts until the follower leads.
			// Consul expires a's session 2×TTL after its last renew at
			// most, then keeps the key for the lock-delay.
			bElected := r.leading(2*faultTTL+faultLockDelay+faultSlack, mark, b).elected

			lastProof := r.lastProof(a, frozenAt)
			leaseEnd := lastProof.Add(faultLease)
			// The earliest Consul may let b in: the session expires TTL
			// after the last renew at the earliest, then the lock-delay.
			earliest := lastProof.Add(faultTTL + faultLockDelay)
			t.Logf("a frozen %s after its last proof; its lease ended %s after the freeze; b elected %s after a's lease end, %s after a's last proof + TTL + lock-delay",
				faultMS(frozenAt.Sub(lastProof)), faultMS(leaseEnd.Sub(frozenAt)), faultMS(bElected.At.Sub(leaseEnd)), faultMS(bElected.At.Sub(earliest)))
			if !bElected.At.After(earliest) {
				t.Errorf("b elected at %v, before a's last proof %v + TTL + lock-delay: Consul let it in early", bElected.At, lastProof)
			}
			if !bElected.At.After(leaseEnd) {
				t.Errorf("b elected at %v, before a's lease ended at %v", bElected.At, leaseEnd)
			}

			mark = r.mark()
			var resumedAt time.Time
			if whole {
				resumedAt = r.resume(a, cpid, apid) // the child first: the worst case
			} else {
				resumedAt = r.resume(a, apid)
			}
			down := r.wait(5*time.Second, mark, "a stepping down after the resume", evIs(history.SteppedDown, "a"))
			reaped := r.wait(5*time.Second, mark, "a's child reaped", evIs(history.ChildReaped, "a"))
			r.following(20*time.Second, mark, a, "b")
			t.Logf("resumed a stepped down (%s) %s after SIGCONT; its child was reaped %s after SIGCONT (%s)",
				down.Note, faultMS(down.At.Sub(resumedAt)), faultMS(reaped.At.Sub(resumedAt)), reaped.Note)
			if d := down.At.Sub(resumedAt); d > time.Second {
				t.Errorf("a stepped down %v after its resume, want at once", d)
			}
			for _, k := range []history.Kind{history.Elected, history.ChildSpawned, history.ChildStart} {
				if evs := r.events(k, "a", resumedAt, down.At); len(evs) > 0 {
					t.Errorf("a acted as leader after its resume, before stepping down: %v", evs)
				}
			}
			if !whole {
				// Never resumed: the child must not have written anything.
				if evs := r.events(history.ChildStop, "a", frozenAt, time.Time{}); len(evs) > 0 {
					t.Errorf("a's frozen child acted after the freeze: %v", evs)
				}
			}
			// Strict: no stale tail allowed. a's claim ends at its lease end
			// (it reads its clock on waking); its child must be dead by then.
			rep := r.verify(history.Options{Lease: faultLease})
			for _, n := range rep.Notices {
				t.Logf("checker: %s", n)
			}
			b.stop()
			a.stop()
		})
	}
}
