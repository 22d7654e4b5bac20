package child

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// keeperReady bounds the wait for a new keeper's first line.
const keeperReady = 10 * time.Second

// startKeeper starts a keeper process and waits for its first line.
func (s *Supervisor) startKeeper() (*link, error) {
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start keeper: %w", err)
	}
	evR, evW, err := os.Pipe()
	if err != nil {
		cmdR.Close()
		cmdW.Close()
		return nil, fmt.Errorf("start keeper: %w", err)
	}
	level := s.cfg.LogLevel
	if level == "" {
		level = "info"
	}
	args := append([]string{os.Args[0]}, s.cfg.KeeperArgs...)
	args = append(args, "-log-format", s.cfg.LogFormat, "-log-level", level, "--")
	cmd := &exec.Cmd{
		Path:       s.cfg.KeeperPath,
		Args:       append(args, s.cfg.Command...),
		Env:        s.kept,
		Stdout:     s.cfg.Stdout,
		Stderr:     s.cfg.Stderr,
		ExtraFiles: []*os.File{cmdR, evW}, // fd 3 and 4
		// Its own group: a signal to leaderd's group must not reach it.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if s.cfg.Stdin != nil {
		// An *os.File is handed over as fd 0 itself, with no copying
		// goroutine, and the keeper's command inherits it.
		cmd.Stdin = s.cfg.Stdin
	}
	err = cmd.Start()
	cmdR.Close()
	evW.Close()
	if err != nil {
		cmdW.Close()
		evR.Close()
		return nil, fmt.Errorf("start keeper: %w", err)
	}
	k := &link{cmd: cmd, w: cmdW, wake: make(chan struct{}, 1), dead: make(chan struct{})}
	dec := json.NewDecoder(evR)
	ready := make(chan error, 1)
	go func() {
		var m msg
		if err := dec.Decode(&m); err != nil || m.Op != opReady {
			ready <- fmt.Errorf("keeper did not start (%v)", err)
			return
		}
		ready <- nil
	}()
	timer := time.NewTimer(keeperReady)
	defer timer.Stop()
	select {
	case err = <-ready:
	case <-timer.C:
		err = fmt.Errorf("keeper not ready after %v", keeperReady)
	}
	if err != nil {
		_ = cmd.Process.Kill()
		cmdW.Close()
		evR.Close()
		_ = cmd.Wait()
		return nil, fmt.Errorf("start keeper: %w", err)
	}
	go k.write()
	go func() {
		for {
			var m msg
			if err := dec.Decode(&m); err != nil {
				break
			}
			s.event(k, m)
		}
		evR.Close()
		err := cmd.Wait()
		s.keeperDied(k, err)
		close(k.dead)
	}()
	return k, nil
}

// link is leaderd's end of the pipes to one keeper process. A writer
// goroutine writes what send and setLease leave, so no caller blocks on a
// keeper that is slow or stopped.
type link struct {
	cmd    *exec.Cmd
	w      io.WriteCloser
	broken bool // it died; guarded by Supervisor.mu

	mu     sync.Mutex
	queue  []msg
	lease  *msg // the latest lease end not yet written
	closed bool // close was called: write what is queued, then close w
	wake   chan struct{}
	dead   chan struct{} // closed once the keeper exited and was reaped
}

func (k *link) send(m msg) {
	k.mu.Lock()
	k.queue = append(k.queue, m)
	k.mu.Unlock()
	k.poke()
}

func (k *link) setLease(m msg) {
	k.mu.Lock()
	k.lease = &m
	k.mu.Unlock()
	k.poke()
}

func (k *link) close() {
	k.mu.Lock()
	k.closed = true
	k.mu.Unlock()
	k.poke()
}

func (k *link) closing() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.closed
}

func (k *link) poke() {
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// write writes in order what is queued, then the latest lease end: a lease
// end for a term the keeper no longer runs is ignored there.
func (k *link) write() {
	defer k.w.Close()
	enc := json.NewEncoder(k.w)
	for {
		select {
		case <-k.wake:
		case <-k.dead:
			return
		}
		k.mu.Lock()
		queue, lease, closed := k.queue, k.lease, k.closed
		k.queue, k.lease = nil, nil
		k.mu.Unlock()
		for _, m := range queue {
			_ = enc.Encode(m) // a dead keeper is noticed by the reader
		}
		if lease != nil {
			_ = enc.Encode(*lease)
		}
		if closed {
			return
		}
	}
}
