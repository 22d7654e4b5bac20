package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// Flavors the experiments run.
var (
	leaderdDefaults = flavor{Name: "leaderd defaults", Slug: "leaderd", Tool: toolLeaderd,
		Cycle: 10 * time.Second / 3, CycleKind: kindRenew, Window: 20 * time.Second}
	// leaderdFast is the fast-crash-detection preset: the session is bound
	// to a 2s TTL check passed every 667ms; lock-delay 1s and a 500ms kill
	// timeout make the safety window (2s + 1s − 1s margin) hold two check
	// passes, which leaderd requires.
	leaderdFast = flavor{Name: "leaderd fast crash detection", Slug: "leaderdfast", Tool: toolLeaderd,
		Args:  []string{"-check-ttl", "2s", "-lock-delay", "1s", "-kill-timeout", "500ms"},
		Cycle: 2 * time.Second / 3, CycleKind: kindCheck, Window: 3 * time.Second}
	// leaderdAsConsulLock uses consul lock's own session settings (api.Lock:
	// TTL 15s, lock-delay 15s), separating what the defaults cost from
	// what the protocol costs.
	leaderdAsConsulLock = flavor{Name: "leaderd with consul lock's TTL and lock-delay", Slug: "leaderd15s", Tool: toolLeaderd,
		Args:  []string{"-ttl", "15s", "-lock-delay", "15s"},
		Cycle: 5 * time.Second, CycleKind: kindRenew, Window: 45 * time.Second}
	// leaderdQuiet also renews as seldom as consul lock (every 7.5s):
	// with lock-delay 15s the safety window (15s + 15s − 2.5s margin)
	// still holds two renew intervals.
	leaderdQuiet = flavor{Name: "leaderd renewing like consul lock", Slug: "leaderdquiet", Tool: toolLeaderd,
		Args: []string{"-ttl", "15s", "-lock-delay", "15s", "-renew-interval", "7.5s"}}
	consulLockDefaults = flavor{Name: "consul lock defaults", Slug: "consullock", Tool: toolConsulLock,
		Cycle: 15 * time.Second / 2, CycleKind: kindRenew, Window: 45 * time.Second} // api.Lock: TTL 15s, renewed every TTL/2
)

// handovers measures n graceful handovers for each flavor, 3 candidates
// each: the leader's child exits by itself, or the leader gets SIGTERM.
// The series run in lockstep, one handover of each in turn, so a burst of
// load from elsewhere on the machine hits both tools alike.
func (b *bench) handovers(ctx context.Context, flavors []flavor, mode string, n int) ([]HandoverSeries, error) {
	suffix := map[string]string{modeChildExit: "exit", modeSIGTERM: "term"}[mode]
	var all []*series
	defer func() {
		for _, s := range all {
			s.stop()
		}
	}()
	res := make([]HandoverSeries, len(flavors))
	for i, f := range flavors {
		s, err := b.newSeries("handover-"+f.Slug+"-"+suffix, f, 3)
		if err != nil {
			return nil, err
		}
		all = append(all, s)
		if _, err := s.fill(); err != nil {
			return nil, err
		}
		res[i] = HandoverSeries{Tool: f.Tool, Mode: mode, RequestKinds: map[string]int{}}
	}
	for _, s := range all {
		if err := s.awaitReadyWithin(ctx, 60*time.Second); err != nil {
			return nil, err
		}
	}
	for range n {
		for i, s := range all {
			h, err := s.handover(ctx, mode, 30*time.Second)
			if err != nil {
				return nil, err
			}
			r := &res[i]
			r.Latencies = append(r.Latencies, h.latency)
			r.AcquireMs = append(r.AcquireMs, h.acquire)
			r.HerdMs = append(r.HerdMs, h.herd)
			r.ReadBackMs = append(r.ReadBackMs, h.readBack)
			r.ToReadMs = append(r.ToReadMs, h.toRead)
			r.FromReadMs = append(r.FromReadMs, h.fromRead)
			r.Requests = append(r.Requests, h.requests)
			r.RestartRequests = append(r.RestartRequests, h.restart)
			addDelta(r.RequestKinds, nil, h.kinds)
			if h.killed {
				r.ChildKilled++
			}
		}
	}
	return res, nil
}

// handoverSample is one measured handover.
type handoverSample struct {
	latency  float64        // ms, old child's exit to new child's start
	acquire  float64        // ms, old child's exit to the winner's acquire answer
	herd     float64        // ms, old child's exit to the last acquire answered (anyone's)
	readBack float64        // ms, the winner's first non-blocking read after its acquire (-1: none)
	toRead   float64        // ms, the winner's acquire answer to that read's sending (-1: none)
	fromRead float64        // ms, that read's answer to the new child's start (-1: none)
	requests int            // by the candidates running at the start, renews left out
	kinds    map[string]int // the same, by kind
	restart  int            // by the replacement process, if one was started
	killed   bool           // the old child was SIGKILLed, not stopped
}

// handover makes the leader hand over (mode) and measures it, then refills
// the series and waits until it has settled again.
func (s *series) handover(ctx context.Context, mode string, timeout time.Duration) (handoverSample, error) {
	b := s.b
	old, leader, ok := s.leader()
	if !ok {
		return handoverSample{}, fmt.Errorf("%s: no leader", s.name)
	}
	before := s.live()
	reqBefore := requests(before)
	mark := b.hub.mark()
	var err error
	if mode == modeChildExit {
		err = syscall.Kill(old.PID, syscall.SIGUSR1)
	} else {
		err = leader.cmd.Process.Signal(syscall.SIGTERM)
	}
	if err != nil {
		return handoverSample{}, fmt.Errorf("%s: signal the leader: %w", s.name, err)
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	exit, err := b.awaitEnd(hctx, mark, old)
	var next childEvent
	if err == nil {
		next, err = b.hub.wait(hctx, mark, "the new child's start", func(ev childEvent) bool {
			return ev.Kind == "start" && strings.HasPrefix(ev.Label, s.name+"#") && ev.Label != old.Label
		})
	}
	// consul lock exits with its child; a SIGTERMed leader exits too.
	if err == nil && (mode == modeSIGTERM || s.f.Tool == toolConsulLock) {
		err = waitCtx(hctx, leader.done)
	}
	if err != nil {
		return handoverSample{}, fmt.Errorf("%s handover: %w (logs: %s)", s.name, err, s.out.Name())
	}
	fresh, err := s.fill()
	if err != nil {
		return handoverSample{}, err
	}
	if err := s.awaitReady(hctx); err != nil {
		return handoverSample{}, err
	}
	h := handoverSample{latency: ms(next.At.Sub(exit.At)), readBack: -1, toRead: -1, fromRead: -1, kinds: map[string]int{},
		killed: exit.Kind == "gone", restart: total(requests(fresh))}
	if w := s.byLabel(next.Label); w != nil {
		acq := w.port.lastAcquire()
		h.acquire = ms(acq.Sub(exit.At))
		if start, end := w.port.lastRead(); !start.Before(acq) && !end.IsZero() {
			h.readBack = ms(end.Sub(start))
			h.toRead, h.fromRead = ms(start.Sub(acq)), ms(next.At.Sub(end))
		}
	}
	for _, c := range before {
		if t := c.port.lastAcquire(); t.After(exit.At) {
			h.herd = max(h.herd, ms(t.Sub(exit.At)))
		}
	}
	after := requests(before)
	h.requests = total(after) - total(reqBefore)
	addDelta(h.kinds, reqBefore, after)
	return h, nil
}

func (s *series) awaitReadyWithin(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return s.awaitReady(ctx)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
