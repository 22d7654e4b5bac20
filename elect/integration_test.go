package elect_test

import (
	"context"
	"fmt"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/elect"
	"github.com/leaderd/leaderd/integration/consultest"
)

// These tests run elections against a real Consul v1.16.3 dev agent with
// session_ttl_min lowered so TTL cases take seconds.

var fastTTL = []string{`session_ttl_min = "1s"`}

type runner struct {
	id     string
	e      *elect.Election
	conn   *elect.CutConsul
	cancel context.CancelFunc
	done   chan error

	mu       sync.Mutex
	elected  []time.Time
	stepped  []time.Time
	reasons  []elect.Reason
	tokens   []uint64
	leading  bool
	overlaps *overlapCheck
}

// overlapCheck fails the test if two candidates' hooks ever say they lead
// at the same time.
type overlapCheck struct {
	t       *testing.T
	seeded  bool // the key was seeded by the first run
	mu      sync.Mutex
	holder  string
	lastTok uint64
}

func (o *overlapCheck) elected(id string, tok uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.holder != "" {
		o.t.Errorf("%s elected (token %d) while %s still leads", id, tok, o.holder)
	}
	if tok <= o.lastTok {
		o.t.Errorf("%s elected with token %d, not above the previous %d", id, tok, o.lastTok)
	}
	o.holder, o.lastTok = id, tok
}

func (o *overlapCheck) steppedDown(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.holder == id {
		o.holder = ""
	}
}

// seedKey leaves key as a graceful release does, so the first election
// doesn't wait out the lease window that a missing key calls for
// (TestRealMissingKeyWaitsALeaseWindow covers that wait).
func seedKey(t *testing.T, a *consultest.Agent, key string) {
	t.Helper()
	if err := newClient(t, a).PutKV(context.Background(), key, []byte(`{"released":true}`)); err != nil {
		t.Fatal(err)
	}
}

func newClient(t *testing.T, a *consultest.Agent) *consulhttp.Client {
	t.Helper()
	c, err := consulhttp.NewClient(consulhttp.Config{Address: a.Addr, Token: a.Token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func run(t *testing.T, a *consultest.Agent, o *overlapCheck, id string, cfg elect.Config) *runner {
	t.Helper()
	r := &runner{id: id, conn: &elect.CutConsul{Consul: newClient(t, a)}, done: make(chan error, 1), overlaps: o}
	if cfg.Key == "" {
		cfg.Key = "services/it/leader"
	}
	if !o.seeded {
		o.seeded = true
		seedKey(t, a, cfg.Key)
	}
	cfg.Candidate = elect.Candidate{ID: id, Name: "it", StartedAt: time.Now()}
	cfg.OnElected = func(tm elect.Term) {
		o.elected(id, tm.Token)
		r.mu.Lock()
		r.elected = append(r.elected, time.Now())
		r.tokens = append(r.tokens, tm.Token)
		r.leading = true
		r.mu.Unlock()
	}
	cfg.OnStepDown = func(tm elect.Term, reason elect.Reason) {
		o.steppedDown(id)
		r.mu.Lock()
		r.stepped = append(r.stepped, time.Now())
		r.reasons = append(r.reasons, reason)
		r.leading = false
		r.mu.Unlock()
	}
	e, err := elect.New(r.conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.e = e
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- e.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *runner) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("%s: Run: %v", r.id, err)
		}
	case <-time.After(15 * time.Second):
		var buf strings.Builder
		pprof.Lookup("goroutine").WriteTo(&buf, 1)
		t.Errorf("%s: Run did not return 15s after cancel; goroutines:\n%s", r.id, buf.String())
	}
}

func (r *runner) isLeading() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.leading }

func leadersOf(rs []*runner) []*runner {
	var out []*runner
	for _, r := range rs {
		if r.isLeading() {
			out = append(out, r)
		}
	}
	return out
}

// eventually polls cond every 10ms until it holds or limit passes.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not true after %v", what, limit)
		}
		<-tick.C
	}
	return time.Since(start)
}

func oneLeader(t *testing.T, rs []*runner, limit time.Duration) *runner {
	t.Helper()
	var l *runner
	eventually(t, limit, "exactly one leader", func() bool {
		ls := leadersOf(rs)
		if len(ls) == 1 {
			l = ls[0]
			return true
		}
		return false
	})
	return l
}

func TestRealThreeCandidatesOneLeaderAndGracefulHandover(t *testing.T) {
	t.Parallel()
	a := consultest.Start(t, consultest.Options{HCL: fastTTL})
	o := &overlapCheck{t: t}
	cfg := elect.Config{TTL: 3 * time.Second, LockDelay: 15 * time.Second, Margin: 200 * time.Millisecond}
	var rs []*runner
	for i := range 3 {
		rs = append(rs, run(t, a, o, fmt.Sprintf("c%d", i), cfg))
	}
	l := oneLeader(t, rs, 10*time.Second)
	// Three renew periods later: still that one.
	time.Sleep(3 * time.Second) // let renewals happen; the assertion below is on state, not timing
	if ls := leadersOf(rs); len(ls) != 1 || ls[0] != l {
		t.Fatalf("leadership moved without a fault")
	}
	// Resign hands over at once although lock-delay is 15s: release
	// imposes none.
	t0 := time.Now()
	if err := l.e.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, 10*time.Second, "new leader", func() bool {
		ls := leadersOf(rs)
		return len(ls) == 1 && ls[0] != l
	})
	t.Logf("graceful handover took %v", time.Since(t0))
	if took > 2*time.Second {
		t.Errorf("graceful handover took %v; a release must not wait out the 15s lock-delay", took)
	}
	// Shutdown of the new leader hands over too, and leaves no session.
	nl := leadersOf(rs)[0]
	nl.stop(t)
	eventually(t, 10*time.Second, "third leader", func() bool {
		ls := leadersOf(rs)
		return len(ls) == 1 && ls[0] != nl
	})
}

func TestRealDestroyedSessionStepsDownAndLockDelayHolds(t *testing.T) {
	t.Parallel()
	a := consultest.Start(t, consultest.Options{HCL: fastTTL})
	o := &overlapCheck{t: t}
	cfg := elect.Config{TTL: 3 * time.Second, LockDelay: 2 * time.Second, Margin: 200 * time.Millisecond}
	rs := []*runner{run(t, a, o, "a", cfg), run(t, a, o, "b", cfg)}
	l := oneLeader(t, rs, 10*time.Second)
	t0 := time.Now()
	if err := newClient(t, a).DestroySession(context.Background(), l.e.State().Session); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "old leader steps down", func() bool { return !l.isLeading() })
	took := eventually(t, 10*time.Second, "new leader", func() bool { return len(leadersOf(rs)) == 1 })
	took = time.Since(t0)
	if took < 2*time.Second {
		t.Errorf("new leader %v after the session was destroyed, inside the 2s lock-delay", took)
	}
	if took > 4*time.Second {
		t.Errorf("new leader only %v after destroy; lock-delay is 2s", took)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.reasons) == 0 || l.reasons[0] != elect.ReasonSessionInvalidated {
		t.Errorf("reasons = %v, want session_invalidated first", l.reasons)
	}
}

func TestRealFrozenLeaderLeaseEndsBeforeTakeover(t *testing.T) {
	t.Parallel()
	a := consultest.Start(t, consultest.Options{HCL: fastTTL})
	o := &overlapCheck{t: t}
	cfg := elect.Config{TTL: 2 * time.Second, LockDelay: time.Second, Margin: 200 * time.Millisecond}
	rs := []*runner{run(t, a, o, "a", cfg), run(t, a, o, "b", cfg)}
	l := oneLeader(t, rs, 10*time.Second)
	l.conn.SetCut(true) // frozen: nothing it sends reaches Consul
	t0 := time.Now()
	eventually(t, 10*time.Second, "a new leader", func() bool {
		ls := leadersOf(rs)
		return len(ls) == 1 && ls[0] != l
	})
	took := time.Since(t0)
	l.mu.Lock()
	down, reasons := l.stepped, l.reasons
	l.mu.Unlock()
	if len(down) == 0 || reasons[0] != elect.ReasonLeaseExpired {
		t.Fatalf("frozen leader: step-downs %v, want lease_expired", reasons)
	}
	t.Logf("frozen leader stepped down after %v; takeover after %v (TTL 2s, Consul waits up to 2×TTL, then lock-delay 1s)", down[0].Sub(t0), took)
	if took > 2*2*time.Second+time.Second+2*time.Second {
		t.Errorf("takeover took %v, want ≤ 2×TTL + lock-delay + 2s", took)
	}
	l.conn.SetCut(false)
	eventually(t, 10*time.Second, "rejoins as follower", func() bool {
		ld := l.e.State().Leader
		return ld != nil && ld.ID != l.id
	})
}

func TestRealFastCrashDetection(t *testing.T) {
	t.Parallel()
	a := consultest.Start(t, consultest.Options{HCL: fastTTL})
	o := &overlapCheck{t: t}
	cfg := elect.Config{TTL: 10 * time.Second, CheckTTL: time.Second, LockDelay: 500 * time.Millisecond, Margin: 200 * time.Millisecond}
	rs := []*runner{run(t, a, o, "a", cfg), run(t, a, o, "b", cfg)}
	l := oneLeader(t, rs, 10*time.Second)
	l.conn.SetCut(true) // crashed: stops passing its check
	t0 := time.Now()
	eventually(t, 15*time.Second, "a new leader", func() bool {
		ls := leadersOf(rs)
		return len(ls) == 1 && ls[0] != l
	})
	took := time.Since(t0)
	t.Logf("fast crash detection failover: %v (check TTL 1s + lock-delay 0.5s)", took)
	// Bound: check TTL + lock-delay + the agent's check reaping and sync
	// (sub-second on a local agent). Without the check it would be up to
	// 2×TTL = 20s.
	if took > 3*time.Second {
		t.Errorf("failover took %v, want ≤ check TTL + lock-delay + 1.5s = 3s", took)
	}
}

func TestRealAgentRestartLosesState(t *testing.T) {
	t.Parallel()
	a := consultest.Start(t, consultest.Options{HCL: fastTTL})
	o := &overlapCheck{t: t}
	// Tokens restart low when Consul loses its state: that is a documented
	// limit of fencing, so the check forgets them at the restart (below).
	cfg := elect.Config{TTL: 2 * time.Second, Margin: 200 * time.Millisecond}
	rs := []*runner{run(t, a, o, "a", cfg), run(t, a, o, "b", cfg), run(t, a, o, "c", cfg)}
	l := oneLeader(t, rs, 10*time.Second)
	a.Restart(t)
	o.mu.Lock()
	o.lastTok = 0
	o.mu.Unlock()
	eventually(t, 20*time.Second, "old leader steps down", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.stepped) > 0
	})
	oneLeader(t, rs, 20*time.Second)
	time.Sleep(time.Second) // a second more of watching for a second leader (overlapCheck fails the test)
	if ls := leadersOf(rs); len(ls) != 1 {
		t.Errorf("%d leaders after restart", len(ls))
	}
}

func TestRealHundredCandidates(t *testing.T) {
	t.Parallel()
	// 100 candidates on one host hold ~200 connections from 127.0.0.1:
	// Consul's default limit per client address is 200.
	a := consultest.Start(t, consultest.Options{HCL: append(fastTTL, `limits { http_max_conns_per_client = 1000 }`)})
	o := &overlapCheck{t: t}
	cfg := elect.Config{Margin: 500 * time.Millisecond}
	var rs []*runner
	for i := range 100 {
		rs = append(rs, run(t, a, o, fmt.Sprintf("c%03d", i), cfg))
	}
	l := oneLeader(t, rs, 20*time.Second)
	for i := range 3 {
		t0 := time.Now()
		if err := l.e.Resign(context.Background()); err != nil {
			t.Fatal(err)
		}
		next := oneLeaderOtherThan(t, rs, l, 10*time.Second)
		t.Logf("handover %d among 100: %v", i, time.Since(t0))
		l = next
	}
}

func oneLeaderOtherThan(t *testing.T, rs []*runner, old *runner, limit time.Duration) *runner {
	t.Helper()
	var l *runner
	defer func() {
		if t.Failed() {
			for _, r := range rs {
				st := r.e.State()
				if st.Leading || st.LastError != nil {
					t.Logf("%s: leading=%v leader=%v err=%v", r.id, st.Leading, st.Leader, st.LastError)
				}
			}
		}
	}()
	eventually(t, limit, "a new single leader", func() bool {
		ls := leadersOf(rs)
		if len(ls) == 1 && ls[0] != old {
			l = ls[0]
			return true
		}
		return false
	})
	return l
}

func TestRealCurrentLeaderAndObserve(t *testing.T) {
	t.Parallel()
	a := consultest.Start(t, consultest.Options{HCL: fastTTL})
	c := newClient(t, a)
	key := "services/obs/leader"
	if l, err := elect.CurrentLeader(context.Background(), c, key); err != nil || l != nil {
		t.Fatalf("CurrentLeader of a missing key = %v, %v; want nil, nil", l, err)
	}
	seen := make(chan *elect.Leader, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go elect.Observe(ctx, c, key, func(l *elect.Leader) bool { seen <- l; return true }, nil)
	if l := <-seen; l != nil {
		t.Fatalf("first observation %+v, want nobody", l)
	}
	o := &overlapCheck{t: t}
	cfg := elect.Config{Key: key, TTL: 3 * time.Second, Margin: 200 * time.Millisecond}
	r := run(t, a, o, "x", cfg)
	got := <-seen
	eventually(t, 5*time.Second, "x leads", r.isLeading)
	if got == nil || got.ID != "x" || got.Token != r.e.State().Token {
		t.Fatalf("observed %+v, want x with token %d", got, r.e.State().Token)
	}
	cur, err := elect.CurrentLeader(context.Background(), c, key)
	if err != nil || cur == nil || cur.ID != "x" || cur.Session != r.e.State().Session {
		t.Fatalf("CurrentLeader = %+v, %v", cur, err)
	}
	r.stop(t)
	if l := <-seen; l != nil {
		t.Errorf("after shutdown observed %+v, want nobody", l)
	}
}

func TestRealMissingKeyWaitsALeaseWindow(t *testing.T) {
	t.Parallel()
	a := consultest.Start(t, consultest.Options{HCL: fastTTL})
	o := &overlapCheck{t: t, seeded: true} // no seed: the key is missing
	cfg := elect.Config{TTL: 2 * time.Second, LockDelay: time.Second, Margin: 200 * time.Millisecond}
	t0 := time.Now()
	rs := []*runner{run(t, a, o, "a", cfg), run(t, a, o, "b", cfg)}
	oneLeader(t, rs, 10*time.Second)
	if took := time.Since(t0); took < 1200*time.Millisecond {
		t.Errorf("a missing key was taken after %v, inside the lock-delay + margin = 1.2s wait", took)
	}
}
