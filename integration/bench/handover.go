package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// Flavors the experiments run. Window and Cycle follow from the flags:
// a SIGKILLed leaderd stops passing its TTL check, the agent turns it
// critical check-ttl after the last pass, that invalidates the session,
// and Consul keeps the key from everyone for lock-delay more. Without a
// check (consul lock, -check-ttl 0) the session ends by its TTL, which
// Consul runs 2×TTL from the last renew it processed.
var (
	// leaderdDefaults is `leaderd run` with no timing flags: -ttl 10s
	// -lock-delay 10s -check-ttl 3s -kill-timeout 2s. The session is bound
	// to serfHealth and a 3 s TTL check every candidate passes every 1 s;
	// the leader renews every min(ttl/3, (lock-delay − margin)/3) = 2.5 s
	// (margin = kill-timeout + 500ms = 2.5 s), a follower every
	// max(2.5 s, ttl/2) = 5 s.
	leaderdDefaults = flavor{Name: "leaderd defaults", Slug: "leaderd", Tool: toolLeaderd,
		Cycle: time.Second, CycleKind: kindCheck, Window: 3*time.Second + 10*time.Second}
	// leaderdFast is the fast settings: a 1 s check passed every 333 ms,
	// lock-delay 2 s, a 500 ms kill timeout (margin 1 s, so the leader
	// renews every (2 s − 1 s)/3 = 333 ms).
	leaderdFast = flavor{Name: "leaderd fast settings", Slug: "leaderdfast", Tool: toolLeaderd,
		Args:  []string{"-check-ttl", "1s", "-lock-delay", "2s", "-kill-timeout", "500ms"},
		Cycle: time.Second / 3, CycleKind: kindCheck, Window: time.Second + 2*time.Second}
	// leaderdMatched runs consul lock's session (api.Lock: TTL 15s,
	// lock-delay 15s, bound to serfHealth only: -check-ttl 0) and renews
	// as seldom as leaderd allows with it: lock-delay 15 s − margin 2.5 s
	// must hold two renew intervals, so 6 s (consul lock's 7.5 s is
	// refused); a follower renews every ttl/2 = 7.5 s, as consul lock does.
	// It separates what the protocol costs from what leaderd's defaults
	// cost, in crash failover and in idle requests alike.
	leaderdMatched = flavor{Name: "leaderd with consul lock's session settings", Slug: "leaderd15s", Tool: toolLeaderd,
		Args:  []string{"-ttl", "15s", "-lock-delay", "15s", "-renew-interval", "6s", "-check-ttl", "0"},
		Cycle: 6 * time.Second, CycleKind: kindRenew, Window: 2*15*time.Second + 15*time.Second}
	consulLockDefaults = flavor{Name: "consul lock defaults", Slug: "consullock", Tool: toolConsulLock,
		Cycle: 15 * time.Second / 2, CycleKind: kindRenew, Window: 2*15*time.Second + 15*time.Second} // api.Lock: TTL 15s, renewed every TTL/2, lock-delay 15s
)

// handovers measures n graceful handovers for each flavor, 3 candidates
// each: the leader's child exits by itself, or the leader gets SIGTERM.
// The series run in lockstep, one handover of each in turn, so a burst of
// load from elsewhere on the machine hits both tools alike.
func (b *bench) handovers(ctx context.Context, flavors []flavor, mode string, n int) ([]HandoverSeries, error) {
	suffix := map[string]string{modeChildExit: "exit", modeSIGTERM: "term"}[mode]
	var all []*series
	defer func() {
		for _, s := range all {
			s.stop()
		}
	}()
	res := make([]HandoverSeries, len(flavors))
	for i, f := range flavors {
		s, err := b.newSeries("handover-"+f.Slug+"-"+suffix, f, 3)
		if err != nil {
			return nil, err
		}
		all = append(all, s)
		if _, err := s.fill(); err != nil {
			return nil, err
		}
		res[i] = HandoverSeries{Tool: f.Tool, Mode: mode, RequestKinds: map[string]int{}}
	}
	for _, s := range all {
		if err := s.awaitReadyWithin(ctx, 60*time.Second); err != nil {
			return nil, err
		}
	}
	for range n {
		for i, s := range all {
			h, err := s.handover(ctx, mode, 30*time.Second)
			if err != nil {
				return nil, err
			}
			r := &res[i]
			r.Latencies = append(r.Latencies, h.latency)
			r.AcquireMs = append(r.AcquireMs, h.acquire)
			r.ReleaseMs = append(r.ReleaseMs, h.release)
			r.HerdMs = append(r.HerdMs, h.herd)
			r.ReadBackMs = append(r.ReadBackMs, h.readBack)
			r.ToReadMs = append(r.ToReadMs, h.toRead)
			r.FromReadMs = append(r.FromReadMs, h.fromRead)
			r.SeenMs = append(r.SeenMs, h.seen)
			r.ListMs = append(r.ListMs, h.list)
			if h.handed {
				r.HandedOver++
			}
			r.Requests = append(r.Requests, h.requests)
			r.RestartRequests = append(r.RestartRequests, h.restart)
			addDelta(r.RequestKinds, nil, h.kinds)
			if h.killed {
				r.ChildKilled++
			}
		}
	}
	return res, nil
}

// handoverSample is one measured handover.
type handoverSample struct {
	latency  float64        // ms, old child's exit to new child's start
	acquire  float64        // ms, old child's exit to the winner's acquire answer (or the old leader's handover's)
	release  float64        // ms, old child's exit to the old leader's release (or handover) sent (-1: none seen)
	herd     float64        // ms, old child's exit to the last acquire answered (anyone's)
	readBack float64        // ms, the winner's first non-blocking read after its acquire (-1: none)
	toRead   float64        // ms, the winner's acquire answer to that read's sending (-1: none)
	fromRead float64        // ms, that read's answer to the new child's start (-1: none)
	handed   bool           // the key moved to the winner by the old leader's handover transaction
	list     float64        // ms, the old leader's list of the registry before its handover (-1: none)
	seen     float64        // ms, old child's exit to the winner's blocking read answered, when a handover moved the key to it (-1: not so)
	requests int            // by the candidates running at the start, renews left out
	kinds    map[string]int // the same, by kind
	restart  int            // by the replacement process, if one was started
	killed   bool           // the old child was SIGKILLed, not stopped
}

// handover makes the leader hand over (mode) and measures it, then refills
// the series and waits until it has settled again.
func (s *series) handover(ctx context.Context, mode string, timeout time.Duration) (handoverSample, error) {
	b := s.b
	old, leader, ok := s.leader()
	if !ok {
		// The leader lost its term since the series settled (a loaded
		// machine: its session expired): wait for the next one, once.
		b.log.Warn("no leader before a handover; waiting for one", "series", s.name)
		if err := s.awaitReadyWithin(ctx, timeout); err != nil {
			return handoverSample{}, err
		}
		if old, leader, ok = s.leader(); !ok {
			return handoverSample{}, fmt.Errorf("%s: no leader", s.name)
		}
	}
	before := s.live()
	reqBefore := requests(before)
	mark := b.hub.mark()
	var err error
	if mode == modeChildExit {
		err = syscall.Kill(old.PID, syscall.SIGUSR1)
	} else {
		err = leader.cmd.Process.Signal(syscall.SIGTERM)
	}
	if err != nil {
		return handoverSample{}, fmt.Errorf("%s: signal the leader: %w", s.name, err)
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	exit, err := b.awaitEnd(hctx, mark, old)
	var next childEvent
	if err == nil {
		next, err = b.hub.wait(hctx, mark, "the new child's start", func(ev childEvent) bool {
			return ev.Kind == "start" && strings.HasPrefix(ev.Label, s.name+"#") && ev.Label != old.Label
		})
	}
	// consul lock exits with its child; a SIGTERMed leader exits too.
	if err == nil && (mode == modeSIGTERM || s.f.Tool == toolConsulLock) {
		err = waitCtx(hctx, leader.done)
	}
	if err != nil {
		return handoverSample{}, fmt.Errorf("%s handover: %w (logs: %s)", s.name, err, s.out.Name())
	}
	fresh, err := s.fill()
	if err != nil {
		return handoverSample{}, err
	}
	if err := s.awaitReady(hctx); err != nil {
		return handoverSample{}, err
	}
	h := handoverSample{latency: ms(next.At.Sub(exit.At)), release: -1, readBack: -1, toRead: -1, fromRead: -1, seen: -1, list: -1, kinds: map[string]int{},
		killed: exit.Kind == "gone", restart: total(requests(fresh))}
	if rel := leader.port.lastRelease(); !rel.Before(exit.At) {
		h.release = ms(rel.Sub(exit.At))
		// leaderd picks the successor from a read of the registry first.
		if sent, end := leader.port.last(kindList); !sent.Before(exit.At) && !end.IsZero() && !end.After(rel) {
			h.list = ms(end.Sub(sent))
		}
	}
	if w := s.byLabel(next.Label); w != nil {
		// The key moved to the winner by its own acquire or, with
		// leaderd's handover, by the old leader's transaction.
		acq := w.port.lastAcquire()
		if ho := leader.port.lastHandover(); ho.After(exit.At) && !acq.After(exit.At) {
			acq, h.handed = ho, true
		}
		h.acquire = ms(acq.Sub(exit.At))
		if start, end := w.port.lastRead(); !start.Before(acq) && !end.IsZero() {
			h.readBack = ms(end.Sub(start))
			h.toRead, h.fromRead = ms(start.Sub(acq)), ms(next.At.Sub(end))
		}
		// A key handed over by the old leader's transaction reaches the
		// winner through its blocking read, which the transaction answers.
		if end := w.port.watchAnsweredAfter(acq); !acq.Equal(w.port.lastAcquire()) && !end.IsZero() && !end.After(next.At) {
			h.seen = ms(end.Sub(exit.At))
		}
	}
	for _, c := range before {
		if t := c.port.lastAcquire(); t.After(exit.At) {
			h.herd = max(h.herd, ms(t.Sub(exit.At)))
		}
	}
	after := requests(before)
	h.requests = total(after) - total(reqBefore)
	addDelta(h.kinds, reqBefore, after)
	return h, nil
}

func (s *series) awaitReadyWithin(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return s.awaitReady(ctx)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
