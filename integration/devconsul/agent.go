package devconsul

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Config describes one agent. Bin, NodeName, Dir and LogPath are required.
type Config struct {
	Bin      string // the consul binary, from Find
	NodeName string
	// Dir is the agent's own scratch directory: its ACL config and, for a
	// server or a client, its data directory. The caller removes it.
	Dir string
	// LogPath receives the agent's stdout and stderr, appended across
	// restarts, with a line of this package's before and after each run.
	LogPath string
	// HCL are extra -hcl snippets, applied after the launcher's own, e.g.
	// `session_ttl_min = "1s"`.
	HCL []string
	// LogLevel is consul's -log-level; default "info".
	LogLevel string
	// Token, when set, enables ACLs with default_policy "deny" and Token
	// (a UUID, see NewUUID) as initial_management token. It is the agent's
	// own token too, so its anti-entropy sync isn't blocked; requests
	// without a token still run as anonymous. It goes in a config file,
	// never on the command line.
	Token string
	// Server runs a real server (-server -bootstrap-expect, a data
	// directory in Dir) instead of -dev, so its state survives Restart.
	// A Cluster's servers are all Server.
	Server bool
	// ClientOf runs a client agent (no -server, a data directory in Dir)
	// that retry-joins that server and is ready once the server's catalog
	// has its node with serfHealth passing.
	ClientOf *Agent
}

// Agent is one running (or stopped) consul agent on loopback.
type Agent struct {
	Addr       string // HTTP API, "127.0.0.1:port"
	NodeName   string
	Token      string // initial management token when Config.Token, else ""
	DataDir    string // "" for -dev agents, which keep everything in memory
	LogPath    string // the agent's stdout and stderr, across restarts
	ServerPort int    // server RPC; the raft address is 127.0.0.1:ServerPort
	SerfPort   int    // serf LAN, TCP and UDP

	bin             string
	hcl             []string
	logLevel        string
	aclFile         string // ACL config, kept off the command line for the token's sake
	bootstrapExpect int    // 0 for -dev and for a client
	server          *Agent // a client's server, whose catalog says it is ready
	join            []string
	logFile         *os.File

	mu   sync.Mutex
	proc *process // the latest process; nil before the first launch
}

const (
	readyTimeout = 60 * time.Second // a dev agent is ready in ~1s; slack for a loaded machine
	stopTimeout  = 15 * time.Second // SIGINT → SIGKILL
	startTries   = 3                // port races lost before giving up
)

// New prepares an agent that isn't running yet: it writes the ACL config
// and opens the log. Start runs it; Close stops it and closes the log.
func New(cfg Config) (*Agent, error) {
	if cfg.Bin == "" || cfg.NodeName == "" || cfg.Dir == "" || cfg.LogPath == "" {
		return nil, errors.New("devconsul: Config needs Bin, NodeName, Dir and LogPath")
	}
	if cfg.Server && cfg.ClientOf != nil {
		return nil, errors.New("devconsul: an agent is a Server or a client (ClientOf), not both")
	}
	a := &Agent{NodeName: cfg.NodeName, Token: cfg.Token, LogPath: cfg.LogPath,
		bin: cfg.Bin, hcl: cfg.HCL, logLevel: cfg.LogLevel, server: cfg.ClientOf}
	if a.logLevel == "" {
		a.logLevel = "info"
	}
	if cfg.Server {
		a.bootstrapExpect = 1
	}
	if cfg.Server || cfg.ClientOf != nil {
		a.DataDir = filepath.Join(cfg.Dir, "data")
	}
	if cfg.ClientOf != nil {
		a.join = []string{cfg.ClientOf.serfAddr()}
	}
	if cfg.Token != "" {
		a.aclFile = filepath.Join(cfg.Dir, "acl.hcl")
		conf := fmt.Sprintf(`acl {
  enabled = true
  default_policy = "deny"
  tokens {
    initial_management = %q
    agent = %q
  }
}
`, cfg.Token, cfg.Token)
		if err := os.WriteFile(a.aclFile, []byte(conf), 0o600); err != nil {
			return nil, fmt.Errorf("write ACL config: %w", err)
		}
	}
	f, err := os.OpenFile(a.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create agent log: %w", err)
	}
	a.logFile = f
	return a, nil
}

// NewUUID returns a random version 4 UUID; Consul wants token secrets in
// that form.
func NewUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// URL returns the agent's HTTP API base URL, "http://127.0.0.1:port".
func (a *Agent) URL() string { return "http://" + a.Addr }

// Start starts the agent on fresh free ports and waits until it is ready:
// it knows a raft leader and its node's serfHealth passes (before that,
// session create fails with "Missing node registration"); a client's node
// must be in its server's catalog. A lost port race is retried on new
// ports. logf hears about retries.
func (a *Agent) Start(ctx context.Context, logf func(format string, args ...any)) error {
	return a.start(ctx, true, logf)
}

// Restart stops the agent (Stop) and starts it again on the same ports,
// waiting for readiness. A -dev agent comes back empty: no keys, sessions
// or tokens other than the initial management token. A client agent keeps
// its data directory and node name, rejoins, and is ready once its node is
// registered again with serfHealth passing. Restart also starts an agent
// that was stopped, terminated or killed.
func (a *Agent) Restart(ctx context.Context, logf func(format string, args ...any)) error {
	a.Stop()
	return a.start(ctx, false, logf)
}

// start launches the agent and waits for readiness. With newPorts it picks
// fresh ports first and again after each lost port race; without, it keeps
// its ports (Restart) and just tries again.
func (a *Agent) start(ctx context.Context, newPorts bool, logf func(format string, args ...any)) error {
	for try := 1; ; try++ {
		if newPorts {
			if err := a.pickPorts(); err != nil {
				return err
			}
		}
		if err := a.launch(); err != nil {
			return err
		}
		err := Await(ctx, []*Agent{a}, readyTimeout, a.checkReady)
		var exited *ExitedError
		if errors.As(err, &exited) && exited.AddrInUse && try < startTries {
			logf("%v; retrying", err)
			if !newPorts {
				// Our own port: whoever holds it may let go soon.
				select {
				case <-time.After(time.Duration(try) * 500 * time.Millisecond):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			continue
		}
		if err != nil {
			a.Stop()
		}
		return err
	}
}

// current returns the latest process, nil before the first launch.
func (a *Agent) current() *process {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.proc
}

// Running reports whether the agent's process is up (ready or not).
func (a *Agent) Running() bool {
	p := a.current()
	return p != nil && !p.exited()
}

func (a *Agent) pickPorts() error {
	p, err := pickPorts()
	if err != nil {
		return err
	}
	a.Addr = "127.0.0.1:" + strconv.Itoa(p.http)
	a.ServerPort, a.SerfPort = p.server, p.serf
	return nil
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

// Close stops the agent (Stop) and closes its log.
func (a *Agent) Close() error {
	a.Stop()
	return a.logFile.Close()
}

// LogTail returns at most n last lines of the agent's log.
func (a *Agent) LogTail(n int) string {
	b, err := os.ReadFile(a.LogPath)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", a.LogPath, err)
	}
	return lastLines(b, n)
}
