package hooks

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/leaderd/leaderd/elect"
)

// hookRig is a Runner whose results are counted in memory.
type hookRig struct {
	h      *Runner
	mu     sync.Mutex
	counts map[string]int
}

func newHookRig(t *testing.T, line string, timeout time.Duration, env ...string) *hookRig {
	t.Helper()
	r := &hookRig{counts: map[string]int{}}
	r.h = New(Config{
		Line: line, Timeout: timeout, Key: "services/web/leader", ID: "web-1",
		Env:    append([]string{"PATH=" + os.Getenv("PATH")}, env...),
		Stdout: io.Discard, Stderr: io.Discard,
		Logger: slog.New(slog.NewTextHandler(testLogWriter{t}, nil)),
		Count: func(result string) {
			r.mu.Lock()
			r.counts[result]++
			r.mu.Unlock()
		},
	})
	t.Cleanup(func() { r.h.Close(10 * time.Second) })
	return r
}

func (r *hookRig) count(result string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[result]
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func leaderEv(id, session string, token uint64) elect.Event {
	return elect.Event{Kind: elect.KindLeaderChanged, Leader: &elect.Leader{Candidate: elect.Candidate{ID: id}, Session: session, Token: token}}
}

// TestHookOrder: every role change runs the hook once, in order, with its
// environment; a leader seen again, "nobody leads" and errors run nothing.
func TestHookOrder(t *testing.T) {
	out := filepath.Join(t.TempDir(), "hooks")
	r := newHookRig(t, `echo "$LEADERD_ROLE|$LEADERD_REASON|$LEADERD_TOKEN|$LEADERD_LEADER_ID|$LEADERD_KEY|$LEADERD_ID|$CONSUL_HTTP_TOKEN|$OTHER" >> `+out,
		time.Minute, "CONSUL_HTTP_TOKEN=secret", "OTHER=kept", "LEADERD_ROLE=stale")
	for _, ev := range []elect.Event{
		leaderEv("b", "s-b", 10),
		leaderEv("b", "s-b", 10),        // the same leader again: no hook
		{Kind: elect.KindLeaderChanged}, // nobody leads: no role change
		{Kind: elect.KindError, Attempt: 1},
		{Kind: elect.KindElected, Token: 12},
		{Kind: elect.KindSteppedDown, Token: 12, Reason: elect.ReasonLeaseExpired},
		leaderEv("b", "s-b2", 15), // b leads again, with a new session
		{Kind: elect.KindSteppedDown, Token: 0, Reason: elect.ReasonShutdown}, // (not from elect: a follower has no term)
	} {
		r.h.Event(ev)
	}
	r.h.Close(10 * time.Second)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"follower||10|b|services/web/leader|web-1||kept",
		"leader||12|web-1|services/web/leader|web-1||kept",
		"stepped_down|lease_expired|12|web-1|services/web/leader|web-1||kept",
		"follower||15|b|services/web/leader|web-1||kept",
		"stepped_down|shutdown|0|web-1|services/web/leader|web-1||kept",
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(string(b)), "\n")); diff != "" {
		t.Errorf("hook runs (-want +got):\n%s", diff)
	}
	if got := r.count(ResultOK); got != len(want) {
		t.Errorf("ok count = %d, want %d", got, len(want))
	}
}

// TestHookTimeoutAndFailure: a hung hook has its whole process group
// killed at -hook-timeout, a failing one is counted, and neither stops the
// hooks after it nor blocks the caller meanwhile.
func TestHookTimeoutAndFailure(t *testing.T) {
	dir := t.TempDir()
	pidFile, out := filepath.Join(dir, "pid"), filepath.Join(dir, "out")
	// leader: a grandchild in the hook's group that would outlive the
	// shell, and the shell waiting on it; stepped_down: fails.
	line := `case $LEADERD_ROLE in
leader) sleep 600 & echo $! > ` + pidFile + `; wait ;;
stepped_down) echo failing >> ` + out + `; exit 3 ;;
*) echo "$LEADERD_ROLE" >> ` + out + ` ;;
esac`
	r := newHookRig(t, line, 300*time.Millisecond)
	start := time.Now()
	r.h.Event(elect.Event{Kind: elect.KindElected, Token: 5})
	r.h.Event(elect.Event{Kind: elect.KindSteppedDown, Token: 5, Reason: elect.ReasonKeyLost})
	r.h.Event(leaderEv("b", "s-b", 9))
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("queuing three hooks took %v behind a hung one; it must not wait", took)
	}
	r.h.Close(10 * time.Second)
	b, _ := os.ReadFile(out)
	if diff := cmp.Diff("failing\nfollower\n", string(b)); diff != "" {
		t.Errorf("hooks after the hung one (-want +got):\n%s", diff)
	}
	pb, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pb)))
	if !processGone(pid) {
		t.Errorf("the hung hook's sleep (pid %d) outlived the timeout", pid)
	}
	for res, want := range map[string]int{ResultTimeout: 1, ResultFailed: 1, ResultOK: 1, ResultDropped: 0} {
		if got := r.count(res); got != want {
			t.Errorf("%s count = %d, want %d", res, got, want)
		}
	}
}

// TestHookQueueFull: behind a hung hook, the oldest waiting hooks are
// dropped and counted once the queue is full; the latest ones run.
func TestHookQueueFull(t *testing.T) {
	dir := t.TempDir()
	out, fifo := filepath.Join(dir, "out"), filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	r := newHookRig(t, `if [ "$LEADERD_TOKEN" = 0 ]; then echo hung > `+fifo+`; exec sleep 600; fi; echo "$LEADERD_TOKEN" >> `+out, 500*time.Millisecond)
	r.h.Event(elect.Event{Kind: elect.KindElected, Token: 0}) // hangs until its timeout
	// Opening the fifo returns once the hung hook runs.
	f, err := os.Open(fifo)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, f)
	f.Close()
	for i := 1; i <= maxHookQueue+2; i++ {
		r.h.Event(elect.Event{Kind: elect.KindSteppedDown, Token: uint64(i), Reason: elect.ReasonReleased})
	}
	r.h.Close(10 * time.Second)
	b, _ := os.ReadFile(out)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if d := r.count(ResultDropped); d != 2 || len(lines) != maxHookQueue || lines[0] != "3" || lines[len(lines)-1] != strconv.Itoa(maxHookQueue+2) {
		t.Errorf("dropped %d, ran %d from %s to %s; want the first 2 dropped, 3 to %d run", d, len(lines), lines[0], lines[len(lines)-1], maxHookQueue+2)
	}
}

// TestHookCloseBounded: close gives up waiting on a hook after its bound,
// kills it, and counts what was never run.
func TestHookCloseBounded(t *testing.T) {
	r := newHookRig(t, `exec sleep 600`, time.Hour)
	r.h.Event(elect.Event{Kind: elect.KindElected, Token: 1})
	r.h.Event(elect.Event{Kind: elect.KindSteppedDown, Token: 1, Reason: elect.ReasonShutdown})
	start := time.Now()
	r.h.Close(200 * time.Millisecond)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("close took %v, bound 200ms", took)
	}
	if r.count(ResultFailed) != 1 || r.count(ResultDropped) != 1 {
		t.Errorf("failed %d, dropped %d; want the running hook failed (killed) and the queued one dropped", r.count(ResultFailed), r.count(ResultDropped))
	}
}

func TestNoHook(t *testing.T) {
	h := New(Config{})
	if h != nil {
		t.Fatal("a runner without -hook")
	}
	h.Event(elect.Event{Kind: elect.KindElected}) // a nil runner does nothing
	h.Close(time.Second)
}

// processGone reports whether pid is dead or a zombie.
func processGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}
