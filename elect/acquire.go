package elect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// tryAcquire attempts to take the free key (or the key handed to us) in
// a one-op transaction, whose answer carries the key as written: its
// ModifyIndex is the fencing token, with no read-back.
func (l *loop) tryAcquire() {
	sid := l.sess.ID
	// Held from before the request: a session that may hold the key is
	// never destroyed under us.
	l.session.hold(sid)
	sent := time.Now()
	ctx, cancel := context.WithTimeout(l.ctx, l.releaseTimeout)
	val := l.claim(sent)
	res, ok, err := l.c.TxnKV(ctx, []consulhttp.TxnKVOp{{Verb: consulhttp.TxnLock, Key: l.key, Session: sid, Value: val}})
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
	case len(res) != 1 || res[0].Key != l.key || res[0].Session != sid:
		// Consul answers a lone lock with the key as written; anything
		// else proves no term.
		l.session.unhold(sid)
		l.failed("acquire", fmt.Errorf("elect: acquire %s: unexpected transaction result %d keys", l.key, len(res)), &l.acquire)
	default:
		// Consul answers a write without its value: the value is what we
		// wrote.
		p := res[0]
		p.Value = val
		l.confirm(sid, sent, &p)
	}
}

// refused schedules the next attempt after an acquire answered false:
// held by someone the watch will show us, or lock-delay (the last holder's
// session was invalidated less than its lock-delay ago). Retry when that
// delay is over, then back off; never spin.
//
// The best-ranked candidate polls instead, from a little before the end
// of the lock-delay as its own sighting of the free key dates it until a
// little after: that sighting may be late (500 watchers are woken one
// after the other), and the candidates ranked after it count from their
// own sightings plus their rank's steps.
func (l *loop) refused() {
	const slack = 20 * time.Millisecond
	now := time.Now()
	end := l.view.freeSince.Add(lockDelayOf(l.view.last, l.lockDelay))
	wait := end.Sub(now) + slack
	switch {
	case l.reg.rank == 0 && l.reg.rankKnown && now.Before(end.Add(l.reg.step)):
		wait = max(end.Add(-rankZeroEarly).Sub(now), rankZeroPoll)
		l.acquire.at = now.Add(wait)
	case wait <= slack:
		wait = l.acquire.failed(now)
	default:
		l.acquire.at = now.Add(wait)
	}
	l.log.Debug("acquire refused; lock-delay or held", "retry_in", wait)
}

// confirm starts a term with the key p that session sid acquired with a
// request sent at sent, unless its lease is already gone. The backoff is
// reset only once the term is started.
func (l *loop) confirm(sid string, sent time.Time, p *consulhttp.KVPair) {
	// The acquire's success is the proof: the session was valid when it
	// was sent, so the term's lease runs from then.
	end := l.session.leaseEnd(sent, l.margin)
	l.view.confirmed(p)
	if !time.Now().Before(end) {
		l.log.Warn("acquired after the lease a term would have; releasing")
		l.release(sid, true)
		l.session.unhold(sid)
		l.acquire.failed(time.Now())
		return
	}
	l.acquire.fails = 0
	l.watch.index = max(p.ModifyIndex, 1)
	l.leader = decodeLeader(p)
	l.startTerm(sid, p.ModifyIndex, sent, end, l.leader)
}

// stepDown ends the current term, always in this order: stop claiming and
// OnStepDown (endTerm), release the key where that is still useful, and
// only then let the session be destroyed (unhold).
func (l *loop) stepDown(reason Reason) { l.stepDownTo(reason, nil) }

// stepDownTo is stepDown that hands the key over, where it is still ours
// to give, to succ (nil: the best live candidate), falling back to a
// release. It reports whether the key moved to a successor.
func (l *loop) stepDownTo(reason Reason, succ *CandidateEntry) (moved bool) {
	t := l.endTerm(reason)
	l.lastToken = t.Token
	l.reg.ranked = false // the key's next free period is ranked afresh
	l.reg.watch.stop()
	clear(l.reg.firstSeen)
	switch reason {
	case ReasonReleased, ReasonShutdown, ReasonTransferred, ReasonPreempted:
		if reason == ReasonShutdown {
			// Leaving: out of the registry before the key moves, so the
			// successor can't hand it straight back to us.
			l.deregister(false)
		}
		// A handover needs Consul: when it was unreachable a moment ago,
		// only try the release and let the followers race.
		if moved = l.st.Reachable && l.handOver(t.Session, succ); !moved {
			l.release(t.Session, false)
		}
	case ReasonLeaseExpired, ReasonSessionInvalidated:
		// Tell Consul if it can still hear us (a session we gave up may
		// still be valid there), then start over with a new session: the
		// old one can no longer prove anything.
		l.release(t.Session, true)
		l.giveUp(t.Session)
	}
	// A former leader has not been waiting: its entry goes to the back of
	// its priority (no ping-pong between two candidates under -restart).
	l.reg.fresh = false
	l.reg.since, l.reg.registered = time.Now(), ""
	l.session.unhold(t.Session)
	l.termEnded(t, reason)
	l.leader = nil
	l.view.clear() // read the key again (without blocking) before trying to acquire
	return moved
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
