package child

import (
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// leaderd's side of the subreaper. The keeper is the subreaper of its
// command's tree, but the keeper itself can die (kill -9, the OOM killer).
// Its command then gets SIGKILL (Pdeathsig), but a grandchild that left the
// command's group would go to init and run on after leaderd released the
// key. So the process that runs a Supervisor is a child subreaper too: what
// a dead keeper leaves is reparented to it, and keeperDied kills and reaps
// all of it before it reports the term's tree gone.
//
// What a dead keeper leaves is told from leaderd's other children (the
// next keeper, hooks) by session: the command runs in a session of its own
// (spawn), and a process can only stay in its session or create a new one,
// never join leaderd's. So every child of leaderd's process in a session
// other than leaderd's is a leftover of a command's tree, and is killed.
// That asks one thing of the program that uses a Supervisor: it must not
// run other children in sessions of their own, or a keeper's death kills
// them too (leaderd's hooks run in its session; what a hook leaves behind
// after a setsid is treated as a leftover).

var (
	adoptOnce sync.Once
	adoptErr  error
	// reapMu makes each scan-kill-reap round atomic against the others:
	// only its holder reaps an orphan, so the group an orphan names can't
	// be freed and reused between the scan and the kill.
	reapMu sync.Mutex
)

// adopt makes this process the child subreaper of its descendants, once
// per process, and from then on reaps the orphans that come to it.
func adopt() error {
	adoptOnce.Do(func() {
		if adoptErr = setSubreaper(); adoptErr != nil {
			return
		}
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGCHLD)
		go func() {
			for range ch {
				reapOrphans()
			}
		}()
	})
	return adoptErr
}

// ids of this process: pid, process group, session.
func ids() (pid, pgrp, sid int) {
	s, _, _ := syscall.RawSyscall(syscall.SYS_GETSID, 0, 0, 0)
	return os.Getpid(), syscall.Getpgrp(), int(s)
}

// reapOrphans reaps the exited children that are sure to be orphans
// reparented to us, not children some os/exec.Cmd will wait for: those in
// another session (a command's tree), and those in a process group that is
// neither their own nor ours (a hook's background job whose shell exited;
// os/exec children are in our group or, with Setpgid, their own).
func reapOrphans() {
	reapMu.Lock()
	defer reapMu.Unlock()
	self, pgrp, sid := ids()
	ps, _ := listProcesses(func(p procStat) bool {
		return p.ppid == self && !p.alive() && (p.sid != sid || p.pgrp != p.pid && p.pgrp != pgrp)
	})
	for _, p := range ps {
		_, _ = reap(p.pid)
	}
}

// killLeftovers kills and reaps every child of ours in another session —
// what dead keepers left of their commands' trees — and returns only once
// a full look at /proc finds none, alive or not: killing one reparents
// its children to us, so it goes round until nothing is left. If /proc
// can't be read it keeps trying: it must not report a tree gone that it
// could not see gone.
func killLeftovers(log *slog.Logger, token uint64) {
	tick := time.NewTicker(killPoll)
	defer tick.Stop()
	killed := map[int]bool{}
	var failed error
	for {
		ps, err := killRound()
		switch {
		case err != nil:
			if failed == nil {
				log.Error("can't list processes to kill what the dead keeper left; the term does not end until it can", "err", err, "token", token)
			}
			failed = err
		case len(ps) == 0:
			if len(killed) > 0 {
				log.Warn("killed what the dead keeper left of the child's tree", "processes", len(killed), "token", token)
			}
			return
		}
		for _, p := range ps {
			if !killed[p.pid] && p.alive() {
				killed[p.pid] = true
				log.Debug("killed a process the dead keeper left", "pid", p.pid, "pgid", p.pgrp, "sid", p.sid, "token", token)
			}
		}
		<-tick.C
	}
}

// killRound SIGKILLs each child of ours in another session, and its
// process group, and reaps those already dead. It returns what it found.
func killRound() ([]procStat, error) {
	reapMu.Lock()
	defer reapMu.Unlock()
	self, _, sid := ids()
	ps, err := listProcesses(func(p procStat) bool { return p.ppid == self && p.sid != sid })
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		// Unreaped, p keeps its group from being reused; the group is in
		// p's session, so of the command's tree too.
		_ = syscall.Kill(-p.pgrp, syscall.SIGKILL)
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
		if !p.alive() {
			_, _ = reap(p.pid)
		}
	}
	return ps, nil
}
