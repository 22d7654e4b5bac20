package elect

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// SessionConfig configures a Session. Zero durations take defaults.
type SessionConfig struct {
	Name          string        // session name shown by Consul
	TTL           time.Duration // default 10s
	LockDelay     time.Duration // default 10s: the lease of a leader holding a key with it
	RenewInterval time.Duration // while a key is held; default min(TTL/3, (LockDelay−1s)/3)
	Behavior      string        // "release" (default) or "delete"
	// CheckTTL > 0 binds the session to a TTL check registered in the
	// local agent and passed every CheckTTL/3 (fast crash detection).
	CheckTTL time.Duration
	CheckID  string // default "leaderd-<random>"
	// DestroyTimeout bounds the destroy at shutdown; default 5s. If destroy
	// takes longer than the TTL, the session is expired anyway.
	DestroyTimeout time.Duration
	Logger         *slog.Logger
}

func (s SessionConfig) withDefaults() SessionConfig {
	if s.TTL == 0 {
		s.TTL = DefaultTTL
	}
	if s.LockDelay == 0 {
		s.LockDelay = DefaultLockDelay
	}
	if s.RenewInterval == 0 {
		s.RenewInterval = renewDefault(s.TTL, s.LockDelay, DefaultMargin)
	}
	if s.Behavior == "" {
		s.Behavior = "release"
	}
	if s.CheckTTL > 0 && s.CheckID == "" {
		s.CheckID = "leaderd-" + randomHex(8)
	}
	if s.DestroyTimeout == 0 {
		s.DestroyTimeout = DefaultReleaseTimeout
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Name == "" {
		s.Name = "leaderd"
	}
	return s
}

// Session is a Consul session kept alive by Run: created, renewed (every
// RenewInterval while an election holds a key with it, lazily otherwise),
// and created anew when Consul says it is gone. Several elections can share
// one Session (one renew loop for many keys). Cancel the elections and wait
// for their Run to return before canceling the Session's Run, so they
// release their keys before the session is destroyed.
//
// A Session never destroys a session id that an election still holds a key
// with: when it gives an id up (lost check, reset, renew denied) it first
// withdraws the id, so the elections holding it step down (their leader's
// work stops, the key is released), and destroys it only once none holds it.
type Session struct {
	c     Consul
	cfg   SessionConfig
	reset chan string
	kick  chan struct{} // a key was taken: renew at the leader's pace
	now   chan struct{} // a key was handed to us: renew at once

	mu      sync.Mutex
	st      sessionState
	holds   map[string]int // session id → elections holding a key with it
	changed chan struct{}  // closed and replaced on every change of st or holds
}

// sessionState is what elections read from a Session.
type sessionState struct {
	ID      string    // "" while there is none
	Proof   time.Time // send time of the latest create or renew that succeeded for ID
	Err     error     // last error talking to Consul, nil after a success
	Attempt int       // consecutive failures
}

// NewSession validates cfg and returns a Session; call Run to bring it up.
func NewSession(c Consul, cfg SessionConfig) (*Session, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("elect: invalid session config: %w", err)
	}
	return newSession(c, cfg), nil
}

func newSession(c Consul, cfg SessionConfig) *Session {
	return &Session{
		c: c, cfg: cfg, reset: make(chan string, 1), kick: make(chan struct{}, 1), now: make(chan struct{}, 1),
		holds: map[string]int{}, changed: make(chan struct{}),
	}
}

// hold records that an election is about to hold (or try to take) a key
// with session id; unhold undoes it once the key is released or lost. The
// session id is not destroyed while it is held.
func (s *Session) hold(id string) {
	s.update(func(*sessionState) { s.holds[id]++ })
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// renewNow asks for a renew at once: a key was handed to a session whose
// last proof may be old, and its term's lease runs from the next one.
func (s *Session) renewNow() {
	select {
	case s.now <- struct{}{}:
	default:
	}
}

func (s *Session) unhold(id string) {
	s.update(func(*sessionState) {
		if s.holds[id]--; s.holds[id] <= 0 {
			delete(s.holds, id)
		}
	})
}

// held reports whether an election holds a key with id. Caller holds mu.
func (s *Session) heldLocked(id string) bool { return s.holds[id] > 0 }

// ID returns the current session id, "" while there is none.
func (s *Session) ID() string {
	st, _ := s.snapshot()
	return st.ID
}

func (s *Session) snapshot() (sessionState, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st, s.changed
}

func (s *Session) update(f func(*sessionState)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.st)
	close(s.changed)
	s.changed = make(chan struct{})
}

// requestReset asks Run to abandon session id (destroy it, best effort) and
// create a new one. It never blocks.
func (s *Session) requestReset(id string) {
	select {
	case s.reset <- id:
	default:
	}
}

// leaseEnd is the end of the local lease that a proof sent at t gives an
// election holding a key with this session: the safety rule. Consul can
// invalidate the session at any moment after t; nobody else can take the
// key before that moment + LockDelay.
func (s *Session) leaseEnd(t time.Time, margin time.Duration) time.Time {
	return t.Add(s.cfg.LockDelay - margin)
}

// Run keeps a session alive until ctx is canceled, then destroys it (bounded
// by DestroyTimeout) and returns nil. It returns an error only when Consul
// keeps refusing the session for a reason retrying can't fix (ACL denied,
// a TTL the agent does not accept).
func (s *Session) Run(ctx context.Context) error {
	log := s.cfg.Logger
	defer s.update(func(st *sessionState) { st.ID = "" })
	attempt := 0
	for {
		id, err := s.create(ctx)
		if ctx.Err() != nil {
			if id != "" {
				s.retire(ctx, id)
			}
			return nil
		}
		if err != nil {
			attempt++
			s.update(func(st *sessionState) { st.Err, st.Attempt = err, attempt })
			// A check registered a moment ago may not have reached the
			// servers yet ("Missing check"), so permanent-looking errors
			// get a few attempts before we give up.
			if !consulhttp.IsRetryable(err) && attempt >= 3 {
				return fmt.Errorf("elect: create session: %w", err)
			}
			log.Warn("create session failed", "attempt", attempt, "err", err)
			if !sleepCtx(ctx, backoff(attempt)) {
				return nil
			}
			continue
		}
		attempt = 0
		log.Debug("session created", "session", id)
		err = s.keep(ctx, id)
		s.retire(ctx, id)
		if ctx.Err() != nil || err != nil {
			return err
		}
	}
}

// retire gives session id up: it withdraws the id, so the elections
// holding a key with it step down, waits until none holds it, then
// destroys it. If ctx ends first while the id is still held, the session
// is left to expire: destroying it would free the key under a leader.
func (s *Session) retire(ctx context.Context, id string) {
	s.update(func(st *sessionState) {
		if st.ID == id {
			st.ID = ""
		}
	})
	for {
		s.mu.Lock()
		held, changed := s.heldLocked(id), s.changed
		s.mu.Unlock()
		if !held {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			s.cfg.Logger.Warn("session still holds a key at shutdown; leaving it to expire", "session", id)
			return
		}
	}
	s.destroy(id)
}
