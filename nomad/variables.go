package nomad

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strconv"
	"time"

	"github.com/hashicorp/nomad/api"
)

// Items of the leader record at nomad/jobs/<job>/<group>. A cleared record
// (nobody leads) has an empty leader_id and keeps the last token, so the
// fence survives the clear.
const (
	ItemLeaderID      = "leader_id"
	ItemLeaderAddress = "leader_address"
	ItemToken         = "token"
	ItemSince         = "since" // RFC 3339, UTC
)

// VariablesConfig configures a VariablesPublisher.
type VariablesConfig struct {
	// Client talks to Nomad (required); see NewClientFromEnv.
	Client *api.Client
	// Identity names the candidate (ID) and, inside Nomad, the job and
	// group that the default Path and the 403 advice use.
	Identity Identity
	// Path of the record, default Identity.VariablePath(). It must be a
	// path Nomad accepts (ValidateVariablePath): a job or group whose name
	// has a character outside [a-zA-Z0-9-_~], or a default path over 128
	// characters, is an error at construction, not a 400 on every write.
	Path string
	// Namespace of the record, default Identity.Namespace (then the
	// client's namespace, then "default").
	Namespace string
	// ConflictRetries is how many CAS conflicts in a row are re-read and
	// retried at once before backing off (default 5): a conflict means
	// someone wrote between our read and our write, which is normal during
	// a handover.
	ConflictRetries int
	// CleanupTimeout bounds clearing the record on exit, default 5s.
	CleanupTimeout time.Duration
	Backoff        Backoff
	Logger         *slog.Logger // default: discard
}

// VariablesPublisher keeps the leader record in a Nomad Variable: the leader
// writes {leader_id, leader_address, token, since} with check-and-set;
// followers never write, except to clear a record that still names them
// (their own previous term); on exit the record is cleared if it is still
// ours. A record holding a higher fencing token than ours is never
// overwritten, so a deposed leader that lags can't hide the new one.
//
// Clearing writes an empty leader_id instead of deleting the variable: it
// needs only the "write" capability (a delete needs "destroy"), it keeps the
// fencing token, and the jobspec template then renders "follower" for every
// allocation without blocking on a missing variable.
type VariablesPublisher struct {
	cfg VariablesConfig
	box *latest
	log *slog.Logger
}

var _ Publisher = (*VariablesPublisher)(nil)

// NewVariablesPublisher validates cfg (every problem at once) and fills
// defaults on a copy.
func NewVariablesPublisher(cfg VariablesConfig) (*VariablesPublisher, error) {
	fromIdentity := cfg.Path == "" && cfg.Identity.InNomad
	if cfg.Path == "" {
		cfg.Path = cfg.Identity.VariablePath()
	}
	if cfg.Namespace == "" {
		cfg.Namespace = cfg.Identity.Namespace
	}
	if cfg.ConflictRetries == 0 {
		cfg.ConflictRetries = 5
	}
	if cfg.CleanupTimeout == 0 {
		cfg.CleanupTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var errs []error
	if cfg.Client == nil {
		errs = append(errs, errors.New("Client is required"))
	}
	switch {
	case fromIdentity:
		if err := identityPathError(cfg.Identity); err != nil {
			errs = append(errs, err)
		}
	case cfg.Path == "":
		errs = append(errs, errors.New("Path is required outside Nomad (inside, it defaults to nomad/jobs/<job>/<group>)"))
	default:
		if err := ValidateVariablePath(cfg.Path); err != nil {
			errs = append(errs, fmt.Errorf("Path: %w", err))
		}
	}
	if cfg.Identity.ID == "" {
		errs = append(errs, errors.New("Identity.ID is required"))
	}
	if cfg.ConflictRetries < 0 {
		errs = append(errs, fmt.Errorf("ConflictRetries %d is negative", cfg.ConflictRetries))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("nomad: variables publisher: %w", errors.Join(errs...))
	}
	return &VariablesPublisher{
		cfg: cfg,
		box: newLatest(),
		log: cfg.Logger.With("path", cfg.Path, "namespace", cfg.Namespace),
	}, nil
}

// Publish records s as the status to show; it never blocks.
func (p *VariablesPublisher) Publish(s Status) { p.box.put(s) }

// Run writes the record while the latest Status leads, clears a record that
// names us otherwise, and on ctx cancel clears it if it is still ours.
func (p *VariablesPublisher) Run(ctx context.Context) error {
	denied := false // log the 403 advice at Error once per streak
	onErr := func(err error, attempt int, wait time.Duration) {
		var pe *PermissionError
		if errors.As(err, &pe) {
			if !denied {
				p.log.Error("nomad variable access denied; retrying", "err", err, "wait", wait)
			}
			denied = true
			return
		}
		p.log.Warn("nomad variable update failed; retrying", "err", err, "attempt", attempt, "wait", wait)
	}
	reconcile := func(ctx context.Context, s Status) error {
		err := p.Reconcile(ctx, s)
		if err == nil {
			denied = false
		}
		return err
	}
	reconcileLoop(ctx, p.box, p.cfg.Backoff, reconcile, onErr)

	cctx, cancel := cleanupContext(ctx, p.cfg.CleanupTimeout)
	defer cancel()
	s, _ := p.box.get()
	if err := p.clear(cctx, p.selfID(s)); err != nil {
		p.log.Warn("could not clear the leader record on exit; the next leader overwrites it", "err", err)
	}
	return nil
}

// Reconcile makes the record match s once (no retry beyond CAS conflicts).
// Run calls it; it is exported for callers that want one synchronous pass.
func (p *VariablesPublisher) Reconcile(ctx context.Context, s Status) error {
	if s.Leading() {
		return p.write(ctx, s)
	}
	return p.clear(ctx, p.selfID(s))
}

func (p *VariablesPublisher) selfID(s Status) string {
	if s.ID != "" {
		return s.ID
	}
	return p.cfg.Identity.ID
}

// LeaderItems is the record a leader with status s writes.
func LeaderItems(s Status) api.VariableItems {
	since := ""
	if !s.Since.IsZero() {
		since = s.Since.UTC().Format(time.RFC3339Nano)
	}
	return api.VariableItems{
		ItemLeaderID:      s.ID,
		ItemLeaderAddress: s.Address,
		ItemToken:         strconv.FormatUint(s.Token, 10),
		ItemSince:         since,
	}
}

func (p *VariablesPublisher) write(ctx context.Context, s Status) error {
	s.ID = p.selfID(s)
	want := LeaderItems(s)
	return p.cas(ctx, func(cur *api.Variable) (api.VariableItems, bool) {
		if cur != nil {
			if maps.Equal(cur.Items, want) {
				return nil, false
			}
			if t := recordToken(cur); s.Token > 0 && t >= s.Token && cur.Items[ItemLeaderID] != s.ID {
				p.log.Warn("leader record holds a newer term; not overwriting",
					"token", s.Token, "record_token", t, "leader", cur.Items[ItemLeaderID])
				return nil, false
			}
		}
		return want, true
	}, "wrote leader record", "token", s.Token)
}

// clear empties the record if it still names id.
func (p *VariablesPublisher) clear(ctx context.Context, id string) error {
	return p.cas(ctx, func(cur *api.Variable) (api.VariableItems, bool) {
		if cur == nil || cur.Items[ItemLeaderID] != id {
			return nil, false
		}
		return api.VariableItems{
			ItemLeaderID:      "",
			ItemLeaderAddress: "",
			ItemToken:         cur.Items[ItemToken],
			ItemSince:         "",
		}, true
	}, "cleared leader record", "leader", id)
}

// cas reads the record, asks decide for the items to write (false: leave
// it), and writes with check-and-set on the ModifyIndex it read. A conflict
// means someone wrote in between: read again and decide again.
func (p *VariablesPublisher) cas(ctx context.Context, decide func(*api.Variable) (api.VariableItems, bool), msg string, logArgs ...any) error {
	vars := p.cfg.Client.Variables()
	for attempt := 0; ; attempt++ {
		cur, _, err := vars.Peek(p.cfg.Path, (&api.QueryOptions{Namespace: p.cfg.Namespace}).WithContext(ctx))
		if err != nil {
			return fmt.Errorf("read %s: %w", p.cfg.Path, p.permissionError("read", err))
		}
		items, ok := decide(cur)
		if !ok {
			return nil
		}
		v := &api.Variable{Namespace: p.cfg.Namespace, Path: p.cfg.Path, Items: items}
		if cur != nil {
			v.ModifyIndex = cur.ModifyIndex
		}
		out, _, err := vars.CheckedUpdate(v, (&api.WriteOptions{Namespace: p.cfg.Namespace}).WithContext(ctx))
		switch {
		case err == nil:
			p.log.Info(msg, append(logArgs, "index", out.ModifyIndex)...)
			return nil
		case isCASConflict(err) && attempt < p.cfg.ConflictRetries:
			p.log.Debug("leader record changed under us; re-reading", "cas", v.ModifyIndex)
			continue
		default:
			return fmt.Errorf("write %s (cas=%d): %w", p.cfg.Path, v.ModifyIndex, p.permissionError("write", err))
		}
	}
}

func recordToken(v *api.Variable) uint64 {
	t, _ := strconv.ParseUint(v.Items[ItemToken], 10, 64)
	return t
}
