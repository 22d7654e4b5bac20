package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// explain writes, for each target the figures miss (and each defect they
// show), the reason, with the measurement that supports it. Paragraphs
// appear only when the numbers call for them.
func explain(b io.Writer, r *Results) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("## Why\n\n")
	said := 0

	if ll, lf, cl, cf := idleOf(r, leaderdDefaults.Name, "leader"), idleOf(r, leaderdDefaults.Name, "follower"),
		idleOf(r, consulLockDefaults.Name, "leader"), idleOf(r, consulLockDefaults.Name, "follower"); ll != nil && lf != nil && cl != nil && cf != nil &&
		(ll.PerMinute > cl.PerMinute*1.02 || lf.PerMinute > cf.PerMinute*1.02) {
		said++
		ls, lc := splitIdle(ll)
		fs, fc := splitIdle(lf)
		w("**Idle requests (stated, no target).** With the defaults a leaderd leader sent %.1f requests/min to the servers\n", ls)
		w("(%s) and passed its TTL check %.1f times/min in its local agent; a follower %.1f (%s) plus %.1f check\n",
			kinds(withoutLocal(ll.ByKind), 1), lc, fs, kinds(withoutLocal(lf.ByKind), 1), fc)
		w("passes. consul lock: %.1f (leader) and %.1f (follower: %s), all to the servers: it renews every TTL/2 =\n",
			cl.PerMinute, cf.PerMinute, kinds(cf.ByKind, 1))
		w("7.5 s and its waiters re-issue a 15 s blocking read. Where leaderd's come from:\n")
		w("- The leader's renews are what the lease costs: lease_end = t_v + lock-delay − margin, and a leader must\n")
		w("  get two renews into it, so it renews every min(ttl/3, (lock-delay − margin)/3) = (10 s − 2.5 s)/3 = 2.5 s\n")
		w("  (24/min). A follower's session guards nothing (the acquire's own success proves it alive), so it renews\n")
		w("  every max(2.5 s, ttl/2) = 5 s (12/min).\n")
		w("- The check passes are what buys the crash failover: every candidate passes a 3 s TTL check every 1 s\n")
		w("  (60/min), so a dead leaderd is noticed check-ttl after its last pass instead of up to 2×TTL after its\n")
		w("  last renew. They stay in the local agent: it syncs a check to the servers only when its status changes\n")
		w("  (an output change at most every `check_update_interval`, 5 min; leaderd's output never changes).\n")
		w("- Its blocking read waits 5 minutes (consul lock's 15 s).\n")
		if f, fl := idleOf(r, leaderdFast.Name, "follower"), idleOf(r, leaderdFast.Name, "leader"); f != nil && fl != nil {
			a, b := splitIdle(fl)
			c, d := splitIdle(f)
			w("- The fast settings (`%s`) cost %.1f to the servers + %.1f check passes (leader: a renew every\n", f.Flags, a, b)
			w("  (2 s − 1 s)/3 = 333 ms, a pass every 333 ms) and %.1f + %.1f (follower) per minute.\n", c, d)
		}
		if q, ql := idleOf(r, leaderdMatched.Name, "follower"), idleOf(r, leaderdMatched.Name, "leader"); q != nil && ql != nil {
			w("\nIt is a setting, not a protocol cost: with consul lock's session (`%s`: TTL 15 s, lock-delay 15 s, no\n", q.Flags)
			w("check; 6 s is the slowest leader renew lock-delay 15 s − margin 2.5 s allows) leaderd sent %.1f (leader) and\n", ql.PerMinute)
			w("%.1f (follower) requests/min against consul lock's %.1f and %.1f", q.PerMinute, cl.PerMinute, cf.PerMinute)
			if m := crashOf(r, leaderdMatched.Name); m != nil {
				w(", and failed over like consul lock (%s median\nafter a crash)", fmtSec(median(failovers(m))))
			}
			w(".\n")
		}
		w("\n")
	}

	for _, t := range []struct {
		f      flavor
		target float64
	}{{leaderdDefaults, 0.5}, {leaderdFast, 0.1}} {
		l, c := crashOf(r, t.f.Name), crashOf(r, consulLockDefaults.Name)
		if l == nil || c == nil || median(failovers(l)) <= t.target*median(failovers(c)) {
			continue
		}
		said++
		lm, cm := median(failovers(l)), median(failovers(c))
		w("**Crash failover, %s.** leaderd's median was %s, %.2f× consul lock's %s: above the %g× target.\n",
			t.f.Name, fmtSec(lm), lm/cm, fmtSec(cm), t.target)
		w("Both are set by their session settings, and the floor column shows how much each tool added: Consul lets\n")
		w("another candidate in %.1f–%.1f s after a leaderd crash with these settings (check-ttl after the last check\n",
			l.Window-t.f.Cycle.Seconds(), l.Window)
		w("pass, then lock-delay), and 37.5–45 s after a consul lock crash (2×TTL after the last renew, then\n")
		w("lock-delay), plus up to 5 s of api.Lock's retry sleep. Over the floor, leaderd took %s (median), consul lock %s.\n\n",
			fmtMs(overFloor(l)), fmtMs(overFloor(c)))
	}

	if l, c := idleOf(r, leaderdDefaults.Name, "follower"), idleOf(r, consulLockDefaults.Name, "follower"); l != nil && c != nil &&
		float64(c.RSSKiB)/float64(l.RSSKiB) < 10 {
		said++
		f := r.Footprint
		w("**Memory.** RSS counts the pages of the binary mapped into the process, and the kernel maps in the page\n")
		w("cache around every fault: of the %s of its binary leaderd maps (with its keeper), %s are resident (consul lock: %s of %s).\n",
			fmtKiB(l.ExeMappedKiB), fmtKiB(l.ExeRSSKiB), fmtKiB(c.ExeRSSKiB), fmtKiB(c.ExeMappedKiB))
		w("Those pages are shared by every process running the binary and reclaimable, not per-instance memory.\n")
		w("What each instance costs is its private memory: leaderd %s, consul lock %s\n", fmtKiB(l.AnonKiB), fmtKiB(c.AnonKiB))
		w("(%.1f× less). ", float64(c.AnonKiB)/float64(l.AnonKiB))
		if l.KeeperRSSKiB > 0 {
			w("leaderd's figures are two processes added up: a `leaderd run` with a command also runs its keeper\n")
			w("(leaderd re-executed as `leaderd __keeper`, which owns the child's process group and enforces the\n")
			w("lease), and the keeper's %s RSS and %s private are included. ", fmtKiB(l.KeeperRSSKiB), fmtKiB(l.KeeperAnonKiB))
		}
		w("Each process is near the floor of a Go program:")
		if f.ChildRSSKiB > 0 {
			w(" one that only waits for a signal takes %s private (%s RSS) here, and", fmtKiB(f.ChildAnonKiB), fmtKiB(f.ChildRSSKiB))
		}
		w("\nleaderd adds net/http, TLS and JSON, the keeper little. The binaries differ %.0f× (%s vs %s), which is what the page cache\n",
			float64(f.ConsulBytes)/float64(f.LeaderdBytes), fmtBytes(f.LeaderdBytes), fmtBytes(f.ConsulBytes))
		w("holds per machine. An order of magnitude on RSS would need leaderd to drop below the Go runtime's own size.\n\n")
	}

	for _, mode := range []string{modeChildExit, modeSIGTERM} {
		l, c := handoverOf(r, toolLeaderd, mode), handoverOf(r, toolConsulLock, mode)
		if l == nil || c == nil || median(l.Latencies) <= handoverTarget3*median(c.Latencies) {
			continue
		}
		said++
		w("**Graceful handover, 3 candidates (%s).** leaderd took %s (p50) against consul lock's %s, %.2f×: above\n",
			mode, fmtMs(median(l.Latencies)), fmtMs(median(c.Latencies)), median(l.Latencies)/median(c.Latencies))
		w("the %g× target. ", handoverTarget3)
		handoverSteps(w, l.Latencies, l.ReleaseMs, l.ListMs, l.AcquireMs, l.SeenMs, l.HandedOver, l.ReadBackMs, c.Latencies, c.ReleaseMs, c.AcquireMs)
		w("\n")
	}

	if n, l, c := largestScale(r); l != nil && c != nil &&
		(median(l.Latencies) > handoverTargetMany*median(c.Latencies) || median(l.Latencies) > handoverTargetManyMs) {
		said++
		w("**Handover with %d candidates.** leaderd's handover took %s (p50) against consul lock's %s (%.2f×; the\n",
			n, fmtMs(median(l.Latencies)), fmtMs(median(c.Latencies)), median(l.Latencies)/median(c.Latencies))
		w("target is ≤ %g× and ≤ %s). ", handoverTargetMany, fmtMs(handoverTargetManyMs))
		handoverSteps(w, l.Latencies, l.ReleaseMs, l.ListMs, l.AcquireMs, l.SeenMs, l.HandedOver, l.ReadBackMs, c.Latencies, c.ReleaseMs, c.AcquireMs)
		lw, lr := l.split()
		cw, cr := c.split()
		w("Per handover leaderd's candidates sent %.1f writes and %.1f reads (consul lock's: %.1f and %.1f). Every step\n", lw, lr, cw, cr)
		w("waits for the CPU: %d candidate processes and the agent share 2 cores, and the handover wakes every\n", n)
		w("waiting candidate: each follower's blocking read of the key returns when the key changes and is\n")
		w("re-issued, so the agent answers and the candidates handle about N reads per handover, whatever the\n")
		w("election does with them, while the new leader is starting its child.\n\n")
	}

	if lw, _ := writesReads(r, toolLeaderd); len(lw) > 1 && slices.Max(lw) > 1.5*slices.Min(lw) {
		said++
		var ws []string
		for _, x := range lw {
			ws = append(ws, fmt.Sprintf("%.1f", x))
		}
		w("**Requests per handover.** leaderd's writes per handover were %s at N = %s, not constant. By kind:\n",
			strings.Join(ws, "/"), joinInts(scaleNs(r, toolLeaderd), "/"))
		for _, p := range measuredScale(r, toolLeaderd) {
			writes := map[string]int{}
			for k, v := range p.RequestKinds {
				if !isRead(k) {
					writes[k] = v
				}
			}
			w("- %d candidates: %s.\n", p.N, kinds(writes, float64(len(p.Requests))))
		}
		w("The handover itself is one transaction at every N. Registrations (`%s`) are candidates writing their\n", kindRegister)
		w("registry entry again: Consul had invalidated their sessions (their TTL checks went critical while the\n")
		w("agent was saturated), they made new ones, and the entry stays locked for the old session's lock-delay,\n")
		w("so they retry within it; session creates and such retries land inside handovers when they coincide.\n\n")
	}

	if l3, ln := scaleCrashOf(r, toolLeaderd, 3), largestScaleCrash(r, toolLeaderd); l3 != nil && ln != nil && ln.N > 3 {
		if devs, worst := runByRun(ln, l3); worst > crashScaleTolerance {
			said++
			w("**Crash failover with %d candidates.** leaderd's failover took %s (mean of %d runs) against %s with 3\n",
				ln.N, fmtSec(meanOf(failovers(ln))), len(ln.Runs), fmtSec(meanOf(failovers(l3))))
			w("candidates; run by run, at the same kill phases, %s; over the protocol's floor %s against %s (means).\n",
				devs, fmtMs(meanOf(overFloors(ln))), fmtMs(meanOf(overFloors(l3))))
			if below := belowFloor(ln); below > 0 {
				w("%d of its runs ended **below the floor**: a child started sooner than Consul lets anyone take the key of\n", below)
				w("a crashed leader's session. That is only possible if Consul had invalidated the killed leader's session\n")
				w("before the SIGKILL (its lease, which ends before the lock-delay does, still running): the lock-delay then\n")
				w("counted from the invalidation, not from the crash. The candidates' logs (-keep) show sessions invalidated\n")
				w("en masse at this size (`session not found on renew`).\n")
			}
			w("\n")
		}
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
			w("so two children acted as leader at once (the benchmark then killed the orphan). leaderd's keeper kills\n")
			w("its child's whole process group as soon as leaderd is gone: see the last column of the crash table.\n\n")
		}
	}
	if runs, worst, alive := leaderdOutlived(r); runs > 0 && (alive > 0 || worst > outliveLimit) {
		said++
		w("**A defect: a SIGKILLed leaderd's child outlived it.** Over %d leaderd crash runs the child was still\n", runs)
		w("running when the next leader's started in %d, and outlived its leaderd by up to %s (the limit is %s). The keeper\n",
			alive, fmtMs(worst), fmtMs(outliveLimit))
		w("should see leaderd's command pipe close and SIGKILL the child's group at once; the candidates' logs in the\n")
		w("scratch directory (-keep) show what it did.\n\n")
	}
	if said == 0 {
		w("Every target is met.\n\n")
	}
}

// handoverSteps writes where a handover's time went, leaderd's against
// consul lock's (medians, ms from the old child's exit), from what the
// proxy saw: a read-back is named only if leaderd's winner made one.
func handoverSteps(w func(string, ...any), lat, rel, list, acq, seen []float64, handed int, readBack, clat, crel, cacq []float64) {
	w("From the old child's exit, medians: the old leader sent its release or handover at %s (consul lock: %s)",
		fmtMs(median(measured(rel))), fmtMs(median(measured(crel))))
	if lm := measured(list); len(lm) > 0 {
		w(",\nafter reading the candidate registry to pick the successor (a list, %s)", fmtMs(median(lm)))
	}
	w(";\n")
	w("the key was the winner's at %s (consul lock: %s, its acquire answered)", fmtMs(median(acq)), fmtMs(median(cacq)))
	if handed > 0 {
		w(";\nleaderd's handover transaction moved it in %d of %d (the rest: the winner's own acquire)", handed, len(lat))
	}
	if sm := measured(seen); len(sm) > 0 {
		w(", and the winner's blocking read\nbrought it the handed-over key at %s", fmtMs(median(sm)))
	}
	w("; its child started %s after the key was its (consul lock: %s).\n", fmtMs(afterAcquire(lat, acq)), fmtMs(afterAcquire(clat, cacq)))
	if rb := measured(readBack); len(rb) > 0 {
		w("leaderd's winner read the key back after it took it in %d of %d handovers (%s, median).\n", len(rb), len(lat), fmtMs(median(rb)))
	} else {
		w("leaderd's winner made no read-back: its token comes with the transaction that gave it the key.\n")
	}
}

// belowFloor counts the runs that took less than the protocol allows.
func belowFloor(cs *CrashSeries) int {
	n := 0
	for _, o := range overFloors(cs) {
		if o < 0 {
			n++
		}
	}
	return n
}

// overFloors is each run's time beyond the protocol's floor, in ms.
func overFloors(cs *CrashSeries) []float64 {
	var over []float64
	for _, run := range cs.Runs {
		over = append(over, run.Failover-1000*(cs.Window-run.Phase))
	}
	return over
}

// overFloor is the median time a crash series took beyond the protocol's
// floor (window − phase), in ms.
func overFloor(cs *CrashSeries) float64 { return median(overFloors(cs)) }

// withoutLocal is a by-kind count without what the local agent answers
// alone (check passes).
func withoutLocal(m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if k != kindCheck && k != kindCheckReg {
			out[k] = v
		}
	}
	return out
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
