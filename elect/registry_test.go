package elect

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/leaderd/leaderd/consulhttp"
)

// TestTransferToNamedAndBest: TransferTo moves the key to the candidate
// named, or to the best one (highest priority, then longest waiting), at
// once and without any acquire race; the old leader's work stopped first.
func TestTransferToNamedAndBest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		f.put("services/web/leader/config", []byte("a user's key under the election key"))
		f.put(CandidatesPrefix("services/web/leader")+"gone", []byte(`{"id":"gone","session":"dead"}`))
		a := start(t, f, "a", Config{})
		synctest.Wait()
		b := start(t, f, "b", Config{})
		time.Sleep(time.Second)
		c := start(t, f, "c", Config{Priority: 0})
		d := start(t, f, "d", Config{Priority: 3, PriorityHold: time.Hour})
		synctest.Wait()

		// The winner of an acquire knows itself (Consul's answer to the
		// acquire has no value: the leader is what it wrote).
		if ld := a.e.State().Leader; ld == nil || ld.ID != "a" || ld.Since.IsZero() {
			t.Errorf("a's State().Leader = %+v, want a with its acquire time", ld)
		}
		if err := b.e.TransferTo(t.Context(), "c"); !errors.Is(err, ErrNotLeader) {
			t.Errorf("TransferTo on a follower = %v, want ErrNotLeader", err)
		}
		if err := a.e.TransferTo(t.Context(), "nobody"); !errors.Is(err, ErrNoSuccessor) {
			t.Errorf("TransferTo an unknown id = %v, want ErrNoSuccessor", err)
		}
		if got := leaders(a, b, c, d); !slices.Equal(got, []string{"a"}) {
			t.Fatalf("after a refused transfer leaders = %v, want a still", got)
		}

		before := f.count("acquire")
		t0 := time.Now()
		if err := a.e.TransferTo(t.Context(), "c"); err != nil {
			t.Fatalf("TransferTo(c): %v", err)
		}
		synctest.Wait()
		if got := leaders(a, b, c, d); !slices.Equal(got, []string{"c"}) || time.Since(t0) != 0 {
			t.Fatalf("after TransferTo(c): leaders %v after %v, want c at once", got, time.Since(t0))
		}
		if n := f.count("acquire") - before; n != 0 {
			t.Errorf("%d acquires during a transfer, want none (one txn moves the lock)", n)
		}
		// The best other candidate: d has the highest priority.
		if err := c.e.TransferTo(t.Context(), ""); err != nil {
			t.Fatalf("TransferTo(best): %v", err)
		}
		synctest.Wait()
		if got := leaders(a, b, c, d); !slices.Equal(got, []string{"d"}) {
			t.Fatalf("after TransferTo(best): leaders %v, want d (priority 3)", got)
		}
		// Tokens strictly increase across the terms.
		ta, tc, td := termTokens(a), termTokens(c), termTokens(d)
		if len(ta) != 1 || len(tc) != 1 || len(td) != 1 || !(ta[0] < tc[0] && tc[0] < td[0]) {
			t.Errorf("term tokens a %v c %v d %v, want one each, increasing", ta, tc, td)
		}
		// The old leader stepped down (its work stopped) before the key moved.
		if diff := cmp.Diff([]string{"elected " + fmt.Sprint(ta[0]), "stepdown " + fmt.Sprint(ta[0]) + " transferred"}, a.hookLog()); diff != "" {
			t.Errorf("a's callbacks (-want +got):\n%s", diff)
		}
		// The leader pruned the dead entry, and nothing else.
		if p, _, _ := f.GetKV(t.Context(), "services/web/leader/config", consulhttp.QueryOptions{}); p == nil {
			t.Errorf("a key under the election key that is not an entry was deleted")
		}
		if p, _, _ := f.GetKV(t.Context(), CandidatesPrefix("services/web/leader")+"gone", consulhttp.QueryOptions{}); p != nil {
			t.Errorf("a dead candidate's entry was not pruned")
		}
		for _, x := range []*cand{a, b, c, d} {
			x.stop(t)
		}
	})
}

// TestTransferToAVanishedSuccessorReleases: the successor's session ends
// between the leader's read of the registry and its transaction: the
// transaction fails as a whole, the leader releases instead, and exactly
// one candidate leads afterwards.
func TestTransferToAVanishedSuccessorReleases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		a := start(t, f, "a", Config{})
		synctest.Wait()
		b := start(t, f, "b", Config{})
		c := start(t, f, "c", Config{})
		synctest.Wait()
		a.conn.setBeforeTxn(func(ops []consulhttp.TxnKVOp) {
			if len(ops) >= 2 && ops[1].Verb == consulhttp.TxnLock {
				f.invalidate(ops[1].Session) // the successor dies now
			}
		})
		err := a.e.TransferTo(t.Context(), "b")
		if !errors.Is(err, ErrNoSuccessor) {
			t.Errorf("TransferTo a vanishing successor = %v, want ErrNoSuccessor", err)
		}
		a.conn.setBeforeTxn(nil)
		waitFor(t, time.Minute, "one leader again", func() bool { return len(leaders(a, b, c)) == 1 })
		if got := leaders(a, b, c); got[0] == "a" {
			t.Errorf("a leads again right after handing over, want another (a is in its hold-off)")
		}
		for _, x := range []*cand{a, b, c} {
			x.stop(t)
		}
	})
}

// TestPriorityTakesOverAfterHold: a candidate of higher priority gets the
// key from a running leader once it has been live for PriorityHold, and
// only then; one that comes and goes within the hold time does not.
func TestPriorityTakesOverAfterHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		cfg := Config{PriorityHold: 5 * time.Second}
		a := start(t, f, "a", cfg)
		synctest.Wait()
		// Churn: a better candidate that leaves before the hold time.
		hi := cfg
		hi.Priority = 10
		flap := start(t, f, "flap", hi)
		time.Sleep(3 * time.Second)
		flap.stop(t)
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if got := leaders(a); len(got) != 1 {
			t.Fatalf("a lost the lead to a candidate that stayed 3s of a 5s hold")
		}
		b := start(t, f, "b", hi)
		took := waitFor(t, time.Minute, "b leads", func() bool { return slices.Equal(leaders(a, b), []string{"b"}) })
		if took < 5*time.Second || took > 5500*time.Millisecond {
			t.Errorf("b led %v after it started, want just after the 5s hold", took)
		}
		// No flapping: a (priority 0) never takes it back.
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := leaders(a, b); !slices.Equal(got, []string{"b"}) {
			t.Errorf("a minute later leaders = %v, want b", got)
		}
		if n := len(termTokens(a)); n != 1 {
			t.Errorf("a had %d terms, want 1", n)
		}
		a.stop(t)
		b.stop(t)
	})
}

// TestCrashFailoverInRankOrder: after the leader's session is invalidated,
// 30 candidates wait out the lock-delay and take the key in rank order:
// the best one leads, and the crowd sends a handful of acquires, not one
// or more each.
func TestCrashFailoverInRankOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		cfg := Config{LockDelay: 5 * time.Second}
		lead := start(t, f, "lead", cfg)
		synctest.Wait()
		var cs []*cand
		for i := range 30 {
			c := cfg
			if i == 17 {
				c.Priority = 5 // the best, though it came late
			}
			cs = append(cs, start(t, f, fmt.Sprintf("c%02d", i), c))
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		before := f.count("acquire")
		f.invalidate(lead.e.State().Session)
		took := waitFor(t, time.Minute, "a new leader", func() bool { return len(leaders(cs...)) == 1 })
		if took < 5*time.Second || took > 5200*time.Millisecond {
			t.Errorf("new leader %v after the invalidation, want just after the 5s lock-delay", took)
		}
		if got := leaders(cs...); !slices.Equal(got, []string{"c17"}) {
			t.Errorf("leader %v, want c17 (the highest priority)", got)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := f.count("acquire") - before; n > 4 {
			t.Errorf("%d acquires by 30 candidates after a crash, want a handful: %v", n, f.acquires)
		}
		for _, c := range append(cs, lead) {
			c.stop(t)
		}
	})
}

// TestTransferRequestThroughConsul: RequestTransfer writes a request the
// leader watches; it hands over to the candidate named, and ignores a
// request written before its term.
func TestTransferRequestThroughConsul(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		key := "services/web/leader"
		if _, err := RequestTransfer(t.Context(), fakePut{f}, key, "b"); err != nil {
			t.Fatal(err)
		}
		a := start(t, f, "a", Config{})
		synctest.Wait()
		b := start(t, f, "b", Config{})
		time.Sleep(time.Second)
		synctest.Wait()
		if got := leaders(a, b); !slices.Equal(got, []string{"a"}) {
			t.Fatalf("leaders %v, want a: the request predates its term", got)
		}
		if _, err := RequestTransfer(t.Context(), fakePut{f}, key, "b"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Second, "b leads", func() bool { return slices.Equal(leaders(a, b), []string{"b"}) })
		es, ld, err := Candidates(t.Context(), f, key)
		if err != nil || ld == nil || ld.ID != "b" || len(es) != 2 || !es[1].Leading && !es[0].Leading {
			t.Errorf("Candidates = %+v, leader %+v, %v; want a and b, b leading", es, ld, err)
		}
		if p, _, _ := f.GetKV(t.Context(), TransferKey(key), consulhttp.QueryOptions{}); p != nil {
			t.Errorf("transfer request still there after the handover")
		}
		a.stop(t)
		b.stop(t)
	})
}

// fakePut gives the fake a PutKV for RequestTransfer.
type fakePut struct{ f *fakeConsul }

func (p fakePut) PutKV(ctx context.Context, key string, value []byte) error {
	p.f.put(key, value)
	return nil
}

// termTokens are the tokens of c's terms, from its OnElected calls.
func termTokens(c *cand) []uint64 {
	var out []uint64
	for _, ev := range c.log() {
		if ev.Kind == KindElected {
			out = append(out, ev.Token)
		}
	}
	return out
}

// TestHandoversGoRoundNotPingPong: a leader that steps down goes to the
// back of the queue, so handovers among equals go round all of them
// instead of back and forth between two (-restart's repeated resigns).
func TestHandoversGoRoundNotPingPong(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		a := start(t, f, "a", Config{})
		synctest.Wait()
		time.Sleep(time.Second)
		b := start(t, f, "b", Config{})
		time.Sleep(time.Second)
		c := start(t, f, "c", Config{})
		time.Sleep(time.Second)
		synctest.Wait()
		var order []string
		all := []*cand{a, b, c}
		for range 6 {
			cur := leaders(all...)
			if len(cur) != 1 {
				t.Fatalf("leaders %v, want one", cur)
			}
			order = append(order, cur[0])
			for _, x := range all {
				if x.id == cur[0] {
					if err := x.e.Resign(t.Context()); err != nil {
						t.Fatal(err)
					}
				}
			}
			time.Sleep(time.Second) // re-registration goes to the back
			synctest.Wait()
		}
		if diff := cmp.Diff([]string{"a", "b", "c", "a", "b", "c"}, order); diff != "" {
			t.Errorf("leaders in turn (-want +got):\n%s", diff)
		}
		for _, x := range all {
			x.stop(t)
		}
	})
}
