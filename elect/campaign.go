package elect

import (
	"context"
	"errors"
	"log/slog"
	"sync"
)

// campaign is what an Election and Slots share: their configuration and
// session, the ordered event stream, the resign requests their loop
// answers, and the State snapshot the loop publishes.
type campaign struct {
	cfg        Config
	log        *slog.Logger
	sess       *Session
	ownSession bool // sess was made for this campaign: Run runs and ends it
	events     *eventQueue
	resign     chan resignRequest

	mu    sync.Mutex // guards state (and Slots' holders)
	state State
}

// init fills k for cfg, whose defaults are filled and which is valid.
func (k *campaign) init(c Consul, cfg Config) {
	k.cfg = cfg
	k.log = cfg.Logger.With("key", cfg.Key)
	k.events = newEventQueue()
	k.resign = make(chan resignRequest)
	k.state = State{Key: cfg.Key}
	if cfg.Session != nil {
		k.sess = cfg.Session
		return
	}
	sc := cfg.sessionConfig().withDefaults()
	sc.DestroyTimeout = cfg.ReleaseTimeout
	k.sess, k.ownSession = newSession(c, sc), true
}

// Events returns the ordered event stream. It never blocks Run; read it
// until it is closed (after Run returns). Call it before Run to see every
// event: events are only kept once somebody asked for them.
func (k *campaign) Events() <-chan Event { return k.events.channel() }

// State returns a snapshot.
func (k *campaign) State() State {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.state
	if s.Leader != nil {
		l := *s.Leader
		s.Leader = &l
	}
	return s
}

// setState replaces the snapshot; only the running loop calls it.
func (k *campaign) setState(s State) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.state = s
}

// resignRequest asks the loop to step down; token 0 means any term. With
// transfer it hands the key over to the candidate to ("": the best one).
type resignRequest struct {
	token    uint64
	transfer bool
	to       string
	reply    chan error
}

// askResign sends a resign request to the running loop and waits for its
// answer, or for ctx.
func (k *campaign) askResign(ctx context.Context, token uint64) error {
	return k.ask(ctx, resignRequest{token: token, reply: make(chan error, 1)})
}

// askTransfer asks the running loop to hand over to the candidate to.
func (k *campaign) askTransfer(ctx context.Context, to string) error {
	return k.ask(ctx, resignRequest{transfer: true, to: to, reply: make(chan error, 1)})
}

func (k *campaign) ask(ctx context.Context, req resignRequest) error {
	select {
	case k.resign <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runner is a campaign's loop (a campaignLoop): run returns when the
// campaign ends; sessionGone reports whether it took the session's result
// from its sessErr.
type runner interface {
	run() error
	sessionGone() bool
}

// run runs a campaign loop beside its own session's Run (when it has
// one), which it outlives: the session is canceled only once the loop has
// returned (every key released), then waited for. The event stream is
// closed when run returns.
func (k *campaign) run(ctx context.Context, newLoop func(sessErr <-chan error) runner) error {
	defer k.events.close()
	sessErr := make(chan error, 1)
	var stopSession context.CancelFunc = func() {}
	if k.ownSession {
		var sctx context.Context
		sctx, stopSession = context.WithCancel(context.WithoutCancel(ctx))
		go func() { sessErr <- k.sess.Run(sctx) }()
	}
	l := newLoop(sessErr)
	err := l.run()
	stopSession()
	if k.ownSession && !l.sessionGone() {
		if serr := <-sessErr; err == nil && serr != nil && !errors.Is(serr, context.Canceled) {
			err = serr
		}
	}
	return err
}
