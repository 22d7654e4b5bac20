package integration

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/leaderd/leaderd/integration/history"
)

// handovers returns, for consecutive terms with children, the time from
// one child's death to the next one's start.
func handovers(rep history.Report) []time.Duration {
	var terms []history.Term
	for _, t := range rep.Terms {
		if t.Child != nil {
			terms = append(terms, t)
		}
	}
	slices.SortFunc(terms, func(a, b history.Term) int { return a.Child.Start.Compare(b.Child.Start) })
	var gaps []time.Duration
	for i := 1; i < len(terms); i++ {
		gaps = append(gaps, terms[i].Child.Start.Sub(terms[i-1].Child.Dead))
	}
	return gaps
}

// checkHandovers fails t if a graceful handover took longer than bound,
// and logs the figures.
func checkHandovers(t *testing.T, what string, rep history.Report, bound time.Duration) {
	t.Helper()
	gaps := handovers(rep)
	if len(gaps) == 0 {
		t.Errorf("%s: no handover in the history", what)
		return
	}
	sorted := slices.Clone(gaps)
	slices.Sort(sorted)
	t.Logf("%s: %d terms, %d handovers: child dead → next child started p50 %s, max %s",
		what, len(rep.Terms), len(gaps), faultMS(sorted[len(sorted)/2]), faultMS(sorted[len(sorted)-1]))
	if worst := sorted[len(sorted)-1]; worst > bound {
		t.Errorf("%s: a handover took %v, more than %v", what, worst, bound)
	}
}

// TestFaultRollingRestart: 50 candidates; three rolls in which each in
// turn is stopped (SIGTERM) and started again, the leader included
// whenever its turn comes (every roll starts with the leader). Exactly one leader throughout: no overlap, tokens increasing,
// every handover quick. Not parallel: 50 processes are the machine's
// whole budget.
func TestFaultRollingRestart(t *testing.T) {
	const n = 50
	// Consul allows 200 connections per client IP by default; everyone
	// here is 127.0.0.1.
	agent := faultAgent(t, `limits { http_max_conns_per_client = 1000 }`)
	r := newFaultRig(t, "many")
	// A longer TTL halves the renew load: the leader renews every
	// lease/3 whatever the TTL, the 49 followers lazily every TTL/2 (3s).
	flags := []string{"-ttl", "6s"}
	joined := func(mark int, p *faultProc) {
		t.Helper()
		r.wait(30*time.Second, mark, p.name+" joining", func(e history.Event) bool {
			return e.Candidate == p.name && (e.Kind == history.Elected || e.Kind == history.LeaderSeen && e.Note != "")
		})
	}
	procs := make([]*faultProc, n)
	t0 := time.Now()
	for i := range procs {
		procs[i] = r.start(fmt.Sprintf("c%02d", i), agent.Addr, flags)
	}
	for _, p := range procs {
		joined(0, p)
	}
	t.Logf("%d candidates up in %s", n, faultMS(time.Since(t0)))

	const rolls = 3
	t0 = time.Now()
	for range rolls {
		// Start each roll with the current leader: the latest elected
		// (every candidate has joined, so nobody is mid-handover).
		r.leading(10*time.Second, 0, nil)
		leader := r.lastLeader()
		first := slices.IndexFunc(procs, func(p *faultProc) bool { return p.name == leader })
		order := append(slices.Clone(procs[first:]), procs[:first]...)
		for _, p := range order {
			p.stop()
			mark := r.mark()
			np := r.start(p.name, agent.Addr, flags)
			procs[slices.Index(procs, p)] = np
			joined(mark, np)
		}
	}
	t.Logf("rolled %d×%d restarts in %s", rolls, n, faultMS(time.Since(t0)))
	r.leading(10*time.Second, 0, nil)
	rep := r.verify(history.Options{Settle: []history.Settle{{What: "after the roll", After: time.Now(), Within: time.Second}}})
	checkHandovers(t, "rolling restart", rep, 2*time.Second)
	if len(rep.Terms) < 2 {
		t.Errorf("%d terms: the leader was never restarted?", len(rep.Terms))
	}
}

// TestFaultChildChurn: the leader's child exits by itself again and
// again. With -restart, leaderd gives up leadership and keeps campaigning,
// so terms move between candidates; without, leaderd exits with the
// child's code and a follower takes over. Either way one term at a time.
func TestFaultChildChurn(t *testing.T) {
	t.Parallel()
	child := []string{history.ChildLifetimeEnv + "=0.3", history.ChildExitEnv + "=7"}

	t.Run("restart", func(t *testing.T) {
		t.Parallel()
		agent := faultAgent(t)
		r := newFaultRig(t, "churn")
		var procs []*faultProc
		for _, id := range []string{"a", "b", "c"} {
			procs = append(procs, r.start(id, agent.Addr, []string{"-restart"}, child...))
		}
		// Churn until 8 terms have ended with their child's exit. Wait
		// sees each event once, in order, so counting in the matcher works.
		exits := 0
		r.wait(60*time.Second, 0, "8 child exits", func(e history.Event) bool {
			if e.Kind == history.ChildStop && e.Note == "exit" {
				exits++
			}
			return exits == 8
		})
		rep := r.verify(history.Options{})
		checkHandovers(t, "-restart churn", rep, 2*time.Second)
		leaders := map[string]bool{}
		for _, tm := range rep.Terms {
			leaders[tm.Candidate] = true
			if tm.Reason != "" && tm.Reason != "released" {
				t.Errorf("term %d of %s ended with %q, want released (the child exited)", tm.Token, tm.Candidate, tm.Reason)
			}
		}
		if len(leaders) < 2 {
			t.Errorf("only %v led: terms should move between candidates", leaders)
		}
		for _, p := range procs {
			p.stop()
		}
	})

	t.Run("exit", func(t *testing.T) {
		t.Parallel()
		agent := faultAgent(t)
		r := newFaultRig(t, "churn-exit")
		var procs []*faultProc
		for _, id := range []string{"a", "b", "c"} {
			procs = append(procs, r.start(id, agent.Addr, nil, child...))
		}
		// Each leader's child exits 7; its leaderd exits 7 and hands over.
		for _, p := range procs {
			if code := p.exit(30 * time.Second); code != 7 {
				t.Errorf("leaderd %s exited %d, want its child's 7", p.name, code)
			}
		}
		rep := r.verify(history.Options{})
		checkHandovers(t, "exit churn", rep, 2*time.Second)
		if len(rep.Terms) != 3 {
			t.Errorf("%d terms, want 3 (one per candidate)", len(rep.Terms))
		}
	})
}
