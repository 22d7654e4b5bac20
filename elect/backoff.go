package elect

import (
	"context"
	"math/rand/v2"
	"time"
)

const (
	backoffBase = 250 * time.Millisecond
	backoffMax  = 10 * time.Second
)

// backoff is the wait before retry number attempt (1-based): exponential
// from 250ms to 10s, with "equal jitter" so that many candidates failing
// together spread out instead of hammering Consul in step.
func backoff(attempt int) time.Duration {
	d := backoffMax
	if attempt < 16 {
		d = min(backoffBase<<max(attempt-1, 0), backoffMax)
	}
	return d/2 + rand.N(d/2+1)
}

// sleepCtx waits d or until ctx is done; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
