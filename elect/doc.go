// Package elect elects one leader among the instances of a service through
// Consul sessions and a KV key, and keeps that leader safe: it stops acting as
// leader before Consul could let anyone else take over, even when Consul can't
// be reached.
//
// # How it works
//
// Each candidate keeps a Consul session alive (TTL, renewed every
// RenewInterval), registers itself under CandidatesPrefix(key) (an entry
// locked with its session: released when it dies), and tries to acquire
// the key with a one-op transaction, writing its Candidate record as the
// value. The winner leads; everyone watches the key with blocking queries.
//
// A leader that lets go gracefully (Resign, shutdown, TransferTo, a
// transfer request written by RequestTransfer, a candidate of higher
// Priority live for PriorityHold) first stops its work, then moves the key
// to the best live candidate (highest Priority, then longest waiting) in
// one transaction [unlock ours, lock theirs]: no race, no herd, no
// lock-delay. If that transaction fails (the successor vanished) it
// releases the key instead. A key that becomes free is tried in rank order:
// the best candidate at once, each next one RankStep later unless it sees
// the key taken, so a crowd costs a few acquires, not one each.
//
// # The safety rule
//
// Consul can invalidate a session at any moment, not only at TTL expiry: an
// operator's destroy, the deregistration of its node (the node's agent
// leaving the cluster, as client agents do on SIGTERM, or force-leave), a
// bound check going critical. After an invalidation only the session's
// lock-delay keeps others from the key, and the leader may not hear of it.
//
// So let t_v be the local monotonic time at which a request was sent whose
// success proved our session valid: the session create, a renew answered
// 200, or the acquire that won the key. The earliest invalidation is just
// after t_v, so nobody else can hold the key before t_v + LockDelay. The
// leader's lease ends Margin earlier:
//
//	lease_end = t_v + LockDelay − Margin
//
// LockDelay is the lease; TTL only decides how fast a crashed leader is
// replaced; the renew interval keeps t_v fresh (New refuses a LockDelay −
// Margin shorter than two renew intervals). A pass of the fast crash
// detection check proves the check, not the session, and a read that shows
// we still hold the key proves nothing either: neither extends the lease.
// When the lease passes without a fresh proof, the leader steps down
// locally (OnStepDown, then a stepped_down event with reason
// lease_expired), whether or not Consul can be told, and starts over with a
// new session. The clock is checked on every wake-up, so a process that was
// paused never acts as leader past its lease; OnLease reports each new
// lease end so a supervisor outside this loop can enforce it too.
//
// Step-down order, always: stop claiming (State), OnStepDown (the work
// stops), hand over or release the key, and only then may the session be
// destroyed.
//
// A successor leads with its own session's latest proof as t_v, even one
// sent before the handover: the session was valid then, and if Consul ever
// invalidates it, it does so after it locked the key (else the handover's
// transaction would have failed), so nobody else takes the key before
// t_v + LockDelay. When that proof leaves less than a renew interval, the
// successor renews at once and leads from the renew.
//
// A missing key is no proof that nobody leads (Consul may have lost its
// state while a leader's lease runs): it is taken only LockDelay + Margin
// after the receipt of the first answer that showed it missing, counting
// afresh after any watch error or index going backwards.
//
// # Fencing
//
// Every term has a token, the key's ModifyIndex as written by the
// transaction that gave it the key (its own acquire, or the handover that
// moved it). It is a Raft index, so it strictly
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

// Where things are:
//   - types.go, config.go: the API's types, Config, defaults, validation.
//   - session.go: Session (holds, Run, retire); session_renew.go its
//     Consul side (create, renew, check, destroy).
//   - election.go, slots.go: the two campaigns' API; campaign.go what they
//     share (events, State, resign, running beside the session).
//   - campaign_loop.go: the Run loop both campaigns run on (the select,
//     session changes, resign, the one shutdown path, State published
//     once a turn); term.go a term's lease, start and end; watch.go the
//     blocking read and its index rules (Observe's too) and the timing of
//     something missing.
//   - loop.go, keyview.go, acquire.go: an Election's loop (the key as last
//     seen, acquire, confirm, step down, release).
//   - registry.go: the candidate registry's layout, ranking, Candidates
//     and RequestTransfer; registry_loop.go the loop's side of it
//     (register, rank, hand over, take a key handed over), registry_lead.go
//     the leader's (its watch: transfer requests, priorities, pruning).
//   - slots_loop.go, slots_join.go: Slots' loop (the prefix as last seen,
//     contend, join, leave).
//   - observe.go (CurrentLeader, Observe), events.go (the event queue),
//     backoff.go (retry pacing).
