package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Results is everything one run measured. It is saved as results.json next
// to RESULTS.md so the report and pictures can be re-rendered (-render)
// without measuring again.
type Results struct {
	Quick         bool
	Started       time.Time
	Finished      time.Time
	Machine       Machine
	ConsulVersion string
	GoVersion     string
	LeaderdCommit string
	LoadBefore    string // /proc/loadavg's three averages
	LoadAfter     string
	// Note says what was measured when it is not plain main (-note).
	Note string `json:",omitempty"`

	Handover  []HandoverSeries
	Crash     []CrashSeries
	Idle      []IdleCandidate
	Footprint Footprint
	Scale     []ScalePoint
	// ScaleCrash is crash failover with N candidates on one key, as the
	// crash experiment measures it with 3, in few runs.
	ScaleCrash []CrashSeries `json:",omitempty"`
	Many       *ManyResult
}

// Machine describes where the numbers come from.
type Machine struct {
	CPUs     int
	CPUModel string
	MemGiB   float64
	Kernel   string
}

// Tools, as the tables name them.
const (
	toolLeaderd    = "leaderd"
	toolConsulLock = "consul lock"
)

// Interval is one child's life on a timeline, in seconds from the series'
// origin (a crash run: the SIGKILL).
type Interval struct {
	Slot   int
	Start  float64
	End    float64
	How    string // how it ended: "usr1", "term", "killed" (with its supervisor), "orphan" (outlived it; killed by the benchmark)
	Leader string // the candidate process that ran it
}

// HandoverSeries is one tool's graceful handovers in one mode.
type HandoverSeries struct {
	Tool      string
	Mode      string    // modeChildExit or modeSIGTERM
	Latencies []float64 // ms, the old child's exit line to the new child's start line
	// AcquireMs: from the old child's exit until the key was the new
	// leader's: its successful acquire answered, or (leaderd's handover)
	// the old leader's transaction that moved the key to it (the rest of
	// Latencies is what the new leader does before its child runs).
	AcquireMs []float64
	// ReleaseMs: from the old child's exit until the old leader sent its
	// release or handover (-1: none seen): what the old leader took to let go.
	ReleaseMs []float64
	// HerdMs: until the last acquire of the handover, anyone's, was
	// answered: when the losers were done trying.
	HerdMs []float64
	// ReadBackMs: the winner's first non-blocking read of the key after
	// its acquire (consul lock: its monitor's first read, while its child
	// starts; leaderd before issue 12: the consistent read of its fencing
	// token, which now comes in the acquire's answer); -1 when there was none.
	ReadBackMs []float64
	// ToReadMs and FromReadMs: from the acquire's answer until that read
	// was sent, and from its answer until the new child started (-1: none).
	ToReadMs   []float64
	FromReadMs []float64
	// SeenMs: from the old child's exit until the winner's blocking read
	// brought it the key that the old leader's handover transaction moved
	// to it (-1: the winner acquired the key itself).
	SeenMs []float64 `json:",omitempty"`
	// ListMs: the old leader's read of the candidate registry (GET
	// ?recurse) between its child's exit and its handover, which it
	// picks the successor from (-1: none).
	ListMs []float64 `json:",omitempty"`
	// HandedOver counts the handovers in which the old leader's handover
	// transaction moved the key (the rest: the winner acquired it).
	HandedOver int `json:",omitempty"`
	// Requests per handover reaching Consul from the candidates that were
	// running when it began, until all waited again; RestartRequests are the
	// replacement process's own (consul lock exits with its child; a
	// SIGTERMed leader exits too).
	Requests        []int
	RestartRequests []int
	RequestKinds    map[string]int // Requests summed over all handovers, by kind
	// ChildKilled counts handovers where the old child was SIGKILLed
	// instead of stopped gracefully (no exit line: the latency is from
	// when the benchmark saw it gone).
	ChildKilled int
	Timeline    []Interval // the first handovers, seconds from the first start
}

const (
	modeChildExit = "child exits"
	modeSIGTERM   = "leader gets SIGTERM"
)

// CrashSeries is one configuration's crash failovers.
type CrashSeries struct {
	Name  string // "leaderd defaults", ...
	Tool  string
	Flags string // what it was run with
	// Window: seconds after the last keep-alive before Consul can let
	// another candidate in (see flavor.Window); Window − Phase is a run's
	// floor.
	Window float64
	Runs   []CrashRun
	N      int // candidates on the key (the crash experiment: 3)
}

// CrashRun is one SIGKILL of the leader.
type CrashRun struct {
	Failover float64 // ms from the SIGKILL to the new child's start line
	// ChildGone is ms from the SIGKILL until the old leader's child was
	// gone, or -1 if it was still running when the new child started.
	ChildGone float64
	// LeaderGone is ms from the SIGKILL until the killed process was
	// reaped; ChildGone − LeaderGone is how long its child outlived it.
	LeaderGone float64
	// KeeperGone is ms from the SIGKILL until leaderd's keeper was gone
	// (-1: none, or it was still running 5 s later).
	KeeperGone float64
	// OldChildAlive: the old child was still running when the new leader's
	// child started (two "leaders" at once).
	OldChildAlive bool
	Timeline      []Interval // seconds relative to the SIGKILL
	// Phase: seconds from the leader's last renew (or check pass) answered
	// to the SIGKILL.
	Phase float64
}

// IdleCandidate is one candidate at steady state.
type IdleCandidate struct {
	Flavor    string
	Flags     string
	Tool      string
	Role      string  // "leader" or "follower"
	Window    float64 // seconds counted
	PerMinute float64 // requests reaching Consul per minute
	ByKind    map[string]float64
	// Memory and CPU are the candidate's whole: for leaderd, the leaderd
	// process and its keeper (`leaderd __keeper`) added up.
	RSSKiB        int
	AnonKiB       int // private anonymous memory: what each extra instance really costs
	KeeperRSSKiB  int // the keeper's part of RSSKiB (0: no keeper)
	KeeperAnonKiB int // the keeper's part of AnonKiB
	ExeMappedKiB  int // the candidate's own binary: mapped (smaps Size), both processes
	ExeRSSKiB     int // ... and resident (smaps Rss), shared with every process running it
	CPUSecPerHour float64
}

// Footprint holds the sizes.
type Footprint struct {
	LeaderdBytes         int64
	LeaderdStrippedBytes int64
	ConsulBytes          int64
	ChildRSSKiB          int // the smallest Go program: the floor
	ChildAnonKiB         int
}

// ScalePoint is handovers with N candidates of one tool on one key.
type ScalePoint struct {
	Tool         string
	N            int
	How          string         // "processes"
	Latencies    []float64      // ms
	AcquireMs    []float64      // ms, until the key was the winner's (see HandoverSeries)
	ReleaseMs    []float64      `json:",omitempty"` // see HandoverSeries
	ReadBackMs   []float64      // see HandoverSeries
	ToReadMs     []float64      // see HandoverSeries
	FromReadMs   []float64      // see HandoverSeries
	SeenMs       []float64      `json:",omitempty"` // see HandoverSeries
	ListMs       []float64      `json:",omitempty"` // see HandoverSeries
	HandedOver   int            `json:",omitempty"` // see HandoverSeries
	HerdMs       []float64      // see HandoverSeries
	Requests     []int          // per handover, all candidates, until all wait again
	Restart      []int          // consul lock: the replacement process's requests
	RequestKinds map[string]int // Requests summed over all handovers, by kind
	StartSec     float64        // starting N candidates until all wait
	// StartupLeaders counts the leaders' children started before the first
	// handover: 1 unless leadership changed hands during start-up.
	StartupLeaders int     `json:",omitempty"`
	RSSMiB         float64 // sum of the candidates' RSS (leaderd: with their keepers)
	AnonMiB        float64 // sum of their private anonymous memory (the same)
	Processes      int     // how many processes that is
	Skipped        string  // why the point wasn't measured
}

// ManyResult is one process running many elections on one shared session.
type ManyResult struct {
	Elections     int
	Window        float64 // seconds counted
	RenewInterval float64 // seconds
	Renews        int
	ByKind        map[string]int
	SetupSec      float64 // until every election led
	HeapInuseMiB  float64
	SysMiB        float64
	RSSMiB        float64
	Goroutines    int
}

func (r *Results) save(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func loadResults(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return &r, nil
}
