package nomad

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// ConsulAgent is the part of the Consul agent API the tags publisher needs.
// *consulhttp.Client satisfies it.
type ConsulAgent interface {
	RegisterService(ctx context.Context, r consulhttp.ServiceRegistration) error
	DeregisterService(ctx context.Context, id string) error
}

var _ ConsulAgent = (*consulhttp.Client)(nil)

// Tags this publisher puts on the service: exactly one of them, so
// ?tag=leader and leader.<service>.service.consul give the leader alone.
const (
	TagLeader   = "leader"
	TagFollower = "follower"
)

// Meta keys of the registration.
const (
	MetaID       = "leaderd_id"
	MetaRole     = "leaderd_role"
	MetaToken    = "leaderd_token"
	MetaLeader   = "leaderd_leader_id"
	MetaSession  = "leaderd_session"
	MetaAllocID  = "nomad_alloc_id"
	MetaJob      = "nomad_job"
	MetaGroup    = "nomad_group"
	MetaAllocIdx = "nomad_alloc_index"
)

// ConsulTagsConfig configures a ConsulTagsPublisher.
type ConsulTagsConfig struct {
	Agent ConsulAgent // required
	// Service is the Consul service name (required).
	Service string
	// ServiceID defaults to "<Service>-<Identity.ID>": stable across
	// restarts, so a restarted instance replaces its own registration.
	ServiceID string
	// Address and Port are what the catalog advertises; Address may be
	// empty (Consul then uses the node's address).
	Address string
	Port    int
	// Tags are the user's tags, added after the role tag.
	Tags     []string
	Identity Identity // fills Meta (alloc id, job, group)

	// HealthURL is leaderd's own health endpoint, e.g.
	// "http://10.0.0.5:8080/v1/health" (required). Consul probes it, so a
	// dead leaderd turns critical and its registration goes away.
	HealthURL string
	// CheckID defaults to "service:<ServiceID>", Consul's own convention.
	CheckID string
	// CheckInterval is the HTTP check interval, default 5s; CheckTimeout
	// defaults to min(2s, CheckInterval).
	CheckInterval time.Duration
	CheckTimeout  time.Duration
	// DeregisterCriticalAfter removes the service after it has been
	// critical this long (a crashed instance that never deregistered),
	// default 1m; Consul reaps on a 30s cycle, so it acts within +30s.
	DeregisterCriticalAfter time.Duration

	// CleanupTimeout bounds deregistration on exit, default 5s.
	CleanupTimeout time.Duration
	Backoff        Backoff
	Logger         *slog.Logger // default: discard
}

func (c ConsulTagsConfig) withDefaults() ConsulTagsConfig {
	if c.ServiceID == "" && c.Service != "" && c.Identity.ID != "" {
		c.ServiceID = c.Service + "-" + c.Identity.ID
	}
	if c.CheckID == "" && c.ServiceID != "" {
		c.CheckID = "service:" + c.ServiceID
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = 5 * time.Second
	}
	if c.CheckTimeout == 0 {
		c.CheckTimeout = min(2*time.Second, c.CheckInterval)
	}
	if c.DeregisterCriticalAfter == 0 {
		c.DeregisterCriticalAfter = time.Minute
	}
	if c.CleanupTimeout == 0 {
		c.CleanupTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

func (c ConsulTagsConfig) validate() error {
	var errs []error
	if c.Agent == nil {
		errs = append(errs, errors.New("Agent is required"))
	}
	if c.Service == "" {
		errs = append(errs, errors.New("Service is required"))
	}
	if c.ServiceID == "" {
		errs = append(errs, errors.New("ServiceID is required (or Identity.ID to derive it)"))
	}
	if c.HealthURL == "" {
		errs = append(errs, errors.New("HealthURL is required (leaderd's /v1/health URL as Consul can reach it)"))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("Port %d is out of range", c.Port))
	}
	if c.CheckInterval < time.Second {
		errs = append(errs, fmt.Errorf("CheckInterval %s is below Consul's 1s minimum", c.CheckInterval))
	}
	if c.CheckTimeout < 0 || c.CheckTimeout > c.CheckInterval {
		errs = append(errs, fmt.Errorf("CheckTimeout %s must be within (0, CheckInterval %s]", c.CheckTimeout, c.CheckInterval))
	}
	if c.DeregisterCriticalAfter < time.Minute {
		errs = append(errs, fmt.Errorf("DeregisterCriticalAfter %s is below Consul's 1m minimum", c.DeregisterCriticalAfter))
	}
	for _, t := range c.Tags {
		if t == TagLeader || t == TagFollower {
			errs = append(errs, fmt.Errorf("Tags must not contain %q: the publisher owns the role tag", t))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("nomad: consul tags publisher: %w", errors.Join(errs...))
	}
	return nil
}

// ConsulTagsPublisher registers this instance in the local Consul agent with
// a leader/follower tag and re-registers on every change of Status. Safe to
// Publish from any goroutine; Run must be called once.
type ConsulTagsPublisher struct {
	cfg ConsulTagsConfig
	box *latest
}

var _ Publisher = (*ConsulTagsPublisher)(nil)

// NewConsulTagsPublisher validates cfg (every problem at once) and fills
// defaults on a copy.
func NewConsulTagsPublisher(cfg ConsulTagsConfig) (*ConsulTagsPublisher, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Tags = slices.Clone(cfg.Tags)
	return &ConsulTagsPublisher{cfg: cfg, box: newLatest()}, nil
}

// Publish records s as the status to show; it never blocks.
func (p *ConsulTagsPublisher) Publish(s Status) { p.box.put(s) }

// Registration is the body sent for status s (exported for tests and for
// operators who want to see exactly what gets registered).
func (p *ConsulTagsPublisher) Registration(s Status) consulhttp.ServiceRegistration {
	c := p.cfg
	role := TagFollower
	if s.Leading() {
		role = TagLeader
	}
	meta := map[string]string{
		MetaID:   c.Identity.ID,
		MetaRole: string(s.Role),
	}
	if s.ID != "" {
		meta[MetaID] = s.ID
	}
	if s.Token != 0 {
		meta[MetaToken] = strconv.FormatUint(s.Token, 10)
	}
	if s.LeaderID != "" {
		meta[MetaLeader] = s.LeaderID
	}
	if s.Session != "" {
		meta[MetaSession] = s.Session
	}
	if id := c.Identity; id.InNomad {
		meta[MetaAllocID] = id.AllocID
		meta[MetaJob] = id.JobID
		meta[MetaGroup] = id.Group
		if id.AllocIndex != "" {
			meta[MetaAllocIdx] = id.AllocIndex
		}
	}
	return consulhttp.ServiceRegistration{
		ID:      c.ServiceID,
		Name:    c.Service,
		Tags:    append([]string{role}, c.Tags...),
		Address: c.Address,
		Port:    c.Port,
		Meta:    meta,
		Checks: []consulhttp.AgentCheck{{
			CheckID:  c.CheckID,
			Name:     "leaderd health",
			HTTP:     c.HealthURL,
			Method:   "GET",
			Interval: c.CheckInterval.String(),
			Timeout:  c.CheckTimeout.String(),
			// We register from the live process that serves HealthURL,
			// so start passing: a leader flip must not blank
			// leader.<service>.service.consul until the first probe.
			Status:                         consulhttp.StatusPassing,
			DeregisterCriticalServiceAfter: c.DeregisterCriticalAfter.String(),
		}},
	}
}

// Run registers on the first Status, re-registers whenever the registration
// would change, and deregisters when ctx ends (bounded by CleanupTimeout).
func (p *ConsulTagsPublisher) Run(ctx context.Context) error {
	log := p.cfg.Logger.With("service", p.cfg.Service, "service_id", p.cfg.ServiceID)
	var applied *consulhttp.ServiceRegistration
	// A 403 ends the run: no retry grants the token service:write, and
	// the operator must hear about it (leaderd run exits 1 with it).
	rctx, deny := context.WithCancelCause(ctx)
	defer deny(nil)
	reconcile := func(ctx context.Context, s Status) error {
		want := p.Registration(s)
		if applied != nil && registrationEqual(*applied, want) {
			return nil
		}
		if err := p.cfg.Agent.RegisterService(ctx, want); err != nil {
			err = fmt.Errorf("register service %q: %w", want.ID, err)
			if consulhttp.IsPermissionDenied(err) {
				deny(err)
			}
			return err
		}
		applied = &want
		log.Info("registered service", "tag", want.Tags[0], "role", string(s.Role), "token", s.Token)
		return nil
	}
	onErr := func(err error, attempt int, wait time.Duration) {
		log.Warn("consul registration failed; retrying", "err", err, "attempt", attempt, "wait", wait)
	}
	reconcileLoop(rctx, p.box, p.cfg.Backoff, reconcile, onErr)
	if ctx.Err() == nil && rctx.Err() != nil {
		return context.Cause(rctx)
	}

	// Deregister even if this run never registered: the ID is ours, a
	// previous run may have left it, and Consul treats it idempotently.
	cctx, cancel := cleanupContext(ctx, p.cfg.CleanupTimeout)
	defer cancel()
	if err := p.cfg.Agent.DeregisterService(cctx, p.cfg.ServiceID); err != nil {
		// Consul removes it after DeregisterCriticalAfter once the
		// health URL stops answering, so this is not fatal.
		log.Warn("deregister failed; Consul will reap the service once its check is critical",
			"err", err, "reap_after", p.cfg.DeregisterCriticalAfter)
		return nil
	}
	log.Info("deregistered service")
	return nil
}

func registrationEqual(a, b consulhttp.ServiceRegistration) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Address == b.Address && a.Port == b.Port &&
		slices.Equal(a.Tags, b.Tags) && maps.Equal(a.Meta, b.Meta) && slices.Equal(a.Checks, b.Checks)
}
