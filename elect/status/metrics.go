package status

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/elect"
	"github.com/leaderd/leaderd/elect/hooks"
)

// Metrics counts what /metrics exposes. The Prometheus text format is
// simple enough to write by hand, which keeps the dependency list short.
type Metrics struct {
	mu          sync.Mutex
	transitions map[string]uint64 // "elected" or an elect.Reason
	errors      map[string]uint64 // HTTP status code, or "none" / "decode"
	hooks       map[string]uint64 // -hook runs by result (package hooks)
	renew       histogram
}

// renewBuckets are upper bounds in seconds: a healthy renew takes a few ms
// on a LAN; seconds mean the lease is at risk.
var renewBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// transitionReasons are always exported, at 0 until they happen, so an
// alert on a rate needs no "absent" special case.
var transitionReasons = []string{
	"elected",
	string(elect.ReasonReleased),
	string(elect.ReasonLeaseExpired),
	string(elect.ReasonSessionInvalidated),
	string(elect.ReasonKeyLost),
	string(elect.ReasonShutdown),
}

// NewMetrics starts every counter at 0.
func NewMetrics() *Metrics {
	m := &Metrics{
		transitions: map[string]uint64{},
		errors:      map[string]uint64{},
		hooks:       map[string]uint64{},
		renew:       histogram{bounds: renewBuckets, counts: make([]uint64, len(renewBuckets))},
	}
	for _, r := range transitionReasons {
		m.transitions[r] = 0
	}
	for _, r := range hooks.Results {
		m.hooks[r] = 0
	}
	return m
}

// histogram is a Prometheus histogram: counts[i] are observations ≤ bounds[i]
// (cumulated when written).
type histogram struct {
	bounds []float64
	counts []uint64
	count  uint64
	sum    float64
}

func (h *histogram) observe(v float64) {
	if i, _ := slices.BinarySearch(h.bounds, v); i < len(h.bounds) {
		h.counts[i]++
	}
	h.count++
	h.sum += v
}

// Event records a transition; other events are not counted.
func (m *Metrics) Event(ev elect.Event) {
	var reason string
	switch ev.Kind {
	case elect.KindElected:
		reason = "elected"
	case elect.KindSteppedDown:
		reason = string(ev.Reason)
	default:
		return
	}
	m.mu.Lock()
	m.transitions[reason]++
	m.mu.Unlock()
}

// consulError counts a failed Consul request. The caller's own
// cancellation (shutdown, a step-down ending a watch) is not a failure.
func (m *Metrics) consulError(err error) {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return
	}
	code := "none"
	var se *consulhttp.StatusError
	var de *consulhttp.DecodeError
	switch {
	case errors.As(err, &se):
		code = strconv.Itoa(se.Code)
	case errors.As(err, &de):
		code = "decode"
	}
	m.mu.Lock()
	m.errors[code]++
	m.mu.Unlock()
}

// HookRan counts a -hook run (or drop) by its result: hooks.Config.Count.
func (m *Metrics) HookRan(result string) {
	m.mu.Lock()
	m.hooks[result]++
	m.mu.Unlock()
}

func (m *Metrics) renewed(d time.Duration) {
	m.mu.Lock()
	m.renew.observe(d.Seconds())
	m.mu.Unlock()
}

// write writes the exposition for state st at time now.
func (m *Metrics) write(w io.Writer, st elect.State, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	gauge := func(name, help string, v float64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %s\n", name, help, name, name, formatFloat(v))
	}
	counter := func(name, help, label string, vals map[string]uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
		keys := make([]string, 0, len(vals))
		for k := range vals {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "%s{%s=%q} %d\n", name, label, k, vals[k])
		}
	}

	gauge("leaderd_is_leader", "1 while this instance leads (with a valid lease, as /v1/leader), else 0.", boolFloat(st.LeadingAt(now)))
	counter("leaderd_transitions_total", `Leadership transitions: reason="elected" when won, else why it ended.`, "reason", m.transitions)

	const h = "leaderd_renew_latency_seconds"
	fmt.Fprintf(w, "# HELP %s Round-trip time of successful session renewals.\n# TYPE %s histogram\n", h, h)
	var cum uint64
	for i, b := range m.renew.bounds {
		cum += m.renew.counts[i]
		fmt.Fprintf(w, "%s_bucket{le=%q} %d\n", h, formatFloat(b), cum)
	}
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %s\n%s_count %d\n", h, m.renew.count, h, formatFloat(m.renew.sum), h, m.renew.count)

	counter("leaderd_consul_errors_total", `Failed Consul requests by HTTP status code ("none": no answer, "decode": unreadable answer).`, "code", m.errors)
	gauge("leaderd_lease_remaining_seconds", "Time left on the local lease while leading, else 0.", st.LeaseRemaining(now).Seconds())
	gauge("leaderd_consul_reachable", "1 if the last request to Consul got an answer.", boolFloat(st.Reachable))
	counter("leaderd_hooks_total", `Runs of -hook by result: ok, failed (non-zero exit), timeout (killed after -hook-timeout), dropped (never run).`, "result", m.hooks)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func formatFloat(v float64) string {
	if math.IsInf(v, +1) {
		return "+Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// MeteredConsul counts errors and times renewals on the way to Consul.
type MeteredConsul struct {
	elect.Consul
	Metrics *Metrics
}

var _ elect.Consul = MeteredConsul{}

func (c MeteredConsul) CreateSession(ctx context.Context, r consulhttp.SessionRequest) (string, error) {
	id, err := c.Consul.CreateSession(ctx, r)
	c.Metrics.consulError(err)
	return id, err
}

func (c MeteredConsul) RenewSession(ctx context.Context, id string) (*consulhttp.SessionEntry, error) {
	start := time.Now()
	s, err := c.Consul.RenewSession(ctx, id)
	if err == nil {
		c.Metrics.renewed(time.Since(start))
	}
	c.Metrics.consulError(err)
	return s, err
}

func (c MeteredConsul) DestroySession(ctx context.Context, id string) error {
	err := c.Consul.DestroySession(ctx, id)
	c.Metrics.consulError(err)
	return err
}

func (c MeteredConsul) GetKV(ctx context.Context, key string, q consulhttp.QueryOptions) (*consulhttp.KVPair, consulhttp.QueryMeta, error) {
	p, meta, err := c.Consul.GetKV(ctx, key, q)
	c.Metrics.consulError(err)
	return p, meta, err
}

func (c MeteredConsul) Acquire(ctx context.Context, key, session string, value []byte) (bool, error) {
	ok, err := c.Consul.Acquire(ctx, key, session, value)
	c.Metrics.consulError(err)
	return ok, err
}

func (c MeteredConsul) Release(ctx context.Context, key, session string, value []byte) (bool, error) {
	ok, err := c.Consul.Release(ctx, key, session, value)
	c.Metrics.consulError(err)
	return ok, err
}

func (c MeteredConsul) RegisterCheck(ctx context.Context, chk consulhttp.AgentCheck) error {
	err := c.Consul.RegisterCheck(ctx, chk)
	c.Metrics.consulError(err)
	return err
}

func (c MeteredConsul) DeregisterCheck(ctx context.Context, id string) error {
	err := c.Consul.DeregisterCheck(ctx, id)
	c.Metrics.consulError(err)
	return err
}

func (c MeteredConsul) UpdateTTL(ctx context.Context, checkID, status, output string) error {
	err := c.Consul.UpdateTTL(ctx, checkID, status, output)
	c.Metrics.consulError(err)
	return err
}
