package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"time"
)

// crashPhase spreads the SIGKILLs uniformly over this long after the
// candidates settle, so a kill lands at any point of the renew cycle (the
// longest here: consul lock renews every 7.5s).
const crashPhase = 8 * time.Second

// crashes SIGKILLs the leader of 3 candidates of f, runs times, and measures
// how long until another candidate's child starts. The killed process is
// replaced after each run. A child that outlives its supervisor (consul
// lock has no parent-death signal) is recorded as such and then killed by
// the benchmark, so runs don't pile up leaders.
func (b *bench) crashes(ctx context.Context, f flavor, runs int) (CrashSeries, error) {
	res := CrashSeries{Name: f.Name, Tool: f.Tool, Flags: strings.Join(f.Args, " ")}
	name := "crash-" + f.Slug
	s, err := b.newSeries(name, f, 3)
	if err != nil {
		return res, err
	}
	defer s.stop()
	for i := range runs {
		if _, err := s.fill(); err != nil {
			return res, err
		}
		if err := s.awaitReadyWithin(ctx, 90*time.Second); err != nil {
			return res, err
		}
		// A random point in the renew cycle; not synchronisation.
		select {
		case <-time.After(rand.N(crashPhase)):
		case <-ctx.Done():
			return res, ctx.Err()
		}
		old, leader, ok := s.leader()
		if !ok {
			return res, fmt.Errorf("%s run %d: no leader to kill", s.name, i)
		}
		mark := b.hub.mark()
		killed := time.Now()
		if err := leader.cmd.Process.Kill(); err != nil {
			return res, fmt.Errorf("%s run %d: SIGKILL: %w", s.name, i, err)
		}
		run := CrashRun{ChildGone: -1}
		// leaderd's child dies with it (Pdeathsig); watch for that while
		// the failover runs.
		gone := make(chan time.Time, 1)
		go func() { gone <- awaitGone(old.PID, 5*time.Second) }()
		cctx, cancel := context.WithTimeout(ctx, 120*time.Second)
		next, err := b.hub.wait(cctx, mark, "a new leader's child", func(ev childEvent) bool {
			return ev.Kind == "start" && strings.HasPrefix(ev.Label, s.name+"#") && ev.Label != old.Label
		})
		cancel()
		if err != nil {
			return res, fmt.Errorf("%s run %d: %w (logs: %s)", s.name, i, err, s.out.Name())
		}
		run.Failover = ms(next.At.Sub(killed))
		run.OldChildAlive = pidAlive(old.PID)
		diedAt := <-gone
		how := "killed"
		if diedAt.IsZero() || diedAt.After(next.At) {
			// Still running when the new leader started: end it now.
			how = "orphan"
			syscall.Kill(old.PID, syscall.SIGKILL)
			diedAt = awaitGone(old.PID, 5*time.Second)
		}
		if !diedAt.IsZero() && how == "killed" {
			run.ChildGone = ms(diedAt.Sub(killed))
		}
		b.hub.add(childEvent{Kind: "gone", At: diedAt, PID: old.PID, Label: old.Label, How: how})
		<-leader.done
		run.Timeline = s.timeline(killed, killed.Add(-5*time.Second), next.At.Add(3*time.Second))
		res.Runs = append(res.Runs, run)
		b.log.Info("crash failover", "series", f.Name, "run", i+1, "failover_ms", int(run.Failover),
			"old_child_alive", run.OldChildAlive)
	}
	return res, nil
}
