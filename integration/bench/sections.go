package main

import (
	"fmt"
	"io"
	"strings"
)

// firstElectionWait is `leaderd run`'s wait with its defaults before it
// takes a key that doesn't exist: lock-delay + margin (10 s + 2.5 s). A
// start-up this long includes it.
const firstElectionWait = 12.5

// manyElectionWait is the same wait for package elect's defaults, which the
// many-elections process uses: lock-delay 10 s + margin 1 s.
const manyElectionWait = 11.0

func handoverSection(b io.Writer, r *Results) {
	if len(r.Handover) == 0 {
		return
	}
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("## Graceful handover\n\n")
	w("Three candidates per tool on one key. The leader's child exits by itself (leaderd runs with `-restart`;\n")
	w("consul lock releases and exits, and the benchmark starts a new waiter), or the leader process gets\n")
	w("SIGTERM (and is restarted). Latency: the old child's exit line to the new child's start line, both\n")
	w("written by the children; in between, the old leader let go of the key (consul lock: a release; leaderd: one\n")
	w("transaction that hands the key to the best live candidate, a release only if there is none), and the key was\n")
	w("the winner's when that handover or the winner's own acquire was answered (times from the old child's exit,\n")
	w("seen at the proxy). Requests: everything the candidates running at the start asked of Consul\n")
	w("until all waited again, session renews left out; the replacement process's start-up is counted apart.\n\n")
	w("| tool | trigger | n | p50 | p99 | max | old leader's release or handover sent, p50 | key the winner's (handover or acquire answered), p50 | then to child start, p50 | requests per handover | + replacement's start-up |\n")
	w("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, h := range r.Handover {
		w("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %.1f (%s) | %.1f |\n", h.Tool, h.Mode, len(h.Latencies),
			fmtMs(median(h.Latencies)), fmtMs(percentile(h.Latencies, 99)), fmtMs(maxOf(h.Latencies)),
			fmtMs(median(measured(h.ReleaseMs))), fmtMs(median(h.AcquireMs)), fmtMs(afterAcquire(h.Latencies, h.AcquireMs)),
			meanInts(h.Requests), kinds(h.RequestKinds, float64(len(h.Requests))), meanInts(h.RestartRequests))
		if h.ChildKilled > 0 {
			w("| | | | | | | | | | the old child was SIGKILLed, not stopped, in %d of %d | |\n", h.ChildKilled, len(h.Latencies))
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
	w("Three candidates; the leader process is SIGKILLed, run i of n at (i+½)/n of the way from one keep-alive\n")
	w("answered to the next (a TTL check pass with the defaults and the fast settings, a session renew with\n")
	w("`-check-ttl 0` and for consul lock), so the runs cover the cycle evenly; failover is the SIGKILL to the\n")
	w("new child's start line. The configurations run side by side on separate keys. The last column says\n")
	w("whether the killed leader's child outlived it: how long after the SIGKILL the child was gone, and how\n")
	w("long after the killed process itself was (leaderd's keeper must kill the child at once when leaderd dies).\n\n")
	w("| configuration | flags | runs | failover, each run | median | ÷ consul lock defaults | over the protocol's floor, median | old child after the SIGKILL |\n")
	w("|---|---|---|---|---|---|---|---|\n")
	cl := crashOf(r, consulLockDefaults.Name)
	for _, cs := range r.Crash {
		if len(cs.Runs) == 0 {
			continue
		}
		var each []string
		alive, gone, outlived, keeper := 0, []float64{}, []float64{}, []float64{}
		for _, run := range cs.Runs {
			each = append(each, fmt.Sprintf("%.1f", run.Failover/1000))
			if run.OldChildAlive {
				alive++
			} else if run.ChildGone >= 0 {
				gone = append(gone, run.ChildGone)
				outlived = append(outlived, max(0, run.ChildGone-run.LeaderGone))
			}
			if run.KeeperGone >= 0 {
				keeper = append(keeper, run.KeeperGone)
			}
		}
		state := fmt.Sprintf("gone in every run: %s after the SIGKILL (median, max %s); outlived the killed process by at most %s",
			fmtMs(median(gone)), fmtMs(maxOf(gone)), fmtMs(maxOf(outlived)))
		if len(keeper) > 0 {
			state += fmt.Sprintf("; keeper gone %s after the SIGKILL (median)", fmtMs(median(keeper)))
		}
		if alive > 0 {
			state = fmt.Sprintf("**outlived it: still running at takeover in %d of %d runs**", alive, len(cs.Runs))
		}
		flags := "`" + cs.Flags + "`"
		if cs.Flags == "" {
			flags = "(none)"
		}
		ratio := "–"
		if cl != nil {
			ratio = fmt.Sprintf("%.2f×", median(failovers(&cs))/median(failovers(cl)))
		}
		w("| %s | %s | %d | %s s | %s | %s | %s | %s |\n", cs.Name, flags, len(cs.Runs), strings.Join(each, ", "),
			fmtSec(median(failovers(&cs))), ratio, fmtMs(overFloor(&cs)), state)
	}
	w("\n`consul lock` has no flag for its session TTL or lock-delay (`consul lock -h`: only `-monitor-retry`,\n")
	w("`-timeout`, `-n`, `-name`, `-shell`, …): it always uses api.Lock's session, TTL 15s, lock-delay 15s\n")
	w("(Consul's default, as api.Lock leaves it unset), bound to serfHealth. So instead of a consul lock with\n")
	w("matched settings, leaderd is also run with consul lock's session: `-ttl 15s -lock-delay 15s -check-ttl 0`,\n")
	w("bound to serfHealth only, renewing every 6 s (consul lock's 7.5 s is refused: lock-delay 15 s − margin 2.5 s\n")
	w("must hold two renew intervals).\n\n")
	w("The protocol's floor for a run is the window minus the kill's phase: Consul turns a TTL check critical\n")
	w("check-ttl after its last pass, which invalidates a session bound to it; a session without a check expires\n")
	w("2×TTL after its last renew; then lock-delay runs. What a run takes beyond that is the tool's own delay (and\n")
	w("the agent's: it reaps TTL checks and syncs the critical status to the servers). Over a whole cycle:\n")
	w("- leaderd defaults (check TTL 3s passed every 1s, lock-delay 10s): 12–13 s.\n")
	w("- leaderd fast settings (check TTL 1s passed every 0.33s, lock-delay 2s): 2.7–3 s.\n")
	w("- consul lock (TTL 15s renewed every 7.5s, lock-delay 15s): 37.5–45 s. A waiter refused during lock-delay\n")
	w("  tries again 5 s later (api.Lock's DefaultLockRetryTime) and again; 15 s is three such waits plus their\n")
	w("  round trips, so the third try lands just after lock-delay ends (the floor column): with a lock-delay\n")
	w("  that is not a multiple of 5 s the fixed retry would add up to 5 s. leaderd retries when the delay ends.\n")
	w("- leaderd with consul lock's session (TTL 15s renewed every 6s, lock-delay 15s): 39–45 s.\n\n")
}

func idleSection(b io.Writer, r *Results) {
	if len(r.Idle) == 0 {
		return
	}
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("## Idle cost and footprint\n\n")
	w("Three candidates per configuration, settled, counted over %.0f s (alongside the crash runs, which\n", r.Idle[0].Window)
	w("use other keys). Requests are split by where they go: the local agent forwards session and KV requests\n")
	w("to the Consul servers; it answers TTL check passes alone (a pass that changes neither status nor output is\n")
	w("not synced to the servers). CPU time is utime+stime from /proc/<pid>/stat, extrapolated to an hour; memory\n")
	w("is VmRSS and RssAnon (private anonymous memory) from /proc/<pid>/status at the end of the window. A\n")
	w("`leaderd run` with a command is two processes, leaderd and its keeper (`leaderd __keeper`, which owns the\n")
	w("child's process group and enforces the lease): its CPU and memory are both processes added up, the\n")
	w("keeper's share in its own column.\n\n")
	w("| configuration | role | requests/min | to the servers | check passes to the local agent | of which | CPU s/hour | RSS | private | of which the keeper: RSS; private |\n")
	w("|---|---|---|---|---|---|---|---|---|---|\n")
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
			srv, local := splitIdle(ic)
			keeper := "–"
			if ic.KeeperRSSKiB > 0 {
				keeper = fmtKiB(ic.KeeperRSSKiB) + "; " + fmtKiB(ic.KeeperAnonKiB)
			}
			w("| %s | %s | %.1f | %.1f | %.1f | %s | %.1f | %s | %s | %s |\n", label, role, ic.PerMinute, srv, local, kinds(ic.ByKind, 1),
				ic.CPUSecPerHour, fmtKiB(ic.RSSKiB), fmtKiB(ic.AnonKiB), keeper)
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
		w("| candidates | tool | handovers | p50 | p99 | key the winner's, p50 | then to child start, p50 | writes / reads per handover | requests per handover | start-up until all wait | RSS, all | private, all |\n")
		w("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, p := range r.Scale {
			if p.Skipped != "" {
				w("| %d | %s | skipped: %s |||||||||\n", p.N, p.Tool, p.Skipped)
				continue
			}
			wr, rd := p.split()
			req := fmt.Sprintf("%.0f (%s)", meanInts(p.Requests), kinds(p.RequestKinds, float64(len(p.Requests))))
			if len(p.Restart) > 0 {
				req += fmt.Sprintf(" + %.0f replacement start-up", meanInts(p.Restart))
			}
			procs := ""
			if p.Processes > 0 {
				procs = fmt.Sprintf(" (%d processes)", p.Processes)
			}
			startup := fmt.Sprintf("%.1f s", p.StartSec)
			if p.StartupLeaders > 1 {
				startup += fmt.Sprintf(" (**%d leaders' children started**: leadership changed hands during start-up)", p.StartupLeaders)
			}
			w("| %d | %s | %d | %s | %s | %s | %s | %.1f / %.1f | %s | %s | %.0f MiB%s | %.0f MiB |\n", p.N, p.Tool, len(p.Latencies),
				fmtMs(median(p.Latencies)), fmtMs(percentile(p.Latencies, 99)), fmtMs(median(p.AcquireMs)),
				fmtMs(afterAcquire(p.Latencies, p.AcquireMs)), wr, rd, req, startup, p.RSSMiB, procs, p.AnonMiB)
		}
		w("\nWrites are everything that changes Consul's state (acquires, releases, transactions, session and\n")
		w("check changes); reads are the blocking reads and lists that waiting candidates re-issue, and plain reads.\n")
		for _, p := range r.Scale {
			if p.Tool == toolLeaderd && p.StartSec >= firstElectionWait {
				w("\nleaderd's start-up includes a deliberate wait of lock-delay + margin (10 s + 2.5 s with the defaults):\n")
				w("it takes a key that doesn't exist yet only that long after it first saw it missing, because a missing\n")
				w("key can mean Consul lost its state while an old leader's lease still runs. A released or expired key\n")
				w("is taken at once, as in the handovers.\n")
				break
			}
		}
		w("\n\"RSS, all\" adds up every process's RSS (leaderd: each candidate's leaderd and keeper), so the binary's\n")
		w("shared pages count once per process; \"private, all\" is the memory the candidates really take.\n")
		w("With the defaults every leaderd candidate also passes its TTL check every second, so N candidates send the\n")
		w("agent N check passes a second, on the same 2 cores.\n\n![handover latency vs candidates](%s)\n\n", scaleFile)
	}
	scaleCrashSection(b, r)
	if m := r.Many; m != nil {
		perInterval := float64(m.Renews) / (m.Window / m.RenewInterval)
		w("**%d elections on one shared session** (`elect.NewSession` + `elect.Config{Session: s}`, one process, each election\n", m.Elections)
		w("alone on its key so all lead): all led %.1f s after start; over %.0f s the process sent %d session renews\n", m.SetupSec, m.Window, m.Renews)
		w("(%.1f per %.1f s renew interval, for all %d keys; %d sessions of their own would send %d), and %s in all.\n",
			perInterval, m.RenewInterval, m.Elections, m.Elections, int(float64(m.Elections)*m.Window/m.RenewInterval), kinds(m.ByKind, 1))
		if m.SetupSec >= manyElectionWait {
			w("(The start includes elect's wait of lock-delay + margin, 10 s + 1 s with its defaults, before taking keys\n")
			w("that don't exist yet.)\n")
		}
		w("Memory: RSS %.1f MiB, Go heap in use %.1f MiB, %.1f MiB from the OS, %d goroutines (%.1f KiB RSS per election).\n\n",
			m.RSSMiB, m.HeapInuseMiB, m.SysMiB, m.Goroutines, m.RSSMiB*1024/float64(m.Elections))
	}
}

// scaleCrashSection is crash failover with N candidates on one key.
func scaleCrashSection(b io.Writer, r *Results) {
	if len(r.ScaleCrash) == 0 {
		return
	}
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("**Crash failover with N candidates.** As in [Crash failover](#crash-failover), with each tool's defaults,\n")
	w("N candidate processes on one key, few runs per point (the runs are slow: each consul lock run waits out\n")
	w("2×TTL + lock-delay, and the 500-process series take minutes to start on 2 cores); the kill phases are\n")
	w("the same at every N, so the means compare. Over the floor: what a run took beyond the window minus its\n")
	w("kill's phase.\n\n")
	w("| candidates | tool | runs | kill phase, each run | failover, each run | mean | ÷ 3 candidates' | over the protocol's floor, mean |\n")
	w("|---|---|---|---|---|---|---|---|\n")
	for _, cs := range r.ScaleCrash {
		var each, phases []string
		for _, run := range cs.Runs {
			each = append(each, fmtSec(run.Failover))
			phases = append(phases, fmt.Sprintf("%.2f s", run.Phase))
		}
		rel := "–"
		if c3 := scaleCrashOf(r, cs.Tool, 3); c3 != nil && cs.N != 3 {
			rel = fmt.Sprintf("%.3f×", meanOf(failovers(&cs))/meanOf(failovers(c3)))
		}
		w("| %d | %s | %d | %s | %s | %s | %s | %s |\n", cs.N, cs.Tool, len(cs.Runs), strings.Join(phases, ", "),
			strings.Join(each, ", "), fmtSec(meanOf(failovers(&cs))), rel, fmtMs(meanOf(overFloors(&cs))))
	}
	w("\n")
}
