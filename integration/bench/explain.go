package main

import (
	"fmt"
	"io"
	"math"
)

// explain writes, for each target the figures miss (and each defect they
// show), the reason, with the measurement that supports it. Paragraphs
// appear only when the numbers call for them.
func explain(b io.Writer, r *Results) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("## Why\n\n")
	said := 0
	needFix := false // the read-back of the fencing token costs time

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
		if l == nil || c == nil || median(l.Latencies) <= median(c.Latencies)*1.10 {
			continue
		}
		said++
		w("**Graceful handover (%s).** leaderd took %s (p50) against consul lock's %s.\n",
			mode, fmtMs(median(l.Latencies)), fmtMs(median(c.Latencies)))
		if lr, cr := median(measured(l.ReleaseMs)), median(measured(c.ReleaseMs)); !math.IsNaN(lr) && !math.IsNaN(cr) {
			w("The old leader sent its release %s after its child's exit line (consul lock: %s).", fmtMs(lr), fmtMs(cr))
			if lr > cr {
				w(" leaderd learns of\n")
				w("the exit from its keeper (the child's parent, which reaps it, makes sure its whole group is gone and\n")
				w("tells leaderd over a pipe), and it stops claiming leadership before it lets go of the key; consul\n")
				w("lock waits for its own child.")
			}
			w("\n")
		}
		w("The winner's acquire was answered %s after the old child's exit (consul lock: %s); from there to the\n",
			fmtMs(median(l.AcquireMs)), fmtMs(median(c.AcquireMs)))
		w("new child's start took %s (consul lock: %s), of which leaderd's consistent read-back of its fencing token\n",
			fmtMs(afterAcquire(l.Latencies, l.AcquireMs)), fmtMs(afterAcquire(c.Latencies, c.AcquireMs)))
		w("took %s, a round trip consul lock doesn't make (it has no token), and the rest includes telling the keeper\n",
			fmtMs(median(measured(l.ReadBackMs))))
		w("to start the child and hearing back (%s from the read-back's answer to the child's start line).\n\n",
			fmtMs(median(measured(l.FromReadMs))))
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

// overFloor is the median time a crash series took beyond the protocol's
// floor (window − phase), in ms.
func overFloor(cs *CrashSeries) float64 {
	var over []float64
	for _, run := range cs.Runs {
		over = append(over, run.Failover-1000*(cs.Window-run.Phase))
	}
	return median(over)
}

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
