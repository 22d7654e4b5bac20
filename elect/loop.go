package elect

import (
	"context"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// loop is the state of one Election's Run: the shared campaign loop, the
// key as last seen and the acquire attempts. Only its goroutine touches
// it. Acquiring, confirming and ending a term are in acquire.go.
type loop struct {
	campaignLoop[*consulhttp.KVPair]
	c       Consul
	view    keyView
	leader  *Leader // leader as last reported
	acquire retry   // earliest next acquire attempt (lock-delay, backoff, rank)
	reg     registryState
	// handed is the key as a handover left it to our session, until the
	// term starts (or the key moves on); lastToken is our last term's.
	handed    *consulhttp.KVPair
	lastToken uint64
}

var _ loopKind[*consulhttp.KVPair] = (*loop)(nil)

func newLoop(e *Election, ctx context.Context, sessErr <-chan error) *loop {
	l := &loop{c: e.c}
	l.init(&e.campaign, l, ctx, sessErr, func(ctx context.Context, q consulhttp.QueryOptions) (*consulhttp.KVPair, consulhttp.QueryMeta, error) {
		return e.c.GetKV(ctx, e.cfg.Key, q)
	})
	l.reg.init(l, e.cfg)
	return l
}

func (l *loop) act(now time.Time) bool {
	if l.leading {
		l.watchRegistry(now)
		if len(l.reg.firstSeen) > 0 {
			l.checkPriority(now)
			if !l.leading {
				return true
			}
		}
		if l.registerDue(now) {
			l.register()
			return true
		}
		return false
	}
	switch want := l.wantAcquire(now); {
	case want && !l.reg.ranked && !l.reg.disabled && l.view.free():
		l.rank()
	case want && l.acquire.due(now):
		l.tryAcquire()
	case l.registerDue(now):
		l.register()
	default:
		return false
	}
	return true
}

// wantAcquire: the key is known to be free (or ours) and we may take it.
func (l *loop) wantAcquire(now time.Time) bool {
	// A session need not have a fresh renew to try: the acquire's own
	// success proves it valid, and that is where a term's lease starts.
	if l.sess.ID == "" || l.sess.ID == l.abandoned || now.Before(l.holdOffUntil) || l.handed != nil {
		return false
	}
	return l.view.takeable(l.sess.ID, now, l.missingWait)
}

func (l *loop) wakeAt(now time.Time, earliest func(time.Time)) {
	if l.leading {
		l.priorityWake(earliest)
		earliest(l.reg.watch.at)
		return
	}
	if !l.reg.disabled && l.reg.registered != l.sess.ID {
		earliest(l.reg.retry.at)
	}
	if l.wantAcquire(now) {
		earliest(l.acquire.at)
	}
	if l.view.seen && l.view.last == nil {
		earliest(l.view.missing.over(l.missingWait))
	}
}

func (l *loop) onSessionChange() bool {
	switch {
	case l.handed == nil || l.leading:
	case l.handed.Session == l.sess.ID:
		l.takeHanded(l.handed)
	default: // the session it was handed to is gone
		l.session.unhold(l.handed.Session)
		l.handed = nil
	}
	return false
}

func (l *loop) forget() { l.view.forget() }

func (l *loop) quit(quick bool) {
	l.reg.watch.stop()
	l.deregister(quick)
	// A key handed to us that we never led with must not be left on our
	// session: destroying it would put the key in its lock-delay. Pass it
	// on, or release it. Once we deregistered no handover to us can commit
	// (it checks our entry), so one read after it sees any that did.
	sid := l.sess.ID
	ours := l.handed != nil || l.view.last != nil && l.view.last.Session == sid
	if !ours && sid != "" && !quick && sid != l.abandoned && !l.reg.disabled {
		ctx, cancel := l.writeCtx(false)
		p, _, err := l.c.GetKV(ctx, l.key, consulhttp.QueryOptions{Consistent: true})
		cancel()
		ours = err == nil && p != nil && p.Session == sid
	}
	if sid != "" && !quick && sid != l.abandoned && ours {
		if !l.handOver(sid, nil) {
			l.release(sid, false)
		}
	}
	if l.handed != nil {
		l.session.unhold(l.handed.Session)
		l.handed = nil
	}
}

func (l *loop) onWatch(a answer[*consulhttp.KVPair]) {
	ok, backwards := l.takeAnswer(a, "key")
	if !ok {
		return
	}
	if backwards {
		// Consul's state may have been rebuilt: what we saw before proves
		// nothing about now.
		l.view.missing.reset()
	}
	l.observe(a.val, a.recv)
}

// observe takes in the key as read in an answer received at recv.
func (l *loop) observe(p *consulhttp.KVPair, recv time.Time) {
	freed, prev, missingStarted := l.view.take(p, recv)
	// Someone else's term ended: try at once (in rank order). If it was
	// our own key we just gave back, keep the backoff we are in.
	if freed && (prev == nil || prev.Session != l.sess.ID) {
		l.acquire = retry{}
		l.reg.ranked = false
	}
	// Handed to us (a leader's handover or transfer, written after our
	// last term): lead now, resign hold-off or not: somebody chose us.
	switch {
	case l.leading:
	case p != nil && p.Session != "" && p.Session == l.sess.ID && p.ModifyIndex > l.lastToken:
		l.takeHanded(p)
		return
	case l.handed != nil:
		l.handed = nil
		l.session.unhold(l.sess.ID)
	}
	if missingStarted {
		l.log.Info("key missing; waiting out a lease before taking it", "wait", l.missingWait)
	}
	if l.leading {
		switch {
		case p == nil:
			l.stepDown(ReasonKeyLost)
		case p.Session == "":
			l.session.requestReset(l.term.Session)
			l.stepDown(ReasonSessionInvalidated)
		case p.Session != l.term.Session:
			l.stepDown(ReasonKeyLost)
		}
		return
	}
	if !l.view.free() {
		l.holdOffUntil = time.Time{} // someone else leads: the resign hold-off is over
	}
	l.setLeader(decodeLeader(p))
}

// setLeader reports a change of leader (by session) to followers.
func (l *loop) setLeader(ld *Leader) {
	same := (ld == nil) == (l.leader == nil) && (ld == nil || ld.Session == l.leader.Session)
	l.leader = ld
	l.st.Leader = ld
	if same {
		return
	}
	if ld != nil {
		l.log.Info("leader changed", "leader", ld.ID, "session", ld.Session, "token", ld.Token)
	} else {
		l.log.Info("no leader")
	}
	l.emit(Event{Kind: KindLeaderChanged, Leader: ld})
}
