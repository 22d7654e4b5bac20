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
	w := watch[[]consulhttp.KVPair]{read: func(ctx context.Context, q consulhttp.QueryOptions) ([]consulhttp.KVPair, consulhttp.QueryMeta, error) {
		return c.ListKV(ctx, key, q)
	}}
	defer w.stop()
	var (
		shown   bool
		entries []CandidateEntry
		leader  *Leader
	)
	for sleepCtx(ctx, time.Until(w.at)) {
		w.start(ctx, DefaultWatchWait, false)
		var a answer[[]consulhttp.KVPair]
		select {
		case <-ctx.Done():
			return nil
		case a = <-w.ch:
			w.received()
		}
		if a.err != nil {
			w.failed(a.recv)
			if onErr != nil {
				onErr(a.err, w.fails)
			}
			continue
		}
		w.answered(a.asked, a.meta.LastIndex, a.recv.Sub(a.sent), DefaultWatchWait)
		var p *consulhttp.KVPair
		for i := range a.val {
			if a.val[i].Key == key {
				p = &a.val[i]
			}
		}
		es, ld := parseRegistry(key, a.val, p), decodeLeader(p)
		if shown && sameRegistry(entries, es) && sameLeaderSession(leader, ld) {
			continue
		}
		shown, entries, leader = true, es, ld
		if !fn(slices.Clone(es), ld) {
			return nil
		}
	}
	return nil
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
