package consultest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/leaderd/leaderd/integration/devconsul"
)

// SkipIfShort skips t under `go test -short`, the fast unit-test loop: every
// test that needs a real Consul agent comes through Binary, so this is the
// one gate. The README's full test command runs them all.
func SkipIfShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("consultest: -short runs no Consul agent (the full test command does)")
	}
}

// resolved caches Binary's answer, error included, for the whole test
// process: a failed 8-minute build must not be retried by every test.
var resolved struct {
	mu   sync.Mutex
	done bool
	path string
	err  error
}

// Binary returns the path of a consul v1.16.3 binary (devconsul.Find),
// building and caching it on first use. It fails the test when none can be
// found or built, and skips it under -short.
func Binary(t testing.TB) string {
	t.Helper()
	SkipIfShort(t)
	resolved.mu.Lock()
	defer resolved.mu.Unlock()
	if !resolved.done {
		// Not t.Context(): the answer outlives this test.
		resolved.path, resolved.err = devconsul.Find(context.Background(), os.Getenv, logf(t))
		resolved.done = true
	}
	if resolved.err != nil {
		t.Fatalf("consultest: %v", resolved.err)
	}
	return resolved.path
}

// logf sends devconsul's progress and retries to the test log.
func logf(t testing.TB) func(format string, args ...any) {
	return func(format string, args ...any) { t.Logf("consultest: "+format, args...) }
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. The
// port is released before returning, so another process may take it first:
// whoever binds it must be ready to retry (Start does).
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := devconsul.FreePort()
	if err != nil {
		t.Fatalf("consultest: %v", err)
	}
	return p
}

// Options configure an agent (Start) or every server of a cluster
// (StartCluster).
type Options struct {
	// HCL are extra -hcl snippets, applied after the harness's own, e.g.
	// `session_ttl_min = "1s"`.
	HCL []string
	// ACL enables ACLs with default_policy "deny" and a random
	// initial_management token, returned in Agent.Token. The same token is
	// the agent's own token so its anti-entropy sync isn't blocked; requests
	// without a token still run as anonymous.
	ACL bool
	// NodeName defaults to a name unique per agent. For a cluster it is a
	// prefix: "<NodeName>-0", "<NodeName>-1", …
	NodeName string
	// Server runs a real server (-server -bootstrap-expect, a data directory
	// in t.TempDir()) instead of -dev, so its state survives Restart.
	// StartCluster sets it.
	Server bool
}

// Agent is one running (or stopped) consul agent on loopback: Addr,
// NodeName, Token, DataDir, LogPath, ServerPort, SerfPort, URL, Stop,
// Terminate and Kill are devconsul's.
type Agent struct {
	*devconsul.Agent
}

// Start starts an agent, waits until it is ready (a raft leader is known and
// its node's serfHealth passes), and stops it when the test ends.
func Start(t testing.TB, opts Options) *Agent {
	t.Helper()
	a := newAgent(t, Binary(t), opts, "", "", nil)
	if err := a.Start(context.Background(), logf(t)); err != nil {
		t.Fatalf("consultest: %v", err)
	}
	return a
}

var agentSeq atomic.Int64

// newAgent prepares an agent that isn't running yet and registers its
// cleanups. name and token default to fresh ones; cluster servers share a
// token because only one of them bootstraps the ACL system. Cleanups run
// last-registered first: Stop, then the log tail, then closing the log,
// then removal of the directories they live in.
func newAgent(t testing.TB, bin string, opts Options, name, token string, clientOf *Agent) *Agent {
	t.Helper()
	if name == "" {
		name = opts.NodeName
	}
	if name == "" {
		name = fmt.Sprintf("consultest-%d-%d", os.Getpid(), agentSeq.Add(1))
	}
	cfg := devconsul.Config{
		Bin:      bin,
		NodeName: name,
		Dir:      t.TempDir(),
		LogPath:  filepath.Join(t.ArtifactDir(), "consul-"+name+".log"),
		HCL:      opts.HCL,
		Server:   opts.Server,
	}
	if clientOf != nil {
		cfg.ClientOf = clientOf.Agent
	}
	if opts.ACL {
		cfg.Token = token
		if cfg.Token == "" {
			cfg.Token = devconsul.NewUUID()
		}
	}
	d, err := devconsul.New(cfg)
	if err != nil {
		t.Fatalf("consultest: %v", err)
	}
	a := &Agent{d}
	t.Cleanup(func() { d.Close() })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("consul agent %s log (last 50 lines of %s):\n%s", a.NodeName, a.LogPath, a.LogTail(50))
		}
	})
	t.Cleanup(a.Stop)
	return a
}

// Restart stops the agent (Stop) and starts it again on the same ports,
// waiting for readiness; see devconsul's Agent.Restart.
func (a *Agent) Restart(t testing.TB) {
	t.Helper()
	if err := a.Agent.Restart(context.Background(), logf(t)); err != nil {
		t.Fatalf("consultest: %v", err)
	}
}

// StartClient starts a client agent (no -server, as on every node of a
// real cluster but the servers) with its own ports, data directory and
// node name, retry-joining server's serf port, and waits until server's
// catalog has the client's node with serfHealth passing and the client
// knows the raft leader. Sessions created through a client belong to its
// node: they die with the node's registration. The client is stopped when
// the test ends, before the server (cleanups run last-registered first).
//
// opts.Server makes no sense for a client and opts.ACL is not supported
// (the client would need its own agent token); both fail the test.
func StartClient(t testing.TB, server *Agent, opts Options) *Agent {
	t.Helper()
	if opts.Server || opts.ACL {
		t.Fatalf("consultest: StartClient with Options.Server or Options.ACL is not supported")
	}
	a := newAgent(t, Binary(t), opts, "", "", server)
	if err := a.Start(context.Background(), logf(t)); err != nil {
		t.Fatalf("consultest: %v", err)
	}
	return a
}

// ForceLeave runs `consul force-leave [-prune] <node>` against a's HTTP API
// with a's token, as an operator would, and fails the test if the command
// fails. See devconsul's package doc for what Consul does with it.
func (a *Agent) ForceLeave(t testing.TB, node string, prune bool) {
	t.Helper()
	if err := a.Agent.ForceLeave(context.Background(), node, prune); err != nil {
		t.Fatalf("consultest: %v", err)
	}
}

// Cluster is n Consul servers on loopback forming one raft cluster.
type Cluster struct {
	Servers []*Agent
	c       devconsul.Cluster
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
		token = devconsul.NewUUID()
	}
	c := &Cluster{}
	for i := range n {
		name := ""
		if opts.NodeName != "" {
			name = opts.NodeName + "-" + strconv.Itoa(i)
		}
		a := newAgent(t, bin, opts, name, token, nil)
		c.Servers = append(c.Servers, a)
		c.c.Servers = append(c.c.Servers, a.Agent)
	}
	if err := c.c.Start(context.Background(), logf(t)); err != nil {
		t.Fatalf("consultest: %v", err)
	}
	return c
}

// Leader returns the server that is the raft leader now: the one every
// running server names as leader. Right after the leader dies the others
// still name it for a second or so, so Leader waits (up to a minute) for
// them to agree on a running server.
func (c *Cluster) Leader(t testing.TB) *Agent {
	t.Helper()
	l, err := c.c.Leader(context.Background())
	if err != nil {
		t.Fatalf("consultest: %v", err)
	}
	for _, a := range c.Servers {
		if a.Agent == l {
			return a
		}
	}
	panic("consultest: the cluster's leader is none of its servers")
}

// Restart stops server i (if running) and starts it again with the same
// ports and data directory, so it rejoins with its raft state. It waits
// until the server knows a leader and its serfHealth passes, which needs a
// quorum of the others up.
func (c *Cluster) Restart(t testing.TB, i int) {
	t.Helper()
	c.Servers[i].Restart(t)
}
