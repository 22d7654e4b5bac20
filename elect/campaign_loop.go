package elect

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// campaignLoop is what the Run loops of an Election (loop) and of Slots
// (slotsLoop) share: the select over ctx, the session, the watch, resign
// requests and the clock; the lease of the current term; the shutdown
// path; and the State the loop publishes. Only the loop's goroutine
// touches it. T is what the watch reads: the key or the prefix.
type campaignLoop[T any] struct {
	k       *campaign
	kind    loopKind[T]
	session *Session
	ctx     context.Context
	sessErr <-chan error
	loopConfig

	sess     sessionState // the session as last seen
	sessWake <-chan struct{}
	sessGone bool  // the session's Run returned (its error was taken from sessErr)
	fatal    error // a Consul answer retrying can't fix (ACL denied): Run returns it

	leading  bool
	term     Term
	proof    time.Time // t_v: send time of the latest proof that term.Session is valid
	leaseEnd time.Time // proof + LockDelay − Margin
	terms    int

	holdOffUntil time.Time // no new term before (after a resign)
	abandoned    string    // a session given up after a lease expiry or invalidation: never used again

	watch watch[T]
	st    State // State as of this turn; publish makes it the campaign's
}

// loopConfig is the configuration a loop reads, filled once.
type loopConfig struct {
	key            string
	candidate      Candidate
	lockDelay      time.Duration // the session's: the lease a proof gives
	margin         time.Duration
	missingWait    time.Duration // lockDelay + margin: how long a missing key is waited out
	watchWait      time.Duration
	releaseTimeout time.Duration
	holdOff        time.Duration
	log            *slog.Logger
}

// loopKind is what differs between an Election's loop and Slots' loop.
type loopKind[T any] interface {
	// act starts a term (or prepares one) if it is due at now; it reports
	// whether it sent a request, so the loop looks at the clock again.
	act(now time.Time) bool
	// wakeAt passes earliest every deadline of its own ahead of now.
	wakeAt(now time.Time, earliest func(time.Time))
	// onSessionChange takes in a new session state, after the term was
	// checked against it; it reports whether it stepped down.
	onSessionChange() bool
	onWatch(a answer[T])
	// forget drops what was seen, after a gap (a failed read).
	forget()
	stepDown(reason Reason)
	// quit lets go of what is still held when Run returns (quick: Consul
	// is suspected unreachable).
	quit(quick bool)
	// transfer hands the key over to the candidate to ("": the best), for
	// TransferTo; the loop leads.
	transfer(to string) error
	// registry delivers the answers of a second watch (an Election's
	// leader watches the candidate registry); nil: none.
	registry() <-chan answer[[]consulhttp.KVPair]
	onRegistry(a answer[[]consulhttp.KVPair])
}

// loopTurnHook, when set by a test, is called on every turn of the loop.
var loopTurnHook func()

// init fills l for campaign k.
func (l *campaignLoop[T]) init(k *campaign, kind loopKind[T], ctx context.Context, sessErr <-chan error,
	read func(context.Context, consulhttp.QueryOptions) (T, consulhttp.QueryMeta, error)) {
	l.k, l.kind, l.session, l.ctx, l.sessErr = k, kind, k.sess, ctx, sessErr
	lockDelay := k.sess.cfg.LockDelay
	l.loopConfig = loopConfig{
		key:            k.cfg.Key,
		candidate:      k.cfg.Candidate,
		lockDelay:      lockDelay,
		margin:         k.cfg.Margin,
		missingWait:    lockDelay + k.cfg.Margin,
		watchWait:      k.cfg.WatchWait,
		releaseTimeout: k.cfg.ReleaseTimeout,
		holdOff:        k.cfg.ResignHoldOff,
		log:            k.log,
	}
	l.watch.read = read
	l.st = k.State()
}

func (l *campaignLoop[T]) run() error {
	l.sess, l.sessWake = l.session.snapshot()
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	defer l.watch.stop()
	for {
		if loopTurnHook != nil {
			loopTurnHook()
		}
		// Checked first: a request that fails because ctx is done must
		// not send the loop round again.
		if l.fatal != nil || l.ctx.Err() != nil {
			return l.shutdown(ReasonShutdown, l.fatal)
		}
		now := time.Now()
		// Every wake-up starts with the clock: a process that was paused
		// must not act as leader past its lease.
		if l.leading && !now.Before(l.leaseEnd) {
			l.kind.stepDown(ReasonLeaseExpired)
			continue
		}
		// What the last wake-up brought (session, watch answer) is shown
		// before acting on it: an acquire may block for a while.
		l.publish()
		if l.kind.act(now) {
			continue
		}
		if l.watch.due(now) {
			l.watch.start(l.ctx, l.watchWait, l.leading)
		}
		l.publish()
		wake.Reset(l.nextWake(now))
		select {
		case <-l.ctx.Done(): // the next turn shuts down
		case err := <-l.sessErr:
			// Our own session gave up (ACL denied, bad TTL): nothing to retry.
			l.sessGone = true
			return l.shutdown(ReasonSessionInvalidated, err)
		case <-l.sessWake:
			l.checkLease()
			l.onSession()
		case a := <-l.watch.ch:
			l.watch.received()
			l.checkLease()
			l.kind.onWatch(a)
		case req := <-l.k.resign:
			l.checkLease()
			l.onResign(req)
		case a := <-l.kind.registry():
			l.checkLease()
			l.kind.onRegistry(a)
		case <-wake.C:
		}
	}
}

func (l *campaignLoop[T]) sessionGone() bool { return l.sessGone }

// shutdown is the one way out of run: step down if leading (for reason),
// let go of the rest, publish the last State, and return err.
func (l *campaignLoop[T]) shutdown(reason Reason, err error) error {
	if l.leading {
		l.kind.stepDown(reason)
	}
	l.kind.quit(reason == ReasonSessionInvalidated)
	l.publish()
	return err
}

// nextWake is when the loop must look at the clock again. Only deadlines
// still ahead count: one that has passed was acted on this turn or is
// waiting for something else (a session, the hold-off), and waking for it
// again at once would spin.
func (l *campaignLoop[T]) nextWake(now time.Time) time.Duration {
	next := now.Add(time.Hour)
	earliest := func(t time.Time) {
		if t.After(now) && t.Before(next) {
			next = t
		}
	}
	if l.leading {
		earliest(l.leaseEnd)
	} else {
		earliest(l.holdOffUntil)
	}
	if l.watch.ch == nil {
		earliest(l.watch.at)
	}
	l.kind.wakeAt(now, earliest)
	return next.Sub(now)
}

func (l *campaignLoop[T]) onSession() {
	old := l.sess
	l.sess, l.sessWake = l.session.snapshot()
	l.st.Session, l.st.LastError, l.st.Reachable = l.sess.ID, l.sess.Err, l.sess.Err == nil
	if !l.sess.Proof.IsZero() {
		l.st.LastRenew = l.sess.Proof
	}
	if l.sess.Err != nil && l.sess.Attempt > old.Attempt {
		l.emit(Event{Kind: KindError, Err: l.sess.Err, Attempt: l.sess.Attempt})
	}
	if l.leading && l.sess.ID != l.term.Session {
		l.kind.stepDown(ReasonSessionInvalidated)
		return
	}
	if l.kind.onSessionChange() {
		return
	}
	if l.leading && l.sess.Proof.After(l.proof) {
		l.extendLease(l.sess.Proof)
	}
}

func (l *campaignLoop[T]) onResign(req resignRequest) {
	if !l.leading || req.token != 0 && req.token != l.term.Token {
		req.reply <- ErrNotLeader
		return
	}
	if req.transfer {
		err := l.kind.transfer(req.to)
		if !l.leading {
			l.holdOffUntil = time.Now().Add(l.holdOff)
		}
		req.reply <- err
		return
	}
	l.kind.stepDown(ReasonReleased)
	l.holdOffUntil = time.Now().Add(l.holdOff)
	req.reply <- nil
}

// takeAnswer applies what every answer of the watch means to the loop: an
// error is fatal if denied, else a gap (what was seen is forgotten) retried
// with backoff; an answer follows the index rules. It reports whether a is
// an answer to look at, and whether its index went backwards.
func (l *campaignLoop[T]) takeAnswer(a answer[T], what string) (ok, backwards bool) {
	if a.err != nil {
		if l.ctx.Err() != nil {
			return false, false
		}
		if consulhttp.IsPermissionDenied(a.err) {
			l.fatal = fmt.Errorf("elect: watch %s: %w", l.key, a.err)
			return false, false
		}
		l.watch.failed(time.Now())
		l.kind.forget()
		l.st.LastError, l.st.Reachable = a.err, false
		l.log.Warn("watch "+what+" failed", "attempt", l.watch.fails, "err", a.err)
		l.emit(Event{Kind: KindError, Err: a.err, Attempt: l.watch.fails})
		return false, false
	}
	backwards, _ = l.watch.answered(a.asked, a.meta.LastIndex, time.Since(a.sent), l.watchWait)
	l.st.Reachable = true
	return true, backwards
}

// failed handles a Consul error of a write (what: "acquire", "join"):
// fatal if denied, else counted in r and retried with backoff.
func (l *campaignLoop[T]) failed(what string, err error, r *retry) {
	if l.ctx.Err() != nil {
		return
	}
	if consulhttp.IsPermissionDenied(err) {
		l.fatal = fmt.Errorf("elect: %s %s: %w", what, l.key, err)
		return
	}
	r.failed(time.Now())
	l.st.LastError, l.st.Reachable = err, !consulhttp.IsRetryable(err)
	l.log.Warn(what+" failed", "attempt", r.fails, "err", err)
	l.emit(Event{Kind: KindError, Err: err, Attempt: r.fails})
}

// publish makes the loop's State the campaign's. The loop calls it at the
// start of a turn's actions and again before it waits, and before anything
// outside may look (an event, a callback), so what they see is never older
// than what they are told, nor than the last answer the loop acts on.
func (l *campaignLoop[T]) publish() {
	l.k.setState(l.st)
}

func (l *campaignLoop[T]) emit(ev Event) {
	ev.Key = l.key
	ev.At = time.Now()
	l.publish()
	l.k.events.push(ev)
}

// writeCtx bounds a write that must outlive ctx (a release at shutdown):
// ReleaseTimeout, 1s when Consul is already suspected unreachable.
func (l *campaignLoop[T]) writeCtx(quick bool) (context.Context, context.CancelFunc) {
	d := l.releaseTimeout
	if quick {
		d = min(d, time.Second)
	}
	return context.WithTimeout(context.WithoutCancel(l.ctx), d)
}
