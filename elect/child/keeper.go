package child

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// killPoll is how often the keeper looks for what is left of a tree it is
// killing: an orphan reparented to it from deeper down sends no SIGCHLD.
const killPoll = 10 * time.Millisecond

// Keep is the keeper process: `leaderd __keeper [-log-format f]
// [-log-level l] -- command [args…]`, started by a Supervisor with the
// command pipe as fd 3 and the event pipe as fd 4. It returns the exit
// code. See the package doc for what it does.
func Keep(args []string) int {
	fs := flag.NewFlagSet(KeeperCommand, flag.ContinueOnError)
	format := fs.String("log-format", "text", "log format: text or json")
	level := fs.String("log-level", "info", "log level")
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "leaderd "+KeeperCommand+": internal command of leaderd run; not for use by hand")
		return 2
	}
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(*level))
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if *format == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	log := slog.New(h).With("component", "keeper")

	var st syscall.Stat_t
	if syscall.Fstat(fdCommands, &st) != nil || syscall.Fstat(fdEvents, &st) != nil {
		fmt.Fprintln(os.Stderr, "leaderd "+KeeperCommand+": no pipes from leaderd on fd 3 and 4")
		return 2
	}
	// The command gets only stdin, stdout and stderr.
	syscall.CloseOnExec(fdCommands)
	syscall.CloseOnExec(fdEvents)
	k := &keeper{argv: fs.Args(), log: log, out: json.NewEncoder(os.NewFile(fdEvents, "events"))}
	if err := setSubreaper(); err != nil {
		log.Error("keeper can't be the child subreaper", "err", err)
		return 1
	}
	k.send(msg{Op: opReady})
	k.run(readCommands(os.NewFile(fdCommands, "commands"), log))
	return 0
}

// readCommands decodes leaderd's commands. The channel closes at EOF (leaderd
// is gone) or at anything it can't read, which ends the keeper the same way.
func readCommands(r io.Reader, log *slog.Logger) <-chan msg {
	ch := make(chan msg)
	go func() {
		defer close(ch)
		dec := json.NewDecoder(r)
		for {
			var m msg
			if err := dec.Decode(&m); err != nil {
				if err != io.EOF {
					log.Error("unreadable command from leaderd; ending as if it were gone", "err", err)
				}
				return
			}
			ch <- m
		}
	}()
	return ch
}

// keeper is the state of the keeper process. One goroutine (run) owns it.
type keeper struct {
	argv []string
	log  *slog.Logger
	out  *json.Encoder // to leaderd; errors are ignored, EOF on the input tells
	cur  *command      // nil between terms
}

// command is the command of one term, as the keeper runs it.
type command struct {
	term        uint64 // the Supervisor's sequence number of its Start
	token       uint64
	pid         int   // the group leader; its pid is the group id
	leaseEnd    int64 // CLOCK_MONOTONIC ns
	killTimeout time.Duration
	cause       string        // why it is being stopped; "" while it runs its term
	killAt      time.Time     // when a stop turns into SIGKILL; zero: not scheduled
	exited      bool          // the group leader was reaped
	killing     bool          // everything left is SIGKILLed until no child is left
	release     chan struct{} // closed once the group leader is reaped: ends its thread
}

func (k *keeper) send(m msg) { _ = k.out.Encode(m) }

// run serves leaderd's commands until its pipe ends, then kills what is
// left of the tree and returns once it is gone.
func (k *keeper) run(cmds <-chan msg) {
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, syscall.SIGCHLD)
	// Signals sent to leaderd's group or a service's whole cgroup don't end
	// the keeper: leaderd forwards what the command should get. Notify, not
	// Ignore: an ignored signal would stay ignored in the command.
	others := make(chan os.Signal, 4)
	signal.Notify(others, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	wake := time.NewTimer(k.nextWake())
	for cmds != nil || k.cur != nil {
		select {
		case m, ok := <-cmds:
			if !ok {
				cmds = nil
				k.leaderdGone()
				break
			}
			k.handle(m)
		case <-sigchld:
		case <-wake.C:
		case s := <-others:
			k.log.Debug("signal ignored", "signal", SignalName(s))
		}
		k.step()
		wake.Reset(k.nextWake())
	}
}

// handle applies one command from leaderd.
func (k *keeper) handle(m msg) {
	c := k.cur
	current := c != nil && c.term == m.Term
	switch m.Op {
	case opStart:
		k.start(m)
	case opLease:
		if current {
			c.leaseEnd = m.LeaseEnd
		}
	case opStop:
		if !current {
			k.send(msg{Op: opGone, Term: m.Term, Token: m.Token}) // already gone
			return
		}
		sig := syscall.Signal(m.Signal)
		if sig == 0 {
			sig = syscall.SIGTERM
		}
		k.stop(sig, m.KillTimeout, causeStop)
	case opSignal:
		if current && !c.exited {
			_ = syscall.Kill(-c.pid, syscall.Signal(m.Signal))
			if m.Signal == int(syscall.SIGKILL) {
				k.killAll()
			}
		}
	default:
		k.log.Error("unknown command from leaderd", "op", m.Op)
	}
}

// start runs the command for a term, unless its lease is already over.
func (k *keeper) start(m msg) {
	if k.cur != nil {
		k.send(msg{Op: opFailed, Term: m.Term, Token: m.Token, Code: 126, Error: "the previous term's command is still running"})
		return
	}
	if monoNow() >= m.LeaseEnd {
		k.send(msg{Op: opFailed, Term: m.Term, Token: m.Token, Cause: causeLease, Error: "the lease ended before the command could start"})
		return
	}
	c := &command{term: m.Term, token: m.Token, leaseEnd: m.LeaseEnd, killTimeout: m.KillTimeout, release: make(chan struct{})}
	pid, code, err := spawn(k.argv, mergeEnv(os.Environ(), m.Env), c.release)
	if err != nil {
		k.send(msg{Op: opFailed, Term: m.Term, Token: m.Token, Code: code, Error: err.Error()})
		return
	}
	c.pid = pid
	k.cur = c
	k.log.Debug("command spawned", "pid", pid, "token", m.Token)
	k.send(msg{Op: opStarted, Term: m.Term, Token: m.Token, PID: pid})
}

// stop begins the stop of the current command: sig to its group, then
// SIGKILL to everything after timeout. A stop already under way goes on.
func (k *keeper) stop(sig syscall.Signal, timeout time.Duration, cause string) {
	c := k.cur
	if c.cause != "" {
		return
	}
	c.cause = cause
	if c.exited {
		return // what is left is being killed
	}
	_ = syscall.Kill(-c.pid, sig)
	if sig == syscall.SIGKILL || timeout <= 0 {
		k.killAll()
		return
	}
	c.killAt = time.Now().Add(timeout)
}

// killAll SIGKILLs the command's group and, from now on, every process
// left in its tree.
func (k *keeper) killAll() {
	c := k.cur
	if !c.exited {
		_ = syscall.Kill(-c.pid, syscall.SIGKILL) // not reaped: its pid still names the group
	}
	c.killing = true
	k.killLeftovers()
}

// killLeftovers SIGKILLs every live child of the keeper: what is left of
// the tree once its parents died, reparented here (we are the subreaper).
func (k *keeper) killLeftovers() {
	self := os.Getpid()
	for _, p := range processes(func(p procStat) bool { return p.ppid == self && p.alive() }) {
		if err := syscall.Kill(p.pid, syscall.SIGKILL); err == nil && p.pid != k.cur.pid {
			k.log.Debug("killed a leftover process", "pid", p.pid, "pgid", p.pgrp, "token", k.cur.token)
		}
	}
}

// leaderdGone kills the tree at once: nobody is left to stop it in order.
func (k *keeper) leaderdGone() {
	c := k.cur
	if c == nil {
		return
	}
	k.log.Warn("leaderd gone; killing child", "pid", c.pid, "token", c.token)
	if c.cause == "" {
		c.cause = causeEOF
	}
	k.killAll()
}

// step does what is due: reap, enforce the lease, escalate a stop to
// SIGKILL, kill what is left, report the tree gone.
func (k *keeper) step() {
	none := k.reapAll()
	c := k.cur
	if c == nil {
		return
	}
	if !c.exited && c.cause == "" && monoNow() >= c.leaseEnd {
		k.log.Warn("lease ended; stopping child", "pid", c.pid, "token", c.token, "signal", "SIGTERM", "kill_timeout", c.killTimeout)
		k.stop(syscall.SIGTERM, c.killTimeout, causeLease)
	}
	if !c.exited && !c.killing && !c.killAt.IsZero() && !time.Now().Before(c.killAt) {
		k.log.Warn("child still running after kill timeout, killing it", "pid", c.pid, "token", c.token, "kill_timeout", c.killTimeout)
		k.killAll()
	}
	// No child at all (ECHILD) is proof enough that the tree is gone: as
	// the subreaper we inherit every orphan of it before its parent can
	// be reaped. Only otherwise is /proc searched for what is left.
	if c.killing && !none {
		k.killLeftovers()
	}
	if c.exited && none {
		k.log.Debug("child tree gone", "token", c.token)
		k.cur = nil
		k.send(msg{Op: opGone, Term: c.term, Token: c.token})
	}
}

// reapAll reaps every exited child, the group leader only after its group
// is SIGKILLed: nothing of the group may outlive its leader's term. It
// reports whether the keeper has no child left.
func (k *keeper) reapAll() (none bool) {
	for {
		pid, err := exitedChild()
		if err == syscall.ECHILD {
			return true
		}
		if err != nil || pid == 0 {
			if err != nil {
				k.log.Error("wait failed", "err", err)
			}
			return false
		}
		c := k.cur
		leader := c != nil && pid == c.pid && !c.exited
		if leader {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
		ws, err := reap(pid)
		if err != nil {
			k.log.Error("wait failed", "pid", pid, "err", err)
			return false
		}
		if !leader {
			continue
		}
		c.exited, c.killing = true, true
		close(c.release)
		code := exitCode(ws)
		k.log.Debug("command reaped", "pid", pid, "code", code, "token", c.token, "cause", c.cause)
		k.send(msg{Op: opExited, Term: c.term, Token: c.token, PID: pid, Code: code, Cause: c.cause})
	}
}

// nextWake is when step has something to do without an outside event.
func (k *keeper) nextWake() time.Duration {
	c := k.cur
	if c == nil {
		return time.Hour
	}
	if c.killing {
		return killPoll
	}
	d := time.Hour
	if c.cause == "" {
		d = min(d, time.Duration(c.leaseEnd-monoNow()))
	}
	if !c.killAt.IsZero() {
		d = min(d, time.Until(c.killAt))
	}
	return max(d, 0)
}
