package elect

import (
	"context"
	"slices"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// ObserveCandidates is Observe for the candidate registry: it calls fn with
// every registered candidate (best first, as Candidates returns them) and
// the leader (nil: nobody), then again whenever either changes, until ctx
// is canceled (it then returns nil) or fn returns false. One blocking query
// on the prefix key covers the key and its registry, so each call sees
// both at one index; other keys under that prefix (the transfer request)
// wake it but call fn only if what it shows changed. Consul errors are
// retried with backoff and passed to onErr if it is not nil.
func ObserveCandidates(ctx context.Context, c KVLister, key string, fn func([]CandidateEntry, *Leader) bool, onErr func(err error, attempt int)) error {
	var (
		q       blockingQuery
		first   = true
		entries []CandidateEntry
		leader  *Leader
	)
	for {
		sent := time.Now()
		asked := q.index
		pairs, meta, err := c.ListKV(ctx, key, consulhttp.QueryOptions{Index: asked, Wait: DefaultWatchWait})
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
		var p *consulhttp.KVPair
		for i := range pairs {
			if pairs[i].Key == key {
				p = &pairs[i]
			}
		}
		es, ld := parseRegistry(key, pairs, p), decodeLeader(p)
		if first || !sameRegistry(entries, es) || !sameLeaderSession(leader, ld) {
			first = false
			entries, leader = es, ld
			if !fn(slices.Clone(es), ld) {
				return nil
			}
		}
		if wait > 0 && !sleepCtx(ctx, wait) {
			return nil
		}
	}
}

// sameLeaderSession: the same session holds the key (as Observe tells changes).
func sameLeaderSession(a, b *Leader) bool {
	return (a == nil) == (b == nil) && (a == nil || a.Session == b.Session)
}

// sameRegistry compares what a reader sees of two registries, not the
// entries' Consul indexes.
func sameRegistry(a, b []CandidateEntry) bool {
	return slices.EqualFunc(a, b, func(x, y CandidateEntry) bool {
		return x.Candidate.ID == y.Candidate.ID && x.Name == y.Name && x.Address == y.Address && x.AllocID == y.AllocID &&
			x.Node == y.Node && x.StartedAt.Equal(y.StartedAt) && x.Priority == y.Priority && x.Session == y.Session &&
			x.Since.Equal(y.Since) && x.LockDelayMS == y.LockDelayMS && x.Live == y.Live && x.Leading == y.Leading
	})
}
