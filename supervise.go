package main

import (
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/leaderd/leaderd/elect"
)

// supervisor runs the user's command only while this instance leads. Start
// and Stop are called from elect's OnElected and OnStepDown hooks, on the
// election's goroutine, one after the other; Signal may be called from any
// goroutine.
//
// Guarantees:
//   - the command runs in its own process group, so a stop reaches
//     everything it started (grandchildren that stay in the group);
//   - Stop returns only once the command is dead and reaped: SIGTERM (or
//     the signal leaderd itself got) to the group, SIGKILL to the group
//     after killTimeout, and SIGKILL to whatever is left of the group as
//     soon as its leader has exited;
//   - if leaderd dies, even by SIGKILL, the kernel SIGKILLs the command
//     (PR_SET_PDEATHSIG). Pdeathsig fires when the creating *thread* exits
//     (go.dev/issue/27505), so each command is started and waited for on a
//     goroutine locked to its OS thread, which lives exactly as long as the
//     command. Grandchildren are not covered by Pdeathsig; a command that
//     must not outlive leaderd should exec its program or set its own.
type supervisor struct {
	argv        []string
	id          string   // LEADERD_ID
	env         []string // base environment; the LEADERD_* values are added
	killTimeout time.Duration
	stdout      *os.File
	stderr      *os.File
	log         *slog.Logger

	stopSig atomic.Int32   // signal for Stop's first step; 0 means SIGTERM
	exits   chan childExit // the command exited by itself
	mu      sync.Mutex     // guards cur
	cur     *child         // nil: no command for the current term
}

// childExit says the command of a term exited without being stopped.
type childExit struct {
	Token uint64 // term's fencing token
	Code  int    // exit code; 128+n if killed by signal n; 126/127 if it couldn't start
}

// child is one run of the command.
type child struct {
	term     elect.Term
	stopping atomic.Bool
	started  chan struct{} // closed once the start was attempted
	pid      int           // 0 if the start failed
	exited   chan struct{} // closed once the process is gone and reaped

	mu     sync.Mutex // serializes signals with the reap: no signal to a reused pid
	reaped bool
}

func newSupervisor(argv []string, id string, env []string, killTimeout time.Duration, log *slog.Logger) *supervisor {
	return &supervisor{
		argv:        argv,
		id:          id,
		env:         env,
		killTimeout: killTimeout,
		stdout:      os.Stdout,
		stderr:      os.Stderr,
		log:         log,
		exits:       make(chan childExit, 1),
	}
}

// Exits delivers the exit of a command that ended by itself.
func (s *supervisor) Exits() <-chan childExit { return s.exits }

// SetStopSignal sets the signal Stop sends first: leaderd forwards the
// SIGINT or SIGTERM it got itself.
func (s *supervisor) SetStopSignal(sig syscall.Signal) { s.stopSig.Store(int32(sig)) }

// Start starts the command for term t and returns at once (elect's
// OnElected must not block).
func (s *supervisor) Start(t elect.Term) {
	c := &child{term: t, started: make(chan struct{}), exited: make(chan struct{})}
	s.mu.Lock()
	s.cur = c
	s.mu.Unlock()
	go s.runChild(c)
}

// runChild starts, watches and reaps one command. It runs locked to its OS
// thread for the command's whole life: see Pdeathsig in the type's doc.
func (s *supervisor) runChild(c *child) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.Env = append(append([]string(nil), s.env...),
		"LEADERD_LEADER=true",
		"LEADERD_TOKEN="+strconv.FormatUint(c.term.Token, 10),
		"LEADERD_KEY="+c.term.Key,
		"LEADERD_SESSION="+c.term.Session,
		"LEADERD_ID="+s.id,
		"CONSUL_LOCK_HELD=true",
	)
	cmd.Stdout, cmd.Stderr = s.stdout, s.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		code := 126
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		s.log.Error("child start failed", "command", s.argv[0], "err", err, "token", c.term.Token)
		c.reaped = true
		close(c.started)
		close(c.exited)
		s.reportExit(c, code)
		return
	}
	c.pid = cmd.Process.Pid
	close(c.started)
	s.log.Info("child started", "pid", c.pid, "token", c.term.Token)

	// Wait for the exit without reaping: the zombie keeps the pid, and so
	// the process group id, from being reused while the rest of the group
	// is killed. Nothing of the group may outlive its leader's term.
	if err := waitExited(c.pid); err != nil {
		s.log.Warn("child wait failed", "pid", c.pid, "err", err)
	}
	c.mu.Lock()
	_ = syscall.Kill(-c.pid, syscall.SIGKILL)
	err := cmd.Wait()
	c.reaped = true
	c.mu.Unlock()
	code := exitCode(cmd.ProcessState, err)
	s.log.Info("child exited", "pid", c.pid, "code", code, "token", c.term.Token)
	close(c.exited)
	s.reportExit(c, code)
}

// reportExit tells the run loop about an exit nobody asked for.
func (s *supervisor) reportExit(c *child, code int) {
	if c.stopping.Load() {
		return
	}
	select {
	case s.exits <- childExit{Token: c.term.Token, Code: code}:
	default: // an earlier exit is still unread; it already ends the term
	}
}

// Stop ends the current command and returns once it is dead and reaped.
// Called from elect's OnStepDown: leadership is given up only after this.
func (s *supervisor) Stop() {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c == nil {
		return
	}
	// cur stays set until the child is gone, so Signal can still reach
	// it (a second SIGTERM escalates to SIGKILL).
	defer func() {
		s.mu.Lock()
		if s.cur == c {
			s.cur = nil
		}
		s.mu.Unlock()
	}()
	c.stopping.Store(true)
	<-c.started
	sig := syscall.Signal(s.stopSig.Load())
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	if !c.signal(sig) {
		<-c.exited
		return
	}
	s.log.Info("stopping child", "pid", c.pid, "signal", signalName(sig), "kill_timeout", s.killTimeout)
	t := time.NewTimer(s.killTimeout)
	defer t.Stop()
	select {
	case <-c.exited:
		return
	case <-t.C:
	}
	s.log.Warn("child still running after kill timeout, killing it", "pid", c.pid, "kill_timeout", s.killTimeout)
	c.signal(syscall.SIGKILL)
	<-c.exited
}

// Signal forwards sig to the current command's process group, if any.
func (s *supervisor) Signal(sig syscall.Signal) {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c == nil {
		return
	}
	select {
	case <-c.started:
		c.signal(sig)
	default: // not started yet: it will see the state as it is when it starts
	}
}

// Running reports whether a command is running (for /v1/status).
func (s *supervisor) Running() bool {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c == nil {
		return false
	}
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// signal sends sig to the child's process group unless the child has
// already been reaped. It reports whether the signal was sent.
func (c *child) signal(sig syscall.Signal) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reaped || c.pid == 0 {
		return false
	}
	return syscall.Kill(-c.pid, sig) == nil
}

// exitCode maps a wait result to a shell-style exit code.
func exitCode(ps *os.ProcessState, err error) int {
	if ps == nil {
		return 1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// waitExited blocks until pid has exited, leaving it a zombie (WNOWAIT).
// The syscall package has no Waitid; P_PID is 1 on Linux.
func waitExited(pid int) error {
	var info [128]byte // siginfo_t
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, 1, uintptr(pid),
			uintptr(unsafe.Pointer(&info[0])), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		switch errno {
		case 0:
			return nil
		case syscall.EINTR:
			continue
		}
		return errno
	}
}

// signalName is the conventional name (SIGTERM), stable in logs; the
// syscall package only has descriptions ("terminated").
func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGQUIT:
		return "SIGQUIT"
	case syscall.SIGUSR1:
		return "SIGUSR1"
	case syscall.SIGUSR2:
		return "SIGUSR2"
	}
	return sig.String()
}
