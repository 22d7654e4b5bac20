package child

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/leaderd/leaderd/elect"
)

// Config of a Supervisor.
type Config struct {
	Command []string // required: the command and its arguments
	ID      string   // LEADERD_ID
	// Env is the command's environment before the LEADERD_* values,
	// usually os.Environ(). The Withheld variables are dropped unless
	// named in Pass.
	Env         []string
	Pass        []string
	KillTimeout time.Duration // between the stop signal and SIGKILL
	// Stdout and Stderr are the keeper's and the command's; default
	// os.Stdout and os.Stderr.
	Stdout, Stderr *os.File
	// Stdin is the keeper's and so the command's stdin (leaderd run
	// -pass-stdin); nil: /dev/null. The keeper never reads it.
	Stdin *os.File
	// LogFormat ("text" or "json") and LogLevel ("debug" … "error") are
	// the keeper's; it logs to Stderr.
	LogFormat, LogLevel string
	Logger              *slog.Logger // leaderd's side; default discard
	// KeeperPath and KeeperArgs run the keeper: default /proc/self/exe
	// KeeperCommand, this very binary, whose main must hand KeeperCommand
	// to Keep.
	KeeperPath string
	KeeperArgs []string
}

// Exit is the end of a term's command that leaderd did not ask for.
type Exit struct {
	Token uint64
	Code  int // exit code; 128+n if killed by signal n; 126/127 if it couldn't start
	// LeaseEnded: the keeper stopped the command (or did not start it)
	// because the term's lease had ended without news of a later end.
	LeaseEnded bool
}

// Supervisor runs the command only while this instance leads, through a
// keeper process (see the package doc). Start and Stop are called from
// elect's OnElected and OnStepDown hooks, one after the other, and Extend
// from OnLease, all on the election's goroutine; none of them blocks
// except Stop, which returns only once the command's whole tree is dead.
// Signal, Running and SetStopSignal may be called from any goroutine.
type Supervisor struct {
	cfg     Config
	log     *slog.Logger
	kept    []string // the keeper's environment: no Withheld variable
	passed  []string // the Withheld variables passed to the command
	stopSig atomic.Int32
	exits   chan Exit
	seq     uint64 // the last term's sequence number; guarded by mu

	mu  sync.Mutex
	k   *link // the keeper; replaced at the next Start if it died
	cur *term // nil: no command for the current term
}

// term is one term's command as leaderd sees it. The link's reader
// goroutine closes the channels, each once, in this order.
type term struct {
	id       uint64 // Supervisor.seq at its Start: names it in the protocol
	token    uint64
	link     *link
	stopping atomic.Bool   // Stop was called: its end is not an Exit
	started  chan struct{} // closed once the start was answered
	pid      int           // set before started closes; 0 if it did not start
	exited   chan struct{} // closed once the group leader exited (or did not start)
	gone     chan struct{} // closed once the whole tree is dead and reaped
}

// New checks cfg and starts the keeper.
func New(cfg Config) (*Supervisor, error) {
	if len(cfg.Command) == 0 {
		return nil, errors.New("child: no command")
	}
	if err := CheckPass(cfg.Pass); err != nil {
		return nil, fmt.Errorf("child: %w", err)
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	if cfg.KeeperPath == "" {
		cfg.KeeperPath, cfg.KeeperArgs = "/proc/self/exe", []string{KeeperCommand}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// Before the first keeper: if it dies, what it leaves comes to us.
	if err := adopt(); err != nil {
		return nil, fmt.Errorf("child: can't become the child subreaper (needed to kill what a dead keeper leaves): %w", err)
	}
	s := &Supervisor{cfg: cfg, log: cfg.Logger, exits: make(chan Exit, 1)}
	s.kept, s.passed = splitEnv(cfg.Env, cfg.Pass)
	k, err := s.startKeeper()
	if err != nil {
		return nil, err
	}
	s.k = k
	return s, nil
}

// Exits delivers the end of a command that leaderd did not stop.
func (s *Supervisor) Exits() <-chan Exit { return s.exits }

// SetStopSignal sets the signal Stop sends first: leaderd forwards the
// SIGINT or SIGTERM it got itself. Default SIGTERM.
func (s *Supervisor) SetStopSignal(sig syscall.Signal) { s.stopSig.Store(int32(sig)) }

// Start starts the command for term t, whose lease ends at t.LeaseEnd,
// and returns at once.
func (s *Supervisor) Start(t elect.Term) {
	c := &term{token: t.Token, started: make(chan struct{}), exited: make(chan struct{}), gone: make(chan struct{})}
	s.mu.Lock()
	s.seq++
	c.id = s.seq
	s.cur = c
	k, err := s.keeperLocked()
	c.link = k
	s.mu.Unlock()
	if err != nil {
		s.log.Error("child start failed", "command", s.cfg.Command[0], "err", err, "token", t.Token)
		close(c.started)
		close(c.exited)
		close(c.gone)
		s.report(c, Exit{Token: t.Token, Code: 126})
		return
	}
	env := append(append([]string(nil), s.passed...),
		"LEADERD_LEADER=true",
		"LEADERD_TOKEN="+strconv.FormatUint(t.Token, 10),
		"LEADERD_KEY="+t.Key,
		"LEADERD_SESSION="+t.Session,
		"LEADERD_ID="+s.cfg.ID,
		"CONSUL_LOCK_HELD=true",
	)
	k.send(msg{Op: opStart, Term: c.id, Token: t.Token, Env: env, LeaseEnd: monoAt(t.LeaseEnd), KillTimeout: s.cfg.KillTimeout})
}

// Extend tells the keeper that term token's lease now ends at leaseEnd.
// It never blocks: only the latest end waits to be written.
func (s *Supervisor) Extend(token uint64, leaseEnd time.Time) {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c == nil || c.token != token {
		return
	}
	c.link.setLease(msg{Op: opLease, Term: c.id, Token: token, LeaseEnd: monoAt(leaseEnd)})
}

// Stop ends the current command and returns once its whole tree is dead
// and reaped. Called from elect's OnStepDown: leadership is given up only
// after this.
func (s *Supervisor) Stop() {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c == nil {
		return
	}
	// cur stays set until the tree is gone, so Signal can still reach it
	// (a second SIGTERM escalates to SIGKILL).
	defer func() {
		s.mu.Lock()
		if s.cur == c {
			s.cur = nil
		}
		s.mu.Unlock()
	}()
	c.stopping.Store(true)
	<-c.started
	select {
	case <-c.exited: // exited by itself: the keeper is killing what is left
	default:
		sig := syscall.Signal(s.stopSig.Load())
		if sig == 0 {
			sig = syscall.SIGTERM
		}
		s.log.Info("stopping child", "pid", c.pid, "signal", SignalName(sig), "kill_timeout", s.cfg.KillTimeout, "token", c.token)
		c.link.send(msg{Op: opStop, Term: c.id, Token: c.token, Signal: int(sig), KillTimeout: s.cfg.KillTimeout})
	}
	<-c.gone
}

// Signal forwards sig to the current command's process group, if it runs.
func (s *Supervisor) Signal(sig syscall.Signal) {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c == nil {
		return
	}
	select {
	case <-c.exited:
	case <-c.started:
		c.link.send(msg{Op: opSignal, Term: c.id, Token: c.token, Signal: int(sig)})
	default: // not started yet: it will see the state as it is when it starts
	}
}

// Running reports whether a command is running (for /v1/status).
func (s *Supervisor) Running() bool {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c == nil {
		return false
	}
	select {
	case <-c.exited:
		return false
	case <-c.started:
		return true
	default:
		return false
	}
}

// Close ends the keeper once leaderd is done; a command still running is
// killed at once. Call it after Stop.
func (s *Supervisor) Close() {
	s.mu.Lock()
	k := s.k
	s.mu.Unlock()
	k.close()
	<-k.dead
}

// report tells the run loop about an end nobody asked for.
func (s *Supervisor) report(c *term, ex Exit) {
	if c.stopping.Load() {
		return
	}
	select {
	case s.exits <- ex:
	default: // an earlier exit is still unread; it already ends the term
	}
}

// keeperLocked returns the keeper, starting a new one if it died. s.mu is
// held.
func (s *Supervisor) keeperLocked() (*link, error) {
	if !s.k.broken {
		return s.k, nil
	}
	k, err := s.startKeeper()
	if err != nil {
		return nil, err
	}
	s.k = k
	return k, nil
}

// event applies one line from keeper k.
func (s *Supervisor) event(k *link, m msg) {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c == nil || c.link != k || c.id != m.Term {
		return // a term Stop is already done with (perhaps with the same token)
	}
	switch m.Op {
	case opStarted:
		c.pid = m.PID
		closeOnce(c.started)
		s.log.Info("child started", "pid", m.PID, "token", m.Token)
	case opFailed:
		if m.Cause == causeLease {
			s.log.Warn("child not started: its lease had ended", "token", m.Token)
		} else {
			s.log.Error("child start failed", "command", s.cfg.Command[0], "err", m.Error, "token", m.Token)
		}
		closeOnce(c.started)
		closeOnce(c.exited)
		closeOnce(c.gone)
		s.report(c, Exit{Token: m.Token, Code: m.Code, LeaseEnded: m.Cause == causeLease})
	case opExited:
		lvl, attrs := slog.LevelInfo, []any{"pid", m.PID, "code", m.Code, "token", m.Token}
		if m.Cause == causeLease {
			lvl, attrs = slog.LevelWarn, append(attrs, "cause", "the keeper stopped it at its lease end")
		}
		s.log.Log(context.Background(), lvl, "child exited", attrs...)
		closeOnce(c.exited)
		s.report(c, Exit{Token: m.Token, Code: m.Code, LeaseEnded: m.Cause == causeLease})
	case opGone:
		// Twice if Stop asked after the keeper had already reported it.
		if !isClosed(c.gone) {
			s.log.Debug("child tree gone", "token", m.Token)
			close(c.gone)
		}
	}
}

// keeperDied ends the term of a keeper that died. The kernel SIGKILLed the
// command with it (Pdeathsig), and what the keeper was subreaper of is
// ours now (adopt): all of it is killed and reaped here, whether or not
// leaderd had learnt the command's pid, and only then is the tree reported
// gone (so elect releases the key only then). The end is reported as an
// exit.
func (s *Supervisor) keeperDied(k *link, err error) {
	s.mu.Lock()
	k.broken = true
	c := s.cur
	if c != nil && c.link != k {
		c = nil
	}
	s.mu.Unlock()
	if !k.closing() {
		s.log.Error("keeper died", "err", err)
	}
	if c == nil || isClosed(c.gone) {
		return
	}
	closeOnce(c.started)
	if !isClosed(c.exited) {
		if c.pid != 0 {
			s.log.Error("child exited with its keeper", "pid", c.pid, "code", 128+int(syscall.SIGKILL), "token", c.token)
		}
		close(c.exited)
		s.report(c, Exit{Token: c.token, Code: 128 + int(syscall.SIGKILL)})
	}
	killLeftovers(s.log, c.token)
	close(c.gone)
}

// A term's channels are closed only by its link's reader goroutine (or by
// Start before the term has a link), so a check before closing is enough.
func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func closeOnce(ch chan struct{}) {
	if !isClosed(ch) {
		close(ch)
	}
}
