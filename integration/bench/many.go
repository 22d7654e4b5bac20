package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/elect"
)

// many runs n elections on one shared session in a process of their own
// (this program, re-executed with -internal-many), settles, and counts
// for window the requests it makes; then asks it for its memory.
func (b *bench) many(ctx context.Context, n int, window time.Duration) (*ManyResult, error) {
	pt, err := b.proxy.listen()
	if err != nil {
		return nil, err
	}
	defer pt.close()
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-internal-many", strconv.Itoa(n), "-internal-addr", pt.Addr)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	done, err := startLocked(cmd)
	if err != nil {
		return nil, err
	}
	defer func() { // it releases its keys and destroys its session
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(d time.Duration) (string, error) {
		select {
		case l, ok := <-lines:
			if !ok {
				return "", fmt.Errorf("many-elections process ended early: %v", cmd.ProcessState)
			}
			return l, nil
		case <-time.After(d):
			return "", fmt.Errorf("many-elections process silent for %s", d)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	ready, err := next(5 * time.Minute)
	if err != nil {
		return nil, err
	}
	setup, err := strconv.ParseFloat(strings.TrimPrefix(ready, "ready "), 64)
	if err != nil {
		return nil, fmt.Errorf("many-elections process said %q", ready)
	}
	_, k0 := pt.snapshot()
	start := time.Now()
	if err := sleepCtx(ctx, window); err != nil {
		return nil, err
	}
	_, k1 := pt.snapshot()
	elapsed := time.Since(start)
	cmd.Process.Signal(syscall.SIGUSR1)
	line, err := next(time.Minute)
	if err != nil {
		return nil, err
	}
	var res ManyResult
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		return nil, fmt.Errorf("many-elections process said %q: %w", line, err)
	}
	res.Elections, res.SetupSec, res.Window = n, setup, elapsed.Seconds()
	res.ByKind = map[string]int{}
	for kind, v := range k1 {
		if d := v - k0[kind]; d > 0 {
			res.ByKind[kind] = d
		}
	}
	res.Renews = res.ByKind[kindRenew]
	return &res, nil
}

// runMany is the -internal-many process: n elections, one session, each
// election alone on its key so each leads. It prints "ready <seconds>"
// once all lead, and its memory as JSON on SIGUSR1.
func runMany(n int, addr string) error {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	c, err := consulhttp.NewClient(consulhttp.Config{Address: addr})
	if err != nil {
		return err
	}
	start := time.Now()
	sess, err := elect.NewSession(c, elect.SessionConfig{Name: "leaderd bench: many elections"})
	if err != nil {
		return err
	}
	sctx, stopSession := context.WithCancel(context.Background())
	defer stopSession()
	sessDone := make(chan error, 1)
	go func() { sessDone <- sess.Run(sctx) }()
	elected := make(chan struct{}, n)
	ectx, stopElections := context.WithCancel(ctx)
	defer stopElections()
	var wg sync.WaitGroup
	for i := range n {
		e, err := elect.New(c, elect.Config{
			Key:       fmt.Sprintf("bench/many/%04d", i),
			Candidate: elect.Candidate{ID: "many-" + strconv.Itoa(i)},
			Session:   sess,
			OnElected: func(elect.Term) { elected <- struct{}{} },
		})
		if err != nil {
			return err
		}
		wg.Go(func() { e.Run(ectx) })
	}
	for range n {
		select {
		case <-elected:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	fmt.Printf("ready %.3f\n", time.Since(start).Seconds())
	select {
	case <-usr1:
	case <-ctx.Done():
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mem, _ := memOf(os.Getpid())
	out, _ := json.Marshal(ManyResult{
		// elect's default renew interval, for a leader:
		// min(TTL/3, (LockDelay − Margin)/3).
		RenewInterval: (min(elect.DefaultTTL, elect.DefaultLockDelay-elect.DefaultMargin) / 3).Seconds(),
		HeapInuseMiB:  float64(ms.HeapInuse) / (1 << 20),
		SysMiB:        float64(ms.Sys) / (1 << 20),
		RSSMiB:        float64(mem.rss) / 1024,
		Goroutines:    runtime.NumGoroutine(),
	})
	fmt.Println(string(out))
	stopElections()
	wg.Wait()
	stopSession()
	return <-sessDone
}
