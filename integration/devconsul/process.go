package devconsul

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/leaderd/leaderd/elect/child"
)

// process is one run of the consul binary.
type process struct {
	cmd      *exec.Cmd
	done     chan struct{} // closed once the process has exited and been reaped
	err      error         // cmd.Wait's result, set before done closes
	logStart int64         // offset in the log where this run's output begins
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// killGroup SIGKILLs the process group (Setpgid made the agent its leader),
// so nothing it might have spawned survives. The pid is not reused before
// Wait reaps it, which the exited check guards.
func (p *process) killGroup() {
	if !p.exited() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// launch starts the consul process with the agent's current ports; it does
// not wait for readiness.
func (a *Agent) launch() error {
	off, err := a.logFile.Seek(0, 2)
	if err != nil {
		return fmt.Errorf("agent log: %w", err)
	}
	fmt.Fprintf(a.logFile, "=== devconsul: starting consul agent %s (http %s, server %d, serf %d)\n",
		a.NodeName, a.Addr, a.ServerPort, a.SerfPort)
	cmd := exec.Command(a.bin, a.args()...)
	cmd.Stdout, cmd.Stderr = a.logFile, a.logFile
	// Its own process group: a Ctrl-C at a terminal reaches us, not the
	// agent, which we then stop in order, and killGroup leaves nothing.
	// Pdeathsig: it dies with us, even by SIGKILL.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &process{cmd: cmd, done: make(chan struct{}), logStart: off}
	if err := child.StartLocked(cmd.Start, p.done); err != nil {
		return fmt.Errorf("start consul agent %s: %w", a.NodeName, err)
	}
	go func() {
		p.err = cmd.Wait()
		fmt.Fprintf(a.logFile, "=== devconsul: consul agent %s exited: %v\n", a.NodeName, exitStatus(p.err))
		close(p.done)
	}()
	a.mu.Lock()
	a.proc = p
	a.mu.Unlock()
	return nil
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// args is the agent command line. The ACL token is in a config file, not
// here, so it never shows in ps or in a logged command.
func (a *Agent) args() []string {
	args := []string{"agent"}
	switch {
	case a.server != nil:
		args = append(args, "-data-dir="+a.DataDir)
	case a.bootstrapExpect == 0:
		args = append(args, "-dev")
	default:
		args = append(args, "-server",
			"-bootstrap-expect="+strconv.Itoa(a.bootstrapExpect),
			"-data-dir="+a.DataDir)
	}
	for _, j := range a.join {
		args = append(args, "-retry-join="+j)
	}
	args = append(args,
		"-node="+a.NodeName,
		"-bind=127.0.0.1",
		"-client=127.0.0.1",
		"-http-port="+strings.TrimPrefix(a.Addr, "127.0.0.1:"),
		"-server-port="+strconv.Itoa(a.ServerPort),
		"-serf-lan-port="+strconv.Itoa(a.SerfPort),
		"-serf-wan-port=-1",
		"-dns-port=-1",
		"-grpc-port=-1",
		"-grpc-tls-port=-1",
		"-log-level="+a.logLevel,
	)
	if a.bootstrapExpect > 0 || a.server != nil {
		args = append(args, "-hcl", quickHCL)
	}
	if a.aclFile != "" {
		args = append(args, "-config-file="+a.aclFile)
	}
	for _, h := range a.hcl {
		args = append(args, "-hcl", h)
	}
	return args
}

// quickHCL makes a real server or a client agent as quick as -dev: raft
// timing at the fastest multiplier (unused by a client) and dev's gossip
// intervals, so elections and failure detection take a second or two.
// No phoning home from tests.
const quickHCL = `
disable_update_check = true
disable_anonymous_signature = true
performance { raft_multiplier = 1 }
gossip_lan {
  gossip_interval = "100ms"
  probe_interval = "100ms"
  probe_timeout = "100ms"
  suspicion_mult = 3
}
`

// ExitedError reports an agent that exited before it was ready.
type ExitedError struct {
	Agent     *Agent
	Err       error  // cmd.Wait's
	AddrInUse bool   // lost a port race: worth retrying on other ports
	tail      string // this run's last log lines
}

func (e *ExitedError) Error() string {
	return fmt.Sprintf("consul agent %s exited before it was ready (%s); its log ends:\n%s",
		e.Agent.NodeName, exitStatus(e.Err), e.tail)
}

// exitedErr describes p's exit from the agent's log.
func (a *Agent) exitedErr(p *process) *ExitedError {
	b, _ := os.ReadFile(a.LogPath)
	if p.logStart <= int64(len(b)) {
		b = b[p.logStart:]
	}
	return &ExitedError{
		Agent:     a,
		Err:       p.err,
		AddrInUse: strings.Contains(string(b), "address already in use"),
		tail:      lastLines(b, 30),
	}
}
