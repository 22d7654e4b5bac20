package jobspec

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestIdleScript runs the native role task's idle loop in each POSIX shell
// found here, as a plain process and as PID 1 of its own PID namespace (a
// container's init, which ignores a SIGTERM it has no handler for; `sleep
// infinity` there waits out kill_timeout). Every run must idle until
// SIGTERM, then exit 0 at once, leaving no sleep behind.
func TestIdleScript(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("finds the shell's children through /proc")
	}
	var shells [][]string
	for _, sh := range [][]string{{"sh"}, {"dash"}, {"bash", "--posix"}, {"busybox", "sh"}} {
		if _, err := exec.LookPath(sh[0]); err == nil {
			shells = append(shells, sh)
		}
	}
	for _, sh := range shells {
		for _, pid1 := range []bool{false, true} {
			name := strings.Join(sh, " ")
			argv := append(append([]string{}, sh...), "-c", idleScript)
			if pid1 {
				name += " as pid 1"
				argv = append([]string{"unshare", "--user", "--map-root-user", "--pid", "--fork"}, argv...)
			}
			t.Run(name, func(t *testing.T) {
				if pid1 {
					if err := exec.Command("unshare", "--user", "--map-root-user", "--pid", "--fork", "true").Run(); err != nil {
						t.Skipf("no unprivileged PID namespace here: %v", err)
					}
				}
				cmd := exec.Command(argv[0], argv[1:]...)
				cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- cmd.Wait() }()
				// A failed run leaves nothing behind: the shell, its
				// sleep and unshare share one process group.
				t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })

				shell := cmd.Process.Pid
				if pid1 {
					shell = waitChild(t, shell, done) // unshare forks the shell
				}
				sleeper := waitChild(t, shell, done) // trap set, loop running
				// Between fork and its reset of the shell's traps, a forked
				// sleep still catches SIGTERM with the shell's handler and
				// loses it (busybox ash: seen on a loaded CI machine). In
				// a real stop that window is microseconds once an hour, and
				// kill_timeout covers it; the test waits it out.
				waitDefaultTERM(t, sleeper)
				if err := syscall.Kill(shell, syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("exit after SIGTERM: %v, want 0", err)
					}
				case <-time.After(3 * time.Second):
					t.Fatal("still running 3s after SIGTERM")
				}
				// The shell exits right after its kill; the sleep dies a
				// moment later (seen: not yet gone on a loaded machine).
				deadline := time.Now().Add(2 * time.Second)
				for !gone(sleeper) && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				if !gone(sleeper) {
					t.Errorf("sleep %d outlived the shell by 2s", sleeper)
				}
			})
		}
	}
}

// waitChild returns the first child of pid, or fails if pid exits first.
func waitChild(t *testing.T, pid int, done <-chan error) int {
	t.Helper()
	path := "/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children"
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("exited before idling: %v", err)
		default:
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("children of %d: %v", pid, err)
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			child, _ := strconv.Atoi(f[0])
			return child
		}
	}
	t.Fatalf("process %d started no child in 5s", pid)
	return 0
}

// waitDefaultTERM waits until pid no longer catches SIGTERM (bit 15 of
// SigCgt in /proc/pid/status), i.e. a forked child has reset the traps it
// inherited.
func waitDefaultTERM(t *testing.T, pid int) {
	t.Helper()
	const term = uint64(1) << (syscall.SIGTERM - 1)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			t.Fatalf("status of %d: %v", pid, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "SigCgt:"); ok {
				mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
				if err != nil {
					t.Fatalf("SigCgt of %d: %v", pid, err)
				}
				if mask&term == 0 {
					return
				}
			}
		}
	}
	t.Fatalf("process %d still catches SIGTERM after 5s", pid)
}

// gone reports whether pid is dead (a zombie waiting for init counts) or
// becomes so within a second.
func gone(pid int) bool {
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if errors.Is(err, os.ErrNotExist) {
			return true
		}
		// "pid (comm) S …": the state follows the last ')'.
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 && strings.HasPrefix(string(b[i+1:]), " Z") {
			return true
		}
	}
	return false
}
