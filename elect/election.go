package elect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// ErrNotLeader is returned by Resign when this candidate does not lead.
var ErrNotLeader = errors.New("elect: not leader")

// Election campaigns for one key. Create it with New, run it with Run.
type Election struct {
	c          Consul
	cfg        Config
	log        *slog.Logger
	sess       *Session
	ownSession bool
	events     *eventQueue
	resign     chan resignRequest

	mu    sync.Mutex
	state State
}

// New validates cfg (reporting every problem at once) and returns an
// Election that is not running yet.
func New(c Consul, cfg Config) (*Election, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("elect: invalid config: %w", err)
	}
	e := &Election{
		c:      c,
		cfg:    cfg,
		log:    cfg.Logger.With("key", cfg.Key),
		events: newEventQueue(),
		resign: make(chan resignRequest),
		state:  State{Key: cfg.Key},
	}
	if cfg.Session != nil {
		e.sess = cfg.Session
	} else {
		sc := cfg.sessionConfig().withDefaults()
		sc.DestroyTimeout = cfg.ReleaseTimeout
		e.sess = newSession(c, sc)
		e.ownSession = true
	}
	return e, nil
}

// Events returns the ordered event stream. It never blocks Run; read it
// until it is closed (after Run returns). Call it before Run to see every
// event: events are only kept once somebody asked for them.
func (e *Election) Events() <-chan Event { return e.events.channel() }

// State returns a snapshot.
func (e *Election) State() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.state
	if s.Leader != nil {
		l := *s.Leader
		s.Leader = &l
	}
	return s
}

func (e *Election) setState(f func(*State)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(&e.state)
}

// resignRequest asks the loop to step down; token 0 means any term.
type resignRequest struct {
	token uint64
	reply chan error
}

// Resign steps down if this candidate leads: OnStepDown, then the key is
// released so a follower takes over at once (no lock-delay). The candidate
// stays in the race but won't take the key back for ResignHoldOff unless
// another leader shows up first. Returns ErrNotLeader if it did not lead.
func (e *Election) Resign(ctx context.Context) error { return e.resign1(ctx, 0) }

// ResignTerm is Resign for the term with fencing token token only: it
// returns ErrNotLeader, and does nothing, if that term is already over
// (say a late report about an earlier term must not end a new one).
func (e *Election) ResignTerm(ctx context.Context, token uint64) error {
	if token == 0 {
		return ErrNotLeader
	}
	return e.resign1(ctx, token)
}

func (e *Election) resign1(ctx context.Context, token uint64) error {
	return askResign(ctx, e.resign, token)
}

// askResign sends a resign request to a running loop and waits for its
// answer, or for ctx.
func askResign(ctx context.Context, loop chan<- resignRequest, token uint64) error {
	req := resignRequest{token: token, reply: make(chan error, 1)}
	select {
	case loop <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run campaigns until ctx is canceled. On cancel it stops leading
// (OnStepDown), releases the key, destroys its own session and returns nil.
// It returns an error only for problems retrying can't fix, such as an ACL
// token without the permissions it needs.
func (e *Election) Run(ctx context.Context) error {
	defer e.events.close()
	return runWithSession(ctx, e.sess, e.ownSession, func(sessErr <-chan error) (sessGone bool, err error) {
		l := &loop{e: e, ctx: ctx, sessErr: sessErr}
		err = l.run()
		return l.sessGone, err
	})
}

// runWithSession runs a campaign loop beside its own session's Run (when
// own), which it outlives: the session is canceled only once the loop has
// returned (every key released), then waited for. The loop reports
// whether it already took the session's result from sessErr.
func runWithSession(ctx context.Context, sess *Session, own bool, loop func(sessErr <-chan error) (sessGone bool, err error)) error {
	sessErr := make(chan error, 1)
	var stopSession context.CancelFunc = func() {}
	if own {
		var sctx context.Context
		sctx, stopSession = context.WithCancel(context.WithoutCancel(ctx))
		go func() { sessErr <- sess.Run(sctx) }()
	}
	sessGone, err := loop(sessErr)
	stopSession()
	if own && !sessGone {
		if serr := <-sessErr; err == nil && serr != nil && !errors.Is(serr, context.Canceled) {
			err = serr
		}
	}
	return err
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
