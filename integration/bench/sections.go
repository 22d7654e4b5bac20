package main

import (
	"fmt"
	"io"
	"strings"
)

// firstElectionWait is leaderd's wait before taking a missing key (one
// lease window with the defaults): a start-up this long includes it.
const firstElectionWait = 10.0

func handoverSection(b io.Writer, r *Results) {
	if len(r.Handover) == 0 {
		return
	}
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("## Graceful handover\n\n")
	w("Three candidates per tool on one key. The leader's child exits by itself (leaderd runs with `-restart`;\n")
	w("consul lock releases and exits, and the benchmark starts a new waiter), or the leader process gets\n")
	w("SIGTERM (and is restarted). Latency: the old child's exit line to the new child's start line, both\n")
	w("written by the children. Requests: everything the candidates running at the start asked of Consul\n")
	w("until all waited again, session renews left out; the replacement process's start-up is counted apart.\n\n")
	w("| tool | trigger | n | p50 | p99 | max | acquire answered, p50 | then to child start, p50 | requests per handover | + replacement's start-up |\n")
	w("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, h := range r.Handover {
		w("| %s | %s | %d | %s | %s | %s | %s | %s | %.1f (%s) | %.1f |\n", h.Tool, h.Mode, len(h.Latencies),
			fmtMs(median(h.Latencies)), fmtMs(percentile(h.Latencies, 99)), fmtMs(maxOf(h.Latencies)),
			fmtMs(median(h.AcquireMs)), fmtMs(afterAcquire(h.Latencies, h.AcquireMs)),
			meanInts(h.Requests), kinds(h.RequestKinds, float64(len(h.Requests))), meanInts(h.RestartRequests))
		if h.ChildKilled > 0 {
			w("| | | | | | | | | the old child was SIGKILLed, not stopped, in %d of %d | |\n", h.ChildKilled, len(h.Latencies))
		}
	}
	w("\nThe two tools' handovers ran in turn (one of each, and again), so load from elsewhere hits both alike.\n")
	if n := len(r.Handover[0].Latencies); n <= 100 {
		w("\nPercentiles are nearest-rank, always a measured value: p99 of %d handovers is the slowest one.\n\n", n)
	}
	w("![graceful handover latency](%s)\n\n", handoverFile)
}

func crashSection(b io.Writer, r *Results) {
	if len(r.Crash) == 0 {
		return
	}
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("## Crash failover\n\n")
	w("Three candidates; the leader process is SIGKILLed, run i of n at (i+½)/n of the way from one renew\n")
	w("(fast crash detection: check pass) answered to the next, so the runs cover the renew cycle evenly;\n")
	w("failover is the SIGKILL to the new child's start line. The configurations run side by side on\n")
	w("separate keys.\n\n")
	w("| configuration | flags | runs | failover, each run | median | consul lock defaults ÷ this | over the protocol's floor, median | old child at takeover |\n")
	w("|---|---|---|---|---|---|---|---|\n")
	cl := crashOf(r, consulLockDefaults.Name)
	for _, cs := range r.Crash {
		if len(cs.Runs) == 0 {
			continue
		}
		var each []string
		alive, gone, over := 0, []float64{}, []float64{}
		for _, run := range cs.Runs {
			over = append(over, run.Failover-1000*(cs.Window-run.Phase))
			each = append(each, fmt.Sprintf("%.1f", run.Failover/1000))
			if run.OldChildAlive {
				alive++
			} else if run.ChildGone >= 0 {
				gone = append(gone, run.ChildGone)
			}
		}
		state := fmt.Sprintf("dead in every run (%s after the SIGKILL, median)", fmtMs(median(gone)))
		if alive > 0 {
			state = fmt.Sprintf("**still running in %d of %d runs**", alive, len(cs.Runs))
		}
		flags := "`" + cs.Flags + "`"
		if cs.Flags == "" {
			flags = "(none)"
		}
		ratio := "–"
		if cl != nil {
			ratio = fmt.Sprintf("%.1f×", median(failovers(cl))/median(failovers(&cs)))
		}
		w("| %s | %s | %d | %s s | %s | %s | %s | %s |\n", cs.Name, flags, len(cs.Runs), strings.Join(each, ", "),
			fmtSec(median(failovers(&cs))), ratio, fmtMs(median(over)), state)
	}
	w("\n`consul lock` has no flag for its session TTL or lock-delay (`consul lock -h`: only `-monitor-retry`,\n")
	w("`-timeout`, `-n`, `-name`, `-shell`, …): it always uses api.Lock's session, TTL 15s, lock-delay 15s\n")
	w("(Consul's default, as api.Lock leaves it unset), bound to serfHealth. So instead of a consul lock with\n")
	w("matched settings, leaderd is also run with consul lock's settings.\n\n")
	w("The protocol's floor for a run is the window minus the kill's phase: Consul expires a session 2×TTL after\n")
	w("its last renew (a session bound to a check: the check TTL after its last pass), then lock-delay runs;\n")
	w("what a run takes beyond that is the tool's own delay. Over a whole cycle:\n")
	w("- leaderd defaults (TTL 10s renewed every 3.3s, lock-delay 0): 16.7–20 s.\n")
	w("- leaderd fast (check TTL 2s passed every 0.67s, lock-delay 1s): 2.3–3 s, plus the agent's check reaping.\n")
	w("- consul lock (TTL 15s renewed every 7.5s, lock-delay 15s): 37.5–45 s. A waiter refused during lock-delay\n")
	w("  tries again 5 s later (api.Lock's DefaultLockRetryTime) and again; 15 s is three such waits plus their\n")
	w("  round trips, so the third try lands just after lock-delay ends (the floor column): with a lock-delay\n")
	w("  that is not a multiple of 5 s the fixed retry would add up to 5 s. leaderd retries when the delay ends.\n")
	w("- leaderd with consul lock's settings: 37.5–45 s.\n\n")
}

func idleSection(b io.Writer, r *Results) {
	if len(r.Idle) == 0 {
		return
	}
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("## Idle cost and footprint\n\n")
	w("Three candidates per configuration, settled, counted over %.0f s (alongside the crash runs, which\n", r.Idle[0].Window)
	w("use other keys). CPU time is utime+stime from /proc/<pid>/stat, extrapolated to an hour; memory is\n")
	w("VmRSS and RssAnon (private anonymous memory) from /proc/<pid>/status at the end of the window.\n\n")
	w("| configuration | role | requests/min | of which | CPU s/hour | RSS | private |\n|---|---|---|---|---|---|---|\n")
	for _, name := range flavorsIn(r) {
		for _, role := range []string{"leader", "follower"} {
			ic := idleOf(r, name, role)
			if ic == nil {
				continue
			}
			label := name
			if ic.Flags != "" {
				label += " `" + ic.Flags + "`"
			}
			w("| %s | %s | %.1f | %s | %.1f | %s | %s |\n", label, role, ic.PerMinute, kinds(ic.ByKind, 1),
				ic.CPUSecPerHour, fmtKiB(ic.RSSKiB), fmtKiB(ic.AnonKiB))
		}
	}
	f := r.Footprint
	w("\n| binary | size |\n|---|---|\n")
	w("| leaderd (`go build`) | %s |\n| leaderd (`go build -ldflags=\"-s -w\"`) | %s |\n", fmtBytes(f.LeaderdBytes), fmtBytes(f.LeaderdStrippedBytes))
	w("| consul v%s (`go build` of the pinned module; `consul lock` is a subcommand) | %s |\n", r.ConsulVersion, fmtBytes(f.ConsulBytes))
	if f.ChildRSSKiB > 0 {
		w("\nFor scale: the benchmark's child, a Go program that only waits for a signal, has RSS %s and %s private here.\n",
			fmtKiB(f.ChildRSSKiB), fmtKiB(f.ChildAnonKiB))
	}
	w("\n")
}

func scaleSection(b io.Writer, r *Results) {
	if len(r.Scale) == 0 && r.Many == nil {
		return
	}
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("## Scale\n\n")
	if len(r.Scale) > 0 {
		w("N candidate processes of one tool on one key (all on this machine), the leader's child exits;\n")
		w("requests: all candidates, handover start until all wait again, renews left out.\n\n")
		w("| candidates | tool | handovers | p50 | p99 | acquire answered, p50 | then to child start, p50 | requests per handover | start-up until all wait | RSS, all | private, all |\n")
		w("|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, p := range r.Scale {
			if p.Skipped != "" {
				w("| %d | %s | skipped: %s ||||||||\n", p.N, p.Tool, p.Skipped)
				continue
			}
			req := fmt.Sprintf("%.0f (%s)", meanInts(p.Requests), kinds(p.RequestKinds, float64(len(p.Requests))))
			if len(p.Restart) > 0 {
				req += fmt.Sprintf(" + %.0f replacement start-up", meanInts(p.Restart))
			}
			w("| %d | %s | %d | %s | %s | %s | %s | %s | %.1f s | %.0f MiB | %.0f MiB |\n", p.N, p.Tool, len(p.Latencies),
				fmtMs(median(p.Latencies)), fmtMs(percentile(p.Latencies, 99)), fmtMs(median(p.AcquireMs)),
				fmtMs(afterAcquire(p.Latencies, p.AcquireMs)), req, p.StartSec, p.RSSMiB, p.AnonMiB)
		}
		for _, p := range r.Scale {
			if p.Tool == toolLeaderd && p.StartSec >= firstElectionWait {
				w("\nleaderd's start-up includes a deliberate wait of one lease window (TTL + lock-delay, 10 s): it takes a\n")
				w("key that doesn't exist yet only then, because a missing key can mean Consul lost its state while an\n")
				w("old leader still holds a lease. A released or expired key is taken at once, as in the handovers.\n")
				break
			}
		}
		w("\n\"RSS, all\" adds up every process's RSS, so the binary's shared pages count once per process;\n")
		w("\"private, all\" is the memory the candidates really take.\n\n![handover latency vs candidates](%s)\n\n", scaleFile)
	}
	if m := r.Many; m != nil {
		perInterval := float64(m.Renews) / (m.Window / m.RenewInterval)
		w("**%d elections on one shared session** (`elect.NewSession` + `elect.Config{Session: s}`, one process, each election\n", m.Elections)
		w("alone on its key so all lead): all led %.1f s after start; over %.0f s the process sent %d session renews\n", m.SetupSec, m.Window, m.Renews)
		w("(%.1f per %.1f s renew interval, for all %d keys; %d sessions of their own would send %d), and %s in all.\n",
			perInterval, m.RenewInterval, m.Elections, m.Elections, int(float64(m.Elections)*m.Window/m.RenewInterval), kinds(m.ByKind, 1))
		if m.SetupSec >= firstElectionWait {
			w("(The start includes leaderd's wait of one lease window before taking keys that don't exist yet.)\n")
		}
		w("Memory: RSS %.1f MiB, Go heap in use %.1f MiB, %.1f MiB from the OS, %d goroutines (%.1f KiB RSS per election).\n\n",
			m.RSSMiB, m.HeapInuseMiB, m.SysMiB, m.Goroutines, m.RSSMiB*1024/float64(m.Elections))
	}
}
