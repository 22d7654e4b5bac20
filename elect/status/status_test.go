package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/elect"
)

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func leaderOf(id string, token uint64) *elect.Leader {
	return &elect.Leader{
		Candidate: elect.Candidate{ID: id, Name: "web", Address: "10.0.0.1:80"},
		Session:   "sess-" + id, Token: token, Since: now.Add(-time.Minute),
	}
}

var (
	stLeading = elect.State{Key: "services/web/leader", Leading: true, Token: 42, Session: "sess-web-1",
		Leader: leaderOf("web-1", 42), LeaseEnd: now.Add(6500 * time.Millisecond), LastRenew: now.Add(-time.Second), Reachable: true}
	stOverdue  = elect.State{Key: "services/web/leader", Leading: true, Token: 42, Session: "sess-web-1", LeaseEnd: now.Add(-time.Millisecond)}
	stFollower = elect.State{Key: "services/web/leader", Session: "sess-web-1", Leader: leaderOf("web-2", 50), Reachable: true}
	stNoConsul = elect.State{Key: "services/web/leader", LastError: errors.New("consul: GET /v1/kv/services/web/leader: connection refused")}
)

func newTestStatus(st elect.State) *Handler {
	return &Handler{ID: "web-1", Service: "web", State: func() elect.State { return st }, Metrics: NewMetrics(),
		Now: func() time.Time { return now }}
}

func get(t *testing.T, s *Handler, method, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Routes().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Code, rec.Body.String()
}

func TestStatusEndpoints(t *testing.T) {
	tests := []struct {
		name     string
		st       elect.State
		failed   bool
		path     string
		wantCode int
		wantJSON string
	}{
		{"leader while leading", stLeading, false, "/v1/leader", 200,
			`{"key":"services/web/leader","leading":true,"leader":{"id":"web-1","name":"web","address":"10.0.0.1:80","session":"sess-web-1","token":42,"since":"2026-01-02T03:03:05Z"}}`},
		{"leader while following", stFollower, false, "/v1/leader", 503,
			`{"leading":false,"leader":{"id":"web-2","name":"web","address":"10.0.0.1:80","session":"sess-web-2","token":50,"since":"2026-01-02T03:03:05Z"}}`},
		{"leader with an overdue lease", stOverdue, false, "/v1/leader", 503, `{"leading":false,"leader":null}`},
		{"health while leading", stLeading, false, "/v1/health", 200, `{"healthy":true,"status":"ok"}`},
		{"health while following", stFollower, false, "/v1/health", 200, `{"healthy":true,"status":"ok"}`},
		{"health while campaigning without consul", stNoConsul, false, "/v1/health", 200, `{"healthy":true,"status":"ok"}`},
		{"health with an overdue lease", stOverdue, false, "/v1/health", 503, `{"healthy":false,"status":"lease overdue"}`},
		{"health after the election stopped", stFollower, true, "/v1/health", 503, `{"healthy":false,"status":"election stopped"}`},
		{"status while leading", stLeading, false, "/v1/status", 200,
			`{"id":"web-1","service":"web","key":"services/web/leader","role":"leader",
			  "leader":{"id":"web-1","name":"web","address":"10.0.0.1:80","session":"sess-web-1","token":42,"since":"2026-01-02T03:03:05Z"},
			  "token":42,"session":"sess-web-1","lease_remaining":6.5,"last_renew":"2026-01-02T03:04:04Z","consul_reachable":true}`},
		{"status while following", stFollower, false, "/v1/status", 200,
			`{"id":"web-1","service":"web","key":"services/web/leader","role":"follower",
			  "leader":{"id":"web-2","name":"web","address":"10.0.0.1:80","session":"sess-web-2","token":50,"since":"2026-01-02T03:03:05Z"},
			  "token":0,"session":"sess-web-1","lease_remaining":0,"consul_reachable":true}`},
		{"status without consul", stNoConsul, false, "/v1/status", 200,
			`{"id":"web-1","service":"web","key":"services/web/leader","role":"follower","leader":null,"token":0,
			  "lease_remaining":0,"consul_reachable":false,"last_error":"consul: GET /v1/kv/services/web/leader: connection refused"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStatus(tc.st)
			s.failed.Store(tc.failed)
			code, body := get(t, s, "GET", tc.path)
			if code != tc.wantCode {
				t.Errorf("code = %d, want %d", code, tc.wantCode)
			}
			var want, got any
			if err := json.Unmarshal([]byte(tc.wantJSON), &want); err != nil {
				t.Fatalf("bad test JSON: %v", err)
			}
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body is not JSON: %v\n%s", err, body)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatusMethods(t *testing.T) {
	s := newTestStatus(stLeading)
	for _, path := range []string{"/v1/leader", "/v1/health", "/v1/status", "/metrics"} {
		if code, _ := get(t, s, "POST", path); code != http.StatusMethodNotAllowed {
			t.Errorf("POST %s = %d, want 405", path, code)
		}
	}
	if code, _ := get(t, s, "GET", "/v1/nothing"); code != http.StatusNotFound {
		t.Errorf("GET /v1/nothing = %d, want 404", code)
	}
}

func TestMetricsExposition(t *testing.T) {
	s := newTestStatus(stLeading)
	m := s.Metrics
	m.Event(elect.Event{Kind: elect.KindElected})
	m.Event(elect.Event{Kind: elect.KindSteppedDown, Reason: elect.ReasonLeaseExpired})
	m.Event(elect.Event{Kind: elect.KindElected})
	m.Event(elect.Event{Kind: elect.KindLeaderChanged}) // not a transition of ours
	m.renewed(2 * time.Millisecond)
	m.renewed(40 * time.Millisecond)
	m.renewed(3 * time.Second)
	code, body := get(t, s, "GET", "/metrics")
	if code != 200 {
		t.Fatalf("code = %d", code)
	}
	want := `# HELP leaderd_is_leader 1 while this instance leads (with a valid lease, as /v1/leader), else 0.
# TYPE leaderd_is_leader gauge
leaderd_is_leader 1
# HELP leaderd_transitions_total Leadership transitions: reason="elected" when won, else why it ended.
# TYPE leaderd_transitions_total counter
leaderd_transitions_total{reason="elected"} 2
leaderd_transitions_total{reason="key_lost"} 0
leaderd_transitions_total{reason="lease_expired"} 1
leaderd_transitions_total{reason="released"} 0
leaderd_transitions_total{reason="session_invalidated"} 0
leaderd_transitions_total{reason="shutdown"} 0
# HELP leaderd_renew_latency_seconds Round-trip time of successful session renewals.
# TYPE leaderd_renew_latency_seconds histogram
leaderd_renew_latency_seconds_bucket{le="0.001"} 0
leaderd_renew_latency_seconds_bucket{le="0.0025"} 1
leaderd_renew_latency_seconds_bucket{le="0.005"} 1
leaderd_renew_latency_seconds_bucket{le="0.01"} 1
leaderd_renew_latency_seconds_bucket{le="0.025"} 1
leaderd_renew_latency_seconds_bucket{le="0.05"} 2
leaderd_renew_latency_seconds_bucket{le="0.1"} 2
leaderd_renew_latency_seconds_bucket{le="0.25"} 2
leaderd_renew_latency_seconds_bucket{le="0.5"} 2
leaderd_renew_latency_seconds_bucket{le="1"} 2
leaderd_renew_latency_seconds_bucket{le="2.5"} 2
leaderd_renew_latency_seconds_bucket{le="5"} 3
leaderd_renew_latency_seconds_bucket{le="10"} 3
leaderd_renew_latency_seconds_bucket{le="+Inf"} 3
leaderd_renew_latency_seconds_sum 3.042
leaderd_renew_latency_seconds_count 3
# HELP leaderd_consul_errors_total Failed Consul requests by HTTP status code ("none": no answer, "decode": unreadable answer).
# TYPE leaderd_consul_errors_total counter
# HELP leaderd_lease_remaining_seconds Time left on the local lease while leading, else 0.
# TYPE leaderd_lease_remaining_seconds gauge
leaderd_lease_remaining_seconds 6.5
# HELP leaderd_consul_reachable 1 if the last request to Consul got an answer.
# TYPE leaderd_consul_reachable gauge
leaderd_consul_reachable 1
# HELP leaderd_hooks_total Runs of -hook by result: ok, failed (non-zero exit), timeout (killed after -hook-timeout), dropped (never run).
# TYPE leaderd_hooks_total counter
leaderd_hooks_total{result="dropped"} 0
leaderd_hooks_total{result="failed"} 0
leaderd_hooks_total{result="ok"} 0
leaderd_hooks_total{result="timeout"} 0
`
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("exposition (-want +got):\n%s", diff)
	}
}

// fakeConsul answers every call with err; it is what MeteredConsul wraps.
type fakeConsul struct {
	elect.Consul // nil: any other call panics
	err          error
}

func (f fakeConsul) RenewSession(context.Context, string) (*consulhttp.SessionEntry, error) {
	return &consulhttp.SessionEntry{}, f.err
}

func (f fakeConsul) Acquire(context.Context, string, string, []byte) (bool, error) {
	return false, f.err
}

func TestMeteredConsulErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want map[string]uint64
	}{
		{"success", nil, map[string]uint64{}},
		{"status 500", &consulhttp.StatusError{Method: "PUT", Path: "/v1/kv/k", Code: 500, Body: "No cluster leader"}, map[string]uint64{"500": 2}},
		{"session not found", fmt.Errorf("%w (%w)", consulhttp.ErrSessionNotFound, &consulhttp.StatusError{Code: 404}), map[string]uint64{"404": 2}},
		{"acl denied", &consulhttp.StatusError{Code: 403, Body: "Permission denied"}, map[string]uint64{"403": 2}},
		{"no answer", &consulhttp.RequestError{Method: "PUT", Path: "/v1/kv/k", Err: errors.New("connection refused")}, map[string]uint64{"none": 2}},
		{"garbled answer", &consulhttp.DecodeError{Err: errors.New("bad json")}, map[string]uint64{"decode": 2}},
		{"our own cancel", context.Canceled, map[string]uint64{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMetrics()
			c := MeteredConsul{fakeConsul{err: tc.err}, m}
			_, _ = c.RenewSession(context.Background(), "s")
			_, _ = c.Acquire(context.Background(), "k", "s", nil)
			if diff := cmp.Diff(tc.want, m.errors); diff != "" {
				t.Errorf("errors by code (-want +got):\n%s", diff)
			}
			wantRenews := uint64(0)
			if tc.err == nil {
				wantRenews = 1
			}
			if m.renew.count != wantRenews {
				t.Errorf("renew observations = %d, want %d", m.renew.count, wantRenews)
			}
		})
	}
	// The exposition shows them labelled.
	m := NewMetrics()
	m.consulError(&consulhttp.StatusError{Code: 500})
	var b strings.Builder
	m.write(&b, elect.State{}, now)
	if !strings.Contains(b.String(), `leaderd_consul_errors_total{code="500"} 1`) {
		t.Errorf("exposition lacks the 500 counter:\n%s", b.String())
	}
}
