package main

import (
	"fmt"
	"io"
)

// explain writes, for each target the figures miss (and each defect they
// show), the reason, with the measurement that supports it. Paragraphs
// appear only when the numbers call for them.
func explain(b io.Writer, r *Results) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("## Why\n\n")
	said := 0
	needFix := false // the read-back of the fencing token costs time

	if l, c, q := idleOf(r, leaderdDefaults.Name, "follower"), idleOf(r, consulLockDefaults.Name, "follower"),
		idleOf(r, leaderdQuiet.Name, "follower"); l != nil && c != nil && l.PerMinute > c.PerMinute*1.02 {
		said++
		cl := idleOf(r, consulLockDefaults.Name, "leader")
		w("**Idle requests.** A leaderd candidate's idle traffic is its session renew: %.1f/min (every TTL/3 = 3.3 s\n", l.ByKind[kindRenew])
		w("with the default TTL of 10 s); its blocking read waits 5 minutes. consul lock renews every TTL/2 = 7.5 s with\n")
		w("TTL 15 s (%.1f/min), and its waiters re-issue a 15 s blocking read (%.1f/min). The renew rate is what\n",
			c.ByKind[kindRenew], c.ByKind[kindWatch])
		w("buys the faster failover: Consul expires a session 2×TTL after its last renew, so a shorter TTL needs more\n")
		w("renews; and a leaderd leader must get two renews into its lease (TTL + lock-delay − margin, the margin\n")
		w("being -kill-timeout + 0.5 s for `leaderd run`) or it steps down on one lost renew. It is a setting, not\n")
		w("a protocol cost:")
		if q != nil {
			ql := idleOf(r, leaderdQuiet.Name, "leader")
			w(" with consul lock's session settings and renew period (`%s`), leaderd measured %.1f (leader) and\n", q.Flags, ql.PerMinute)
			w("%.1f (follower) requests/min against consul lock's %.1f and %.1f, and fails over like consul lock\n", q.PerMinute, cl.PerMinute, c.PerMinute)
			w("(37.5–45 s after a crash, by the protocol).\n")
		} else {
			w(" `-ttl 15s -lock-delay 15s -renew-interval 7.5s` renews as seldom as consul lock.\n")
		}
		w("A cheaper default is possible in `elect`: a follower's session doesn't guard anything, so followers could\n")
		w("renew every TTL/2 (or later) and only the leader every TTL/3, cutting two thirds of the candidates'\n")
		w("renews by a third without touching failover time.\n\n")
	}

	if l, c := crashOf(r, leaderdDefaults.Name), crashOf(r, consulLockDefaults.Name); l != nil && c != nil &&
		median(failovers(c)) < 2*median(failovers(l)) {
		said++
		w("**Crash failover with defaults.** consul lock's median was %.2f× leaderd's, short of 2×. Both are\n",
			median(failovers(c))/median(failovers(l)))
		w("set by their session settings, not by how fast either tool reacts (see the floor column): leaderd's\n")
		w("defaults let Consul hand over %.0f s after the last renew, consul lock's %.0f s; over a renew cycle\n", l.Window, c.Window)
		w("that is 16.7–20 s against 37.5–45 s, plus up to 5 s of api.Lock's retry sleep. Fast crash detection\n")
		w("(`-check-ttl`) is leaderd's answer when seconds matter.\n\n")
	}

	if l, c := idleOf(r, leaderdDefaults.Name, "follower"), idleOf(r, consulLockDefaults.Name, "follower"); l != nil && c != nil &&
		float64(c.RSSKiB)/float64(l.RSSKiB) < 10 {
		said++
		f := r.Footprint
		w("**Memory.** RSS counts the pages of the binary mapped into the process, and the kernel maps in the page\n")
		w("cache around every fault: of the %s of its binary leaderd maps, %s are resident (consul lock: %s of %s).\n",
			fmtKiB(l.ExeMappedKiB), fmtKiB(l.ExeRSSKiB), fmtKiB(c.ExeRSSKiB), fmtKiB(c.ExeMappedKiB))
		w("Those pages are shared by every process running the binary and reclaimable, not per-instance memory.\n")
		w("What each instance costs is its private memory: leaderd %s, consul lock %s\n", fmtKiB(l.AnonKiB), fmtKiB(c.AnonKiB))
		w("(%.1f× less). leaderd is near the floor of a Go program:", float64(c.AnonKiB)/float64(l.AnonKiB))
		if f.ChildRSSKiB > 0 {
			w(" one that only waits for a signal takes %s private (%s RSS) here, and", fmtKiB(f.ChildAnonKiB), fmtKiB(f.ChildRSSKiB))
		}
		w("\nleaderd adds net/http, TLS and JSON. The binaries differ %.0f× (%s vs %s), which is what the page cache\n",
			float64(f.ConsulBytes)/float64(f.LeaderdBytes), fmtBytes(f.LeaderdBytes), fmtBytes(f.ConsulBytes))
		w("holds per machine. An order of magnitude on RSS would need leaderd to drop below the Go runtime's own size.\n\n")
	}

	for _, mode := range []string{modeChildExit, modeSIGTERM} {
		l, c := handoverOf(r, toolLeaderd, mode), handoverOf(r, toolConsulLock, mode)
		if l == nil || c == nil || median(l.Latencies) <= median(c.Latencies)*1.10 {
			continue
		}
		said++
		w("**Graceful handover (%s).** leaderd took %s (p50) against consul lock's %s. The winner's acquire\n",
			mode, fmtMs(median(l.Latencies)), fmtMs(median(c.Latencies)))
		w("was answered %s after the old child's exit (consul lock: %s); from there to the new child's start took\n",
			fmtMs(median(l.AcquireMs)), fmtMs(median(c.AcquireMs)))
		w("%s (consul lock: %s), of which leaderd's consistent read-back of its fencing token took %s: a round\n",
			fmtMs(afterAcquire(l.Latencies, l.AcquireMs)), fmtMs(afterAcquire(c.Latencies, c.AcquireMs)), fmtMs(median(measured(l.ReadBackMs))))
		w("trip consul lock doesn't make (it has no token).\n\n")
		needFix = true
	}

	if n, l, c := largestScale(r); l != nil && c != nil && median(l.Latencies) > median(c.Latencies) {
		said++
		w("**Handover with many candidates.** With %d candidates, leaderd's handover took %s (p50) against consul\n",
			n, fmtMs(median(l.Latencies)))
		w("lock's %s. The winner's acquire was answered %s (leaderd) and %s (consul lock) after the old child's\n",
			fmtMs(median(c.Latencies)), fmtMs(median(l.AcquireMs)), fmtMs(median(c.AcquireMs)))
		w("exit; from there to the new child's start took %s for leaderd and %s for consul lock (medians).\n",
			fmtMs(afterAcquire(l.Latencies, l.AcquireMs)), fmtMs(afterAcquire(c.Latencies, c.AcquireMs)))
		rb := median(measured(l.ReadBackMs))
		w("What leaderd does after winning and consul lock doesn't: it reads the key back with `?consistent` to\n")
		w("learn its fencing token (the key's ModifyIndex) before starting the child. Medians: %s from the\n", fmtMs(median(measured(l.ToReadMs))))
		w("acquire's answer until the read-back was sent, %s for the read-back itself, %s from its answer to the\n", fmtMs(rb), fmtMs(median(measured(l.FromReadMs))))
		w("child's start; consul lock went from acquire to child in %s. Each step waits for the CPU: the other\n", fmtMs(afterAcquire(c.Latencies, c.AcquireMs)))
		w("candidates kept waking and trying until the last acquire answered at %s (consul lock: %s), %d\n",
			fmtMs(median(l.HerdMs)), fmtMs(median(c.HerdMs)), n)
		w("processes and the agent sharing 2 cores, and the read-back queues behind their refused acquires in\n")
		w("the agent (%.0f per handover, each a Raft write).\n\n", float64(l.RequestKinds[kindAcquire])/float64(len(l.Requests)))
		needFix = true
	}

	if needFix {
		w("**The fix for the read-back** (in `consulhttp`/`elect`, not done here): acquire with a transaction,\n")
		w("`PUT /v1/txn` with a KV `lock` op. Consul answers with the locked entry, ModifyIndex included\n")
		w("(agent/consul/state/txn.go), so the token arrives with the acquire in one round trip; lock-delay is\n")
		w("still enforced (agent/consul/txn_endpoint.go).\n\n")
	}

	for _, h := range r.Handover {
		if h.Tool == toolLeaderd && h.ChildKilled > 0 {
			said++
			w("**A defect: one SIGTERM can SIGKILL the child.** In %d of %d SIGTERM handovers leaderd killed its child\n", h.ChildKilled, len(h.Latencies))
			w("with SIGKILL instead of letting it stop (its log: `second signal; killing child`). `main` registers\n")
			w("SIGINT/SIGTERM with `signal.NotifyContext` and `run.go` with its own `signal.Notify`, so one signal\n")
			w("reaches both; when the context wins, the copy arriving later on run.go's channel counts as a second\n")
			w("signal. Fix (in run.go): after stopping because the context ended, take the next SIGINT/SIGTERM on\n")
			w("the channel as that same signal, not a second one.\n\n")
		}
	}

	if cs := crashOf(r, consulLockDefaults.Name); cs != nil {
		alive := 0
		for _, run := range cs.Runs {
			if run.OldChildAlive {
				alive++
			}
		}
		if alive > 0 {
			said++
			w("**Safety, not speed: a SIGKILLed consul lock leaves its child running.** In %d of %d runs the old child\n", alive, len(cs.Runs))
			w("was still running when the next consul lock started its own: consul lock sets no parent-death signal,\n")
			w("so two children acted as leader at once (the benchmark then killed the orphan). leaderd's child dies\n")
			w("with it (Pdeathsig): see the last column of the crash table.\n\n")
		}
	}
	if said == 0 {
		w("Every target is met.\n\n")
	}
}

// afterAcquire is the median time from the winner's acquire answer to its
// child's start.
func afterAcquire(latencies, acquires []float64) float64 {
	var d []float64
	for i := range min(len(latencies), len(acquires)) {
		d = append(d, latencies[i]-acquires[i])
	}
	return median(d)
}

// measured drops the -1s (no such request).
func measured(xs []float64) []float64 {
	var out []float64
	for _, x := range xs {
		if x >= 0 {
			out = append(out, x)
		}
	}
	return out
}

// largestScale returns the largest candidate count measured for both tools.
func largestScale(r *Results) (int, *ScalePoint, *ScalePoint) {
	best := 0
	var l, c *ScalePoint
	for i := range r.Scale {
		p := &r.Scale[i]
		if p.Skipped != "" || len(p.Latencies) == 0 || p.N < best {
			continue
		}
		for j := range r.Scale {
			q := &r.Scale[j]
			if q.N == p.N && q.Tool != p.Tool && q.Skipped == "" && len(q.Latencies) > 0 {
				best = p.N
				if p.Tool == toolLeaderd {
					l, c = p, q
				} else {
					l, c = q, p
				}
			}
		}
	}
	return best, l, c
}
