package elect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// Slots lets up to Limit candidates hold a slot at once ("run 2 of 5"), in
// the key layout of Consul's own semaphore (api/semaphore.go, what
// `consul lock -n` uses), so a fleet can move between the two without a
// flag day:
//
//   - each contender holds <prefix>/<session> with its session (flags
//     SemaphoreFlags, value: its Candidate record);
//   - <prefix>/.lock (flags SemaphoreFlags) holds
//     {"Limit":N,"Holders":{"<session>":true}}, changed only by CAS; a
//     contender joins the holders when fewer than Limit remain.
//
// # The safety rule, per holder
//
// A holder acts only while its own lease holds: t_v + LockDelay − Margin,
// t_v the send time of its last session create or renew answered 200, or of
// the transaction that added it to the holders (that transaction also
// checks that its session holds its contender key, so its success proves
// the session valid).
//
// Consul's lock-delay protects nothing here: each contender has a key of
// its own. What keeps a dead holder's slot from others is the pruning: a
// holder is dropped from .lock only LockDelay + Margin after the receipt
// of the first answer that showed it in the holders with its contender key
// missing or without its session, counting afresh after any gap in what
// was seen. Its last proof was sent before that answer, so its lease is
// over by then. LockDelay is the one the holder's contender record
// declared; for a holder whose record the pruner never saw (its key went
// with its session before the pruner looked) it is MaxLockDelay, the
// longest lease any holder can have. `consul lock -n` prunes such a holder at once: in a
// semaphore shared with it, that protection is lost.
//
// A missing .lock is no proof that nobody holds a slot (Consul may have
// lost its state): it is created only LockDelay + Margin after the first
// answer that showed it missing.
//
// Fencing: each slot term's token is the ModifyIndex of the .lock write
// that added the holder, a Raft index: strictly increasing across all
// slot terms of all candidates.
//
// Events and State are as an Election's: State's Leader is this candidate
// while it holds a slot (with its token), nil otherwise; Holders lists
// them all.
type Slots struct {
	campaign
	c       SlotsConsul
	limit   int
	holders []Holder // guarded by campaign.mu
}

// SlotsConsul is what Slots needs of Consul: what an Election needs (which
// includes prefix reads and KV transactions). *consulhttp.Client satisfies
// it.
type SlotsConsul = Consul

var _ SlotsConsul = (*consulhttp.Client)(nil)

const (
	// SemaphoreFlags are the flags of a semaphore's keys, Consul's
	// api.SemaphoreFlagValue.
	SemaphoreFlags uint64 = 0xe0f69a2baa414de0
	// SemaphoreLockKey is the key under the prefix that holds the holders.
	SemaphoreLockKey = ".lock"
	// DefaultSlotsTemplate is the default prefix of a service's slots.
	DefaultSlotsTemplate = "services/%s/slots"
	// FieldLimit names the slot count in a FieldError.
	FieldLimit = "Limit"
)

// SlotsPrefixFor fills the default slots prefix with a service name.
func SlotsPrefixFor(service string) string { return fmt.Sprintf(DefaultSlotsTemplate, service) }

// ErrSlotsConflict is returned by Run when the prefix's .lock is not a
// semaphore of limit Limit: another use of the keys, or other candidates
// configured with another limit (Consul's semaphore refuses that too).
var ErrSlotsConflict = errors.New("slots: .lock does not match")

// Holder is one holder of a slot as last seen.
type Holder struct {
	Candidate           // from its contender key's value; empty for a `consul lock` contender
	Session   string    `json:"session"`
	Live      bool      `json:"live"`                // its contender key is held by its session
	DeadSince time.Time `json:"dead_since,omitzero"` // local receipt of the first answer that showed it dead
	Self      bool      `json:"self,omitempty"`
}

// semLock is the value of .lock, as Consul's semaphore writes it.
type semLock struct {
	Limit   int
	Holders map[string]bool
}

// NewSlots validates cfg and returns Slots that are not running yet.
// cfg.Key is the prefix. A session's Behavior defaults to "delete" here,
// as Consul's semaphore sessions do: a dead contender's key goes with it.
func NewSlots(c SlotsConsul, cfg Config, limit int) (*Slots, error) {
	if cfg.Session == nil && cfg.Behavior == "" {
		cfg.Behavior = "delete"
	}
	cfg = cfg.withDefaults()
	err := cfg.validate()
	if limit < 1 {
		err = errors.Join(err, fieldErr([]string{FieldLimit}, "limit %d must be at least 1", limit))
	}
	if cfg.Priority != 0 {
		err = errors.Join(err, fieldErr([]string{FieldPriority}, "priorities are for a single leader: slots have no registry"))
	}
	if err != nil {
		return nil, fmt.Errorf("elect: invalid config: %w", err)
	}
	s := &Slots{c: c, limit: limit}
	s.init(c, cfg)
	return s, nil
}

// Limit is the number of slots.
func (s *Slots) Limit() int { return s.limit }

// Holders returns the holders as last seen, sorted by session.
func (s *Slots) Holders() []Holder {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Holder(nil), s.holders...)
}

// ResignTerm gives up the slot term with fencing token token (0: any),
// like Election.ResignTerm: the holder leaves .lock and stays a contender,
// not joining again for ResignHoldOff unless another holder joins first.
func (s *Slots) ResignTerm(ctx context.Context, token uint64) error {
	return s.askResign(ctx, token)
}

// Run campaigns until ctx is canceled. On cancel it steps down
// (OnStepDown), leaves .lock, deletes its contender key, destroys its own
// session and returns nil. It returns an error only for problems retrying
// can't fix: ACL denied, ErrSlotsConflict.
func (s *Slots) Run(ctx context.Context) error {
	return s.run(ctx, func(sessErr <-chan error) runner { return newSlotsLoop(s, ctx, sessErr) })
}

func (s *Slots) lockKey() string                { return s.cfg.Key + "/" + SemaphoreLockKey }
func (s *Slots) contenderKey(sid string) string { return s.cfg.Key + "/" + sid }

func decodeLock(p *consulhttp.KVPair, limit int) (semLock, error) {
	if p == nil || len(p.Value) == 0 {
		return semLock{Limit: limit, Holders: map[string]bool{}}, nil
	}
	if p.Flags != SemaphoreFlags {
		return semLock{}, fmt.Errorf("%w: %s has flags %#x, not a semaphore's %#x", ErrSlotsConflict, p.Key, p.Flags, SemaphoreFlags)
	}
	var l semLock
	if err := json.Unmarshal(p.Value, &l); err != nil {
		return semLock{}, fmt.Errorf("%w: %s: %v", ErrSlotsConflict, p.Key, err)
	}
	if l.Limit != limit {
		return semLock{}, fmt.Errorf("%w: %s has limit %d, ours is %d", ErrSlotsConflict, p.Key, l.Limit, limit)
	}
	if l.Holders == nil {
		l.Holders = map[string]bool{}
	}
	return l, nil
}

// holderOf describes session sid from its contender key p (nil: missing).
func holderOf(sid string, p *consulhttp.KVPair) Holder {
	h := Holder{Session: sid, Live: p != nil && p.Session == sid}
	var r record
	if p != nil && json.Unmarshal(p.Value, &r) == nil {
		h.Candidate = r.Candidate
	}
	return h
}

func sortHolders(hs []Holder) {
	sort.Slice(hs, func(i, j int) bool { return hs[i].Session < hs[j].Session })
}

// KVLister is what CurrentHolders needs; *consulhttp.Client and every
// SlotsConsul satisfy it.
type KVLister interface {
	ListKV(ctx context.Context, prefix string, q consulhttp.QueryOptions) ([]consulhttp.KVPair, consulhttp.QueryMeta, error)
}

// CurrentHolders reads who holds a slot under prefix now, without
// campaigning: the holders in .lock with their contender keys. A holder
// whose key is gone or lost its session is listed with Live false.
func CurrentHolders(ctx context.Context, c KVLister, prefix string) (limit int, hs []Holder, err error) {
	pairs, _, err := c.ListKV(ctx, prefix+"/", consulhttp.QueryOptions{})
	if err != nil {
		return 0, nil, err
	}
	byKey := map[string]*consulhttp.KVPair{}
	for i := range pairs {
		byKey[pairs[i].Key] = &pairs[i]
	}
	lp := byKey[prefix+"/"+SemaphoreLockKey]
	if lp == nil {
		return 0, nil, nil
	}
	var l semLock
	if err := json.Unmarshal(lp.Value, &l); err != nil || lp.Flags != SemaphoreFlags {
		return 0, nil, fmt.Errorf("%w: %s is not a semaphore lock", ErrSlotsConflict, lp.Key)
	}
	for sid := range l.Holders {
		hs = append(hs, holderOf(sid, byKey[prefix+"/"+sid]))
	}
	sortHolders(hs)
	return l.Limit, hs, nil
}
