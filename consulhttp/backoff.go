package consulhttp

import (
	"math/rand/v2"
	"time"
)

// Backoff paces the retries of a request that keeps failing: the n-th
// consecutive failure waits a random duration in [d/2, d] with
// d = Min·2^(n-1) capped at Max. The jitter ("equal jitter") keeps the many
// candidates that failed together (a Consul or Nomad restart) from retrying
// in step. Callers pick the cap: how long a retry may lag behind a recovery.
type Backoff struct {
	Min time.Duration // default 250ms
	Max time.Duration // default 30s; at least Min
}

func (b Backoff) withDefaults() Backoff {
	if b.Min <= 0 {
		b.Min = 250 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 30 * time.Second
	}
	if b.Max < b.Min {
		b.Max = b.Min
	}
	return b
}

// Delay is the wait before retry number attempt (1-based).
func (b Backoff) Delay(attempt int) time.Duration {
	b = b.withDefaults()
	d := b.Min
	for i := 1; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	half := d / 2
	return half + rand.N(d-half+1)
}
