package devconsul

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
)

// Cluster is n Consul servers on loopback forming one raft cluster.
type Cluster struct {
	Servers []*Agent
}

// Start starts every server of c (each made with Config.Server and its own
// Dir) as one cluster: -bootstrap-expect=n, each with its own ports and
// data directory, each retry-joining the others. It waits until they agree
// on a raft leader, the raft configuration has all n, and every node's
// serfHealth passes. With ACLs, all servers must share one Config.Token:
// only one of them bootstraps the ACL system.
func (c *Cluster) Start(ctx context.Context, logf func(format string, args ...any)) error {
	if len(c.Servers) < 1 {
		return fmt.Errorf("devconsul: a cluster of %d servers", len(c.Servers))
	}
	for _, a := range c.Servers {
		a.bootstrapExpect = len(c.Servers)
		if err := a.pickPorts(); err != nil {
			return err
		}
	}
	for _, a := range c.Servers {
		a.join = nil
		for _, b := range c.Servers {
			if b != a {
				a.join = append(a.join, b.serfAddr())
			}
		}
	}
	for _, a := range c.Servers {
		if err := a.launch(); err != nil {
			return err
		}
	}
	retries := map[*Agent]int{}
	for {
		err := Await(ctx, c.Servers, readyTimeout, c.checkReady)
		var exited *ExitedError
		if errors.As(err, &exited) && exited.AddrInUse && retries[exited.Agent] < startTries-1 {
			// Lost a port race: new ports for that server only. Its
			// retry-join list still names the others, which is enough.
			logf("%v; retrying", err)
			retries[exited.Agent]++
			if err := exited.Agent.pickPorts(); err != nil {
				return err
			}
			if err := exited.Agent.launch(); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("%d-server cluster: %w", len(c.Servers), err)
		}
		return nil
	}
}

func (a *Agent) serfAddr() string {
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
	if err := leader.GetJSON(ctx, "/v1/status/peers", &peers); err != nil {
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
func (c *Cluster) Leader(ctx context.Context) (*Agent, error) {
	var leader *Agent
	err := Await(ctx, nil, readyTimeout, func(ctx context.Context) error {
		var err error
		leader, err = c.agreedLeader(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("no cluster leader: %w", err)
	}
	return leader, nil
}

func (c *Cluster) agreedLeader(ctx context.Context) (*Agent, error) {
	addr := ""
	for _, a := range c.Servers {
		if !a.Running() {
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
		if a.Running() && addr == net.JoinHostPort("127.0.0.1", strconv.Itoa(a.ServerPort)) {
			return a, nil
		}
	}
	return nil, fmt.Errorf("the servers name %s as raft leader, which is no running server", addr)
}
