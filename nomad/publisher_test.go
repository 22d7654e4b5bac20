package nomad

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestLatestKeepsOnlyNewest(t *testing.T) {
	l := newLatest()
	if _, ok := l.get(); ok {
		t.Fatal("empty mailbox reports a status")
	}
	done := make(chan struct{})
	go func() {
		for i := range 1000 { // must never block, with nobody reading
			l.put(Status{Token: uint64(i)})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("put blocked")
	}
	<-l.wake
	if s, _ := l.get(); s.Token != 999 {
		t.Errorf("got token %d, want the newest (999)", s.Token)
	}
	select {
	case <-l.wake:
		t.Error("a second wake-up is pending for one reader")
	default:
	}
}

// TestReconcileLoopBacksOff checks, on fake time, that failures are retried
// after growing delays and that a new status is tried at once.
func TestReconcileLoopBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		box := newLatest()
		var at []time.Duration
		start := time.Now()
		fails := 4
		reconcile := func(ctx context.Context, s Status) error {
			at = append(at, time.Since(start))
			if len(at) <= fails {
				return errors.New("consul down")
			}
			return nil
		}
		var waits []time.Duration
		done := make(chan struct{})
		go func() {
			reconcileLoop(ctx, box, Backoff{Min: time.Second, Max: 4 * time.Second}, reconcile,
				func(err error, attempt int, wait time.Duration) { waits = append(waits, wait) })
			close(done)
		}()
		box.put(Status{Role: RoleFollower})
		time.Sleep(time.Minute)
		synctest.Wait()
		if len(at) != fails+1 {
			t.Fatalf("reconcile ran %d times, want %d (4 failures then success)", len(at), fails+1)
		}
		for i, w := range waits {
			if got := at[i+1] - at[i]; got != w {
				t.Errorf("retry %d after %s, backoff said %s", i+1, got, w)
			}
		}
		if waits[3] < 2*time.Second {
			t.Errorf("4th wait %s, want >= 2s (growing backoff capped at 4s)", waits[3])
		}
		n := len(at)
		box.put(Status{Role: RoleLeader})
		synctest.Wait()
		if len(at) != n+1 || at[n] != time.Since(start) {
			t.Errorf("a new status was not reconciled at once: runs at %v, now %v", at, time.Since(start))
		}
		cancel()
		<-done
	})
}
