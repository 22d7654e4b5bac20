package child

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leaderd/leaderd/elect"
)

// waitFor bounds every wait on a process; it is a deadline, not a delay.
const waitFor = 10 * time.Second

// poll is how often a test looks at /proc for a death nothing announces.
const poll = 2 * time.Millisecond

// testTerm is a term whose lease lasts the whole test unless set.
func testTerm(lease time.Duration) elect.Term {
	return elect.Term{Key: "services/web/leader", Session: "sess-1", Token: 42, LeaseEnd: time.Now().Add(lease)}
}

// rig is a Supervisor whose command writes to a pipe the test reads line
// by line: the command says when it is ready, so nothing sleeps.
type rig struct {
	sup   *Supervisor
	lines chan string
}

type rigOpt func(*Config)

func withEnv(kv ...string) rigOpt     { return func(c *Config) { c.Env = append(c.Env, kv...) } }
func withPass(names ...string) rigOpt { return func(c *Config) { c.Pass = names } }

func newRig(t *testing.T, script string, killTimeout time.Duration, opts ...rigOpt) *rig {
	t.Helper()
	return newRigArgv(t, []string{"sh", "-c", script}, killTimeout, opts...)
}

func newRigArgv(t *testing.T, argv []string, killTimeout time.Duration, opts ...rigOpt) *rig {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Command:     argv,
		ID:          "web-1",
		Env:         []string{"PATH=" + os.Getenv("PATH")},
		KillTimeout: killTimeout,
		Stdout:      w,
		Stderr:      w,
		LogLevel:    "debug",
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, o := range opts {
		o(&cfg)
	}
	sup, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rg := &rig{sup: sup, lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			t.Logf("out: %s", sc.Text())
			// The keeper logs to the same pipe: only the command's lines count.
			if !strings.Contains(sc.Text(), "component=keeper") {
				rg.lines <- sc.Text()
			}
		}
		close(rg.lines)
		r.Close()
	}()
	t.Cleanup(func() {
		sup.SetStopSignal(syscall.SIGKILL)
		sup.Stop()
		sup.Close()
		w.Close() // kept open until now: a new keeper gets it too
	})
	return rg
}

// line returns the command's next line.
func (rg *rig) line(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-rg.lines:
		if !ok {
			t.Fatal("the command's output closed")
		}
		return l
	case <-time.After(waitFor):
		t.Fatalf("the command said nothing within %v", waitFor)
	}
	return ""
}

func (rg *rig) expect(t *testing.T, want string) {
	t.Helper()
	if got := rg.line(t); got != want {
		t.Fatalf("the command said %q, want %q", got, want)
	}
}

// pid reads a pid the command printed.
func (rg *rig) pid(t *testing.T) int {
	t.Helper()
	return atoi(t, rg.line(t))
}

func atoi(t *testing.T, l string) int {
	t.Helper()
	pid, err := strconv.Atoi(l)
	if err != nil {
		t.Fatalf("the command said %q, want a pid", l)
	}
	return pid
}

func (rg *rig) exit(t *testing.T) Exit {
	t.Helper()
	select {
	case ex := <-rg.sup.Exits():
		return ex
	case <-time.After(waitFor):
		t.Fatalf("no exit within %v", waitFor)
	}
	return Exit{}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// dead reports whether pid is dead: absent, or a zombie.
func dead(pid int) bool {
	st, ok := readStat(pid)
	return !ok || !st.alive()
}

// absent reports whether pid is dead and reaped.
func absent(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return errors.Is(err, os.ErrNotExist)
}

// waitUntil polls cond until it holds, or fails the test after waitFor.
func waitUntil(t *testing.T, what string, cond func() bool) time.Time {
	t.Helper()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitFor)
		}
		<-tick.C
	}
	return time.Now()
}

// keeperPID is the pid of the supervisor's current keeper.
func (rg *rig) keeperPID() int {
	rg.sup.mu.Lock()
	defer rg.sup.mu.Unlock()
	return rg.sup.k.cmd.Process.Pid
}

// environ reads a process's environment.
func environ(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

func pgid(t *testing.T, pid int) int {
	t.Helper()
	g, err := syscall.Getpgid(pid)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// staleStop is the stop an earlier term with the given token sent.
func staleStop(token uint64) msg { return msg{Op: opStop, Term: 1, Token: token} }
