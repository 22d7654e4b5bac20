package main

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// sample is a small, complete set of results.
func sample() *Results {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return &Results{
		Started: t0, Finished: t0.Add(10 * time.Minute), ConsulVersion: "1.16.3", GoVersion: "go1.26.8",
		Machine: Machine{CPUs: 2, CPUModel: "Test CPU <fast> & cheap", MemGiB: 24, Kernel: "6.1"},
		Handover: []HandoverSeries{
			{Tool: toolLeaderd, Mode: modeChildExit, Latencies: []float64{8, 9, 10}, AcquireMs: []float64{4, 4, 5}, Requests: []int{10, 10, 9}, RestartRequests: []int{0, 0, 0}, RequestKinds: map[string]int{kindAcquire: 6}},
			{Tool: toolConsulLock, Mode: modeChildExit, Latencies: []float64{9, 9, 11}, AcquireMs: []float64{5, 5, 5}, Requests: []int{9, 9, 9}, RestartRequests: []int{4, 4, 4}},
			{Tool: toolLeaderd, Mode: modeSIGTERM, Latencies: []float64{8, 9}, Requests: []int{8, 8}, ChildKilled: 1},
		},
		Crash: []CrashSeries{
			{Name: leaderdFast.Name, Tool: toolLeaderd, Flags: "-check-ttl 1s -lock-delay 2s -kill-timeout 500ms", Window: 3, Runs: []CrashRun{{Failover: 2500, ChildGone: 1.5, LeaderGone: 1, KeeperGone: 2, Timeline: []Interval{{Slot: 0, Start: -3, End: 0.001, How: "killed"}, {Slot: 1, Start: 2.5, End: 5.5, How: "running"}}}}},
			{Name: leaderdDefaults.Name, Tool: toolLeaderd, Window: 13, Runs: []CrashRun{{Failover: 12000, ChildGone: 2, LeaderGone: 1}, {Failover: 13000, ChildGone: 3, LeaderGone: 1}}},
			{Name: consulLockDefaults.Name, Tool: toolConsulLock, Runs: []CrashRun{{Failover: 44000, ChildGone: -1, OldChildAlive: true, Timeline: []Interval{{Slot: 2, Start: -3, End: 44, How: "orphan"}}}}},
		},
		Idle: []IdleCandidate{
			{Flavor: leaderdDefaults.Name, Tool: toolLeaderd, Role: "leader", Window: 60, PerMinute: 84, ByKind: map[string]float64{kindRenew: 24, kindCheck: 60}, RSSKiB: 20 << 10, AnonKiB: 4 << 10, KeeperRSSKiB: 8 << 10, KeeperAnonKiB: 2 << 10},
			{Flavor: consulLockDefaults.Name, Tool: toolConsulLock, Role: "leader", Window: 60, PerMinute: 8, ByKind: map[string]float64{kindRenew: 8}, RSSKiB: 80 << 10, AnonKiB: 16 << 10},
			{Flavor: leaderdDefaults.Name, Tool: toolLeaderd, Role: "follower", Window: 60, PerMinute: 72, ByKind: map[string]float64{kindRenew: 12, kindCheck: 60}, RSSKiB: 20 << 10, AnonKiB: 4 << 10, KeeperRSSKiB: 8 << 10, KeeperAnonKiB: 2 << 10, ExeMappedKiB: 20 << 10, ExeRSSKiB: 14 << 10},
			{Flavor: consulLockDefaults.Name, Tool: toolConsulLock, Role: "follower", Window: 60, PerMinute: 12, ByKind: map[string]float64{kindRenew: 8, kindWatch: 4}, RSSKiB: 80 << 10, AnonKiB: 16 << 10},
		},
		Footprint: Footprint{LeaderdBytes: 15 << 20, LeaderdStrippedBytes: 10 << 20, ConsulBytes: 160 << 20, ChildRSSKiB: 2400, ChildAnonKiB: 700},
		Scale: []ScalePoint{
			{Tool: toolLeaderd, N: 10, Latencies: []float64{17, 18}, AcquireMs: []float64{5, 5}, Requests: []int{30, 30}},
			{Tool: toolConsulLock, N: 10, Latencies: []float64{15, 16}, AcquireMs: []float64{5, 6}, Requests: []int{30, 31}, Restart: []int{4, 4}},
			{Tool: toolConsulLock, N: 500, Skipped: "needs too much memory"},
		},
		Many: &ManyResult{Elections: 1000, Window: 30, RenewInterval: 3, Renews: 10, ByKind: map[string]int{kindRenew: 10}, RSSMiB: 40},
	}
}

// TestMarkdown checks the rows a reader relies on and that the "why"
// paragraphs appear exactly when the numbers call for them.
func TestMarkdown(t *testing.T) {
	md := markdown(sample())
	contains(t, md, "markdown lacks",
		"| graceful handover, 3 candidates (child exits), p50: ≤ 0.6× consul lock's | 9.0 ms | 9.0 ms | 1.00× consul lock's (1.00× faster) | **no** |",
		"**Graceful handover, 3 candidates (child exits).** leaderd took 9.0 ms (p50) against consul lock's 9.0 ms, 1.00×",
		"| graceful handover, 10 candidates (child exits), p50: ≤ 0.2× consul lock's and ≤ 25.0 ms | 17.0 ms | 15.0 ms | 1.13× consul lock's (1.13× slower) | half: the 25.0 ms |",
		"leaderd's winner made no read-back: its token comes with the transaction that gave it the key.",
		"| crash failover, leaderd defaults, median: ≤ 0.5× consul lock defaults' | 12.0 s | 44.0 s | 0.27× consul lock's (3.7× faster) | **yes** |",
		"| crash failover, leaderd fast settings, median: ≤ 0.1× consul lock defaults' | 2.5 s | 44.0 s | 0.06× consul lock's (17.6× faster) | **yes** |",
		"| crash: the killed leader's child outlives it: never (gone within 100 ms of it) | gone at most 2.0 ms after leaderd, in all 3 runs | still running at takeover in 1 of 1 runs | – | **yes** |",
		"| idle requests/min of a leader, defaults: stated (to the servers + check passes to the local agent) | 24.0 + 60.0 = 84.0 | 8.0 + 0 | 3.00× consul lock's to the servers | stated |",
		"| idle requests/min of a follower, defaults: stated (to the servers + check passes to the local agent) | 12.0 + 60.0 = 72.0 | 12.0 + 0 | 1.00× consul lock's to the servers | stated |",
		"**outlived it: still running at takeover in 1 of 1 runs**",
		"keeper gone 2.0 ms after the SIGKILL (median)",
		"| 20.0 MiB | 4.0 MiB | 8.0 MiB; 2.0 MiB |",
		"**Idle requests (stated, no target).**",
		"| 500 | consul lock | skipped: needs too much memory |",
		"**Memory.**",
		"**A defect: one SIGTERM can SIGKILL the child.** In 1 of 2",
		"**Safety, not speed",
		"(1.0 per 3.0 s renew interval, for all 1000 keys; 1000 sessions of their own would send 10000)",
	)
	for _, unwanted := range []string{"**Crash failover,", "**A defect: a SIGKILLed leaderd's child outlived it.**"} {
		if strings.Contains(md, unwanted) {
			t.Errorf("markdown explains a target that is met: %q", unwanted)
		}
	}
	// A miss is explained, with its figures.
	r0 := sample()
	r0.Crash[1].Runs = []CrashRun{{Failover: 25000}}
	r0.Crash[0].Runs[0].ChildGone = 900
	md0 := markdown(r0)
	contains(t, md0, "markdown with misses lacks",
		"| crash failover, leaderd defaults, median: ≤ 0.5× consul lock defaults' | 25.0 s | 44.0 s | 0.57× consul lock's (1.8× faster) | **no** |",
		"**Crash failover, leaderd defaults.** leaderd's median was 25.0 s, 0.57× consul lock's 44.0 s",
		"another candidate in 12.0–13.0 s after a leaderd crash",
		"**A defect: a SIGKILLed leaderd's child outlived it.**",
	)
	// leaderd is slower at 10 candidates in the sample: explained.
	if !strings.Contains(md, "**Handover with 10 candidates.** leaderd's handover took 17.0 ms (p50) against consul lock's 15.0 ms") {
		t.Errorf("markdown lacks the many-candidates explanation")
	}
	r := sample()
	r.Scale[0].Latencies = []float64{1, 2}
	if md := markdown(r); strings.Contains(md, "**Handover with 10 candidates.**") {
		t.Errorf("many-candidates explanation shown although leaderd meets the target")
	}
}

// TestMarkdownScale checks issue 12's rows for many candidates: requests
// per handover across N, split into writes and reads, and crash failover
// with many candidates against 3.
func TestMarkdownScale(t *testing.T) {
	r := sample()
	r.Scale = []ScalePoint{
		{Tool: toolLeaderd, N: 10, Latencies: []float64{5}, AcquireMs: []float64{2}, Requests: []int{14},
			RequestKinds: map[string]int{kindHandover: 1, kindList: 2, kindWatch: 10, kindRead: 1}},
		{Tool: toolLeaderd, N: 100, Latencies: []float64{9}, AcquireMs: []float64{3}, Requests: []int{104},
			RequestKinds: map[string]int{kindHandover: 1, kindList: 2, kindWatch: 100, kindRead: 1}},
		{Tool: toolConsulLock, N: 10, Latencies: []float64{50}, AcquireMs: []float64{10}, Requests: []int{30},
			RequestKinds: map[string]int{kindAcquire: 9, kindRelease: 1, kindWatch: 10, kindRead: 10}},
		{Tool: toolConsulLock, N: 100, Latencies: []float64{60}, AcquireMs: []float64{20}, Requests: []int{300},
			RequestKinds: map[string]int{kindAcquire: 99, kindRelease: 1, kindWatch: 100, kindRead: 100}},
	}
	r.ScaleCrash = []CrashSeries{
		{Name: leaderdDefaults.Name, Tool: toolLeaderd, N: 3, Window: 13, Runs: []CrashRun{{Failover: 12000, Phase: 0.25}, {Failover: 13000, Phase: 0.75}}},
		{Name: leaderdDefaults.Name, Tool: toolLeaderd, N: 100, Window: 13, Runs: []CrashRun{{Failover: 15000, Phase: 0.25}, {Failover: 15000, Phase: 0.75}}},
		{Name: consulLockDefaults.Name, Tool: toolConsulLock, N: 3, Window: 45, Runs: []CrashRun{{Failover: 40000, Phase: 3.75}}},
		{Name: consulLockDefaults.Name, Tool: toolConsulLock, N: 100, Window: 45, Runs: []CrashRun{{Failover: 41000, Phase: 3.75}}},
	}
	md := markdown(r)
	contains(t, md, "markdown lacks",
		"| graceful handover, 100 candidates (child exits), p50: ≤ 0.2× consul lock's and ≤ 25.0 ms | 9.0 ms | 60.0 ms | 0.15× consul lock's (6.67× faster) | **yes** |",
		"| requests per handover independent of the candidate count (N = 10/100; writes and reads) | writes 1/1; reads 13/103 | writes 10/100; reads 20/200 | – | writes **yes**, reads **no** (they grow with N) |",
		"| crash failover, 100 candidates vs 3 (leaderd defaults; 2 and 2 runs at the same kill phases): within 10%, run by run | 15.0 s vs 12.5 s mean; runs +25.0%, +15.4% | 41.0 s vs 40.0 s (+2%) | – | **no** |",
		"| 100 | leaderd | 2 | 0.25 s, 0.75 s | 15.0 s, 15.0 s | 15.0 s | 1.200× |",
		"| 100 | leaderd | 1 | 9.0 ms | 9.0 ms | 3.0 ms | 6.0 ms | 1.0 / 103.0 |",
		"**Crash failover with 100 candidates.** leaderd's failover took 15.0 s (mean of 2 runs) against 12.5 s with 3",
		"candidates; run by run, at the same kill phases, +25.0%, +15.4%;",
	)
	if strings.Contains(md, "**Handover with 100 candidates.**") {
		t.Errorf("many-candidates explanation shown although leaderd meets the target")
	}
}

// TestSVGWellFormed parses every chart as XML and counts its shapes.
func TestSVGWellFormed(t *testing.T) {
	r := sample()
	tests := []struct {
		name      string
		svg       string
		minShapes int
	}{
		{"timeline", timelineSVG(r), 10},
		{"handover", handoverSVG(r), 10},
		{"scale", scaleSVG(r), 10},
		{"timeline of nothing", timelineSVG(&Results{}), 1},
		{"scale of nothing", scaleSVG(&Results{}), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := xml.NewDecoder(strings.NewReader(tt.svg))
			shapes, root := 0, ""
			for {
				tok, err := d.Token()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("not well-formed XML: %v\n%s", err, tt.svg)
				}
				if se, ok := tok.(xml.StartElement); ok {
					if root == "" {
						root = se.Name.Local
					}
					switch se.Name.Local {
					case "rect", "line", "circle", "polyline", "text":
						shapes++
					}
				}
			}
			if root != "svg" {
				t.Errorf("root element %q, want svg", root)
			}
			if shapes < tt.minShapes {
				t.Errorf("%d shapes, want at least %d", shapes, tt.minShapes)
			}
		})
	}
}

func TestNum(t *testing.T) {
	got := []string{num(1), num(1.25), num(-0.01), num(12.04), num(1e3)}
	if diff := cmp.Diff([]string{"1", "1.2", "0", "12", "1000"}, got); diff != "" {
		t.Errorf("num (-want +got):\n%s", diff)
	}
}

func TestNiceTicks(t *testing.T) {
	tests := []struct {
		lo, hi float64
		n      int
		want   []float64
	}{
		{0, 20, 10, []float64{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20}},
		{-3, 50, 10, []float64{0, 10, 20, 30, 40, 50}},
		{0, 1, 4, []float64{0, 0.5, 1}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, niceTicks(tt.lo, tt.hi, tt.n)); diff != "" {
			t.Errorf("niceTicks(%v, %v, %d) (-want +got):\n%s", tt.lo, tt.hi, tt.n, diff)
		}
	}
}

// contains reports each of wants that md lacks (what: the markdown's name).
func contains(t *testing.T, md, what string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(md, want) {
			t.Errorf("%s lacks %q", what, want)
		}
	}
}
