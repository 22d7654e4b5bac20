package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/leaderd/leaderd/integration/devconsul"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// plan is how much of everything to measure.
type plan struct {
	handovers  int // per tool and mode
	crashRuns  map[string]int
	idleWindow time.Duration
	scaleN     []int
	scaleHand  int
	// Crash failover at scale: candidate counts and runs per tool (each
	// consul lock run waits out 2×TTL + lock-delay, 40 s or so).
	scaleCrashN    []int
	scaleCrashRuns map[string]int
	many           int
	manyWindow     time.Duration
}

var fullPlan = plan{
	handovers: 60,
	// Odd counts: the nearest-rank median is then the middle run.
	crashRuns: map[string]int{leaderdFast.Name: 11, leaderdDefaults.Name: 9, consulLockDefaults.Name: 5,
		leaderdMatched.Name: 3},
	idleWindow:     time.Minute,
	scaleN:         []int{10, 100, 500},
	scaleHand:      15,
	scaleCrashN:    []int{3, 100, 500},
	scaleCrashRuns: map[string]int{toolLeaderd: 2, toolConsulLock: 1},
	many:           1000,
	manyWindow:     30 * time.Second,
}

var quickPlan = plan{
	handovers: 8,
	crashRuns: map[string]int{leaderdFast.Name: 2, leaderdDefaults.Name: 1, consulLockDefaults.Name: 1,
		leaderdMatched.Name: 1},
	idleWindow:     15 * time.Second,
	scaleN:         []int{10, 50},
	scaleHand:      3,
	scaleCrashN:    []int{3, 50},
	scaleCrashRuns: map[string]int{toolLeaderd: 1, toolConsulLock: 1},
	many:           200,
	manyWindow:     10 * time.Second,
}

var experiments = []string{"handover", "crash", "idle", "scale", "many"}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: go run ./integration/bench [flags]

Measures leaderd against consul lock on one Consul v1.16.3 dev agent:
graceful handover, crash failover, idle requests, footprint and scale.
Writes RESULTS.md, results.json and the SVG charts into -out. The full run
takes about 8-10 minutes on 2 cores, plus 5-8 minutes the first time to build
Consul; -quick takes about 2.

Flags:
`)
		fs.PrintDefaults()
	}
	out := fs.String("out", "", "directory for RESULTS.md, results.json and the SVGs (default integration/bench in this module)")
	quick := fs.Bool("quick", false, "a few repetitions of everything, for development")
	render := fs.Bool("render", false, "measure nothing: rewrite RESULTS.md and the SVGs from -out's results.json")
	only := fs.String("only", "", "comma list of experiments to run (default all): "+strings.Join(experiments, ","))
	note := fs.String("note", "", "a line for RESULTS.md on what was measured, e.g. a local change to the leaderd built (kept in results.json)")
	verbose := fs.Bool("v", false, "log progress in detail")
	keep := fs.Bool("keep", false, "keep the scratch directory (every process's log) after a successful run; a failed run always keeps it")
	scaleN := fs.String("scale", "", "comma list of candidate counts for the scale experiment's handovers (default 10,100,500; -quick 10,50)")
	scaleCrash := fs.String("scale-crash", "", "comma list of candidate counts for the scale experiment's crash failovers (default 3,100,500; -quick 3,50; \"none\": none)")
	handovers := fs.Int("handovers", 0, "graceful handovers per tool and mode (default 60; -quick 8)")
	trace := fs.Bool("trace", false, "log every request to Consul (start, end, candidate, kind) to trace.log in the scratch directory (implies -keep)")
	debugLeaderd := fs.Bool("debug-leaderd", false, "run leaderd candidates with -log-level debug (their logs are in the scratch directory: use -keep)")
	manyN := fs.Int("internal-many", 0, "internal: run this many elections on one session (the many-elections process)")
	manyAddr := fs.String("internal-addr", "", "internal: Consul address for -internal-many")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *manyN > 0 {
		return runMany(*manyN, *manyAddr)
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join(root, "integration", "bench")
	}
	if *render {
		r, err := loadResults(filepath.Join(*out, "results.json"))
		if err != nil {
			return err
		}
		if *note != "" {
			r.Note = *note
			if err := r.save(filepath.Join(*out, "results.json")); err != nil {
				return err
			}
		}
		return write(r, *out)
	}
	want := experiments
	if *only != "" {
		want = strings.Split(*only, ",")
		for _, w := range want {
			if !slices.Contains(experiments, w) {
				return fmt.Errorf("-only: unknown experiment %q (have %s)", w, strings.Join(experiments, ","))
			}
		}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	p := fullPlan
	if *quick {
		p = quickPlan
	}
	if *handovers > 0 {
		p.handovers = *handovers
	}
	if *scaleN != "" {
		if p.scaleN, err = counts("-scale", *scaleN); err != nil {
			return err
		}
	}
	if *scaleCrash == "none" {
		p.scaleCrashN = nil
	} else if *scaleCrash != "" {
		if p.scaleCrashN, err = counts("-scale-crash", *scaleCrash); err != nil {
			return err
		}
	}
	if *debugLeaderd {
		candidateLogLevel = "debug"
	}
	r, err := measure(ctx, root, p, want, *quick, *trace, *keep || *trace, log)
	if err != nil {
		return err
	}
	r.Note = *note
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if err := r.save(filepath.Join(*out, "results.json")); err != nil {
		return err
	}
	return write(r, *out)
}

// counts parses a comma list of candidate counts (2 or more each).
func counts(flag, list string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 2 {
			return nil, fmt.Errorf("%s: %q is not a candidate count (2 or more)", flag, f)
		}
		out = append(out, n)
	}
	return out, nil
}

// moduleRoot is the directory of this module's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	b, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(b))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run this inside the leaderd module (go run ./integration/bench)")
	}
	return filepath.Dir(gomod), nil
}

// measure runs the experiments in want.
func measure(ctx context.Context, root string, p plan, want []string, quick, trace, keep bool, log *slog.Logger) (_ *Results, err error) {
	r := &Results{Quick: quick, Started: time.Now().UTC(), Machine: machine(), GoVersion: runtime.Version(),
		LoadBefore: loadavg(), LeaderdCommit: commit(ctx, root)}
	work, err := os.MkdirTemp("", "leaderd-bench-")
	if err != nil {
		return nil, err
	}
	log.Info("scratch directory (logs of every process)", "dir", work)
	defer func() {
		if err == nil && !keep {
			os.RemoveAll(work)
		}
	}()
	logf := func(format string, a ...any) { log.Info(fmt.Sprintf(format, a...)) }
	b := &bench{work: work, log: log, hub: newHub(), childLog: filepath.Join(work, "children.log")}
	if b.consul, err = devconsul.Find(ctx, os.Getenv, logf); err != nil {
		return nil, err
	}
	// Find trusts CONSUL_BIN; the results must name the version measured.
	if v, err := devconsul.VersionOf(ctx, b.consul); err != nil {
		return nil, err
	} else if r.ConsulVersion = v; v != devconsul.Version {
		return nil, fmt.Errorf("%s is consul v%s, the benchmark needs v%s", b.consul, v, devconsul.Version)
	}
	if err := b.build(ctx, root, &r.Footprint); err != nil {
		return nil, err
	}
	if b.agent, err = startAgent(ctx, b.consul, work, logf); err != nil {
		return nil, err
	}
	defer b.agent.Close()
	b.proxy = newProxy(b.agent.Addr)
	if trace {
		f, err := os.Create(filepath.Join(work, "trace.log"))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		b.proxy.trace = &traceLog{w: f}
	}
	tctx, stopTail := context.WithCancel(context.Background())
	defer stopTail()
	if err := os.WriteFile(b.childLog, nil, 0o644); err != nil {
		return nil, err
	}
	go b.hub.tail(tctx, b.childLog)
	defer b.stopAll()

	on := func(name string) bool { return slices.Contains(want, name) }
	if on("handover") {
		for _, mode := range []string{modeChildExit, modeSIGTERM} {
			log.Info("graceful handovers, leaderd and consul lock in turn", "mode", mode, "n", p.handovers)
			hs, err := b.handovers(ctx, []flavor{leaderdDefaults, consulLockDefaults}, mode, p.handovers)
			if err != nil {
				return nil, err
			}
			for _, h := range hs {
				log.Info("graceful handovers done", "tool", h.Tool, "mode", mode, "p50_ms", median(h.Latencies))
			}
			r.Handover = append(r.Handover, hs...)
		}
	}
	if err := b.crashAndIdle(ctx, p, on("crash"), on("idle"), r); err != nil {
		return nil, err
	}
	if on("scale") {
		if err := b.scaleAll(ctx, p, r); err != nil {
			return nil, err
		}
	}
	if on("many") {
		log.Info("many elections on one session", "n", p.many, "window", p.manyWindow)
		if r.Many, err = b.many(ctx, p.many, p.manyWindow); err != nil {
			return nil, err
		}
	}
	r.LoadAfter = loadavg()
	r.Finished = time.Now().UTC()
	return r, nil
}

// crashAndIdle runs the crash series, one per flavor, side by side (they
// spend their time waiting out TTLs and lock-delays, on separate keys), and
// the idle measurement along with them: idle candidates are counted per
// process, which other keys' traffic doesn't change.
func (b *bench) crashAndIdle(ctx context.Context, p plan, crash, idle bool, r *Results) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	flavors := []flavor{leaderdFast, leaderdDefaults, consulLockDefaults, leaderdMatched}
	crashRes := make([]CrashSeries, len(flavors))
	var crashWG sync.WaitGroup
	if crash {
		for i, f := range flavors {
			crashWG.Go(func() {
				b.log.Info("crash failovers", "series", f.Name, "runs", p.crashRuns[f.Name])
				cs, err := b.crashes(ctx, f, p.crashRuns[f.Name])
				if err != nil {
					fail(err)
				}
				crashRes[i] = cs
			})
		}
	}
	crashDone := make(chan struct{})
	if idle {
		wg.Go(func() {
			b.log.Info("idle cost", "window", p.idleWindow)
			ic, child, err := b.idle(ctx, []flavor{leaderdDefaults, leaderdFast, consulLockDefaults, leaderdMatched}, p.idleWindow, crashDone)
			if err != nil {
				fail(err)
				return
			}
			r.Idle = ic
			r.Footprint.ChildRSSKiB, r.Footprint.ChildAnonKiB = child.rss, child.anon
		})
	}
	crashWG.Wait()
	close(crashDone)
	wg.Wait()
	if crash {
		r.Crash = crashRes
	}
	return errors.Join(errs...)
}

// scaleAll measures handovers with more and more candidates, leaderd then
// consul lock at each size, skipping sizes the machine's free memory can't
// hold (estimated from an idle candidate's private memory).
func (b *bench) scaleAll(ctx context.Context, p plan, r *Results) error {
	// KiB, if idle wasn't measured: the private memory the last full run
	// measured (leaderd with its keeper 6.0 MiB, consul lock 15.3 MiB) and
	// the same slack.
	perProc := map[string]int{toolLeaderd: 8 << 10, toolConsulLock: 18 << 10}
	for _, ic := range r.Idle {
		perProc[ic.Tool] = ic.AnonKiB + 2<<10 // slack for page tables and start-up
	}
	ns := slices.Sorted(slices.Values(slices.Concat(p.scaleN, p.scaleCrashN)))
	for _, n := range slices.Compact(ns) {
		for _, f := range []flavor{leaderdDefaults, consulLockDefaults} {
			hand, crashes := 0, 0
			if slices.Contains(p.scaleN, n) {
				hand = p.scaleHand
			}
			if slices.Contains(p.scaleCrashN, n) {
				crashes = p.scaleCrashRuns[f.Tool]
			}
			need, avail := n*perProc[f.Tool], memAvailableKiB()
			if need > avail/2 {
				why := fmt.Sprintf("needs ~%d MiB, more than half of the %d MiB available", need>>10, avail>>10)
				if hand > 0 {
					r.Scale = append(r.Scale, ScalePoint{Tool: f.Tool, N: n, How: "processes", Skipped: why})
				}
				b.log.Warn("scale point skipped", "tool", f.Tool, "candidates", n, "why", why)
				continue
			}
			b.log.Info("scale", "tool", f.Tool, "candidates", n, "handovers", hand, "crashes", crashes)
			pt, cs, err := b.scale(ctx, f, n, hand, crashes)
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				// Keep the rest of the run: the point says why it is missing.
				b.log.Error("scale point failed", "tool", f.Tool, "candidates", n, "err", err)
				pt = ScalePoint{Tool: f.Tool, N: n, How: "processes", Skipped: "failed: " + err.Error()}
				hand, cs = 1, nil
			}
			if hand > 0 {
				b.log.Info("scale done", "tool", f.Tool, "candidates", n, "p50_ms", median(pt.Latencies),
					"requests", meanInts(pt.Requests), "start_s", pt.StartSec)
				r.Scale = append(r.Scale, pt)
			}
			if cs != nil {
				b.log.Info("scale crashes done", "tool", f.Tool, "candidates", n, "failover_ms", failovers(cs))
				r.ScaleCrash = append(r.ScaleCrash, *cs)
			}
		}
	}
	return nil
}
