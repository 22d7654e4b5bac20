package history

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Kind is what an event records.
type Kind string

// Events of a candidate's leaderd (PID is leaderd's, except for the child
// kinds, whose PID is the child's).
const (
	Elected      Kind = "elected"        // won a term; Token
	SteppedDown  Kind = "stepped_down"   // stepping down; Token, Note = reason
	LeaderSeen   Kind = "leader_changed" // a follower saw a new leader; Token, Note = its id ("" none)
	Proof        Kind = "proof"          // a session create or renew was sent that succeeded (debug logs)
	ChildSpawned Kind = "child_spawned"  // leaderd started its child; PID, Token
	ChildReaped  Kind = "child_reaped"   // leaderd reaped its child; PID, Token, Note = exit code
	ProcGone     Kind = "proc_gone"      // the test saw leaderd gone (exited or killed)
)

// Events of a child, as it recorded them itself (ChildScript).
const (
	ChildStart Kind = "child_start" // PID, Token
	ChildStop  Kind = "child_stop"  // its last act; Note = "stop" (signaled) or "exit" (by itself)
)

// Events the test records.
const (
	ChildGone Kind = "child_gone" // the child's pid was seen dead: an upper bound on its death
	Frozen    Kind = "frozen"     // PID seen stopped (state T)
	Resumed   Kind = "resumed"    // PID about to get SIGCONT
	Fault     Kind = "fault"      // a fault injected; Note says which (Candidate may be "")
	Heal      Kind = "heal"       // a fault healed
	Epoch     Kind = "epoch"      // Consul lost its state: tokens may restart low after this
	Note      Kind = "note"       // anything else worth a line in the timeline
)

// Event is one thing that happened. Candidate is "" for test-wide events.
type Event struct {
	At        time.Time
	Candidate string
	Kind      Kind
	Token     uint64
	PID       int
	Note      string
}

func (e Event) String() string {
	s := string(e.Kind)
	if e.Token != 0 {
		s += fmt.Sprintf(" t=%d", e.Token)
	}
	if e.PID != 0 {
		s += fmt.Sprintf(" pid=%d", e.PID)
	}
	if e.Note != "" {
		s += " " + e.Note
	}
	return s
}

// History is a concurrency-safe, append-only list of events that tests can
// wait on.
type History struct {
	mu      sync.Mutex
	start   time.Time
	events  []Event // in the order added
	changed chan struct{}
}

// New returns an empty history whose timeline starts now.
func New() *History {
	return &History{start: time.Now(), changed: make(chan struct{})}
}

// Start is time zero of the timeline.
func (h *History) Start() time.Time { return h.start }

// Add records e; a zero At means now.
func (h *History) Add(e Event) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	h.mu.Lock()
	h.events = append(h.events, e)
	close(h.changed)
	h.changed = make(chan struct{})
	h.mu.Unlock()
}

// Len is the number of events so far: pass it to Wait to skip them.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.events)
}

// Events returns the events sorted by time (ties keep the order added).
func (h *History) Events() []Event {
	h.mu.Lock()
	evs := slices.Clone(h.events)
	h.mu.Unlock()
	Sort(evs)
	return evs
}

// Sort sorts events by time, stably.
func Sort(evs []Event) {
	slices.SortStableFunc(evs, func(a, b Event) int { return a.At.Compare(b.At) })
}

// Wait returns the first event added at position from or later that
// matches, waiting up to timeout for it.
func (h *History) Wait(from int, timeout time.Duration, match func(Event) bool) (Event, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for i := from; ; {
		h.mu.Lock()
		evs, changed := h.events, h.changed
		h.mu.Unlock()
		for ; i < len(evs); i++ {
			if match(evs[i]) {
				return evs[i], nil
			}
		}
		select {
		case <-changed:
		case <-deadline.C:
			return Event{}, fmt.Errorf("history: no matching event within %v", timeout)
		}
	}
}

// Candidates returns the candidates named in evs, in order of first
// appearance.
func Candidates(evs []Event) []string {
	var names []string
	for _, e := range evs {
		if e.Candidate != "" && !slices.Contains(names, e.Candidate) {
			names = append(names, e.Candidate)
		}
	}
	return names
}

func earliest(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if !t.IsZero() && (m.IsZero() || t.Before(m)) {
			m = t
		}
	}
	return m
}
