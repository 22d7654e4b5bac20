package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/leaderd/leaderd/elect"
)

// status serves what this instance knows about the election over HTTP:
//
//	GET /v1/leader  200 + JSON while this instance leads, 503 otherwise, so
//	                a Consul or Nomad check on it makes only the leader healthy
//	GET /v1/health  200 while the agent works as it should; 503 when it
//	                believes it leads but its lease is overdue, or when the
//	                election stopped for good
//	GET /v1/status  JSON snapshot: role, leader, token, session, key, lease
//	GET /metrics    Prometheus text exposition
//
// Nothing here is secret: no ACL token is known to this layer.
type status struct {
	id      string
	service string
	state   func() elect.State
	metrics *metrics
	now     func() time.Time
	failed  atomic.Bool // Run returned: nothing renews or campaigns any more
	listen  string      // the status server's bound address, set before it serves

	slots *elect.Slots // -n N: the holders, in /v1/status and /metrics
}

func (s *status) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/leader", s.leader)
	mux.HandleFunc("GET /v1/health", s.health)
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /metrics", s.metricsHandler)
	return mux
}

// leaderView is the JSON of a leader in /v1/leader and /v1/status.
type leaderView struct {
	ID      string    `json:"id"`
	Name    string    `json:"name,omitempty"`
	Address string    `json:"address,omitempty"`
	AllocID string    `json:"alloc_id,omitempty"`
	Node    string    `json:"node,omitempty"`
	Session string    `json:"session,omitempty"`
	Token   uint64    `json:"token"`
	Since   time.Time `json:"since,omitzero"`
}

func viewOf(l *elect.Leader) *leaderView {
	if l == nil {
		return nil
	}
	return &leaderView{
		ID: l.ID, Name: l.Name, Address: l.Address, AllocID: l.AllocID, Node: l.Node,
		Session: l.Session, Token: l.Token, Since: l.Since,
	}
}

// leading is true only while the local lease is valid: elect steps down at
// lease end, but a snapshot taken in between must not claim leadership.
func leading(st elect.State, now time.Time) bool {
	return st.Leading && (st.LeaseEnd.IsZero() || now.Before(st.LeaseEnd))
}

func (s *status) leader(w http.ResponseWriter, r *http.Request) {
	st := s.state()
	if !leading(st, s.now()) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"leading": false, "leader": viewOf(st.Leader)})
		return
	}
	v := viewOf(st.Leader)
	if v == nil || v.ID != s.id {
		v = &leaderView{ID: s.id, Name: s.service}
	}
	v.Token, v.Session = st.Token, st.Session
	writeJSON(w, http.StatusOK, map[string]any{"leading": true, "key": st.Key, "leader": v})
}

func (s *status) health(w http.ResponseWriter, r *http.Request) {
	st := s.state()
	code, msg := http.StatusOK, "ok"
	switch {
	case s.failed.Load():
		code, msg = http.StatusServiceUnavailable, "election stopped"
	case st.Leading && !st.LeaseEnd.IsZero() && !s.now().Before(st.LeaseEnd):
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
	Leader          *leaderView `json:"leader"`
	Token           uint64      `json:"token"` // ours while leading, else 0
	Session         string      `json:"session,omitempty"`
	LeaseRemaining  float64     `json:"lease_remaining"`
	LastRenew       time.Time   `json:"last_renew,omitzero"`
	ConsulReachable bool        `json:"consul_reachable"`
	LastError       string      `json:"last_error,omitempty"`
	Listen          string      `json:"listen,omitempty"` // where this server listens (a default may fall back to a free port)
	Slots           *slotsView  `json:"slots,omitempty"`  // -n N
}

func (s *status) status(w http.ResponseWriter, r *http.Request) {
	st, now := s.state(), s.now()
	v := statusView{
		ID: s.id, Service: s.service, Key: st.Key, Role: "follower",
		Leader: viewOf(st.Leader), Session: st.Session,
		LastRenew: st.LastRenew, ConsulReachable: st.Reachable, Listen: s.listen, Slots: slotsViewOf(s.slots),
	}
	if leading(st, now) {
		v.Role, v.Token = "leader", st.Token
		v.LeaseRemaining = leaseRemaining(st, now).Round(time.Millisecond).Seconds()
	}
	if st.LastError != nil {
		v.LastError = st.LastError.Error()
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *status) metricsHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.metrics.write(w, s.state(), s.now())
	writeSlotsMetrics(w, s.slots)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// statusServer is the HTTP server of -listen. Listening happens at start
// so a taken port is reported as bad input before any campaigning.
type statusServer struct {
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
}

func listenStatus(addr string, h http.Handler, log *slog.Logger) (*statusServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &statusServer{
		ln: ln,
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		log: log,
	}, nil
}

// Addr is the bound address (useful with port 0).
func (s *statusServer) Addr() string { return s.ln.Addr().String() }

// Serve serves until Shutdown.
func (s *statusServer) Serve() {
	s.log.Info("status server listening", "addr", s.Addr())
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("status server failed", "err", err)
	}
}

// Shutdown stops the server, waiting at most a second for open requests.
func (s *statusServer) Shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}
