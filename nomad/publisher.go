package nomad

import (
	"context"
	"sync"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// Role of this candidate as publishers show it.
type Role string

const (
	RoleLeader    Role = "leader"
	RoleFollower  Role = "follower"  // someone else leads (or nobody, seen from a follower)
	RoleCandidate Role = "candidate" // starting, or between terms: not leading
)

// Status is what publishers publish: this candidate's latest role. It is
// independent of package elect; main maps election events onto it.
type Status struct {
	Role    Role
	ID      string // this candidate's id
	Address string // this candidate's advertised host:port
	// Token is the fencing token of our term when Role is leader, else the
	// token of the leader we follow (0: unknown).
	Token    uint64
	Since    time.Time // when this role began
	LeaderID string    // who leads as far as we know ("": nobody or unknown)
	Session  string    // our Consul session id, for operators reading Meta
}

// Leading reports whether the status says we lead.
func (s Status) Leading() bool { return s.Role == RoleLeader }

// Publisher shows leader status somewhere. Publish never blocks: it records
// the latest Status and Run reconciles toward it, retrying with backoff and
// jitter on errors. When ctx is canceled Run does its cleanup (deregister,
// clear the record) bounded by its cleanup timeout, then returns nil; it
// returns an error only for a configuration it cannot work with.
type Publisher interface {
	Publish(Status)
	Run(ctx context.Context) error
}

// latest is a one-slot mailbox: Put overwrites, never blocks, and wakes the
// single reader. Intermediate statuses are dropped on purpose; publishers
// converge on the newest one.
type latest struct {
	mu     sync.Mutex
	status Status
	set    bool
	wake   chan struct{}
}

func newLatest() *latest { return &latest{wake: make(chan struct{}, 1)} }

func (l *latest) put(s Status) {
	l.mu.Lock()
	l.status, l.set = s, true
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *latest) get() (Status, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status, l.set
}

// Backoff bounds retries of a failing reconcile (default 250ms doubling to
// 30s, jittered): the one backoff of leaderd's Consul and Nomad clients.
type Backoff = consulhttp.Backoff

// reconcileLoop is the Run loop shared by the publishers: wait for a new
// status or a retry timer, call reconcile with the newest status, back off
// on error. It returns when ctx is done; the caller cleans up.
func reconcileLoop(ctx context.Context, box *latest, b Backoff, reconcile func(context.Context, Status) error, onErr func(err error, attempt int, wait time.Duration)) {
	var (
		attempt int
		retry   *time.Timer
		retryC  <-chan time.Time
	)
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-box.wake:
		case <-retryC:
		}
		st, ok := box.get()
		if !ok {
			continue
		}
		if retry != nil {
			retry.Stop()
			retry, retryC = nil, nil
		}
		err := reconcile(ctx, st)
		if err == nil {
			attempt = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		attempt++
		wait := b.Delay(attempt)
		onErr(err, attempt, wait)
		retry = time.NewTimer(wait)
		retryC = retry.C
	}
}

// cleanupContext bounds graceful cleanup: it outlives the canceled run
// context (values kept) but not the timeout, because a cleanup that can't
// reach its server in time is moot — Consul deregisters a critical service
// by itself, and a stale Nomad record carries an older fencing token.
func cleanupContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), timeout)
}
