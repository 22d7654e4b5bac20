package elect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// An Election loop's part in the candidate registry (registry.go): its own
// entry, its rank when the key becomes free, and, while it leads, the
// watch on the registry that brings transfer requests and candidates of a
// higher priority.
type registryState struct {
	entryKey   string
	priority   int
	hold       time.Duration
	step       time.Duration
	since      time.Time
	registered string // the session our entry is locked with ("": none)
	disabled   bool   // no permission on the registry: run without it
	retry      retry  // registering
	ranked     bool   // this free period's rank is applied (or not needed)
	rank       int    // this free period's rank, if rankKnown
	rankKnown  bool

	// While leading: the watch on the registry prefix, what it last
	// showed, and since when each higher-priority candidate was live.
	watch     watch[[]consulhttp.KVPair]
	entries   []CandidateEntry
	fresh     bool                 // entries came from the watch during this term
	firstSeen map[string]time.Time // by session
	handled   uint64               // ModifyIndex of the last transfer request acted on
}

func (r *registryState) init(l *loop, cfg Config) {
	r.entryKey = candidateKey(cfg.Key, cfg.Candidate.ID)
	r.priority, r.hold, r.step = cfg.Priority, cfg.PriorityHold, cfg.RankStep
	r.since = cfg.Candidate.StartedAt
	if r.since.IsZero() {
		r.since = time.Now()
	}
	r.firstSeen = map[string]time.Time{}
	r.watch.read = func(ctx context.Context, q consulhttp.QueryOptions) ([]consulhttp.KVPair, consulhttp.QueryMeta, error) {
		return l.c.ListKV(ctx, cfg.Key+"/", q)
	}
}

// registerDue says whether our entry must be (re)written for the current
// session.
func (l *loop) registerDue(now time.Time) bool {
	r := &l.reg
	return !r.disabled && l.sess.ID != "" && l.sess.ID != l.abandoned && r.registered != l.sess.ID && r.retry.due(now)
}

// register locks our registry entry with the current session.
func (l *loop) register() {
	sid := l.sess.ID
	e := CandidateEntry{Candidate: l.candidate, Priority: l.reg.priority, Session: sid, Since: l.reg.since, LockDelayMS: l.lockDelay.Milliseconds()}
	val, _ := json.Marshal(e)
	ctx, cancel := context.WithTimeout(l.ctx, l.releaseTimeout)
	_, ok, err := l.c.TxnKV(ctx, []consulhttp.TxnKVOp{{Verb: consulhttp.TxnLock, Key: l.reg.entryKey, Value: val, Session: sid}})
	cancel()
	switch {
	case err != nil && consulhttp.IsPermissionDenied(err):
		l.reg.disabled = true
		l.log.Warn("no permission on the candidate registry; running without an entry (no handover to us, no rank)", "entry", l.reg.entryKey, "err", err)
	case err != nil:
		if errors.Is(err, consulhttp.ErrSessionNotFound) && l.ctx.Err() == nil {
			l.session.requestReset(sid)
		}
		l.log.Debug("register failed", "err", err)
		l.reg.retry.failed(time.Now())
	case !ok:
		// Held by our previous session (released once it is destroyed),
		// in the lock-delay of an invalidated one, or held by another
		// candidate with our id: none of them passes in milliseconds.
		now := time.Now()
		d := max(l.reg.retry.failed(now), l.lockDelay/4)
		l.reg.retry.at = now.Add(d)
		l.log.Warn("registry entry held by another session or in its lock-delay; retrying", "entry", l.reg.entryKey, "retry_in", d)
	default:
		l.reg.registered, l.reg.retry = sid, retry{}
		l.log.Debug("registered", "entry", l.reg.entryKey, "priority", l.reg.priority)
	}
}

// deregister deletes our entry if our session still holds it.
func (l *loop) deregister(quick bool) {
	sid := l.reg.registered
	if sid == "" {
		return
	}
	l.reg.registered = ""
	ctx, cancel := l.writeCtx(quick)
	defer cancel()
	if _, _, err := l.c.TxnKV(ctx, []consulhttp.TxnKVOp{
		{Verb: consulhttp.TxnCheckSession, Key: l.reg.entryKey, Session: sid},
		{Verb: consulhttp.TxnDelete, Key: l.reg.entryKey},
	}); err != nil {
		l.log.Debug("deregister failed", "err", err)
	}
}

// readRegistry reads the registry (bounded like a write: it also runs on
// the way out), marking who holds the key as last seen.
func (l *loop) readRegistry() ([]CandidateEntry, error) {
	ctx, cancel := l.writeCtx(false)
	defer cancel()
	pairs, _, err := l.c.ListKV(ctx, CandidatesPrefix(l.key), consulhttp.QueryOptions{})
	if err != nil {
		return nil, err
	}
	return parseRegistry(l.key, pairs, l.view.last), nil
}

// The best-ranked candidate's polls around the end of a lock-delay: from
// rankZeroEarly before it (as dated by its own sighting of the free key,
// which may be late) every rankZeroPoll, until a rank step after it.
const (
	rankZeroEarly = 40 * time.Millisecond
	rankZeroPoll  = 20 * time.Millisecond
)

// rank delays our first attempt on a key that just became free by our
// rank among the live candidates: the best tries at once, each next one a
// step later unless it sees the key taken first (its watch shows it), so a
// crowd costs O(1) acquires. After an invalidation nobody can take the key
// before its lock-delay: the ranked wait counts from then.
func (l *loop) rank() {
	l.reg.ranked, l.reg.rankKnown = true, false
	entries, err := l.readRegistry()
	if err != nil {
		l.log.Debug("read registry failed; trying at once", "err", err)
		return
	}
	// Whoever just released the key steps aside (a resign's hold-off, a
	// handover that fell back, an exit): it does not count.
	if rec, ok := recordOf(l.view.last); ok && rec.Released {
		entries = slices.DeleteFunc(entries, func(c CandidateEntry) bool { return c.ID == rec.ID })
	}
	r := Rank(entries, l.sess.ID)
	l.reg.rank, l.reg.rankKnown = r, true
	base := l.view.freeSince
	if l.view.last == nil {
		// Missing: nobody takes it before the missing-key wait is over.
		base = l.view.missing.over(l.missingWait)
	}
	// A leaderd record not marked released was left by an invalidation:
	// nobody gets the key before its lock-delay. Anything else (released,
	// or a value we can't read) is tried without waiting for one.
	invalidated := false
	if rec, ok := recordOf(l.view.last); ok && !rec.Released {
		base, invalidated = base.Add(lockDelayOf(l.view.last, l.lockDelay)), true
	}
	at := base.Add(time.Duration(r) * l.reg.step)
	if r == 0 && invalidated {
		// The best needs no try during the lock-delay: it polls around its
		// end instead (see refused).
		at = base.Add(-rankZeroEarly)
	}
	if at.After(l.acquire.at) {
		l.acquire.at = at
	}
	l.log.Debug("ranked", "rank", r, "at", at)
}

// transfer is TransferTo: hand the key to the live candidate to ("": the
// best other one), or report ErrNoSuccessor and keep leading.
func (l *loop) transfer(to string) error {
	entries, err := l.readRegistry()
	if err != nil {
		return fmt.Errorf("elect: read candidates: %w", err)
	}
	succ := successor(entries, l.term.Session, to)
	if succ == nil {
		return ErrNoSuccessor
	}
	if !l.stepDownTo(ReasonTransferred, succ) {
		return fmt.Errorf("%w: %s vanished during the handover; the key was released", ErrNoSuccessor, succ.ID)
	}
	return nil
}

// handOver moves the key held by session sid to succ's session in one
// transaction (no lock-delay, no race); succ nil: the best live candidate
// from a fresh read of the registry. It reports whether the key moved.
func (l *loop) handOver(sid string, succ *CandidateEntry) bool {
	if succ != nil {
		return l.moveTo(sid, succ)
	}
	if l.reg.disabled {
		return false
	}
	// The registry as the leader's watch last showed it saves a read; the
	// transaction checks the successor's entry, and a failure reads afresh.
	if l.reg.fresh {
		l.reg.fresh = false
		if c := successor(l.reg.entries, sid, ""); c != nil && l.moveTo(sid, c) {
			return true
		}
	}
	entries, err := l.readRegistry()
	if err != nil {
		l.log.Warn("read registry failed; releasing", "err", err)
		return false
	}
	if succ = successor(entries, sid, ""); succ == nil {
		return false
	}
	return l.moveTo(sid, succ)
}

// moveTo moves the key held by session sid to succ's session in one
// transaction; it reports whether it did.
func (l *loop) moveTo(sid string, succ *CandidateEntry) bool {
	now := time.Now()
	gone, _ := json.Marshal(record{Candidate: l.candidate, AcquiredAt: now, Released: true})
	theirs, _ := json.Marshal(record{Candidate: succ.Candidate, AcquiredAt: now, LockDelayMS: succ.LockDelayMS})
	ctx, cancel := l.writeCtx(false)
	defer cancel()
	// The last op checks that the successor is still registered: one that
	// deregistered on its way out (see quit) is never handed the key after
	// its last look at it.
	_, ok, err := l.c.TxnKV(ctx, []consulhttp.TxnKVOp{
		{Verb: consulhttp.TxnUnlock, Key: l.key, Session: sid, Value: gone},
		{Verb: consulhttp.TxnLock, Key: l.key, Session: succ.Session, Value: theirs},
		{Verb: consulhttp.TxnCheckSession, Key: candidateKey(l.key, succ.ID), Session: succ.Session},
	})
	if err != nil || !ok {
		l.log.Warn("handover failed", "to", succ.ID, "err", err)
		return false
	}
	l.log.Info("handed over", "to", succ.ID, "session", succ.Session, "priority", succ.Priority)
	return true
}

// recordOf decodes the value of key p.
func recordOf(p *consulhttp.KVPair) (record, bool) {
	var r record
	if p == nil || json.Unmarshal(p.Value, &r) != nil {
		return r, false
	}
	return r, true
}

// takeHanded starts a term on key p, which a handover moved to our
// session: its token is the handover's ModifyIndex (what everyone saw),
// its proof our session's latest. Any proof will do for safety: the
// session was valid when it was sent, and it is invalidated, if ever,
// after it locked p (else that lock would have failed), so nobody takes p
// before the proof + lock-delay. A proof too old to give a useful lease is
// renewed first (at once); the term starts when the renew answers.
func (l *loop) takeHanded(p *consulhttp.KVPair) {
	sid := l.sess.ID
	if l.handed == nil {
		l.session.hold(sid)
		l.session.renewNow()
		l.acquire, l.holdOffUntil, l.reg.ranked = retry{}, time.Time{}, true
	}
	l.handed = p
	if l.sess.Proof.IsZero() {
		return
	}
	end := l.session.leaseEnd(l.sess.Proof, l.margin)
	if time.Until(end) < l.session.cfg.RenewInterval {
		l.log.Debug("handed the key; renewing before leading", "lease_left", time.Until(end))
		return
	}
	l.handed = nil
	l.view.confirmed(p)
	l.leader = decodeLeader(p)
	l.leader.Candidate = l.candidate
	l.startTerm(sid, p.ModifyIndex, l.sess.Proof, end, l.leader, "handed_over", true)
}
