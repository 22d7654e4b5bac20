package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/leaderd/leaderd/elect/child"
	"github.com/leaderd/leaderd/integration/devconsul"
	"github.com/leaderd/leaderd/integration/history"
)

// bench is what every experiment shares: the binaries, the agent, the
// proxy, the children's log, and every candidate process started (so none
// outlives the run).
type bench struct {
	leaderd  string // built from this checkout
	consul   string
	child    string
	work     string // scratch directory
	childLog string
	agent    *devconsul.Agent
	proxy    *proxy
	hub      *hub
	log      *slog.Logger

	mu    sync.Mutex
	cands []*cand
	seq   int // series started
}

// candidateLogLevel is leaderd's -log-level (-debug-leaderd).
var candidateLogLevel = "info"

// flavor is a tool and how it is run.
type flavor struct {
	Name string // as the tables show it
	Slug string // in file names and child labels: no spaces
	Tool string
	Args []string // extra flags
	// Cycle is how often the request that keeps a crashed leader's
	// session alive is sent (CycleKind: the session renew, or the check
	// pass with fast crash detection). Crash runs kill at points spread
	// evenly over it.
	Cycle     time.Duration
	CycleKind string
	// Window is how long after the last keep-alive Consul can let another
	// candidate in: 2×TTL (the session timer) plus lock-delay, or with fast
	// crash detection the check TTL plus lock-delay.
	Window time.Duration
}

// cand is one candidate process: leaderd run or consul lock, talking to
// Consul through its own proxy port, running the child while it leads.
type cand struct {
	label string // "<series>#<slot>.<generation>", also the child's label
	slot  int
	port  *port
	cmd   *exec.Cmd
	done  chan struct{} // closed once it exited and was reaped
}

func (c *cand) pid() int { return c.cmd.Process.Pid }

func (c *cand) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// start launches one candidate of flavor f for key (consul lock: the
// prefix; its key is <prefix>/.lock) whose output goes to out.
func (b *bench) start(f flavor, key, label string, slot int, out *os.File) (*cand, error) {
	pt, err := b.proxy.listen()
	if err != nil {
		return nil, err
	}
	childArgs := []string{b.child, "-log", b.childLog, "-label", label}
	var args []string
	switch f.Tool {
	case toolLeaderd:
		args = append([]string{b.leaderd, "run", "-consul-addr", pt.Addr, "-key", key, "-id", label,
			"-listen", "", "-restart", "-log-level", candidateLogLevel}, f.Args...)
		args = append(append(args, "--"), childArgs...)
	case toolConsulLock:
		// -shell=false: exec the child directly, as leaderd does, rather
		// than through sh -c (consul lock's default).
		args = append([]string{b.consul, "lock", "-http-addr=" + pt.Addr, "-shell=false", "-name=" + label}, f.Args...)
		args = append(append(args, key), childArgs...)
	default:
		return nil, fmt.Errorf("unknown tool %q", f.Tool)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = out, out
	c := &cand{label: label, slot: slot, port: pt, cmd: cmd}
	if c.done, err = startLocked(cmd); err != nil {
		pt.close()
		return nil, fmt.Errorf("start %s: %w", f.Tool, err)
	}
	b.mu.Lock()
	b.cands = append(b.cands, c)
	b.mu.Unlock()
	return c, nil
}

// cleanEnv is our environment without anything that would point a
// candidate elsewhere or change its defaults.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CONSUL_") || strings.HasPrefix(kv, "LEADERD_") || strings.HasPrefix(kv, "NOMAD_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// stop asks a candidate to stop (SIGTERM: it stops its child and releases)
// and waits, killing it after 15s.
func (c *cand) stop() {
	if c.exited() {
		return
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// stopAll stops every candidate still running, in parallel, then kills any
// child that outlived its supervisor (consul lock after a SIGKILL).
func (b *bench) stopAll() {
	b.mu.Lock()
	cands := b.cands
	b.cands = nil
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range cands {
		wg.Go(c.stop)
	}
	wg.Wait()
	for _, c := range cands {
		c.port.close()
	}
	for _, ev := range b.hub.running("") {
		if !history.Gone(ev.PID) {
			syscall.Kill(ev.PID, syscall.SIGTERM)
		}
	}
}

// startLocked starts cmd with Pdeathsig through child.StartLocked, so no
// candidate survives the benchmark being killed. done is closed once cmd
// exited and was reaped.
func startLocked(cmd *exec.Cmd) (done chan struct{}, err error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	done = make(chan struct{})
	if err := child.StartLocked(cmd.Start, done); err != nil {
		return nil, err
	}
	go func() {
		cmd.Wait()
		close(done)
	}()
	return done, nil
}

// waitCtx waits for ch or ctx.
func waitCtx(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
