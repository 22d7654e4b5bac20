package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/elect"
	"github.com/leaderd/leaderd/elect/status"
)

// `leaderd transfer`: ask the leader to hand over (package elect: the
// leader watches elect.TransferKey and moves the key to its successor in
// one transaction), then watch the key until it did.

const defaultTransferTimeout = 30 * time.Second

const transferSynopsis = `
Usage: leaderd transfer [-service name | -key key] [-to id] [-timeout 30s] [-json]

Ask the current leader to hand leadership over: to the candidate -to (an id
as leaderd leader -candidates lists it), or without -to to the best other
live candidate (highest -priority, then longest waiting). The leader stops
its work first (its child is dead), then moves the key to the successor's
session in one Consul transaction: no race with other candidates, no
lock-delay. leaderd transfer writes the request to <key>/transfer and
watches the key until the leader changed, then prints
"leadership moved from A to B (token N)". -json prints one JSON line:
{"time", "result", "from", "to", "requested"} with result moved, leads
(-to already leads), other, no_leader, refused or timeout.

Needs only what leaderd run has: write access under the key (a Consul ACL
rule key_prefix "<key>" { policy = "write" }).

Exit codes: 0 leadership moved (or -to leads already); 1 it moved to another
candidate than -to, or an error (Consul unreachable, ACL denied); 2 bad
flags; 3 nobody leads; 4 the leader did not hand over: it refused (-to is not
a live candidate, no other candidate is live), or did not answer within
-timeout (it runs a leaderd without transfers): the request is then
withdrawn.`

const transferExamples = `
  # drain this node: hand over to the best other candidate first
  leaderd transfer -service billing && systemctl stop leaderd-billing

  # move leadership to a chosen candidate (ids: leaderd leader -candidates)
  leaderd transfer -service billing -to billing-2 -timeout 10s

  # in a deploy script, as JSON
  leaderd transfer -key services/billing/leader -json | jq -r .to.id`

// transferOptions are the flags of `leaderd transfer`.
type transferOptions struct {
	service, key, to string
	timeout          time.Duration
	asJSON           bool
}

// transferLine is `leaderd transfer -json`'s line.
type transferLine struct {
	Time      time.Time          `json:"time"`
	Result    string             `json:"result"` // moved, leads, other, no_leader, refused, timeout
	From      *status.LeaderView `json:"from"`   // the leader asked to hand over
	To        *status.LeaderView `json:"to"`     // the leader after it, if it changed
	Requested string             `json:"requested,omitempty"`
}

// Results of a transfer, in transferLine.Result.
const (
	transferMoved    = "moved"
	transferLeads    = "leads"
	transferOther    = "other"
	transferNoLeader = "no_leader"
	transferRefused  = "refused"
	transferTimeout  = "timeout"
)

// transferCommand is `leaderd transfer` in the command table.
func transferCommand(fs *flagSet) action {
	o := transferOptions{timeout: defaultTransferTimeout}
	fs.StringVar(&o.service, "service", "", "service name; the key is "+elect.KeyFor("<service>")+" (in Nomad: defaults like leaderd run)")
	fs.StringVar(&o.key, "key", "", "Consul KV key of the election (wins over -service)")
	fs.StringVar(&o.to, "to", "", "id of the candidate to hand over to (default: the best other live candidate)")
	fs.Var(durationValue{&o.timeout}, "timeout", "give up (exit 4) and withdraw the request if the leader has neither handed over nor refused within this long")
	fs.BoolVar(&o.asJSON, "json", false, "print the outcome as one JSON line")
	// LEADERD_TIMEOUT is leaderd run's -timeout: not this one.
	fs.noEnv["timeout"], fs.noEnv["json"] = true, true
	cf := registerConsulFlags(fs)
	return func(ctx context.Context, _ []string, in invocation) int {
		return transfer(ctx, o, fs, cf, in)
	}
}

// transfer is `leaderd transfer` once its flags are parsed.
func transfer(ctx context.Context, o transferOptions, fs *flagSet, cf *consulhttp.Flags, in invocation) int {
	key := o.key
	if key == "" {
		service := o.service
		if service == "" {
			service = nomadService(in.getenv)
		}
		key = defaultKey(service, 0)
	}
	switch {
	case key == "":
		return exitFor(in.stderr, "transfer", usagef("-service or -key is required"))
	case key[0] == '/':
		return exitFor(in.stderr, "transfer", usagef("invalid %s %q: a Consul key must not start with '/'", fs.name("key"), key))
	case o.timeout <= 0:
		return exitFor(in.stderr, "transfer", usagef("invalid -timeout %v: must be above 0s", o.timeout))
	}
	ccfg, err := consulConfig(cf, in.getenv)
	if err != nil {
		return exitFor(in.stderr, "transfer", err)
	}
	client, err := consulhttp.NewClient(ccfg)
	if err != nil {
		return exitFor(in.stderr, "transfer", usagef("consul settings: %s", oneLine(err)))
	}
	out := transferOutput{json: o.asJSON, requested: o.to, stdout: in.stdout, stderr: in.stderr}

	from, err := elect.CurrentLeader(ctx, client, key)
	switch {
	case err != nil:
		return exitFor(in.stderr, "transfer", err)
	case from == nil:
		out.say(transferNoLeader, nil, nil, "nobody leads %s: nothing to transfer", key)
		return exitNoLeader
	case o.to != "" && from.ID == o.to:
		out.say(transferLeads, from, from, "%s leads already (token %d)", from.ID, from.Token)
		return exitOK
	}
	req, err := elect.RequestTransfer(ctx, client, key, o.to)
	if err != nil {
		return exitFor(in.stderr, "transfer", err)
	}

	tctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	to, refused, denied := awaitHandover(tctx, client, key, from, req, in.stderr)
	switch {
	case to != nil && (o.to == "" || to.ID == o.to):
		out.say(transferMoved, from, to, "leadership moved from %s to %s (token %d)", dashed(from.ID), dashed(to.ID), to.Token)
		return exitOK
	case to != nil:
		out.say(transferOther, from, to, "leadership moved from %s to %s (token %d), not to %s", dashed(from.ID), dashed(to.ID), to.Token, o.to)
		return exitError
	case refused:
		out.say(transferRefused, from, nil, "leader %s did not hand over: %s", dashed(from.ID), whyNoHandover(client, key, from, o.to))
		return exitTimeout
	}
	// Nothing moved: withdraw the request, so that the leader does not act
	// on it long after we said it did not.
	withdrawTransfer(client, key, req)
	switch {
	case denied != nil:
		return exitFor(in.stderr, "transfer", denied)
	case ctx.Err() != nil:
		return exitFor(in.stderr, "transfer", errors.New("interrupted; request withdrawn"))
	}
	out.say(transferTimeout, from, nil, "leader %s did not hand over within %v: %s; request withdrawn",
		dashed(from.ID), o.timeout, whyNoHandover(client, key, from, o.to))
	return exitTimeout
}

// awaitHandover watches the key until another session holds it (to), or
// until the leader took the request req away without handing over: it
// refused it (no such live candidate), as a leaderd with transfers does.
// Errors are retried until ctx ends, except an ACL denial (denied).
func awaitHandover(ctx context.Context, c *consulhttp.Client, key string, from *elect.Leader, req elect.TransferRequest, stderr io.Writer) (to *elect.Leader, refused bool, denied error) {
	wctx, wr := newWatchRetries(ctx, "transfer", stderr)
	gone, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		if requestGone(wctx, c, key, req) {
			close(gone)
			wr.stop()
		}
	}()
	defer func() { wr.stop(); <-done }()
	_ = elect.Observe(wctx, c, key, func(l *elect.Leader) bool {
		if l == nil || l.Session == from.Session {
			return true // between terms, or not yet
		}
		to = l
		return false
	}, wr.onErr)
	select {
	case <-gone:
	default:
		return to, false, wr.denied
	}
	if to != nil {
		return to, false, nil
	}
	// The leader acts on a request before it deletes it: if the key moved,
	// it shows now.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if l, err := elect.CurrentLeader(rctx, c, key); err == nil && l != nil && l.Session != from.Session {
		return l, false, nil
	}
	return nil, true, nil
}

// requestGone watches the transfer key until it no longer holds req (it
// reports true) or ctx ends (false). A failed read is retried every second.
func requestGone(ctx context.Context, c *consulhttp.Client, key string, req elect.TransferRequest) bool {
	var index uint64
	for {
		p, meta, err := c.GetKV(ctx, elect.TransferKey(key), consulhttp.QueryOptions{Index: index, Wait: elect.DefaultWatchWait})
		switch {
		case ctx.Err() != nil:
			return false
		case err != nil:
			index = 0
			select {
			case <-ctx.Done():
				return false
			case <-time.After(time.Second):
			}
		case !isRequest(p, req):
			return true
		case meta.LastIndex < index: // Consul's state was rebuilt: read afresh
			index = 0
		default:
			index = max(meta.LastIndex, 1)
		}
	}
}

// isRequest says whether the transfer key p holds req.
func isRequest(p *consulhttp.KVPair, req elect.TransferRequest) bool {
	var got elect.TransferRequest
	return p != nil && json.Unmarshal(p.Value, &got) == nil && got.Nonce == req.Nonce
}

// withdrawTransfer deletes the request req if it is still the one in the
// key (another leaderd transfer may have written its own since).
func withdrawTransfer(c *consulhttp.Client, key string, req elect.TransferRequest) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, _, err := c.GetKV(ctx, elect.TransferKey(key), consulhttp.QueryOptions{})
	if err != nil || !isRequest(p, req) {
		return
	}
	_, _ = c.DeleteCASKV(ctx, elect.TransferKey(key), p.ModifyIndex)
}

// whyNoHandover guesses, from the registry, why the leader did not hand
// over: the most likely cause first.
func whyNoHandover(c *consulhttp.Client, key string, from *elect.Leader, to string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	es, _, err := elect.Candidates(ctx, c, key)
	if err != nil {
		return "could not read the candidates: " + oneLine(err)
	}
	leaderListed, others := false, 0
	for _, e := range es {
		switch {
		case !e.Live:
		case e.Session == from.Session:
			leaderListed = true
		case to == "" || e.ID == to:
			others++
		}
	}
	switch {
	case to != "" && others == 0:
		return fmt.Sprintf("%s is not a live candidate (see leaderd leader -candidates)", to)
	case others == 0:
		return "no other candidate is live"
	case !leaderListed:
		return "the leader is not in the candidate registry (a leaderd without transfers, or its ACL lacks key_prefix write on the key)"
	}
	return "the leader may run a leaderd without transfers, or be stuck (see its log)"
}

// transferOutput prints a transfer's outcome: a JSON line, or a sentence
// on stdout (success) or stderr (failure).
type transferOutput struct {
	json           bool
	requested      string
	stdout, stderr io.Writer
}

func (o transferOutput) say(result string, from, to *elect.Leader, format string, a ...any) {
	if o.json {
		b, _ := json.Marshal(transferLine{Time: time.Now().UTC(), Result: result, From: status.ViewOf(from), To: status.ViewOf(to), Requested: o.requested})
		fmt.Fprintf(o.stdout, "%s\n", b)
		return
	}
	w, prefix := o.stdout, ""
	if result != transferMoved && result != transferLeads {
		w, prefix = o.stderr, "leaderd transfer: "
	}
	fmt.Fprintf(w, prefix+format+"\n", a...)
}
