package elect

import (
	"context"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// KVReader is what leader discovery needs; *consulhttp.Client and every
// Consul satisfy it.
type KVReader interface {
	GetKV(ctx context.Context, key string, q consulhttp.QueryOptions) (*consulhttp.KVPair, consulhttp.QueryMeta, error)
}

// CurrentLeader reads who holds key now, without campaigning. It returns
// nil, nil when nobody does.
func CurrentLeader(ctx context.Context, c KVReader, key string) (*Leader, error) {
	p, _, err := c.GetKV(ctx, key, consulhttp.QueryOptions{})
	if err != nil {
		return nil, err
	}
	return decodeLeader(p), nil
}

// Observe calls fn with the current leader (nil: nobody), then again on every
// change of leader, until ctx is canceled (it then returns nil) or fn returns
// false. It uses blocking queries with the usual index rules; Consul errors
// are retried with backoff and passed to onErr if it is not nil.
func Observe(ctx context.Context, c KVReader, key string, fn func(*Leader) bool, onErr func(err error, attempt int)) error {
	var (
		q       blockingQuery
		first   = true
		current *Leader
	)
	for {
		sent := time.Now()
		asked := q.index
		p, meta, err := c.GetKV(ctx, key, consulhttp.QueryOptions{Index: asked, Wait: DefaultWatchWait})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			wait := q.failed(time.Now())
			if onErr != nil {
				onErr(err, q.fails)
			}
			if !sleepCtx(ctx, wait) {
				return nil
			}
			continue
		}
		_, wait := q.answered(asked, meta.LastIndex, time.Since(sent), DefaultWatchWait)
		ld := decodeLeader(p)
		changed := (ld == nil) != (current == nil) || ld != nil && ld.Session != current.Session
		if first || changed {
			first = false
			current = ld
			if !fn(ld) {
				return nil
			}
		}
		if wait > 0 && !sleepCtx(ctx, wait) {
			return nil
		}
	}
}
