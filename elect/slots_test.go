package elect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/leaderd/leaderd/consulhttp"
)

const slotsPrefix = "services/web/slots"

// slotsTiming keeps the unit tests short: lease 2s − 0.5s, prune wait 2.5s.
var slotsTiming = Config{TTL: 3 * time.Second, LockDelay: 2 * time.Second, Margin: 500 * time.Millisecond}

// slotBook checks the invariant across all candidates of a test, at every
// hook: at most limit terms at once (a term runs from OnElected to the end
// of OnStepDown, when its work is dead), and every token is new and above
// the tokens of every term that ended before it began.
type slotBook struct {
	t     *testing.T
	limit int

	mu      sync.Mutex
	running map[string]uint64 // candidate → token
	seen    map[uint64]bool
	ended   uint64 // highest token of an ended term
	elected map[string][]time.Time
	stepped map[string][]time.Time
}

func newSlotBook(t *testing.T, limit int) *slotBook {
	return &slotBook{t: t, limit: limit, running: map[string]uint64{}, seen: map[uint64]bool{},
		elected: map[string][]time.Time{}, stepped: map[string][]time.Time{}}
}

func (b *slotBook) onElected(id string, tm Term) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen[tm.Token] || tm.Token <= b.ended {
		b.t.Errorf("%s: token %d reused or not above an ended term's %d", id, tm.Token, b.ended)
	}
	b.seen[tm.Token] = true
	b.running[id] = tm.Token
	b.elected[id] = append(b.elected[id], time.Now())
	if len(b.running) > b.limit {
		b.t.Errorf("%d holders at once (limit %d): %v", len(b.running), b.limit, b.running)
	}
}

func (b *slotBook) onStepDown(id string, tm Term) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.running, id)
	b.ended = max(b.ended, tm.Token)
	b.stepped[id] = append(b.stepped[id], time.Now())
}

func (b *slotBook) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.running)
}

func (b *slotBook) electedAt(id string) []time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Time(nil), b.elected[id]...)
}

func (b *slotBook) steppedAt(id string) []time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Time(nil), b.stepped[id]...)
}

type slotCand struct {
	id     string
	s      *Slots
	conn   *slotsCut
	cancel context.CancelFunc
	done   chan error
}

func (c *slotCand) stop(t *testing.T) {
	t.Helper()
	c.cancel()
	if err := <-c.done; err != nil {
		t.Errorf("%s: Run: %v", c.id, err)
	}
}

func startSlots(t *testing.T, f *fakeConsul, b *slotBook, id string, limit int) *slotCand {
	t.Helper()
	return startSlotsHooked(t, f, b, id, limit, nil)
}

// startSlotsHooked is startSlots with a slotsCut.beforeTxn hook.
func startSlotsHooked(t *testing.T, f *fakeConsul, b *slotBook, id string, limit int, beforeTxn func([]consulhttp.TxnKVOp) bool) *slotCand {
	t.Helper()
	c := &slotCand{id: id, conn: &slotsCut{CutConsul: &CutConsul{Consul: f}, f: f, beforeTxn: beforeTxn}, done: make(chan error, 1)}
	cfg := slotsTiming
	cfg.Key = slotsPrefix
	cfg.Candidate.ID = id
	cfg.OnElected = func(tm Term) { b.onElected(id, tm) }
	cfg.OnStepDown = func(tm Term, _ Reason) { b.onStepDown(id, tm) }
	s, err := NewSlots(c.conn, cfg, limit)
	if err != nil {
		t.Fatalf("NewSlots: %v", err)
	}
	c.s = s
	ctx, cancel := context.WithCancel(t.Context())
	c.cancel = cancel
	go func() { c.done <- s.Run(ctx) }()
	return c
}

// startHolder starts a candidate and waits until it holds a slot.
func startHolder(t *testing.T, f *fakeConsul, b *slotBook, id string, limit int) *slotCand {
	t.Helper()
	c := startSlots(t, f, b, id, limit)
	waitFor(t, 10*time.Second, id+" holds", func() bool { return c.s.State().Leading })
	return c
}

func slotHolders(cs ...*slotCand) []*slotCand {
	var out []*slotCand
	for _, c := range cs {
		if c.s.State().Leading {
			out = append(out, c)
		}
	}
	return out
}

// lockOf reads .lock from the fake.
func lockOf(t *testing.T, f *fakeConsul) (semLock, *consulhttp.KVPair) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.kv[slotsPrefix+"/"+SemaphoreLockKey]
	if !ok {
		return semLock{}, nil
	}
	c := *p
	var l semLock
	if err := json.Unmarshal(c.Value, &l); err != nil {
		t.Fatalf(".lock value %q: %v", c.Value, err)
	}
	return l, &c
}

func TestSlotsFillAndRefill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newEmptyFake(t)
		b := newSlotBook(t, 2)
		var cs []*slotCand
		for i := range 5 {
			cs = append(cs, startSlots(t, f, b, fmt.Sprintf("c%d", i), 2))
		}
		// A missing .lock is created only a prune wait after it was first seen missing.
		took := waitFor(t, 10*time.Second, "two holders", func() bool { return b.count() == 2 })
		if took < slotsTiming.LockDelay+slotsTiming.Margin {
			t.Errorf("first holders after %v: a missing .lock must wait %v", took, slotsTiming.LockDelay+slotsTiming.Margin)
		}
		time.Sleep(20 * time.Second) // renews, watches: nobody else gets in
		synctest.Wait()
		hs := slotHolders(cs...)
		if len(hs) != 2 {
			t.Fatalf("holders %d, want 2", len(hs))
		}
		// Layout: Consul's semaphore.
		lk, lp := lockOf(t, f)
		if lp.Flags != SemaphoreFlags || lk.Limit != 2 || len(lk.Holders) != 2 {
			t.Errorf(".lock = flags %#x %+v", lp.Flags, lk)
		}
		for _, h := range hs {
			st := h.s.State()
			f.mu.Lock()
			cp := f.kv[slotsPrefix+"/"+st.Session]
			f.mu.Unlock()
			if cp == nil || cp.Session != st.Session || cp.Flags != SemaphoreFlags || !lk.Holders[st.Session] {
				t.Errorf("%s: contender key %+v, holders %v", h.id, cp, lk.Holders)
			}
			if st.Leader == nil || st.Leader.ID != h.id || st.Token == 0 {
				t.Errorf("%s: state %+v", h.id, st)
			}
		}
		// A graceful stop frees the slot at once: no wait.
		gone := hs[0]
		sid := gone.s.State().Session
		stopped := time.Now()
		gone.stop(t)
		if lk, _ := lockOf(t, f); lk.Holders[sid] {
			t.Errorf("stopped holder still in .lock: %v", lk.Holders)
		}
		f.mu.Lock()
		_, kept := f.kv[slotsPrefix+"/"+sid]
		f.mu.Unlock()
		if kept {
			t.Errorf("stopped holder's contender key is still there")
		}
		rest := append([]*slotCand(nil), cs...)
		for i, c := range rest {
			if c == gone {
				rest = append(rest[:i], rest[i+1:]...)
				break
			}
		}
		waitFor(t, time.Second, "refilled after a graceful stop", func() bool { return len(slotHolders(rest...)) == 2 })
		if d := time.Since(stopped); d > time.Second {
			t.Errorf("refilled after %v", d)
		}
		for _, c := range rest {
			c.stop(t)
		}
		if lk, _ := lockOf(t, f); len(lk.Holders) != 0 {
			t.Errorf("holders left after everyone stopped: %v", lk.Holders)
		}
	})
}

// A holder cut off from Consul whose session is then destroyed: others
// see its contender key gone at once, but take its slot only a prune wait
// later, after its lease has ended (`consul lock -n` would not wait). With
// a gap in what the contender saw (its watch failed), the wait counts
// again from the next answer.
func TestSlotsPruneWaitsOutTheDeadHoldersLease(t *testing.T) {
	for _, gap := range []bool{false, true} {
		t.Run(fmt.Sprintf("gap=%v", gap), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { testPruneWait(t, gap) })
		})
	}
}

func testPruneWait(t *testing.T, gap bool) {
	f := newEmptyFake(t)
	b := newSlotBook(t, 1)
	a := startHolder(t, f, b, "a", 1)
	bc := startSlots(t, f, b, "b", 1)
	time.Sleep(5 * time.Second)
	synctest.Wait()
	a.conn.cutOff()
	sid := a.s.State().Session
	f.invalidate(sid)
	seen := time.Now() // b's watch answers at once
	if gap {
		time.Sleep(time.Second)
		bc.conn.cutOff()
		time.Sleep(time.Second)
		bc.conn.SetCut(false)
		seen = time.Now()
	}
	waitFor(t, 20*time.Second, "b holds", func() bool { return bc.s.State().Leading })
	took, wait := b.electedAt("b")[0].Sub(seen), slotsTiming.LockDelay+slotsTiming.Margin
	if took < wait {
		t.Errorf("b joined %v after it saw a dead; the prune wait is %v", took, wait)
	}
	// After a gap the next read must not block on the old index: nothing
	// under the prefix changes any more (a watch would wait its 5m).
	if took > wait+3*time.Second {
		t.Errorf("b joined %v after it saw a dead, want within the prune wait %v and a backoff", took, wait)
	}
	if got := b.steppedAt("a"); len(got) != 1 || got[0].After(b.electedAt("b")[0]) {
		t.Errorf("a stepped down at %v, b elected at %v", got, b.electedAt("b"))
	}
	if lk, _ := lockOf(t, f); lk.Holders[sid] || len(lk.Holders) != 1 {
		t.Errorf("holders %v: the dead holder must be pruned", lk.Holders)
	}
	a.conn.SetCut(false)
	bc.stop(t)
	a.stop(t)
}

// Another writer changes .lock between a contender's read and its CAS:
// the CAS loses, and the contender reads again instead of overfilling.
func TestSlotsLostCASRereads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newEmptyFake(t)
		b := newSlotBook(t, 2)
		a := startHolder(t, f, b, "a", 2)
		// x is a `consul lock -n 2` contender that joins first.
		x, err := f.CreateSession(t.Context(), consulhttp.SessionRequest{TTL: time.Hour, NodeChecks: []string{}})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok, err := f.TxnKV(t.Context(), []consulhttp.TxnKVOp{{Verb: consulhttp.TxnLock, Key: slotsPrefix + "/" + x, Flags: SemaphoreFlags, Session: x}}); !ok || err != nil {
			t.Fatalf("x contender: %v %v", ok, err)
		}
		raced := false
		bc := startSlotsHooked(t, f, b, "b", 2, func(ops []consulhttp.TxnKVOp) bool {
			if len(ops) < 2 || ops[1].Verb != consulhttp.TxnCAS {
				return false
			}
			lk, lp := lockOf(t, f)
			lk.Holders[x] = true
			v, _ := json.Marshal(lk)
			if _, ok, err := f.TxnKV(t.Context(), []consulhttp.TxnKVOp{{Verb: consulhttp.TxnCAS, Key: lp.Key, Value: v, Flags: SemaphoreFlags, Index: lp.ModifyIndex}}); !ok || err != nil {
				t.Errorf("x join: %v %v", ok, err)
			}
			raced = true
			return true
		})
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if !raced {
			t.Fatal("b never tried to join")
		}
		if bc.s.State().Leading {
			t.Errorf("b holds a slot: a and x hold both")
		}
		lk, _ := lockOf(t, f)
		if diff := cmp.Diff(map[string]bool{a.s.State().Session: true, x: true}, lk.Holders); diff != "" {
			t.Errorf("holders (-want +got):\n%s", diff)
		}
		// x leaves as consul lock does (CAS out, delete its key): b gets in.
		lk, lp := lockOf(t, f)
		delete(lk.Holders, x)
		v, _ := json.Marshal(lk)
		f.TxnKV(t.Context(), []consulhttp.TxnKVOp{{Verb: consulhttp.TxnCAS, Key: lp.Key, Value: v, Flags: SemaphoreFlags, Index: lp.ModifyIndex}, {Verb: consulhttp.TxnDelete, Key: slotsPrefix + "/" + x}})
		waitFor(t, time.Second, "b holds after x left", func() bool { return bc.s.State().Leading })
		bc.stop(t)
		a.stop(t)
	})
}

func TestSlotsLimitConflict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newEmptyFake(t)
		x, _ := f.CreateSession(t.Context(), consulhttp.SessionRequest{TTL: time.Hour, NodeChecks: []string{}})
		v, _ := json.Marshal(semLock{Limit: 3, Holders: map[string]bool{x: true}})
		f.TxnKV(t.Context(), []consulhttp.TxnKVOp{{Verb: consulhttp.TxnCAS, Key: slotsPrefix + "/.lock", Value: v, Flags: SemaphoreFlags}})
		c := startSlots(t, f, newSlotBook(t, 2), "a", 2)
		synctest.Wait()
		if err := <-c.done; !errors.Is(err, ErrSlotsConflict) {
			t.Errorf("Run = %v, want ErrSlotsConflict", err)
		}
	})
}

func TestNewSlotsRefusesBadLimit(t *testing.T) {
	cfg := slotsTiming
	cfg.Key, cfg.Candidate.ID = slotsPrefix, "a"
	_, err := NewSlots(nil, cfg, 0)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Fields[0] != FieldLimit {
		t.Errorf("NewSlots(limit 0) = %v, want a FieldError on %s", err, FieldLimit)
	}
}

func TestSlotsResignTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newEmptyFake(t)
		b := newSlotBook(t, 1)
		a := startHolder(t, f, b, "a", 1)
		bc := startSlots(t, f, b, "b", 1)
		time.Sleep(time.Second)
		synctest.Wait()
		tok := a.s.State().Token
		if err := a.s.ResignTerm(t.Context(), tok+1); !errors.Is(err, ErrNotLeader) {
			t.Errorf("ResignTerm(other token) = %v", err)
		}
		if err := a.s.ResignTerm(t.Context(), tok); err != nil {
			t.Fatalf("ResignTerm: %v", err)
		}
		waitFor(t, time.Second, "b holds at once", func() bool { return bc.s.State().Leading })
		if bt := bc.s.State().Token; bt <= tok {
			t.Errorf("b's token %d not above a's %d", bt, tok)
		}
		bc.stop(t)
		waitFor(t, 5*time.Second, "a holds again", func() bool { return a.s.State().Leading })
		a.stop(t)
	})
}

// TestSlotsUnknownHolderDelay: a holder with a longer lock-delay than ours
// (say mid rolling change of -lock-delay) is cut off and its session ends,
// taking its contender key with it (Behavior delete). A contender started
// after that never saw the holder's record, so it can't know its
// lock-delay: it must wait MaxLockDelay + margin, not its own lock-delay +
// margin, before it prunes the holder, or both hold while the cut-off
// holder's lease still runs.
func TestSlotsUnknownHolderDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newEmptyFake(t)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		ca := &slotsCut{CutConsul: &CutConsul{Consul: f}, f: f}
		const margin = 500 * time.Millisecond
		mk := func(id string, ld time.Duration) Config {
			return Config{Key: slotsPrefix, Candidate: Candidate{ID: id}, TTL: 3 * time.Second, LockDelay: ld, Margin: margin}
		}
		a, err := NewSlots(ca, mk("a", 10*time.Second), 1)
		if err != nil {
			t.Fatal(err)
		}
		go a.Run(ctx)
		waitFor(t, 30*time.Second, "a holds", func() bool { return a.State().Leading })
		sid := a.State().Session
		ca.cutOff() // a hears nothing more; its lease runs on
		f.invalidate(sid)
		gone := time.Now()
		b, err := NewSlots(f, mk("b", 2*time.Second), 1)
		if err != nil {
			t.Fatal(err)
		}
		go b.Run(ctx)
		waitFor(t, 2*MaxLockDelay, "b holds", func() bool { return b.State().Leading })
		sa := a.State()
		t.Logf("b holds %v after a's session ended; a leading=%v, lease ends in %v", time.Since(gone), sa.Leading, time.Until(sa.LeaseEnd))
		if sa.Leading && time.Now().Before(sa.LeaseEnd) {
			t.Errorf("2 holders with limit 1")
		}
		if d := time.Since(gone); d < MaxLockDelay+margin {
			t.Errorf("b holds %v after a's session ended, before MaxLockDelay + margin %v", d, MaxLockDelay+margin)
		}
	})
}
