package consulhttp

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"testing/synctest"
	"time"
)

const minute = time.Minute

// TestRequestDeadlines runs in a synctest bubble against the in-process
// fake: Consul never answers, and the request must end exactly when its
// deadline says, in fake time.
func TestRequestDeadlines(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		ctxWait time.Duration // caller's deadline; 0: none
		q       QueryOptions
		want    time.Duration
		callers bool // the caller's deadline ends it, not ours
	}{
		{name: "non-blocking: default timeout", want: 10 * time.Second},
		{name: "non-blocking: configured timeout", cfg: Config{RequestTimeout: 3 * time.Second}, want: 3 * time.Second},
		{name: "wait without index is not blocking", q: QueryOptions{Wait: minute}, want: 10 * time.Second},
		{name: "caller's earlier deadline", ctxWait: 2 * time.Second, want: 2 * time.Second, callers: true},
		{name: "blocking: wait plus jitter plus margin", q: QueryOptions{Index: 5, Wait: minute}, want: minute + minute/16 + 10*time.Second},
		{name: "blocking without wait: Consul's 5m", q: QueryOptions{Index: 5}, want: 5*minute + 5*minute/16 + 10*time.Second},
		{name: "blocking wait capped at 10m", q: QueryOptions{Index: 5, Wait: 20 * minute}, want: 10*minute + 10*minute/16 + 10*time.Second},
		{name: "blocking within caller's deadline", ctxWait: 30 * time.Second, q: QueryOptions{Index: 5, Wait: minute}, want: 30 * time.Second, callers: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, _ := newFakeClient(t, tt.cfg, func(r *http.Request) (*http.Response, error) {
					<-r.Context().Done() // Consul never answers
					return nil, r.Context().Err()
				})
				ctx := t.Context()
				if tt.ctxWait > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.ctxWait)
					defer cancel()
				}
				start := time.Now()
				_, _, err := c.GetKV(ctx, "k", tt.q)
				if got := time.Since(start); got != tt.want {
					t.Errorf("request ended after %s, want %s", got, tt.want)
				}
				if tt.callers {
					if !errors.Is(err, context.DeadlineExceeded) || IsRetryable(err) {
						t.Errorf("error %v: want the caller's context.DeadlineExceeded, not retryable", err)
					}
					return
				}
				var re *RequestError
				if !errors.As(err, &re) || !errors.Is(err, ErrRequestTimeout) || !IsRetryable(err) {
					t.Errorf("error %v: want a retryable *RequestError with ErrRequestTimeout", err)
				}
			})
		})
	}
}

func TestCallerCancelIsNotRetryable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		c, _ := newFakeClient(t, Config{}, func(r *http.Request) (*http.Response, error) {
			cancel() // the caller gives up while the request is out
			<-r.Context().Done()
			return nil, r.Context().Err()
		})
		_, err := c.RenewSession(ctx, "sid")
		if !errors.Is(err, context.Canceled) || IsRetryable(err) {
			t.Fatalf("RenewSession canceled by the caller: %v; want context.Canceled, not retryable", err)
		}
		var re *RequestError
		if errors.As(err, &re) {
			t.Errorf("error %v is a *RequestError; a cancel is not a connection problem", err)
		}
	})
}

func TestBlockingTimeout(t *testing.T) {
	tests := []struct{ wait, margin, want time.Duration }{
		{0, 10 * time.Second, 5*minute + 18750*time.Millisecond + 10*time.Second},
		{-time.Second, time.Second, 5*minute + 18750*time.Millisecond + time.Second},
		{16 * time.Second, 0, 17 * time.Second},
		{10 * minute, 0, 10*minute + 37500*time.Millisecond},
		{time.Hour, 0, 10*minute + 37500*time.Millisecond},
	}
	for _, tt := range tests {
		if got := blockingTimeout(tt.wait, tt.margin); got != tt.want {
			t.Errorf("blockingTimeout(%s, %s) = %s, want %s", tt.wait, tt.margin, got, tt.want)
		}
	}
}
