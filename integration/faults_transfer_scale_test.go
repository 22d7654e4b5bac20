package integration

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/leaderd/leaderd/elect"
)

// The rank-ordered takeover after a crash with a crowd of in-process
// candidates, and what a leader knows of itself.

// TestFaultRankedFailoverHundred: 120 candidates (in-process elections,
// each with its own Consul client and session: 120 leaderd processes are
// more than two shared cores can run). The leader crashes: its network is
// cut and its session destroyed, which makes Consul keep the key for the
// lock-delay. Then the candidates take the key in rank order: the best one
// (priority 5, though it joined late) tries first and leads just after the
// lock-delay; the others see the key taken before their turn. So the crowd
// sends O(1) acquires, not one or more each. (Under load the second or
// third rank sometimes wins: see TestFaultRankInversionSlowWatch.)
func TestFaultRankedFailoverHundred(t *testing.T) {
	const n, best = 120, "c077"
	agent := faultAgent(t, `limits { http_max_conns_per_client = 1000 }`)
	key := elect.KeyFor("ranked")
	seedKey(t, agent.Addr, key)
	log, lt := &acquireLog{key: key}, &leaderTrack{t: t, changed: make(chan struct{})}
	// PriorityHold: no preemption by the priority-5 candidate before the
	// crash; the crash is what this test is about.
	cfg := elect.Config{Key: key, TTL: 10 * time.Second, LockDelay: faultLockDelay, Margin: 500 * time.Millisecond, PriorityHold: time.Hour}

	// The first leader talks through a proxy the test can drop: its crash.
	cut := startTCPProxy(t, agent.Addr)
	lead := startInProc(t, "c000", cut.Addr(), cfg, log, lt)
	lt.waitElected(0, 30*time.Second)
	cands := []*inProcCandidate{lead}
	t0 := time.Now()
	for i := 1; i < n; i++ {
		id, c := fmt.Sprintf("c%03d", i), cfg
		if id == best {
			c.Priority = 5
		}
		cands = append(cands, startInProc(t, id, agent.Addr, c, log, lt))
	}
	client := consulClient(t, agent.Addr)
	pollUntil(t, 60*time.Second, fmt.Sprintf("%d candidates registered and following c000", n), func() bool {
		es, _, err := elect.Candidates(context.Background(), client, key)
		live := 0
		for _, e := range es {
			if e.Live {
				live++
			}
		}
		return err == nil && live == n && following(cands[1:], lead.e.State().Session)
	})
	t.Logf("%d candidates up in %s", n, faultMS(time.Since(t0)))
	es, _, err := elect.Candidates(context.Background(), client, key)
	if err != nil {
		t.Fatal(err)
	}
	var ranked []string // the followers best first: the order they try in
	for _, e := range es {
		if e.Live && !e.Leading {
			ranked = append(ranked, e.ID)
		}
	}
	if ranked[0] != best {
		t.Fatalf("ranked %v, want %s first", ranked[:5], best)
	}

	sid := lead.e.State().Session
	cut.set(proxyDrop)
	crashed := time.Now()
	if err := destroySession(agent.Addr, sid); err != nil {
		t.Fatal(err)
	}
	next := lt.waitElected(1, faultLockDelay+3*faultSlack)
	took := next.At.Sub(crashed)
	winner := next.Leader.ID
	var winnerSession string
	for _, c := range cands {
		if c.id == winner {
			winnerSession = c.e.State().Session
		}
	}
	defer func() {
		if t.Failed() {
			describe(t, cands, lt, log, crashed)
		}
	}()
	pollUntil(t, 30*time.Second, "every candidate following "+winner, func() bool { return following(cands[1:], winnerSession) })
	acquires := log.since(crashed)
	reached := 0
	for _, a := range acquires {
		if a.reachedConsul() {
			reached++
		}
	}
	t.Logf("c000 crashed; %s elected %s later (lock-delay %v); acquires after the crash: %d reached Consul: %+v",
		winner, faultMS(took), faultLockDelay, reached, acquires)
	// Each candidate counts its turn from when its own watch showed the
	// key free: on a loaded machine the best one may hear of it more than
	// RankStep−20ms after the next, and lose to it. A known flaw
	// (TestFaultRankInversionSlowWatch makes it certain); here only the
	// first few ranks may win.
	if r := slices.Index(ranked, winner); r != 0 {
		t.Logf("rank inversion: %s (rank %d) leads, not %s (rank 0, priority 5)", winner, r, best)
		if r < 0 || r > 3 {
			t.Errorf("%s leads after the crash, want %s (priority 5) or at worst one of the next ranks %v", winner, best, ranked[1:4])
		}
	}
	if took < faultLockDelay {
		t.Errorf("%s elected %v after the session was destroyed, inside the lock-delay %v", winner, took, faultLockDelay)
	}
	// The winner retries when the lock-delay is over as it saw it: from
	// when its watch showed the key free, late on a loaded machine.
	if bound := faultLockDelay + 2*faultSlack; took > bound {
		t.Errorf("%s elected %v after the crash, want within lock-delay + %v = %v", winner, took, 2*faultSlack, bound)
	}
	if reached > 5 {
		t.Errorf("%d acquires by %d candidates reached Consul after the crash, want a handful (≤ 5)", reached, n-1)
	}
	if got := lt.terms(); got != 2 {
		t.Errorf("%d terms, want 2: c000's and %s's", got, winner)
	}
	// The followers first, so nobody is handed the key on the way out.
	for _, c := range cands {
		if c.id != winner {
			go c.stop()
		}
	}
	for _, c := range cands {
		if c.id != winner {
			c.stop()
		}
	}
}

// TestFaultAcquiredLeaderKnowsItself: a leader's State().Leader (what
// leaderd's /v1/status shows as the leader, and library users read) names
// the leader, whether it acquired the key or was handed it. Consul answers
// a transaction's write ops with the key's Value blanked, so the leader
// must not take its identity from that answer.
func TestFaultAcquiredLeaderKnowsItself(t *testing.T) {
	t.Parallel()
	agent := faultAgent(t)
	key := elect.KeyFor("itself")
	seedKey(t, agent.Addr, key)
	log, lt := &acquireLog{key: key}, &leaderTrack{t: t, changed: make(chan struct{})}
	cfg := elect.Config{Key: key, TTL: faultTTL, LockDelay: faultLockDelay, Margin: 500 * time.Millisecond}
	a := startInProc(t, "a", agent.Addr, cfg, log, lt)
	lt.waitElected(0, 30*time.Second)
	b := startInProc(t, "b", agent.Addr, cfg, log, lt)
	pollUntil(t, 30*time.Second, "b following a", func() bool { return following([]*inProcCandidate{b}, a.e.State().Session) })
	if ld := a.e.State().Leader; ld == nil || ld.ID != "a" || ld.Since.IsZero() {
		t.Errorf("a acquired the key; its State().Leader = %+v, want id a and the time of its acquire", ld)
	}
	if ld := b.e.State().Leader; ld == nil || ld.ID != "a" {
		t.Errorf("b follows; its State().Leader = %+v, want id a", ld)
	}
	// Resign hands the key to b, the only other candidate.
	if err := a.e.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e := lt.waitElected(1, 10*time.Second); e.Leader.ID != "b" {
		t.Fatalf("%s elected after a resigned, want b", e.Leader.ID)
	}
	if ld := b.e.State().Leader; ld == nil || ld.ID != "b" {
		t.Errorf("b was handed the key; its State().Leader = %+v, want id b", ld)
	}
	a.stop()
	b.stop()
}

// TestFaultRankInversionSlowWatch: after a crash the best candidate must
// lead even if its watch hears of the free key a little later than the
// others': 60ms, what a loaded host or Consul's fan-out to 100+ blocking
// queries gives (TestFaultRankedFailoverHundred sees such inversions now
// and then). Each candidate counts the lock-delay and its rank's step from
// its own receipt of the free key: the best retries 20ms after its
// lock-delay, the next 50ms after its own, so a skew above 30ms hands the
// key to the second best.
func TestFaultRankInversionSlowWatch(t *testing.T) {
	t.Parallel()
	const skew = 60 * time.Millisecond
	agent := faultAgent(t)
	key := elect.KeyFor("inversion")
	seedKey(t, agent.Addr, key)
	log, lt := &acquireLog{key: key}, &leaderTrack{t: t, changed: make(chan struct{})}
	cfg := elect.Config{Key: key, TTL: 10 * time.Second, LockDelay: faultLockDelay, Margin: 500 * time.Millisecond, PriorityHold: time.Hour}
	cut := startTCPProxy(t, agent.Addr)
	lead := startInProc(t, "c0", cut.Addr(), cfg, log, lt)
	lt.waitElected(0, 30*time.Second)
	cands := []*inProcCandidate{lead}
	for _, id := range []string{"c1", "c2", "c3"} {
		cands = append(cands, startInProc(t, id, agent.Addr, cfg, log, lt))
	}
	best := cfg
	best.Priority = 5
	slow := startSlowReads(t, agent.Addr, "/v1/kv/"+key, skew)
	cands = append(cands, startInProc(t, "best", slow, best, log, lt))
	client := consulClient(t, agent.Addr)
	pollUntil(t, 30*time.Second, "every candidate registered and following c0", func() bool {
		es, _, err := elect.Candidates(context.Background(), client, key)
		live := 0
		for _, e := range es {
			if e.Live {
				live++
			}
		}
		return err == nil && live == len(cands) && following(cands[1:], lead.e.State().Session)
	})

	cut.set(proxyDrop)
	crashed := time.Now()
	if err := destroySession(agent.Addr, lead.e.State().Session); err != nil {
		t.Fatal(err)
	}
	next := lt.waitElected(1, faultLockDelay+3*faultSlack)
	t.Logf("c0 crashed; %s elected %s later; acquires: %+v", next.Leader.ID, faultMS(next.At.Sub(crashed)), log.since(crashed))
	if next.Leader.ID != "best" {
		t.Errorf("%s leads after the crash, want best (priority 5), whose watch is only %v behind", next.Leader.ID, skew)
	}
	for _, c := range cands {
		c.stop()
	}
}
