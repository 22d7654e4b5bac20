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

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// idle runs 3 candidates of each flavor side by side, lets them settle, and
// counts what each asks of Consul, its CPU time and its memory (leaderd's
// with its keeper's added: a leaderd with a command is two processes), for at
// least minWindow and until longer is closed (a longer window resolves CPU
// time better: /proc counts it in 10ms ticks).
// It also returns the memory of one of the children, the smallest Go
// program at hand.
func (b *bench) idle(ctx context.Context, flavors []flavor, minWindow time.Duration, longer <-chan struct{}) ([]IdleCandidate, memInfo, error) {
	var child memInfo
	var all []*series
	defer func() {
		for _, s := range all {
			s.stop()
		}
	}()
	for _, f := range flavors {
		s, err := b.newSeries("idle-"+f.Slug, f, 3)
		if err != nil {
			return nil, child, err
		}
		all = append(all, s)
		if _, err := s.fill(); err != nil {
			return nil, child, err
		}
	}
	for _, s := range all {
		if err := s.awaitReadyWithin(ctx, 60*time.Second); err != nil {
			return nil, child, err
		}
	}
	// Let every periodic request (renews, consul lock's 15s waits) run
	// once before counting.
	if err := sleepCtx(ctx, 16*time.Second); err != nil {
		return nil, child, err
	}
	type sample struct {
		s      *series
		c      *cand
		keeper int // its keeper's pid (leaderd), 0 if none
		reqs   map[string]int
		total  int
		cpu    int // leaderd's and its keeper's
	}
	var samples []*sample
	var pids []int
	for _, s := range all {
		for _, c := range s.live() {
			pids = append(pids, c.pid())
		}
	}
	keepers := keepersOf(pids)
	for _, s := range all {
		for _, c := range s.live() {
			k := keepers[c.pid()]
			if s.f.Tool == toolLeaderd && k == 0 {
				return nil, child, fmt.Errorf("%s: no keeper process found", c.label)
			}
			t, byKind := c.port.snapshot()
			m, err := candMem(c.pid(), k)
			if err != nil {
				return nil, child, err
			}
			samples = append(samples, &sample{s: s, c: c, keeper: k, reqs: byKind, total: t, cpu: m.cpu})
		}
	}
	start := time.Now()
	if err := sleepCtx(ctx, minWindow); err != nil {
		return nil, child, err
	}
	if err := waitCtx(ctx, longer); err != nil {
		return nil, child, err
	}
	elapsed := time.Since(start)
	var out []IdleCandidate
	for _, sm := range samples {
		if sm.c.exited() {
			return nil, child, fmt.Errorf("%s exited during the idle window", sm.c.label)
		}
		t, k := sm.c.port.snapshot()
		m, err := candMem(sm.c.pid(), sm.keeper)
		if err != nil {
			return nil, child, err
		}
		role := "follower"
		if _, l, ok := sm.s.leader(); ok && l == sm.c {
			role = "leader"
		}
		minutes := elapsed.Minutes()
		ic := IdleCandidate{
			Flavor:        sm.s.f.Name,
			Flags:         strings.Join(sm.s.f.Args, " "),
			Tool:          sm.s.f.Tool,
			Role:          role,
			Window:        elapsed.Seconds(),
			PerMinute:     float64(t-sm.total) / minutes,
			ByKind:        map[string]float64{},
			RSSKiB:        m.rss(),
			AnonKiB:       m.anon(),
			KeeperRSSKiB:  m.keeper.rss,
			KeeperAnonKiB: m.keeper.anon,
			ExeMappedKiB:  m.exeSize,
			ExeRSSKiB:     m.exeRSS,
			CPUSecPerHour: float64(m.cpu-sm.cpu) / clockTicks / elapsed.Hours(),
		}
		for kind, n := range k {
			if d := n - sm.reqs[kind]; d > 0 {
				ic.ByKind[kind] = float64(d) / minutes
			}
		}
		out = append(out, ic)
	}
	if ev, _, ok := all[0].leader(); ok {
		child, _ = memOf(ev.PID)
	}
	return out, child, nil
}

// sleepCtx waits d: the idle window is a span of time to measure over, not
// a guess at when something will be ready.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// cpuTicks is utime+stime of pid, in clock ticks.
func cpuTicks(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	// After "(comm)": state is field 3 of stat(5), utime 14, stime 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too short", pid)
	}
	ut, err1 := strconv.Atoi(f[11])
	st, err2 := strconv.Atoi(f[12])
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return ut + st, nil
}

type memInfo struct{ rss, anon int } // KiB

// memOf reads VmRSS from /proc/<pid>/status and the private anonymous
// memory (RssAnon) — the part another instance of the same binary doesn't
// share. The rest of RSS is mostly the binary's own pages, shared by every
// process running it and reclaimable.
func memOf(pid int) (memInfo, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return memInfo{}, err
	}
	defer f.Close()
	var m memInfo
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		switch k {
		case "VmRSS":
			m.rss = n
		case "RssAnon":
			m.anon = n
		}
	}
	if m.rss == 0 {
		return m, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	return m, sc.Err()
}

// exeResident sums, over the mappings of pid's own executable in
// /proc/<pid>/smaps, their size and their resident part (KiB): how much of
// the binary the kernel keeps mapped in.
func exeResident(pid int) (size, rss int, err error) {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return 0, 0, err
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/smaps")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	ours := false
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			ours = len(fields) >= 6 && fields[5] == exe
			continue
		}
		if !ours || len(fields) < 2 {
			continue
		}
		n, _ := strconv.Atoi(fields[1])
		switch fields[0] {
		case "Size:":
			size += n
		case "Rss:":
			rss += n
		}
	}
	return size, rss, sc.Err()
}
