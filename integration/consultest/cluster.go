package consultest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
)

// Cluster is n Consul servers on loopback forming one raft cluster.
type Cluster struct {
	Servers []*Agent
}

// StartCluster starts n servers (-server -bootstrap-expect=n, each with
// its own ports and data directory, each retry-joining the others) and
// waits until they agree on a raft leader, the raft configuration has all
// n, and every node's serfHealth passes. With opts.ACL all servers share
// one management token. Every server is stopped when the test ends.
func StartCluster(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("consultest: StartCluster with %d servers", n)
	}
	bin := Binary(t)
	opts.Server = true
	token := ""
	if opts.ACL {
		token = newUUID()
	}
	c := &Cluster{}
	for i := range n {
		name := ""
		if opts.NodeName != "" {
			name = opts.NodeName + "-" + strconv.Itoa(i)
		}
		a := newAgent(t, bin, opts, name, token)
		a.bootstrapExpect = n
		c.pickPorts(t, a)
		c.Servers = append(c.Servers, a)
	}
	for _, a := range c.Servers {
		for _, b := range c.Servers {
			if b != a {
				a.join = append(a.join, serfAddr(b))
			}
		}
	}
	for _, a := range c.Servers {
		if err := a.launch(); err != nil {
			t.Fatalf("consultest: %v", err)
		}
	}
	retries := map[*Agent]int{}
	for {
		err := awaitReady(c.Servers, readyTimeout, c.checkReady)
		var exited *exitedError
		if errors.As(err, &exited) && exited.addrInUse && retries[exited.agent] < startTries-1 {
			// Lost a port race: new ports for that server only. Its
			// retry-join list still names the others, which is enough.
			t.Logf("consultest: %v; retrying", err)
			retries[exited.agent]++
			c.pickPorts(t, exited.agent)
			if err := exited.agent.launch(); err != nil {
				t.Fatalf("consultest: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("consultest: %d-server cluster: %v", n, err)
		}
		return c
	}
}

func (c *Cluster) pickPorts(t testing.TB, a *Agent) {
	t.Helper()
	p, err := pickPorts()
	if err != nil {
		t.Fatalf("consultest: %v", err)
	}
	a.setPorts(p)
}

func serfAddr(a *Agent) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(a.SerfPort))
}

// checkReady: every server ready (see Agent.checkReady), all naming the
// same leader, and the leader's raft configuration holding all of them.
func (c *Cluster) checkReady(ctx context.Context) error {
	leader, err := c.agreedLeader(ctx)
	if err != nil {
		return err
	}
	for _, a := range c.Servers {
		if err := a.checkReady(ctx); err != nil {
			return err
		}
	}
	var peers []string
	if err := leader.getJSON(ctx, "/v1/status/peers", &peers); err != nil {
		return err
	}
	if len(peers) != len(c.Servers) {
		return fmt.Errorf("raft has %d peers %v, want %d", len(peers), peers, len(c.Servers))
	}
	return nil
}

// Leader returns the server that is the raft leader now: the one every
// running server names as leader. Right after the leader dies the others
// still name it for a second or so, so Leader waits (up to a minute) for
// them to agree on a running server.
func (c *Cluster) Leader(t testing.TB) *Agent {
	t.Helper()
	var leader *Agent
	err := awaitReady(nil, readyTimeout, func(ctx context.Context) error {
		var err error
		leader, err = c.agreedLeader(ctx)
		return err
	})
	if err != nil {
		t.Fatalf("consultest: no cluster leader: %v", err)
	}
	return leader
}

func (c *Cluster) agreedLeader(ctx context.Context) (*Agent, error) {
	addr := ""
	for _, a := range c.Servers {
		if !a.running() {
			continue
		}
		l, err := a.raftLeader(ctx)
		if err != nil {
			return nil, err
		}
		if l == "" {
			return nil, fmt.Errorf("server %s knows no raft leader", a.NodeName)
		}
		if addr != "" && l != addr {
			return nil, fmt.Errorf("servers disagree on the raft leader: %s and %s", addr, l)
		}
		addr = l
	}
	if addr == "" {
		return nil, errors.New("no server is running")
	}
	for _, a := range c.Servers {
		if a.running() && addr == net.JoinHostPort("127.0.0.1", strconv.Itoa(a.ServerPort)) {
			return a, nil
		}
	}
	return nil, fmt.Errorf("the servers name %s as raft leader, which is no running server", addr)
}

// Restart stops server i (if running) and starts it again with the same
// ports and data directory, so it rejoins with its raft state. It waits
// until the server knows a leader and its serfHealth passes, which needs a
// quorum of the others up.
func (c *Cluster) Restart(t testing.TB, i int) {
	t.Helper()
	c.Servers[i].Restart(t)
}
