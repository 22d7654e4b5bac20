package main

import (
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/leaderd/leaderd/elect/hooks"
)

// What `consul lock` users reach for, and several leaderd on one host:
// -name, -timeout (-try), -pass-stdin, and a status address that does
// not stop a second instance from starting. README: "Coming from
// `consul lock`".

// nomadStatusPort is the environment variable of the port the shipped
// jobspecs allocate for leaderd's status server (jobspec.PortStatus).
const nomadStatusPort = "NOMAD_PORT_status"

// registerParityFlags declares consul lock's flags that leaderd run has
// too, and the hook flags.
func registerParityFlags(fs *flagSet, cfg *runConfig) {
	fs.StringVar(&cfg.SessionName, "name", "", "name of the Consul session, shown in Consul's UI (default \"leaderd: <key>\")")
	fs.Var(durationValue{&cfg.Timeout}, "timeout", "give up if not leading within this long: exit 4, holding nothing, session destroyed (consul lock's -timeout; 0: wait for ever)")
	fs.Var(durationValue{&cfg.Timeout}, "try", "alias of -timeout (consul lock's old name)")
	fs.noEnv["try"] = true
	fs.BoolVar(&cfg.PassStdin, "pass-stdin", false, "the command reads leaderd's stdin (default: /dev/null)")
	fs.StringVar(&cfg.Hook, "hook", "", "shell line run by /bin/sh -c on every role change, one at a time in order, never delaying the election; "+
		"LEADERD_ROLE (leader, follower, stepped_down), LEADERD_REASON, LEADERD_TOKEN, LEADERD_LEADER_ID, LEADERD_KEY, LEADERD_ID in its environment")
	fs.Var(durationValue{&cfg.HookTimeout}, "hook-timeout", "a hook still running after this long has its process group killed (default "+hooks.DefaultTimeout.String()+")")
}

// parityErrors checks the flags registerParityFlags declared.
func parityErrors(cfg runConfig, fs *flagSet) []error {
	var errs []error
	if cfg.Timeout < 0 {
		errs = append(errs, usagef("invalid %s %v: must not be negative (0: wait for ever)", fs.name(timeoutFlag(fs)), cfg.Timeout))
	}
	if cfg.HookTimeout < 0 {
		errs = append(errs, usagef("invalid %s %v: must not be negative", fs.name("hook-timeout"), cfg.HookTimeout))
	}
	return errs
}

// timeoutFlag is the name the user gave the timeout under.
func timeoutFlag(fs *flagSet) string {
	if fs.source["try"] != "" {
		return "try"
	}
	return "timeout"
}

// defaultListenIn is the status address when -listen was not given:
// inside Nomad the port the jobspec allocated for it (bound on all
// addresses, as the shipped jobspecs do), else listen, the built-in
// default. "" (turned off) stays off.
func defaultListenIn(listen string, getenv func(string) string) string {
	if listen == "" {
		return ""
	}
	if p := getenv(nomadStatusPort); p != "" {
		return net.JoinHostPort("0.0.0.0", p)
	}
	return listen
}

// warnShortTimeout says when -timeout can't be met on a key that doesn't
// exist yet (a cron job's first night): such a key is taken only
// lock-delay + margin after it was seen missing.
func warnShortTimeout(cfg runConfig, log *slog.Logger) {
	if cfg.Timeout <= 0 {
		return
	}
	if missing := cfg.LockDelay + cfg.margin(); cfg.Timeout <= missing {
		log.Warn("-timeout is not above lock-delay + margin: a key that does not exist yet can't be won within it",
			"timeout", cfg.Timeout, "needs_over", missing)
	}
}

// campaignDeadline settles the race between -timeout and winning: exactly
// one of elected and giveUp returns true the first time; after a win,
// elected stays true for every later term.
type campaignDeadline struct{ state atomic.Int32 }

const (
	campaigning int32 = iota
	won
	gaveUp
)

// elected is called when a term starts: false means the timeout came
// first and leaderd is on its way out, so the term's work must not start.
func (d *campaignDeadline) elected() bool {
	return d.state.CompareAndSwap(campaigning, won) || d.state.Load() == won
}

// giveUp is called when -timeout passes: false means leaderd has led.
func (d *campaignDeadline) giveUp() bool { return d.state.CompareAndSwap(campaigning, gaveUp) }

// timeoutTimer is the channel of -timeout, nil (never ready) without one.
func timeoutTimer(d time.Duration) (<-chan time.Time, func()) {
	if d <= 0 {
		return nil, func() {}
	}
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}
