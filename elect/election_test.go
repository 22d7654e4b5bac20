package elect

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/leaderd/leaderd/consulhttp"
)

// cand is one running candidate and what it saw.
type cand struct {
	id     string
	e      *Election
	conn   *CutConsul
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	events []Event
	hooks  []string
}

func (c *cand) log() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.events...)
}

func (c *cand) hookLog() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.hooks...)
}

func (c *cand) kinds() []string {
	var out []string
	for _, ev := range c.log() {
		s := string(ev.Kind)
		if ev.Reason != "" {
			s += ":" + string(ev.Reason)
		}
		if ev.Kind == KindError {
			continue
		}
		out = append(out, s)
	}
	return out
}

func (c *cand) stop(t *testing.T) {
	t.Helper()
	c.cancel()
	if err := <-c.done; err != nil {
		t.Errorf("%s: Run: %v", c.id, err)
	}
}

func start(t *testing.T, f *fakeConsul, id string, cfg Config) *cand {
	t.Helper()
	c := &cand{id: id, conn: &CutConsul{Consul: f}, done: make(chan error, 1)}
	if cfg.Key == "" {
		cfg.Key = "services/web/leader"
	}
	cfg.Candidate.ID = id
	cfg.OnElected = func(tm Term) {
		c.mu.Lock()
		c.hooks = append(c.hooks, fmt.Sprintf("elected %d", tm.Token))
		c.mu.Unlock()
	}
	cfg.OnStepDown = func(tm Term, r Reason) {
		c.mu.Lock()
		c.hooks = append(c.hooks, fmt.Sprintf("stepdown %d %s", tm.Token, r))
		c.mu.Unlock()
	}
	e, err := New(c.conn, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	c.e = e
	events := e.Events()
	go func() {
		for ev := range events {
			c.mu.Lock()
			c.events = append(c.events, ev)
			c.mu.Unlock()
		}
	}()
	ctx, cancel := context.WithCancel(t.Context())
	c.cancel = cancel
	go func() { c.done <- e.Run(ctx) }()
	return c
}

func leaders(cs ...*cand) []string {
	var out []string
	for _, c := range cs {
		if c.e.State().Leading {
			out = append(out, c.id)
		}
	}
	return out
}

// waitFor advances fake time in small steps until cond holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		synctest.Wait()
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: not true after %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond) // advances the bubble's fake clock
	}
}

func TestOneLeaderAmongThree(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		a := start(t, f, "a", Config{})
		synctest.Wait()
		b := start(t, f, "b", Config{})
		c := start(t, f, "c", Config{})
		synctest.Wait()
		if diff := cmp.Diff([]string{"a"}, leaders(a, b, c)); diff != "" {
			t.Fatalf("leaders (-want +got):\n%s", diff)
		}
		tok := a.e.State().Token
		if got := b.e.State().Leader; got == nil || got.ID != "a" || got.Token != tok {
			t.Errorf("b sees leader %+v, want a with token %d", got, tok)
		}
		// Minutes pass: still exactly one leader, same term.
		time.Sleep(3 * time.Minute)
		synctest.Wait()
		if diff := cmp.Diff([]string{"a"}, leaders(a, b, c)); diff != "" {
			t.Fatalf("leaders after 3m (-want +got):\n%s", diff)
		}
		if got := a.e.State().Token; got != tok {
			t.Errorf("token changed without a new term: %d → %d", tok, got)
		}
		a.stop(t)
		synctest.Wait()
		if got := leaders(a, b, c); len(got) != 1 || got[0] == "a" {
			t.Fatalf("after a stopped, leaders = %v, want one of b, c", got)
		}
		b.stop(t)
		c.stop(t)
		if diff := cmp.Diff([]string{"elected", "stepped_down:shutdown"}, a.kinds()); diff != "" {
			t.Errorf("a's events (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{fmt.Sprintf("elected %d", tok), fmt.Sprintf("stepdown %d shutdown", tok)}, a.hookLog()); diff != "" {
			t.Errorf("a's hooks (-want +got):\n%s", diff)
		}
		if n := len(f.sessions); n != 0 {
			t.Errorf("%d sessions left after every candidate stopped", n)
		}
	})
}

func TestRenewCadence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		a := start(t, f, "a", Config{TTL: 15 * time.Second, LockDelay: 20 * time.Second})
		synctest.Wait()
		gets := f.count("get")
		time.Sleep(time.Minute - time.Millisecond)
		synctest.Wait()
		// min(TTL/3, (lock-delay − margin)/3) = 5s: 11 renews in the
		// first 59.999s.
		if got := f.count("renew"); got != 11 {
			t.Errorf("renews in a minute = %d, want 11 (every TTL/3)", got)
		}
		// The leader's watch blocks for 5 minutes: no reads at steady state.
		if got := f.count("get") - gets; got != 0 {
			t.Errorf("reads in a steady minute = %d, want 0", got)
		}
		a.stop(t)
	})
}

func TestLeaseExpiresWhileCutOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		a := start(t, f, "a", Config{LockDelay: 2 * time.Second})
		synctest.Wait()
		b := start(t, f, "b", Config{LockDelay: 2 * time.Second})
		synctest.Wait()
		if got := leaders(a, b); len(got) != 1 || got[0] != "a" {
			t.Fatalf("leaders = %v", got)
		}
		time.Sleep(500 * time.Millisecond) // between renews
		st := a.e.State()
		lastProof := st.LastRenew
		if got := st.LeaseEnd.Sub(lastProof); got != time.Second {
			t.Errorf("lease end = last proof + %v, want + lock-delay 2s - margin 1s = 1s", got)
		}
		a.conn.SetCut(true)
		var aDown, bUp time.Time
		waitFor(t, time.Minute, "b elected", func() bool {
			if aDown.IsZero() && !a.e.State().Leading {
				aDown = time.Now()
			}
			if bUp.IsZero() && b.e.State().Leading {
				bUp = time.Now()
			}
			return !bUp.IsZero()
		})
		// lease = proof + lock-delay 2s - margin 1s: the TTL plays no part.
		// (aDown is seen by a 10ms poll.)
		if want := lastProof.Add(time.Second); aDown.Before(want) || aDown.After(want.Add(10*time.Millisecond)) {
			t.Errorf("a stepped down at proof+%v, want proof+1s", aDown.Sub(lastProof))
		}
		if !aDown.Before(bUp) {
			t.Errorf("a stepped down at %v, after b was elected at %v", aDown, bUp)
		}
		ev := a.log()
		var reasons []Reason
		for _, e := range ev {
			if e.Kind == KindSteppedDown {
				reasons = append(reasons, e.Reason)
			}
		}
		if diff := cmp.Diff([]Reason{ReasonLeaseExpired}, reasons); diff != "" {
			t.Errorf("a's step-down reasons (-want +got):\n%s", diff)
		}
		// Healed: a rejoins as a follower of b.
		a.conn.SetCut(false)
		waitFor(t, time.Minute, "a follows b", func() bool {
			l := a.e.State().Leader
			return l != nil && l.ID == "b"
		})
		if got := leaders(a, b); len(got) != 1 || got[0] != "b" {
			t.Errorf("leaders after heal = %v, want [b]", got)
		}
		a.stop(t)
		b.stop(t)
	})
}

func TestLockDelayIsWaitedOutNotPolled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		a := start(t, f, "a", Config{LockDelay: 5 * time.Second})
		synctest.Wait()
		b := start(t, f, "b", Config{LockDelay: 5 * time.Second})
		synctest.Wait()
		before := f.count("acquire")
		f.invalidate(a.e.State().Session) // an operator destroys a's session
		// b (or a, with its new session) wins right after the delay.
		took := waitFor(t, time.Minute, "a leader again", func() bool { return len(leaders(a, b)) == 1 })
		if took < 5*time.Second || took > 5100*time.Millisecond {
			t.Errorf("new leader %v after invalidation, want just after the 5s lock-delay", took)
		}
		// Each candidate: one try at once, one after the delay, and a may
		// once use its invalidated session. Polling would be hundreds.
		if got := f.count("acquire") - before; got > 6 {
			t.Errorf("%d acquire attempts during a 5s lock-delay, want ≤ 6: %v", got, f.acquires)
		}
		var reasons []Reason
		for _, e := range a.log() {
			if e.Kind == KindSteppedDown {
				reasons = append(reasons, e.Reason)
			}
		}
		if diff := cmp.Diff([]Reason{ReasonSessionInvalidated}, reasons); diff != "" {
			t.Errorf("a's step-down reasons (-want +got):\n%s", diff)
		}
		a.stop(t)
		b.stop(t)
	})
}

func TestResignHandsOverWithoutLockDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		a := start(t, f, "a", Config{LockDelay: 15 * time.Second})
		synctest.Wait()
		b := start(t, f, "b", Config{LockDelay: 15 * time.Second})
		synctest.Wait()
		if err := b.e.Resign(t.Context()); !errors.Is(err, ErrNotLeader) {
			t.Errorf("Resign of a follower = %v, want ErrNotLeader", err)
		}
		var tokens []uint64
		cur, next := a, b
		for i := 0; i < 5; i++ {
			tokens = append(tokens, cur.e.State().Token)
			t0 := time.Now()
			if err := cur.e.Resign(t.Context()); err != nil {
				t.Fatalf("Resign: %v", err)
			}
			synctest.Wait()
			if !next.e.State().Leading || time.Since(t0) != 0 {
				t.Fatalf("handover %d: next leads=%v after %v, want at once", i, next.e.State().Leading, time.Since(t0))
			}
			cur, next = next, cur
		}
		tokens = append(tokens, cur.e.State().Token)
		for i := 1; i < len(tokens); i++ {
			if tokens[i] <= tokens[i-1] {
				t.Errorf("tokens not strictly increasing: %v", tokens)
			}
		}
		// After each resign a follows b; when b resigns it hands the key
		// straight to a (one transaction): a never sees nobody lead, and
		// is not told it leads before it does.
		want := []string{"elected", "stepped_down:released", "leader_changed",
			"elected", "stepped_down:released", "leader_changed",
			"elected", "stepped_down:released", "leader_changed"}
		if diff := cmp.Diff(want, a.kinds()); diff != "" {
			t.Errorf("a's events (-want +got):\n%s", diff)
		}
		a.stop(t)
		b.stop(t)
	})
}

func TestResignAloneTakesBackAfterHoldOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		a := start(t, f, "a", Config{})
		synctest.Wait()
		if err := a.e.Resign(t.Context()); err != nil {
			t.Fatal(err)
		}
		took := waitFor(t, time.Minute, "a leads again", func() bool { return a.e.State().Leading })
		if took < DefaultResignHoldOff || took > DefaultResignHoldOff+time.Second {
			t.Errorf("a took the key back after %v, want after the %v hold-off", took, DefaultResignHoldOff)
		}
		var firsts []bool
		for _, ev := range a.log() {
			if ev.Kind == KindElected {
				firsts = append(firsts, ev.First)
			}
		}
		if diff := cmp.Diff([]bool{true, false}, firsts); diff != "" {
			t.Errorf("elected First flags (-want +got):\n%s", diff)
		}
		a.stop(t)
	})
}

func TestKeyDeletedStepsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		a := start(t, f, "a", Config{})
		synctest.Wait()
		f.mu.Lock()
		delete(f.kv, "services/web/leader")
		f.bump()
		f.mu.Unlock()
		synctest.Wait()
		got := a.kinds()
		if len(got) < 2 || got[1] != "stepped_down:key_lost" {
			t.Fatalf("events = %v, want elected, stepped_down:key_lost, ...", got)
		}
		// Nobody else holds it: a takes it again with a new, higher token.
		waitFor(t, time.Minute, "a leads again", func() bool { return a.e.State().Leading })
		a.stop(t)
	})
}

func TestPlainWriteKeepsLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		a := start(t, f, "a", Config{})
		synctest.Wait()
		f.put("services/web/leader", []byte("operator"))
		synctest.Wait()
		if !a.e.State().Leading {
			t.Errorf("a plain PUT (Session kept) made the leader step down")
		}
		a.stop(t)
	})
}

func TestPausedLeaderStepsDownOnWake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		var c *cand
		paused := false
		c = &cand{}
		_ = c
		a := start(t, f, "a", Config{})
		synctest.Wait()
		// The leader's renew "hangs" (think SIGSTOP or a GC pause during
		// the request) for 30s, then succeeds. The late answer must not
		// count from its arrival: the lease ends at proof+9s regardless.
		f.mu.Lock()
		f.fail = func(op string) error {
			if op == "renew" && !paused {
				paused = true
				f.mu.Unlock()
				time.Sleep(30 * time.Second)
				f.mu.Lock()
			}
			return nil
		}
		f.mu.Unlock()
		proof := a.e.State().LastRenew
		waitFor(t, time.Minute, "a steps down", func() bool { return !a.e.State().Leading })
		// lease = proof + lock-delay 10s − margin 1s (the defaults).
		if got := time.Since(proof); got > 9*time.Second {
			t.Errorf("stepped down %v after the last proof, want ≤ 9s", got)
		}
		a.stop(t)
	})
}

func TestElectedHookThatOverrunsTheLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		var evs []string
		var mu sync.Mutex
		cfg := Config{Key: "k", Candidate: Candidate{ID: "a"}}
		cfg.OnElected = func(Term) { time.Sleep(20 * time.Second) } // the process was frozen here
		cfg.OnStepDown = func(_ Term, r Reason) { mu.Lock(); evs = append(evs, string(r)); mu.Unlock() }
		ctx, cancel := context.WithCancel(t.Context())
		_, done := runElection(t, ctx, f, cfg)
		time.Sleep(21 * time.Second)
		synctest.Wait()
		mu.Lock()
		if len(evs) == 0 || evs[0] != string(ReasonLeaseExpired) {
			t.Errorf("step-downs = %v, want lease_expired first", evs)
		}
		mu.Unlock()
		cancel()
		<-done
	})
}

func TestErrorsBackOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		a := start(t, f, "a", Config{})
		synctest.Wait()
		b := start(t, f, "b", Config{})
		synctest.Wait()
		gets := f.count("get")
		f.mu.Lock()
		f.fail = func(op string) error {
			if op == "get" {
				return &consulhttp.StatusError{Method: "GET", Path: "/v1/kv/x", Code: 500, Body: "No cluster leader"}
			}
			return nil
		}
		f.mu.Unlock()
		f.put("other", nil) // wake the blocked watches into the failing reads
		time.Sleep(time.Minute)
		synctest.Wait()
		// Backoff doubles from 250ms to 10s: ~10 reads a minute each.
		if got := f.count("get") - gets; got > 30 {
			t.Errorf("%d reads in a minute of errors from 2 candidates, want ≤ 30", got)
		}
		if !a.e.State().Leading {
			t.Errorf("read errors cost a its leadership while renews kept working")
		}
		f.mu.Lock()
		f.fail = nil
		f.mu.Unlock()
		waitFor(t, time.Minute, "b sees a", func() bool { l := b.e.State(); return l.Leader != nil && l.Leader.ID == "a" && l.Reachable })
		a.stop(t)
		b.stop(t)
	})
}

// indexConsul serves a scripted index and records what was asked.
type indexConsul struct {
	*fakeConsul
	mu      sync.Mutex
	asked   []uint64
	answers []uint64
}

func (c *indexConsul) GetKV(ctx context.Context, key string, q consulhttp.QueryOptions) (*consulhttp.KVPair, consulhttp.QueryMeta, error) {
	c.mu.Lock()
	if q.Consistent && q.Index == 0 {
		// Not the follower's watch: the one read on the way out, whether
		// the key was handed to us.
		c.mu.Unlock()
		return nil, consulhttp.QueryMeta{LastIndex: 1}, nil
	}
	c.asked = append(c.asked, q.Index)
	if len(c.answers) == 0 {
		c.mu.Unlock()
		<-ctx.Done()
		return nil, consulhttp.QueryMeta{}, ctx.Err()
	}
	idx := c.answers[0]
	c.answers = c.answers[1:]
	c.mu.Unlock()
	p := &consulhttp.KVPair{Key: key, Session: "other", ModifyIndex: idx}
	return p, consulhttp.QueryMeta{LastIndex: idx}, nil
}

func TestWatchIndexRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &indexConsul{fakeConsul: newFake(t), answers: []uint64{10, 20, 5, 0, 7}}
		e, err := New(f, Config{Key: "k", Candidate: Candidate{ID: "a"}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		time.Sleep(time.Minute)
		synctest.Wait()
		cancel()
		<-done
		f.mu.Lock()
		defer f.mu.Unlock()
		// 10 → 20 → 5 went backwards: ask with 0; 0 → never block below 1.
		want := []uint64{0, 10, 20, 0, 1, 7}
		if diff := cmp.Diff(want, f.asked); diff != "" {
			t.Errorf("indexes asked (-want +got):\n%s", diff)
		}
	})
}

func TestFastCrashDetection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		cfg := Config{CheckTTL: 3 * time.Second, LockDelay: 1 * time.Second, Margin: 500 * time.Millisecond}
		a := start(t, f, "a", cfg)
		synctest.Wait()
		b := start(t, f, "b", cfg)
		synctest.Wait()
		if got := leaders(a, b); len(got) != 1 || got[0] != "a" {
			t.Fatalf("leaders = %v", got)
		}
		time.Sleep(200 * time.Millisecond)
		a.conn.SetCut(true) // a "crashes": nothing from it reaches Consul
		var aDown time.Time
		took := waitFor(t, time.Minute, "b elected", func() bool {
			if aDown.IsZero() && !a.e.State().Leading {
				aDown = time.Now()
			}
			return b.e.State().Leading
		})
		// check TTL 3s + lock-delay 1s (+ up to a check interval already used).
		if took > 4*time.Second+50*time.Millisecond {
			t.Errorf("failover took %v, want ≤ check TTL + lock-delay = 4s", took)
		}
		if aDown.IsZero() {
			t.Errorf("a still leads after b was elected")
		}
		a.stop(t)
		b.stop(t)
	})
}

func TestSharedSessionRenewsOnceForManyElections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		s, err := NewSession(f, SessionConfig{TTL: 15 * time.Second, LockDelay: 15 * time.Second, RenewInterval: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		sctx, scancel := context.WithCancel(t.Context())
		sdone := make(chan error, 1)
		go func() { sdone <- s.Run(sctx) }()
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		var es []*Election
		for i := range 100 {
			f.put(fmt.Sprintf("jobs/%d/leader", i), nil)
			e, err := New(f, Config{Key: fmt.Sprintf("jobs/%d/leader", i), Candidate: Candidate{ID: "p"}, Session: s})
			if err != nil {
				t.Fatal(err)
			}
			es = append(es, e)
			wg.Go(func() { e.Run(ctx) })
		}
		synctest.Wait()
		for i, e := range es {
			if !e.State().Leading {
				t.Fatalf("election %d does not lead", i)
			}
		}
		time.Sleep(time.Minute - time.Millisecond)
		synctest.Wait()
		if got := f.count("renew"); got != 11 {
			t.Errorf("renews for 100 elections in a minute = %d, want 11 (one session)", got)
		}
		if got := f.count("create"); got != 1 {
			t.Errorf("sessions created = %d, want 1", got)
		}
		cancel()
		wg.Wait()
		scancel()
		<-sdone
		for k, p := range f.kv {
			if p.Session != "" {
				t.Errorf("%s still held after shutdown", k)
			}
		}
	})
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"empty", Config{}, []string{"key is required", "candidate id is required"}},
		{"leading slash", Config{Key: "/x", Candidate: Candidate{ID: "a"}}, []string{`key "/x" must not start with '/'`}},
		{"ttl too long", Config{Key: "k", Candidate: Candidate{ID: "a"}, TTL: 25 * time.Hour}, []string{"ttl 25h0m0s must be between"}},
		{"lock delay over cap", Config{Key: "k", Candidate: Candidate{ID: "a"}, LockDelay: 61 * time.Second}, []string{"lock delay 1m1s must be above 0s and at most 1m0s"}},
		{"negative lock delay", Config{Key: "k", Candidate: Candidate{ID: "a"}, LockDelay: -time.Second}, []string{"lock delay -1s must be above 0s"}},
		// The lease is lock-delay − margin, whatever the TTL.
		{"lease too short", Config{Key: "k", Candidate: Candidate{ID: "a"}, TTL: time.Hour, LockDelay: 2 * time.Second, RenewInterval: time.Second}, []string{"lock delay 2s - margin 1s = 1s leaves less than two renew intervals (2×1s)"}},
		{"renew not below ttl", Config{Key: "k", Candidate: Candidate{ID: "a"}, TTL: 2 * time.Second, RenewInterval: 2 * time.Second}, []string{"renew interval 2s must be positive and shorter than the ttl 2s"}},
		{"check ttl too short", Config{Key: "k", Candidate: Candidate{ID: "a"}, CheckTTL: time.Millisecond}, []string{"check ttl 1ms is below 100ms"}},
		{"bad behavior", Config{Key: "k", Candidate: Candidate{ID: "a"}, Behavior: "keep"}, []string{`behavior "keep"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(newFake(t), tt.cfg)
			if err == nil {
				t.Fatalf("New accepted %+v", tt.cfg)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if _, err := New(newFake(t), Config{Key: "k", Candidate: Candidate{ID: "a"}}); err != nil {
		t.Errorf("defaults rejected: %v", err)
	}
}

// A rule between settings names every field it involves, so a caller
// (leaderd's CLI) can name its own flags for them.
func TestConfigErrorsNameTheirFields(t *testing.T) {
	err := Config{Key: "k", Candidate: Candidate{ID: "a"}, LockDelay: 2 * time.Second, RenewInterval: time.Second}.Validate()
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("Validate = %v, want a *FieldError", err)
	}
	if diff := cmp.Diff([]string{FieldLockDelay, FieldMargin, FieldRenewInterval}, fe.Fields); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
}

func TestShutdownWhileWantingTheKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		f.fail = func(op string) error {
			if op == "acquire" {
				return &consulhttp.StatusError{Method: "PUT", Path: "/v1/kv/k", Code: 500, Body: "No cluster leader"}
			}
			return nil
		}
		a := start(t, f, "a", Config{})
		synctest.Wait()
		before := f.count("acquire")
		// Cancel while the candidate wants the free key: Run must return,
		// not retry the acquire (whose failure is now ctx's) in a loop.
		a.cancel()
		if err := <-a.done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if got := f.count("acquire") - before; got > 1 {
			t.Errorf("%d acquires after cancel, want ≤ 1", got)
		}
	})
}

func TestPermanentErrorsEndRun(t *testing.T) {
	tests := []struct {
		name  string
		setup func(f *fakeConsul)
		want  string
	}{
		{"ttl refused", func(f *fakeConsul) { f.minTTL = time.Hour }, "Invalid Session TTL"},
		{"acquire denied", func(f *fakeConsul) {
			f.fail = func(op string) error {
				if op == "acquire" {
					return &consulhttp.StatusError{Method: "PUT", Path: "/v1/kv/k", Code: 403, Body: `Permission denied: token lacks permission 'key:write' on "k"`}
				}
				return nil
			}
		}, "key:write"},
		{"watch denied", func(f *fakeConsul) {
			f.fail = func(op string) error {
				if op == "get" {
					return &consulhttp.StatusError{Method: "GET", Path: "/v1/kv/k", Code: 403, Body: `Permission denied: token lacks permission 'key:read' on "k"`}
				}
				return nil
			}
		}, "key:read"},
		{"renew denied", func(f *fakeConsul) {
			f.fail = func(op string) error {
				if op == "renew" {
					return &consulhttp.StatusError{Method: "PUT", Path: "/v1/session/renew/x", Code: 403, Body: `Permission denied: token lacks permission 'session:write' on "n"`}
				}
				return nil
			}
		}, "session:write"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(t)
				tt.setup(f)
				e, err := New(f, Config{Key: "k", Candidate: Candidate{ID: "a"}})
				if err != nil {
					t.Fatal(err)
				}
				err = e.Run(t.Context())
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("Run = %v, want an error saying %q", err, tt.want)
				}
				if e.State().Leading {
					t.Errorf("still leading after Run returned")
				}
			})
		})
	}
}

func TestMissingKeyWaitsALeaseWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// No key at all: a first deployment, or a Consul that lost its
		// state while some leader may still hold a lease from it.
		f := newEmptyFake(t)
		cfg := Config{LockDelay: 2 * time.Second}
		a := start(t, f, "a", cfg)
		took := waitFor(t, time.Minute, "a elected", func() bool { return a.e.State().Leading })
		// lock-delay 2s + margin 1s from the answer that showed it missing.
		if want := 3 * time.Second; took < want || took > want+50*time.Millisecond {
			t.Errorf("a took the missing key after %v, want after lock-delay + margin = %v", took, want)
		}
		b := start(t, f, "b", cfg)
		synctest.Wait()
		// An operator deletes the key: a steps down (key_lost) and nobody
		// takes it back before another window has passed.
		if got := leaders(a, b); len(got) != 1 || got[0] != "a" {
			t.Fatalf("leaders before the delete = %v, want [a]", got)
		}
		f.mu.Lock()
		delete(f.kv, "services/web/leader")
		f.bump()
		f.mu.Unlock()
		synctest.Wait()
		if got := leaders(a, b); len(got) != 0 {
			t.Fatalf("leaders right after the delete = %v, want none", got)
		}
		took = waitFor(t, time.Minute, "one leader again", func() bool { return len(leaders(a, b)) == 1 })
		if want := 3 * time.Second; took < want || took > want+50*time.Millisecond {
			t.Errorf("deleted key taken again after %v, want after %v", took, want)
		}
		a.stop(t)
		b.stop(t)
	})
}
