package elect

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

func TestStateLeadingAt(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name             string
		st               State
		leading, overdue bool
		left             time.Duration
	}{
		{"follower", State{}, false, false, 0},
		{"valid lease", State{Leading: true, LeaseEnd: now.Add(time.Second)}, true, false, time.Second},
		{"lease ends now", State{Leading: true, LeaseEnd: now}, false, true, 0},
		{"overdue", State{Leading: true, LeaseEnd: now.Add(-time.Millisecond)}, false, true, 0},
		{"leading without a lease end", State{Leading: true}, true, false, 0},
	}
	for _, tc := range tests {
		if got := tc.st.LeadingAt(now); got != tc.leading {
			t.Errorf("%s: LeadingAt = %v, want %v", tc.name, got, tc.leading)
		}
		if got := tc.st.LeaseOverdue(now); got != tc.overdue {
			t.Errorf("%s: LeaseOverdue = %v, want %v", tc.name, got, tc.overdue)
		}
		if got := tc.st.LeaseRemaining(now); got != tc.left {
			t.Errorf("%s: LeaseRemaining = %v, want %v", tc.name, got, tc.left)
		}
	}
}

// slowAcquire answers acquires (and every transaction) after 900ms (fake
// time).
type slowAcquire struct{ *fakeConsul }

func (s slowAcquire) TxnKV(ctx context.Context, ops []consulhttp.TxnKVOp) ([]consulhttp.KVPair, bool, error) {
	time.Sleep(900 * time.Millisecond)
	return s.fakeConsul.TxnKV(ctx, ops)
}

// TestStateShowsSessionDuringAcquire: State shows the session the loop
// acts with while its first acquire is still in flight, not a turn later.
func TestStateShowsSessionDuringAcquire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t)
		e, err := New(slowAcquire{f}, Config{Key: "k", Candidate: Candidate{ID: "a"}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if st := e.State(); st.Session == "" || st.Leading {
			t.Errorf("mid-acquire State: Session=%q Leading=%v, want a session, not leading", st.Session, st.Leading)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if st := e.State(); !st.Leading {
			t.Errorf("after the acquire: Leading=%v, want true", st.Leading)
		}
		cancel()
		<-done
	})
}
