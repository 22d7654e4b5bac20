package main

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/leaderd/leaderd/elect"
)

// waitFor bounds every wait on a child; it is a deadline, not a delay.
const waitFor = 10 * time.Second

var testTerm = elect.Term{Key: "services/web/leader", Session: "sess-1", Token: 42}

// childOutput is a supervisor whose command writes to a pipe the test reads
// line by line: the child says when it is ready, so nothing sleeps.
type childOutput struct {
	sup   *supervisor
	lines chan string
}

func newTestSupervisor(t *testing.T, script string, killTimeout time.Duration) *childOutput {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sup := newSupervisor([]string{"sh", "-c", script}, "web-1", []string{"PATH=" + os.Getenv("PATH")}, killTimeout, log)
	sup.stdout, sup.stderr = w, w
	co := &childOutput{sup: sup, lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			co.lines <- sc.Text()
		}
		close(co.lines)
	}()
	t.Cleanup(func() {
		sup.SetStopSignal(syscall.SIGKILL)
		sup.Stop()
		w.Close()
		r.Close()
	})
	return co
}

func (co *childOutput) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case got, ok := <-co.lines:
		if !ok {
			t.Fatalf("child output closed, want %q", want)
		}
		if got != want {
			t.Fatalf("child said %q, want %q", got, want)
		}
	case <-time.After(waitFor):
		t.Fatalf("child did not say %q within %v", want, waitFor)
	}
}

func (co *childOutput) exit(t *testing.T) childExit {
	t.Helper()
	select {
	case ex := <-co.sup.Exits():
		return ex
	case <-time.After(waitFor):
		t.Fatalf("child did not exit within %v", waitFor)
	}
	return childExit{}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// gone reports whether pid is dead: no such process, or a zombie nobody
// reaped yet (an orphan's new parent may be slow or absent in a container).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !gone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive after %v", pid, waitFor)
		}
		runtime.Gosched()
	}
}

func TestSupervisorEnvironment(t *testing.T) {
	co := newTestSupervisor(t, `echo "$LEADERD_LEADER $LEADERD_TOKEN $LEADERD_KEY $LEADERD_SESSION $LEADERD_ID $CONSUL_LOCK_HELD"; `+
		`[ "$(ps -o pgid= -p $$ | tr -d ' ')" = "$$" ] && echo own-group`, time.Second)
	co.sup.Start(testTerm)
	co.expect(t, "true 42 services/web/leader sess-1 web-1 true")
	co.expect(t, "own-group")
	if diff := cmp.Diff(childExit{Token: 42, Code: 0}, co.exit(t)); diff != "" {
		t.Errorf("exit (-want +got):\n%s", diff)
	}
}

func TestSupervisorExitCode(t *testing.T) {
	tests := []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 7", 7},
		{"kill -KILL $$", 128 + 9},
		{"kill -TERM $$", 128 + 15},
	}
	for _, tc := range tests {
		t.Run(tc.script, func(t *testing.T) {
			co := newTestSupervisor(t, tc.script, time.Second)
			co.sup.Start(testTerm)
			if got := co.exit(t).Code; got != tc.want {
				t.Errorf("exit code = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestSupervisorStop: the stop signal reaches the group; once the group
// leader has exited, whatever is left of the group (here a grandchild
// that ignores SIGTERM) is killed, without waiting for -kill-timeout.
func TestSupervisorStop(t *testing.T) {
	tests := []struct {
		name   string
		sig    syscall.Signal
		script string
		said   string
	}{
		{"sigterm", 0, `trap 'echo got-term; exit 0' TERM`, "got-term"},
		{"forwarded sigint", syscall.SIGINT, `trap 'echo got-int; exit 0' INT`, "got-int"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			co := newTestSupervisor(t, tc.script+`; sh -c 'trap "" TERM INT; exec sleep 1000' & echo $!; echo ready; wait`, time.Minute)
			if tc.sig != 0 {
				co.sup.SetStopSignal(tc.sig)
			}
			co.sup.Start(testTerm)
			grandchild, err := strconv.Atoi(<-co.lines)
			if err != nil {
				t.Fatal(err)
			}
			co.expect(t, "ready")
			if !co.sup.Running() {
				t.Error("Running() = false while the child runs")
			}
			start := time.Now()
			co.sup.Stop()
			if d := time.Since(start); d > waitFor {
				t.Errorf("Stop took %v: it waited for the kill timeout although the child exited", d)
			}
			co.expect(t, tc.said)
			waitGone(t, grandchild)
			if co.sup.Running() {
				t.Error("Running() = true after Stop")
			}
			select {
			case ex := <-co.sup.Exits():
				t.Errorf("a stopped child was reported as exiting by itself: %+v", ex)
			default:
			}
		})
	}
}

// TestSupervisorKillTimeout: a child that ignores SIGTERM is SIGKILLed after
// the kill timeout, and Stop returns only once it is gone.
func TestSupervisorKillTimeout(t *testing.T) {
	const killTimeout = 300 * time.Millisecond
	co := newTestSupervisor(t, `trap '' TERM; echo $$; exec sleep 1000`, killTimeout)
	co.sup.Start(testTerm)
	pid, err := strconv.Atoi(<-co.lines)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	co.sup.Stop()
	if d := time.Since(start); d < killTimeout {
		t.Errorf("Stop returned after %v, before the kill timeout %v", d, killTimeout)
	}
	if !gone(pid) {
		t.Errorf("child %d still alive after Stop", pid)
	}
}

// TestSupervisorSignal: SIGHUP is forwarded to the group.
func TestSupervisorSignal(t *testing.T) {
	co := newTestSupervisor(t, `trap 'echo got-hup' HUP; echo ready; while :; do sleep 1000 & wait; done`, time.Second)
	co.sup.Start(testTerm)
	co.expect(t, "ready")
	// The shell runs its trap only between commands; a HUP that lands
	// while it is forking the next sleep can be folded into the one
	// before, so send it again until the trap has run (each send goes to
	// the whole group, which is what this test is about).
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	co.sup.Signal(syscall.SIGHUP)
	for {
		select {
		case l := <-co.lines:
			if l == "got-hup" {
				return
			}
		case <-tick.C:
			co.sup.Signal(syscall.SIGHUP)
		case <-deadline:
			t.Fatal(`child did not say "got-hup" within 10s of SIGHUPs`)
		}
	}
}

// TestSupervisorOutlivesStartingThread: Pdeathsig fires when the thread
// that forked the child exits. Start is called here from a goroutine locked
// to a thread that then exits (as the Go runtime does when a locked
// goroutine returns); the child must live on.
func TestSupervisorOutlivesStartingThread(t *testing.T) {
	co := newTestSupervisor(t, `trap 'echo got-hup' HUP; echo ready; while :; do sleep 1000 & wait; done`, time.Second)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		co.sup.Start(testTerm)
		co.expect(t, "ready")
		close(done)
	}()
	<-done
	// Give the runtime a chance to tear the thread down, then prove the
	// child still answers.
	for range 3 {
		runtime.GC()
		co.sup.Signal(syscall.SIGHUP)
		select {
		case got := <-co.lines:
			if got != "got-hup" {
				t.Fatalf("child said %q, want got-hup", got)
			}
		case ex := <-co.sup.Exits():
			t.Fatalf("child died with the thread that started it: %+v", ex)
		case <-time.After(waitFor):
			t.Fatalf("child did not answer SIGHUP within %v", waitFor)
		}
	}
}

func TestSupervisorStartFailure(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	sup := newSupervisor([]string{"/nonexistent/worker"}, "web-1", nil, time.Second, log)
	sup.Start(testTerm)
	select {
	case ex := <-sup.Exits():
		if diff := cmp.Diff(childExit{Token: 42, Code: 127}, ex); diff != "" {
			t.Errorf("exit (-want +got):\n%s", diff)
		}
	case <-time.After(waitFor):
		t.Fatal("no exit reported for a command that can't start")
	}
	sup.Stop() // must not block
}
