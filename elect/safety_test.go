package elect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// stepDownWitness runs one election whose OnStepDown records what Consul
// looked like at that moment: the leader's work is still running then, so
// its session must still exist and hold the key.
type stepDownWitness struct {
	f  *fakeConsul
	mu sync.Mutex
	at []string // "destroys=N holder=S term=S" per step-down
}

func (w *stepDownWitness) onStepDown(t Term, _ Reason) {
	w.f.mu.Lock()
	holder := ""
	if p := w.f.kv["services/web/leader"]; p != nil {
		holder = p.Session
	}
	line := fmt.Sprintf("destroys=%d holder=%s term=%s", w.f.calls["destroy"], holder, t.Session)
	w.f.mu.Unlock()
	w.mu.Lock()
	w.at = append(w.at, line)
	w.mu.Unlock()
}

func (w *stepDownWitness) lines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.at...)
}

func runWitnessed(t *testing.T, f *fakeConsul, cfg Config) (*Election, *stepDownWitness, context.CancelFunc, chan error) {
	t.Helper()
	w := &stepDownWitness{f: f}
	cfg.Key, cfg.Candidate.ID, cfg.OnStepDown = "services/web/leader", "a", w.onStepDown
	ctx, cancel := context.WithCancel(t.Context())
	e, done := runElection(t, ctx, f, cfg)
	return e, w, cancel, done
}

// runElection starts Run of a new Election; done gets Run's result.
func runElection(t *testing.T, ctx context.Context, c Consul, cfg Config) (*Election, chan error) {
	t.Helper()
	e, err := New(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	return e, done
}

// Found item 1: the session was destroyed (freeing the key) before the
// elections on it had stepped down. Whatever makes the session give up its
// id, OnStepDown runs while it still exists and holds the key; the destroy
// comes after.
func TestSessionIsDestroyedOnlyAfterStepDown(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		fail   func(op string) error
		runErr bool
	}{
		{
			// The local agent forgot the check (say it restarted from a
			// clean state) while the servers still have it.
			name: "check answers 404",
			cfg:  Config{CheckTTL: time.Second, LockDelay: 3 * time.Second},
			fail: func(op string) error {
				if op == "update_ttl" {
					se := &consulhttp.StatusError{Method: "PUT", Path: "/v1/agent/check/update/x", Code: http.StatusNotFound, Body: "Unknown check ID"}
					return fmt.Errorf("%w (%w)", consulhttp.ErrCheckNotFound, se) // as consulhttp.Client.UpdateTTL reports it
				}
				return nil
			},
		},
		{
			name: "renew denied",
			cfg:  Config{},
			fail: func(op string) error {
				if op == "renew" {
					return &consulhttp.StatusError{Method: "PUT", Path: "/v1/session/renew/x", Code: http.StatusForbidden, Body: "Permission denied"}
				}
				return nil
			},
			runErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(t)
				e, w, cancel, done := runWitnessed(t, f, tc.cfg)
				synctest.Wait()
				if !e.State().Leading {
					t.Fatal("a does not lead")
				}
				sid := e.State().Session
				f.mu.Lock()
				f.fail = tc.fail
				f.mu.Unlock()
				waitFor(t, time.Minute, "a steps down", func() bool { return len(w.lines()) > 0 })
				want := fmt.Sprintf("destroys=0 holder=%s term=%s", sid, sid)
				if got := w.lines()[0]; got != want {
					t.Errorf("at step-down: %s, want %s", got, want)
				}
				waitFor(t, time.Minute, "the old session destroyed", func() bool { return f.count("destroy") > 0 })
				if tc.runErr {
					if err := <-done; err == nil {
						t.Error("Run returned nil after a denied renew")
					}
					return
				}
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			})
		})
	}
}

// Found item 2: a missing-key sighting from before a gap (watch errors)
// must not count: the wait starts afresh from the first answer after it.
func TestMissingKeyWaitRestartsAfterAGap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newEmptyFake(t)
		a := start(t, f, "a", Config{LockDelay: 2 * time.Second}) // wait = 2s + margin 1s
		synctest.Wait()
		time.Sleep(time.Second)
		f.mu.Lock()
		f.down = true
		f.bump() // the blocked watch wakes and fails
		f.mu.Unlock()
		time.Sleep(1500 * time.Millisecond)
		f.setDown(false)
		back := time.Now()
		waitFor(t, time.Minute, "a elected", func() bool { return a.e.State().Leading })
		if took := time.Since(back); took < 3*time.Second {
			t.Errorf("a took the missing key %v after Consul answered again, want ≥ lock-delay + margin = 3s", took)
		}
		a.stop(t)
	})
}

// Found item 3: once the missing-key wait was over, a candidate that could
// not acquire (no session) woke at once on every turn: a busy loop.
func TestNoBusyLoopWhileUnableToAcquire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var turns atomic.Int64
		ctx, cancel := context.WithCancel(t.Context())
		loopTurnHook = func() {
			if turns.Add(1) > 10_000 {
				cancel() // a spinning loop never lets fake time move
			}
		}
		defer func() { loopTurnHook = nil }()
		f := newEmptyFake(t)
		f.fail = func(op string) error {
			if op == "create" {
				return errCut // sessions can't be created; reads work
			}
			return nil
		}
		_, done := runElection(t, ctx, f, Config{Key: "services/web/leader", Candidate: Candidate{ID: "a"}, LockDelay: 2 * time.Second})
		time.Sleep(time.Minute)
		cancel()
		<-done
		if n := turns.Load(); n > 200 {
			t.Errorf("%d loop turns in a minute without a session, want a handful", n)
		}
	})
}

// Found item 4: a report about an old term (a child that exited late) must
// not end a newer term.
func TestResignTermOnlyEndsThatTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		a := start(t, f, "a", Config{})
		synctest.Wait()
		tok := a.e.State().Token
		if err := a.e.ResignTerm(t.Context(), tok-1); !errors.Is(err, ErrNotLeader) {
			t.Errorf("ResignTerm(old token) = %v, want ErrNotLeader", err)
		}
		if !a.e.State().Leading {
			t.Fatal("an old term's resign ended the current term")
		}
		if err := a.e.ResignTerm(t.Context(), tok); err != nil {
			t.Errorf("ResignTerm(current token) = %v", err)
		}
		if a.e.State().Leading {
			t.Error("still leading after ResignTerm(current token)")
		}
		a.stop(t)
	})
}

// OnLease reports each renew's new lease end, proof + lock-delay − margin,
// and never moves it back.
func TestOnLeaseFollowsRenews(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		var mu sync.Mutex
		var ends []time.Duration
		var t0 time.Time
		cfg := Config{Key: "services/web/leader", Candidate: Candidate{ID: "a"}, LockDelay: 4 * time.Second, RenewInterval: time.Second}
		cfg.OnElected = func(tm Term) { t0 = tm.Since; ends = append(ends, tm.LeaseEnd.Sub(tm.Since)) }
		cfg.OnLease = func(_ Term, end time.Time) { mu.Lock(); ends = append(ends, end.Sub(t0)); mu.Unlock() }
		ctx, cancel := context.WithCancel(t.Context())
		_, done := runElection(t, ctx, f, cfg)
		time.Sleep(3500 * time.Millisecond)
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		want := []time.Duration{3 * time.Second, 4 * time.Second, 5 * time.Second, 6 * time.Second}
		if fmt.Sprint(ends) != fmt.Sprint(want) {
			t.Errorf("lease ends after the acquire = %v, want %v", ends, want)
		}
	})
}

// A check left critical (its agent restarted and reloaded it, or an earlier
// leaderd with the same id died) keeps its status when registered again:
// the candidate must pass it before creating a session, or it never gets
// one. Found by TestFaultInvalidate's client agent restart.
func TestCriticalCheckLeftBehindIsPassedAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		cfg := Config{CheckTTL: time.Second, LockDelay: 3 * time.Second, CheckID: "leaderd:a"}
		if err := f.RegisterCheck(t.Context(), consulhttp.AgentCheck{CheckID: "leaderd:a", TTL: "1s", Status: consulhttp.StatusCritical}); err != nil {
			t.Fatal(err)
		}
		f.critical("leaderd:a")
		a := start(t, f, "a", cfg)
		waitFor(t, 10*time.Second, "a elected", func() bool { return a.e.State().Leading })
		a.stop(t)
	})
}

// A watch error in the middle of a lock-delay makes a follower forget the
// key; its next read must not block on the index it had, or it would wait
// out the whole watch (5m) for a change that isn't coming. Found by
// TestFaultWatchErrorInLockDelay.
func TestWatchErrorDuringLockDelayRereadsTheKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		cfg := Config{LockDelay: 3 * time.Second}
		a := start(t, f, "a", cfg)
		synctest.Wait()
		b := start(t, f, "b", cfg)
		synctest.Wait()
		f.invalidate(a.e.State().Session) // an operator's destroy
		synctest.Wait()
		a.stop(t) // b alone: a must not win the key back in its place
		time.Sleep(time.Second)
		f.mu.Lock()
		f.down = true
		f.bump() // b's blocked watch wakes and fails
		f.mu.Unlock()
		time.Sleep(500 * time.Millisecond)
		f.setDown(false)
		took := waitFor(t, time.Minute, "b elected", func() bool { return b.e.State().Leading })
		if took > 3*time.Second {
			t.Errorf("b led %v after Consul answered again, want within the rest of the 3s lock-delay and a backoff", took)
		}
		b.stop(t)
	})
}

// An acquire proves the session to us but does not reset Consul's TTL
// timer: a session whose elections take keys more often than the renew
// interval must still be renewed. Found by the benchmark, where a leader
// resigned and won again every second until Consul expired its session.
func TestFrequentAcquiresDoNotPostponeRenews(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		a := start(t, f, "a", Config{LockDelay: 4 * time.Second, ResignHoldOff: time.Millisecond}) // renew every 1s
		synctest.Wait()
		for range 60 {
			time.Sleep(500 * time.Millisecond)
			if a.e.State().Leading {
				if err := a.e.Resign(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
		}
		if got := f.count("renew"); got < 25 {
			t.Errorf("renews in 30s of acquires every ~500ms = %d, want about 30 (one a second)", got)
		}
		if got := f.count("create"); got != 1 {
			t.Errorf("sessions created = %d, want 1 (none expired)", got)
		}
		a.stop(t)
	})
}
