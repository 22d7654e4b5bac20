package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"

	"github.com/leaderd/leaderd/elect/child"
)

// keepersOf maps each leaderd pid given to the pid of its keeper: the
// second process `leaderd run` starts when it has a command (leaderd
// re-executed as `leaderd __keeper`, its child), which owns the command's
// process group and enforces the lease. It reads /proc once, so asking
// for many candidates at once costs one scan. A pid with no keeper found
// is left out.
func keepersOf(pids []int) map[int]int {
	want := make(map[int]bool, len(pids))
	for _, p := range pids {
		want[p] = true
	}
	out := map[int]int{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		pp := ppidOf(pid)
		if !want[pp] {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := bytes.Split(cmdline, []byte{0})
		if len(args) > 1 && string(args[1]) == child.KeeperCommand {
			out[pp] = pid
		}
	}
	return out
}

// ppidOf is pid's parent, from /proc/<pid>/stat (0 if unknown).
func ppidOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	pp, _ := strconv.Atoi(f[1])
	return pp
}

// procMem is what one candidate takes in memory and CPU: leaderd and its
// keeper added up (consul lock is one process; its keeper fields stay 0).
type procMem struct {
	mem, keeper     memInfo
	exeSize, exeRSS int // KiB, the binary's mappings, both processes
	cpu             int // clock ticks, both processes
	keeperPID       int
}

// candMem reads pid's memory and CPU time, and its keeper's when it has
// one (keeper: its pid, or 0).
func candMem(pid, keeper int) (procMem, error) {
	var m procMem
	var err error
	if m.mem, err = memOf(pid); err != nil {
		return m, err
	}
	if m.exeSize, m.exeRSS, err = exeResident(pid); err != nil {
		return m, err
	}
	if m.cpu, err = cpuTicks(pid); err != nil {
		return m, err
	}
	if keeper == 0 {
		return m, nil
	}
	m.keeperPID = keeper
	if m.keeper, err = memOf(keeper); err != nil {
		return m, err
	}
	size, rss, err := exeResident(keeper)
	if err != nil {
		return m, err
	}
	cpu, err := cpuTicks(keeper)
	if err != nil {
		return m, err
	}
	m.exeSize, m.exeRSS, m.cpu = m.exeSize+size, m.exeRSS+rss, m.cpu+cpu
	return m, nil
}

// rss and anon are the candidate's totals, keeper included.
func (m procMem) rss() int  { return m.mem.rss + m.keeper.rss }
func (m procMem) anon() int { return m.mem.anon + m.keeper.anon }
