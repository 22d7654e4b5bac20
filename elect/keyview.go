package elect

import (
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// keyView is an Election's key as its loop last saw it, and the timing of
// a missing key: a missing key is taken only lock-delay + margin after the
// receipt of the first answer that showed it missing, counting afresh after
// any watch error or index going backwards.
type keyView struct {
	last      *consulhttp.KVPair // nil: missing
	seen      bool               // an answer was taken in since the last gap
	freeSince time.Time          // when we first saw the key free
	missing   absence
}

// take takes in the key as read in an answer received at recv. It reports
// whether the key became free (or was first seen free) with this answer,
// the key as it was before, and whether the answer started a missing
// key's wait.
func (v *keyView) take(p *consulhttp.KVPair, recv time.Time) (freed bool, prev *consulhttp.KVPair, missingStarted bool) {
	wasFree := !v.seen || v.free()
	prev = v.last
	v.last, v.seen = p, true
	switch {
	case !v.free():
		v.freeSince = time.Time{}
	case !wasFree || v.freeSince.IsZero():
		v.freeSince = time.Now()
		freed = true
	}
	return freed, prev, v.missing.saw(p != nil, recv)
}

// free says whether the key as last seen is held by no session.
func (v *keyView) free() bool { return v.last == nil || v.last.Session == "" }

// confirmed takes in the key as read back by a consistent read.
func (v *keyView) confirmed(p *consulhttp.KVPair) {
	v.last = p
	v.missing.reset()
}

// forget starts afresh after a gap in what was seen: the next answer tells
// the key as it is now, and a missing key's wait counts from it.
func (v *keyView) forget() {
	v.seen = false
	v.missing.reset()
}

// clear forgets the key itself too (after a term): read it again before
// trying to acquire.
func (v *keyView) clear() {
	v.last = nil
	v.forget()
}

// takeable says whether the key may be acquired by session sid at now,
// waiting out a missing key for wait.
func (v *keyView) takeable(sid string, now time.Time, wait time.Duration) bool {
	if !v.seen {
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
	if v.last == nil {
		return !now.Before(v.missing.over(wait))
	}
	return v.last.Session == "" || v.last.Session == sid
}
