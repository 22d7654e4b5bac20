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
	"github.com/leaderd/leaderd/elect"
	"github.com/leaderd/leaderd/nomad"
)

// Defaults of `leaderd run`, chosen by measurement (README, Benchmarks).
// The README's CLI reference repeats them. The timing rules between them
// live in package elect; parseRunConfig maps its field errors to flags.
const (
	defaultTTL         = 10 * time.Second
	defaultLockDelay   = 10 * time.Second // the leader's lease
	defaultCheckTTL    = 3 * time.Second  // fast crash detection
	defaultKillTimeout = 2 * time.Second
	defaultListen      = "127.0.0.1:8787"
	// killMargin is added to -kill-timeout to get elect.Config.Margin: the
	// leader stops acting (and its child is dead) this long before Consul
	// could let anyone else acquire. The extra 500ms covers reaping the
	// child and the step-down bookkeeping after the SIGKILL.
	killMargin = 500 * time.Millisecond
)

// flagOfField names, for each elect.Config field, the flag that sets it.
var flagOfField = map[string]string{
	elect.FieldKey:           "key",
	elect.FieldCandidateID:   "id",
	elect.FieldTTL:           "ttl",
	elect.FieldLockDelay:     "lock-delay",
	elect.FieldRenewInterval: "renew-interval",
	elect.FieldCheckTTL:      "check-ttl",
	elect.FieldMargin:        "kill-timeout",
	elect.FieldPriority:      "priority",
	elect.FieldPriorityHold:  "priority-hold",
}

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

	// ListenNamed: the user gave -listen (or LEADERD_LISTEN). Only a
	// default address falls back to a free port when it is taken.
	ListenNamed  bool
	SessionName  string        // -name; "": elect's "leaderd: <key>"
	Timeout      time.Duration // -timeout: give up (exit 4) if not leading by then; 0: never
	PassStdin    bool          // the child reads leaderd's stdin
	Hook         string        // shell line run on every role change (package elect/hooks)
	HookTimeout  time.Duration // 0: hooks.DefaultTimeout
	Slots        int           // -n above 1: up to Slots holders at once (slots.go); 0: one leader
	Priority     int           // -priority: rank among the candidates (priority.go)
	PriorityHold time.Duration // -priority-hold: a better candidate's wait before the leader hands over
}

// margin is elect.Config.Margin for this configuration.
func (c runConfig) margin() time.Duration { return c.KillTimeout + killMargin }

// electConfig is the election this configuration runs, without hooks.
func (c runConfig) electConfig(startedAt time.Time) elect.Config {
	return elect.Config{
		Key: c.Key,
		Candidate: elect.Candidate{
			ID: c.ID, Name: c.Service, Address: c.Address, AllocID: c.AllocID, StartedAt: startedAt,
		},
		TTL:           c.TTL,
		LockDelay:     c.LockDelay,
		RenewInterval: c.RenewInterval,
		CheckTTL:      c.CheckTTL,
		CheckID:       "leaderd:" + c.ID,
		SessionName:   c.SessionName,
		Margin:        c.margin(),
		Priority:      c.Priority,
		PriorityHold:  c.PriorityHold,
		// Nomad's default kill_timeout is 5s: the child's share comes
		// first, the rest is enough for release and destroy.
		ReleaseTimeout: 2 * time.Second,
	}
}

const runSynopsis = `
Usage: leaderd run [flags] [-- command [args...]]

Campaign for leadership of a key in Consul and keep campaigning until
stopped. With a command, run it only while leading, in its own process
group under a keeper process, with LEADERD_LEADER=true, LEADERD_TOKEN
(fencing token), LEADERD_KEY, LEADERD_SESSION, LEADERD_ID and
CONSUL_LOCK_HELD=true in its environment (Consul and Nomad tokens are
withheld unless named in -pass-env). When leadership ends the group gets
SIGTERM, then SIGKILL after -kill-timeout; leadership is given up only once
the child's whole process tree is gone. The keeper kills that tree when the
lease ends unrenewed (leaderd stopped or stalled) and at once if leaderd dies.

The lease is the lock-delay: a leader acts until its last proof of a valid
session + lock-delay - (kill-timeout + 500ms), because Consul may end its
session at any moment (destroy, agent restart, force-leave) and then keeps
others out for the lock-delay only.

Consul connection: the consul CLI's variables (CONSUL_HTTP_ADDR,
CONSUL_HTTP_TOKEN, CONSUL_HTTP_TOKEN_FILE, CONSUL_CACERT, ...) or the flags
below. There is no token flag: a token on the command line shows in ps.

Exit codes: 0 stopped by SIGINT/SIGTERM (leadership released); the child's
own code when it exits by itself (128+n if killed by signal n) unless
-restart; 1 runtime error (e.g. ACL denied); 2 bad flags or environment;
4 not leading within -timeout (gave up, holding nothing).`

const runExamples = `
  # lead, publish nothing, answer on http://127.0.0.1:8787/v1/leader
  leaderd run -service billing

  # run a cron-like worker on exactly one of N machines
  CONSUL_HTTP_ADDR=10.0.0.5:8500 leaderd run -service reports -- ./reports-worker --loop

  # a nightly job on one of several hosts; the others give up after 30s (exit 4)
  leaderd run -service nightly -timeout 30s -- /usr/local/bin/nightly-once

  # fast failover (about 3s after a crash, 2s after a session invalidation)
  leaderd run -service billing -check-ttl 1s -lock-delay 2s -kill-timeout 500ms -listen 127.0.0.1:9000 -- ./billing`

// declareRunFlags declares the flags of `leaderd run` on fs over cfg, and
// sets cfg's defaults.
func declareRunFlags(fs *flagSet, cfg *runConfig) *consulhttp.Flags {
	cfg.TTL = defaultTTL
	cfg.LockDelay = defaultLockDelay
	cfg.CheckTTL = defaultCheckTTL
	cfg.KillTimeout = defaultKillTimeout
	cfg.Listen = defaultListen
	cfg.LogFormat = "text"
	cfg.LogLevel = "info"
	dur := func(p *time.Duration, name, usage string) { fs.Var(durationValue{p}, name, usage) }

	fs.StringVar(&cfg.Service, "service", "", "service name (default in Nomad: <job>-<group>, or <job> when the group has the job's name; else required)")
	fs.StringVar(&cfg.Key, "key", "", "Consul KV key to hold while leading, no leading '/' (default "+elect.KeyFor("<service>")+")")
	fs.StringVar(&cfg.ID, "id", "", "candidate id (default NOMAD_ALLOC_ID, else <hostname>-<pid>)")
	fs.StringVar(&cfg.Address, "address", "", "address others can reach this instance at, host:port, published with the leader record")
	dur(&cfg.TTL, "ttl", "session TTL, 1s..24h: a crashed leader's session ends ttl..2×ttl after its last renew; Consul refuses below its session_ttl_min (10s unless lowered)")
	dur(&cfg.LockDelay, "lock-delay", "the leader's lease, above 0s and at most 60s: after any invalidation of a session Consul keeps the key from others this long; a leader acts until its last proof + lock-delay - (kill-timeout + 500ms)")
	dur(&cfg.RenewInterval, "renew-interval", "how often a leader renews its session (default min(ttl/3, (lock-delay - kill-timeout - 500ms)/3)); followers renew every max(this, ttl/2)")
	dur(&cfg.CheckTTL, "check-ttl", "fast crash detection: bind the session to a TTL check passed every check-ttl/3, so a dead leaderd is replaced after check-ttl + lock-delay (0: off, then after up to 2×ttl + lock-delay)")
	dur(&cfg.KillTimeout, "kill-timeout", "time the child gets between SIGTERM and SIGKILL; the leader steps down kill-timeout+500ms before its lease could end")
	fs.BoolVar(&cfg.Restart, "restart", false, "when the child exits by itself, give up leadership and keep campaigning (the child starts again on the next term) instead of exiting with its code")
	fs.Var(passEnvValue{&cfg.PassEnv}, "pass-env", passEnvUsage)
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "status HTTP server address (GET /v1/leader, /v1/health, /v1/status, /metrics); empty: off. "+
		"Unless given, inside Nomad the allocated port \"status\"; a default that is taken falls back to a free loopback port (logged, and shown in /v1/status)")
	fs.Var(listValue{&cfg.Publish}, "publish", "where to publish leader status, comma list of: consul-tags, nomad-vars")
	fs.Var(listValue{&cfg.Tags}, "tags", "extra Consul service tags for -publish consul-tags, comma list")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "log format: text or json (logs go to stderr)")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log level: debug, info, warn or error")
	registerParityFlags(fs, cfg)
	registerSlotsFlags(fs, cfg)
	registerPriorityFlags(fs, cfg)
	return registerConsulFlags(fs)
}

// parseRunConfig turns arguments and environment into a checked runConfig,
// as the command table does for leaderd run. Every error is a usageError
// (exit 2) or flag.ErrHelp.
func parseRunConfig(args []string, getenv func(string) string) (runConfig, *flagSet, error) {
	var cfg runConfig
	fs := newFlagSet("run")
	cf := declareRunFlags(fs, &cfg)
	argv, err := parseArgs(fs, args, getenv, true)
	if err != nil {
		return cfg, fs, err
	}
	return cfg, fs, cfg.finish(argv, fs, cf, getenv)
}

// finish completes a configuration whose flags fs parsed: the command
// line after --, defaults from the environment (Nomad, the host), the
// Consul connection; then it checks everything and reports every problem
// at once, each naming the flag or variable the user wrote.
func (cfg *runConfig) finish(argv []string, fs *flagSet, cf *consulhttp.Flags, getenv func(string) string) error {
	cfg.Command = argv
	cfg.AllocID = getenv("NOMAD_ALLOC_ID")
	if cfg.Service == "" {
		cfg.Service = nomadService(getenv)
	}
	if cfg.Key == "" {
		cfg.Key = defaultKey(cfg.Service, cfg.Slots)
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
	if cfg.LockDelay <= 0 {
		bad("invalid %s %v: must be above 0s: the lock-delay is the leader's lease, all that protects it when Consul ends its session without telling it (README: Guarantees)",
			fs.name("lock-delay"), cfg.LockDelay)
	}
	if cfg.KillTimeout < 0 {
		bad("invalid %s %v: must not be negative", fs.name("kill-timeout"), cfg.KillTimeout)
	}
	if len(errs) == 0 {
		errs = append(errs, timingErrors(*cfg, fs)...)
	}
	cfg.ListenNamed = fs.source["listen"] != "" && cfg.Listen != ""
	if !cfg.ListenNamed {
		cfg.Listen = defaultListenIn(cfg.Listen, getenv)
	}
	if cfg.Listen != "" {
		if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
			bad("invalid %s %q: %v", fs.name("listen"), cfg.Listen, err)
		}
	}
	errs = append(errs, parityErrors(*cfg, fs)...)
	errs = append(errs, slotsErrors(*cfg, fs)...)
	errs = append(errs, priorityErrors(*cfg, fs)...)
	for _, p := range cfg.Publish {
		if p != nomad.PublishConsulTags && p != nomad.PublishNomadVars {
			bad("invalid %s %q: unknown publisher (want %s or %s)", fs.name("publish"), p, nomad.PublishConsulTags, nomad.PublishNomadVars)
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
	consul, err := consulConfig(cf, getenv)
	if err != nil {
		errs = append(errs, err)
	}
	cfg.Consul = consul
	return errors.Join(errs...)
}

// timingErrors are elect's verdicts on the timing flags, each naming the
// flags (or environment variables) the user wrote instead of elect's
// field names. The rules themselves live in elect only.
func timingErrors(cfg runConfig, fs *flagSet) []error {
	err := cfg.electConfig(time.Time{}).Validate()
	if err == nil {
		return nil
	}
	var fes []*elect.FieldError
	for _, e := range joined(err) {
		var fe *elect.FieldError
		if errors.As(e, &fe) {
			fes = append(fes, fe)
		}
	}
	var errs []error
	for _, fe := range fes {
		var names []string
		margin := false
		for _, f := range fe.Fields {
			if flag, ok := flagOfField[f]; ok {
				names = append(names, fs.name(flag))
			}
			margin = margin || f == elect.FieldMargin
		}
		msg := fe.Msg
		if margin {
			msg += fmt.Sprintf(" (margin = kill-timeout + %v)", killMargin)
		}
		if len(names) == 0 {
			errs = append(errs, usagef("%s", msg))
			continue
		}
		errs = append(errs, usagef("invalid %s: %s", strings.Join(names, ", "), msg))
	}
	if len(errs) == 0 { // not a field error: still bad input
		errs = append(errs, usagef("%s", oneLine(err)))
	}
	return errs
}

// defaultKey is -key's default for a service: elect's key of its leader,
// or with -n above 1 the prefix of its semaphore; "" without a service.
func defaultKey(service string, slots int) string {
	switch {
	case service == "":
		return ""
	case slots > 1:
		return elect.SlotsPrefixFor(service)
	}
	return elect.KeyFor(service)
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
