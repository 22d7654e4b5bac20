package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/elect"
	"github.com/leaderd/leaderd/elect/status"
	"github.com/leaderd/leaderd/nomad"
)

// campaign is what `leaderd run` drives: one election (-n 1) or up to N
// holders of Consul semaphore slots (-n N, elect.Slots). Both step down in
// the same order through the same hooks, so the supervisor, the keeper and
// the publishers see no difference.
type campaign interface {
	Run(ctx context.Context) error
	State() elect.State
	Events() <-chan elect.Event
	ResignTerm(ctx context.Context, token uint64) error
}

var (
	_ campaign = (*elect.Election)(nil)
	_ campaign = (*elect.Slots)(nil)
)

// newCampaign builds the election, or the slots when n > 1 (nil slots
// otherwise).
func newCampaign(c status.MeteredConsul, n int, ecfg elect.Config) (campaign, *elect.Slots, error) {
	if n <= 1 {
		e, err := elect.New(c, ecfg)
		return e, nil, err
	}
	s, err := elect.NewSlots(c, ecfg, n)
	return s, s, err
}

// holdersText is `leaderd leader -n N`'s human output: one line per holder.
func holdersText(limit int, hs []elect.Holder) string {
	if len(hs) == 0 {
		return "no holders"
	}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	var b strings.Builder
	for _, h := range hs {
		state := "live"
		if !h.Live {
			state = "dead-since=" + h.DeadSince.UTC().Format(time.RFC3339Nano)
			if h.DeadSince.IsZero() {
				state = "dead"
			}
		}
		fmt.Fprintf(&b, "holder=%s address=%s session=%s limit=%d %s\n", dash(h.ID), dash(h.Address), h.Session, limit, state)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// registerSlotsFlags declares -n on `leaderd run`.
func registerSlotsFlags(fs *flagSet, cfg *runConfig) {
	fs.Var(slotsValue{&cfg.Slots}, "n", "slots: up to `n` instances lead (run the command) at once, in the key layout of consul lock -n "+
		"(-key is then the semaphore's prefix, default "+elect.SlotsPrefixFor("<service>")+"); 1: one leader")
}

// slotsValue is -n: at least 1, kept as 0 for 1 so a configuration without
// slots is runConfig's zero value.
type slotsValue struct{ n *int }

func (v slotsValue) String() string {
	if v.n == nil || *v.n <= 1 {
		return "1"
	}
	return strconv.Itoa(*v.n)
}

func (v slotsValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	switch {
	case err != nil:
		return errors.New("not a number")
	case n < 1:
		return errors.New("must be at least 1")
	case n == 1:
		n = 0
	}
	*v.n = n
	return nil
}

// slotsErrors checks what -n rules out.
func slotsErrors(cfg runConfig, fs *flagSet) []error {
	var errs []error
	if cfg.Slots > 1 && slices.Contains(cfg.Publish, nomad.PublishNomadVars) {
		errs = append(errs, usagef("-publish %s holds one leader record: not with %s %d", nomad.PublishNomadVars, fs.name("n"), cfg.Slots))
	}
	return errs
}

// holdersLine is one line of `leaderd leader -n N -json`.
type holdersLine struct {
	Time    time.Time      `json:"time"`
	Limit   int            `json:"limit"`
	Holders []elect.Holder `json:"holders"`
}

// printHolders is `leaderd leader -n N`: the semaphore's holders under
// prefix. Exit 0 if any holder is live, 3 if none.
func printHolders(ctx context.Context, c *consulhttp.Client, prefix string, watch, asJSON bool, stdout, stderr io.Writer) int {
	if watch {
		return exitFor(stderr, "leader", usagef("-watch is not supported with -n yet"))
	}
	limit, hs, err := elect.CurrentHolders(ctx, c, prefix)
	if err != nil {
		return exitFor(stderr, "leader", err)
	}
	if asJSON {
		b, _ := json.Marshal(holdersLine{Time: time.Now().UTC(), Limit: limit, Holders: append([]elect.Holder{}, hs...)})
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		fmt.Fprintln(stdout, holdersText(limit, hs))
	}
	for _, h := range hs {
		if h.Live {
			return exitOK
		}
	}
	return exitNoLeader
}
