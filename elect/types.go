package elect

import (
	"context"
	"log/slog"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// Consul is the part of Consul's HTTP API the election needs.
// *consulhttp.Client satisfies it.
type Consul interface {
	CreateSession(ctx context.Context, r consulhttp.SessionRequest) (string, error)
	RenewSession(ctx context.Context, id string) (*consulhttp.SessionEntry, error)
	DestroySession(ctx context.Context, id string) error
	GetKV(ctx context.Context, key string, q consulhttp.QueryOptions) (*consulhttp.KVPair, consulhttp.QueryMeta, error)
	Acquire(ctx context.Context, key, session string, value []byte) (bool, error)
	Release(ctx context.Context, key, session string, value []byte) (bool, error)
	RegisterCheck(ctx context.Context, chk consulhttp.AgentCheck) error
	DeregisterCheck(ctx context.Context, id string) error
	// UpdateTTL passes a TTL check. An error that wraps
	// consulhttp.ErrCheckNotFound means the agent no longer has the check
	// (it restarted from a clean state): the session bound to it is gone.
	// Other errors are retried.
	UpdateTTL(ctx context.Context, checkID, status, output string) error
	// ListKV and TxnKV: the candidate registry, acquires and handovers
	// (one transaction each), and Slots.
	ListKV(ctx context.Context, prefix string, q consulhttp.QueryOptions) ([]consulhttp.KVPair, consulhttp.QueryMeta, error)
	TxnKV(ctx context.Context, ops []consulhttp.TxnKVOp) ([]consulhttp.KVPair, bool, error)
}

// Candidate is who we are; it is the JSON value written into the key.
type Candidate struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`    // service name
	Address   string    `json:"address,omitempty"` // host:port others can reach
	AllocID   string    `json:"alloc_id,omitempty"`
	Node      string    `json:"node,omitempty"`
	StartedAt time.Time `json:"started_at"`
}

// Reason says why leadership ended.
type Reason string

const (
	ReasonReleased           Reason = "released"            // Resign
	ReasonLeaseExpired       Reason = "lease_expired"       // no proof within the lease window
	ReasonSessionInvalidated Reason = "session_invalidated" // renew 404
	ReasonKeyLost            Reason = "key_lost"            // key deleted or held by another session
	ReasonShutdown           Reason = "shutdown"            // ctx canceled
	ReasonTransferred        Reason = "transferred"         // TransferTo or a transfer request (RequestTransfer)
	ReasonPreempted          Reason = "preempted"           // a candidate of higher priority was live for PriorityHold
)

// Kind of an Event.
type Kind string

const (
	KindElected       Kind = "elected"
	KindLeaderChanged Kind = "leader_changed" // we follow; Leader says who leads (nil: nobody)
	KindSteppedDown   Kind = "stepped_down"
	KindError         Kind = "error" // a retried Consul error; Attempt counts
)

// Leader describes the current holder of the key.
type Leader struct {
	Candidate
	Session string    `json:"session"`
	Token   uint64    `json:"token"` // the key's ModifyIndex: the holder's fencing token unless the key was written since
	Since   time.Time `json:"since"` // when the holder sent its acquire (its clock)
}

// Term is one period of leadership of this candidate.
type Term struct {
	Key     string
	Session string
	Token   uint64    // fencing token: strictly increasing across all candidates
	Since   time.Time // local time of the acquire request
	First   bool      // first term of this Election
	// LeaseEnd is the end of the local lease when the term starts; OnLease
	// reports every later end.
	LeaseEnd time.Time
}

// Event is something that happened, in order.
type Event struct {
	Kind    Kind
	Key     string
	Leader  *Leader // who leads now as far as we know (nil: nobody / unknown)
	Token   uint64  // our token (elected, stepped_down)
	First   bool    // elected: first time this Election leads
	Reason  Reason  // stepped_down
	Err     error   // error
	Attempt int     // error: consecutive failures
	At      time.Time
}

// State is a snapshot.
type State struct {
	Key       string
	Leading   bool
	Token     uint64
	Session   string
	Leader    *Leader
	LeaseEnd  time.Time // zero unless leading
	LastRenew time.Time // last successful proof
	LastError error     // last Consul error (nil once a request succeeds)
	Reachable bool      // last request to Consul succeeded
}

// Config of an Election. Zero durations take defaults; see Validate.
type Config struct {
	Key       string // required; no leading "/"
	Candidate Candidate

	// TTL is the session TTL, default 10s, [10s (or the agent's
	// session_ttl_min), 24h]. It decides how fast a crashed leader is
	// replaced (Consul expires the session TTL..2×TTL after the last
	// renew), not how long a leader may act.
	TTL time.Duration
	// LockDelay is the lease: default 10s, (0, 60s]. After any
	// invalidation of our session Consul keeps the key from others this
	// long, so a leader acts until its last proof + LockDelay − Margin.
	LockDelay time.Duration
	// RenewInterval is how often a leader renews its session, default
	// min(TTL/3, (LockDelay−Margin)/3). LockDelay − Margin must be at
	// least two renew intervals. A session that holds no key is renewed
	// lazily, every max(RenewInterval, TTL/2).
	RenewInterval time.Duration
	Behavior      string // "release" (default) or "delete"
	// CheckTTL > 0 enables fast crash detection: the session is bound to a
	// TTL check registered in the local agent and passed every CheckTTL/3.
	CheckTTL time.Duration
	// Margin is subtracted from the safety window; the leader stops acting
	// this long before Consul could let anyone else in. Default 1s.
	Margin         time.Duration
	WatchWait      time.Duration // blocking query wait, default 5m
	ReleaseTimeout time.Duration // bound on release+destroy at step-down, default 5s
	// ResignHoldOff is how long Resign keeps this candidate from taking the
	// key back, unless another leader shows up first. Default 3s.
	ResignHoldOff time.Duration
	// Priority ranks this candidate (default 0, higher is better): a
	// leader hands over to the best live candidate (highest priority, then
	// longest waiting), candidates take a free key in that order, and a
	// leader hands over to a candidate of higher priority once it has been
	// live for PriorityHold.
	Priority int
	// PriorityHold is how long a candidate of higher priority must have
	// been live, as the leader saw it, before the leader hands over to it
	// (no flapping while candidates come and go). Default 10s.
	PriorityHold time.Duration
	// RankStep is how much later than the candidate ranked before it a
	// candidate tries to take a key that became free, unless it saw the key
	// taken first. Default 50ms.
	RankStep time.Duration
	// CheckID names the fast-crash-detection check (default derived from
	// the candidate id).
	CheckID string
	// SessionName is the name of the session Consul shows (in its UI and
	// /v1/session/info); default "leaderd: <Key>". Unused with Session.
	SessionName string
	// Session, when set, is a shared session (see NewSession) that backs
	// this election; TTL, LockDelay, RenewInterval, Behavior and CheckTTL
	// must then be zero here and are taken from the session.
	Session *Session

	// OnElected is called on Run's goroutine right after leadership is won.
	// It must not block. OnStepDown is called on Run's goroutine when it
	// ends, before the key is released or the session destroyed; it must
	// return once the leader's work has stopped.
	OnElected  func(Term)
	OnStepDown func(Term, Reason)
	// OnLease is called on Run's goroutine whenever the current term's
	// lease end moves (a renew or an acquire proved the session valid
	// again). It must not block: a supervisor outside the loop (leaderd's
	// keeper) enforces the lease with it.
	OnLease func(Term, time.Time)

	Logger *slog.Logger
}
