package demo

import (
	"context"
	"errors"
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
	"github.com/leaderd/leaderd/integration/devconsul"
)

// candidate is one of the demo's three elections.
type candidate struct {
	name string
	e    *elect.Election
	net  *cuttable
	stop context.CancelFunc
	done chan struct{}
}

// Run runs the demo: a throwaway Consul dev agent (devconsul), three
// candidates with TTL and lock-delay ttl, an election, a graceful handover
// and a failover after a leader is cut off, narrated on out. It stops
// everything it started before it returns, also when ctx ends (then it
// returns ctx's error). getenv reads CONSUL_BIN.
func Run(ctx context.Context, ttl time.Duration, getenv func(string) string, out io.Writer) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	bin, err := devconsul.Find(ctx, getenv, say)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "leaderd-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	agent, err := devconsul.New(devconsul.Config{
		Bin:      bin,
		NodeName: "leaderd-demo",
		Dir:      tmp,
		LogPath:  filepath.Join(tmp, "consul.log"),
		// The candidates' TTL may be below Consul's default minimum (10s).
		HCL: []string{`session_ttl_min = "1s"`},
	})
	if err != nil {
		return err
	}
	defer agent.Close()
	if err := agent.Start(ctx, say); err != nil {
		return err
	}
	defer fmt.Fprintln(out, "stopping the consul agent") // then Close stops it
	const key = "leaderd-demo/leader"
	fmt.Fprintf(out, "consul dev agent at http://%s (%s)\n\n", agent.Addr, bin)

	v := newView(out)
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
	var down event
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
