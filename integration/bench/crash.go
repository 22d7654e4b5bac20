package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/leaderd/leaderd/integration/history"
)

// crashes SIGKILLs the leader of 3 candidates of f, runs times, and measures
// how long until another candidate's child starts. Run i kills (i+½)/runs
// of the way through the leader's keep-alive cycle (from a renew or check
// pass answered to the next), so few runs still cover the cycle evenly
// and their median is its middle. The killed process is
// replaced after each run. It also measures how long the killed leader's
// child (and leaderd's keeper) outlived it: leaderd's keeper must kill the
// child at once when leaderd dies. A child still running when the new
// leader's starts (consul lock has no parent-death signal) is recorded as
// such and then killed by the benchmark, so runs don't pile up leaders.
func (b *bench) crashes(ctx context.Context, f flavor, runs int) (CrashSeries, error) {
	s, err := b.newSeries("crash-"+f.Slug, f, 3)
	if err != nil {
		return CrashSeries{Name: f.Name, Tool: f.Tool}, err
	}
	defer s.stop()
	return s.crashes(ctx, runs, 90*time.Second)
}

// crashes SIGKILLs the series' leader runs times (see bench.crashes); ready
// bounds each wait for the series to settle, replacement included.
func (s *series) crashes(ctx context.Context, runs int, ready time.Duration) (CrashSeries, error) {
	b, f := s.b, s.f
	res := CrashSeries{Name: f.Name, Tool: f.Tool, Flags: strings.Join(f.Args, " "), Window: f.Window.Seconds(), N: len(s.slots)}
	for i := range runs {
		if _, err := s.fill(); err != nil {
			return res, err
		}
		if err := s.awaitReadyWithin(ctx, ready); err != nil {
			return res, err
		}
		old, leader, ok := s.leader()
		if !ok {
			return res, fmt.Errorf("%s run %d: no leader to kill", s.name, i)
		}
		rctx, cancel := context.WithTimeout(ctx, 2*f.Cycle+10*time.Second)
		kept, err := leader.port.awaitAnswer(rctx, f.CycleKind, time.Now())
		cancel()
		if err != nil {
			return res, fmt.Errorf("%s run %d: no %s from the leader: %w", s.name, i, f.CycleKind, err)
		}
		phase := time.Duration((float64(i) + 0.5) / float64(runs) * float64(f.Cycle))
		if err := sleepCtx(ctx, time.Until(kept.Add(phase))); err != nil {
			return res, err
		}
		keeper := keepersOf([]int{leader.pid()})[leader.pid()]
		if f.Tool == toolLeaderd && keeper == 0 {
			return res, fmt.Errorf("%s run %d: the leader has no keeper process", s.name, i)
		}
		mark := b.hub.mark()
		killed := time.Now()
		if err := leader.cmd.Process.Kill(); err != nil {
			return res, fmt.Errorf("%s run %d: SIGKILL: %w", s.name, i, err)
		}
		run := CrashRun{ChildGone: -1, KeeperGone: -1, Phase: phase.Seconds()}
		// leaderd's keeper kills the child as soon as leaderd is gone (its
		// command pipe reaches EOF); watch for that while the failover runs.
		gone, keeperGone, leaderGone := make(chan time.Time, 1), make(chan time.Time, 1), make(chan time.Time, 1)
		go func() { gone <- awaitGone(old.PID, 5*time.Second) }()
		go func() {
			if keeper == 0 {
				keeperGone <- time.Time{}
				return
			}
			keeperGone <- awaitGone(keeper, 5*time.Second)
		}()
		go func() {
			<-leader.done
			leaderGone <- time.Now()
		}()
		cctx, cancel := context.WithTimeout(ctx, 120*time.Second)
		next, err := b.hub.wait(cctx, mark, "a new leader's child", func(ev childEvent) bool {
			return ev.Kind == "start" && strings.HasPrefix(ev.Label, s.name+"#") && ev.Label != old.Label
		})
		cancel()
		if err != nil {
			return res, fmt.Errorf("%s run %d: %w (logs: %s)", s.name, i, err, s.out.Name())
		}
		run.Failover = ms(next.At.Sub(killed))
		run.OldChildAlive = !history.Gone(old.PID)
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
		run.LeaderGone = ms((<-leaderGone).Sub(killed))
		if t := <-keeperGone; !t.IsZero() {
			run.KeeperGone = ms(t.Sub(killed))
		} else if keeper != 0 {
			syscall.Kill(keeper, syscall.SIGKILL) // recorded as -1: still running 5 s on
		}
		run.Timeline = s.timeline(killed, killed.Add(-5*time.Second), next.At.Add(3*time.Second))
		res.Runs = append(res.Runs, run)
		b.log.Info("crash failover", "series", s.name, "run", i+1, "failover_ms", int(run.Failover),
			"old_child_alive", run.OldChildAlive, "child_gone_ms", run.ChildGone, "leader_gone_ms", run.LeaderGone,
			"keeper_gone_ms", run.KeeperGone)
	}
	return res, nil
}
