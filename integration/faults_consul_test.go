package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/leaderd/leaderd/integration/consultest"
	"github.com/leaderd/leaderd/integration/history"
)

// TestFaultConsulRestart: the (dev) Consul agent restarts and comes back
// empty while a leader runs its child, right after the leader renewed (so
// its lease, lock-delay − margin, still has ~2s to run). The old leader must stop before anyone
// else is elected: exactly one new leader, no overlap. Tokens restart low:
// the restart is an epoch for the checker (documented limit).
//
//   - quiet: nobody else touches Consul. The followers' blocking queries
//     wait on an index from before the restart, so they sleep until
//     someone creates the key; the old leader learns of the loss on its
//     next renew (404) and steps down.
//   - new candidate: a candidate starts right after the restart (a deploy
//     in progress, say) and finds the key missing while the old leader
//     still holds a lease it got from the lost state. Consul knows nothing
//     of that lease, so the newcomer must not take a missing key before a
//     lease window (lock-delay + margin from the answer that first showed
//     it missing) has passed. Without such a wait it is
//     elected within milliseconds and both children run for up to a renew
//     interval (this test found that; see elect's missing-key wait).
func TestFaultConsulRestart(t *testing.T) {
	t.Parallel()
	for _, late := range []bool{false, true} {
		t.Run(map[bool]string{false: "quiet", true: "new candidate"}[late], func(t *testing.T) {
			t.Parallel()
			agent := faultAgent(t)
			r := newFaultRig(t, "restart")
			a := r.start("a", agent.Addr, []string{"-log-level", "debug"})
			old := r.leading(20*time.Second, 0, a)
			for _, id := range []string{"b", "c"} {
				r.following(20*time.Second, 0, r.start(id, agent.Addr, nil), "a")
			}
			r.wait(faultTTL, r.mark(), "a renewing", evIs(history.Proof, "a"))

			mark := r.mark()
			restart := r.note(history.Epoch, "", "consul agent restarting: all state lost")
			agent.Restart(t)
			back := r.note(history.Heal, "", "consul agent back, empty")
			if late {
				r.start("d", agent.Addr, nil)
			}
			down := r.wait(faultLease+faultSlack, mark, "a stepping down", func(e history.Event) bool {
				return e.Kind == history.SteppedDown && e.Candidate == "a" && e.Token == old.elected.Token
			})
			// Candidates may still be backing off from the outage (up to 10s).
			const bound = 10*time.Second + faultSlack
			next := r.leading(bound, mark, nil)
			t.Logf("consul down for %s; a (token %d) stepped down (%s) %s after the restart began; %s elected with token %d %s after consul was back (child %s)",
				faultMS(back.Sub(restart)), old.elected.Token, down.Note, faultMS(down.At.Sub(restart)),
				next.elected.Candidate, next.elected.Token, faultMS(next.elected.At.Sub(back)), faultMS(next.child.At.Sub(back)))
			if !down.At.Before(next.elected.At) {
				t.Errorf("a stepped down at %v, %s after %s was elected: two leaders", down.At,
					faultMS(down.At.Sub(next.elected.At)), next.elected.Candidate)
			}
			r.verify(history.Options{Settle: []history.Settle{{What: "after consul came back", After: back, Within: bound}}})
		})
	}
}

// TestFaultConsulServerLoss: three Consul servers on loopback, each
// candidate talking to its own server. First the raft leader dies, and it
// is the server the leaderd leader talks to: that leader, cut off, steps
// down at its lease end, and another candidate leads once Consul's new
// raft leader expires the old session. The server comes back; its
// candidate rejoins as a follower. Then the raft leader dies again while
// the leaderd leader's own server survives: leadership stays, or moves
// safely. Never two leaders.
func TestFaultConsulServerLoss(t *testing.T) {
	t.Parallel()
	// A restarted server rejoins raft as a non-voter until autopilot deems
	// it stable; 1s instead of 10s keeps the test short.
	cl := consultest.StartCluster(t, 3, consultest.Options{HCL: []string{`session_ttl_min = "1s"`,
		`autopilot { server_stabilization_time = "1s" }`}})
	r := newFaultRig(t, "servers")
	raftLeader := cl.Leader(t)
	// Server of each candidate: a on the raft leader, b and c on the others.
	server := map[string]*consultest.Agent{"a": raftLeader}
	for _, s := range cl.Servers {
		if s == raftLeader {
			continue
		}
		if server["b"] == nil {
			server["b"] = s
		} else {
			server["c"] = s
		}
	}
	procs := map[string]*faultProc{}
	for _, id := range []string{"a", "b", "c"} {
		procs[id] = r.start(id, server[id].Addr, []string{"-log-level", "debug"})
		if id == "a" {
			r.leading(20*time.Second, 0, procs[id])
		} else {
			r.following(20*time.Second, 0, procs[id], "a")
		}
	}
	index := func(a *consultest.Agent) int {
		for i, s := range cl.Servers {
			if s == a {
				return i
			}
		}
		return -1
	}
	// Once Consul has a raft leader again, it gives every session a fresh
	// 2×TTL before expiring it, then keeps the key for the lock-delay; the
	// followers renew lazily (every TTL/2), so one may need that long to
	// learn its own session is fine or make a new one. How long the raft
	// election takes is Consul's business (~2s; far more on a saturated
	// machine): bounds count from when it is over.
	const bound = 2*faultTTL + faultLockDelay + faultTTL/2 + faultSlack

	// Phase 1: a's server, the raft leader, dies.
	mark := r.mark()
	kill1 := r.note(history.Fault, "a", "kill consul server %s (raft leader, a's server)", raftLeader.NodeName)
	raftLeader.Kill()
	down := r.wait(faultLease+faultSlack, mark, "a stepping down", evIs(history.SteppedDown, "a"))
	raftBack := r.note(history.Note, "", "new raft leader %s", cl.Leader(t).NodeName)
	next := r.leading(time.Until(raftBack.Add(bound)), mark, nil)
	t.Logf("raft leader killed: a stepped down (%s) %s later; a new raft leader %s later; %s elected %s and its child started %s later",
		down.Note, faultMS(down.At.Sub(kill1)), faultMS(raftBack.Sub(kill1)), next.elected.Candidate,
		faultMS(next.elected.At.Sub(kill1)), faultMS(next.child.At.Sub(kill1)))
	if down.Note != "lease_expired" {
		t.Errorf("a stepped down with reason %q, want lease_expired (its server was dead)", down.Note)
	}
	mark = r.mark()
	heal1 := r.note(history.Heal, "a", "consul server %s restarted", raftLeader.NodeName)
	cl.Restart(t, index(raftLeader))
	r.following(20*time.Second, mark, procs["a"], next.elected.Candidate)
	t.Logf("server back %s after the restart began; a follows %s", faultMS(time.Since(heal1)), next.elected.Candidate)

	// Phase 2: the raft leader dies, but not the leaderd leader's server.
	// Killing a voter while the restarted server is still a non-voter
	// would leave no quorum: wait for three voters first.
	waitVoters(t, cl, 3)
	leaderName := next.elected.Candidate
	mine := server[leaderName]
	raftLeader = cl.Leader(t)
	for tries := 0; raftLeader == mine; tries++ {
		if tries == 5 {
			t.Fatalf("raft leadership stays on %s after 5 transfers", mine.NodeName)
		}
		transferRaftLeader(t, mine)
		raftLeader = cl.Leader(t)
	}
	mark = r.mark()
	kill2 := r.note(history.Fault, "", "kill consul server %s (raft leader; %s's server %s survives)", raftLeader.NodeName, leaderName, mine.NodeName)
	raftLeader.Kill()
	newRaft := cl.Leader(t)
	newRaftAt := r.note(history.Note, "", "new raft leader %s", newRaft.NodeName)
	t.Logf("raft leader killed again: a new raft leader (%s) %s later", newRaft.NodeName, faultMS(newRaftAt.Sub(kill2)))
	// Either the leader renews through the new raft leader (it stays) or
	// its lease ends first and it steps down (leadership moves).
	ev := r.wait(bound, mark, leaderName+" renewing or stepping down", func(e history.Event) bool {
		return e.Candidate == leaderName && (e.Kind == history.SteppedDown || e.Kind == history.Proof && e.At.After(newRaftAt))
	})
	settle2 := ev.At
	if ev.Kind == history.Proof {
		t.Logf("%s kept leading: renewed %s after the new raft leader", leaderName, faultMS(ev.At.Sub(newRaftAt)))
	} else {
		n := r.leading(bound, mark, nil)
		t.Logf("%s stepped down (%s) %s after the kill; %s leads %s after the kill", leaderName, ev.Note, faultMS(ev.At.Sub(kill2)),
			n.elected.Candidate, faultMS(n.child.At.Sub(kill2)))
	}
	heal2 := r.note(history.Heal, "", "consul server %s restarted", raftLeader.NodeName)
	cl.Restart(t, index(raftLeader))
	r.verify(history.Options{Settle: []history.Settle{
		{What: "after the first server loss", After: faultLater(down.At, raftBack), Within: bound},
		{What: "after the server came back", After: heal1, Within: faultSlack},
		{What: "after the second raft leader", After: settle2, Within: bound},
		{What: "after the second server came back", After: heal2, Within: bound},
	}})
}

func faultLater(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// waitVoters waits until the raft configuration has n voters.
func waitVoters(t *testing.T, cl *consultest.Cluster, n int) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var conf struct {
			Servers []struct {
				Node  string
				Voter bool
			}
		}
		faultGetJSON(t, cl.Leader(t).Addr, "/v1/operator/raft/configuration", &conf)
		voters := 0
		for _, s := range conf.Servers {
			if s.Voter {
				voters++
			}
		}
		if voters == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("raft has %d voters after 30s, want %d: %+v", voters, n, conf.Servers)
		}
		<-tick.C
	}
}

// transferRaftLeader asks the cluster to move raft leadership to any
// server but avoid.
func transferRaftLeader(t *testing.T, avoid *consultest.Agent) {
	t.Helper()
	var conf struct {
		Servers []struct{ ID, Node string }
	}
	faultGetJSON(t, avoid.Addr, "/v1/operator/raft/configuration", &conf)
	for _, s := range conf.Servers {
		if s.Node == avoid.NodeName {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+avoid.Addr+"/v1/operator/raft/transfer-leader?id="+s.ID, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("raft transfer-leader: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			// Leadership can move by itself between our look and this
			// request (seen: "cannot transfer leadership to itself" when
			// it already went to s); the caller looks again and retries.
			t.Logf("raft transfer-leader to %s: %s; the caller retries", s.Node, resp.Status)
		}
		return
	}
}

func faultGetJSON(t *testing.T, addr, path string, v any) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}
