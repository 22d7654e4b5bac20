package history

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Options tune Check.
type Options struct {
	// Start is time zero for messages; default the first event's time.
	Start time.Time
	// End closes the history: terms and children still running end here.
	// Default: the last event's time.
	End time.Time
	// Lease, when > 0, ends a term's claim at its lease end if that comes
	// before its stepping-down record: Lease after its latest session
	// proof (its elected record, or a Proof of its leaderd since). leaderd
	// checks its clock before acting on every wake-up, but logs nothing
	// when it reads it: without Lease, a leaderd resumed past its lease
	// claims until it has logged its step-down. Proofs are logged only at
	// -log-level debug, so a history with Lease set and no Proof at all is
	// a violation: its claims would be cut short and hide overlaps.
	Lease time.Duration
	// Settle are the moments after which exactly one leader must lead
	// within a bound (the faults healed).
	Settle []Settle
}

// Settle asks for exactly one leader at some moment in [After,
// After+Within]: a term whose claim acts then and whose child (when the
// history has children) has started. A leader that is still alive at After
// counts, so After should be when the fault was complete (a killed leader
// seen gone), or when it healed.
type Settle struct {
	What   string // named in the violation, e.g. "after SIGKILL of a"
	After  time.Time
	Within time.Duration
}

// Violation is a broken property.
type Violation struct {
	Rule string // overlap, token, child, term, settle, record
	Msg  string
}

func (v Violation) String() string { return v.Rule + ": " + v.Msg }

// Report is what Check found.
type Report struct {
	Terms      []Term
	Violations []Violation
	Notices    []string // claims cut at a lease end, …
	// Settled[i] is how long after Settle[i].After one leader led, or -1.
	Settled []time.Duration
}

// Err joins the violations, nil if there are none.
func (r Report) Err() error {
	var errs []error
	for _, v := range r.Violations {
		errs = append(errs, errors.New(v.String()))
	}
	return errors.Join(errs...)
}

// Check checks evs (in any order) for the properties in the package doc.
func Check(evs []Event, opts Options) Report {
	evs = slices.Clone(evs)
	Sort(evs)
	if opts.Start.IsZero() && len(evs) > 0 {
		opts.Start = evs[0].At
	}
	if opts.End.IsZero() && len(evs) > 0 {
		opts.End = evs[len(evs)-1].At
	}
	tl := build(evs, opts.Start, opts.End, opts.Lease)
	c := &checker{tl: tl, opts: opts}
	c.violations = append(c.violations, tl.problems...)
	if opts.Lease > 0 && !tl.proofs {
		c.bad("record", "Options.Lease is set but the history has no session proof: run leaderd with -log-level debug")
	}
	c.notices = append(c.notices, tl.cut...)
	c.overlaps()
	c.tokens()
	c.childrenDead()
	r := Report{Violations: c.violations, Notices: c.notices}
	for _, s := range opts.Settle {
		r.Settled = append(r.Settled, c.settle(s))
	}
	r.Violations = c.violations
	for _, t := range tl.terms {
		tc := *t
		if t.Child != nil {
			cl := *t.Child
			tc.Child = &cl
		}
		r.Terms = append(r.Terms, tc)
	}
	return r
}

// Check checks the history as it is now; End defaults to now.
func (h *History) Check(opts Options) Report {
	if opts.Start.IsZero() {
		opts.Start = h.start
	}
	if opts.End.IsZero() {
		opts.End = time.Now()
	}
	return Check(h.Events(), opts)
}

type checker struct {
	tl         *timeline
	opts       Options
	violations []Violation
	notices    []string
}

func (c *checker) bad(rule, format string, a ...any) {
	c.violations = append(c.violations, Violation{Rule: rule, Msg: fmt.Sprintf(format, a...)})
}

func name(t *Term) string { return fmt.Sprintf("%s (token %d)", t.Candidate, t.Token) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

// overlaps: no two terms act at the same time. There is no allowance for
// a stale leader that a fencing token could stop downstream: leaderd's
// promise is that it never acts past its lease.
func (c *checker) overlaps() {
	terms := c.tl.terms
	acting := make([][]span, len(terms))
	for i, t := range terms {
		acting[i] = c.tl.acting(t)
	}
	for i := range terms {
		for j := i + 1; j < len(terms); j++ {
			a, b := terms[i], terms[j]
			for _, sa := range acting[i] {
				for _, sb := range acting[j] {
					from, to := later(sa.from, sb.from), earlier(sa.to, sb.to)
					if from.Before(to) {
						c.bad("overlap", "%s and %s both acted for %s from %s", name(a), name(b), ms(to.Sub(from)), c.tl.rel(from))
					}
				}
			}
		}
	}
}

// tokens: strictly increasing from term to term, except across an epoch.
func (c *checker) tokens() {
	terms := slices.Clone(c.tl.terms)
	slices.SortStableFunc(terms, func(a, b *Term) int { return a.Elected.Compare(b.Elected) })
	for i := 1; i < len(terms); i++ {
		p, t := terms[i-1], terms[i]
		if t.Epoch == p.Epoch && t.Token <= p.Token {
			c.bad("token", "%s elected at %s after %s: the token did not increase", name(t), c.tl.rel(t.Elected), name(p))
		}
	}
}

// childrenDead: each term's child was dead before the next one started.
// A frozen child is not dead: nothing but its death keeps it from
// running again.
func (c *checker) childrenDead() {
	var terms []*Term
	for _, t := range c.tl.terms {
		if t.Child != nil {
			terms = append(terms, t)
		}
	}
	slices.SortStableFunc(terms, func(a, b *Term) int { return a.Child.Start.Compare(b.Child.Start) })
	for i := 1; i < len(terms); i++ {
		p, n := terms[i-1], terms[i]
		if p.Child.Dead.Before(n.Child.Start) {
			continue
		}
		state := "alive"
		if c.tl.frozenAt(p.Child.PID, n.Child.Start) {
			state = "alive (frozen)"
		}
		c.bad("child", "the child of %s (pid %d) was still %s when the child of %s started at %s; it died %s later",
			name(p), p.Child.PID, state, name(n), c.tl.rel(n.Child.Start), ms(p.Child.Dead.Sub(n.Child.Start)))
	}
}

// settle finds the first moment in [After, After+Within] at which exactly
// one term leads, and returns how long after After that was (-1: never).
func (c *checker) settle(s Settle) time.Duration {
	until := s.After.Add(s.Within)
	moments := []time.Time{s.After}
	for _, t := range c.tl.terms {
		for _, m := range []time.Time{t.Elected, t.Ended.Add(1)} {
			if m.After(s.After) && !m.After(until) {
				moments = append(moments, m)
			}
		}
		if t.Child != nil {
			for _, m := range []time.Time{t.Child.Start, t.Child.Dead.Add(1)} {
				if m.After(s.After) && !m.After(until) {
					moments = append(moments, m)
				}
			}
		}
		for _, sp := range c.tl.claim(t) {
			if m := sp.to.Add(1); m.After(s.After) && !m.After(until) {
				moments = append(moments, m)
			}
		}
	}
	slices.SortFunc(moments, func(a, b time.Time) int { return a.Compare(b) })
	for _, m := range moments {
		if !m.Before(c.opts.End) {
			break
		}
		n := 0
		for _, t := range c.tl.terms {
			if c.leads(t, m) {
				n++
			}
		}
		if n == 1 {
			return m.Sub(s.After)
		}
	}
	c.bad("settle", "no single leader within %v %s (from %s)", s.Within, s.What, c.tl.rel(s.After))
	return -1
}

// leads: t's claim acts at m and, in a history with children, its child
// has started by m.
func (c *checker) leads(t *Term, m time.Time) bool {
	if !within(c.tl.claim(t), m) {
		return false
	}
	return !c.tl.children || t.Child != nil && !m.Before(t.Child.Start)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
