package history

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Unix(1_700_000_000, 0)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// graceful is a term of cand (leaderd pid) with token tok: elected at
// from, child (pid child) started 5ms later; stepped down at to, the child
// stopped 3ms and was reaped 4ms after that.
func graceful(cand string, pid, child int, tok uint64, from, to int) []Event {
	return []Event{
		{At: at(from), Candidate: cand, Kind: Elected, Token: tok, PID: pid},
		{At: at(from + 5), Candidate: cand, Kind: ChildStart, Token: tok, PID: child},
		{At: at(to), Candidate: cand, Kind: SteppedDown, Token: tok, PID: pid, Note: "released"},
		{At: at(to + 3), Candidate: cand, Kind: ChildStop, Token: tok, PID: child, Note: "stop"},
		{At: at(to + 4), Candidate: cand, Kind: ChildReaped, Token: tok, PID: child},
	}
}

// crashed is a term whose leaderd was SIGKILLed at kill: no stop record;
// the child was seen gone at gone (0: never seen).
func crashed(cand string, pid, child int, tok uint64, from, kill, gone int) []Event {
	evs := []Event{
		{At: at(from), Candidate: cand, Kind: Elected, Token: tok, PID: pid},
		{At: at(from + 5), Candidate: cand, Kind: ChildStart, Token: tok, PID: child},
		{At: at(kill), Candidate: cand, Kind: Fault, Note: "SIGKILL"},
		{At: at(kill + 1), Candidate: cand, Kind: ProcGone, PID: pid},
	}
	if gone > 0 {
		evs = append(evs, Event{At: at(gone), Candidate: cand, Kind: ChildGone, Token: tok, PID: child})
	}
	return evs
}

// frozen freezes leaderd pid and child at ms.
func frozen(cand string, ms int, pids ...int) []Event {
	var evs []Event
	for _, p := range pids {
		evs = append(evs, Event{At: at(ms), Candidate: cand, Kind: Frozen, PID: p})
	}
	return evs
}

func resumed(cand string, ms int, pids ...int) []Event {
	var evs []Event
	for _, p := range pids {
		evs = append(evs, Event{At: at(ms), Candidate: cand, Kind: Resumed, PID: p})
	}
	return evs
}

func ev(ms int, cand string, k Kind, tok uint64, pid int, note string) []Event {
	return []Event{{At: at(ms), Candidate: cand, Kind: k, Token: tok, PID: pid, Note: note}}
}

func join(parts ...[]Event) []Event { return slices.Concat(parts...) }

// frozenLeader: a (pid 1, child 11, token 10) frozen at 50; b (pid 2,
// child 21, token 20) elected at 3000; a's leaderd resumed at 4000 and
// stepped down 2ms later; the rest is the case's.
func frozenLeader(rest ...[]Event) []Event {
	return join(append([][]Event{
		ev(0, "a", Elected, 10, 1, ""),
		ev(5, "a", ChildStart, 10, 11, ""),
		frozen("a", 50, 1, 11),
		ev(3000, "b", Elected, 20, 2, ""),
		ev(3005, "b", ChildStart, 20, 21, ""),
		resumed("a", 4000, 1),
		ev(4002, "a", SteppedDown, 10, 1, "lease_expired"),
	}, rest...)...)
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name        string
		evs         []Event
		opts        Options
		wantRules   []string
		wantNotices int
	}{
		{
			name: "graceful handovers",
			evs:  join(graceful("a", 1, 11, 10, 0, 100), graceful("b", 2, 21, 20, 110, 200), graceful("a", 1, 12, 30, 210, 300)),
		},
		{
			name:      "claims overlap",
			evs:       join(graceful("a", 1, 11, 10, 0, 100), graceful("b", 2, 21, 20, 50, 200)),
			wantRules: []string{"child", "overlap"},
		},
		{
			name: "child outlives the handover",
			evs: join(
				ev(0, "a", Elected, 10, 1, ""), ev(5, "a", ChildStart, 10, 11, ""),
				ev(100, "a", SteppedDown, 10, 1, "lease_expired"),
				graceful("b", 2, 21, 20, 110, 200),
				ev(130, "a", ChildReaped, 10, 11, "code=137"),
			),
			wantRules: []string{"child", "overlap"},
		},
		{
			name:      "token not increasing",
			evs:       join(graceful("a", 1, 11, 20, 0, 100), graceful("b", 2, 21, 20, 110, 200)),
			wantRules: []string{"token"},
		},
		{
			name:      "token going down",
			evs:       join(graceful("a", 1, 11, 20, 0, 100), graceful("b", 2, 21, 15, 110, 200)),
			wantRules: []string{"token"},
		},
		{
			name: "token reset after an epoch",
			evs:  join(graceful("a", 1, 11, 20, 0, 100), ev(105, "", Epoch, 0, 0, "consul restarted"), graceful("b", 2, 21, 3, 110, 200)),
		},
		{
			name: "SIGKILLed leader, child seen gone",
			evs:  join(crashed("a", 1, 11, 10, 0, 100, 102), graceful("b", 2, 21, 20, 2100, 2200)),
			opts: Options{Settle: []Settle{{What: "after SIGKILL", After: at(101), Within: 3 * time.Second}}},
		},
		{
			name:      "SIGKILLed leader, child never seen gone",
			evs:       join(crashed("a", 1, 11, 10, 0, 100, 0), graceful("b", 2, 21, 20, 2100, 2200)),
			wantRules: []string{"child", "overlap"},
		},
		{
			name:      "no leader within the bound",
			evs:       join(crashed("a", 1, 11, 10, 0, 100, 102), graceful("b", 2, 21, 20, 2100, 2200)),
			opts:      Options{Settle: []Settle{{What: "after SIGKILL", After: at(101), Within: time.Second}}},
			wantRules: []string{"settle"},
		},
		{
			name:      "frozen, leaderd resumed alone, child killed frozen after the next started",
			evs:       join(frozenLeader(ev(4510, "a", ChildReaped, 10, 11, "code=137"))),
			opts:      Options{Lease: 2 * time.Second},
			wantRules: []string{"child", "record"}, // no proof in the history either
			// a's claim was cut at its lease end
			wantNotices: 1,
		},
		{
			name: "frozen, child killed at the lease end, claim cut by the lease",
			evs: join(frozenLeader(ev(30, "a", Proof, 0, 1, "renew"),
				ev(2030, "a", ChildGone, 10, 11, ""))),
			opts:        Options{Lease: 2 * time.Second},
			wantNotices: 1,
		},
		{
			name: "frozen, child killed at the lease end, no Lease: the claim runs to the step-down",
			evs: join(frozenLeader(ev(30, "a", Proof, 0, 1, "renew"),
				ev(2030, "a", ChildGone, 10, 11, ""))),
			wantRules: []string{"overlap"},
		},
		{
			name: "frozen, all resumed, short child tail",
			evs: join(frozenLeader(resumed("a", 4000, 11),
				ev(4003, "a", ChildStop, 10, 11, "stop"), ev(4004, "a", ChildReaped, 10, 11, "code=0"))),
			// no allowance for a tail fenced by a's lower token
			wantRules: []string{"child", "overlap"},
		},
		{
			name: "frozen, all resumed, child runs on",
			evs: join(frozenLeader(resumed("a", 4000, 11),
				ev(4600, "a", ChildStop, 10, 11, "stop"), ev(4601, "a", ChildReaped, 10, 11, "code=0"))),
			// the claim's 2ms tail merges into the child's 601ms one
			wantRules: []string{"child", "overlap"},
		},
		{
			name: "stale tail with the higher token",
			evs: join(
				ev(0, "a", Elected, 30, 1, ""), ev(5, "a", ChildStart, 30, 11, ""),
				frozen("a", 50, 1, 11),
				ev(3000, "b", Elected, 20, 2, ""), ev(3005, "b", ChildStart, 20, 21, ""),
				resumed("a", 4000, 1, 11),
				ev(4002, "a", SteppedDown, 30, 1, "lease_expired"), ev(4004, "a", ChildReaped, 30, 11, ""),
			),
			wantRules: []string{"child", "overlap", "token"},
		},
		{
			name: "a renewing leader is not cut by the lease",
			evs: join(graceful("a", 1, 11, 10, 0, 5000), ev(1500, "a", Proof, 0, 1, "renew"),
				ev(3000, "a", Proof, 0, 1, "renew"), graceful("b", 2, 21, 20, 4500, 6000)),
			opts:      Options{Lease: 2 * time.Second},
			wantRules: []string{"child", "overlap"},
		},
		{
			name:      "child of a term never won",
			evs:       join(graceful("a", 1, 11, 10, 0, 100), ev(150, "c", ChildStart, 99, 31, "")),
			wantRules: []string{"term"},
		},
		{
			name:      "elected twice",
			evs:       join(ev(0, "a", Elected, 10, 1, ""), ev(50, "a", Elected, 20, 1, "")),
			opts:      Options{End: at(100)},
			wantRules: []string{"overlap", "term"},
		},
		{
			name:      "garbled child record",
			evs:       join(graceful("a", 1, 11, 10, 0, 100), ev(50, "", BadRecord, 0, 0, "child record \"x\": want 5 fields")),
			wantRules: []string{"record"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Check(tc.evs, tc.opts)
			var rules []string
			for _, v := range r.Violations {
				rules = append(rules, v.Rule)
			}
			slices.Sort(rules)
			if diff := cmp.Diff(tc.wantRules, rules); diff != "" {
				t.Errorf("violated rules (-want +got):\n%s\n%s", diff, r.Format(Timeline(tc.evs, t0)))
			}
			if len(r.Notices) != tc.wantNotices {
				t.Errorf("%d notices, want %d:\n%s", len(r.Notices), tc.wantNotices, r.Format(""))
			}
			if (r.Err() == nil) != (len(tc.wantRules) == 0) {
				t.Errorf("Err() = %v with violations %v", r.Err(), r.Violations)
			}
		})
	}
}

func TestCheckSettled(t *testing.T) {
	evs := join(crashed("a", 1, 11, 10, 0, 100, 102), graceful("b", 2, 21, 20, 2100, 2200))
	// After: when a's leaderd was seen gone.
	r := Check(evs, Options{Settle: []Settle{{After: at(101), Within: 3 * time.Second}}})
	// b leads once its child started, 5ms after its election.
	if diff := cmp.Diff([]time.Duration{2004 * time.Millisecond}, r.Settled); diff != "" {
		t.Errorf("Settled (-want +got):\n%s", diff)
	}
}

func TestCheckTerms(t *testing.T) {
	evs := join(crashed("a", 1, 11, 10, 0, 100, 102), graceful("b", 2, 21, 20, 2100, 2200))
	r := Check(evs, Options{End: at(3000)})
	want := []Term{
		{Candidate: "a", Token: 10, PID: 1, Elected: at(0), Ended: at(101), Reason: "gone",
			Child: &ChildLife{PID: 11, Start: at(5), Dead: at(102), DeadSeen: true}},
		{Candidate: "b", Token: 20, PID: 2, Elected: at(2100), Ended: at(2200), Reason: "released",
			Child: &ChildLife{PID: 21, Start: at(2105), Stop: at(2203), Dead: at(2204), DeadSeen: true}},
	}
	if diff := cmp.Diff(want, r.Terms); diff != "" {
		t.Errorf("Terms (-want +got):\n%s", diff)
	}
}
