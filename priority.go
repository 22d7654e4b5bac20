package main

import (
	"errors"
	"slices"
	"time"

	"github.com/leaderd/leaderd/elect"
)

// Priorities (README: "Handover and priorities"): a leader hands over to
// the best live candidate, highest -priority first, and to a candidate of
// higher priority once it has been live for -priority-hold. The rules live
// in package elect; these are only its flags.

// registerPriorityFlags declares -priority and -priority-hold on `leaderd run`.
func registerPriorityFlags(fs *flagSet, cfg *runConfig) {
	cfg.PriorityHold = elect.DefaultPriorityHold
	fs.IntVar(&cfg.Priority, "priority", 0, "rank of this candidate, higher is better: handovers and a free key go to the best live candidate, "+
		"and a leader hands over to a live candidate of higher priority after -priority-hold (may be negative)")
	fs.Var(durationValue{&cfg.PriorityHold}, "priority-hold", "while this instance leads: how long a candidate of higher priority must have been live before it hands over to that one "+
		"(no flapping while candidates come and go; give every candidate the same)")
}

// priorityErrors checks the flags registerPriorityFlags declared. elect
// owns the rules; this only adds what the flags rule out.
func priorityErrors(cfg runConfig, fs *flagSet) []error {
	var errs []error
	// elect reads a zero hold as its default (10s): refuse it rather than
	// wait 10s for a user who asked for no wait. elect's own verdict on the
	// hold (negative) is timingErrors' to report, under the flag's name.
	if cfg.PriorityHold <= 0 && !electRefuses(cfg, elect.FieldPriorityHold) {
		errs = append(errs, usagef("invalid %s %v: must be above 0s (a short hold such as 100ms hands over almost at once)", fs.name("priority-hold"), cfg.PriorityHold))
	}
	// Slots have no registry: every holder leads, nobody hands over.
	if cfg.Slots > 1 {
		for _, f := range []string{"priority", "priority-hold"} {
			if fs.source[f] != "" {
				errs = append(errs, usagef("%s ranks candidates for one leader: not with %s %d", fs.name(f), fs.name("n"), cfg.Slots))
			}
		}
	}
	return errs
}

// electRefuses says whether elect's Validate has a verdict on field.
func electRefuses(cfg runConfig, field string) bool {
	for _, e := range joined(cfg.electConfig(time.Time{}).Validate()) {
		var fe *elect.FieldError
		if errors.As(e, &fe) && slices.Contains(fe.Fields, field) {
			return true
		}
	}
	return false
}
