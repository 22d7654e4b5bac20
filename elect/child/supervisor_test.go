package child

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestEnvironment: the command gets the LEADERD_* values, runs in its own
// process group, and gets leaderd's secrets only when they are passed on;
// the keeper never gets them.
func TestEnvironment(t *testing.T) {
	secrets := []string{"CONSUL_HTTP_TOKEN=s1", "CONSUL_HTTP_TOKEN_FILE=/s2", "CONSUL_HTTP_AUTH=u:s3", "NOMAD_TOKEN=s4"}
	tests := []struct {
		name string
		pass []string
		want string
	}{
		{"withheld", nil, "[] [] [] []"},
		{"passed", []string{"CONSUL_HTTP_TOKEN", "NOMAD_TOKEN"}, "[s1] [] [] [s4]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rg := newRig(t, `echo "$LEADERD_LEADER $LEADERD_TOKEN $LEADERD_KEY $LEADERD_SESSION $LEADERD_ID $CONSUL_LOCK_HELD $OTHER"; `+
				`echo "[$CONSUL_HTTP_TOKEN] [$CONSUL_HTTP_TOKEN_FILE] [$CONSUL_HTTP_AUTH] [$NOMAD_TOKEN]"; `+
				`[ "$(ps -o pgid= -p $$ | tr -d ' ')" = "$$" ] && echo own-group`,
				time.Second, withEnv(append(secrets, "OTHER=kept", "LEADERD_TOKEN=stale")...), withPass(tc.pass...))
			for _, kv := range environ(t, rg.keeperPID()) {
				if name, _, _ := strings.Cut(kv, "="); slices.Contains(Withheld, name) {
					t.Errorf("the keeper has %s in its environment", name)
				}
			}
			rg.sup.Start(testTerm(time.Minute))
			rg.expect(t, "true 42 services/web/leader sess-1 web-1 true kept")
			rg.expect(t, tc.want)
			rg.expect(t, "own-group")
			if diff := cmp.Diff(Exit{Token: 42, Code: 0}, rg.exit(t)); diff != "" {
				t.Errorf("exit (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckPass(t *testing.T) {
	if err := CheckPass([]string{"NOMAD_TOKEN", "CONSUL_HTTP_AUTH"}); err != nil {
		t.Errorf("CheckPass(withheld names) = %v", err)
	}
	if err := CheckPass([]string{"CONSUL_HTTP_TOKEN", "HOME"}); err == nil || !strings.Contains(err.Error(), `"HOME"`) {
		t.Errorf("CheckPass(HOME) = %v, want an error naming it", err)
	}
	if _, err := New(Config{Command: []string{"true"}, Pass: []string{"PATH"}}); err == nil {
		t.Error("New with Pass PATH: no error")
	}
}

func TestExitCode(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "worker")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		argv []string
		want int
	}{
		{"exit 0", []string{"sh", "-c", "exit 0"}, 0},
		{"exit 7", []string{"sh", "-c", "exit 7"}, 7},
		{"SIGKILL", []string{"sh", "-c", "kill -KILL $$"}, 128 + 9},
		{"SIGTERM", []string{"sh", "-c", "kill -TERM $$"}, 128 + 15},
		{"not found", []string{filepath.Join(dir, "nonexistent")}, 127},
		{"not in PATH", []string{"leaderd-no-such-command"}, 127},
		{"not executable", []string{notExec}, 126},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rg := newRigArgv(t, tc.argv, time.Second)
			rg.sup.Start(testTerm(time.Minute))
			if diff := cmp.Diff(Exit{Token: 42, Code: tc.want}, rg.exit(t)); diff != "" {
				t.Errorf("exit (-want +got):\n%s", diff)
			}
			done := make(chan struct{})
			go func() { rg.sup.Stop(); close(done) }()
			select {
			case <-done:
			case <-time.After(waitFor):
				t.Fatal("Stop after the exit did not return")
			}
		})
	}
}

// TestStop: the stop signal reaches the group; once the group leader has
// exited, whatever is left (a grandchild that ignores the signal, in the
// group, in a group of its own, or double-forked away from its parent) is
// killed without waiting for the kill timeout, and reaped before Stop
// returns. A stopped command is not an Exit.
func TestStop(t *testing.T) {
	tests := []struct {
		name   string
		sig    syscall.Signal
		script string
		said   string
	}{
		{"sigterm", 0, `trap 'echo got-term; exit 0' TERM`, "got-term"},
		{"forwarded sigint", syscall.SIGINT, `trap 'echo got-int; exit 0' INT`, "got-int"},
	}
	// Each prints its pid: one stays in the group, one moves to a group of
	// its own, one does too and is double-forked (its parent exits at once,
	// so the keeper inherits it while the command runs).
	const strays = `sh -c 'trap "" TERM INT; echo $$; exec sleep 1000' &
sh -c 'trap "" TERM INT; exec setsid sh -c "echo \$\$; exec sleep 1000"' &
sh -c '(trap "" TERM INT; exec setsid sh -c "echo \$\$; exec sleep 1000") &' &
`
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rg := newRig(t, tc.script+"\n"+strays+"echo ready; while :; do sleep 1000 & wait; done", time.Minute)
			if tc.sig != 0 {
				rg.sup.SetStopSignal(tc.sig)
			}
			rg.sup.Start(testTerm(time.Minute))
			var pids []int
			for ready := false; !ready || len(pids) < 3; {
				if l := rg.line(t); l == "ready" {
					ready = true
				} else {
					pids = append(pids, atoi(t, l))
				}
			}
			if !rg.sup.Running() {
				t.Error("Running() = false while the command runs")
			}
			groups := map[int]bool{}
			for _, p := range pids {
				groups[pgid(t, p)] = true
			}
			if len(groups) < 2 {
				t.Errorf("the grandchildren are all in one group %v: the test does not test other groups", groups)
			}
			start := time.Now()
			rg.sup.Stop()
			if d := time.Since(start); d > waitFor {
				t.Errorf("Stop took %v: it waited for the kill timeout although the command exited", d)
			}
			for _, p := range pids {
				if !absent(p) {
					t.Errorf("grandchild %d not dead and reaped when Stop returned", p)
				}
			}
			rg.expect(t, tc.said)
			if rg.sup.Running() {
				t.Error("Running() = true after Stop")
			}
			select {
			case ex := <-rg.sup.Exits():
				t.Errorf("a stopped command was reported as exiting by itself: %+v", ex)
			default:
			}
		})
	}
}

// TestStaleAnswerSameToken: fencing tokens can repeat (Consul lost its
// state), so the protocol names terms by the Supervisor's own sequence
// number. A late stop for a term that is already over (as Stop sends when
// it asks just after the keeper reported the end) is answered "gone" by the
// keeper; that answer must not end the next term with the same token, or
// its Stop would return, and the key be released, while its command runs.
func TestStaleAnswerSameToken(t *testing.T) {
	rg := newRig(t, `echo $$; echo ready; exec sleep 1000`, time.Minute)
	rg.sup.Start(testTerm(time.Hour))
	first := rg.pid(t)
	rg.expect(t, "ready")
	rg.sup.Stop()
	if !absent(first) {
		t.Fatalf("first term's command %d not gone after Stop", first)
	}
	// The first term's stop, late: the keeper answers that it is gone.
	rg.sup.mu.Lock()
	stale := rg.sup.k
	rg.sup.mu.Unlock()
	stale.send(staleStop(42))
	rg.sup.Start(testTerm(time.Hour)) // the same token, 42
	second := rg.pid(t)
	rg.expect(t, "ready")
	waitUntil(t, "Running()", rg.sup.Running)
	rg.sup.SetStopSignal(syscall.SIGKILL)
	rg.sup.Stop()
	if !dead(second) {
		t.Errorf("Stop returned while the second term's command %d runs: a stale answer ended it", second)
		syscall.Kill(second, syscall.SIGKILL)
	}
}
