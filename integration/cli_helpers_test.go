package integration

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leaderd/leaderd/elect/child"
	"github.com/leaderd/leaderd/integration/history"
)

// logLine is one line a leaderd process wrote: a JSON log record on
// stderr (-log-format json) or a JSON line on stdout (leaderd leader -json).
type logLine struct {
	p      *proc
	stdout bool
	f      map[string]any
	raw    string
}

func (l logLine) msg() string           { s, _ := l.f["msg"].(string); return s }
func (l logLine) str(key string) string { s, _ := l.f[key].(string); return s }
func (l logLine) num(key string) int64 {
	f, _ := l.f[key].(float64)
	return int64(f)
}

// hub collects the lines of every process of a test so a test can wait
// for "any of them said X" without polling.
type hub struct {
	mu    sync.Mutex
	lines []logLine
	wake  chan struct{} // closed and replaced on every new line
}

func newHub() *hub { return &hub{wake: make(chan struct{})} }

func (h *hub) add(l logLine) {
	h.mu.Lock()
	h.lines = append(h.lines, l)
	close(h.wake)
	h.wake = make(chan struct{})
	h.mu.Unlock()
}

// mark is the number of lines so far: wait(..., mark, ...) ignores them.
func (h *hub) mark() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.lines)
}

// wait returns the first line at or after index from that matches, or
// fails the test after timeout.
func (h *hub) wait(t *testing.T, timeout time.Duration, from int, what string, match func(logLine) bool) logLine {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for i := from; ; {
		h.mu.Lock()
		lines, wake := h.lines, h.wake
		h.mu.Unlock()
		for ; i < len(lines); i++ {
			if match(lines[i]) {
				return lines[i]
			}
		}
		select {
		case <-wake:
		case <-deadline.C:
			var seen []string
			for _, l := range lines[max(from, len(lines)-40):] {
				seen = append(seen, l.p.name+": "+l.raw)
			}
			t.Fatalf("no %s within %v; the last lines were:\n%s", what, timeout, strings.Join(seen, "\n"))
		}
	}
}

// proc is a running leaderd process.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed after Wait
	code int           // exit code, valid after done
}

// baseEnv is what every leaderd process gets: no CONSUL_* or LEADERD_*
// leaking in from the developer's shell.
func baseEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
}

// start runs leaderd with args and env, feeding its output lines to h.
// Its stderr is also kept in the test's artifact directory. The process is
// killed at the end of the test if it is still running.
func start(t *testing.T, h *hub, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(leaderdBin, args...)
	p.cmd.Env = append(baseEnv(), env...)
	// If the test process dies, so does leaderd (and its child's whole
	// group: its keeper kills it when leaderd dies).
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(t.ArtifactDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	// Pdeathsig follows the creating thread, not the process: p.done
	// keeps that thread until leaderd is reaped.
	if err := child.StartLocked(p.cmd.Start, p.done); err != nil {
		logf.Close()
		t.Fatalf("start leaderd %s: %v", name, err)
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		readers.Wait() // Wait closes the pipes: read them to the end first
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		logf.Close()
		close(p.done)
	}()
	go p.scan(h, stdout, true, nil, &readers)
	go p.scan(h, stderr, false, logf, &readers)
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) scan(h *hub, r io.Reader, stdout bool, tee io.Writer, wg *sync.WaitGroup) {
	defer wg.Done()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if tee != nil {
			fmt.Fprintln(tee, line)
		}
		l := logLine{p: p, stdout: stdout, raw: line, f: map[string]any{}}
		_ = json.Unmarshal([]byte(line), &l.f)
		h.add(l)
	}
}

// signal sends sig to the leaderd process.
func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s to %s: %v", sig, p.name, err)
	}
}

// exit waits for the process to end and returns its exit code.
func (p *proc) exit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		t.Fatalf("leaderd %s still running after %v", p.name, timeout)
	}
	return -1
}

// from returns a matcher for a log message of p (any process if p is nil).
func from(p *proc, msg string) func(logLine) bool {
	return func(l logLine) bool { return (p == nil || l.p == p) && !l.stdout && l.msg() == msg }
}

// statusAddr waits for p's status server and returns its address.
func statusAddr(t *testing.T, h *hub, p *proc) string {
	t.Helper()
	return h.wait(t, 20*time.Second, 0, p.name+" status server", from(p, "status server listening")).str("addr")
}

// httpGet fetches http://addr/path and returns the code and body.
func httpGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// childEvent is a line of the child log: the test's child script appends
// "<kind> <token> <id> <pid> <unix-ns>" to $CHILD_LOG, and echoes it to
// stdout (leaderd's, so the test hub sees it): kind is start when it
// starts, term or int when it stops on that signal, hup on SIGHUP.
type childEvent struct {
	Kind  string
	Token uint64
	ID    string
	PID   int
	At    time.Time
}

// childScript records its life and runs until signaled. It says start
// only once its traps are set.
const childScript = `say() { line="$1 $LEADERD_TOKEN $LEADERD_ID $$ $(date +%s%N)"; echo "$line" >> "$CHILD_LOG"; echo "$line"; }
trap 'say term; exit 0' TERM
trap 'say int; exit 0' INT
trap 'say hup' HUP
say start
while :; do sleep 1 & wait $!; done`

// childSaid matches the child's stdout line of that kind.
func childSaid(kind string) func(logLine) bool {
	return func(l logLine) bool { return l.stdout && strings.HasPrefix(l.raw, kind+" ") }
}

func readChildLog(t *testing.T, path string) []childEvent {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var evs []childEvent
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 5 {
			t.Fatalf("bad child log line %q", line)
		}
		tok, _ := strconv.ParseUint(f[1], 10, 64)
		pid, _ := strconv.Atoi(f[3])
		ns, _ := strconv.ParseInt(f[4], 10, 64)
		evs = append(evs, childEvent{Kind: f[0], Token: tok, ID: f[2], PID: pid, At: time.Unix(0, ns)})
	}
	return evs
}

// waitGone waits until pid is dead. Nothing announces another process's
// death to us, so this is the one place that polls /proc.
func waitGone(t *testing.T, pid int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !history.Gone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive after %v", pid, timeout)
		}
		runtime.Gosched()
	}
}

// runOnce runs leaderd to completion and returns exit code, stdout, stderr.
func runOnce(t *testing.T, timeout time.Duration, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(leaderdBin, args...)
	cmd.Env = append(baseEnv(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("leaderd %v did not finish within %v; stderr:\n%s", args, timeout, stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// seedKey writes key as a graceful release leaves it, so a first election
// on it needn't wait out the lease window a missing key calls for.
func seedKey(t *testing.T, addr, key string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, "http://"+addr+"/v1/kv/"+key, strings.NewReader(`{"released":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("seed %s: %s", key, resp.Status)
	}
}
