package elect

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// contend takes our contender key <prefix>/<session>.
func (l *slotsLoop) contend() {
	sid := l.sess.ID
	l.session.hold(sid) // the session is never destroyed while its key may be held
	val := l.claim(time.Now())
	ctx, cancel := l.writeCtx(false)
	_, ok, err := l.c.TxnKV(ctx, []consulhttp.TxnKVOp{{Verb: consulhttp.TxnLock, Key: l.s.contenderKey(sid), Value: val, Flags: SemaphoreFlags, Session: sid}})
	cancel()
	if err != nil || !ok {
		l.session.unhold(sid)
		if err == nil {
			// Our session could not lock a key of its own: it is gone.
			err = fmt.Errorf("session %s could not lock its contender key: %w", sid, consulhttp.ErrSessionNotFound)
		}
		if errors.Is(err, consulhttp.ErrSessionNotFound) {
			l.session.requestReset(sid)
		}
		l.failed("contend", err, &l.join)
		return
	}
	l.contender = sid
	l.log.Debug("contending", "session", sid)
}

// dropContender deletes our contender key and lets the session go.
func (l *slotsLoop) dropContender(quick bool) {
	sid := l.contender
	if sid == "" {
		return
	}
	l.contender = ""
	ctx, cancel := l.writeCtx(quick)
	defer cancel()
	if _, _, err := l.c.TxnKV(ctx, []consulhttp.TxnKVOp{{Verb: consulhttp.TxnDelete, Key: l.s.contenderKey(sid)}}); err != nil {
		l.log.Warn("delete contender key failed", "session", sid, "err", err)
	}
	l.session.unhold(sid)
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
			l.log.Info("pruning dead holder", "holder", h, "dead_for", now.Sub(l.deadSince[h]))
		}
	}
	next.Holders[sid] = true
	val, _ := json.Marshal(next)
	var idx uint64
	if l.lockPair != nil {
		idx = l.lockPair.ModifyIndex
	}
	ctx, cancel := l.writeCtx(false)
	sent := time.Now()
	res, ok, err := l.c.TxnKV(ctx, []consulhttp.TxnKVOp{
		{Verb: consulhttp.TxnCheckSession, Key: l.s.contenderKey(sid), Session: sid},
		{Verb: consulhttp.TxnCAS, Key: l.s.lockKey(), Value: val, Flags: SemaphoreFlags, Index: idx},
	})
	cancel()
	if err != nil {
		l.failed("join", err, &l.join)
		return
	}
	if !ok {
		// Somebody wrote .lock first, or our session is gone: the watch
		// shows which.
		l.stale = true
		l.log.Debug("join lost", "index", idx)
		return
	}
	var token uint64
	for _, p := range res {
		if p.Key == l.s.lockKey() {
			token = p.ModifyIndex
		}
	}
	end := l.session.leaseEnd(sent, l.margin)
	if token == 0 || !time.Now().Before(end) {
		l.log.Warn("joined but could not start a term; leaving", "token", token)
		l.leave(sid, true)
		l.failed("join", fmt.Errorf("joined %s without a usable term (token %d)", l.s.lockKey(), token), &l.join)
		return
	}
	l.join, l.stale = retry{}, true
	me := &Leader{Candidate: l.candidate, Session: sid, Token: token, Since: sent}
	l.startTerm(sid, token, sent, end, me, "slots", l.s.limit)
}

// stepDown ends the slot term: stop claiming and OnStepDown (endTerm),
// leave .lock, and only then may the session go.
func (l *slotsLoop) stepDown(reason Reason) {
	l.st.Leader = nil
	t := l.endTerm(reason)
	switch reason {
	case ReasonReleased, ReasonShutdown:
		l.leave(t.Session, false)
	case ReasonKeyLost:
		// Pruned or .lock rewritten: nothing of ours to remove; we
		// stay a contender.
	default:
		l.leave(t.Session, true)
		l.dropContender(true)
		l.giveUp(t.Session)
	}
	l.termEnded(t, reason)
	l.seen = false
}

// leave removes sid from .lock's holders by CAS, retrying lost CASes,
// bounded by ReleaseTimeout (1s if quick).
func (l *slotsLoop) leave(sid string, quick bool) {
	ctx, cancel := l.writeCtx(quick)
	defer cancel()
	for ctx.Err() == nil {
		p, _, err := l.c.GetKV(ctx, l.s.lockKey(), consulhttp.QueryOptions{Consistent: true})
		if err != nil {
			break
		}
		lk, derr := decodeLock(p, l.s.limit)
		if p == nil || derr != nil || !lk.Holders[sid] {
			return
		}
		delete(lk.Holders, sid)
		val, _ := json.Marshal(lk)
		_, ok, err := l.c.TxnKV(ctx, []consulhttp.TxnKVOp{{Verb: consulhttp.TxnCAS, Key: l.s.lockKey(), Value: val, Flags: SemaphoreFlags, Index: p.ModifyIndex}})
		if err != nil {
			break
		}
		if ok {
			return
		}
	}
	l.log.Warn("could not leave the holders; they will prune us", "session", sid)
}
