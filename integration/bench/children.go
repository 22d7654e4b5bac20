package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/leaderd/leaderd/integration/history"
)

// childEvent is one line a child wrote (see the child command), or one the
// benchmark adds when it saw a child die without a word (SIGKILL).
type childEvent struct {
	Kind  string // "start", "exit", or "gone" (added by the benchmark)
	At    time.Time
	PID   int
	Label string // the candidate process that ran the child
	How   string // exit: "usr1", "term", "max-life"; gone: "killed", "orphan"
}

// hub collects every child's lines from the shared log file, in order, so
// experiments can wait for "a child of this series started" without
// sleeping.
type hub struct {
	mu     sync.Mutex
	events []childEvent
	wake   chan struct{} // closed and replaced on every event
}

func newHub() *hub { return &hub{wake: make(chan struct{})} }

func (h *hub) add(ev childEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, ev)
	close(h.wake)
	h.wake = make(chan struct{})
}

// mark is the number of events so far: wait(…, mark, …) ignores them.
func (h *hub) mark() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.events)
}

func (h *hub) all() []childEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]childEvent(nil), h.events...)
}

// wait returns the first event at or after index from that matches.
func (h *hub) wait(ctx context.Context, from int, what string, match func(childEvent) bool) (childEvent, error) {
	for i := from; ; {
		h.mu.Lock()
		evs, wake := h.events, h.wake
		h.mu.Unlock()
		for ; i < len(evs); i++ {
			if match(evs[i]) {
				return evs[i], nil
			}
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return childEvent{}, fmt.Errorf("waiting for %s: %w", what, context.Cause(ctx))
		}
	}
}

// running returns the children that started and haven't ended, by label.
func (h *hub) running(prefix string) map[string]childEvent {
	out := map[string]childEvent{}
	for _, ev := range h.all() {
		if !strings.HasPrefix(ev.Label, prefix) {
			continue
		}
		if ev.Kind == "start" {
			out[ev.Label] = ev
		} else if cur, ok := out[ev.Label]; ok && cur.PID == ev.PID {
			delete(out, ev.Label)
		}
	}
	return out
}

// tail follows the children's log file until ctx ends. Children append one
// line per write; polling every 2ms costs nothing and delays only when the
// benchmark learns of an event, never the timestamps, which the children
// take themselves.
func (h *hub) tail(ctx context.Context, path string) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o644)
	if err != nil {
		panic(err) // created by the caller a moment ago
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var partial string
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		for {
			line, err := r.ReadString('\n')
			partial += line
			if err == io.EOF {
				break
			}
			if ev, ok := parseChildLine(strings.TrimSpace(partial)); ok {
				h.add(ev)
			}
			partial = ""
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// parseChildLine reads "start <ns> <pid> <label>" or
// "exit <ns> <pid> <label> <how>".
func parseChildLine(s string) (childEvent, bool) {
	f := strings.Fields(s)
	if len(f) < 4 || (f[0] != "start" && f[0] != "exit") {
		return childEvent{}, false
	}
	ns, err1 := strconv.ParseInt(f[1], 10, 64)
	pid, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return childEvent{}, false
	}
	ev := childEvent{Kind: f[0], At: time.Unix(0, ns), PID: pid, Label: f[3]}
	if len(f) > 4 {
		ev.How = f[4]
	}
	return ev, true
}

// awaitGone polls until pid is dead, for at most d; it returns when it
// died (or the zero time if it was still alive at the end).
func awaitGone(pid int, d time.Duration) time.Time {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if history.Gone(pid) {
			return time.Now()
		}
		time.Sleep(500 * time.Microsecond) // polling a /proc file; nothing to wait on
	}
	return time.Time{}
}

// awaitEnd waits for a child to end: its exit line, or, if it was killed
// before it could write one, the moment the benchmark saw it gone (then
// recorded as a "gone" event, How "killed").
func (b *bench) awaitEnd(ctx context.Context, mark int, child childEvent) (childEvent, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	line := make(chan childEvent, 1)
	go func() {
		ev, err := b.hub.wait(wctx, mark, "exit line", func(ev childEvent) bool {
			return ev.Kind == "exit" && ev.PID == child.PID
		})
		if err == nil {
			line <- ev
		}
	}()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case ev := <-line:
			return ev, nil
		case <-ctx.Done():
			return childEvent{}, fmt.Errorf("waiting for child %s (pid %d) to end: %w", child.Label, child.PID, context.Cause(ctx))
		case <-tick.C:
		}
		if !history.Gone(child.PID) {
			continue
		}
		died := time.Now()
		// An exit line is in the file before the process ends; the tail
		// reads it within milliseconds.
		select {
		case ev := <-line:
			return ev, nil
		case <-time.After(100 * time.Millisecond):
		}
		ev := childEvent{Kind: "gone", At: died, PID: child.PID, Label: child.Label, How: "killed"}
		b.hub.add(ev)
		return ev, nil
	}
}
