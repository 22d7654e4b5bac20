package consultest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

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
	a := newAgent(t, Binary(t), opts, "", "")
	a.client, a.server = true, server
	a.DataDir = filepath.Join(t.TempDir(), "data")
	a.join = []string{serfAddr(server)}
	a.start(t, true)
	return a
}

// forceLeaveTimeout bounds `consul force-leave`. With -prune of a live node
// serf holds the request for its broadcast timeout plus the leave
// propagation delay (5s + 1s) before it erases the member.
const forceLeaveTimeout = 30 * time.Second

// ForceLeave runs `consul force-leave [-prune] <node>` against a's HTTP API
// with a's token, as an operator would, and fails the test if the command
// fails. See the package doc for what Consul does with it.
func (a *Agent) ForceLeave(t testing.TB, node string, prune bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), forceLeaveTimeout)
	defer cancel()
	args := []string{"force-leave"}
	if prune {
		args = append(args, "-prune")
	}
	cmd := exec.CommandContext(ctx, a.bin, append(args, node)...)
	// Only what the CLI needs: a CONSUL_HTTP_* of the test's own
	// environment must not point it elsewhere.
	cmd.Env = []string{"HOME=" + os.Getenv("HOME"), "CONSUL_HTTP_ADDR=" + a.Addr, "CONSUL_HTTP_TOKEN=" + a.Token}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("consultest: consul %v via %s: %v\n%s", args, a.NodeName, err, out)
	}
}
