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
	leaderdDefaults = flavor{Name: "leaderd defaults", Slug: "leaderd", Tool: toolLeaderd}
	// leaderdFast is the fast-crash-detection preset: the session is bound
	// to a 2s TTL check passed every 667ms; lock-delay 1s and a 500ms kill
	// timeout make the safety window (2s + 1s − 1s margin) hold two check
	// passes, which leaderd requires.
	leaderdFast = flavor{Name: "leaderd fast crash detection", Slug: "leaderdfast", Tool: toolLeaderd,
		Args: []string{"-check-ttl", "2s", "-lock-delay", "1s", "-kill-timeout", "500ms"}}
	// leaderdAsConsulLock uses consul lock's own session settings (api.Lock:
	// TTL 15s, lock-delay 15s), separating what the defaults cost from
	// what the protocol costs.
	leaderdAsConsulLock = flavor{Name: "leaderd with consul lock's TTL and lock-delay", Slug: "leaderd15s", Tool: toolLeaderd,
		Args: []string{"-ttl", "15s", "-lock-delay", "15s"}}
	// leaderdQuiet also renews as seldom as consul lock (every 7.5s):
	// with lock-delay 15s the safety window (15s + 15s − 2.5s margin)
	// still holds two renew intervals.
	leaderdQuiet = flavor{Name: "leaderd renewing like consul lock", Slug: "leaderdquiet", Tool: toolLeaderd,
		Args: []string{"-ttl", "15s", "-lock-delay", "15s", "-renew-interval", "7.5s"}}
	consulLockDefaults = flavor{Name: "consul lock defaults", Slug: "consullock", Tool: toolConsulLock}
)

// handoverTimelineCount is how many handovers the timeline keeps.
const handoverTimelineCount = 8

// handovers measures n graceful handovers among 3 candidates of f: the
// leader's child exits by itself, or the leader gets SIGTERM.
func (b *bench) handovers(ctx context.Context, f flavor, mode string, n int) (HandoverSeries, error) {
	res := HandoverSeries{Tool: f.Tool, Mode: mode, RequestKinds: map[string]int{}}
	name := "handover-" + f.Slug + "-" + map[string]string{modeChildExit: "exit", modeSIGTERM: "term"}[mode]
	s, err := b.newSeries(name, f, 3)
	if err != nil {
		return res, err
	}
	defer s.stop()
	if _, err := s.fill(); err != nil {
		return res, err
	}
	if err := s.awaitReadyWithin(ctx, 60*time.Second); err != nil {
		return res, err
	}
	var origin, timelineEnd time.Time
	for i := range n {
		old, leader, _ := s.leader()
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
			return res, fmt.Errorf("handover %d: signal: %w", i, err)
		}
		hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		exit, err := b.awaitEnd(hctx, mark, old)
		var next childEvent
		if err == nil {
			next, err = b.hub.wait(hctx, mark, "the new child's start", func(ev childEvent) bool {
				return ev.Kind == "start" && strings.HasPrefix(ev.Label, s.name+"#") && ev.Label != old.Label
			})
		}
		// consul lock exits with its child; a SIGTERMed leader exits too.
		if err == nil && (mode == modeSIGTERM || f.Tool == toolConsulLock) {
			err = waitCtx(hctx, leader.done)
		}
		cancel()
		if err != nil {
			return res, fmt.Errorf("%s handover %d: %w (logs: %s)", s.name, i, err, s.out.Name())
		}
		if w := s.byLabel(next.Label); w != nil {
			res.AcquireMs = append(res.AcquireMs, ms(w.port.lastAcquire().Sub(exit.At)))
		}
		fresh, err := s.fill()
		if err != nil {
			return res, err
		}
		if err := s.awaitReadyWithin(ctx, 30*time.Second); err != nil {
			return res, err
		}
		res.Latencies = append(res.Latencies, ms(next.At.Sub(exit.At)))
		if exit.Kind == "gone" {
			res.ChildKilled++
		}
		after := requests(before)
		res.Requests = append(res.Requests, total(after)-total(reqBefore))
		addDelta(res.RequestKinds, reqBefore, after)
		res.RestartRequests = append(res.RestartRequests, total(requests(fresh)))
		if i == 0 {
			origin = exit.At.Add(-time.Second)
		}
		if i == handoverTimelineCount-1 || (i == n-1 && i < handoverTimelineCount) {
			timelineEnd = next.At.Add(time.Second)
		}
	}
	res.Timeline = s.timeline(origin, origin, timelineEnd)
	return res, nil
}

func (s *series) awaitReadyWithin(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return s.awaitReady(ctx)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
