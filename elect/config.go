package elect

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Defaults and limits. Each duration's relation to the others is checked by
// Config.validate.
const (
	DefaultTTL            = 10 * time.Second
	DefaultMargin         = time.Second
	DefaultWatchWait      = 5 * time.Minute
	DefaultReleaseTimeout = 5 * time.Second
	DefaultResignHoldOff  = 3 * time.Second
	DefaultKeyTemplate    = "services/%s/leader"

	// MaxLockDelay is where Consul caps lock-delay enforcement.
	MaxLockDelay = 60 * time.Second
	// MinTTL and MaxTTL bound the session TTL. Consul's own minimum is 10s
	// unless the agent sets session_ttl_min; Consul rejects what it won't
	// take with a clear error, so we only refuse what no agent accepts.
	MinTTL = time.Second
	MaxTTL = 24 * time.Hour
)

// KeyFor fills the default key template with a service name.
func KeyFor(service string) string { return fmt.Sprintf(DefaultKeyTemplate, service) }

// withDefaults returns a copy of c with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	if c.Session == nil {
		if c.TTL == 0 {
			c.TTL = DefaultTTL
		}
		if c.RenewInterval == 0 {
			c.RenewInterval = c.TTL / 3
		}
		if c.Behavior == "" {
			c.Behavior = "release"
		}
	}
	if c.Margin == 0 {
		c.Margin = DefaultMargin
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
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.OnElected == nil {
		c.OnElected = func(Term) {}
	}
	if c.OnStepDown == nil {
		c.OnStepDown = func(Term, Reason) {}
	}
	return c
}

// validate reports every problem at once. c has its defaults filled.
func (c Config) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch {
	case c.Key == "":
		bad("key is required")
	case strings.HasPrefix(c.Key, "/"):
		bad("key %q must not start with '/'", c.Key)
	}
	if c.Candidate.ID == "" {
		bad("candidate id is required")
	}
	if c.Margin < 0 {
		bad("margin %v must not be negative", c.Margin)
	}
	if c.WatchWait < time.Second || c.WatchWait > 10*time.Minute {
		bad("watch wait %v must be between 1s and 10m (Consul caps blocking queries at 10m)", c.WatchWait)
	}
	if c.ReleaseTimeout < 0 {
		bad("release timeout %v must not be negative", c.ReleaseTimeout)
	}
	if c.Session != nil {
		if c.TTL != 0 || c.LockDelay != 0 || c.RenewInterval != 0 || c.CheckTTL != 0 || c.Behavior != "" {
			bad("TTL, LockDelay, RenewInterval, CheckTTL and Behavior belong to the shared Session; leave them zero in Config")
		}
		if err := c.Session.cfg.checkWindow(c.Margin); err != nil {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	sc := c.sessionConfig()
	if err := sc.validate(); err != nil {
		errs = append(errs, err)
	} else if err := sc.checkWindow(c.Margin); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c Config) sessionConfig() SessionConfig {
	return SessionConfig{
		Name:          "leaderd: " + c.Key,
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
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if s.TTL < MinTTL || s.TTL > MaxTTL {
		bad("ttl %v must be between %v and %v", s.TTL, MinTTL, MaxTTL)
	}
	if s.LockDelay < 0 || s.LockDelay > MaxLockDelay {
		bad("lock delay %v must be between 0s and %v (Consul caps it there)", s.LockDelay, MaxLockDelay)
	}
	if s.RenewInterval <= 0 {
		bad("renew interval %v must be positive", s.RenewInterval)
	}
	if s.Behavior != "release" && s.Behavior != "delete" {
		bad("behavior %q must be \"release\" or \"delete\"", s.Behavior)
	}
	if s.CheckTTL < 0 {
		bad("check ttl %v must not be negative", s.CheckTTL)
	} else if s.CheckTTL > 0 && s.CheckTTL < 100*time.Millisecond {
		bad("check ttl %v is below 100ms; the agent can't keep it passing reliably", s.CheckTTL)
	}
	return errors.Join(errs...)
}

// window is how long after a proof sent at t Consul cannot let another
// session acquire the key (see the safety rule in the package doc).
func (s SessionConfig) ttlWindow() time.Duration { return s.TTL + s.LockDelay }

func (s SessionConfig) checkWindow(margin time.Duration) error {
	if w := s.ttlWindow() - margin; w < 2*s.RenewInterval {
		return fmt.Errorf("ttl %v + lock delay %v - margin %v = %v leaves less than two renew intervals (2×%v): "+
			"raise ttl or lock delay, or lower the renew interval or margin",
			s.TTL, s.LockDelay, margin, w, s.RenewInterval)
	}
	if s.CheckTTL > 0 {
		if w := s.CheckTTL + s.LockDelay - margin; w < 2*s.checkInterval() {
			return fmt.Errorf("check ttl %v + lock delay %v - margin %v = %v leaves less than two check updates (2×%v): "+
				"raise check ttl or lock delay, or lower the margin (leaderd run: -kill-timeout)",
				s.CheckTTL, s.LockDelay, margin, w, s.checkInterval())
		}
	}
	return nil
}

// checkInterval is how often the fast-crash-detection check is passed.
func (s SessionConfig) checkInterval() time.Duration { return s.CheckTTL / 3 }
