package elect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// loop is the state of one Election's Run. Only its goroutine touches it.
type loop struct {
	e       *Election
	ctx     context.Context
	sessErr <-chan error

	sess     sessionState
	sessWake <-chan struct{}
	sessGone bool  // the session's Run returned (its error was taken from sessErr)
	fatal    error // a Consul answer retrying can't fix (ACL denied): Run returns it

	leading  bool
	term     Term
	proof    time.Time // t_v: send time of the latest proof that term.Session is valid
	leaseEnd time.Time // proof + LockDelay − Margin
	terms    int

	// watch: one blocking GET in flight at a time.
	index        uint64
	watchCh      chan watchResult
	watchCancel  context.CancelFunc
	watchRetryAt time.Time
	watchFails   int

	last         *consulhttp.KVPair // key as last seen (nil: missing)
	seen         bool               // the key has been read at least once
	leader       *Leader            // leader as last reported
	freeSince    time.Time          // when we first saw the key free
	missingSince time.Time          // receipt of the first answer, in an unbroken run of answers, that showed the key missing
	acquireAt    time.Time          // earliest next acquire attempt (lock-delay, backoff)
	acquireFails int
	holdOffUntil time.Time
	abandoned    string // a session given up after a lease expiry or invalidation: never acquire with it again
}

type watchResult struct {
	pair *consulhttp.KVPair
	meta consulhttp.QueryMeta
	err  error
	sent time.Time
	recv time.Time
	idx  uint64
}

// loopTurnHook, when set by a test, is called on every turn of the loop.
var loopTurnHook func()

func (l *loop) run() error {
	l.sess, l.sessWake = l.e.sess.snapshot()
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	defer l.stopWatch()
	for {
		if loopTurnHook != nil {
			loopTurnHook()
		}
		if l.fatal != nil {
			if l.leading {
				l.stepDown(ReasonShutdown)
			}
			return l.fatal
		}
		if l.ctx.Err() != nil {
			// Checked first: a request that fails because ctx is done
			// must not send the loop round again.
			if l.leading {
				l.stepDown(ReasonShutdown)
			}
			return nil
		}
		now := time.Now()
		// Every wake-up starts with the clock: a process that was paused
		// must not act as leader past its lease.
		if l.leading && !now.Before(l.leaseEnd) {
			l.stepDown(ReasonLeaseExpired)
			continue
		}
		if !l.leading && l.wantAcquire() && !now.Before(l.acquireAt) {
			l.tryAcquire()
			continue
		}
		if l.watchCh == nil && !now.Before(l.watchRetryAt) {
			l.startWatch()
		}
		wake.Reset(l.nextWake(now))
		select {
		case <-l.ctx.Done():
			if l.leading {
				l.stepDown(ReasonShutdown)
			}
			return nil
		case err := <-l.sessErr:
			// Our own session gave up (ACL denied, bad TTL): nothing to retry.
			l.sessGone = true
			if l.leading {
				l.stepDown(ReasonSessionInvalidated)
			}
			return err
		case <-l.sessWake:
			l.checkLease()
			l.onSession()
		case r := <-l.watchCh:
			l.watchCh, l.watchCancel = nil, nil
			l.checkLease()
			l.onWatch(r)
		case req := <-l.e.resign:
			l.checkLease()
			if !l.leading || req.token != 0 && req.token != l.term.Token {
				req.reply <- ErrNotLeader
				continue
			}
			l.stepDown(ReasonReleased)
			l.holdOffUntil = time.Now().Add(l.e.cfg.ResignHoldOff)
			req.reply <- nil
		case <-wake.C:
		}
	}
}

// checkLease steps down if the lease has passed: whatever woke the loop
// (a process paused past its lease wakes to a backlog), the clock comes
// first, so a late proof can't revive an expired term.
func (l *loop) checkLease() {
	if l.leading && !time.Now().Before(l.leaseEnd) {
		l.stepDown(ReasonLeaseExpired)
	}
}

// nextWake is when the loop must look at the clock again. Only deadlines
// still ahead count: one that has passed was acted on this turn or is
// waiting for something else (a session, the hold-off), and waking for it
// again at once would spin.
func (l *loop) nextWake(now time.Time) time.Duration {
	next := now.Add(time.Hour)
	earliest := func(t time.Time) {
		if t.After(now) && t.Before(next) {
			next = t
		}
	}
	if l.leading {
		earliest(l.leaseEnd)
	}
	if l.watchCh == nil {
		earliest(l.watchRetryAt)
	}
	if !l.leading && l.wantAcquire() {
		earliest(l.acquireAt)
	}
	if !l.leading && l.seen && l.last == nil {
		earliest(l.missingUntil())
	}
	if !l.leading {
		earliest(l.holdOffUntil)
	}
	return next.Sub(now)
}

func (l *loop) onSession() {
	old := l.sess
	l.sess, l.sessWake = l.e.sess.snapshot()
	l.e.setState(func(s *State) {
		s.Session = l.sess.ID
		s.LastError = l.sess.Err
		s.Reachable = l.sess.Err == nil
		if !l.sess.Proof.IsZero() {
			s.LastRenew = l.sess.Proof
		}
	})
	if l.sess.Err != nil && l.sess.Attempt > old.Attempt {
		l.emit(Event{Kind: KindError, Err: l.sess.Err, Attempt: l.sess.Attempt})
	}
	if !l.leading {
		return
	}
	if l.sess.ID != l.term.Session {
		l.stepDown(ReasonSessionInvalidated)
		return
	}
	if l.sess.Proof.After(l.proof) {
		l.extendLease(l.sess.Proof)
	}
}

// extendLease moves the lease to a newer proof sent at t.
func (l *loop) extendLease(t time.Time) {
	l.proof = t
	l.leaseEnd = l.e.sess.leaseEnd(t, l.e.cfg.Margin)
	l.e.setState(func(s *State) { s.LeaseEnd = l.leaseEnd })
	l.e.cfg.OnLease(l.term, l.leaseEnd)
}

// wantAcquire: the key is known to be free (or ours) and we may take it.
func (l *loop) wantAcquire() bool {
	// A session need not have a fresh renew to try: the acquire's own
	// success proves it valid, and that is where a term's lease starts.
	if !l.seen || l.sess.ID == "" || l.sess.ID == l.abandoned || time.Now().Before(l.holdOffUntil) {
		return false
	}
	// A missing key is no proof that nobody leads: Consul may have lost
	// its state (an agent or cluster rebuilt) while a leader still holds a
	// lease it got from the old state, or an operator deleted the key.
	// Consul knows of no lock-delay then, so we wait out a lease ourselves:
	// lock-delay + margin from the receipt of the first answer that showed
	// it missing (an old leader's last proof was sent before that answer,
	// so its lease is over by then). A key left by a release or an
	// invalidation exists and needs no wait.
	if l.last == nil && time.Now().Before(l.missingUntil()) {
		return false
	}
	return l.last == nil || l.last.Session == "" || l.last.Session == l.sess.ID
}

// missingUntil is when a missing key may be taken.
func (l *loop) missingUntil() time.Time {
	return l.missingSince.Add(l.missingWait())
}

func (l *loop) missingWait() time.Duration { return l.e.sess.cfg.LockDelay + l.e.cfg.Margin }

func (l *loop) startWatch() {
	ctx, cancel := context.WithCancel(l.ctx)
	ch := make(chan watchResult, 1)
	q := consulhttp.QueryOptions{Index: l.index, Wait: l.e.cfg.WatchWait, Consistent: l.leading}
	go func() {
		sent := time.Now()
		p, meta, err := l.e.c.GetKV(ctx, l.e.cfg.Key, q)
		ch <- watchResult{pair: p, meta: meta, err: err, sent: sent, recv: time.Now(), idx: q.Index}
	}()
	l.watchCh, l.watchCancel = ch, cancel
}

func (l *loop) stopWatch() {
	if l.watchCancel != nil {
		l.watchCancel()
	}
	l.watchCh, l.watchCancel = nil, nil
}

// restartWatch replaces the in-flight watch, e.g. to switch consistency.
func (l *loop) restartWatch() {
	l.stopWatch()
	l.watchRetryAt = time.Time{}
}

func (l *loop) onWatch(r watchResult) {
	if r.err != nil {
		if l.ctx.Err() != nil {
			return
		}
		if consulhttp.IsPermissionDenied(r.err) {
			l.fatal = fmt.Errorf("elect: watch %s: %w", l.e.cfg.Key, r.err)
			return
		}
		l.watchFails++
		l.watchRetryAt = time.Now().Add(backoff(l.watchFails))
		// A gap in what we saw: we no longer know the key, so the next
		// read doesn't block (index 0) but tells us the key as it is now,
		// and a missing key's wait starts afresh from that answer.
		l.seen, l.missingSince, l.index = false, time.Time{}, 0
		l.e.setState(func(s *State) { s.LastError, s.Reachable = r.err, false })
		l.e.log.Warn("watch key failed", "attempt", l.watchFails, "err", r.err)
		l.emit(Event{Kind: KindError, Err: r.err, Attempt: l.watchFails})
		return
	}
	// Index rules: go back to 0 if it went backwards, never block below 1.
	// An index that went backwards, or an early return with no change, is
	// rate-limited like a failure rather than a reason to ask again at
	// once; only a proper blocking read clears the failure count (the
	// non-blocking read after a reset proves nothing).
	idx := r.meta.LastIndex
	backwards := idx < r.idx
	switch {
	case backwards:
		l.index = 0
	case idx == 0:
		l.index = 1
	default:
		l.index = idx
	}
	spurious := r.idx > 0 && idx == r.idx && time.Since(r.sent) < l.e.cfg.WatchWait/2
	switch {
	case backwards || spurious:
		l.watchFails++
		l.watchRetryAt = time.Now().Add(backoff(l.watchFails))
	case r.idx > 0:
		l.watchFails = 0
	}
	if backwards {
		// Consul's state may have been rebuilt: what we saw before proves
		// nothing about now.
		l.missingSince = time.Time{}
	}
	l.e.setState(func(s *State) { s.Reachable = true })
	l.observe(r.pair, r.recv)
}

// observe takes in the key as read in an answer received at recv.
func (l *loop) observe(p *consulhttp.KVPair, recv time.Time) {
	wasFree := !l.seen || l.last == nil || l.last.Session == ""
	prev := l.last
	l.last, l.seen = p, true
	free := p == nil || p.Session == ""
	if free && (!wasFree || l.freeSince.IsZero()) {
		l.freeSince = time.Now()
		// Someone else's term ended: try at once. If it was our own
		// key we just gave back, keep the backoff we are in.
		if prev == nil || prev.Session != l.sess.ID {
			l.acquireFails = 0
			l.acquireAt = time.Time{}
		}
	}
	if !free {
		l.freeSince = time.Time{}
	}
	switch {
	case p != nil:
		l.missingSince = time.Time{}
	case l.missingSince.IsZero():
		l.missingSince = recv
		l.e.log.Info("key missing; waiting out a lease before taking it", "wait", l.missingWait())
	}
	if l.leading {
		switch {
		case p == nil:
			l.stepDown(ReasonKeyLost)
		case p.Session == "":
			l.e.sess.requestReset(l.term.Session)
			l.stepDown(ReasonSessionInvalidated)
		case p.Session != l.term.Session:
			l.stepDown(ReasonKeyLost)
		}
		return
	}
	if !free && p.Session != l.sess.ID {
		l.holdOffUntil = time.Time{} // someone else leads: the resign hold-off is over
	}
	l.setLeader(decodeLeader(p))
}

// setLeader reports a change of leader (by session) to followers.
func (l *loop) setLeader(ld *Leader) {
	same := (ld == nil) == (l.leader == nil) && (ld == nil || ld.Session == l.leader.Session)
	l.leader = ld
	l.e.setState(func(s *State) { s.Leader = ld })
	if !same {
		if ld != nil {
			l.e.log.Info("leader changed", "leader", ld.ID, "session", ld.Session, "token", ld.Token)
		} else {
			l.e.log.Info("no leader")
		}
		l.emit(Event{Kind: KindLeaderChanged, Leader: ld})
	}
}

func (l *loop) emit(ev Event) {
	ev.Key = l.e.cfg.Key
	ev.At = time.Now()
	l.e.events.push(ev)
}

func (l *loop) requestCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(l.ctx, l.e.cfg.ReleaseTimeout)
}

// tryAcquire attempts to take the free key.
func (l *loop) tryAcquire() {
	sid := l.sess.ID
	// Held from before the request: a session that may hold the key is
	// never destroyed under us.
	l.e.sess.hold(sid)
	sent := time.Now()
	val, _ := json.Marshal(record{
		Candidate:   l.e.cfg.Candidate,
		AcquiredAt:  sent,
		LockDelayMS: l.e.sess.cfg.LockDelay.Milliseconds(),
	})
	ctx, cancel := l.requestCtx()
	ok, err := l.e.c.Acquire(ctx, l.e.cfg.Key, sid, val)
	cancel()
	if err != nil || !ok {
		l.e.sess.unhold(sid)
	}
	if err != nil {
		if l.ctx.Err() != nil {
			return
		}
		if consulhttp.IsPermissionDenied(err) {
			l.fatal = fmt.Errorf("elect: acquire %s: %w", l.e.cfg.Key, err)
			return
		}
		l.acquireFails++
		l.acquireAt = time.Now().Add(backoff(l.acquireFails))
		if errors.Is(err, consulhttp.ErrSessionNotFound) {
			l.e.sess.requestReset(sid)
		}
		l.e.setState(func(s *State) { s.LastError, s.Reachable = err, !consulhttp.IsRetryable(err) })
		l.e.log.Warn("acquire failed", "attempt", l.acquireFails, "err", err)
		l.emit(Event{Kind: KindError, Err: err, Attempt: l.acquireFails})
		return
	}
	if !ok {
		// Held by someone the watch will show us, or lock-delay: the last
		// holder's session was invalidated less than its lock-delay ago.
		// Retry when that delay is over, then back off; never spin.
		const slack = 20 * time.Millisecond
		wait := time.Until(l.freeSince.Add(lockDelayOf(l.last, l.e.sess.cfg.LockDelay))) + slack
		if wait <= slack {
			l.acquireFails++
			wait = backoff(l.acquireFails)
		}
		l.acquireAt = time.Now().Add(wait)
		l.e.log.Debug("acquire refused; lock-delay or held", "retry_in", wait)
		return
	}
	// Read back the key: its ModifyIndex is the fencing token. The
	// backoff is reset only once the term is confirmed: an acquire whose
	// read-back keeps failing must back off like any other failure.
	ctx, cancel = l.requestCtx()
	p, meta, err := l.e.c.GetKV(ctx, l.e.cfg.Key, consulhttp.QueryOptions{Consistent: true})
	cancel()
	// The acquire's success is the proof: the session was valid when it
	// was sent, so the term's lease runs from then.
	end := l.e.sess.leaseEnd(sent, l.e.cfg.Margin)
	if err != nil || p == nil || p.Session != sid || !time.Now().Before(end) {
		// We can't prove a term (or the lease is already gone): give the
		// key back and try again later.
		l.e.log.Warn("acquired but could not confirm; releasing", "err", err)
		l.release(sid, end.Before(time.Now()))
		l.e.sess.unhold(sid)
		l.acquireFails++
		l.acquireAt = time.Now().Add(backoff(l.acquireFails))
		if p != nil {
			l.last, l.missingSince = p, time.Time{}
		}
		return
	}
	l.acquireFails = 0
	l.terms++
	l.leading = true
	l.proof, l.leaseEnd = sent, end
	l.term = Term{Key: l.e.cfg.Key, Session: sid, Token: p.ModifyIndex, Since: sent, First: l.terms == 1, LeaseEnd: end}
	l.last, l.index, l.missingSince = p, max(meta.LastIndex, 1), time.Time{}
	l.leader = decodeLeader(p)
	l.e.setState(func(s *State) {
		s.Leading, s.Token, s.Leader, s.LeaseEnd = true, p.ModifyIndex, l.leader, end
	})
	l.restartWatch()
	l.e.log.Info("elected", "session", sid, "token", p.ModifyIndex, "first", l.term.First)
	l.e.cfg.OnElected(l.term)
	l.emit(Event{Kind: KindElected, Token: p.ModifyIndex, First: l.term.First, Leader: l.leader})
}

// stepDown ends the current term, always in this order: stop claiming
// (State says not leading, so the status endpoint answers 503), OnStepDown
// (publishers told, the leader's work stopped: its whole process tree is
// dead), release the key where that is still useful, and only then let
// the session be destroyed (unhold).
func (l *loop) stepDown(reason Reason) {
	t := l.term
	l.leading = false
	l.term = Term{}
	l.proof, l.leaseEnd = time.Time{}, time.Time{}
	l.e.setState(func(s *State) { s.Leading, s.Token, s.LeaseEnd = false, 0, time.Time{} })
	l.e.log.Info("stepping down", "reason", string(reason), "token", t.Token)
	l.e.cfg.OnStepDown(t, reason)
	switch reason {
	case ReasonReleased, ReasonShutdown:
		l.release(t.Session, false)
	case ReasonLeaseExpired, ReasonSessionInvalidated:
		// Tell Consul if it can still hear us (a session we gave up may
		// still be valid there), then start over with a new session: the
		// old one can no longer prove anything.
		l.release(t.Session, true)
		l.e.sess.requestReset(t.Session)
		l.abandoned = t.Session
	}
	l.e.sess.unhold(t.Session)
	l.emit(Event{Kind: KindSteppedDown, Token: t.Token, Reason: reason, Leader: nil})
	l.restartWatch()
	l.leader = nil
	l.last = nil
	l.seen = false // read the key again (without blocking) before trying to acquire
	l.index = 0
	l.missingSince = time.Time{}
}

// release gives the key back, leaving a value that says it is free. Bounded
// by ReleaseTimeout (1s when we already suspect Consul is unreachable).
func (l *loop) release(sid string, quick bool) {
	d := l.e.cfg.ReleaseTimeout
	if quick {
		d = min(d, time.Second)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(l.ctx), d)
	defer cancel()
	val, _ := json.Marshal(record{Candidate: l.e.cfg.Candidate, AcquiredAt: time.Now(), Released: true})
	if _, err := l.e.c.Release(ctx, l.e.cfg.Key, sid, val); err != nil {
		l.e.log.Warn("release failed", "session", sid, "err", err)
	}
}
