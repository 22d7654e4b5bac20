// Package hooks runs leaderd run's -hook: a shell line run on every role
// change, as keepalived's notify_master/notify_backup or Patroni's
// on_role_change, to move a VIP, flip DNS or page someone.
//
// The runner is fed from the election's ordered event stream, never from
// the election's goroutine, so a slow or hung hook can't delay a step-down
// or a takeover: a queue keeps the hooks in order and one goroutine runs
// them one at a time, each bounded by its timeout. Their failures are
// logged and counted (through Config.Count), never fatal.
//
// The contract with the hook is its environment: LEADERD_ROLE (leader,
// follower, stepped_down), LEADERD_REASON, LEADERD_TOKEN,
// LEADERD_LEADER_ID, LEADERD_KEY and LEADERD_ID, on top of leaderd's own
// environment without the secrets package child withholds.
package hooks

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/leaderd/leaderd/elect"
	"github.com/leaderd/leaderd/elect/child"
)

const (
	// DefaultTimeout bounds a hook when Config.Timeout is 0.
	DefaultTimeout = 30 * time.Second
	// hookShell runs the -hook line: one string is one shell line.
	hookShell = "/bin/sh"
	// maxHookQueue bounds the hooks waiting behind a slow one. When it is
	// full the oldest waiting hook is dropped (and counted): the latest
	// role is the one that matters.
	maxHookQueue = 64
	// hookWaitDelay bounds the wait for a hook's output pipes after it
	// exited or was killed (a grandchild may hold them).
	hookWaitDelay = time.Second
)

// Hook roles, LEADERD_ROLE.
const (
	roleLeader      = "leader"       // this instance was elected
	roleFollower    = "follower"     // another instance leads: once per new leader
	roleSteppedDown = "stepped_down" // this instance stopped leading; LEADERD_REASON says why
)

// Hook results, passed to Config.Count (the result label of
// leaderd_hooks_total).
const (
	ResultOK      = "ok"
	ResultFailed  = "failed"  // non-zero exit, or could not start
	ResultTimeout = "timeout" // killed after the timeout
	ResultDropped = "dropped" // never run: the queue was full, or Close gave up
)

// Results lists every result, so a counter can show each at 0.
var Results = []string{ResultOK, ResultFailed, ResultTimeout, ResultDropped}

// hookCall is one role change to tell the hook about.
type hookCall struct {
	Role     string
	Reason   string
	Token    uint64
	LeaderID string
}

// env is the call's LEADERD_* environment.
func (c hookCall) env(key, id string) []string {
	return []string{
		"LEADERD_ROLE=" + c.Role,
		"LEADERD_REASON=" + c.Reason,
		"LEADERD_TOKEN=" + strconv.FormatUint(c.Token, 10),
		"LEADERD_LEADER_ID=" + c.LeaderID,
		"LEADERD_KEY=" + key,
		"LEADERD_ID=" + id,
	}
}

// Runner runs the hook line for each role change, in order.
type Runner struct {
	line           string
	timeout        time.Duration
	key, id        string
	env            []string // leaderd's, without the withheld secrets
	stdout, stderr io.Writer
	log            *slog.Logger
	count          func(result string)

	// Owned by the goroutine that calls Event.
	lastLeader string // session of the last leader a follower hook ran for

	mu     sync.Mutex
	queue  []hookCall
	closed bool
	wake   chan struct{}
	ctx    context.Context // canceled when close gives up waiting
	cancel context.CancelFunc
	done   chan struct{} // closed when the worker returns
}

// Config of a Runner.
type Config struct {
	Line    string        // the shell line, run by /bin/sh -c; "": no hooks
	Timeout time.Duration // a hook still running after this is killed; 0: DefaultTimeout
	Key, ID string        // LEADERD_KEY and LEADERD_ID: the election's key, this candidate

	Env            []string // leaderd's environment, usually os.Environ()
	Pass           []string // names of child.Withheld the hook gets anyway (-pass-env)
	Stdout, Stderr io.Writer
	Logger         *slog.Logger
	Count          func(result string) // each hook's result, for metrics; nil: not counted
}

// New starts the runner of cfg.Line; nil without one (every method of a
// nil runner does nothing).
func New(cfg Config) *Runner {
	if cfg.Line == "" {
		return nil
	}
	var env []string
	for _, kv := range cfg.Env {
		name, _, _ := strings.Cut(kv, "=")
		if slices.Contains(child.Withheld, name) && !slices.Contains(cfg.Pass, name) {
			continue // the hook gets leaderd's secrets only when -pass-env names them
		}
		if slices.Contains(hookVars, name) {
			continue // set per call
		}
		env = append(env, kv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	count := cfg.Count
	if count == nil {
		count = func(string) {}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	h := &Runner{
		line: cfg.Line, timeout: timeout,
		key: cfg.Key, id: cfg.ID, env: env,
		stdout: cfg.Stdout, stderr: cfg.Stderr, log: log.With("component", "hook"), count: count,
		wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel, done: make(chan struct{}),
	}
	go h.work()
	return h
}

var hookVars = []string{"LEADERD_ROLE", "LEADERD_REASON", "LEADERD_TOKEN", "LEADERD_LEADER_ID", "LEADERD_KEY", "LEADERD_ID"}

// Event queues the hook for ev if it is a role change. It never blocks.
// Call it from one goroutine, in the events' order.
func (h *Runner) Event(ev elect.Event) {
	if h == nil {
		return
	}
	var c hookCall
	switch ev.Kind {
	case elect.KindElected:
		c = hookCall{Role: roleLeader, Token: ev.Token, LeaderID: h.id}
		h.lastLeader = ""
	case elect.KindSteppedDown:
		c = hookCall{Role: roleSteppedDown, Reason: string(ev.Reason), Token: ev.Token, LeaderID: h.id}
		h.lastLeader = ""
	case elect.KindLeaderChanged:
		// Elect reports these only while we don't lead; nil is "nobody
		// leads", which is no role change.
		if ev.Leader == nil || ev.Leader.Session == h.lastLeader {
			return
		}
		h.lastLeader = ev.Leader.Session
		c = hookCall{Role: roleFollower, Token: ev.Leader.Token, LeaderID: ev.Leader.ID}
	default:
		return
	}
	h.push(c)
}

func (h *Runner) push(c hookCall) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	var dropped *hookCall
	if len(h.queue) >= maxHookQueue {
		d := h.queue[0]
		dropped = &d
		h.queue = slices.Delete(h.queue, 0, 1)
	}
	h.queue = append(h.queue, c)
	h.mu.Unlock()
	if dropped != nil {
		h.log.Warn("hook queue full; dropped the oldest", "role", dropped.Role, "token", dropped.Token)
		h.count(ResultDropped)
	}
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Close runs what is queued (a stepped_down at shutdown must still move
// the VIP away) and returns once it is done, or at most wait later: then
// the running hook's group is killed and the rest is dropped.
func (h *Runner) Close(wait time.Duration) {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-h.done:
		return
	case <-timer.C:
	}
	h.cancel()
	<-h.done
	h.mu.Lock()
	left := len(h.queue)
	h.queue = nil
	h.mu.Unlock()
	if left > 0 {
		h.log.Warn("exiting; hooks not run", "count", left)
		for range left {
			h.count(ResultDropped)
		}
	}
}

// work runs queued hooks one at a time until closed and drained.
func (h *Runner) work() {
	defer close(h.done)
	for {
		h.mu.Lock()
		if len(h.queue) == 0 || h.ctx.Err() != nil {
			closed := h.closed
			h.mu.Unlock()
			if closed {
				return
			}
			<-h.wake
			continue
		}
		c := h.queue[0]
		h.queue = slices.Delete(h.queue, 0, 1)
		h.mu.Unlock()
		h.count(h.run(c))
	}
}

// run runs one hook in its own process group and returns its result.
func (h *Runner) run(c hookCall) string {
	ctx, cancel := context.WithTimeout(h.ctx, h.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, hookShell, "-c", h.line)
	cmd.Env = append(slices.Clip(h.env), c.env(h.key, h.id)...)
	cmd.Stdout, cmd.Stderr = h.stdout, h.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// On timeout the whole group goes, not only the shell.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = hookWaitDelay
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start).Round(time.Millisecond)
	attrs := []any{"role", c.Role, "reason", c.Reason, "token", c.Token, "took", took}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		h.log.Warn("hook timed out; killed its process group", append(attrs, "timeout", h.timeout)...)
		return ResultTimeout
	case ctx.Err() != nil:
		h.log.Warn("hook killed: leaderd is exiting", attrs...)
		return ResultFailed
	case errors.As(err, &ee):
		h.log.Warn("hook failed", append(attrs, "code", exitCodeOf(ee))...)
		return ResultFailed
	case err != nil:
		h.log.Warn("hook failed", append(attrs, "err", err)...)
		return ResultFailed
	}
	h.log.Info("hook ran", attrs...)
	return ResultOK
}

// exitCodeOf is the shell's convention: 128+n when killed by signal n.
func exitCodeOf(ee *exec.ExitError) int {
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ee.ExitCode()
}

// Timeout is how long a hook may run, and so how long Close should wait
// for the one running (0 for a nil runner).
func (h *Runner) Timeout() time.Duration {
	if h == nil {
		return 0
	}
	return h.timeout
}
