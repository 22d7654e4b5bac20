package elect

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// slotsLoop is the state of one Slots' Run. Only its goroutine touches it.
type slotsLoop struct {
	s       *Slots
	ctx     context.Context
	sessErr <-chan error

	sess     sessionState
	sessWake <-chan struct{}
	sessGone bool
	fatal    error

	contender string // session our contender key is held with; "" none

	leading  bool
	term     Term
	proof    time.Time
	leaseEnd time.Time
	terms    int

	// watch of the prefix: one blocking list in flight at a time.
	index        uint64
	watchCh      chan listResult
	watchCancel  context.CancelFunc
	watchRetryAt time.Time
	watchFails   int

	seen        bool                          // an answer was taken in since the last gap
	stale       bool                          // a join lost its CAS: wait for a newer answer
	pairs       map[string]*consulhttp.KVPair // keys under the prefix as last seen
	lockPair    *consulhttp.KVPair            // .lock as last seen (nil: missing)
	lock        semLock
	lockMissing time.Time                // receipt of the first answer, in an unbroken run, that showed .lock missing
	deadSince   map[string]time.Time     // holder → receipt of the first answer that showed it in .lock and dead
	delays      map[string]time.Duration // holder → lock-delay its contender record declared

	joinAt       time.Time
	joinFails    int
	holdOffUntil time.Time
	abandoned    string // a session given up: never join with it again
}

type listResult struct {
	pairs []consulhttp.KVPair
	meta  consulhttp.QueryMeta
	err   error
	sent  time.Time
	recv  time.Time
	idx   uint64
}

func newSlotsLoop(s *Slots, ctx context.Context, sessErr <-chan error) *slotsLoop {
	return &slotsLoop{s: s, ctx: ctx, sessErr: sessErr, deadSince: map[string]time.Time{}, delays: map[string]time.Duration{}}
}

func (l *slotsLoop) run() error {
	l.sess, l.sessWake = l.s.sess.snapshot()
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	defer l.stopWatch()
	for {
		if l.fatal != nil || l.ctx.Err() != nil {
			if l.leading {
				l.stepDown(ReasonShutdown)
			}
			l.dropContender(false)
			return l.fatal
		}
		now := time.Now()
		// The clock first, on every wake-up.
		if l.leading && !now.Before(l.leaseEnd) {
			l.stepDown(ReasonLeaseExpired)
			continue
		}
		if l.contender == "" && l.sess.ID != "" && l.sess.ID != l.abandoned && !now.Before(l.joinAt) {
			l.contend()
			continue
		}
		if !l.leading && l.canJoin(now) && !now.Before(l.joinAt) {
			l.tryJoin()
			continue
		}
		if l.watchCh == nil && !now.Before(l.watchRetryAt) {
			l.startWatch()
		}
		wake.Reset(l.nextWake(now))
		select {
		case <-l.ctx.Done():
		case err := <-l.sessErr:
			l.sessGone = true
			if l.leading {
				l.stepDown(ReasonSessionInvalidated)
			}
			l.dropContender(true)
			return err
		case <-l.sessWake:
			l.checkLease()
			l.onSession()
		case r := <-l.watchCh:
			l.watchCh, l.watchCancel = nil, nil
			l.checkLease()
			l.onWatch(r)
		case req := <-l.s.resign:
			l.checkLease()
			if !l.leading || req.token != 0 && req.token != l.term.Token {
				req.reply <- ErrNotLeader
				continue
			}
			l.stepDown(ReasonReleased)
			l.holdOffUntil = time.Now().Add(l.s.cfg.ResignHoldOff)
			req.reply <- nil
		case <-wake.C:
		}
	}
}

func (l *slotsLoop) checkLease() {
	if l.leading && !time.Now().Before(l.leaseEnd) {
		l.stepDown(ReasonLeaseExpired)
	}
}

// wait is how long a dead holder (or a missing .lock) must have been seen
// so before its slot is taken: its lock-delay and our margin. A holder
// whose contender record we never saw (its key went with its session
// before we looked) may have any lock-delay, so its lease may run up to
// MaxLockDelay: wait that, not our own. A missing .lock ("") is waited out
// with our own lock-delay, as a missing key is in an election.
func (l *slotsLoop) wait(sid string) time.Duration {
	d, ok := l.delays[sid]
	switch {
	case ok:
	case sid == "":
		d = l.s.sess.cfg.LockDelay
	default:
		d = MaxLockDelay
	}
	return d + l.s.cfg.Margin
}

// kept is the holders that still count at now: all but those seen dead
// for a full wait.
func (l *slotsLoop) kept(now time.Time) map[string]bool {
	k := map[string]bool{}
	for sid := range l.lock.Holders {
		if ds, dead := l.deadSince[sid]; dead && !now.Before(ds.Add(l.wait(sid))) {
			continue
		}
		k[sid] = true
	}
	return k
}

// canJoin: we are a contender, what we saw is fresh, and a slot is free.
func (l *slotsLoop) canJoin(now time.Time) bool {
	if l.contender == "" || l.contender != l.sess.ID || !l.seen || l.stale || now.Before(l.holdOffUntil) {
		return false
	}
	if l.lockPair == nil && now.Before(l.lockMissing.Add(l.wait(""))) {
		return false
	}
	return len(l.kept(now)) < l.s.limit
}

func (l *slotsLoop) nextWake(now time.Time) time.Duration {
	next := now.Add(time.Hour)
	earliest := func(t time.Time) {
		if t.After(now) && t.Before(next) {
			next = t
		}
	}
	if l.leading {
		earliest(l.leaseEnd)
	} else {
		earliest(l.joinAt)
		earliest(l.holdOffUntil)
		if l.seen && l.lockPair == nil {
			earliest(l.lockMissing.Add(l.wait("")))
		}
		for sid, ds := range l.deadSince {
			earliest(ds.Add(l.wait(sid)))
		}
	}
	if l.watchCh == nil {
		earliest(l.watchRetryAt)
	}
	return next.Sub(now)
}

func (l *slotsLoop) onSession() {
	old := l.sess
	l.sess, l.sessWake = l.s.sess.snapshot()
	l.s.setState(func(s *State) {
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
	if l.leading && l.sess.ID != l.term.Session {
		l.stepDown(ReasonSessionInvalidated)
		return
	}
	if l.contender != "" && l.sess.ID != l.contender {
		l.dropContender(true)
		return
	}
	if l.leading && l.sess.Proof.After(l.proof) {
		l.proof = l.sess.Proof
		l.leaseEnd = l.s.sess.leaseEnd(l.proof, l.s.cfg.Margin)
		l.s.setState(func(s *State) { s.LeaseEnd = l.leaseEnd })
		l.s.cfg.OnLease(l.term, l.leaseEnd)
	}
}

func (l *slotsLoop) requestCtx(quick bool) (context.Context, context.CancelFunc) {
	d := l.s.cfg.ReleaseTimeout
	if quick {
		d = min(d, time.Second)
	}
	return context.WithTimeout(context.WithoutCancel(l.ctx), d)
}

// failed handles a Consul error of a write: fatal if denied, else a retry
// at joinAt with backoff.
func (l *slotsLoop) failed(what string, err error) {
	if l.ctx.Err() != nil {
		return
	}
	if consulhttp.IsPermissionDenied(err) {
		l.fatal = fmt.Errorf("elect: %s %s: %w", what, l.s.cfg.Key, err)
		return
	}
	l.joinFails++
	l.joinAt = time.Now().Add(backoff(l.joinFails))
	l.s.setState(func(s *State) { s.LastError, s.Reachable = err, !consulhttp.IsRetryable(err) })
	l.s.log.Warn(what+" failed", "attempt", l.joinFails, "err", err)
	l.emit(Event{Kind: KindError, Err: err, Attempt: l.joinFails})
}

// contend takes our contender key <prefix>/<session>.
func (l *slotsLoop) contend() {
	sid := l.sess.ID
	l.s.sess.hold(sid) // the session is never destroyed while its key may be held
	val, _ := json.Marshal(record{Candidate: l.s.cfg.Candidate, AcquiredAt: time.Now(), LockDelayMS: l.s.sess.cfg.LockDelay.Milliseconds()})
	ctx, cancel := l.requestCtx(false)
	_, ok, err := l.s.c.TxnKV(ctx, []consulhttp.TxnKVOp{{Verb: consulhttp.TxnLock, Key: l.s.contenderKey(sid), Value: val, Flags: SemaphoreFlags, Session: sid}})
	cancel()
	if err != nil || !ok {
		l.s.sess.unhold(sid)
		if err == nil {
			// Our session could not lock a key of its own: it is gone.
			err = fmt.Errorf("session %s could not lock its contender key", sid)
			l.s.sess.requestReset(sid)
		}
		l.failed("contend", err)
		return
	}
	l.contender = sid
	l.s.log.Debug("contending", "session", sid)
}

// dropContender deletes our contender key and lets the session go.
func (l *slotsLoop) dropContender(quick bool) {
	sid := l.contender
	if sid == "" {
		return
	}
	l.contender = ""
	ctx, cancel := l.requestCtx(quick)
	defer cancel()
	if _, _, err := l.s.c.TxnKV(ctx, []consulhttp.TxnKVOp{{Verb: consulhttp.TxnDelete, Key: l.s.contenderKey(sid)}}); err != nil {
		l.s.log.Warn("delete contender key failed", "session", sid, "err", err)
	}
	l.s.sess.unhold(sid)
}

// tryJoin adds us to .lock's holders, pruning those dead for a full wait,
// in one transaction that also checks our session still holds our
// contender key: its success proves the session valid when it was sent.
func (l *slotsLoop) tryJoin() {
	sid := l.contender
	now := time.Now()
	next := semLock{Limit: l.s.limit, Holders: l.kept(now)}
	for h := range l.lock.Holders {
		if !next.Holders[h] {
			l.s.log.Info("pruning dead holder", "holder", h, "dead_for", now.Sub(l.deadSince[h]))
		}
	}
	next.Holders[sid] = true
	val, _ := json.Marshal(next)
	var idx uint64
	if l.lockPair != nil {
		idx = l.lockPair.ModifyIndex
	}
	ctx, cancel := l.requestCtx(false)
	sent := time.Now()
	res, ok, err := l.s.c.TxnKV(ctx, []consulhttp.TxnKVOp{
		{Verb: consulhttp.TxnCheckSession, Key: l.s.contenderKey(sid), Session: sid},
		{Verb: consulhttp.TxnCAS, Key: l.s.lockKey(), Value: val, Flags: SemaphoreFlags, Index: idx},
	})
	cancel()
	if err != nil {
		l.failed("join", err)
		return
	}
	if !ok {
		// Somebody wrote .lock first, or our session is gone: the watch
		// shows which.
		l.stale = true
		l.s.log.Debug("join lost", "index", idx)
		return
	}
	var token uint64
	for _, p := range res {
		if p.Key == l.s.lockKey() {
			token = p.ModifyIndex
		}
	}
	end := l.s.sess.leaseEnd(sent, l.s.cfg.Margin)
	if token == 0 || !time.Now().Before(end) {
		l.s.log.Warn("joined but could not start a term; leaving", "token", token)
		l.leave(sid, true)
		l.failed("join", fmt.Errorf("joined %s without a usable term (token %d)", l.s.lockKey(), token))
		return
	}
	l.joinFails, l.joinAt, l.stale = 0, time.Time{}, true
	l.terms++
	l.leading = true
	l.proof, l.leaseEnd = sent, end
	l.term = Term{Key: l.s.cfg.Key, Session: sid, Token: token, Since: sent, First: l.terms == 1, LeaseEnd: end}
	me := &Leader{Candidate: l.s.cfg.Candidate, Session: sid, Token: token, Since: sent}
	l.s.setState(func(s *State) {
		s.Leading, s.Token, s.Leader, s.LeaseEnd = true, token, me, end
	})
	l.restartWatch()
	l.s.log.Info("elected", "session", sid, "token", token, "first", l.term.First, "slots", l.s.limit)
	l.s.cfg.OnElected(l.term)
	l.emit(Event{Kind: KindElected, Token: token, First: l.term.First, Leader: me})
}

// stepDown ends the slot term: stop claiming, OnStepDown (the work is
// dead), leave .lock, and only then may the session go.
func (l *slotsLoop) stepDown(reason Reason) {
	t := l.term
	l.leading = false
	l.term = Term{}
	l.proof, l.leaseEnd = time.Time{}, time.Time{}
	l.s.setState(func(s *State) { s.Leading, s.Token, s.Leader, s.LeaseEnd = false, 0, nil, time.Time{} })
	l.s.log.Info("stepping down", "reason", string(reason), "token", t.Token)
	l.s.cfg.OnStepDown(t, reason)
	switch reason {
	case ReasonReleased, ReasonShutdown:
		l.leave(t.Session, false)
	case ReasonKeyLost:
		// Pruned or .lock rewritten: nothing of ours to remove; we
		// stay a contender.
	default:
		l.leave(t.Session, true)
		l.dropContender(true)
		l.s.sess.requestReset(t.Session)
		l.abandoned = t.Session
	}
	l.emit(Event{Kind: KindSteppedDown, Token: t.Token, Reason: reason})
	l.restartWatch()
	l.seen, l.index = false, 0
}

// leave removes sid from .lock's holders by CAS, retrying lost CASes,
// bounded by ReleaseTimeout (1s if quick).
func (l *slotsLoop) leave(sid string, quick bool) {
	ctx, cancel := l.requestCtx(quick)
	defer cancel()
	for ctx.Err() == nil {
		p, _, err := l.s.c.GetKV(ctx, l.s.lockKey(), consulhttp.QueryOptions{Consistent: true})
		if err != nil {
			break
		}
		lk, derr := decodeLock(p, l.s.limit)
		if p == nil || derr != nil || !lk.Holders[sid] {
			return
		}
		delete(lk.Holders, sid)
		val, _ := json.Marshal(lk)
		_, ok, err := l.s.c.TxnKV(ctx, []consulhttp.TxnKVOp{{Verb: consulhttp.TxnCAS, Key: l.s.lockKey(), Value: val, Flags: SemaphoreFlags, Index: p.ModifyIndex}})
		if err != nil {
			break
		}
		if ok {
			return
		}
	}
	l.s.log.Warn("could not leave the holders; they will prune us", "session", sid)
}

func (l *slotsLoop) startWatch() {
	ctx, cancel := context.WithCancel(l.ctx)
	ch := make(chan listResult, 1)
	q := consulhttp.QueryOptions{Index: l.index, Wait: l.s.cfg.WatchWait, Consistent: l.leading}
	go func() {
		sent := time.Now()
		ps, meta, err := l.s.c.ListKV(ctx, l.s.cfg.Key+"/", q)
		ch <- listResult{pairs: ps, meta: meta, err: err, sent: sent, recv: time.Now(), idx: q.Index}
	}()
	l.watchCh, l.watchCancel = ch, cancel
}

func (l *slotsLoop) stopWatch() {
	if l.watchCancel != nil {
		l.watchCancel()
	}
	l.watchCh, l.watchCancel = nil, nil
}

func (l *slotsLoop) restartWatch() {
	l.stopWatch()
	l.watchRetryAt = time.Time{}
}

// forget starts what was seen afresh: after a gap, a dead holder's or a
// missing .lock's wait counts again from the next answer, and that read
// doesn't block (index 0): nothing may be left to change under the prefix.
func (l *slotsLoop) forget() {
	l.seen, l.index = false, 0
	l.lockMissing = time.Time{}
	clear(l.deadSince)
}

func (l *slotsLoop) onWatch(r listResult) {
	if r.err != nil {
		if l.ctx.Err() != nil {
			return
		}
		if consulhttp.IsPermissionDenied(r.err) {
			l.fatal = fmt.Errorf("elect: watch %s: %w", l.s.cfg.Key, r.err)
			return
		}
		l.watchFails++
		l.watchRetryAt = time.Now().Add(backoff(l.watchFails))
		l.forget()
		l.s.setState(func(s *State) { s.LastError, s.Reachable = r.err, false })
		l.s.log.Warn("watch prefix failed", "attempt", l.watchFails, "err", r.err)
		l.emit(Event{Kind: KindError, Err: r.err, Attempt: l.watchFails})
		return
	}
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
	spurious := r.idx > 0 && idx == r.idx && time.Since(r.sent) < l.s.cfg.WatchWait/2
	switch {
	case backwards || spurious:
		l.watchFails++
		l.watchRetryAt = time.Now().Add(backoff(l.watchFails))
	case r.idx > 0:
		l.watchFails = 0
	}
	if backwards {
		l.forget()
	}
	l.s.setState(func(s *State) { s.Reachable = true })
	l.observe(r.pairs, r.recv)
}

// observe takes in the prefix as read in an answer received at recv.
func (l *slotsLoop) observe(ps []consulhttp.KVPair, recv time.Time) {
	l.pairs = make(map[string]*consulhttp.KVPair, len(ps))
	for i := range ps {
		l.pairs[ps[i].Key] = &ps[i]
	}
	lp := l.pairs[l.s.lockKey()]
	lk, err := decodeLock(lp, l.s.limit)
	if err != nil {
		l.fatal = err
		return
	}
	before := l.lock.Holders
	l.lockPair, l.lock, l.seen, l.stale = lp, lk, true, false
	switch {
	case lp != nil:
		l.lockMissing = time.Time{}
	case l.lockMissing.IsZero():
		l.lockMissing = recv
		l.s.log.Info("semaphore lock missing; waiting out a lease before creating it", "wait", l.wait(""))
	}
	hs := make([]Holder, 0, len(lk.Holders))
	for sid := range lk.Holders {
		cp := l.pairs[l.s.contenderKey(sid)]
		h := holderOf(sid, cp)
		if cp != nil {
			l.delays[sid] = lockDelayOf(cp, l.s.sess.cfg.LockDelay)
		}
		switch ds, dead := l.deadSince[sid]; {
		case h.Live:
			delete(l.deadSince, sid)
		case !dead:
			l.deadSince[sid] = recv
			l.s.log.Info("holder seen dead; its slot is free after its lease", "holder", sid, "wait", l.wait(sid))
			h.DeadSince = recv
		default:
			h.DeadSince = ds
		}
		h.Self = sid == l.term.Session && l.leading
		hs = append(hs, h)
		if !before[sid] && sid != l.contender {
			l.holdOffUntil = time.Time{} // another holder joined: the resign hold-off is over
		}
	}
	for sid := range l.deadSince {
		if !lk.Holders[sid] {
			delete(l.deadSince, sid)
			delete(l.delays, sid)
		}
	}
	sortHolders(hs)
	l.s.mu.Lock()
	l.s.holders = hs
	l.s.mu.Unlock()
	if !maps.Equal(before, lk.Holders) {
		l.s.log.Info("holders changed", "holders", len(lk.Holders), "limit", l.s.limit)
	}
	if l.leading {
		own := l.pairs[l.s.contenderKey(l.term.Session)]
		switch {
		case own == nil || own.Session != l.term.Session:
			l.s.sess.requestReset(l.term.Session)
			l.stepDown(ReasonSessionInvalidated)
		case !lk.Holders[l.term.Session]:
			l.stepDown(ReasonKeyLost)
		}
	}
}

func (l *slotsLoop) emit(ev Event) {
	ev.Key = l.s.cfg.Key
	ev.At = time.Now()
	l.s.events.push(ev)
}
