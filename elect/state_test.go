package elect

import (
	"testing"
	"time"
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
