package elect

import "time"

// LeadingAt reports whether a snapshot taken earlier still shows a valid
// lease at now. The election steps down at LeaseEnd, but a State read just
// before that must not go on claiming leadership after it: whoever serves
// or publishes a snapshot asks this instead of reading Leading alone.
func (s State) LeadingAt(now time.Time) bool {
	return s.Leading && (s.LeaseEnd.IsZero() || now.Before(s.LeaseEnd))
}

// LeaseOverdue reports a snapshot that still says leading although its
// lease ended at or before now: the election's loop is late to step down.
// A health check fails on it (client-go's healthz adaptor does the same).
func (s State) LeaseOverdue(now time.Time) bool {
	return s.Leading && !s.LeadingAt(now)
}

// LeaseRemaining is the time left on the lease at now; 0 unless leading
// with a lease.
func (s State) LeaseRemaining(now time.Time) time.Duration {
	if !s.Leading || s.LeaseEnd.IsZero() {
		return 0
	}
	return max(s.LeaseEnd.Sub(now), 0)
}
