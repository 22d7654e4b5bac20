package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// machine describes this host from /proc.
func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				kib, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				m.MemGiB = float64(kib) / (1 << 20)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// loadavg is the 1, 5 and 15 minute load averages.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// commit names the leaderd source measured; "+dirty" when the working
// tree differs from it (other engineers edit this checkout too).
func commit(ctx context.Context, root string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	// Only the files that make the leaderd binary matter.
	st, err := exec.CommandContext(ctx, "git", "-C", root, "status", "--porcelain", "--",
		"*.go", "go.mod", "go.sum", ":!integration", ":!jobspec", ":!*_test.go").Output()
	if err == nil && len(strings.TrimSpace(string(st))) > 0 {
		return c + "+dirty"
	}
	return c
}

// build compiles leaderd (as shipped, and stripped to compare sizes) and the
// child into the scratch directory.
func (b *bench) build(ctx context.Context, root string, fp *Footprint) error {
	b.leaderd = filepath.Join(b.work, "leaderd")
	b.child = filepath.Join(b.work, "child")
	stripped := filepath.Join(b.work, "leaderd-stripped")
	for _, c := range [][]string{
		{"build", "-o", b.leaderd, "."},
		{"build", "-ldflags=-s -w", "-o", stripped, "."},
		{"build", "-o", b.child, "./integration/bench/child"},
	} {
		cmd := exec.CommandContext(ctx, "go", c...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %w\n%s", strings.Join(c, " "), err, out)
		}
	}
	for _, s := range []struct {
		path string
		size *int64
	}{{b.leaderd, &fp.LeaderdBytes}, {stripped, &fp.LeaderdStrippedBytes}, {b.consul, &fp.ConsulBytes}} {
		fi, err := os.Stat(s.path)
		if err != nil {
			return err
		}
		*s.size = fi.Size()
	}
	return nil
}
