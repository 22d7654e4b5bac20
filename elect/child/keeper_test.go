package child

import (
	"encoding/json"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// stubborn ignores SIGTERM (it says so) and starts a grandchild in a
// process group of its own that ignores it too. It prints "cmd <pid>",
// "grandchild <pid>" and "ready", the grandchild's line at any point.
const stubborn = `trap 'echo got-term' TERM
sh -c 'trap "" TERM; exec setsid sh -c "echo grandchild \$\$; exec sleep 1000"' &
echo cmd $$; echo ready
while :; do sleep 1000 & wait; done`

// startStubborn starts stubborn and returns the grandchild's pid and the
// command's.
func startStubborn(t *testing.T, rg *rig, lease time.Duration) (grandchild, cmd int) {
	t.Helper()
	rg.sup.Start(testTerm(lease))
	for ready := false; !ready || grandchild == 0 || cmd == 0; {
		switch f := strings.Fields(rg.line(t)); {
		case len(f) == 1 && f[0] == "ready":
			ready = true
		case len(f) == 2 && f[0] == "cmd":
			cmd = atoi(t, f[1])
		case len(f) == 2 && f[0] == "grandchild":
			grandchild = atoi(t, f[1])
		default:
			t.Fatalf("the command said %q", f)
		}
	}
	if pgid(t, grandchild) == cmd {
		t.Fatalf("the grandchild is in the command's group: the test tests nothing")
	}
	return grandchild, cmd
}

// TestLeaseExpiry: with no news of a later lease end, the keeper stops the
// command by itself at the lease end: SIGTERM to the group, SIGKILL to the
// whole tree after the kill timeout. The end is an Exit marked LeaseEnded,
// and Stop afterwards has nothing left to wait for.
func TestLeaseExpiry(t *testing.T) {
	// It waits out a lease or kill timeout in real time: it runs beside
	// the other such tests, after the sequential ones. Tests that kill a
	// keeper (whose leftovers this process, the subreaper, kills by
	// session) or reap orphans stay sequential.
	t.Parallel()
	const lease, kill = 300 * time.Millisecond, 300 * time.Millisecond
	rg := newRig(t, stubborn, kill)
	leaseEnd := time.Now().Add(lease)
	grandchild, _ := startStubborn(t, rg, lease)
	rg.expect(t, "got-term")
	termAt := time.Now()
	ex := rg.exit(t)
	exitAt := time.Now()
	if diff := cmp.Diff(Exit{Token: 42, Code: 128 + 9, LeaseEnded: true}, ex); diff != "" {
		t.Errorf("exit (-want +got):\n%s", diff)
	}
	t.Logf("SIGTERM %v after the lease end, SIGKILL %v after", termAt.Sub(leaseEnd), exitAt.Sub(leaseEnd))
	if termAt.Before(leaseEnd) {
		t.Errorf("SIGTERM %v before the lease end", leaseEnd.Sub(termAt))
	}
	if exitAt.Before(leaseEnd.Add(kill)) {
		t.Errorf("killed %v after the lease end, before the kill timeout %v", exitAt.Sub(leaseEnd), kill)
	}
	if d := exitAt.Sub(leaseEnd); d > kill+2*time.Second {
		t.Errorf("killed %v after the lease end, want about the kill timeout %v", d, kill)
	}
	rg.sup.Stop()
	if !absent(grandchild) {
		t.Errorf("grandchild %d in another group not dead and reaped after the lease stop", grandchild)
	}
}

// TestExtend: a later lease end moves the stop; one for another term does
// not.
func TestExtend(t *testing.T) {
	t.Parallel() // waits in real time; see TestLeaseExpiry
	rg := newRig(t, `trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 1000 & wait; done`, time.Second)
	rg.sup.Start(testTerm(300 * time.Millisecond))
	rg.expect(t, "ready")
	rg.sup.Extend(42, time.Now().Add(400*time.Millisecond))
	extended := time.Now().Add(time.Second)
	rg.sup.Extend(42, extended)
	rg.sup.Extend(41, time.Now().Add(time.Hour))
	rg.expect(t, "got-term")
	if now := time.Now(); now.Before(extended) {
		t.Errorf("stopped %v before the extended lease end", extended.Sub(now))
	}
	if diff := cmp.Diff(Exit{Token: 42, Code: 0, LeaseEnded: true}, rg.exit(t)); diff != "" {
		t.Errorf("exit (-want +got):\n%s", diff)
	}
}

// TestLeaseEndedBeforeStart: a term whose lease is over when the keeper
// gets it does not start its command.
func TestLeaseEndedBeforeStart(t *testing.T) {
	rg := newRig(t, `echo ran`, time.Second)
	rg.sup.Start(testTerm(-time.Millisecond))
	if diff := cmp.Diff(Exit{Token: 42, LeaseEnded: true}, rg.exit(t)); diff != "" {
		t.Errorf("exit (-want +got):\n%s", diff)
	}
	rg.sup.Stop()
	if rg.sup.Running() {
		t.Error("Running() = true")
	}
}

// TestLeaderdGone: when leaderd's end of the pipe closes (it died, even by
// SIGKILL), the keeper kills the whole tree at once, without the stop
// signal and the kill timeout, and exits.
func TestLeaderdGone(t *testing.T) {
	rg := newRig(t, stubborn, time.Minute)
	grandchild, cmd := startStubborn(t, rg, time.Hour)
	keeper := rg.keeperPID()
	start := time.Now()
	k := rg.sup.k
	k.close()
	<-k.dead
	t.Logf("keeper gone %v after the EOF", time.Since(start))
	for _, pid := range []int{cmd, grandchild} {
		if !absent(pid) {
			t.Errorf("process %d not dead and reaped when the keeper exited", pid)
		}
	}
	if !absent(keeper) {
		t.Errorf("keeper %d still there", keeper)
	}
	select {
	case l := <-rg.lines:
		if l == "got-term" {
			t.Error("the command got SIGTERM: the keeper did not kill it at once")
		}
	default:
	}
}

// TestKeeperKilled: if the keeper dies, the kernel kills the command with
// it (Pdeathsig); leaderd reports an exit, Stop returns once the group is
// dead, and the next term gets a new keeper.
func TestKeeperKilled(t *testing.T) {
	rg := newRig(t, `trap '' TERM; echo $$; sleep 1000 & echo $!; echo ready; wait`, time.Minute)
	rg.sup.Start(testTerm(time.Hour))
	cmd, inGroup := rg.pid(t), rg.pid(t)
	rg.expect(t, "ready")
	// Until leaderd has read the start, it can't know the group to kill.
	waitUntil(t, "Running()", rg.sup.Running)
	old := rg.keeperPID()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Exit{Token: 42, Code: 128 + 9}, rg.exit(t)); diff != "" {
		t.Errorf("exit (-want +got):\n%s", diff)
	}
	rg.sup.Stop()
	for _, pid := range []int{cmd, inGroup} {
		if !dead(pid) {
			t.Errorf("process %d of the group alive after Stop", pid)
		}
	}
	rg.sup.Start(testTerm(time.Hour))
	rg.pid(t)
	rg.pid(t)
	rg.expect(t, "ready")
	if k := rg.keeperPID(); k == old {
		t.Errorf("the next term ran under the dead keeper %d", k)
	}
}

// TestKeeperOwnGroup: a signal to leaderd's process group (^C, ^Z, a
// SIGSTOP of the group) does not reach the keeper.
func TestKeeperOwnGroup(t *testing.T) {
	rg := newRig(t, `exit 0`, time.Second)
	k := rg.keeperPID()
	if g := pgid(t, k); g != k || g == syscall.Getpgrp() {
		t.Errorf("keeper %d is in group %d (ours %d), want its own", k, g, syscall.Getpgrp())
	}
}

// TestStopKillTimeout: a command that ignores the stop signal is SIGKILLed
// after the kill timeout, and Stop returns only once it is gone.
func TestStopKillTimeout(t *testing.T) {
	t.Parallel() // waits in real time; see TestLeaseExpiry
	const kill = 300 * time.Millisecond
	rg := newRig(t, `trap '' TERM; echo $$; exec sleep 1000`, kill)
	rg.sup.Start(testTerm(time.Hour))
	pid := rg.pid(t)
	start := time.Now()
	rg.sup.Stop()
	if d := time.Since(start); d < kill {
		t.Errorf("Stop returned after %v, before the kill timeout %v", d, kill)
	}
	if !absent(pid) {
		t.Errorf("command %d not dead and reaped after Stop", pid)
	}
}

// TestSignal: SIGHUP is forwarded to the group.
func TestSignal(t *testing.T) {
	rg := newRig(t, `trap 'echo got-hup' HUP; echo ready; while :; do sleep 1000 & wait; done`, time.Second)
	rg.sup.Start(testTerm(time.Hour))
	rg.expect(t, "ready")
	// The shell runs its trap only between commands; a HUP that lands
	// while it forks the next sleep can be folded into the one before, so
	// send it again until the trap has run.
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitFor)
	rg.sup.Signal(syscall.SIGHUP)
	for {
		select {
		case l := <-rg.lines:
			if l == "got-hup" {
				return
			}
		case <-tick.C:
			rg.sup.Signal(syscall.SIGHUP)
		case <-deadline:
			t.Fatalf(`the command did not say "got-hup" within %v of SIGHUPs`, waitFor)
		}
	}
}

// TestLinkLatestLease: the writer to the keeper never blocks its callers:
// while the keeper reads nothing, commands queue in order and lease ends
// replace each other; the keeper then reads the commands, then the latest
// lease end only.
func TestLinkLatestLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, w := io.Pipe()
		k := &link{w: w, wake: make(chan struct{}, 1), dead: make(chan struct{})}
		go k.write()
		k.send(msg{Op: opStart, Token: 1})
		synctest.Wait() // the writer is blocked writing start: nobody reads
		for i := range 1000 {
			k.setLease(msg{Op: opLease, Token: 1, LeaseEnd: int64(i)})
		}
		k.send(msg{Op: opSignal, Token: 1, Signal: 1})
		k.send(msg{Op: opStop, Token: 1, Signal: 15})
		k.close()
		var got []string
		dec := json.NewDecoder(r)
		for {
			var m msg
			if err := dec.Decode(&m); err != nil {
				break
			}
			got = append(got, m.Op+" "+strconv.FormatInt(m.LeaseEnd, 10))
		}
		want := []string{"start 0", "signal 0", "stop 0", "lease 999"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("the keeper read (-want +got):\n%s", diff)
		}
	})
}

// TestKeeperKilledEscapedGrandchild: the keeper dies (OOM kill, an
// operator's kill -9 of the wrong pid) while the command has a grandchild
// in a session of its own. The grandchild does not go to init: we are the
// child subreaper, so it comes to us, and Stop (after which elect releases
// the key) returns only once it is dead and reaped. A child of ours that
// is not the command's (a hook, in our session) is left alone, and os/exec
// can still wait for it.
func TestKeeperKilledEscapedGrandchild(t *testing.T) {
	other := exec.Command("sleep", "1000")
	other.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // as hooks run
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer other.Process.Kill()
	rg := newRig(t, `echo $$; setsid sleep 1000 & echo $!; echo ready; wait`, time.Minute)
	rg.sup.Start(testTerm(time.Hour))
	cmd, escaped := rg.pid(t), rg.pid(t)
	rg.expect(t, "ready")
	waitUntil(t, "the grandchild in a session of its own", func() bool {
		st, ok := readStat(escaped)
		return ok && st.sid == escaped
	})
	waitUntil(t, "Running()", rg.sup.Running)
	if err := syscall.Kill(rg.keeperPID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Exit{Token: 42, Code: 128 + 9}, rg.exit(t)); diff != "" {
		t.Errorf("exit (-want +got):\n%s", diff)
	}
	rg.sup.Stop() // returns: OnStepDown is done, elect releases the key now
	for _, pid := range []int{cmd, escaped} {
		if !absent(pid) {
			st, _ := readStat(pid)
			t.Errorf("Stop returned but %d (ppid %d, pgrp %d, state %c) is not dead and reaped", pid, st.ppid, st.pgrp, st.state)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if dead(other.Process.Pid) {
		t.Errorf("a child of ours in our session (a hook) was killed with the keeper's leftovers")
	}
	other.Process.Kill()
	if err := other.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("os/exec's wait for a child of ours: %v, want signal: killed", err)
	}
}

// TestOrphansReaped: as the child subreaper, we inherit what hooks leave
// running (a background job of a shell that exited); once it exits it is
// reaped, not left a zombie.
func TestOrphansReaped(t *testing.T) {
	newRig(t, `exit 0`, time.Second) // a Supervisor makes us the subreaper
	sh := exec.Command("sh", "-c", `sleep 0.2 & echo $!`)
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := sh.Output()
	if err != nil {
		t.Fatal(err)
	}
	orphan := atoi(t, strings.TrimSpace(string(out)))
	if st, ok := readStat(orphan); ok && st.ppid != syscall.Getpid() {
		t.Fatalf("orphan %d went to %d, not to us", orphan, st.ppid)
	}
	waitUntil(t, "the orphan reaped", func() bool { return absent(orphan) })
}
