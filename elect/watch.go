package elect

import (
	"context"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// retry counts consecutive failures of one kind of request and says when
// to send it again.
type retry struct {
	fails int
	at    time.Time // earliest next attempt
}

// failed counts a failure at now and returns the wait before the next
// attempt (backoff), which it also sets at to end.
func (r *retry) failed(now time.Time) time.Duration {
	r.fails++
	d := backoff(r.fails)
	r.at = now.Add(d)
	return d
}

// due says whether the next attempt may go at now.
func (r *retry) due(now time.Time) bool { return !now.Before(r.at) }

// blockingQuery is the index of a blocking query and its rules, shared by
// the loops' watches and Observe: go back to 0 if the index went backwards
// (Consul's state may have been rebuilt), never block with an index below
// 1, and rate-limit, like a failure, an answer that went backwards or came
// back early with no change (a wake-up is no proof of change). Only a
// proper blocking read clears the failure count: the non-blocking read
// after a reset proves nothing.
type blockingQuery struct {
	index uint64 // of the next query
	retry
}

// answered takes in an answer with index got to a query asked with index
// asked, which took took out of a wait of wait. It reports whether the
// index went backwards and how long to wait before the next query (0: at
// once).
func (q *blockingQuery) answered(asked, got uint64, took, wait time.Duration) (backwards bool, next time.Duration) {
	backwards = got < asked
	switch {
	case backwards:
		q.index = 0
	case got == 0:
		q.index = 1
	default:
		q.index = got
	}
	spurious := asked > 0 && got == asked && took < wait/2
	switch {
	case backwards || spurious:
		next = q.failed(time.Now())
	case asked > 0:
		q.fails = 0
	}
	return backwards, next
}

// answer is what one blocking read of a watch got: T is the key
// (*consulhttp.KVPair) or the prefix ([]consulhttp.KVPair).
type answer[T any] struct {
	val   T
	meta  consulhttp.QueryMeta
	err   error
	sent  time.Time
	recv  time.Time
	asked uint64 // the index the read was sent with
}

// watch is a loop's blocking read of its key or prefix: one in flight at
// a time, its answer delivered on ch.
type watch[T any] struct {
	blockingQuery
	read   func(ctx context.Context, q consulhttp.QueryOptions) (T, consulhttp.QueryMeta, error)
	ch     chan answer[T] // nil: none in flight
	cancel context.CancelFunc
}

// due says whether a read should be sent at now.
func (w *watch[T]) due(now time.Time) bool { return w.ch == nil && w.retry.due(now) }

func (w *watch[T]) start(ctx context.Context, wait time.Duration, consistent bool) {
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan answer[T], 1)
	q := consulhttp.QueryOptions{Index: w.index, Wait: wait, Consistent: consistent}
	go func() {
		sent := time.Now()
		v, meta, err := w.read(ctx, q)
		ch <- answer[T]{val: v, meta: meta, err: err, sent: sent, recv: time.Now(), asked: q.Index}
	}()
	w.ch, w.cancel = ch, cancel
}

// received marks the read in flight as answered.
func (w *watch[T]) received() { w.ch, w.cancel = nil, nil }

func (w *watch[T]) stop() {
	if w.cancel != nil {
		w.cancel()
	}
	w.received()
}

// restart replaces the read in flight at once, e.g. to switch consistency.
func (w *watch[T]) restart() {
	w.stop()
	w.at = time.Time{}
}

// failed is a read that got no usable answer: a gap in what was seen, so
// the next read does not block (index 0) but tells the state as it is now.
func (w *watch[T]) failed(now time.Time) {
	w.index = 0
	w.retry.failed(now)
}

// absence times how long something has been seen missing: since the
// receipt of the first answer, in an unbroken run of answers, that showed
// it missing. A missing key (or .lock) is no proof that nobody leads:
// Consul may have lost its state while a leader's lease runs, and that
// lease is over lock-delay + margin after such an answer.
type absence struct{ since time.Time }

// saw takes in an answer received at recv; it reports whether it started
// the count.
func (a *absence) saw(present bool, recv time.Time) (started bool) {
	switch {
	case present:
		a.since = time.Time{}
	case a.since.IsZero():
		a.since = recv
		return true
	}
	return false
}

// reset starts the count afresh (a gap in what was seen, an index that
// went backwards).
func (a *absence) reset() { a.since = time.Time{} }

// over is when something missing since the count began may be taken.
func (a *absence) over(wait time.Duration) time.Time { return a.since.Add(wait) }
