// Package status serves what one leaderd instance knows about its election
// over HTTP (leader, health, status, Prometheus metrics), and counts what
// the metrics expose on the way to Consul (MeteredConsul).
//
// Whether this instance leads is elect's answer (elect.State.LeadingAt),
// never a rule of its own: a snapshot taken just before the lease ended
// must not claim leadership after it. Nothing here is secret: no ACL token
// is known to this layer.
package status

import (
	"encoding/json"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/leaderd/leaderd/elect"
)

// Handler serves what this instance knows about the election over HTTP:
//
//	GET /v1/leader  200 + JSON while this instance leads, 503 otherwise, so
//	                a Consul or Nomad check on it makes only the leader healthy
//	GET /v1/health  200 while the agent works as it should; 503 when it
//	                believes it leads but its lease is overdue, or when the
//	                election stopped for good
//	GET /v1/status  JSON snapshot: role, leader, token, session, key, lease
//	GET /metrics    Prometheus text exposition
//
// Set the fields before serving; then only SetFailed changes it.
type Handler struct {
	ID      string             // this candidate
	Service string             // its service name, may be ""
	State   func() elect.State // the election's snapshot
	Metrics *Metrics
	Now     func() time.Time // time.Now; a fixed clock in tests
	Listen  string           // the status server's bound address, for /v1/status
	Slots   *elect.Slots     // -n N: the holders, in /v1/status and /metrics; nil otherwise

	failed atomic.Bool // Run returned: nothing renews or campaigns any more
}

// SetFailed marks the election stopped for good: /v1/health fails from now on.
func (s *Handler) SetFailed() { s.failed.Store(true) }

// Routes is the handler's mux.
func (s *Handler) Routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/leader", s.leader)
	mux.HandleFunc("GET /v1/health", s.health)
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /metrics", s.metricsHandler)
	return mux
}

// LeaderView is the JSON of a leader in /v1/leader and /v1/status (and
// in leaderd leader -json).
type LeaderView struct {
	ID      string    `json:"id"`
	Name    string    `json:"name,omitempty"`
	Address string    `json:"address,omitempty"`
	AllocID string    `json:"alloc_id,omitempty"`
	Node    string    `json:"node,omitempty"`
	Session string    `json:"session,omitempty"`
	Token   uint64    `json:"token"`
	Since   time.Time `json:"since,omitzero"`
}

// ViewOf is l as JSON; nil for nobody.
func ViewOf(l *elect.Leader) *LeaderView {
	if l == nil {
		return nil
	}
	return &LeaderView{
		ID: l.ID, Name: l.Name, Address: l.Address, AllocID: l.AllocID, Node: l.Node,
		Session: l.Session, Token: l.Token, Since: l.Since,
	}
}

func (s *Handler) leader(w http.ResponseWriter, r *http.Request) {
	st := s.State()
	if !st.LeadingAt(s.Now()) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"leading": false, "leader": ViewOf(st.Leader)})
		return
	}
	v := ViewOf(st.Leader)
	if v == nil || v.ID != s.ID {
		v = &LeaderView{ID: s.ID, Name: s.Service}
	}
	v.Token, v.Session = st.Token, st.Session
	writeJSON(w, http.StatusOK, map[string]any{"leading": true, "key": st.Key, "leader": v})
}

func (s *Handler) health(w http.ResponseWriter, r *http.Request) {
	st := s.State()
	code, msg := http.StatusOK, "ok"
	switch {
	case s.failed.Load():
		code, msg = http.StatusServiceUnavailable, "election stopped"
	case st.LeaseOverdue(s.Now()):
		code, msg = http.StatusServiceUnavailable, "lease overdue"
	}
	writeJSON(w, code, map[string]any{"healthy": code == http.StatusOK, "status": msg})
}

// statusView is /v1/status. Durations are seconds; times RFC 3339.
type statusView struct {
	ID              string      `json:"id"`
	Service         string      `json:"service,omitempty"`
	Key             string      `json:"key"`
	Role            string      `json:"role"` // leader or follower
	Leader          *LeaderView `json:"leader"`
	Token           uint64      `json:"token"` // ours while leading, else 0
	Session         string      `json:"session,omitempty"`
	LeaseRemaining  float64     `json:"lease_remaining"`
	LastRenew       time.Time   `json:"last_renew,omitzero"`
	ConsulReachable bool        `json:"consul_reachable"`
	LastError       string      `json:"last_error,omitempty"`
	Listen          string      `json:"listen,omitempty"` // where this server listens (a default may fall back to a free port)
	Slots           *slotsView  `json:"slots,omitempty"`  // -n N
}

func (s *Handler) status(w http.ResponseWriter, r *http.Request) {
	st, now := s.State(), s.Now()
	v := statusView{
		ID: s.ID, Service: s.Service, Key: st.Key, Role: "follower",
		Leader: ViewOf(st.Leader), Session: st.Session,
		LastRenew: st.LastRenew, ConsulReachable: st.Reachable, Listen: s.Listen, Slots: slotsViewOf(s.Slots),
	}
	if st.LeadingAt(now) {
		v.Role, v.Token = "leader", st.Token
		v.LeaseRemaining = st.LeaseRemaining(now).Round(time.Millisecond).Seconds()
	}
	if st.LastError != nil {
		v.LastError = st.LastError.Error()
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Handler) metricsHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.Metrics.write(w, s.State(), s.Now())
	writeSlotsMetrics(w, s.Slots)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
