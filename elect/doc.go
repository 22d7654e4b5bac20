// Package elect elects one leader among the instances of a service through
// Consul sessions and a KV key, and keeps that leader safe: it stops acting as
// leader before Consul could let anyone else take over, even when Consul can't
// be reached.
//
// # How it works
//
// Each candidate keeps a Consul session alive (TTL, renewed every
// RenewInterval) and tries to acquire the key with it, writing its Candidate
// record as the value. The winner leads; everyone watches the key with
// blocking queries and tries again as soon as the key is free. A graceful
// leader releases the key (no lock-delay) so a follower takes over in one
// round trip.
//
// # The safety rule
//
// Let t be the local monotonic time at which a request was sent whose
// success proved our session alive: the session create, a renew answered
// 200, or (fast crash detection) a pass of the session's TTL check. Consul
// can't let another session acquire the key before t + TTL + LockDelay (it
// actually waits 2×TTL; TTL is the documented lower bound), or with a bound
// check before t + CheckTTL + LockDelay. The leader's lease ends Margin
// before the earliest of these. When it passes without a fresh proof, the
// leader steps down locally (OnStepDown, then a stepped_down event with
// reason lease_expired), whether or not Consul can be told, and starts over
// with a new session. The clock is checked on every wake-up, so a process
// that was paused never acts as leader past its lease.
//
// A read showing that we still hold the key does not extend the lease: a
// read does not reset the session's TTL timer.
//
// # Fencing
//
// Every term has a token, the key's ModifyIndex read back (consistently)
// right after a successful acquire. It is a Raft index, so it strictly
// increases from term to term across all candidates, as long as the Consul
// cluster keeps its state. Pass it to the systems the leader writes to and
// have them reject tokens lower than the highest they have seen: that stops
// a leader that was paused past its lease from doing harm.
//
// # Example
//
//	c, _ := consulhttp.NewClient(consulhttp.Config{})
//	e, err := elect.New(c, elect.Config{
//		Key:        elect.KeyFor("billing"),
//		Candidate:  elect.Candidate{ID: "billing-1"},
//		OnElected:  func(t elect.Term) { startWork(t.Token) },
//		OnStepDown: func(t elect.Term, r elect.Reason) { stopWork() },
//	})
//	if err != nil {
//		return err
//	}
//	return e.Run(ctx) // releases the key and destroys the session on cancel
package elect
