package elect

import (
	"encoding/json"
	"time"
)

// The life of a term, shared by an Election's and Slots' loops: its lease
// (the safety rule: see the package doc), its start and its end, always in
// the step-down order.

// checkLease steps down if the lease has passed: whatever woke the loop
// (a process paused past its lease wakes to a backlog), the clock comes
// first, so a late proof can't revive an expired term.
func (l *campaignLoop[T]) checkLease() {
	if l.leading && !time.Now().Before(l.leaseEnd) {
		l.kind.stepDown(ReasonLeaseExpired)
	}
}

// extendLease moves the lease to a newer proof sent at t.
func (l *campaignLoop[T]) extendLease(t time.Time) {
	l.proof = t
	l.leaseEnd = l.session.leaseEnd(t, l.margin)
	l.st.LeaseEnd = l.leaseEnd
	l.publish()
	l.k.cfg.OnLease(l.term, l.leaseEnd)
}

// startTerm makes this candidate lead: its session sid proved valid by a
// request sent at sent, its fencing token token, me as State's Leader.
func (l *campaignLoop[T]) startTerm(sid string, token uint64, sent, end time.Time, me *Leader, logArgs ...any) {
	l.terms++
	l.leading = true
	l.proof, l.leaseEnd = sent, end
	l.term = Term{Key: l.key, Session: sid, Token: token, Since: sent, First: l.terms == 1, LeaseEnd: end}
	l.st.Leading, l.st.Token, l.st.Leader, l.st.LeaseEnd = true, token, me, end
	l.watch.restart() // consistent reads from now on
	l.log.Info("elected", append([]any{"session", sid, "token", token, "first", l.term.First}, logArgs...)...)
	l.publish()
	l.k.cfg.OnElected(l.term)
	l.emit(Event{Kind: KindElected, Token: token, First: l.term.First, Leader: me})
}

// endTerm is how every step-down starts: stop claiming (State says not
// leading, so the status endpoint answers 503), then OnStepDown (the
// leader's work stopped: its whole process tree is dead). The caller then
// lets go of the key and calls termEnded.
func (l *campaignLoop[T]) endTerm(reason Reason) Term {
	t := l.term
	l.leading = false
	l.term = Term{}
	l.proof, l.leaseEnd = time.Time{}, time.Time{}
	l.st.Leading, l.st.Token, l.st.LeaseEnd = false, 0, time.Time{}
	l.publish()
	l.log.Info("stepping down", "reason", string(reason), "token", t.Token)
	l.k.cfg.OnStepDown(t, reason)
	return t
}

// termEnded reports the end of term t and reads afresh (without blocking)
// before anything else is tried.
func (l *campaignLoop[T]) termEnded(t Term, reason Reason) {
	l.emit(Event{Kind: KindSteppedDown, Token: t.Token, Reason: reason})
	l.watch.restart()
	l.watch.index = 0
}

// giveUp starts over with a new session after sid could no longer prove
// anything (lease expired, invalidated): never use it again.
func (l *campaignLoop[T]) giveUp(sid string) {
	l.session.requestReset(sid)
	l.abandoned = sid
}

// claim is the value a candidate writes when it claims a key at at.
func (l *campaignLoop[T]) claim(at time.Time) []byte {
	val, _ := json.Marshal(record{Candidate: l.candidate, AcquiredAt: at, LockDelayMS: l.lockDelay.Milliseconds()})
	return val
}
