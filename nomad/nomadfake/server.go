// Package nomadfake is an in-process fake of Nomad's Variables HTTP API, for
// tests only. It speaks what a real Nomad agent speaks on /v1/var/<path> and
// /v1/vars (checked against command/agent/variable_endpoint.go,
// command/agent/http.go, nomad/variables_endpoint.go and
// nomad/state/state_store_variables.go): `namespace`, `cas`, `prefix`,
// `index`/`wait` query parameters; X-Nomad-Token (or Authorization: Bearer);
// X-Nomad-Index, X-Nomad-KnownLeader and X-Nomad-LastContact headers; 404
// "variable not found" with index headers; 409 with the conflicting
// variable as the body (items redacted when the caller can't read it); 403
// "Permission denied" and "ACL token not found"; 400 for an empty Items
// object or a path outside Nomad's rule; 204 on delete; gzip when the client accepts it, as Nomad's
// compress handler does. Bodies are nomad/api types.
//
// Start serves it on a unix socket named api.sock in a directory of its own
// (SecretsDir, standing for a task's NOMAD_SECRETS_DIR) and on loopback
// TCP; New gives an unstarted server whose Transport serves requests
// in-process, for testing/synctest bubbles. Like Nomad's Task API
// (command/agent/http.go authMiddleware), the unix socket answers a request
// without a token with 401 "Unauthorized", ACLs on or off.
package nomadfake

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
)

type key struct{ ns, path string }

// Request is one request the fake answered (no token value recorded).
type Request struct {
	Method   string
	Path     string
	Query    string
	HasToken bool
	Code     int
	Network  string // "unix" or "tcp"; "" when served in-process by Transport
}

type networkKey struct{}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	// HTTPAddr is "http://127.0.0.1:<port>" and UnixAddr "unix://<path>"
	// once started; both serve the same state. SecretsDir is the directory
	// holding the socket, <SecretsDir>/api.sock, as Nomad places the Task
	// API socket in a task's secrets directory.
	HTTPAddr   string
	UnixAddr   string
	SecretsDir string

	mu       sync.Mutex
	vars     map[key]*api.Variable
	index    uint64        // last raft index
	varIndex uint64        // last index that changed the variables table
	changed  chan struct{} // closed and replaced on every change (blocking queries)
	acl      bool
	tokens   map[string][]Rule
	anon     []Rule
	onReq    func(*http.Request)
	log      []Request
	now      func() time.Time
	onBlock  func() // tests: called when a blocking query starts waiting
}

// New returns a fake with no listeners, ACLs disabled and raft index 1.
func New() *Server {
	return &Server{
		vars:    map[key]*api.Variable{},
		index:   1,
		changed: make(chan struct{}),
		tokens:  map[string][]Rule{},
		now:     time.Now,
	}
}

// Start returns a fake listening on a unix socket in t.TempDir() and on
// 127.0.0.1; both close when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := New()
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, networkKey{}, c.LocalAddr().Network())
		},
	}

	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("nomadfake: listen tcp: %v", err)
	}
	// Unix socket paths are limited to ~108 bytes; t.TempDir() can be
	// longer, so use a short directory of our own.
	dir, err := os.MkdirTemp("", "nomadfake")
	if err != nil {
		t.Fatalf("nomadfake: socket dir: %v", err)
	}
	sock := filepath.Join(dir, "api.sock")
	unix, err := net.Listen("unix", sock)
	if err != nil {
		tcp.Close()
		os.RemoveAll(dir)
		t.Fatalf("nomadfake: listen unix %s: %v", sock, err)
	}
	s.HTTPAddr = "http://" + tcp.Addr().String()
	s.UnixAddr = "unix://" + sock
	s.SecretsDir = dir

	var wg sync.WaitGroup
	for _, l := range []net.Listener{tcp, unix} {
		wg.Go(func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("nomadfake: serve %s: %v", l.Addr(), err)
			}
		})
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		wg.Wait()
		os.RemoveAll(dir)
	})
	return s
}

// Transport serves requests in-process through the fake's handler, for
// tests in testing/synctest bubbles where a loopback server would stop fake
// time from advancing. Use it as api.Config.HttpClient's transport.
func (s *Server) Transport() http.RoundTripper { return handlerTransport{s.Handler()} }

// EnableACL turns ACLs on: requests need a token added with AddToken; an
// empty token gets the anonymous rules (none unless SetAnonymous).
func (s *Server) EnableACL() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acl = true
}

// AddToken registers a secret with its rules (the union of its policies,
// implicit workload rules included — see WorkloadRules).
func (s *Server) AddToken(secret string, rules ...Rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[secret] = append(s.tokens[secret], rules...)
}

// SetAnonymous sets the rules of requests without a token.
func (s *Server) SetAnonymous(rules ...Rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.anon = rules
}

// OnRequest sets a hook called before each request is handled, outside the
// fake's lock: tests use it to inject a concurrent write (a CAS conflict)
// or to observe headers.
func (s *Server) OnRequest(fn func(*http.Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onReq = fn
}

// Requests returns the requests answered so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// Put writes a variable as an operator would (no ACL, no CAS) and returns
// it. namespace "" means "default".
func (s *Server) Put(namespace, path string, items map[string]string) api.Variable {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.setLocked(nsOrDefault(namespace), path, items)
}

// Get returns a copy of a variable.
func (s *Server) Get(namespace, path string) (api.Variable, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vars[key{nsOrDefault(namespace), path}]
	if !ok {
		return api.Variable{}, false
	}
	return *v.Copy(), true
}

// Index is the last raft index.
func (s *Server) Index() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index
}

func nsOrDefault(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

// bumpLocked consumes a raft index, as every Apply does (conflicts too).
func (s *Server) bumpLocked() uint64 {
	s.index++
	return s.index
}

func (s *Server) changedLocked(idx uint64) {
	s.varIndex = idx
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) setLocked(ns, path string, items map[string]string) *api.Variable {
	idx := s.bumpLocked()
	now := s.now().UnixNano()
	v := &api.Variable{Namespace: ns, Path: path, CreateIndex: idx, CreateTime: now}
	if old, ok := s.vars[key{ns, path}]; ok {
		v.CreateIndex, v.CreateTime = old.CreateIndex, old.CreateTime
	}
	v.ModifyIndex, v.ModifyTime = idx, now
	v.Items = make(api.VariableItems, len(items))
	for k, val := range items {
		v.Items[k] = val
	}
	s.vars[key{ns, path}] = v
	s.changedLocked(idx)
	return v.Copy()
}

type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

func (s *Server) String() string { return fmt.Sprintf("nomadfake(%s, %s)", s.HTTPAddr, s.UnixAddr) }
