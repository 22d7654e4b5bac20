package elect_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/elect"
)

// hostileServer is an HTTP handler that answers like Consul (one session,
// one key, blocking reads) except where a test scripts it to lie. It counts
// requests per operation and closes over when a test's budget is spent, so
// a hot loop fails the test at once instead of after the window.
//
// A real *consulhttp.Client reaches it through handlerTransport, in
// process: the lies (truncated bodies, redirects, slow and endless streams,
// mistyped JSON) reach the election through the client's whole decoding
// and error path, and the tests run in synctest bubbles, so a window of
// seconds takes no real time.
type hostileServer struct {
	t         *testing.T
	addr      string           // host:port the client is given
	transport handlerTransport // serves addr; a test may add other hosts
	key       string
	limit     int // requests allowed before over closes

	// Scripted answers; nil means "like Consul". n counts that operation's
	// requests so far, from 1.
	create, renew, get, acquire func(w http.ResponseWriter, r *http.Request, n int)

	mu      sync.Mutex
	counts  map[string]int
	total   int
	holder  string // session holding the key
	index   uint64
	changed chan struct{} // closed and replaced when the key changes
	over    chan struct{}
	tokens  []string // X-Consul-Token of every request
}

// sessionID is the ID of the n-th session the server creates: a new one
// each time, as Consul does.
func sessionID(n int) string { return fmt.Sprintf("5b8f1f0a-1d2e-4c3b-9a8f-%012d", n) }

func newHostileServer(t *testing.T, limit int) *hostileServer {
	s := &hostileServer{
		t: t, key: "svc/leader", limit: limit, index: 10,
		counts: map[string]int{}, changed: make(chan struct{}), over: make(chan struct{}),
	}
	s.addr = "consul.test:8500"
	s.transport = handlerTransport{s.addr: http.HandlerFunc(s.serve)}
	return s
}

// op names a request the way the counts do. A transaction is named by
// what it does: a lone lock of the key is an acquire, a lock under
// candidates/ a registration.
func op(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case r.URL.Path == "/v1/txn":
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var ops []struct {
			KV struct{ Verb, Key, Session string }
		}
		_ = json.Unmarshal(body, &ops)
		switch {
		case len(ops) == 1 && ops[0].KV.Verb == "lock" && strings.Contains(ops[0].KV.Key, "/candidates/"):
			return "register"
		case len(ops) == 1 && ops[0].KV.Verb == "lock":
			return "acquire"
		}
		return "txn"
	case strings.HasPrefix(r.URL.Path, "/v1/kv/") && r.Method == http.MethodGet && q.Has("recurse"):
		return "list"
	case r.URL.Path == "/v1/session/create":
		return "create"
	case strings.HasPrefix(r.URL.Path, "/v1/session/renew/"):
		return "renew"
	case strings.HasPrefix(r.URL.Path, "/v1/session/destroy/"):
		return "destroy"
	case strings.HasPrefix(r.URL.Path, "/v1/kv/") && r.Method == http.MethodGet:
		return "get"
	case q.Has("acquire"):
		return "acquire"
	case q.Has("release"):
		return "release"
	}
	return r.Method + " " + r.URL.Path
}

func (s *hostileServer) serve(w http.ResponseWriter, r *http.Request) {
	name := op(r)
	s.mu.Lock()
	s.counts[name]++
	n := s.counts[name]
	s.total++
	if s.total == s.limit+1 {
		close(s.over)
	}
	s.tokens = append(s.tokens, r.Header.Get("X-Consul-Token"))
	s.mu.Unlock()

	scripted := map[string]func(http.ResponseWriter, *http.Request, int){
		"create": s.create, "renew": s.renew, "get": s.get, "acquire": s.acquire,
	}[name]
	if scripted != nil {
		scripted(w, r, n)
		return
	}
	s.likeConsul(w, r, name, n)
}

// likeConsul answers as Consul 1.16.3 would (CONSUL_API.md).
func (s *hostileServer) likeConsul(w http.ResponseWriter, r *http.Request, name string, n int) {
	switch name {
	case "create":
		fmt.Fprintf(w, `{"ID":%q}`, sessionID(n))
	case "renew":
		fmt.Fprintf(w, `[{"ID":%q,"Name":"leaderd","Node":"n1","LockDelay":0,"Behavior":"release","TTL":"10s","NodeChecks":[],"ServiceChecks":null,"CreateIndex":5,"ModifyIndex":5}]`,
			strings.TrimPrefix(r.URL.Path, "/v1/session/renew/"))
	case "destroy":
		fmt.Fprint(w, "true")
	case "acquire":
		var ops []struct{ KV struct{ Key, Session string } }
		_ = json.NewDecoder(r.Body).Decode(&ops)
		sid := ops[0].KV.Session
		s.mu.Lock()
		ok := s.holder == "" || s.holder == sid
		if ok {
			s.holder = sid
			s.index++
			close(s.changed)
			s.changed = make(chan struct{})
		}
		index := s.index
		s.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusConflict)
			fmt.Fprintf(w, `{"Results":null,"Errors":[{"OpIndex":0,"What":"failed to lock key %q, lock is already held"}]}`, s.key)
			return
		}
		fmt.Fprint(w, txnJSON(s.key, sid, index, `{"id":"me"}`))
	case "register":
		var ops []struct{ KV struct{ Key, Session string } }
		_ = json.NewDecoder(r.Body).Decode(&ops)
		fmt.Fprint(w, txnJSON(ops[0].KV.Key, ops[0].KV.Session, 2, `{}`))
	case "txn":
		fmt.Fprint(w, `{"Results":[],"Errors":null}`)
	case "list":
		s.blockingList(w, r)
	case "release":
		sid := r.URL.Query().Get(name)
		s.mu.Lock()
		ok := s.holder == sid
		if ok {
			s.holder = ""
			s.index++
			close(s.changed)
			s.changed = make(chan struct{})
		}
		s.mu.Unlock()
		fmt.Fprint(w, ok)
	case "get":
		s.blockingGet(w, r)
	default:
		s.t.Errorf("hostile server: unexpected request %s %s", r.Method, r.URL)
		http.Error(w, "unexpected", http.StatusNotFound)
	}
}

// blockingGet serves the key, blocking while ?index= is current.
func (s *hostileServer) blockingGet(w http.ResponseWriter, r *http.Request) {
	holder, index, ok := s.block(r)
	if !ok {
		return
	}
	w.Header().Set("X-Consul-Index", strconv.FormatUint(index, 10))
	// The key exists even when free (as a release leaves it): a missing
	// key would make the candidate wait out a lease window first.
	fmt.Fprint(w, kvJSON(s.key, holder, index, `{"id":"someone"}`))
}

// block waits while ?index= is current and returns the key's holder and
// index, or false if the request was canceled.
func (s *hostileServer) block(r *http.Request) (holder string, index uint64, ok bool) {
	want, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	s.mu.Lock()
	for want > 0 && want == s.index {
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-r.Context().Done():
			return "", 0, false
		}
		s.mu.Lock()
	}
	holder, index = s.holder, s.index
	s.mu.Unlock()
	return holder, index, true
}

// blockingList serves an empty prefix (no registry entries: the server
// stores none), blocking like blockingGet.
func (s *hostileServer) blockingList(w http.ResponseWriter, r *http.Request) {
	_, index, ok := s.block(r)
	if !ok {
		return
	}
	w.Header().Set("X-Consul-Index", strconv.FormatUint(index, 10))
	w.WriteHeader(http.StatusNotFound)
}

// txnJSON is a PUT /v1/txn answer for one lock of key as Consul writes it.
func txnJSON(key, session string, index uint64, value string) string {
	return fmt.Sprintf(`{"Results":[{"KV":{"LockIndex":1,"Key":%q,"Flags":0,"Value":%q,"Session":%q,"CreateIndex":9,"ModifyIndex":%d}}],"Errors":null}`,
		key, base64.StdEncoding.EncodeToString([]byte(value)), session, index)
}

// kvJSON is a GET /v1/kv answer as Consul writes it.
func kvJSON(key, session string, index uint64, value string) string {
	sess := ""
	if session != "" {
		sess = fmt.Sprintf(`"Session":%q,`, session)
	}
	return fmt.Sprintf(`[{"LockIndex":1,"Key":%q,"Flags":0,"Value":%q,%s"CreateIndex":9,"ModifyIndex":%d}]`,
		key, base64.StdEncoding.EncodeToString([]byte(value)), sess, index)
}

func (s *hostileServer) count(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[name]
}

func (s *hostileServer) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("%d requests %v", s.total, s.counts)
}

func (s *hostileServer) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// hostileRun is what an election did against a hostile server.
type hostileRun struct {
	events   []elect.Event
	runErr   error
	returned bool // Run returned before the window ended
	elapsed  time.Duration
	problems []string // hot loop, Run stuck: reported by the caller
}

// runAgainst runs one election against s for window (less if Run returns
// or the request budget is spent first), then stops it. Call it in a
// synctest bubble: the window is fake time.
func runAgainst(s *hostileServer, cfg elect.Config, window time.Duration) hostileRun {
	var hr hostileRun
	c, err := consulhttp.NewClient(consulhttp.Config{Address: s.addr, Transport: s.transport, Token: hostileToken, RequestTimeout: time.Second})
	if err == nil {
		if cfg.Key == "" {
			cfg.Key = s.key
		}
		if cfg.Candidate.ID == "" {
			cfg.Candidate.ID = "c1"
		}
		if cfg.ReleaseTimeout == 0 {
			cfg.ReleaseTimeout = time.Second
		}
		var e *elect.Election
		if e, err = elect.New(c, cfg); err == nil {
			hr.run(s, e, window)
			return hr
		}
	}
	hr.problems = append(hr.problems, err.Error())
	return hr
}

func (hr *hostileRun) run(s *hostileServer, e *elect.Election, window time.Duration) {
	evDone := make(chan struct{})
	evs := e.Events()
	go func() {
		defer close(evDone)
		for ev := range evs {
			hr.events = append(hr.events, ev)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	t0 := time.Now()
	go func() { done <- e.Run(ctx) }()
	timer := time.NewTimer(window)
	defer timer.Stop()
	select {
	case hr.runErr = <-done:
		hr.returned = true
	case <-timer.C:
	case <-s.over:
		hr.problems = append(hr.problems, fmt.Sprintf("more than %d requests in %v: a hot loop (%s)", s.limit, time.Since(t0), s.summary()))
	}
	hr.elapsed = time.Since(t0)
	if !hr.returned {
		cancel()
		select {
		case hr.runErr = <-done:
		case <-time.After(5 * time.Second):
			hr.problems = append(hr.problems, fmt.Sprintf("Run did not return within 5s of cancel (%s)", s.summary()))
			return
		}
	}
	<-evDone
}

// hostileToken is sent with every request; it must not show in errors.
const hostileToken = "0c3f7a52-hostile-test-token-9d81"

func (hr hostileRun) kinds() []string {
	var k []string
	for _, ev := range hr.events {
		k = append(k, string(ev.Kind))
	}
	return k
}

func (hr hostileRun) elected() bool {
	for _, ev := range hr.events {
		if ev.Kind == elect.KindElected {
			return true
		}
	}
	return false
}

// errorTexts are the messages of the error events and of Run's error.
func (hr hostileRun) errorTexts() []string {
	var out []string
	for _, ev := range hr.events {
		if ev.Kind == elect.KindError && ev.Err != nil {
			out = append(out, ev.Err.Error())
		}
	}
	if hr.runErr != nil {
		out = append(out, hr.runErr.Error())
	}
	return out
}
