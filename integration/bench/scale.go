package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// scale starts n candidate processes of f on one key and measures
// handovers (the leader's child exits) among them: latency, and the
// requests every candidate makes until all wait again; then, if crashes
// > 0, that many crash failovers (the leader SIGKILLed) on the same
// candidates. No handovers: only the crashes (pt is then empty).
func (b *bench) scale(ctx context.Context, f flavor, n, handovers, crashes int) (pt ScalePoint, cs *CrashSeries, err error) {
	s, err := b.newSeries(fmt.Sprintf("scale-%s-%d", f.Slug, n), f, n)
	if err != nil {
		return pt, nil, err
	}
	defer s.stop()
	if handovers > 0 {
		if pt, err = s.scaleHandovers(ctx, handovers); err != nil {
			return pt, nil, err
		}
	}
	if crashes > 0 {
		// A replaced leader starts while n others wait: give it time.
		c, err := s.crashes(ctx, crashes, 90*time.Second+time.Duration(n)*100*time.Millisecond)
		if err != nil {
			return pt, nil, err
		}
		cs = &c
	}
	return pt, cs, nil
}

// scaleHandovers starts the series' candidates and measures handovers.
func (s *series) scaleHandovers(ctx context.Context, handovers int) (ScalePoint, error) {
	f, n := s.f, len(s.slots)
	pt := ScalePoint{Tool: f.Tool, N: n, How: "processes", RequestKinds: map[string]int{}}
	start := time.Now()
	if _, err := s.fill(); err != nil {
		return pt, err
	}
	if err := s.awaitReadyWithin(ctx, 5*time.Minute); err != nil {
		return pt, err
	}
	pt.StartSec = time.Since(start).Seconds()
	// Leaders' children that started before the first handover: more than
	// one means leadership changed hands while the candidates started.
	for _, ev := range s.b.hub.all() {
		if ev.Kind == "start" && strings.HasPrefix(ev.Label, s.name+"#") {
			pt.StartupLeaders++
		}
	}
	var pids []int
	for _, c := range s.live() {
		pids = append(pids, c.pid())
	}
	keepers := keepersOf(pids)
	for _, c := range s.live() {
		if m, err := candMem(c.pid(), keepers[c.pid()]); err == nil {
			pt.RSSMiB += float64(m.rss()) / 1024
			pt.AnonMiB += float64(m.anon()) / 1024
			pt.Processes++
			if m.keeperPID != 0 {
				pt.Processes++
			}
		}
	}
	for range handovers {
		h, err := s.handover(ctx, modeChildExit, 2*time.Minute)
		if err != nil {
			return pt, err
		}
		pt.Latencies = append(pt.Latencies, h.latency)
		pt.AcquireMs = append(pt.AcquireMs, h.acquire)
		pt.ReleaseMs = append(pt.ReleaseMs, h.release)
		pt.HerdMs = append(pt.HerdMs, h.herd)
		pt.ReadBackMs = append(pt.ReadBackMs, h.readBack)
		pt.ToReadMs = append(pt.ToReadMs, h.toRead)
		pt.FromReadMs = append(pt.FromReadMs, h.fromRead)
		pt.SeenMs = append(pt.SeenMs, h.seen)
		pt.ListMs = append(pt.ListMs, h.list)
		if h.handed {
			pt.HandedOver++
		}
		pt.Requests = append(pt.Requests, h.requests)
		addDelta(pt.RequestKinds, nil, h.kinds)
		if f.Tool == toolConsulLock {
			pt.Restart = append(pt.Restart, h.restart)
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
