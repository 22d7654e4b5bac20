package child

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"
)

// setSubreaper makes the calling process the child subreaper of its
// descendants: an orphan is reparented to it, not to init, so it can find
// and kill grandchildren that left the command's process group.
func setSubreaper() error {
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return errno
	}
	return nil
}

// spawn starts argv in a session (and so a process group) of its own with
// Pdeathsig SIGKILL. Its own session marks its whole tree for good: no
// process can join a session it was not born in, so everything the command
// starts is in its session or in one some process of its tree created,
// never in leaderd's, which is how leaderd tells a dead keeper's leftovers
// from its other children (see reapOrphans). The fork happens through
// StartLocked, whose thread stays until release is closed (once the
// process is reaped).
func spawn(argv, env []string, release <-chan struct{}) (pid int, code int, err error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return 0, 127, err
		}
		return 0, 126, err
	}
	err = StartLocked(func() error {
		var err error
		pid, err = syscall.ForkExec(path, argv, &syscall.ProcAttr{
			Env:   env,
			Files: []uintptr{0, 1, 2},
			Sys:   &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL},
		})
		return err
	}, release)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return 0, 127, err
		}
		return 0, 126, err
	}
	return pid, 0, nil
}

// StartLocked runs start, which forks a process (an exec.Cmd's Start, a
// syscall.ForkExec), on a goroutine locked to its OS thread, and keeps that
// thread until release is closed. Pdeathsig fires when the creating
// *thread* exits, not the process (go.dev/issue/27505): started on any
// other goroutine, a process with Pdeathsig could be killed whenever the
// Go runtime retires that thread. Close release once the process has been
// reaped. If start fails the thread is let go at once and its error
// returned.
func StartLocked(start func() error, release <-chan struct{}) error {
	started := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := start()
		started <- err
		if err == nil {
			<-release
		}
	}()
	return <-started
}

// exitedChild returns the pid of a child of ours that has exited, without
// reaping it (waitid WNOWAIT), so its pid, and so its process group id,
// can't be reused while the group is killed. 0: none has exited yet;
// syscall.ECHILD: we have no children at all.
func exitedChild() (int, error) {
	var info [128]byte // siginfo_t
	// si_pid follows si_signo, si_errno and si_code, aligned for a pointer.
	off := 16
	if unsafe.Sizeof(uintptr(0)) == 4 {
		off = 12
	}
	const pAll = 0
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pAll, 0, uintptr(unsafe.Pointer(&info[0])),
			syscall.WEXITED|syscall.WNOHANG|syscall.WNOWAIT, 0, 0)
		switch errno {
		case 0:
			return int(*(*int32)(unsafe.Pointer(&info[off]))), nil
		case syscall.EINTR:
			continue
		}
		return 0, errno
	}
}

// reap reaps pid, which has exited.
func reap(pid int) (syscall.WaitStatus, error) {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if err != syscall.EINTR {
			return ws, err
		}
	}
}

// procStat is what we read of /proc/<pid>/stat.
type procStat struct {
	pid, ppid, pgrp, sid int
	state                byte // R, S, D, Z, T, …
}

// processes lists every process in /proc whose stat matches keep.
func processes(keep func(procStat) bool) []procStat {
	ps, _ := listProcesses(keep)
	return ps
}

// listProcesses lists every process in /proc whose stat matches keep, or
// fails if /proc can't be listed: then nothing can be said of what runs.
func listProcesses(keep func(procStat) bool) ([]procStat, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	var out []procStat
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok && keep(st) {
			out = append(out, st)
		}
	}
	return out, nil
}

// readStat parses /proc/<pid>/stat: "pid (comm) state ppid pgrp session …", where
// comm may hold spaces and parentheses.
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 4 || len(f[0]) != 1 {
		return procStat{}, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	pgrp, err2 := strconv.Atoi(string(f[2]))
	sid, err3 := strconv.Atoi(string(f[3]))
	if err1 != nil || err2 != nil || err3 != nil {
		return procStat{}, false
	}
	return procStat{pid: pid, ppid: ppid, pgrp: pgrp, sid: sid, state: f[0][0]}, true
}

// alive reports whether a process is alive: not a zombie nor dead.
func (p procStat) alive() bool { return p.state != 'Z' && p.state != 'X' && p.state != 'x' }
