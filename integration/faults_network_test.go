package integration

import (
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/leaderd/leaderd/integration/history"
)

// TestFaultCutOff: the leader is cut off from Consul by a TCP proxy that
// black-holes or drops its traffic. It steps down on its own when its
// lease ends (lease_expired: lock-delay − margin after its last renew),
// before Consul lets the follower in (its session expires TTL..2×TTL after
// that renew, then the lock-delay runs), and rejoins as a follower once the
// cut heals.
func TestFaultCutOff(t *testing.T) {
	t.Parallel()
	for _, mode := range []proxyMode{proxyBlackhole, proxyDrop} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			agent := faultAgent(t)
			proxy := startTCPProxy(t, agent.Addr)
			r := newFaultRig(t, "cut")
			a := r.start("a", proxy.Addr(), []string{"-log-level", "debug"})
			r.leading(20*time.Second, 0, a)
			b := r.start("b", agent.Addr, nil)
			r.following(20*time.Second, 0, b, "a")
			// Cut in the steady state: after a renew, whose proof time the
			// debug log gives exactly (a create's is only known to within a
			// round trip).
			r.wait(faultTTL, r.mark(), "a renewing", evIs(history.Proof, "a"))

			mark := r.mark()
			cut := r.note(history.Fault, "a", "cut off from Consul (%s)", mode)
			proxy.set(mode)
			down := r.wait(faultLease+faultSlack, mark, "a stepping down", evIs(history.SteppedDown, "a"))
			aReaped := r.wait(faultLease+faultSlack, mark, "a's child reaped", evIs(history.ChildReaped, "a"))
			next := r.leading(2*faultTTL+faultLockDelay+faultSlack, mark, b)
			bElected, bChild := next.elected, next.child

			proof := r.lastProof(a, cut)
			leaseEnd := proof.Add(faultLease)
			t.Logf("cut (%s): a stepped down (%s) %s after the cut, %s after its lease end; its child was reaped %s before b was elected; b elected %s and its child started %s after the cut",
				mode, down.Note, faultMS(down.At.Sub(cut)), faultMS(down.At.Sub(leaseEnd)), faultMS(bElected.At.Sub(aReaped.At)),
				faultMS(bElected.At.Sub(cut)), faultMS(bChild.At.Sub(cut)))
			if down.Note != "lease_expired" {
				t.Errorf("a stepped down with reason %q, want lease_expired", down.Note)
			}
			if down.At.Before(leaseEnd.Add(-time.Millisecond)) || down.At.After(leaseEnd.Add(faultSlack)) {
				t.Errorf("a stepped down at %v, want at its lease end %v", down.At, leaseEnd)
			}
			if !aReaped.At.Before(bElected.At) {
				t.Errorf("a's child was reaped at %v, not before b was elected at %v", aReaped.At, bElected.At)
			}
			if earliest := proof.Add(faultTTL + faultLockDelay); !bElected.At.After(earliest) {
				t.Errorf("b elected at %v, before a's last proof + TTL + lock-delay %v: Consul let it in early", bElected.At, earliest)
			}

			mark = r.mark()
			heal := r.note(history.Heal, "a", "reconnected")
			proxy.set(proxyPass)
			r.following(20*time.Second, mark, a, "b")
			rejoined := r.events(history.LeaderSeen, "a", heal, time.Time{})
			t.Logf("a follows b %s after the heal", faultMS(rejoined[len(rejoined)-1].At.Sub(heal)))
			if evs := r.events(history.Elected, "a", cut, time.Time{}); len(evs) > 0 {
				t.Errorf("a was elected again after the cut: %v", evs)
			}
			r.verify(history.Options{Settle: []history.Settle{{What: "after the heal", After: heal, Within: faultSlack}}})
			a.stop()
			b.stop()
		})
	}
}

// TestFaultConsulErrors: Consul answers errors (500, 429, "No cluster
// leader") through an HTTP proxy in front of each candidate. While only
// reads fail, the leader keeps renewing and keeps leading. While
// everything fails, the leader steps down when its lease ends and not
// before (TTL-only sessions: a check the candidates can't pass through the
// proxy would end their sessions, which is TestFaultInvalidate's subject,
// not this test's). Nobody loops hot: each candidate sends fewer than 3 requests a
// second in either window (< 30 per 10s). Afterwards one leader again.
func TestFaultConsulErrors(t *testing.T) {
	t.Parallel()
	agent := faultAgent(t)
	r := newFaultRig(t, "errors")
	// Lock-delay 6s: a 5s lease renewed every 5s/3, so the reads-only
	// phase proves "renews pass, leadership stays" even when a busy
	// machine delays a renew by a second or two. TTL 6s: Consul keeps the
	// sessions 2×TTL = 12s unrenewed, longer than the outage below, so the
	// leader can only lose its lease, not its session.
	const ttl, lockDelay = 6 * time.Second, 6 * time.Second
	const lease = lockDelay - faultMargin
	debug := []string{"-log-level", "debug", "-ttl", ttl.String(), "-lock-delay", lockDelay.String()}
	var procs []*faultProc
	proxies := map[*faultProc]*faultProxy{}
	for _, id := range []string{"a", "b", "c"} {
		px := startFaultProxy(t, agent.Addr)
		p := r.start(id, px.addr, debug)
		if id == "a" {
			r.leading(20*time.Second, 0, p)
		} else {
			r.following(20*time.Second, 0, p, "a")
		}
		procs = append(procs, p)
		proxies[p] = px
	}
	a := procs[0]
	const maxRate = 3.0 // requests per second per candidate: < 30 per 10s
	window := func(what string, fail func(*http.Request) bool, until func(start time.Time)) (start, end time.Time) {
		t.Helper()
		before := map[*faultProc]int64{}
		for _, p := range procs {
			before[p] = proxies[p].requests.Load()
		}
		start = r.note(history.Fault, "", "%s answer errors", what)
		for _, p := range procs {
			proxies[p].failWhen(fail)
		}
		until(start)
		for _, p := range procs {
			proxies[p].failWhen(nil)
		}
		end = r.note(history.Heal, "", "%s pass again", what)
		secs := end.Sub(start).Seconds()
		for _, p := range procs {
			n := proxies[p].requests.Load() - before[p]
			t.Logf("%s failing for %.1fs: %s sent %d requests (%.1f/s)", what, secs, p.name, n, float64(n)/secs)
			if float64(n) > maxRate*secs {
				t.Errorf("%s sent %d requests in %.1fs while %s failed: a hot loop (limit %.0f/s)", p.name, n, secs, what, maxRate)
			}
		}
		return start, end
	}

	// Reads fail; renews pass. The fault lasts until a has renewed its
	// session 4 times through it (~7s).
	mark := r.mark()
	start, end := window("reads", isRead, func(start time.Time) {
		for range 4 {
			r.wait(ttl, r.mark(), "a renewing while reads fail", evIs(history.Proof, "a"))
		}
	})
	if evs := r.events(history.SteppedDown, "", start, end); len(evs) > 0 {
		t.Errorf("leadership lost while only reads failed and renews passed: %v", evs)
	}
	if evs := r.events(history.Elected, "", start, end); len(evs) > 0 {
		t.Errorf("elections while only reads failed: %v", evs)
	}

	// Everything fails, for 8s: longer than the lease (5s), shorter than
	// the sessions' 2×TTL. The leader steps down at its lease end, not
	// before.
	const outage = 8 * time.Second
	mark = r.mark()
	start, end = window("all requests", everything, func(start time.Time) {
		r.wait(lease+faultSlack, mark, "a stepping down", evIs(history.SteppedDown, "a"))
		// The rest of the outage is the fault itself, not synchronisation.
		<-time.After(time.Until(start.Add(outage)))
	})
	down := r.events(history.SteppedDown, "a", start, end)[0]
	leaseEnd := r.lastProof(a, start).Add(lease)
	t.Logf("outage: a stepped down (%s) %s after it began, %s after its lease end", down.Note, faultMS(down.At.Sub(start)), faultMS(down.At.Sub(leaseEnd)))
	if down.Note != "lease_expired" || down.At.Before(leaseEnd.Add(-time.Millisecond)) {
		t.Errorf("a stepped down (%s) at %v; want lease_expired at its lease end %v, not before", down.Note, down.At, leaseEnd)
	}

	// Recovery: one leader again once the candidates are out of their
	// longest backoff (10s) and the old session is gone: a's release and
	// destroy failed in the outage, so Consul expires its session 2×TTL
	// after its last renew (up to 2×TTL − outage after the end), then
	// keeps the key for the lock-delay.
	const recovery = max(10*time.Second, 2*ttl-outage+lockDelay) + faultSlack
	next := r.leading(recovery+faultSlack, mark, nil).child
	t.Logf("after the outage: %s leads (child started) %s after it ended", next.Candidate, faultMS(next.At.Sub(end)))
	r.verify(history.Options{Settle: []history.Settle{{What: "after the outage", After: end, Within: recovery}}})
	for _, p := range procs {
		p.stop()
	}
}

// TestFaultWatchErrorInLockDelay: a follower's connection to Consul blips
// (one watch fails) while it waits out the lock-delay of a crashed
// leader's session. The key is free and stays free, so once the lock-delay
// is over the follower must lead: a watch error makes it forget the key,
// and it has to read the key afresh, not block on the index of an answer
// it no longer trusts (that blocking read returns only when the key
// changes, or after the watch wait: minutes). Found by this test: elect's
// onWatch forgot the key on an error (seen = false) but kept its index.
func TestFaultWatchErrorInLockDelay(t *testing.T) {
	t.Parallel()
	agent := fastAgent(t)
	seedKey(t, agent.Addr, "services/blip/leader")
	proxy := startTCPProxy(t, agent.Addr)
	h := newHub()
	a := start(t, h, "a", []string{"CONSUL_HTTP_ADDR=" + agent.Addr}, runArgs("blip", "a")...)
	h.wait(t, 20*time.Second, 0, "a elected", from(a, "elected"))
	b := start(t, h, "b", []string{"CONSUL_HTTP_ADDR=" + proxy.Addr()}, runArgs("blip", "b", "-log-level", "debug")...)
	h.wait(t, 20*time.Second, 0, "b following a", from(b, "leader changed"))

	// a crashes; Consul expires its session (TTL..2×TTL) and keeps the key
	// for the lock-delay. b sees it free and, the key's record saying an
	// invalidation left it, ranks itself and waits the lock-delay out.
	mark := h.mark()
	a.signal(t, syscall.SIGKILL)
	a.exit(t, 5*time.Second)
	free := lineTime(t, h.wait(t, 2*testTTL+2*time.Second, mark, "b seeing the key free", from(b, "no leader")))
	h.wait(t, time.Second, mark, "b waiting out the lock-delay", from(b, "ranked"))

	// The blip: every connection of b's dropped (its blocking watch with
	// them), then at once passed again.
	mark = h.mark()
	proxy.set(proxyDrop)
	h.wait(t, 5*time.Second, mark, "b's watch failing", from(b, "watch key failed"))
	proxy.set(proxyPass)
	healed := time.Now()

	// b leads once the lock-delay is over and its watch has read the key
	// again (after at most a few backoffs).
	bound := max(time.Until(free.Add(testLockDelay)), 0) + 5*time.Second
	l := h.wait(t, bound, mark, "b elected after the lock-delay (a watch error must not leave b blocking on the index of a key it forgot)", from(b, "elected"))
	t.Logf("b saw the key free, waited for the lock-delay (%v), had its watch fail; elected %v after it saw the key free, %v after the blip healed",
		testLockDelay, lineTime(t, l).Sub(free), lineTime(t, l).Sub(healed))
}
