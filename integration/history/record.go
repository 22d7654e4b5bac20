package history

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// BadRecord is a line that should have been a record and wasn't: Check
// reports it (a garbled history proves nothing).
const BadRecord Kind = "bad_record"

// ChildLogEnv names the environment variable that tells ChildScript where
// to append its records.
const ChildLogEnv = "HISTORY_CHILD_LOG"

// ChildLifetimeEnv, when set (a sleep(1) duration such as "0.5"), makes
// ChildScript exit by itself after that long with code $HISTORY_CHILD_EXIT
// (default 0), recording "exit" first.
const (
	ChildLifetimeEnv = "HISTORY_CHILD_LIFETIME"
	ChildExitEnv     = "HISTORY_CHILD_EXIT"
)

// ChildStopDelayEnv, when set (a sleep(1) duration such as "1"), makes
// ChildScript take that long to stop after SIGTERM/SIGINT, as most real
// programs do (they finish a request, flush, close connections). It
// records "stop" after the delay, right before exiting.
const ChildStopDelayEnv = "HISTORY_CHILD_STOP_DELAY"

// ChildScript is the child for `leaderd run -- sh -c ChildScript`. It
// appends "start <id> <token> <pid> <unix-ns>" once its traps are set, and
// "stop …" from its SIGTERM/SIGINT trap right before exiting (after
// $HISTORY_CHILD_STOP_DELAY, if set), or "exit …" before exiting by itself,
// to $HISTORY_CHILD_LOG. `>>` opens the file
// with O_APPEND and each record is one short write, so records of
// concurrent children never interleave. The time is read by date(1) just
// before the write; a record is the child's first or last act. A signal
// that arrives while date runs cuts its output short (the shell stops
// reading it): rec then reads the time again.
const ChildScript = `rec() {
	t=$(date +%s%N)
	for _ in 1 2; do [ -n "$t" ] || t=$(date +%s%N); done
	echo "$1 $LEADERD_ID $LEADERD_TOKEN $$ $t" >> "$HISTORY_CHILD_LOG"
}
trap 'if [ -n "$HISTORY_CHILD_STOP_DELAY" ]; then sleep "$HISTORY_CHILD_STOP_DELAY"; fi; rec stop; exit 0' TERM INT
rec start
if [ -n "$HISTORY_CHILD_LIFETIME" ]; then
	sleep "$HISTORY_CHILD_LIFETIME" & wait $!
	rec exit
	exit "${HISTORY_CHILD_EXIT:-0}"
fi
while :; do sleep 1 & wait $!; done`

// ParseChild parses one record of ChildScript.
func ParseChild(line string) (Event, error) {
	f := strings.Fields(line)
	if len(f) != 5 {
		return Event{}, fmt.Errorf("child record %q: want 5 fields: kind id token pid unix-ns", line)
	}
	var kind Kind
	switch f[0] {
	case "start":
		kind = ChildStart
	case "stop", "exit":
		kind = ChildStop
	default:
		return Event{}, fmt.Errorf("child record %q: unknown kind %q", line, f[0])
	}
	tok, err1 := strconv.ParseUint(f[2], 10, 64)
	pid, err2 := strconv.Atoi(f[3])
	ns, err3 := strconv.ParseInt(f[4], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return Event{}, fmt.Errorf("child record %q: %w", line, err)
	}
	e := Event{At: time.Unix(0, ns), Candidate: f[1], Kind: kind, Token: tok, PID: pid}
	if kind == ChildStop {
		e.Note = f[0]
	}
	return e, nil
}

// leaderdRecord is the part of a leaderd JSON log record we read.
type leaderdRecord struct {
	Time    time.Time `json:"time"`
	Msg     string    `json:"msg"`
	Token   uint64    `json:"token"`
	PID     int       `json:"pid"`
	Reason  string    `json:"reason"`
	Leader  string    `json:"leader"`
	Code    *int      `json:"code"`
	Latency int64     `json:"latency"` // slog writes durations as nanoseconds
}

// ParseLeaderd turns one line of `leaderd run -log-format json` (stderr) of
// candidate's process pid into an event; ok is false for lines that record
// nothing we check.
func ParseLeaderd(candidate string, pid int, line []byte) (e Event, ok bool) {
	var r leaderdRecord
	if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &r) != nil || r.Time.IsZero() {
		return Event{}, false
	}
	e = Event{At: r.Time, Candidate: candidate, PID: pid, Token: r.Token}
	switch r.Msg {
	case "elected":
		e.Kind = Elected
	case "stepping down":
		e.Kind, e.Note = SteppedDown, r.Reason
	case "leader changed":
		e.Kind, e.Note = LeaderSeen, r.Leader
	case "no leader":
		e.Kind, e.Token = LeaderSeen, 0
	case "child started":
		e.Kind, e.PID = ChildSpawned, r.PID
	case "child exited":
		e.Kind, e.PID = ChildReaped, r.PID
		if r.Code != nil {
			e.Note = "code=" + strconv.Itoa(*r.Code)
		}
	case "session created":
		// Logged after the answer: later than the send, so a lease computed
		// from it is longer than leaderd's own. Stricter for the checks.
		e.Kind, e.Token, e.Note = Proof, 0, "create"
	case "session renewed":
		e.Kind, e.Token, e.Note = Proof, 0, "renew"
		e.At = e.At.Add(-time.Duration(r.Latency))
	default:
		return Event{}, false
	}
	return e, true
}

// ChildLog follows the file ChildScript appends to (FollowChildLog).
type ChildLog struct {
	h      *History
	path   string
	every  time.Duration
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup

	mu      sync.Mutex // guards off and partial: Flush and the tail goroutine both read
	off     int64
	partial []byte
}

// FollowChildLog tails the file ChildScript appends to (it need not exist
// yet), adds every record to h, and watches every child that starts until
// it is gone (WatchChild). Reading and watching poll every `every`: nothing
// announces another process's writes or death to us. Stop it when done.
func (h *History) FollowChildLog(path string, every time.Duration) *ChildLog {
	ctx, cancel := context.WithCancel(context.Background())
	l := &ChildLog{h: h, path: path, every: every, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				l.Flush()
				return
			case <-t.C:
				l.Flush()
			}
		}
	}()
	return l
}

// Flush reads the records written so far into the history now.
func (l *ChildLog) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := os.Open(l.path)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := f.Seek(l.off, io.SeekStart); err != nil {
		return
	}
	b, _ := io.ReadAll(f)
	l.off += int64(len(b))
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		e, err := ParseChild(line)
		if err != nil {
			l.h.Add(Event{Kind: BadRecord, Note: err.Error()})
			continue
		}
		l.h.Add(e)
		if e.Kind == ChildStart && l.ctx.Err() == nil {
			l.wg.Go(func() { l.h.WatchChild(l.ctx, e.Candidate, e.Token, e.PID, l.every) })
		}
	}
}

// Stop reads the file one last time and ends the tail and the watches.
func (l *ChildLog) Stop() {
	l.cancel()
	<-l.done
	l.wg.Wait()
}
