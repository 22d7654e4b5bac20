package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/nomad"
)

// Defaults of `leaderd run`. The README's CLI reference repeats them.
const (
	defaultTTL         = 10 * time.Second
	defaultKillTimeout = 2 * time.Second
	defaultListen      = "127.0.0.1:8787"
	// killMargin is added to -kill-timeout to get elect.Config.Margin: the
	// leader stops acting (and its child is dead) this long before Consul
	// could let anyone else acquire. The extra 500ms covers reaping the
	// child and the step-down bookkeeping after the SIGKILL.
	killMargin = 500 * time.Millisecond

	minTTL       = time.Second
	maxTTL       = 24 * time.Hour
	maxLockDelay = 60 * time.Second
)

// Publisher names accepted by -publish.
const (
	publishConsulTags = "consul-tags"
	publishNomadVars  = "nomad-vars"
)

// runConfig is what `leaderd run` was told, after flags, environment and
// defaults. It holds no secret: the Consul token stays inside Consul.
type runConfig struct {
	Service       string
	Key           string
	ID            string
	Address       string
	AllocID       string
	TTL           time.Duration
	LockDelay     time.Duration
	RenewInterval time.Duration // 0: TTL/3 (elect's default)
	CheckTTL      time.Duration // 0: off
	KillTimeout   time.Duration
	Restart       bool
	PassEnv       []string
	Listen        string // "": no status server
	Publish       []string
	Tags          []string
	LogFormat     string
	LogLevel      string
	Consul        consulhttp.Config
	Command       []string // after --; empty: lead without a child
}

// margin is elect.Config.Margin for this configuration.
func (c runConfig) margin() time.Duration { return c.KillTimeout + killMargin }

// renewInterval is the effective renew interval.
func (c runConfig) renewInterval() time.Duration {
	if c.RenewInterval > 0 {
		return c.RenewInterval
	}
	return c.TTL / 3
}

const runSynopsis = `
Usage: leaderd run [flags] [-- command [args...]]

Campaign for leadership of a key in Consul and keep campaigning until
stopped. With a command, run it only while leading, in its own process
group, with LEADERD_LEADER=true, LEADERD_TOKEN (fencing token),
LEADERD_KEY, LEADERD_SESSION, LEADERD_ID and CONSUL_LOCK_HELD=true in its
environment. When leadership ends the group gets SIGTERM, then SIGKILL
after -kill-timeout; leadership is given up only once the child is gone.
If leaderd dies, even by SIGKILL, the kernel kills the child.

Consul connection: the consul CLI's variables (CONSUL_HTTP_ADDR,
CONSUL_HTTP_TOKEN, CONSUL_HTTP_TOKEN_FILE, CONSUL_CACERT, ...) or the flags
below. There is no token flag: a token on the command line shows in ps.

Exit codes: 0 stopped by SIGINT/SIGTERM (leadership released); the child's
own code when it exits by itself (128+n if killed by signal n) unless
-restart; 1 runtime error (e.g. ACL denied); 2 bad flags or environment.`

const runExamples = `
  # lead, publish nothing, answer on http://127.0.0.1:8787/v1/leader
  leaderd run -service billing

  # run a cron-like worker on exactly one of N machines
  CONSUL_HTTP_ADDR=10.0.0.5:8500 leaderd run -service reports -- ./reports-worker --loop

  # fast crash detection (failover in about -check-ttl instead of 2×TTL)
  leaderd run -service billing -check-ttl 3s -kill-timeout 500ms -listen 127.0.0.1:9000 -- ./billing`

// newRunFlags declares the flags of `leaderd run` over cfg.
func newRunFlags(cfg *runConfig, cf *consulFlags) *flagSet {
	fs := newFlagSet("run")
	cfg.TTL = defaultTTL
	cfg.KillTimeout = defaultKillTimeout
	cfg.Listen = defaultListen
	cfg.LogFormat = "text"
	cfg.LogLevel = "info"
	dur := func(p *time.Duration, name, usage string) { fs.Var(durationValue{p}, name, usage) }

	fs.StringVar(&cfg.Service, "service", "", "service name (default in Nomad: <job>-<group>, or <job> when the group has the job's name; else required)")
	fs.StringVar(&cfg.Key, "key", "", "Consul KV key to hold while leading, no leading '/' (default services/<service>/leader)")
	fs.StringVar(&cfg.ID, "id", "", "candidate id (default NOMAD_ALLOC_ID, else <hostname>-<pid>)")
	fs.StringVar(&cfg.Address, "address", "", "address others can reach this instance at, host:port, published with the leader record")
	dur(&cfg.TTL, "ttl", "session TTL, 1s..24h; Consul refuses below its session_ttl_min (10s unless lowered)")
	dur(&cfg.LockDelay, "lock-delay", "Consul lock-delay after an invalidated session, 0s..60s")
	dur(&cfg.RenewInterval, "renew-interval", "how often the session is renewed (default ttl/3)")
	dur(&cfg.CheckTTL, "check-ttl", "fast crash detection: bind the session to a TTL check passed every check-ttl/3 (0: off)")
	dur(&cfg.KillTimeout, "kill-timeout", "time the child gets between SIGTERM and SIGKILL; the leader steps down kill-timeout+500ms before its lease could end")
	fs.BoolVar(&cfg.Restart, "restart", false, "when the child exits by itself, give up leadership and keep campaigning (the child starts again on the next term) instead of exiting with its code")
	fs.Var(passEnvValue{&cfg.PassEnv}, "pass-env", passEnvUsage)
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "status HTTP server address (GET /v1/leader, /v1/health, /v1/status, /metrics); empty: off")
	fs.Var(listValue{&cfg.Publish}, "publish", "where to publish leader status, comma list of: consul-tags, nomad-vars")
	fs.Var(listValue{&cfg.Tags}, "tags", "extra Consul service tags for -publish consul-tags, comma list")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "log format: text or json (logs go to stderr)")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log level: debug, info, warn or error")
	cf.register(fs)
	return fs
}

// parseRunConfig turns arguments and environment into a checked runConfig.
// Every error is a usageError (exit 2) or flag.ErrHelp.
func parseRunConfig(args []string, getenv func(string) string) (runConfig, *flagSet, error) {
	var cfg runConfig
	var cf consulFlags
	fs := newRunFlags(&cfg, &cf)
	if err := fs.parse(args, getenv); err != nil {
		return cfg, fs, err
	}
	rest := fs.Args()
	if len(rest) > 0 {
		// The flag package eats "--"; require it so a typo is not run as
		// a command.
		if i := len(args) - len(rest) - 1; i < 0 || args[i] != "--" {
			return cfg, fs, usagef("unexpected argument %q: put the command after --", rest[0])
		}
		cfg.Command = rest
	}

	cfg.AllocID = getenv("NOMAD_ALLOC_ID")
	if cfg.Service == "" {
		cfg.Service = nomadService(getenv)
	}
	if cfg.Key == "" && cfg.Service != "" {
		cfg.Key = "services/" + cfg.Service + "/leader"
	}
	if cfg.ID == "" {
		cfg.ID = cfg.AllocID
	}
	if cfg.ID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		cfg.ID = host + "-" + strconv.Itoa(os.Getpid())
	}

	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, usagef(format, a...)) }
	switch {
	case cfg.Service == "" && cfg.Key == "":
		bad("-service is required outside Nomad (or set LEADERD_SERVICE, or give -key)")
	case strings.ContainsAny(cfg.Service, "/ \t\n"):
		bad("invalid %s %q: a service name has no '/' or spaces", fs.name("service"), cfg.Service)
	}
	if strings.HasPrefix(cfg.Key, "/") {
		bad("invalid %s %q: a Consul key must not start with '/'", fs.name("key"), cfg.Key)
	}
	if cfg.TTL < minTTL || cfg.TTL > maxTTL {
		bad("invalid %s %v: must be between %v and %v", fs.name("ttl"), cfg.TTL, minTTL, maxTTL)
	}
	if cfg.LockDelay < 0 || cfg.LockDelay > maxLockDelay {
		bad("invalid %s %v: must be between 0s and %v (Consul's cap)", fs.name("lock-delay"), cfg.LockDelay, maxLockDelay)
	}
	if cfg.RenewInterval < 0 || (cfg.TTL > 0 && cfg.RenewInterval >= cfg.TTL) {
		bad("invalid %s %v: must be positive and shorter than the TTL %v", fs.name("renew-interval"), cfg.RenewInterval, cfg.TTL)
	}
	if cfg.CheckTTL < 0 {
		bad("invalid %s %v: must not be negative (0 turns it off)", fs.name("check-ttl"), cfg.CheckTTL)
	} else if cfg.CheckTTL > 0 && cfg.CheckTTL < 100*time.Millisecond {
		bad("invalid %s %v: below 100ms the agent can't keep the check passing (0 turns it off)", fs.name("check-ttl"), cfg.CheckTTL)
	}
	if cfg.KillTimeout < 0 {
		bad("invalid %s %v: must not be negative", fs.name("kill-timeout"), cfg.KillTimeout)
	}
	if len(errs) == 0 {
		if err := checkWindow(cfg, fs); err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.Listen != "" {
		if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
			bad("invalid %s %q: %v", fs.name("listen"), cfg.Listen, err)
		}
	}
	for _, p := range cfg.Publish {
		if p != publishConsulTags && p != publishNomadVars {
			bad("invalid %s %q: unknown publisher (want %s or %s)", fs.name("publish"), p, publishConsulTags, publishNomadVars)
		}
	}
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		bad("invalid %s %q: want text or json", fs.name("log-format"), cfg.LogFormat)
	}
	if _, err := parseLevel(cfg.LogLevel); err != nil {
		bad("invalid %s %q: %v", fs.name("log-level"), cfg.LogLevel, err)
	}
	if len(cfg.Command) > 0 {
		if _, err := exec.LookPath(cfg.Command[0]); err != nil {
			bad("command %q: %v", cfg.Command[0], unwrapExec(err))
		}
	}
	consul, err := cf.config(getenv)
	if err != nil {
		errs = append(errs, err)
	}
	cfg.Consul = consul
	return cfg, fs, errors.Join(errs...)
}

// checkWindow refuses a -kill-timeout that the lease window can't hold:
// the leader must stop acting kill-timeout+500ms before Consul could let
// anyone else in, and still renew at least twice in the window. It mirrors
// elect's rule so the message names leaderd's flags, not elect's fields.
func checkWindow(cfg runConfig, fs *flagSet) error {
	renew := cfg.renewInterval()
	window, what := cfg.TTL+cfg.LockDelay, fmt.Sprintf("ttl %v + lock-delay %v", cfg.TTL, cfg.LockDelay)
	if left := window - cfg.margin(); left < 2*renew {
		return usagef("invalid %s %v: %s - (kill-timeout + %v) leaves %v, less than two renew intervals (2×%v); lower -kill-timeout or -renew-interval, or raise -ttl",
			fs.name("kill-timeout"), cfg.KillTimeout, what, killMargin, left, renew)
	}
	if cfg.CheckTTL > 0 {
		check := cfg.CheckTTL / 3
		if left := cfg.CheckTTL + cfg.LockDelay - cfg.margin(); left < 2*check {
			return usagef("invalid %s %v: check-ttl %v + lock-delay %v - (kill-timeout + %v) leaves %v, less than two check updates (2×%v); lower -kill-timeout or raise -check-ttl",
				fs.name("kill-timeout"), cfg.KillTimeout, cfg.CheckTTL, cfg.LockDelay, killMargin, left, check)
		}
	}
	return nil
}

// nomadService is the default service name inside a Nomad task, the same
// one package nomad derives for the jobspecs and Nomad Variables.
func nomadService(getenv func(string) string) string {
	if !nomad.InNomad(getenv) {
		return ""
	}
	id, _ := nomad.IdentityFromEnv(getenv, "")
	return id.DefaultServiceName()
}

// unwrapExec drops exec.Error's repetition of the command name.
func unwrapExec(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee.Err
	}
	return err
}
