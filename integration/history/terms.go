package history

import (
	"fmt"
	"slices"
	"time"
)

// Term is one candidate's leadership with one token, as rebuilt from the
// events (see the package doc for the model).
type Term struct {
	Candidate string
	Token     uint64
	PID       int // leaderd's
	Epoch     int // Epoch events before Elected
	Elected   time.Time
	// Ended is the stepping-down record, else the moment leaderd was seen
	// gone, else the end of the history.
	Ended  time.Time
	Reason string // stepping-down reason; "gone" if leaderd died leading; "" if still leading at the end
	Child  *ChildLife
}

// ChildLife is the life of a term's child.
type ChildLife struct {
	PID   int
	Start time.Time // its start record
	Stop  time.Time // its stop or exit record; zero if it wrote none (SIGKILL)
	// Dead is the earliest upper bound on its death: reaped by leaderd or
	// seen gone by the test; else Stop; else the end of the history.
	Dead     time.Time
	DeadSeen bool // Dead comes from a reap or an observation
}

// span is a stretch of time during which a term may act.
type span struct {
	from, to time.Time
}

func (s span) dur() time.Duration { return s.to.Sub(s.from) }

// timeline is the derived view of a history that the checks work on.
type timeline struct {
	start, end time.Time
	terms      []*Term
	pauses     map[int][]span      // by pid: frozen [seen stopped, SIGCONT)
	problems   []Violation         // found while building the terms
	children   bool                // the history has child records at all
	lease      time.Duration       // Options.Lease
	proofAt    map[int][]time.Time // by leaderd pid: its session proofs, in order
	proofs     bool                // the history has Proof records at all
	cut        []string            // notices: claims that a lease end cut short
}

func build(evs []Event, start, end time.Time, lease time.Duration) *timeline {
	tl := &timeline{start: start, end: end, lease: lease, pauses: map[int][]span{}, proofAt: map[int][]time.Time{}}
	epoch := 0
	bad := func(rule, format string, a ...any) {
		tl.problems = append(tl.problems, Violation{Rule: rule, Msg: fmt.Sprintf(format, a...)})
	}
	// open returns the term of candidate/pid/token that is still leading.
	open := func(cand string, pid int, token uint64) *Term {
		for _, t := range slices.Backward(tl.terms) {
			if t.Candidate == cand && t.PID == pid && t.Token == token && t.Ended.IsZero() {
				return t
			}
		}
		return nil
	}
	childOf := func(pid int) *Term {
		for _, t := range slices.Backward(tl.terms) {
			if t.Child != nil && t.Child.PID == pid {
				return t
			}
		}
		return nil
	}
	for _, e := range evs {
		switch e.Kind {
		case Epoch:
			epoch++
		case Elected:
			for _, t := range tl.terms {
				if t.Candidate == e.Candidate && t.PID == e.PID && t.Ended.IsZero() {
					bad("term", "%s elected with token %d at %s while still leading with token %d", e.Candidate, e.Token, tl.rel(e.At), t.Token)
				}
			}
			tl.terms = append(tl.terms, &Term{Candidate: e.Candidate, Token: e.Token, PID: e.PID, Epoch: epoch, Elected: e.At})
		case SteppedDown:
			t := open(e.Candidate, e.PID, e.Token)
			if t == nil {
				bad("term", "%s stepped down from token %d at %s without leading with it", e.Candidate, e.Token, tl.rel(e.At))
				continue
			}
			t.Ended, t.Reason = e.At, e.Note
		case ProcGone:
			for _, t := range tl.terms {
				if t.PID == e.PID && t.Ended.IsZero() {
					t.Ended, t.Reason = e.At, "gone"
				}
			}
		case ChildStart:
			tl.children = true
			var term *Term
			for _, t := range slices.Backward(tl.terms) {
				if t.Candidate == e.Candidate && t.Token == e.Token {
					term = t
					break
				}
			}
			switch {
			case term == nil:
				bad("term", "a child of %s started with token %d at %s, a term %s never won", e.Candidate, e.Token, tl.rel(e.At), e.Candidate)
			case term.Child != nil:
				bad("term", "a second child of %s (pid %d) started in term %d at %s", e.Candidate, e.PID, e.Token, tl.rel(e.At))
			default:
				term.Child = &ChildLife{PID: e.PID, Start: e.At}
			}
		case ChildStop:
			if t := childOf(e.PID); t != nil && t.Child.Stop.IsZero() {
				t.Child.Stop = e.At
			}
		case ChildReaped, ChildGone:
			if t := childOf(e.PID); t != nil && (t.Child.Dead.IsZero() || e.At.Before(t.Child.Dead)) {
				t.Child.Dead, t.Child.DeadSeen = e.At, true
			}
		case Proof:
			tl.proofs = true
			tl.proofAt[e.PID] = append(tl.proofAt[e.PID], e.At)
		case Frozen:
			tl.pauses[e.PID] = append(tl.pauses[e.PID], span{from: e.At})
		case Resumed:
			ps := tl.pauses[e.PID]
			if len(ps) == 0 || !ps[len(ps)-1].to.IsZero() {
				bad("record", "pid %d resumed at %s without being seen frozen", e.PID, tl.rel(e.At))
				continue
			}
			ps[len(ps)-1].to = e.At
		case BadRecord:
			bad("record", "%s", e.Note)
		}
	}
	for _, t := range tl.terms {
		if t.Ended.IsZero() {
			t.Ended = end
		}
		if c := t.Child; c != nil && c.Dead.IsZero() {
			c.Dead = earliest(c.Stop, end)
		}
	}
	for pid, ps := range tl.pauses {
		for i := range ps {
			if ps[i].to.IsZero() {
				ps[i].to = end
			}
		}
		tl.pauses[pid] = ps
	}
	for _, t := range tl.terms {
		if ws := tl.leased(t); len(ws) > 0 && ws[len(ws)-1].to.Before(t.Ended) {
			tl.cut = append(tl.cut, fmt.Sprintf("the claim of %s ends at its lease end %s, %s before its step-down record",
				name(t), tl.rel(ws[len(ws)-1].to), ms(t.Ended.Sub(ws[len(ws)-1].to))))
		}
	}
	return tl
}

// rel formats t as milliseconds since the start of the history.
func (tl *timeline) rel(t time.Time) string {
	return fmt.Sprintf("+%.1fms", float64(t.Sub(tl.start))/float64(time.Millisecond))
}

// minus removes pid's pauses from [from, to].
func (tl *timeline) minus(from, to time.Time, pid int) []span {
	if !from.Before(to) {
		return nil
	}
	out := []span{{from: from, to: to}}
	for _, p := range tl.pauses[pid] {
		var next []span
		for _, s := range out {
			if !p.from.Before(s.to) || !s.from.Before(p.to) {
				next = append(next, s)
				continue
			}
			if s.from.Before(p.from) {
				next = append(next, span{from: s.from, to: p.from})
			}
			if p.to.Before(s.to) {
				next = append(next, span{from: p.to, to: s.to})
			}
		}
		out = next
	}
	return out
}

// claim is when term's leaderd may act: elected to stepped down, within
// its lease when Options.Lease is set, minus its pauses.
func (tl *timeline) claim(t *Term) []span {
	var out []span
	for _, w := range tl.leased(t) {
		out = append(out, tl.minus(w.from, w.to, t.PID)...)
	}
	return out
}

// leased is [Elected, Ended], cut to the term's lease windows when
// Options.Lease is set: the election and each later proof of its leaderd
// open a window that lasts Lease.
func (tl *timeline) leased(t *Term) []span {
	if tl.lease <= 0 {
		return []span{{from: t.Elected, to: t.Ended}}
	}
	proofs := []time.Time{t.Elected}
	for _, p := range tl.proofAt[t.PID] {
		if p.After(t.Elected) && p.Before(t.Ended) {
			proofs = append(proofs, p)
		}
	}
	var out []span
	for _, p := range proofs {
		to := earlier(p.Add(tl.lease), t.Ended)
		if n := len(out); n > 0 && !p.After(out[n-1].to) {
			out[n-1].to = later(out[n-1].to, to)
			continue
		}
		out = append(out, span{from: p, to: to})
	}
	return out
}

// child is when term's child may act: start to death, minus its pauses.
func (tl *timeline) child(t *Term) []span {
	if t.Child == nil {
		return nil
	}
	return tl.minus(t.Child.Start, t.Child.Dead, t.Child.PID)
}

// acting is the union of a term's claim and child spans.
func (tl *timeline) acting(t *Term) []span {
	all := append(tl.claim(t), tl.child(t)...)
	slices.SortFunc(all, func(a, b span) int { return a.from.Compare(b.from) })
	var out []span
	for _, s := range all {
		if n := len(out); n > 0 && !s.from.After(out[n-1].to) {
			if s.to.After(out[n-1].to) {
				out[n-1].to = s.to
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

func within(ss []span, t time.Time) bool {
	for _, s := range ss {
		if !t.Before(s.from) && t.Before(s.to) {
			return true
		}
	}
	return false
}

// frozenAt reports whether pid was frozen at t.
func (tl *timeline) frozenAt(pid int, t time.Time) bool {
	return within(tl.pauses[pid], t)
}
