package child

import (
	"os"
	"syscall"
	"time"
	"unsafe"
)

// KeeperCommand is the hidden leaderd command that runs the keeper:
// leaderd's main hands `leaderd __keeper …` to Keep before anything else.
const KeeperCommand = "__keeper"

// The keeper's pipes: it reads commands on fd 3 and writes events on fd 4.
const (
	fdCommands = 3
	fdEvents   = 4
)

// Ops of the protocol. leaderd → keeper: start, lease, stop, signal.
// keeper → leaderd: ready, started, failed, exited, gone. Every op but
// ready names its term by Term, the Supervisor's sequence number of the
// Start, and both sides match on it: the fencing token (Token, carried for
// the logs) can repeat when Consul lost its state, so a late answer for an
// old term could otherwise end a new term with the same token.
const (
	opStart  = "start"  // Term, Token, Env, LeaseEnd, KillTimeout: run the command for a term
	opLease  = "lease"  // Term, LeaseEnd: the term's lease now ends then
	opStop   = "stop"   // Term, Signal, KillTimeout: stop the term's command
	opSignal = "signal" // Term, Signal: forward a signal to the command's group

	opReady   = "ready"   // the keeper is set up (first line it writes)
	opStarted = "started" // Term, PID
	opFailed  = "failed"  // Term, Code (126/127), Error; Cause "lease" if the lease had ended
	opExited  = "exited"  // Term, PID, Code, Cause: the command (group leader) exited and was reaped
	opGone    = "gone"    // Term: the command's whole tree is dead and reaped
)

// Causes of an exit or a failed start.
const (
	causeSelf  = ""      // the command exited by itself
	causeStop  = "stop"  // leaderd asked
	causeLease = "lease" // the keeper enforced the lease
	causeEOF   = "eof"   // leaderd is gone
)

// msg is one JSON line of the protocol, in either direction; Op says which
// fields mean something. Env may hold secrets passed on with -pass-env: a
// msg is never logged.
type msg struct {
	Op          string        `json:"op"`
	Term        uint64        `json:"term"` // the Supervisor's sequence number of the Start, from 1
	Token       uint64        `json:"token"`
	Env         []string      `json:"env,omitempty"`
	LeaseEnd    int64         `json:"lease_end,omitempty"` // CLOCK_MONOTONIC, ns
	KillTimeout time.Duration `json:"kill_timeout,omitempty"`
	Signal      int           `json:"signal,omitempty"`
	PID         int           `json:"pid,omitempty"`
	Code        int           `json:"code"`
	Cause       string        `json:"cause,omitempty"`
	Error       string        `json:"error,omitempty"`
}

// monoNow reads CLOCK_MONOTONIC, the clock of Go's monotonic time readings
// and timers on Linux, so leaderd and the keeper agree on it.
func monoNow() int64 {
	var ts syscall.Timespec
	const clockMonotonic = 1
	_, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		panic("clock_gettime(CLOCK_MONOTONIC): " + errno.Error())
	}
	return ts.Nano()
}

// monoAt turns t (with a monotonic reading) into CLOCK_MONOTONIC ns.
func monoAt(t time.Time) int64 { return monoNow() + int64(time.Until(t)) }

// exitCode is the shell's code for a wait status: 128+n if killed by
// signal n.
func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// SignalName is the conventional name (SIGTERM), stable in logs; the
// syscall package only has descriptions ("terminated").
func SignalName(sig os.Signal) string {
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
