package demo

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/leaderd/leaderd/elect"
)

// view prints the demo's events as they come, in one stream, and
// remembers them so the demo can wait for a condition and measure.
type view struct {
	out     io.Writer
	start   time.Time
	ch      chan event
	names   []string
	leads   map[string]string // candidate → who it believes leads
	history []event
}

type event struct {
	name string
	ev   elect.Event
	at   time.Time
}

func newView(out io.Writer) *view {
	return &view{out: out, start: time.Now(), ch: make(chan event, 256), leads: map[string]string{}}
}

// follow forwards a candidate's events into the view.
func (v *view) follow(name string, events <-chan elect.Event) {
	v.names = append(v.names, name)
	go func() {
		for ev := range events {
			v.ch <- event{name: name, ev: ev, at: ev.At}
		}
	}()
}

func (v *view) say(format string, a ...any) { fmt.Fprintf(v.out, format+"\n", a...) }

// take prints and records one event.
func (v *view) take(e event) {
	v.history = append(v.history, e)
	var what string
	switch e.ev.Kind {
	case elect.KindElected:
		v.leads[e.name] = e.name
		what = fmt.Sprintf("elected, fencing token %d", e.ev.Token)
	case elect.KindLeaderChanged:
		if e.ev.Leader == nil {
			v.leads[e.name] = ""
			what = "sees no leader"
		} else {
			v.leads[e.name] = e.ev.Leader.ID
			what = fmt.Sprintf("follows %s (token %d)", e.ev.Leader.ID, e.ev.Leader.Token)
		}
	case elect.KindSteppedDown:
		v.leads[e.name] = ""
		what = fmt.Sprintf("stepped down (%s)", e.ev.Reason)
	case elect.KindError:
		if e.ev.Attempt != 1 {
			return // one line per streak of failures
		}
		what = fmt.Sprintf("consul error, retrying: %v", e.ev.Err)
	default:
		what = string(e.ev.Kind)
	}
	fmt.Fprintf(v.out, "  %7.3fs  %-8s %s\n", e.at.Sub(v.start).Seconds(), e.name, what)
}

// until takes events until cond holds, ctx ends or timeout passes.
func (v *view) until(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for !cond() {
		select {
		case e := <-v.ch:
			v.take(e)
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return fmt.Errorf("%s: not within %v", what, timeout)
		}
	}
	return nil
}

// waitElected waits for a candidate other than not to be elected at or
// after after.
func (v *view) waitElected(ctx context.Context, not string, after time.Time, timeout time.Duration) (event, error) {
	var found event
	err := v.until(ctx, timeout, "a new leader", func() bool {
		for _, e := range v.history {
			if e.ev.Kind == elect.KindElected && e.name != not && !e.at.Before(after) {
				found = e
				return true
			}
		}
		return false
	})
	return found, err
}

// waitAllFollow waits until every other candidate follows leader.
func (v *view) waitAllFollow(ctx context.Context, leader string, timeout time.Duration) error {
	return v.until(ctx, timeout, "every candidate following "+leader, func() bool {
		for _, n := range v.names {
			if v.leads[n] != leader {
				return false
			}
		}
		return true
	})
}

// steppedDown finds name's step-down at or after after.
func (v *view) steppedDown(name string, after time.Time) (event, bool) {
	for _, e := range v.history {
		if e.ev.Kind == elect.KindSteppedDown && e.name == name && !e.at.Before(after) {
			return e, true
		}
	}
	return event{}, false
}

// drain prints events until done is closed.
func (v *view) drain(done <-chan struct{}) {
	for {
		select {
		case e := <-v.ch:
			v.take(e)
		case <-done:
			return
		}
	}
}
