package elect

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// tryAcquire attempts to take the free key; a success is confirmed before
// a term starts.
func (l *loop) tryAcquire() {
	sid := l.sess.ID
	// Held from before the request: a session that may hold the key is
	// never destroyed under us.
	l.session.hold(sid)
	sent := time.Now()
	ctx, cancel := context.WithTimeout(l.ctx, l.releaseTimeout)
	ok, err := l.c.Acquire(ctx, l.key, sid, l.claim(sent))
	cancel()
	switch {
	case err != nil:
		l.session.unhold(sid)
		if errors.Is(err, consulhttp.ErrSessionNotFound) && l.ctx.Err() == nil {
			l.session.requestReset(sid)
		}
		l.failed("acquire", err, &l.acquire)
	case !ok:
		l.session.unhold(sid)
		l.refused()
	default:
		l.confirm(sid, sent)
	}
}

// refused schedules the next attempt after an acquire answered false:
// held by someone the watch will show us, or lock-delay (the last holder's
// session was invalidated less than its lock-delay ago). Retry when that
// delay is over, then back off; never spin.
func (l *loop) refused() {
	const slack = 20 * time.Millisecond
	wait := time.Until(l.view.freeSince.Add(lockDelayOf(l.view.last, l.lockDelay))) + slack
	if wait <= slack {
		wait = l.acquire.failed(time.Now())
	} else {
		l.acquire.at = time.Now().Add(wait)
	}
	l.log.Debug("acquire refused; lock-delay or held", "retry_in", wait)
}

// confirm reads back the key that session sid acquired with a request sent
// at sent: its ModifyIndex is the fencing token. The backoff is reset only
// once the term is confirmed: an acquire whose read-back keeps failing
// must back off like any other failure.
func (l *loop) confirm(sid string, sent time.Time) {
	ctx, cancel := context.WithTimeout(l.ctx, l.releaseTimeout)
	p, meta, err := l.c.GetKV(ctx, l.key, consulhttp.QueryOptions{Consistent: true})
	cancel()
	// The acquire's success is the proof: the session was valid when it
	// was sent, so the term's lease runs from then.
	end := l.session.leaseEnd(sent, l.margin)
	if err != nil || p == nil || p.Session != sid || !time.Now().Before(end) {
		// We can't prove a term (or the lease is already gone): give the
		// key back and try again later.
		l.log.Warn("acquired but could not confirm; releasing", "err", err)
		l.release(sid, end.Before(time.Now()))
		l.session.unhold(sid)
		l.acquire.failed(time.Now())
		if p != nil {
			l.view.confirmed(p)
		}
		return
	}
	l.acquire.fails = 0
	l.view.confirmed(p)
	l.watch.index = max(meta.LastIndex, 1)
	l.leader = decodeLeader(p)
	l.startTerm(sid, p.ModifyIndex, sent, end, l.leader)
}

// stepDown ends the current term, always in this order: stop claiming and
// OnStepDown (endTerm), release the key where that is still useful, and
// only then let the session be destroyed (unhold).
func (l *loop) stepDown(reason Reason) {
	t := l.endTerm(reason)
	switch reason {
	case ReasonReleased, ReasonShutdown:
		l.release(t.Session, false)
	case ReasonLeaseExpired, ReasonSessionInvalidated:
		// Tell Consul if it can still hear us (a session we gave up may
		// still be valid there), then start over with a new session: the
		// old one can no longer prove anything.
		l.release(t.Session, true)
		l.giveUp(t.Session)
	}
	l.session.unhold(t.Session)
	l.termEnded(t, reason)
	l.leader = nil
	l.view.clear() // read the key again (without blocking) before trying to acquire
}

// release gives the key back, leaving a value that says it is free.
func (l *loop) release(sid string, quick bool) {
	ctx, cancel := l.writeCtx(quick)
	defer cancel()
	val, _ := json.Marshal(record{Candidate: l.candidate, AcquiredAt: time.Now(), Released: true})
	if _, err := l.c.Release(ctx, l.key, sid, val); err != nil {
		l.log.Warn("release failed", "session", sid, "err", err)
	}
}
