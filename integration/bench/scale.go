package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// scale starts n candidate processes of f on one key and measures
// handovers (the leader's child exits) among them: latency, and the
// requests every candidate makes until all wait again.
func (b *bench) scale(ctx context.Context, f flavor, n, handovers int) (ScalePoint, error) {
	pt := ScalePoint{Tool: f.Tool, N: n, How: "processes", RequestKinds: map[string]int{}}
	s, err := b.newSeries(fmt.Sprintf("scale-%s-%d", f.Slug, n), f, n)
	if err != nil {
		return pt, err
	}
	defer s.stop()
	start := time.Now()
	if _, err := s.fill(); err != nil {
		return pt, err
	}
	if err := s.awaitReadyWithin(ctx, 5*time.Minute); err != nil {
		return pt, err
	}
	pt.StartSec = time.Since(start).Seconds()
	for _, c := range s.live() {
		if m, err := memOf(c.pid()); err == nil {
			pt.RSSMiB += float64(m.rss) / 1024
			pt.AnonMiB += float64(m.anon) / 1024
		}
	}
	for i := range handovers {
		old, leader, _ := s.leader()
		before := s.live()
		reqBefore := requests(before)
		mark := b.hub.mark()
		if err := syscall.Kill(old.PID, syscall.SIGUSR1); err != nil {
			return pt, fmt.Errorf("%s handover %d: %w", s.name, i, err)
		}
		hctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		exit, err := b.awaitEnd(hctx, mark, old)
		var next childEvent
		if err == nil {
			next, err = b.hub.wait(hctx, mark, "the new child's start", func(ev childEvent) bool {
				return ev.Kind == "start" && strings.HasPrefix(ev.Label, s.name+"#") && ev.Label != old.Label
			})
		}
		if err == nil && f.Tool == toolConsulLock {
			err = waitCtx(hctx, leader.done)
		}
		cancel()
		if err != nil {
			return pt, fmt.Errorf("%s handover %d: %w (logs: %s)", s.name, i, err, s.out.Name())
		}
		if w := s.byLabel(next.Label); w != nil {
			pt.AcquireMs = append(pt.AcquireMs, ms(w.port.lastAcquire().Sub(exit.At)))
		}
		fresh, err := s.fill()
		if err != nil {
			return pt, err
		}
		if err := s.awaitReadyWithin(ctx, 2*time.Minute); err != nil {
			return pt, err
		}
		pt.Latencies = append(pt.Latencies, ms(next.At.Sub(exit.At)))
		after := requests(before)
		pt.Requests = append(pt.Requests, total(after)-total(reqBefore))
		addDelta(pt.RequestKinds, reqBefore, after)
		if f.Tool == toolConsulLock {
			pt.Restart = append(pt.Restart, total(requests(fresh)))
		}
	}
	return pt, nil
}

// memAvailableKiB is MemAvailable from /proc/meminfo.
func memAvailableKiB() int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}
