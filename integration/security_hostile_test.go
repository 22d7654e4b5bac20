package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// liarConsul is a loopback HTTP server standing where leaderd expects
// Consul. It answers the session calls and the agent's check calls (the
// session's TTL check, on by default) as Consul would (unless all), and
// everything else through lie. It counts requests and records the tokens
// it was sent.
type liarConsul struct {
	srv *httptest.Server
	lie func(w http.ResponseWriter, r *http.Request)
	all bool // lie to the session calls too

	mu     sync.Mutex
	n      int
	tokens map[string]bool
}

func newLiarConsul(t *testing.T, lie func(w http.ResponseWriter, r *http.Request), all bool) *liarConsul {
	l := &liarConsul{lie: lie, all: all, tokens: map[string]bool{}}
	l.srv = httptest.NewServer(http.HandlerFunc(l.serve))
	t.Cleanup(l.srv.Close)
	return l
}

func (l *liarConsul) serve(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	l.n++
	l.tokens[r.Header.Get("X-Consul-Token")] = true
	l.mu.Unlock()
	switch {
	case !l.all && strings.HasPrefix(r.URL.Path, "/v1/agent/check/"):
		// register, update (pass), deregister: an empty 200, as Consul.
	case l.all || !strings.HasPrefix(r.URL.Path, "/v1/session/"):
		l.lie(w, r)
	case r.URL.Path == "/v1/session/create":
		fmt.Fprint(w, `{"ID":"0d9c0e7a-6a55-4bb4-9d44-3c1f0f4a2b11"}`)
	case strings.HasPrefix(r.URL.Path, "/v1/session/renew/"):
		fmt.Fprint(w, `[{"ID":"0d9c0e7a-6a55-4bb4-9d44-3c1f0f4a2b11","TTL":"10s","LockDelay":0,"Behavior":"release"}]`)
	case strings.HasPrefix(r.URL.Path, "/v1/session/destroy/"):
		fmt.Fprint(w, "true")
	default:
		http.NotFound(w, r)
	}
}

func (l *liarConsul) requests() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// TestRunAgainstALiar: the real binary pointed (CONSUL_HTTP_ADDR) at a
// server that is not Consul, or a Consul that sends unreadable data. It
// either stops with exit 1 and one line saying what was wrong (a session
// create answered with something that is not a session: no retry can fix
// that), or keeps campaigning without leading, retrying with backoff (at
// most 30 requests in 5s), and stops cleanly on SIGTERM. The token never
// shows in its output.
//
// Under -short (the fast loop) the watch lasts 1s: a hot loop passes the
// budget within milliseconds, and elect's hostile tests hold the same lies
// for 4s of fake time. The full run watches the whole 5s.
func TestRunAgainstALiar(t *testing.T) {
	const token = "b1946ac9-2fd0-4c3e-8e2c-liar-token0001"
	const budget = 30
	window := 5 * time.Second
	if testing.Short() {
		window = time.Second
	}
	html := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html><body><h1>It works!</h1></body></html>")
	}
	tests := []struct {
		name     string
		lie      func(w http.ResponseWriter, r *http.Request)
		sessions bool   // the session calls are lies too
		exit     bool   // leaderd exits by itself, with 1
		want     string // in its last stderr line (exit) or in a warning
	}{
		{
			name: "a web server, not Consul", lie: html, sessions: true, exit: true,
			want: "leaderd run: elect: create session: consul: PUT /v1/session/create: bad answer: decode JSON: invalid character '<'",
		},
		{
			name: "redirects everything", sessions: true, exit: true,
			lie: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://127.0.0.1:1"+r.URL.RequestURI(), http.StatusTemporaryRedirect)
			},
			// The first call with the default -check-ttl registers the
			// session's check.
			want: "leaderd run: elect: create session: register check leaderd:l1: consul: PUT /v1/agent/check/register: 307 Temporary Redirect",
		},
		{
			name: "the key's Session is a number",
			lie: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Consul-Index", "12")
				fmt.Fprint(w, `[{"Key":"services/liar/leader","Session":12,"ModifyIndex":12}]`)
			},
			want: "cannot unmarshal number into Go struct field KVPair.Session of type string",
		},
		{
			name: "negative X-Consul-Index",
			lie: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Consul-Index", "-12")
				w.WriteHeader(http.StatusNotFound)
			},
			want: `X-Consul-Index \"-12\" is not an index`,
		},
		{
			name: "the key read is cut short",
			lie: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "200")
				w.Header().Set("X-Consul-Index", "12")
				fmt.Fprint(w, `[{"Key":"services/liar/leader","Sess`)
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler)
			},
			want: "GET /v1/kv/services/liar/leader: unexpected EOF",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lc := newLiarConsul(t, tc.lie, tc.sessions)
			h := newHub()
			p := start(t, h, "liar", []string{"CONSUL_HTTP_ADDR=" + lc.srv.URL, "CONSUL_HTTP_TOKEN=" + token},
				"run", "-service", "liar", "-id", "l1", "-listen", "127.0.0.1:0", "-log-format", "json")
			addr := statusAddr(t, h, p)

			if tc.exit {
				if code := p.exit(t, 10*time.Second); code != 1 {
					t.Errorf("exit code = %d, want 1", code)
				}
				last := h.wait(t, time.Second, 0, "the error line", func(l logLine) bool {
					return !l.stdout && strings.HasPrefix(l.raw, "leaderd run: ")
				})
				if !strings.Contains(last.raw, tc.want) {
					t.Errorf("last line %q\nwant it to contain %q", last.raw, tc.want)
				}
			} else {
				h.wait(t, 5*time.Second, 0, "a warning naming the problem", func(l logLine) bool {
					return from(p, "watch key failed")(l) && strings.Contains(l.raw, tc.want)
				})
				deadline := time.After(window)
				for done := false; !done; {
					select {
					case <-deadline:
						done = true
					case <-time.After(100 * time.Millisecond):
						if lc.requests() > budget {
							done = true
						}
					}
				}
				if n := lc.requests(); n > budget {
					t.Errorf("%d requests in at most %v, want ≤ %d: a hot loop", n, window, budget)
				}
				if code, body := httpGet(t, addr, "/v1/leader"); code != http.StatusServiceUnavailable {
					t.Errorf("GET /v1/leader = %d %s, want 503: nobody may lead on unreadable data", code, body)
				}
				p.signal(t, syscall.SIGTERM)
				if code := p.exit(t, 5*time.Second); code != 0 {
					t.Errorf("exit code after SIGTERM = %d, want 0", code)
				}
			}
			t.Logf("%d requests", lc.requests())
			for _, l := range h.lines {
				if strings.Contains(l.raw, token) {
					t.Errorf("output shows the token: %s", l.raw)
				}
				if from(p, "elected")(l) {
					t.Errorf("elected on a liar's data: %s", l.raw)
				}
			}
			lc.mu.Lock()
			defer lc.mu.Unlock()
			if !lc.tokens[token] || len(lc.tokens) != 1 {
				t.Errorf("tokens sent %v, want only the configured one", lc.tokens)
			}
		})
	}
}
