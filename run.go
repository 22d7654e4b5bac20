package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/elect"
	"github.com/leaderd/leaderd/elect/child"
	"github.com/leaderd/leaderd/elect/hooks"
	"github.com/leaderd/leaderd/elect/status"
	"github.com/leaderd/leaderd/nomad"
)

// runCommand is `leaderd run` in the command table.
func runCommand(fs *flagSet) action {
	var cfg runConfig
	cf := declareRunFlags(fs, &cfg)
	return func(ctx context.Context, argv []string, in invocation) int {
		if err := cfg.finish(argv, fs, cf, in.getenv); err != nil {
			return exitFor(in.stderr, "run", err)
		}
		return lead(ctx, cfg, fs, in.getenv, in.stdout, in.stderr)
	}
}

// lead is `leaderd run` once configured: wiring only. Data flows one way:
// the election's hooks drive the child supervisor (synchronously, so the
// child is dead before leadership is given up), its events feed metrics
// and publishers, and the status server reads snapshots.
func lead(ctx context.Context, cfg runConfig, fs *flagSet, getenv func(string) string, stdout, stderr io.Writer) int {
	log := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)

	client, err := consulhttp.NewClient(cfg.Consul)
	if err != nil {
		return exitFor(stderr, "run", usagef("consul settings: %s", oneLine(err)))
	}
	m := status.NewMetrics()
	var sup *child.Supervisor
	if len(cfg.Command) > 0 {
		if sup, err = newSupervisor(cfg, log); err != nil {
			return exitFor(stderr, "run", err)
		}
		defer sup.Close()
	}
	wedge := child.NewWedge(getenv, log)
	startedAt := time.Now()
	// The publishers are built once the status server listens; the
	// step-down hook reads them then.
	var pubs []nomad.Publisher
	var e campaign
	var slots *elect.Slots
	ecfg := cfg.electConfig(startedAt)
	ecfg.Logger = log
	var deadline campaignDeadline // -timeout against the first win
	ecfg.OnElected = func(t elect.Term) {
		if !deadline.elected() {
			return // gave up just before: no work starts, the key goes back at once
		}
		if sup != nil {
			sup.Start(t)
		}
	}
	ecfg.OnStepDown = func(elect.Term, elect.Reason) {
		// Stop claiming before the child stops: publishers flip to
		// follower now, not after the key is released.
		publishFollower(pubs, cfg, e)
		if sup != nil {
			sup.Stop()
		}
	}
	ecfg.OnLease = func(t elect.Term, end time.Time) {
		wedge.OnLease()
		if sup != nil {
			sup.Extend(t.Token, end)
		}
	}
	e, slots, err = newCampaign(status.MeteredConsul{Consul: client, Metrics: m}, cfg.Slots, ecfg)
	if err != nil {
		return exitFor(stderr, "run", usagef("%s", oneLine(err)))
	}

	st := &status.Handler{ID: cfg.ID, Service: cfg.Service, State: e.State, Metrics: m, Now: time.Now, Slots: slots}
	var srv *status.Server
	if cfg.Listen != "" {
		srv, err = status.Listen(cfg.Listen, cfg.ListenNamed, st.Routes(), log)
		if err != nil {
			return exitFor(stderr, "run", usagef("invalid %s %q: %v", fs.name("listen"), cfg.Listen, err))
		}
		st.Listen = srv.Addr()
		go srv.Serve()
		defer srv.Shutdown()
	}
	pubs, err = newPublishers(cfg, client, srv, getenv, log)
	if err != nil {
		return exitFor(stderr, "run", err)
	}

	log.Info("starting", "key", cfg.Key, "id", cfg.ID, "consul", client.Address(), "ttl", cfg.TTL,
		"lock_delay", cfg.LockDelay, "check_ttl", cfg.CheckTTL, "command", len(cfg.Command) > 0)
	warnShortTimeout(cfg, log)

	// Signals: SIGHUP is forwarded; SIGINT/SIGTERM stop the child with the
	// same signal, then the election (release, destroy). The election runs
	// on its own context so the child's stop signal is set before the
	// step-down begins.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	electCtx, cancelElect := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelElect()

	events := e.Events()
	denied := make(chan error, 1)
	pubCtx, stopPubs := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, p := range pubs {
		p.Publish(nomad.Status{Role: nomad.RoleCandidate, ID: cfg.ID, Address: cfg.Address, Since: startedAt})
		wg.Go(func() {
			if err := p.Run(pubCtx); err != nil {
				if consulhttp.IsPermissionDenied(err) {
					select {
					case denied <- err: // stops the run with exit 1
					default:
					}
					return
				}
				log.Error("publisher stopped", "err", err)
			}
		})
	}
	hr := hooks.New(hooks.Config{
		Line: cfg.Hook, Timeout: cfg.HookTimeout, Key: cfg.Key, ID: cfg.ID,
		Env: os.Environ(), Pass: cfg.PassEnv, Stdout: stdout, Stderr: stderr, Logger: log, Count: m.HookRan,
	})
	wg.Go(func() { fanOut(events, m, pubs, cfg, e.State, denied, hr) })
	timeout, stopTimeout := timeoutTimer(cfg.Timeout)
	defer stopTimeout()

	runErr := make(chan error, 1)
	go func() { runErr <- e.Run(electCtx) }()

	code, stopping := exitOK, false
	var deniedErr error
	stop := func(sig syscall.Signal) {
		if sup != nil {
			sup.SetStopSignal(sig)
		}
		stopping = true
		cancelElect()
	}
	var childExits <-chan child.Exit
	if sup != nil {
		childExits = sup.Exits()
	}
	done := ctx.Done()
	sawSignal := false // a SIGINT/SIGTERM was taken from sigs
	for {
		select {
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP:
				if sup != nil {
					sup.Signal(syscall.SIGHUP)
				}
			case stopping && !sawSignal:
				// The stop began on main's context, which saw this same
				// signal first (both are notified of every signal): it is
				// not a second one.
				sawSignal = true
			case stopping:
				// A second SIGINT/SIGTERM: don't wait out -kill-timeout.
				log.Warn("second signal; killing child", "signal", child.SignalName(sig))
				if sup != nil {
					sup.Signal(syscall.SIGKILL)
				}
			default:
				sawSignal = true
				log.Info("stopping", "signal", child.SignalName(sig))
				stop(sig.(syscall.Signal))
			}
		case <-done:
			done = nil
			if !stopping {
				// main's NotifyContext may win the race for the signal;
				// forward the one that arrived if we can see it.
				sig := syscall.SIGTERM
				select {
				case s := <-sigs:
					if s != syscall.SIGHUP {
						sig, sawSignal = s.(syscall.Signal), true
					}
				default:
				}
				log.Info("stopping", "signal", child.SignalName(sig))
				stop(sig)
			}
		case ex := <-childExits:
			if stopping {
				continue
			}
			if ex.LeaseEnded {
				// The keeper ended the child at its lease end. The election
				// steps down at that end too, unless a later one was on its
				// way to the keeper: then end the term here.
				log.Warn("child stopped at its lease end; ending its term", "token", ex.Token)
				go resign(electCtx, e, ex.Token, log)
				continue
			}
			if cfg.Restart {
				log.Info("child exited; resigning and campaigning again", "code", ex.Code, "token", ex.Token)
				go resign(electCtx, e, ex.Token, log)
				continue
			}
			log.Info("child exited; releasing leadership and exiting with its code", "code", ex.Code, "token", ex.Token)
			code = ex.Code
			stop(syscall.SIGTERM)
		case <-timeout:
			timeout = nil
			if !stopping && deadline.giveUp() {
				log.Warn("not leading within -timeout; giving up", "timeout", cfg.Timeout)
				code = exitTimeout
				stop(syscall.SIGTERM)
			}
		case err := <-denied:
			// Consul refused the token: no retry can fix a missing
			// permission. Stop cleanly and say which one.
			if !stopping {
				log.Error("consul denied a request; stopping", "err", err)
				deniedErr = err
				stop(syscall.SIGTERM)
			}
		case err := <-runErr:
			st.SetFailed()
			stopPubs()
			wg.Wait()
			// Queued hooks still run (a stepped_down must still move a VIP
			// away), within one -hook-timeout.
			hr.Close(hr.Timeout())
			if err == nil {
				err = deniedErr
			}
			if err != nil {
				log.Error("election failed", "err", err)
				return exitFor(stderr, "run", err)
			}
			log.Info("stopped", "code", code)
			return code
		}
	}
}

// resign gives up the term whose child exited by itself, not a later
// term (the exit may be seen late); the election keeps campaigning and
// the next term starts a new child.
func resign(ctx context.Context, e campaign, token uint64, log *slog.Logger) {
	if err := e.ResignTerm(ctx, token); err != nil && !errors.Is(err, elect.ErrNotLeader) && ctx.Err() == nil {
		log.Warn("resign failed", "err", err)
	}
}

// fanOut turns the ordered event stream into metrics and publisher
// statuses, and reports the first ACL denial on denied. It ends when Run
// returns (the channel closes).
func fanOut(events <-chan elect.Event, m *status.Metrics, pubs []nomad.Publisher, cfg runConfig, state func() elect.State, denied chan<- error, hr *hooks.Runner) {
	for ev := range events {
		m.Event(ev)
		hr.Event(ev)
		if ev.Kind == elect.KindError && consulhttp.IsPermissionDenied(ev.Err) {
			select {
			case denied <- ev.Err:
			default:
			}
		}
		if len(pubs) == 0 {
			continue
		}
		s := nomad.Status{ID: cfg.ID, Address: cfg.Address, Since: ev.At, Role: nomad.RoleFollower, Session: state().Session}
		switch ev.Kind {
		case elect.KindElected:
			s.Role, s.Token, s.LeaderID = nomad.RoleLeader, ev.Token, cfg.ID
		case elect.KindLeaderChanged:
			if ev.Leader != nil {
				s.Token, s.LeaderID = ev.Leader.Token, ev.Leader.ID
			}
		case elect.KindSteppedDown:
		default:
			continue
		}
		for _, p := range pubs {
			p.Publish(s)
		}
	}
}

// publishFollower tells every publisher this instance no longer leads.
// It runs in elect's OnStepDown, before the child is stopped and the key
// released; Publish only stores the latest state, so it never blocks.
func publishFollower(pubs []nomad.Publisher, cfg runConfig, e campaign) {
	s := nomad.Status{ID: cfg.ID, Address: cfg.Address, Since: time.Now(), Role: nomad.RoleFollower, Session: e.State().Session}
	for _, p := range pubs {
		p.Publish(s)
	}
}

// newPublishers builds the -publish publishers (package nomad). Problems
// are bad input, named by the flags that cause them.
func newPublishers(cfg runConfig, client *consulhttp.Client, srv *status.Server, getenv func(string) string, log *slog.Logger) ([]nomad.Publisher, error) {
	pc := nomad.PublishersConfig{
		Names: cfg.Publish, ID: cfg.ID, Service: cfg.Service, Address: cfg.Address, Tags: cfg.Tags,
		Agent: client, Getenv: getenv, Logger: log,
	}
	if srv != nil {
		pc.HealthAddr = srv.Addr()
	}
	pubs, err := nomad.NewPublishers(pc)
	if err == nil {
		return pubs, nil
	}
	var pe *nomad.PublisherError
	if !errors.As(err, &pe) {
		return nil, usagef("-publish: %s", oneLine(err))
	}
	msg := oneLine(pe.Err)
	var ae *nomad.AddressError
	switch {
	case errors.Is(pe.Err, nomad.ErrNoService):
		msg = "needs -service (the Consul service name)"
	case errors.Is(pe.Err, nomad.ErrNoHealthAddr):
		msg = "needs -listen: Consul checks the status server's /v1/health"
	case errors.As(pe.Err, &ae):
		msg = fmt.Sprintf("-address %q: %s", ae.Address, ae.Msg)
	}
	return nil, usagef("-publish %s: %s", pe.Name, msg)
}
