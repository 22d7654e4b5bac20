package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Request kinds the proxy tells apart, named after what a candidate does.
const (
	kindRenew   = "session renew"
	kindCreate  = "session create"
	kindDestroy = "session destroy"
	kindWatch   = "blocking read"
	kindRead    = "read"
	kindAcquire = "acquire"
	kindRelease = "release"
	// Transactions (PUT /v1/txn), told apart by their operations: an
	// acquire as one lock op (leaderd since issue 12), a handover (unlock
	// by the leader's session and lock by the successor's, one txn), the
	// candidate registry's entries (register: lock of <key>/candidates/<id>;
	// deregister: check-session + delete; prune: delete-cas).
	kindTxnAcquire = "acquire (txn)"
	kindHandover   = "handover (txn)"
	kindRegister   = "register (txn)"
	kindDeregister = "deregister (txn)"
	kindPrune      = "prune (txn)"
	kindOtherTxn   = "other txn"
	// GET ?recurse: a read of a whole prefix (the candidate registry).
	kindList       = "list"
	kindWatchList  = "blocking list"
	kindCheck      = "check update"
	kindCheckReg   = "check (de)register"
	kindOtherWrite = "other write"
	kindOther      = "other"
)

// classify names what a request to Consul is for; body is a
// transaction's (PUT /v1/txn), nil otherwise.
func classify(r *http.Request, body []byte) string {
	p, q := r.URL.Path, r.URL.Query()
	switch {
	case p == "/v1/txn" && r.Method != http.MethodGet:
		return classifyTxn(body)
	case strings.HasPrefix(p, "/v1/kv/") && r.Method == http.MethodGet && q.Has("recurse"):
		if isBlocking(q) {
			return kindWatchList
		}
		return kindList
	case strings.HasPrefix(p, "/v1/session/renew/"):
		return kindRenew
	case p == "/v1/session/create":
		return kindCreate
	case strings.HasPrefix(p, "/v1/session/destroy/"):
		return kindDestroy
	case strings.HasPrefix(p, "/v1/kv/") && r.Method == http.MethodGet:
		if isBlocking(q) {
			return kindWatch
		}
		return kindRead
	case strings.HasPrefix(p, "/v1/kv/") && q.Has("acquire"):
		return kindAcquire
	case strings.HasPrefix(p, "/v1/kv/") && q.Has("release"):
		return kindRelease
	case strings.HasPrefix(p, "/v1/agent/check/pass/"), strings.HasPrefix(p, "/v1/agent/check/update/"),
		strings.HasPrefix(p, "/v1/agent/check/warn/"), strings.HasPrefix(p, "/v1/agent/check/fail/"):
		return kindCheck
	case strings.HasPrefix(p, "/v1/agent/check/register"), strings.HasPrefix(p, "/v1/agent/check/deregister/"):
		return kindCheckReg
	case r.Method != http.MethodGet:
		return kindOtherWrite
	}
	return kindOther
}

// classifyTxn names a KV transaction by its verbs.
func classifyTxn(body []byte) string {
	var ops []struct{ KV *struct{ Verb, Key string } }
	if json.Unmarshal(body, &ops) != nil || len(ops) == 0 {
		return kindOtherTxn
	}
	var verbs []string
	for _, op := range ops {
		if op.KV == nil {
			return kindOtherTxn
		}
		verbs = append(verbs, op.KV.Verb)
	}
	registry := strings.Contains(ops[0].KV.Key, "/candidates/")
	switch strings.Join(verbs, " ") {
	case "lock":
		if registry {
			return kindRegister
		}
		return kindTxnAcquire
	case "unlock lock", "unlock lock check-session":
		return kindHandover
	case "check-session delete":
		return kindDeregister
	case "delete-cas":
		return kindPrune
	}
	return kindOtherTxn
}

// isAcquire: a request that tries to take the key, by the KV API or in a
// transaction.
func isAcquire(kind string) bool { return kind == kindAcquire || kind == kindTxnAcquire }

// txnBody reads a transaction's body for classify and puts it back for
// the agent; nil for any other request.
func txnBody(r *http.Request) []byte {
	if r.URL.Path != "/v1/txn" || r.Body == nil {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	return b
}

// isBlocking: Consul blocks only with an index above 0.
func isBlocking(q url.Values) bool {
	i := q.Get("index")
	return i != "" && i != "0"
}

// proxy forwards to the agent through any number of ports, one per
// candidate process, counting what each candidate asks of Consul.
type proxy struct {
	rp    *httputil.ReverseProxy
	trace *traceLog // nil unless -trace
}

// traceLog records every request's start and end (-trace): which
// candidate waited on what, during a handover.
type traceLog struct {
	mu sync.Mutex
	w  io.Writer
}

func (t *traceLog) record(port string, kind string, r *http.Request, start time.Time, status int) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "%d %d %s %q %s %s %d\n", start.UnixNano(), time.Now().UnixNano(), port, kind, r.Method, r.URL.RequestURI(), status)
}

func newProxy(agentAddr string) *proxy {
	target := &url.URL{Scheme: "http", Host: agentAddr}
	tr := &http.Transport{
		// One blocking query per candidate is in flight at once; keep
		// their connections for reuse rather than redialing.
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = agentAddr
		},
		Transport: tr,
		// A blocking query ending because the candidate died is no error
		// worth reporting.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	return &proxy{rp: rp}
}

// port is one listener of the proxy: the address one candidate process
// uses as its Consul address.
type port struct {
	Addr  string
	ln    net.Listener
	srv   *http.Server
	trace *traceLog

	mu        sync.Mutex
	counts    map[string]int
	total     int
	watching  int                  // blocking reads in flight
	lastEvent time.Time            // start of the latest request that isn't periodic or a blocking read
	acquired  time.Time            // when the latest acquire was answered
	handedOff time.Time            // when the latest handover transaction was answered
	released  time.Time            // when the latest release (or handover) was sent
	answered  map[string]time.Time // by kind: when the latest request was answered
	sent      map[string]time.Time // by kind: when the latest request was sent
	watchEnds []time.Time          // when the latest blocking reads of the key were answered (the last few)
	readStart time.Time            // the latest non-blocking read: sent
	readEnd   time.Time            // ... and answered (zero while in flight)
	changed   chan struct{}        // closed and replaced on every change
}

func (p *proxy) listen() (*port, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	pt := &port{Addr: ln.Addr().String(), ln: ln, counts: map[string]int{}, answered: map[string]time.Time{}, sent: map[string]time.Time{},
		changed: make(chan struct{})}
	pt.srv = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { pt.serve(p.rp, w, r) }),
		ReadHeaderTimeout: 10 * time.Second,
	}
	pt.trace = p.trace
	go pt.srv.Serve(ln)
	return pt, nil
}

func (pt *port) serve(rp *httputil.ReverseProxy, w http.ResponseWriter, r *http.Request) {
	kind := classify(r, txnBody(r))
	pt.update(func() {
		pt.counts[kind]++
		pt.total++
		switch kind {
		case kindWatch, kindWatchList:
			pt.watching++
		case kindRenew, kindCheck:
		default:
			pt.lastEvent = time.Now()
		}
	})
	if kind == kindWatch || kind == kindWatchList {
		defer pt.update(func() { pt.watching-- })
	}
	start := time.Now()
	pt.update(func() { pt.sent[kind] = start })
	switch kind {
	case kindRead:
		pt.update(func() { pt.readStart, pt.readEnd = start, time.Time{} })
	case kindRelease, kindHandover:
		pt.update(func() { pt.released = start })
	}
	sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	rp.ServeHTTP(sw, r)
	pt.update(func() {
		now := time.Now()
		pt.answered[kind] = now
		switch kind {
		case kindAcquire, kindTxnAcquire:
			pt.acquired = now
		case kindHandover:
			pt.handedOff = now
		case kindWatch:
			pt.watchEnds = append(pt.watchEnds[max(0, len(pt.watchEnds)-15):], now)
		case kindRead:
			if pt.readStart.Equal(start) {
				pt.readEnd = now
			}
		}
	})
	pt.trace.record(pt.Addr, kind, r, start, sw.code)
}

// awaitAnswer waits for a request of this kind answered after t and
// returns when it was answered.
func (pt *port) awaitAnswer(ctx context.Context, kind string, t time.Time) (time.Time, error) {
	for {
		pt.mu.Lock()
		at, ch := pt.answered[kind], pt.changed
		pt.mu.Unlock()
		if at.After(t) {
			return at, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// lastRead is the latest non-blocking read's send and answer times.
func (pt *port) lastRead() (start, end time.Time) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.readStart, pt.readEnd
}

// lastRelease is when the candidate's latest release was sent.
func (pt *port) lastRelease() time.Time {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.released
}

// last is the latest request of this kind: when it was sent and answered
// (zero while in flight, or none).
func (pt *port) last(kind string) (sent, answered time.Time) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	sent, answered = pt.sent[kind], pt.answered[kind]
	if answered.Before(sent) {
		answered = time.Time{}
	}
	return sent, answered
}

// watchAnsweredAfter is when the first blocking read of the key answered
// after t was answered (zero: none among the last few).
func (pt *port) watchAnsweredAfter(t time.Time) time.Time {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	for _, at := range pt.watchEnds {
		if at.After(t) {
			return at
		}
	}
	return time.Time{}
}

// lastAcquire is when the candidate's latest acquire was answered.
func (pt *port) lastAcquire() time.Time {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.acquired
}

// lastHandover is when the candidate's latest handover transaction (the
// key moved from its session to a successor's) was answered.
func (pt *port) lastHandover() time.Time {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.handedOff
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (pt *port) update(f func()) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	f()
	close(pt.changed)
	pt.changed = make(chan struct{})
}

// snapshot returns the request counts so far (a copy).
func (pt *port) snapshot() (total int, byKind map[string]int) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	byKind = make(map[string]int, len(pt.counts))
	for k, v := range pt.counts {
		byKind[k] = v
	}
	return pt.total, byKind
}

// awaitWatching waits until the candidate has a blocking read in flight:
// it is settled, waiting on Consul rather than doing anything.
func (pt *port) awaitWatching(ctx context.Context) error {
	for {
		pt.mu.Lock()
		n, ch := pt.watching, pt.changed
		pt.mu.Unlock()
		if n > 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// quietSince is when the candidate last did something that wasn't
// periodic (renew, check update) or a blocking read.
func (pt *port) quietSince() time.Time {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.lastEvent
}

func (pt *port) close() {
	pt.srv.Close()
}
