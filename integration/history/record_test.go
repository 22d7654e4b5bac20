package history

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseLeaderd(t *testing.T) {
	ts := "2026-11-29T22:36:31.851387515Z"
	at, _ := time.Parse(time.RFC3339Nano, ts)
	tests := []struct {
		line string
		want Event
		ok   bool
	}{
		{`{"time":"` + ts + `","level":"INFO","msg":"elected","session":"s1","token":27,"first":true}`,
			Event{At: at, Candidate: "a", Kind: Elected, Token: 27, PID: 100}, true},
		{`{"time":"` + ts + `","level":"INFO","msg":"stepping down","reason":"lease_expired","token":27}`,
			Event{At: at, Candidate: "a", Kind: SteppedDown, Token: 27, PID: 100, Note: "lease_expired"}, true},
		{`{"time":"` + ts + `","level":"INFO","msg":"child started","component":"child","pid":12,"token":27}`,
			Event{At: at, Candidate: "a", Kind: ChildSpawned, Token: 27, PID: 12}, true},
		{`{"time":"` + ts + `","level":"INFO","msg":"child exited","component":"child","pid":12,"code":143,"token":27}`,
			Event{At: at, Candidate: "a", Kind: ChildReaped, Token: 27, PID: 12, Note: "code=143"}, true},
		{`{"time":"` + ts + `","level":"INFO","msg":"leader changed","leader":"b","session":"s2","token":31}`,
			Event{At: at, Candidate: "a", Kind: LeaderSeen, Token: 31, PID: 100, Note: "b"}, true},
		{`{"time":"` + ts + `","level":"DEBUG","msg":"session renewed","session":"s1","latency":1500000}`,
			Event{At: at.Add(-1500 * time.Microsecond), Candidate: "a", Kind: Proof, PID: 100, Note: "renew"}, true},
		{`{"time":"` + ts + `","level":"INFO","msg":"starting","key":"k"}`, Event{}, false},
		{`time=x level=INFO msg=elected`, Event{}, false},
		{`{"msg":"elected","token":1}`, Event{}, false},
		{``, Event{}, false},
	}
	for _, tc := range tests {
		got, ok := ParseLeaderd("a", 100, []byte(tc.line))
		if ok != tc.ok {
			t.Errorf("ParseLeaderd(%s) ok = %v, want %v", tc.line, ok, tc.ok)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseLeaderd(%s) (-want +got):\n%s", tc.line, diff)
		}
	}
}

func TestParseChild(t *testing.T) {
	got, err := ParseChild("stop a 27 4242 1700000000000000123")
	want := Event{At: time.Unix(0, 1700000000000000123), Candidate: "a", Kind: ChildStop, Token: 27, PID: 4242, Note: "stop"}
	if err != nil || !cmp.Equal(want, got) {
		t.Errorf("ParseChild = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"", "start a 27 4242", "boom a 27 4242 1", "start a x 4242 1", "start a 27 4242 1 extra"} {
		if _, err := ParseChild(bad); err == nil {
			t.Errorf("ParseChild(%q) succeeded, want an error", bad)
		}
	}
}

func TestTimeline(t *testing.T) {
	evs := join(crashed("a", 1, 11, 10, 0, 100, 102), ev(1500, "b", Elected, 20, 2, ""))
	want := `        ms  test  a                        b
       0.0        ELECTED t=10
       5.0        child START t=10 pid 11
     100.0        FAULT SIGKILL
     101.0        leaderd 1 gone
     102.0        child 11 seen gone
    1500.0                                 ELECTED t=20
`
	if diff := cmp.Diff(want, Timeline(evs, t0)); diff != "" {
		t.Errorf("Timeline (-want +got):\n%s", diff)
	}
	// Many candidates: one column, named on each line.
	var many []Event
	for _, c := range strings.Split("a b c d e f g", " ") {
		many = append(many, ev(1, c, Elected, 1, 1, "")...)
	}
	if got := Timeline(many, t0); !strings.Contains(got, "       1.0  g        ELECTED t=1\n") {
		t.Errorf("Timeline with 7 candidates:\n%s", got)
	}
}

// TestChildScript runs the real script: records on start and on SIGTERM,
// followed live by FollowChildLog, and a child SIGKILLed seen gone.
func TestChildScript(t *testing.T) {
	log := filepath.Join(t.TempDir(), "child.log")
	h := New()
	cl := h.FollowChildLog(log, 5*time.Millisecond)
	defer cl.Stop()
	run := func(token string, extraEnv ...string) *exec.Cmd {
		cmd := exec.Command("sh", "-c", ChildScript)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), ChildLogEnv + "=" + log, "LEADERD_ID=a", "LEADERD_TOKEN=" + token}, extraEnv...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
		return cmd
	}
	wait := func(what string, match func(Event) bool) Event {
		t.Helper()
		e, err := h.Wait(0, 10*time.Second, match)
		if err != nil {
			t.Fatalf("%s: %v\n%s", what, err, h.Timeline())
		}
		return e
	}
	is := func(k Kind, tok uint64) func(Event) bool {
		return func(e Event) bool { return e.Kind == k && e.Token == tok }
	}

	one := run("1")
	start := wait("start record", is(ChildStart, 1))
	if start.PID != one.Process.Pid || start.Candidate != "a" {
		t.Errorf("start record %v, want pid %d of a", start, one.Process.Pid)
	}
	one.Process.Signal(syscall.SIGTERM)
	wait("stop record", is(ChildStop, 1))
	wait("gone", is(ChildGone, 1))

	two := run("2")
	wait("start record", is(ChildStart, 2))
	w := NewProcWatch(two.Process.Pid)
	two.Process.Signal(syscall.SIGSTOP)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(5 * time.Second); !w.Stopped(); <-tick.C {
		if time.Now().After(deadline) {
			t.Fatal("the child is not stopped 5s after SIGSTOP")
		}
	}
	if !w.Alive() {
		t.Errorf("a stopped child is not alive")
	}
	syscall.Kill(-two.Process.Pid, syscall.SIGKILL)
	gone := wait("gone after SIGKILL", is(ChildGone, 2))
	if _, err := h.Wait(0, 0, is(ChildStop, 2)); err == nil {
		t.Errorf("a SIGKILLed child wrote a stop record")
	}
	if w.Alive() {
		t.Errorf("ProcWatch says alive after the child was seen gone at %v", gone.At)
	}

	three := run("3", ChildLifetimeEnv+"=0.05", ChildExitEnv+"=7")
	e := wait("exit record", is(ChildStop, 3))
	if e.Note != "exit" {
		t.Errorf("record %v, want an exit record", e)
	}
	if err := three.Wait(); err == nil || three.ProcessState.ExitCode() != 7 {
		t.Errorf("child with a lifetime exited %v, want code 7", err)
	}
	four := run("4", ChildStopDelayEnv+"=0.3")
	wait("start record", is(ChildStart, 4))
	termAt := time.Now()
	four.Process.Signal(syscall.SIGTERM)
	stop := wait("stop record after the delay", is(ChildStop, 4))
	if d := stop.At.Sub(termAt); d < 300*time.Millisecond {
		t.Errorf("slow child recorded stop %v after SIGTERM, want ≥ 300ms", d)
	}
	wait("gone", is(ChildGone, 4))

	cl.Stop()
	r := h.Check(Options{})
	// No elected events: every child start is of an unknown term.
	if len(r.Violations) != 4 {
		t.Errorf("violations %v, want 4 (children of terms nobody won)", r.Violations)
	}
}
