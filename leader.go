package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/elect"
	"github.com/leaderd/leaderd/elect/status"
)

const leaderSynopsis = `
Usage: leaderd leader [-service name | -key key] [-candidates] [-json] [-watch]

Print who leads now: id, address, fencing token, since when, session. With
-watch, print a line for the current leader and then one for every change
(blocking queries, no polling) until interrupted. -json prints JSON lines:
{"time": ..., "leader": {...}} with "leader": null when nobody leads.

-candidates lists every registered candidate instead, best first (the order
handovers and failovers follow): id, priority, live, leading, since when,
session; -json prints {"time": ..., "leader": {...}, "candidates": [...]}.
It needs read access to the key's prefix (key_prefix), not only the key.

Exit codes: 0 somebody leads (or -watch was interrupted), 3 nobody leads,
1 error (Consul unreachable, ACL denied), 2 bad flags.`

const leaderExamples = `
  leaderd leader -service billing
  leaderd leader -key services/billing/leader -json | jq .leader.token
  leaderd leader -service billing -watch
  leaderd leader -service billing -candidates`

// leaderLine is one line of `leaderd leader -json`.
type leaderLine struct {
	Time   time.Time          `json:"time"`
	Leader *status.LeaderView `json:"leader"`
}

// leaderCommand is `leaderd leader` in the command table.
func leaderCommand(fs *flagSet) action {
	var o leaderOptions
	fs.StringVar(&o.service, "service", "", "service name; the key is "+elect.KeyFor("<service>")+" (in Nomad: defaults like leaderd run)")
	fs.StringVar(&o.key, "key", "", "Consul KV key of the election (wins over -service)")
	fs.BoolVar(&o.asJSON, "json", false, "print JSON lines")
	fs.BoolVar(&o.watch, "watch", false, "keep printing every change of leader")
	fs.IntVar(&o.slots, "n", 1, "slots (leaderd run -n): list the holders of the semaphore; -key is its prefix (default "+elect.SlotsPrefixFor("<service>")+")")
	fs.BoolVar(&o.candidates, "candidates", false, "list every registered candidate, best first, and who leads")
	fs.noEnv["json"], fs.noEnv["watch"], fs.noEnv["candidates"] = true, true, true
	cf := registerConsulFlags(fs)
	return func(ctx context.Context, _ []string, in invocation) int {
		return showLeader(ctx, o, fs, cf, in.getenv, in.stdout, in.stderr)
	}
}

// leaderOptions are the flags of `leaderd leader`.
type leaderOptions struct {
	service, key              string
	asJSON, watch, candidates bool
	slots                     int
}

// showLeader is `leaderd leader` once its flags are parsed.
func showLeader(ctx context.Context, o leaderOptions, fs *flagSet, cf *consulhttp.Flags, getenv func(string) string, stdout, stderr io.Writer) int {
	service, key, asJSON, watch, slots := o.service, o.key, o.asJSON, o.watch, o.slots
	if service == "" {
		service = nomadService(getenv)
	}
	if key == "" {
		key = defaultKey(service, slots)
	}
	switch {
	case key == "":
		return exitFor(stderr, "leader", usagef("-service or -key is required"))
	case key[0] == '/':
		return exitFor(stderr, "leader", usagef("invalid %s %q: a Consul key must not start with '/'", fs.name("key"), key))
	case o.candidates && slots > 1:
		return exitFor(stderr, "leader", usagef("-candidates lists the candidates of one leader: not with %s %d (that lists the holders)", fs.name("n"), slots))
	}
	ccfg, err := consulConfig(cf, getenv)
	if err != nil {
		return exitFor(stderr, "leader", err)
	}
	client, err := consulhttp.NewClient(ccfg)
	if err != nil {
		return exitFor(stderr, "leader", usagef("consul settings: %s", oneLine(err)))
	}

	show := func(l *elect.Leader) {
		if asJSON {
			b, _ := json.Marshal(leaderLine{Time: time.Now().UTC(), Leader: status.ViewOf(l)})
			fmt.Fprintf(stdout, "%s\n", b)
			return
		}
		if watch {
			fmt.Fprintf(stdout, "%s ", time.Now().UTC().Format(time.RFC3339Nano))
		}
		fmt.Fprintln(stdout, leaderText(l))
	}

	if o.candidates {
		return printCandidates(ctx, client, key, watch, asJSON, stdout, stderr)
	}
	if slots > 1 {
		return printHolders(ctx, client, key, watch, asJSON, stdout, stderr)
	}
	if !watch {
		l, err := elect.CurrentLeader(ctx, client, key)
		if err != nil {
			return exitFor(stderr, "leader", err)
		}
		show(l)
		if l == nil {
			return exitNoLeader
		}
		return exitOK
	}
	// Errors are retried with backoff, except an ACL denial: retrying
	// can't fix a missing permission.
	wctx, wr := newWatchRetries(ctx, "leader", stderr)
	defer wr.stop()
	err = elect.Observe(wctx, client, key, func(l *elect.Leader) bool {
		show(l)
		return true
	}, wr.onErr)
	return exitFor(stderr, "leader", wr.err(err))
}

// leaderText is the human line: key=value pairs, "-" for unknown.
func leaderText(l *elect.Leader) string {
	if l == nil {
		return "no leader"
	}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	since := "-"
	if !l.Since.IsZero() {
		since = l.Since.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("leader=%s address=%s token=%d since=%s session=%s",
		dash(l.ID), dash(l.Address), l.Token, since, dash(l.Session))
}
