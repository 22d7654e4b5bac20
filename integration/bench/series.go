package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// series is N candidate slots of one flavor campaigning for one key. A slot
// whose process exits (consul lock when its child exits; a SIGTERMed or
// SIGKILLed leader) is refilled, so there are always waiters.
type series struct {
	b     *bench
	name  string // unique, no spaces: it is part of every child label
	f     flavor
	key   string
	out   *os.File // the candidates' output
	slots []*cand
	gen   int
}

func (b *bench) newSeries(name string, f flavor, n int) (*series, error) {
	b.mu.Lock()
	b.seq++
	if b.seq > 1 { // names must be unique: they key the children's lines
		name = fmt.Sprintf("%s-%d", name, b.seq)
	}
	b.mu.Unlock()
	out, err := os.Create(filepath.Join(b.work, name+".log"))
	if err != nil {
		return nil, err
	}
	return &series{b: b, name: name, f: f, key: "bench/" + name, out: out, slots: make([]*cand, n)}, nil
}

// fill starts a process in every empty or dead slot. It returns the new
// processes.
func (s *series) fill() ([]*cand, error) {
	var started []*cand
	for i, c := range s.slots {
		if c != nil && !c.exited() {
			continue
		}
		s.gen++
		label := s.name + "#" + strconv.Itoa(i) + "." + strconv.Itoa(s.gen)
		c, err := s.b.start(s.f, s.key, label, i, s.out)
		if err != nil {
			return started, err
		}
		s.slots[i] = c
		started = append(started, c)
	}
	return started, nil
}

// byLabel finds the slot's process that ran the child with this label.
func (s *series) byLabel(label string) *cand {
	for _, c := range s.slots {
		if c != nil && c.label == label {
			return c
		}
	}
	return nil
}

// leader is the running child of this series whose candidate is alive.
// Orphans (children whose supervisor died) don't count.
func (s *series) leader() (childEvent, *cand, bool) {
	for label, ev := range s.b.hub.running(s.name + "#") {
		if c := s.byLabel(label); c != nil && !c.exited() {
			return ev, c, true
		}
	}
	return childEvent{}, nil, false
}

// awaitReady waits until every slot's process is alive and blocked on
// Consul and one of them leads (its child runs): the steady state from
// which a handover or failover is measured.
func (s *series) awaitReady(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(s.slots))
	for i, c := range s.slots {
		wg.Go(func() {
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go func() {
				select {
				case <-c.done:
					cancel()
				case <-wctx.Done():
				}
			}()
			if err := c.port.awaitWatching(wctx); err != nil {
				if c.exited() {
					err = fmt.Errorf("%s exited (%v); see %s", c.label, c.cmd.ProcessState, s.out.Name())
				}
				errs[i] = err
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("series %s not ready: %w", s.name, err)
	}
	for {
		mark := s.b.hub.mark()
		if _, _, ok := s.leader(); ok {
			return s.awaitQuiet(ctx)
		}
		if _, err := s.b.hub.wait(ctx, mark, s.name+" leader's child", func(ev childEvent) bool {
			return ev.Kind == "start" && strings.HasPrefix(ev.Label, s.name+"#")
		}); err != nil {
			return fmt.Errorf("series %s: no leader: %w", s.name, err)
		}
	}
}

// settle is how long the candidates must have done nothing but wait for a
// series to count as settled: the follow-up requests of a handover (a lost
// acquire's re-read, a new watch) come within milliseconds.
const settle = 100 * time.Millisecond

// awaitQuiet waits until no candidate of the series has done anything but
// renew or block for settle.
func (s *series) awaitQuiet(ctx context.Context) error {
	for {
		var last time.Time
		for _, c := range s.live() {
			if t := c.port.quietSince(); t.After(last) {
				last = t
			}
		}
		d := time.Until(last.Add(settle))
		if d <= 0 {
			return nil
		}
		if err := sleepCtx(ctx, d); err != nil {
			return err
		}
	}
}

// requests sums the request counts of the given processes by kind,
// leaving out the periodic ones (session renews, check updates) that go on
// whatever happens: what remains is what a handover costs.
func requests(cs []*cand) map[string]int {
	sum := map[string]int{}
	for _, c := range cs {
		_, k := c.port.snapshot()
		for kind, n := range k {
			if kind != kindRenew && kind != kindCheck {
				sum[kind] += n
			}
		}
	}
	return sum
}

// total adds up a requests map.
func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// addDelta adds after−before to acc, kind by kind (before may be nil).
func addDelta(acc, before, after map[string]int) {
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			acc[k] += d
		}
	}
}

func (s *series) live() []*cand {
	var out []*cand
	for _, c := range s.slots {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

// stop stops every process of the series.
func (s *series) stop() {
	var wg sync.WaitGroup
	for _, c := range s.slots {
		if c != nil {
			wg.Go(c.stop)
		}
	}
	wg.Wait()
	s.out.Close()
}

// timeline turns the series' child events into intervals, seconds from
// origin, keeping those that overlap [from, to].
func (s *series) timeline(origin, from, to time.Time) []Interval {
	open := map[string]childEvent{}
	var out []Interval
	add := func(start childEvent, end time.Time, how string) {
		if end.Before(from) || start.At.After(to) {
			return
		}
		slot := -1
		if _, rest, ok := strings.Cut(start.Label, "#"); ok {
			slot, _ = strconv.Atoi(strings.SplitN(rest, ".", 2)[0])
		}
		out = append(out, Interval{Slot: slot, Start: start.At.Sub(origin).Seconds(),
			End: end.Sub(origin).Seconds(), How: how, Leader: start.Label})
	}
	for _, ev := range s.b.hub.all() {
		if !strings.HasPrefix(ev.Label, s.name+"#") {
			continue
		}
		switch ev.Kind {
		case "start":
			open[ev.Label] = ev
		case "exit", "gone":
			if st, ok := open[ev.Label]; ok && st.PID == ev.PID {
				add(st, ev.At, ev.How)
				delete(open, ev.Label)
			}
		}
	}
	for _, st := range open {
		add(st, to, "running")
	}
	return out
}
