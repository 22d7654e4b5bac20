package elect

import (
	"context"
	"errors"
	"maps"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// slotsLoop is the state of one Slots' Run: the shared campaign loop, the
// prefix as last seen and the join attempts. Only its goroutine touches
// it. Contending, joining and leaving are in slots_join.go.
type slotsLoop struct {
	campaignLoop[[]consulhttp.KVPair]
	s *Slots
	c SlotsConsul

	contender string // session our contender key is held with; "" none

	seen        bool                          // an answer was taken in since the last gap
	stale       bool                          // a join lost its CAS: wait for a newer answer
	pairs       map[string]*consulhttp.KVPair // keys under the prefix as last seen
	lockPair    *consulhttp.KVPair            // .lock as last seen (nil: missing)
	lock        semLock
	lockMissing absence
	deadSince   map[string]time.Time     // holder → receipt of the first answer that showed it in .lock and dead
	delays      map[string]time.Duration // holder → lock-delay its contender record declared

	join retry // earliest next contend or join attempt
}

var _ loopKind[[]consulhttp.KVPair] = (*slotsLoop)(nil)

func newSlotsLoop(s *Slots, ctx context.Context, sessErr <-chan error) *slotsLoop {
	l := &slotsLoop{s: s, c: s.c, deadSince: map[string]time.Time{}, delays: map[string]time.Duration{}}
	prefix := s.cfg.Key + "/"
	l.init(&s.campaign, l, ctx, sessErr, func(ctx context.Context, q consulhttp.QueryOptions) ([]consulhttp.KVPair, consulhttp.QueryMeta, error) {
		return s.c.ListKV(ctx, prefix, q)
	})
	return l
}

func (l *slotsLoop) act(now time.Time) bool {
	switch {
	case l.contender == "" && l.sess.ID != "" && l.sess.ID != l.abandoned && l.join.due(now):
		l.contend()
	case !l.leading && l.canJoin(now) && l.join.due(now):
		l.tryJoin()
	default:
		return false
	}
	return true
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
		d = l.lockDelay
	default:
		d = MaxLockDelay
	}
	return d + l.margin
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
	if l.lockPair == nil && now.Before(l.lockMissing.over(l.wait(""))) {
		return false
	}
	return len(l.kept(now)) < l.s.limit
}

func (l *slotsLoop) wakeAt(now time.Time, earliest func(time.Time)) {
	if l.leading {
		return
	}
	earliest(l.join.at)
	if l.seen && l.lockPair == nil {
		earliest(l.lockMissing.over(l.wait("")))
	}
	for sid, ds := range l.deadSince {
		earliest(ds.Add(l.wait(sid)))
	}
}

func (l *slotsLoop) onSessionChange() bool {
	if l.contender != "" && l.sess.ID != l.contender {
		l.dropContender(true)
		return true
	}
	return false
}

func (l *slotsLoop) quit(quick bool) { l.dropContender(quick) }

// Slots have no successor to hand a slot to, and no registry.
func (l *slotsLoop) transfer(string) error {
	return errors.New("elect: slots do not transfer")
}

func (l *slotsLoop) registry() <-chan answer[[]consulhttp.KVPair] { return nil }

func (l *slotsLoop) onRegistry(answer[[]consulhttp.KVPair]) {}

// forget starts what was seen afresh: after a gap, a dead holder's or a
// missing .lock's wait counts again from the next answer, and that read
// doesn't block (index 0): nothing may be left to change under the prefix.
func (l *slotsLoop) forget() {
	l.seen, l.watch.index = false, 0
	l.lockMissing.reset()
	clear(l.deadSince)
}

func (l *slotsLoop) onWatch(a answer[[]consulhttp.KVPair]) {
	ok, backwards := l.takeAnswer(a, "prefix")
	if !ok {
		return
	}
	if backwards {
		l.forget()
	}
	l.observe(a.val, a.recv)
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
	if l.lockMissing.saw(lp != nil, recv) {
		l.log.Info("semaphore lock missing; waiting out a lease before creating it", "wait", l.wait(""))
	}
	hs := make([]Holder, 0, len(lk.Holders))
	for sid := range lk.Holders {
		cp := l.pairs[l.s.contenderKey(sid)]
		h := holderOf(sid, cp)
		if cp != nil {
			l.delays[sid] = lockDelayOf(cp, l.lockDelay)
		}
		switch ds, dead := l.deadSince[sid]; {
		case h.Live:
			delete(l.deadSince, sid)
		case !dead:
			l.deadSince[sid] = recv
			l.log.Info("holder seen dead; its slot is free after its lease", "holder", sid, "wait", l.wait(sid))
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
		l.log.Info("holders changed", "holders", len(lk.Holders), "limit", l.s.limit)
	}
	if l.leading {
		own := l.pairs[l.s.contenderKey(l.term.Session)]
		switch {
		case own == nil || own.Session != l.term.Session:
			l.session.requestReset(l.term.Session)
			l.stepDown(ReasonSessionInvalidated)
		case !lk.Holders[l.term.Session]:
			l.stepDown(ReasonKeyLost)
		}
	}
}
