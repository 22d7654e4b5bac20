package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/elect"
	"github.com/leaderd/leaderd/elect/status"
)

// `leaderd leader -candidates`: the election's candidate registry (package
// elect, registry.go), who could lead next and in what order.

// candidatesLine is one line of `leaderd leader -candidates -json`.
type candidatesLine struct {
	Time       time.Time              `json:"time"`
	Leader     *status.LeaderView     `json:"leader"`
	Candidates []elect.CandidateEntry `json:"candidates"`
}

// printCandidates is `leaderd leader -candidates`: every registered
// candidate, best first, and who leads; with watch, again on every change
// until ctx ends. Exit 0 if somebody leads (or -watch was interrupted), 3
// if nobody does.
func printCandidates(ctx context.Context, c *consulhttp.Client, key string, watch, asJSON bool, stdout, stderr io.Writer) int {
	show := func(es []elect.CandidateEntry, l *elect.Leader) {
		if asJSON {
			line := candidatesLine{Time: time.Now().UTC(), Leader: status.ViewOf(l), Candidates: append([]elect.CandidateEntry{}, es...)}
			b, _ := json.Marshal(line)
			fmt.Fprintf(stdout, "%s\n", b)
			return
		}
		if watch {
			fmt.Fprintf(stdout, "%s\n", time.Now().UTC().Format(time.RFC3339Nano))
		}
		fmt.Fprint(stdout, candidatesText(es, l))
		if watch {
			fmt.Fprintln(stdout)
		}
	}
	if !watch {
		es, l, err := elect.Candidates(ctx, c, key)
		if err != nil {
			return exitFor(stderr, "leader", err)
		}
		show(es, l)
		if l == nil {
			return exitNoLeader
		}
		return exitOK
	}
	wctx, wr := newWatchRetries(ctx, "leader", stderr)
	defer wr.stop()
	err := elect.ObserveCandidates(wctx, c, key, func(es []elect.CandidateEntry, l *elect.Leader) bool {
		show(es, l)
		return true
	}, wr.onErr)
	return exitFor(stderr, "leader", wr.err(err))
}

// candidatesText is the human form: an aligned table, best candidate
// first, then who leads.
func candidatesText(es []elect.CandidateEntry, l *elect.Leader) string {
	var b strings.Builder
	if len(es) == 0 {
		b.WriteString("no candidates registered\n")
	} else {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPRIORITY\tLIVE\tLEADING\tSINCE\tSESSION")
		for _, e := range es {
			since := "-"
			if !e.Since.IsZero() {
				since = e.Since.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", e.ID, e.Priority, yesNo(e.Live), yesNo(e.Leading), since, shortSession(e.Session))
		}
		tw.Flush()
	}
	switch {
	case l == nil:
		b.WriteString("no leader\n")
	case !registered(es, l):
		// An older leaderd, or one whose ACL lacks the key_prefix rule.
		fmt.Fprintf(&b, "leader=%s token=%d (not in the registry)\n", dashed(l.ID), l.Token)
	default:
		fmt.Fprintf(&b, "leader=%s token=%d\n", dashed(l.ID), l.Token)
	}
	return b.String()
}

// registered: the leader's session has a live entry.
func registered(es []elect.CandidateEntry, l *elect.Leader) bool {
	for _, e := range es {
		if e.Leading && e.Session == l.Session {
			return true
		}
	}
	return false
}

// shortSession is the first block of a session id, enough to tell
// sessions apart in a table (leaderd leader -json has them whole).
func shortSession(s string) string {
	if s == "" {
		return "-"
	}
	if i := strings.IndexByte(s, '-'); i > 0 {
		return s[:i]
	}
	return s
}

func yesNo(b bool) string { return map[bool]string{true: "yes", false: "no"}[b] }

func dashed(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
