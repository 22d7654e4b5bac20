package consultest

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

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

// Agent is one running (or stopped) consul agent on loopback.
type Agent struct {
	Addr       string // HTTP API, "127.0.0.1:port"
	NodeName   string
	Token      string // initial management token when Options.ACL, else ""
	DataDir    string // "" for -dev agents, which keep everything in memory
	LogPath    string // the agent's stdout and stderr, across restarts
	ServerPort int    // server RPC; the raft address is 127.0.0.1:ServerPort
	SerfPort   int    // serf LAN, TCP and UDP

	bin             string
	hcl             []string
	aclFile         string // ACL config, kept off the command line for the token's sake
	bootstrapExpect int    // 0 for -dev and for a client
	client          bool   // a client agent (StartClient)
	server          *Agent // a client's server, whose catalog says it is ready
	join            []string
	logFile         *os.File

	mu   sync.Mutex
	proc *process // the latest process; nil before the first launch
}

// URL returns the agent's HTTP API base URL, "http://127.0.0.1:port".
func (a *Agent) URL() string { return "http://" + a.Addr }

const (
	readyTimeout = 60 * time.Second // a dev agent is ready in ~1s; slack for a loaded machine
	stopTimeout  = 15 * time.Second // SIGINT → SIGKILL
	startTries   = 3                // port races lost before giving up
)

// Start starts an agent, waits until it is ready (a raft leader is known and
// its node's serfHealth passes), and stops it when the test ends.
func Start(t testing.TB, opts Options) *Agent {
	t.Helper()
	a := newAgent(t, Binary(t), opts, "", "")
	if opts.Server {
		a.bootstrapExpect = 1
	}
	a.start(t, true)
	return a
}

var agentSeq atomic.Int64

// newAgent prepares an agent that isn't running yet and registers its
// cleanups. name and token default to fresh ones; cluster servers share a
// token because only one of them bootstraps the ACL system. Cleanups run
// last-registered first: Stop, then the log tail, then closing the log,
// then removal of the directories they live in.
func newAgent(t testing.TB, bin string, opts Options, name, token string) *Agent {
	t.Helper()
	if name == "" {
		name = opts.NodeName
	}
	if name == "" {
		name = fmt.Sprintf("consultest-%d-%d", os.Getpid(), agentSeq.Add(1))
	}
	a := &Agent{NodeName: name, bin: bin, hcl: opts.HCL}
	tmp := t.TempDir()
	if opts.Server {
		a.DataDir = filepath.Join(tmp, "data")
	}
	if opts.ACL {
		a.Token = token
		if a.Token == "" {
			a.Token = newUUID()
		}
		a.aclFile = filepath.Join(tmp, "acl.hcl")
		conf := fmt.Sprintf(`acl {
  enabled = true
  default_policy = "deny"
  tokens {
    initial_management = %q
    agent = %q
  }
}
`, a.Token, a.Token)
		if err := os.WriteFile(a.aclFile, []byte(conf), 0o600); err != nil {
			t.Fatalf("consultest: write ACL config: %v", err)
		}
	}
	a.LogPath = filepath.Join(t.ArtifactDir(), "consul-"+name+".log")
	f, err := os.OpenFile(a.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("consultest: create agent log: %v", err)
	}
	a.logFile = f
	t.Cleanup(func() { f.Close() })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("consul agent %s log (last 50 lines of %s):\n%s", a.NodeName, a.LogPath, a.logTail(50))
		}
	})
	t.Cleanup(a.Stop)
	return a
}

// newUUID returns a random version 4 UUID; Consul wants token secrets in
// that form.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// start launches the agent and waits for readiness. With newPorts it picks
// fresh ports first and again after each lost port race; without, it keeps
// its ports (Restart) and just tries again.
func (a *Agent) start(t testing.TB, newPorts bool) {
	t.Helper()
	for try := 1; ; try++ {
		if newPorts {
			p, err := pickPorts()
			if err != nil {
				t.Fatalf("consultest: %v", err)
			}
			a.setPorts(p)
		}
		if err := a.launch(); err != nil {
			t.Fatalf("consultest: %v", err)
		}
		err := awaitReady([]*Agent{a}, readyTimeout, a.checkReady)
		var exited *exitedError
		if errors.As(err, &exited) && exited.addrInUse && try < startTries {
			t.Logf("consultest: %v; retrying", err)
			if !newPorts {
				// Our own port: whoever holds it may let go soon.
				<-time.After(time.Duration(try) * 500 * time.Millisecond)
			}
			continue
		}
		if err != nil {
			t.Fatalf("consultest: %v", err)
		}
		return
	}
}

// current returns the latest process, nil before the first launch.
func (a *Agent) current() *process {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.proc
}

// running reports whether the agent's process is up (ready or not).
func (a *Agent) running() bool {
	p := a.current()
	return p != nil && !p.exited()
}

func (a *Agent) setPorts(p agentPorts) {
	a.Addr = "127.0.0.1:" + strconv.Itoa(p.http)
	a.ServerPort, a.SerfPort = p.server, p.serf
}

// Stop stops the agent gracefully (SIGINT) and waits for it to exit,
// killing it after 15s. Stopping a stopped agent does nothing. A client
// agent leaves the cluster on SIGINT too (skip_leave_on_interrupt is false
// for clients), which deregisters its node.
func (a *Agent) Stop() { a.stop(syscall.SIGINT) }

// Terminate stops the agent with SIGTERM, as systemd, Nomad or Kubernetes
// do, and waits for it to exit, killing it after 15s. A client agent
// leaves the cluster on SIGTERM (leave_on_terminate defaults to true for
// clients): the servers deregister its node, which destroys every session
// on it (lock-delay applies). A server does not leave; it just stops.
// Terminate then Restart is a routine agent restart.
func (a *Agent) Terminate() { a.stop(syscall.SIGTERM) }

// Kill kills the agent's process group with SIGKILL and waits for it to
// exit: a crash, as far as Consul can tell.
func (a *Agent) Kill() { a.stop(syscall.SIGKILL) }

func (a *Agent) stop(sig syscall.Signal) {
	p := a.current()
	if p == nil || p.exited() {
		return
	}
	if sig == syscall.SIGKILL {
		p.killGroup()
	} else {
		p.cmd.Process.Signal(sig)
	}
	select {
	case <-p.done:
		return
	case <-time.After(stopTimeout):
	}
	p.killGroup()
	<-p.done
}

// Restart stops the agent (Stop) and starts it again on the same ports,
// waiting for readiness. A -dev agent comes back empty: no keys, sessions
// or tokens other than the initial management token. A client agent keeps
// its data directory and node name, rejoins, and is ready once its node is
// registered again with serfHealth passing. Restart also starts an agent
// that was stopped, terminated or killed.
func (a *Agent) Restart(t testing.TB) {
	t.Helper()
	a.Stop()
	a.start(t, false)
}

// logTail returns at most n last lines of the agent's log.
func (a *Agent) logTail(n int) string {
	b, err := os.ReadFile(a.LogPath)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", a.LogPath, err)
	}
	return lastLines(b, n)
}
