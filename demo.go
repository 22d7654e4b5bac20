package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-cleanhttp"

	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/elect"
)

const demoSynopsis = `
Usage: leaderd demo [-ttl duration]

Start a throwaway Consul dev agent on loopback (consul from CONSUL_BIN, PATH
or leaderd's cache, else built once from the pinned version), run three
candidates in this process, each with its own session, and show:
  1. an election: exactly one of them leads;
  2. a graceful handover: the leader resigns and releases the key, a
     follower takes over in about one round trip (measured);
  3. a failover: the new leader is cut off from Consul without releasing
     anything, stops acting as leader when its local lease runs out, and a
     follower takes over once Consul expired the session and its
     lock-delay passed (measured).
Everything is stopped and removed at the end, or on Ctrl-C.

Exit codes: 0 the demo ran, 1 it could not (no consul, interrupted, ...),
2 bad flags.`

const demoExamples = `
  go run . demo                 # from a clone: nothing to install
  CONSUL_BIN=/usr/local/bin/consul leaderd demo -ttl 5s`

func runDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo")
	ttl := 3 * time.Second
	fs.Var(durationValue{&ttl}, "ttl", "session TTL of the candidates, 3s..1m, also their lock-delay: the failover takes between 2×TTL and 3×TTL")
	fs.noEnv["ttl"] = true
	err := fs.parse(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout, fs, demoSynopsis, demoExamples)
		return exitOK
	}
	if err == nil && fs.NArg() > 0 {
		err = usagef("unexpected argument %q", fs.Arg(0))
	}
	if err == nil && (ttl < 3*time.Second || ttl > time.Minute) {
		err = usagef("invalid -ttl %v: must be between 3s and 1m", ttl)
	}
	if err != nil {
		return exitFor(stderr, "demo", err)
	}
	if err := demo(ctx, ttl, getenv, stdout); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stdout, "interrupted; everything was stopped")
			return exitError
		}
		return exitFor(stderr, "demo", err)
	}
	return exitOK
}

// candidate is one of the demo's three elections.
type candidate struct {
	name string
	e    *elect.Election
	net  *cuttable
	stop context.CancelFunc
	done chan struct{}
}

func demo(ctx context.Context, ttl time.Duration, getenv func(string) string, out io.Writer) error {
	bin, err := findConsul(ctx, getenv, out)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "leaderd-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	agent, err := startAgent(ctx, bin, filepath.Join(tmp, "consul.log"))
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "stopping the consul agent")
		agent.Stop()
	}()
	const key = "leaderd-demo/leader"
	fmt.Fprintf(out, "consul dev agent at http://%s (%s)\n\n", agent.Addr, bin)

	v := newDemoView(out)
	var cands []*candidate
	defer func() {
		for _, c := range cands {
			c.stop()
		}
		for _, c := range cands {
			v.drain(c.done)
		}
	}()
	for _, name := range []string{"alpha", "bravo", "charlie"} {
		c := &candidate{name: name, net: newCuttable(cleanhttp.DefaultPooledTransport()), done: make(chan struct{})}
		client, err := consulhttp.NewClient(consulhttp.Config{Address: agent.Addr, Transport: c.net})
		if err != nil {
			return err
		}
		c.e, err = elect.New(client, elect.Config{
			Key:       key,
			Candidate: elect.Candidate{ID: name, Name: "demo", StartedAt: time.Now()},
			TTL:       ttl,
			// The lease: after any end of a session Consul keeps the
			// key from others this long.
			LockDelay: ttl,
		})
		if err != nil {
			return err
		}
		v.follow(name, c.e.Events())
		var rctx context.Context
		rctx, c.stop = context.WithCancel(ctx)
		go func() {
			defer close(c.done)
			_ = c.e.Run(rctx)
		}()
		cands = append(cands, c)
	}
	byName := func(name string) *candidate {
		for _, c := range cands {
			if c.name == name {
				return c
			}
		}
		return nil
	}
	followTimeout := 10 * time.Second

	v.say("1. three candidates campaign for %q (TTL %v, lock-delay %v: a leader's lease is its last renew + %v)",
		key, ttl, ttl, ttl-elect.DefaultMargin)
	first, err := v.waitElected(ctx, "", time.Time{}, followTimeout)
	if err != nil {
		return err
	}
	if err := v.waitAllFollow(ctx, first.name, followTimeout); err != nil {
		return err
	}

	v.say("2. %s resigns: it releases the key (no lock-delay after a release)", first.name)
	t0 := time.Now()
	if err := byName(first.name).e.Resign(ctx); err != nil {
		return fmt.Errorf("resign: %w", err)
	}
	second, err := v.waitElected(ctx, first.name, t0, followTimeout)
	if err != nil {
		return err
	}
	handover := second.at.Sub(t0)
	v.say("   -> graceful handover: %s leads %v after %s resigned", second.name, handover.Round(time.Microsecond), first.name)
	if err := v.waitAllFollow(ctx, second.name, followTimeout); err != nil {
		return err
	}

	v.say("3. %s is cut off from Consul: its requests fail, it can't renew and releases nothing", second.name)
	t0 = time.Now()
	byName(second.name).net.Cut()
	bound := 2*ttl + ttl + 5*time.Second // expiry, then lock-delay
	third, err := v.waitElected(ctx, second.name, t0, bound)
	if err != nil {
		return err
	}
	var down demoEvent
	if err := v.until(ctx, followTimeout, second.name+" stepping down", func() bool {
		var ok bool
		down, ok = v.steppedDown(second.name, t0)
		return ok
	}); err != nil {
		return err
	}
	if down.at.After(third.at) {
		return fmt.Errorf("%s was elected while %s had not stepped down: two leaders", third.name, second.name)
	}
	v.say("   -> %s stopped acting as leader %v after the cut (reason %s): its local lease ran out",
		second.name, down.at.Sub(t0).Round(time.Millisecond), down.ev.Reason)
	v.say("   -> %s took over %v after the cut, once Consul expired the session (TTL %v; Consul waits up to 2×TTL) and the lock-delay passed",
		third.name, third.at.Sub(t0).Round(time.Millisecond), ttl)
	v.say("   -> never two leaders: %s had stopped %v before %s was elected",
		second.name, third.at.Sub(down.at).Round(time.Millisecond), third.name)

	v.say("\nmeasured: graceful handover %v, failover after a cut-off leader %v",
		handover.Round(time.Microsecond), third.at.Sub(t0).Round(time.Millisecond))
	v.say("stopping the candidates (each releases the key and destroys its session)")
	return nil
}

// cuttable is a RoundTripper whose network can be cut: after Cut every
// request fails at once and requests in flight (a blocking watch) are
// aborted, like a leader whose host lost the network.
type cuttable struct {
	rt     http.RoundTripper
	cut    atomic.Bool
	cutCtx context.Context
	doCut  context.CancelFunc
}

func newCuttable(rt http.RoundTripper) *cuttable {
	ctx, cancel := context.WithCancel(context.Background())
	return &cuttable{rt: rt, cutCtx: ctx, doCut: cancel}
}

func (c *cuttable) Cut() { c.cut.Store(true); c.doCut() }

var errNetworkCut = errors.New("network cut (demo)")

func (c *cuttable) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.cut.Load() {
		return nil, errNetworkCut
	}
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(c.cutCtx, cancel)
	resp, err := c.rt.RoundTrip(r.WithContext(ctx))
	if err != nil {
		stop()
		cancel()
		if c.cut.Load() {
			return nil, errNetworkCut
		}
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, done: func() { stop(); cancel() }}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}
