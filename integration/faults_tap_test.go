package integration

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// Taps on a candidate's way to Consul: consulTap records the transactions
// and releases one leaderd sends and can act the moment one passes;
// startSlowReads makes a candidate hear of changes late.

// tapOp is one operation of a transaction as it went to Consul.
type tapOp struct{ Verb, Key, Session string }

// tapTxn is one PUT /v1/txn a candidate sent: its ops, when it was
// received, and Consul's answer (409: rolled back) with the ModifyIndex of
// its first result (the transaction's Raft index).
type tapTxn struct {
	At    time.Time
	Ops   []tapOp
	Code  int
	Index uint64
}

// lonelock: a lone lock of key, an acquire.
func (x tapTxn) lonelock(key string) bool {
	return len(x.Ops) == 1 && x.Ops[0].Verb == consulhttp.TxnLock && x.Ops[0].Key == key
}

// handover: [unlock key, lock key, check the successor's entry], a
// handover.
func (x tapTxn) handover(key string) bool {
	return len(x.Ops) >= 2 && x.Ops[0].Verb == consulhttp.TxnUnlock && x.Ops[0].Key == key &&
		x.Ops[1].Verb == consulhttp.TxnLock && x.Ops[1].Key == key
}

// consulTap is an HTTP reverse proxy between one leaderd and its Consul
// agent that records the transactions and releases that candidate sends,
// and can run a hook before a transaction is forwarded.
type consulTap struct {
	name string
	addr string
	rp   *httputil.ReverseProxy

	mu       sync.Mutex
	txns     []tapTxn
	releases []time.Time // PUT /v1/kv/…?release=
	before   func(ops []tapOp)
	after    func(x tapTxn)
}

func startConsulTap(t *testing.T, name, target string) *consulTap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &consulTap{name: name, addr: ln.Addr().String(),
		rp: httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})}
	// Canceled blocking queries are routine: answer 502 quietly.
	p.rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(http.StatusBadGateway) }
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) // returns when closed at cleanup
	t.Cleanup(func() { srv.Close() })
	return p
}

// onTxn runs f (nil: nothing) on every transaction before it is forwarded.
func (p *consulTap) onTxn(f func(ops []tapOp)) {
	p.mu.Lock()
	p.before = f
	p.mu.Unlock()
}

// afterTxn runs f (nil: nothing) on every transaction once Consul has
// answered it, before the candidate gets the answer.
func (p *consulTap) afterTxn(f func(x tapTxn)) {
	p.mu.Lock()
	p.after = f
	p.mu.Unlock()
}

// heldAnswer keeps an answer from Consul (a transaction's: small, not
// streamed) until the tap passes it on.
type heldAnswer struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (a *heldAnswer) Header() http.Header         { return a.header }
func (a *heldAnswer) WriteHeader(code int)        { a.code = code }
func (a *heldAnswer) Write(b []byte) (int, error) { return a.body.Write(b) }

func (p *consulTap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v1/kv/") && r.URL.Query().Has("release") {
		p.mu.Lock()
		p.releases = append(p.releases, time.Now())
		p.mu.Unlock()
	}
	if r.Method != http.MethodPut || r.URL.Path != "/v1/txn" {
		p.rp.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var raw []struct{ KV tapOp }
	_ = json.Unmarshal(body, &raw)
	x := tapTxn{At: time.Now()}
	for _, op := range raw {
		x.Ops = append(x.Ops, op.KV)
	}
	p.mu.Lock()
	before, after := p.before, p.after
	p.mu.Unlock()
	if before != nil {
		before(x.Ops)
	}
	a := &heldAnswer{header: w.Header(), code: http.StatusOK}
	p.rp.ServeHTTP(a, r)
	x.Code = a.code
	var out struct {
		Results []struct{ KV struct{ ModifyIndex uint64 } }
	}
	if json.Unmarshal(a.body.Bytes(), &out) == nil && len(out.Results) > 0 {
		x.Index = out.Results[0].KV.ModifyIndex
	}
	p.mu.Lock()
	p.txns = append(p.txns, x)
	p.mu.Unlock()
	if after != nil {
		after(x)
	}
	w.WriteHeader(a.code)
	w.Write(a.body.Bytes())
}

// seen returns the transactions received from from on that match.
func (p *consulTap) seen(from time.Time, match func(tapTxn) bool) []tapTxn {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []tapTxn
	for _, x := range p.txns {
		if !x.At.Before(from) && match(x) {
			out = append(out, x)
		}
	}
	return out
}

// releasedSince counts the releases received from from on.
func (p *consulTap) releasedSince(from time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, at := range p.releases {
		if !at.Before(from) {
			n++
		}
	}
	return n
}

// startSlowReads starts an HTTP proxy to target that holds every answer to
// a GET of path (blocking queries included) for delay before passing it
// on: a candidate that hears of changes late. It returns its address.
func startSlowReads(t *testing.T, target, path string, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(http.StatusBadGateway) }
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodGet && resp.Request.URL.Path == path {
			time.Sleep(delay)
		}
		return nil
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) // returns when closed at cleanup
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
