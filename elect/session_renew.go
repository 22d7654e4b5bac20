package elect

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// The Consul side of a Session: create, renew, pass the check, destroy.

// create registers the fast-crash-detection check if configured and creates
// a session, publishing it with its proofs.
func (s *Session) create(ctx context.Context) (string, error) {
	req := consulhttp.SessionRequest{
		Name:      s.cfg.Name,
		TTL:       s.cfg.TTL,
		LockDelay: s.cfg.LockDelay,
		Behavior:  s.cfg.Behavior,
		// serfHealth: a node that fails ends the session (then lock-delay
		// runs), as consul lock's sessions do. The lease never counted
		// on the TTL, so this shortens nothing a leader relies on.
		NodeChecks: []string{"serfHealth"},
	}
	if s.cfg.CheckTTL > 0 {
		err := s.c.RegisterCheck(ctx, consulhttp.AgentCheck{
			CheckID: s.cfg.CheckID,
			Name:    "leaderd session liveness",
			Notes:   "passed by leaderd every check TTL/3; a session bound to it ends when leaderd stops passing it",
			TTL:     s.cfg.CheckTTL.String(),
			Status:  consulhttp.StatusPassing,
		})
		if err != nil {
			return "", fmt.Errorf("register check %s: %w", s.cfg.CheckID, err)
		}
		// Registering an existing check keeps its status (Consul avoids
		// flapping: agent/agent.go, AddCheck), and an agent reloads our
		// check after its own restart, critical once its TTL passed. Pass
		// it explicitly, or no session could ever be bound to it again.
		if err := s.c.UpdateTTL(ctx, s.cfg.CheckID, consulhttp.StatusPassing, "leaderd starting a session"); err != nil {
			return "", fmt.Errorf("pass check %s: %w", s.cfg.CheckID, err)
		}
		req.NodeChecks = append(req.NodeChecks, s.cfg.CheckID)
	}
	sent := time.Now()
	id, err := s.c.CreateSession(ctx, req)
	if err != nil {
		return "", err
	}
	s.update(func(st *sessionState) {
		*st = sessionState{ID: id, Proof: sent}
	})
	return id, nil
}

// keep renews session id (and passes its check) until it is lost, a reset
// is requested, or ctx is canceled; Run then retires it. It returns an
// error only when Consul denies the renew (ACL): retrying can't fix that.
// The renew pace is the leader's while an election holds a key with id,
// lazy otherwise.
func (s *Session) keep(ctx context.Context, id string) error {
	log := s.cfg.Logger.With("session", id)
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lost := make(chan struct{})
	if s.cfg.CheckTTL > 0 {
		go s.passCheck(kctx, id, lost)
	}
	interval := func() time.Duration {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.heldLocked(id) {
			return s.cfg.RenewInterval
		}
		return s.cfg.lazyRenew()
	}
	due := time.Now().Add(interval()) // when the renew timer fires
	renew := time.NewTimer(time.Until(due))
	defer renew.Stop()
	reset := func(d time.Duration) { due = time.Now().Add(d); renew.Reset(d) }
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-lost:
			log.Warn("session check lost; creating a new session")
			return nil
		case rid := <-s.reset:
			if rid == id {
				log.Info("session abandoned; creating a new session")
				return nil
			}
		case <-s.kick:
			// A key was just taken: from now on renew at the leader's
			// pace. Only ever sooner: an acquire proves the session to
			// us but does not reset Consul's TTL timer, so pushing the
			// renew back on every acquire would let a session that
			// acquires often expire.
			if failures == 0 && time.Until(due) > s.cfg.RenewInterval {
				reset(s.cfg.RenewInterval)
			}
		case <-s.now:
			if failures == 0 {
				reset(0)
			}
		case <-renew.C:
			sent := time.Now()
			// Half an interval: a hung renew must leave time to retry
			// within the lease (lock-delay − margin ≥ 2 intervals).
			rctx, rcancel := context.WithTimeout(kctx, s.cfg.RenewInterval/2)
			_, err := s.c.RenewSession(rctx, id)
			rcancel()
			switch {
			case errors.Is(err, consulhttp.ErrSessionNotFound):
				log.Warn("session not found on renew; creating a new session")
				return nil
			case consulhttp.IsPermissionDenied(err):
				return fmt.Errorf("elect: renew session: %w", err)
			case err != nil:
				if ctx.Err() != nil {
					return nil
				}
				failures++
				s.update(func(st *sessionState) { st.Err, st.Attempt = err, failures })
				log.Warn("renew session failed", "attempt", failures, "err", err)
				reset(min(backoff(failures), s.cfg.RenewInterval))
			default:
				failures = 0
				s.update(func(st *sessionState) {
					if st.ID == id {
						st.Proof, st.Err, st.Attempt = sent, nil, 0
					}
				})
				log.Debug("session renewed", "latency", time.Since(sent))
				// Paced from the send time, the proof's own time.
				reset(max(interval()-time.Since(sent), 0))
			}
		}
	}
}

// passCheck keeps the fast-crash-detection check passing. A check the agent
// no longer has (it restarted from a clean state) means the session bound to
// it is invalidated: close lost.
func (s *Session) passCheck(ctx context.Context, id string, lost chan<- struct{}) {
	every := s.cfg.checkInterval()
	t := time.NewTimer(every)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, every)
		err := s.c.UpdateTTL(rctx, s.cfg.CheckID, consulhttp.StatusPassing, "leaderd alive")
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, consulhttp.ErrCheckNotFound):
			close(lost)
			return
		case err != nil:
			failures++
			s.update(func(st *sessionState) { st.Err, st.Attempt = err, failures })
			t.Reset(min(backoff(failures), every))
		default:
			failures = 0
			// A pass proves the check, not the session: it never
			// extends the lease.
			s.update(func(st *sessionState) {
				if st.ID == id {
					st.Err, st.Attempt = nil, 0
				}
			})
			t.Reset(every)
		}
	}
}

// destroy ends session id and its check, bounded by DestroyTimeout.
func (s *Session) destroy(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DestroyTimeout)
	defer cancel()
	if err := s.c.DestroySession(ctx, id); err != nil {
		s.cfg.Logger.Warn("destroy session failed; it will expire", "session", id, "err", err)
	}
	if s.cfg.CheckTTL > 0 {
		if err := s.c.DeregisterCheck(ctx, s.cfg.CheckID); err != nil {
			s.cfg.Logger.Warn("deregister check failed", "check", s.cfg.CheckID, "err", err)
		}
	}
	s.update(func(st *sessionState) {
		if st.ID == id {
			st.ID = ""
		}
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
