package elect

import (
	"context"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// retries paces the election's retries of Consul: from 250ms to 10s. The
// cap is a third of the publishers' (nomad): a follower retrying a failed
// watch or acquire must notice a free key soon after Consul recovers.
var retries = consulhttp.Backoff{Min: 250 * time.Millisecond, Max: 10 * time.Second}

// backoff is the wait before retry number attempt (1-based).
func backoff(attempt int) time.Duration { return retries.Delay(attempt) }

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
