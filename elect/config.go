package elect

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Defaults and limits. Each duration's relation to the others is checked by
// Config.validate; see the safety rule in the package doc.
const (
	DefaultTTL = 10 * time.Second
	// DefaultLockDelay is the lease a leader gets from each proof that its
	// session is valid: the time Consul keeps the key from anyone else
	// after an invalidation it may not hear of.
	DefaultLockDelay      = 10 * time.Second
	DefaultMargin         = time.Second
	DefaultWatchWait      = 5 * time.Minute
	DefaultReleaseTimeout = 5 * time.Second
	DefaultResignHoldOff  = 3 * time.Second
	DefaultKeyTemplate    = "services/%s/leader"
	DefaultPriorityHold   = 10 * time.Second
	DefaultRankStep       = 50 * time.Millisecond

	// MaxLockDelay is where Consul caps lock-delay enforcement.
	MaxLockDelay = 60 * time.Second
	// MinTTL and MaxTTL bound the session TTL. Consul's own minimum is 10s
	// unless the agent sets session_ttl_min; Consul rejects what it won't
	// take with a clear error, so we only refuse what no agent accepts.
	// The lease does not depend on the TTL (see the package doc).
	MinTTL = time.Second
	MaxTTL = 24 * time.Hour
	// MinCheckTTL is the shortest fast-crash-detection check TTL: below it
	// the agent can't keep the check passing reliably.
	MinCheckTTL = 100 * time.Millisecond
	// MinRenewInterval is the shortest renew interval: every renew is a
	// round trip to the Consul servers, and a lease that needs them more
	// often than this is a load on Consul, not a lease.
	MinRenewInterval = 100 * time.Millisecond
)

// KeyFor fills the default key template with a service name.
func KeyFor(service string) string { return fmt.Sprintf(DefaultKeyTemplate, service) }

// Field names used in FieldError, one per timing setting.
const (
	FieldKey            = "Key"
	FieldCandidateID    = "Candidate.ID"
	FieldTTL            = "TTL"
	FieldLockDelay      = "LockDelay"
	FieldRenewInterval  = "RenewInterval"
	FieldBehavior       = "Behavior"
	FieldCheckTTL       = "CheckTTL"
	FieldMargin         = "Margin"
	FieldWatchWait      = "WatchWait"
	FieldReleaseTimeout = "ReleaseTimeout"
	FieldSession        = "Session"
	FieldPriority       = "Priority"
	FieldPriorityHold   = "PriorityHold"
	FieldRankStep       = "RankStep"
)

// FieldError is one problem with a Config or SessionConfig. Field is one
// of the Field* names; a rule between settings names every field it
// involves, the first being the one the message is about. Callers with
// their own names for the settings (leaderd's flags) map Fields to them.
type FieldError struct {
	Fields []string
	Msg    string // lowercase, without the field names' Go spelling
}

func (e *FieldError) Error() string { return e.Msg }

func fieldErr(fields []string, format string, a ...any) *FieldError {
	return &FieldError{Fields: fields, Msg: fmt.Sprintf(format, a...)}
}

// renewDefault is the leader's renew interval when none is set: three
// chances to renew within the lease, and at least three renews per TTL.
func renewDefault(ttl, lockDelay, margin time.Duration) time.Duration {
	r := ttl / 3
	if lease := lockDelay - margin; lease > 0 && lease/3 < r {
		r = lease / 3
	}
	return r
}

// withDefaults returns a copy of c with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	if c.Margin == 0 {
		c.Margin = DefaultMargin
	}
	if c.Session == nil {
		if c.TTL == 0 {
			c.TTL = DefaultTTL
		}
		if c.LockDelay == 0 {
			c.LockDelay = DefaultLockDelay
		}
		if c.RenewInterval == 0 {
			c.RenewInterval = renewDefault(c.TTL, c.LockDelay, c.Margin)
		}
		if c.Behavior == "" {
			c.Behavior = "release"
		}
	}
	if c.WatchWait == 0 {
		c.WatchWait = DefaultWatchWait
	}
	if c.ReleaseTimeout == 0 {
		c.ReleaseTimeout = DefaultReleaseTimeout
	}
	if c.ResignHoldOff == 0 {
		c.ResignHoldOff = DefaultResignHoldOff
	}
	if c.PriorityHold == 0 {
		c.PriorityHold = DefaultPriorityHold
	}
	if c.RankStep == 0 {
		c.RankStep = DefaultRankStep
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.OnElected == nil {
		c.OnElected = func(Term) {}
	}
	if c.OnStepDown == nil {
		c.OnStepDown = func(Term, Reason) {}
	}
	if c.OnLease == nil {
		c.OnLease = func(Term, time.Time) {}
	}
	return c
}

// Validate reports every problem of c at once, as *FieldError values
// joined with errors.Join, after filling the same defaults New fills.
func (c Config) Validate() error { return c.withDefaults().validate() }

// validate reports every problem at once. c has its defaults filled.
func (c Config) validate() error {
	var errs []error
	bad := func(fields []string, format string, a ...any) { errs = append(errs, fieldErr(fields, format, a...)) }
	switch {
	case c.Key == "":
		bad([]string{FieldKey}, "key is required")
	case strings.HasPrefix(c.Key, "/"):
		bad([]string{FieldKey}, "key %q must not start with '/'", c.Key)
	}
	if c.Candidate.ID == "" {
		bad([]string{FieldCandidateID}, "candidate id is required")
	}
	if c.Margin < 0 {
		bad([]string{FieldMargin}, "margin %v must not be negative", c.Margin)
	}
	if c.WatchWait < time.Second || c.WatchWait > 10*time.Minute {
		bad([]string{FieldWatchWait}, "watch wait %v must be between 1s and 10m (Consul caps blocking queries at 10m)", c.WatchWait)
	}
	if c.ReleaseTimeout < 0 {
		bad([]string{FieldReleaseTimeout}, "release timeout %v must not be negative", c.ReleaseTimeout)
	}
	if c.PriorityHold < 0 {
		bad([]string{FieldPriorityHold}, "priority hold %v must not be negative", c.PriorityHold)
	}
	if c.RankStep < 0 || c.RankStep > 10*time.Second {
		bad([]string{FieldRankStep}, "rank step %v must be between 0 and 10s", c.RankStep)
	}
	if c.Session != nil {
		if c.TTL != 0 || c.LockDelay != 0 || c.RenewInterval != 0 || c.CheckTTL != 0 || c.Behavior != "" {
			bad([]string{FieldSession}, "TTL, LockDelay, RenewInterval, CheckTTL and Behavior belong to the shared Session; leave them zero in Config")
		}
		if err := c.Session.cfg.checkLease(c.Margin); err != nil {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	sc := c.sessionConfig()
	if err := sc.validate(); err != nil {
		errs = append(errs, err)
	} else if err := sc.checkLease(c.Margin); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c Config) sessionConfig() SessionConfig {
	name := c.SessionName
	if name == "" {
		name = "leaderd: " + c.Key
	}
	return SessionConfig{
		Name:          name,
		TTL:           c.TTL,
		LockDelay:     c.LockDelay,
		RenewInterval: c.RenewInterval,
		Behavior:      c.Behavior,
		CheckTTL:      c.CheckTTL,
		CheckID:       c.CheckID,
		Logger:        c.Logger,
	}
}

// validate checks a session configuration with its defaults filled.
func (s SessionConfig) validate() error {
	var errs []error
	bad := func(fields []string, format string, a ...any) { errs = append(errs, fieldErr(fields, format, a...)) }
	ttlOK := s.TTL >= MinTTL && s.TTL <= MaxTTL
	if !ttlOK {
		bad([]string{FieldTTL}, "ttl %v must be between %v and %v", s.TTL, MinTTL, MaxTTL)
	}
	if s.LockDelay <= 0 || s.LockDelay > MaxLockDelay {
		bad([]string{FieldLockDelay}, "lock delay %v must be above 0s and at most %v: it is the leader's lease (Consul caps it at %v)",
			s.LockDelay, MaxLockDelay, MaxLockDelay)
	}
	switch {
	case !ttlOK: // the renew interval's own bounds depend on the ttl
	case s.RenewInterval <= 0 || s.RenewInterval >= s.TTL:
		bad([]string{FieldRenewInterval, FieldTTL}, "renew interval %v must be positive and shorter than the ttl %v", s.RenewInterval, s.TTL)
	case s.RenewInterval < MinRenewInterval:
		bad([]string{FieldRenewInterval, FieldLockDelay}, "renew interval %v is below %v (by default it is a third of lock delay − margin): raise the lock delay or lower the margin",
			s.RenewInterval, MinRenewInterval)
	}
	if s.Behavior != "release" && s.Behavior != "delete" {
		bad([]string{FieldBehavior}, "behavior %q must be \"release\" or \"delete\"", s.Behavior)
	}
	if s.CheckTTL < 0 {
		bad([]string{FieldCheckTTL}, "check ttl %v must not be negative (0 turns it off)", s.CheckTTL)
	} else if s.CheckTTL > 0 && s.CheckTTL < MinCheckTTL {
		bad([]string{FieldCheckTTL}, "check ttl %v is below %v; the agent can't keep it passing reliably (0 turns it off)", s.CheckTTL, MinCheckTTL)
	}
	return errors.Join(errs...)
}

// checkLease refuses a lease that leaves a leader fewer than two chances
// to renew: lock delay − margin must be at least two renew intervals.
func (s SessionConfig) checkLease(margin time.Duration) error {
	if lease := s.LockDelay - margin; lease < 2*s.RenewInterval {
		return fieldErr([]string{FieldLockDelay, FieldMargin, FieldRenewInterval},
			"lock delay %v - margin %v = %v leaves less than two renew intervals (2×%v): "+
				"raise the lock delay, or lower the margin or the renew interval",
			s.LockDelay, margin, lease, s.RenewInterval)
	}
	return nil
}

// checkInterval is how often the fast-crash-detection check is passed.
func (s SessionConfig) checkInterval() time.Duration { return s.CheckTTL / 3 }

// lazyRenew is how often a session that holds no key is renewed: it only
// has to be alive when it acquires, and the acquire's success proves that.
func (s SessionConfig) lazyRenew() time.Duration { return max(s.RenewInterval, s.TTL/2) }
