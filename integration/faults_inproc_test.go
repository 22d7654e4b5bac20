package integration

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/elect"
)

// In-process candidates: elect elections over real Consul clients, for
// crowds larger than two shared cores can run as leaderd processes, and
// for what only the library shows (State, the acquires it sends).

// acquireSeen is one acquire (a lone lock of the election key) an
// in-process candidate sent, and what came of it.
type acquireSeen struct {
	ID  string
	At  time.Time // sent
	OK  bool
	Err error
}

// reachedConsul: Consul answered it (true, false, or an error of its own),
// as opposed to a request that never got through.
func (a acquireSeen) reachedConsul() bool {
	var se *consulhttp.StatusError
	return a.Err == nil || errors.As(a.Err, &se)
}

// acquireLog collects the acquires of every candidate of one election.
type acquireLog struct {
	key string
	mu  sync.Mutex
	all []acquireSeen
}

func (l *acquireLog) since(t time.Time) []acquireSeen {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []acquireSeen
	for _, a := range l.all {
		if !a.At.Before(t) {
			out = append(out, a)
		}
	}
	return out
}

// countedConsul is a real Consul client that logs every acquire.
type countedConsul struct {
	*consulhttp.Client
	id  string
	log *acquireLog
}

func (c *countedConsul) TxnKV(ctx context.Context, ops []consulhttp.TxnKVOp) ([]consulhttp.KVPair, bool, error) {
	sent := time.Now()
	res, ok, err := c.Client.TxnKV(ctx, ops)
	if len(ops) == 1 && ops[0].Verb == consulhttp.TxnLock && ops[0].Key == c.log.key {
		c.log.mu.Lock()
		c.log.all = append(c.log.all, acquireSeen{ID: c.id, At: sent, OK: ok, Err: err})
		c.log.mu.Unlock()
	}
	return res, ok, err
}

// leaderTrack follows the terms of in-process elections through their
// hooks, and fails the test if two ever lead at once.
type leaderTrack struct {
	t       *testing.T
	mu      sync.Mutex
	holder  string
	elected []elect.Event // Candidate in Leader.ID, Token, At
	changed chan struct{}
}

func (lt *leaderTrack) onElected(id string, tm elect.Term) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.holder != "" {
		lt.t.Errorf("%s elected (token %d) while %s still leads", id, tm.Token, lt.holder)
	}
	lt.holder = id
	lt.elected = append(lt.elected, elect.Event{Kind: elect.KindElected, Token: tm.Token, At: time.Now(),
		Leader: &elect.Leader{Candidate: elect.Candidate{ID: id}}})
	close(lt.changed)
	lt.changed = make(chan struct{})
}

func (lt *leaderTrack) onStepDown(id string) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.holder == id {
		lt.holder = ""
	}
}

// waitElected returns the first term won from position from on.
func (lt *leaderTrack) waitElected(from int, timeout time.Duration) elect.Event {
	lt.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		lt.mu.Lock()
		evs, changed := lt.elected, lt.changed
		lt.mu.Unlock()
		if len(evs) > from {
			return evs[from]
		}
		select {
		case <-changed:
		case <-deadline.C:
			lt.t.Fatalf("nobody elected within %v", timeout)
		}
	}
}

func (lt *leaderTrack) terms() int {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	return len(lt.elected)
}

// inProcCandidate is one in-process election over a real Consul client.
type inProcCandidate struct {
	id   string
	e    *elect.Election
	stop func()
}

func startInProc(t *testing.T, id, addr string, cfg elect.Config, log *acquireLog, lt *leaderTrack) *inProcCandidate {
	t.Helper()
	c, err := consulhttp.NewClient(consulhttp.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Candidate = elect.Candidate{ID: id, Name: "ranked", StartedAt: time.Now()}
	cfg.OnElected = func(tm elect.Term) { lt.onElected(id, tm) }
	cfg.OnStepDown = func(elect.Term, elect.Reason) { lt.onStepDown(id) }
	e, err := elect.New(&countedConsul{Client: c, id: id, log: log}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	p := &inProcCandidate{id: id, e: e}
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: Run: %v", id, err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("%s: Run did not return 20s after cancel", id)
			}
		})
	}
	t.Cleanup(p.stop)
	return p
}

// pollUntil polls cond every 50ms until it holds, or fails the test.
// Nothing announces what it waits for (a registration, a follower's view).
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(timeout); !cond(); <-tick.C {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
	}
}

// describe logs what each candidate believes, the terms and the acquires,
// times from the crash.
func describe(t *testing.T, cs []*inProcCandidate, lt *leaderTrack, log *acquireLog, crashed time.Time) {
	for _, c := range cs {
		st := c.e.State()
		ld := "nobody"
		if st.Leader != nil {
			ld = fmt.Sprintf("%s (session %s, token %d)", st.Leader.ID, st.Leader.Session, st.Leader.Token)
		}
		t.Logf("%s: session %s leading=%v token=%d sees %s; last error %v", c.id, st.Session, st.Leading, st.Token, ld, st.LastError)
	}
	lt.mu.Lock()
	for _, e := range lt.elected {
		t.Logf("elected %s token %d at %s", e.Leader.ID, e.Token, faultMS(e.At.Sub(crashed)))
	}
	lt.mu.Unlock()
	for _, a := range log.since(time.Time{}) {
		t.Logf("acquire by %s at %s: ok=%v err=%v", a.ID, faultMS(a.At.Sub(crashed)), a.OK, a.Err)
	}
}

// following: every candidate in cs sees session as the leader's. By
// session, not id: a leader that acquired knows itself by session only
// (see TestFaultAcquiredLeaderKnowsItself).
func following(cs []*inProcCandidate, session string) bool {
	for _, c := range cs {
		if ld := c.e.State().Leader; ld == nil || ld.Session != session {
			return false
		}
	}
	return true
}

// consulClient is a Consul client of the test's own for the agent at addr.
func consulClient(t *testing.T, addr string) *consulhttp.Client {
	t.Helper()
	c, err := consulhttp.NewClient(consulhttp.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
