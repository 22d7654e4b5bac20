package elect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// ErrNotLeader is returned by Resign when this candidate does not lead.
var ErrNotLeader = errors.New("elect: not leader")

// Election campaigns for one key. Create it with New, run it with Run.
type Election struct {
	campaign
	c Consul
}

// New validates cfg (reporting every problem at once) and returns an
// Election that is not running yet.
func New(c Consul, cfg Config) (*Election, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("elect: invalid config: %w", err)
	}
	e := &Election{c: c}
	e.init(c, cfg)
	return e, nil
}

// Resign steps down if this candidate leads: OnStepDown, then the key is
// released so a follower takes over at once (no lock-delay). The candidate
// stays in the race but won't take the key back for ResignHoldOff unless
// another leader shows up first. Returns ErrNotLeader if it did not lead.
func (e *Election) Resign(ctx context.Context) error { return e.askResign(ctx, 0) }

// ResignTerm is Resign for the term with fencing token token only: it
// returns ErrNotLeader, and does nothing, if that term is already over
// (say a late report about an earlier term must not end a new one).
func (e *Election) ResignTerm(ctx context.Context, token uint64) error {
	if token == 0 {
		return ErrNotLeader
	}
	return e.askResign(ctx, token)
}

// ErrNoSuccessor is returned by TransferTo when no live candidate (or not
// the one named) could take the key: the leader then stays leader, or, if
// the successor vanished during the handover, the key was released.
var ErrNoSuccessor = errors.New("elect: no successor")

// TransferTo hands leadership over to the live candidate id (empty: the
// best other candidate, see Config.Priority) in one transaction: this
// candidate steps down (OnStepDown: its work has stopped), then the key
// moves to the successor's session, which leads as soon as it sees it, with
// no race and no lock-delay. It returns nil once the key moved,
// ErrNotLeader if this candidate does not lead, and ErrNoSuccessor if no
// such candidate is live (nothing changes) or the successor vanished during
// the handover (the key was released instead).
func (e *Election) TransferTo(ctx context.Context, id string) error {
	return e.askTransfer(ctx, id)
}

// Run campaigns until ctx is canceled. On cancel it stops leading
// (OnStepDown), releases the key, destroys its own session and returns nil.
// It returns an error only for problems retrying can't fix, such as an ACL
// token without the permissions it needs.
func (e *Election) Run(ctx context.Context) error {
	return e.run(ctx, func(sessErr <-chan error) runner { return newLoop(e, ctx, sessErr) })
}

// record is the JSON value a candidate writes into the key.
type record struct {
	Candidate
	AcquiredAt  time.Time `json:"acquired_at"`
	LockDelayMS int64     `json:"lock_delay_ms"`
	Released    bool      `json:"released,omitempty"`
}

func decodeLeader(p *consulhttp.KVPair) *Leader {
	if p == nil || p.Session == "" {
		return nil
	}
	l := &Leader{Session: p.Session, Token: p.ModifyIndex}
	var r record
	if json.Unmarshal(p.Value, &r) == nil {
		l.Candidate, l.Since = r.Candidate, r.AcquiredAt
	}
	return l
}

// lockDelayOf is the lock-delay the last holder's session declared in its
// record, or fallback if it can't be read.
func lockDelayOf(p *consulhttp.KVPair, fallback time.Duration) time.Duration {
	var r record
	if p == nil || json.Unmarshal(p.Value, &r) != nil || r.LockDelayMS < 0 {
		return fallback
	}
	// Compare in milliseconds: a huge value would overflow a Duration.
	if r.LockDelayMS >= MaxLockDelay.Milliseconds() {
		return MaxLockDelay
	}
	return time.Duration(r.LockDelayMS) * time.Millisecond
}
