package history

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// WatchChild polls pid every `every` until it is dead, then records
// ChildGone at the moment it was seen dead (an upper bound on its death),
// or returns when ctx ends.
func (h *History) WatchChild(ctx context.Context, candidate string, token uint64, pid int, every time.Duration) {
	w := NewProcWatch(pid)
	t := time.NewTicker(every)
	defer t.Stop()
	for w.Alive() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	h.Add(Event{Candidate: candidate, Kind: ChildGone, Token: token, PID: pid})
}

// ProcWatch tells whether one process is still alive, by pid, without
// being fooled by pid reuse: it remembers the process's start time.
type ProcWatch struct {
	pid   int
	start string // field 22 of /proc/<pid>/stat when first seen; "" if it was already gone
}

// NewProcWatch starts watching pid, which should be alive now.
func NewProcWatch(pid int) *ProcWatch {
	w := &ProcWatch{pid: pid}
	if st, start, ok := procStat(pid); ok && !dead(st) {
		w.start = start
	}
	return w
}

// Alive reports whether the process is alive: it exists, is the same
// process (same start time), and is not a zombie. A stopped process is
// alive.
func (w *ProcWatch) Alive() bool {
	if w.start == "" {
		return false
	}
	st, start, ok := procStat(w.pid)
	return ok && start == w.start && !dead(st)
}

// Stopped reports whether the process is alive and stopped (SIGSTOP).
func (w *ProcWatch) Stopped() bool {
	st, start, ok := procStat(w.pid)
	return ok && w.start != "" && start == w.start && (st == 'T' || st == 't')
}

// Gone reports whether pid is dead: absent, or a zombie nobody reaped
// (an orphan's new parent may never reap it). Unlike ProcWatch it can't
// tell a reused pid from the process it once was.
func Gone(pid int) bool {
	st, _, ok := procStat(pid)
	return !ok || dead(st)
}

func dead(state byte) bool { return state == 'Z' || state == 'X' || state == 'x' }

// procStat reads a process's state and start time from /proc/<pid>/stat.
// The command name (field 2) may contain spaces and parentheses, so fields
// are counted from the last ')'.
func procStat(pid int) (state byte, start string, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); starttime is field 22, so f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, "", false
	}
	return f[0][0], f[19], true
}
