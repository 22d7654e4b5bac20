package elect_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/elect"
)

// Hostile answers for the scripted operations.

func reply(code int, body string, headers ...string) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, _ int) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(code)
		fmt.Fprint(w, body)
	}
}

// truncated declares a body longer than it sends, then drops the
// connection: the client sees an unexpected EOF mid-JSON.
func truncated(body string) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)*2))
		w.Header().Set("X-Consul-Index", "12")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, body)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // close the connection without logging
	}
}

// endless streams a JSON array that never ends, a chunk every pause,
// until the client goes away.
func endless(pause time.Duration) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, r *http.Request, _ int) {
		w.Header().Set("X-Consul-Index", "12")
		w.WriteHeader(http.StatusOK)
		chunk := []byte(`[` + strings.Repeat(`{"Key":"svc/leader","Value":null},`, 2000))
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			chunk = chunk[1:]
			if pause > 0 {
				select {
				case <-time.After(pause):
				case <-r.Context().Done():
					return
				}
			}
		}
	}
}

const htmlPage = `<!DOCTYPE html>
<html><head><title>502 Bad Gateway</title></head>
<body><h1>Bad Gateway</h1>
<p>The proxy server received an invalid response from an upstream server.</p></body></html>`

// TestHostileAnswers drives a whole Election against a server that lies
// in one way each. Whatever it says, the candidate must not lead on bad
// data, must not spin (at most 30 requests in the 4s window: the backoff
// allows about 15), must say what was wrong in its error events, and must
// stop when told. Answers that retrying can't fix (a session create that is
// not Consul's answer) end Run with an error that says so.
func TestHostileAnswers(t *testing.T) {
	const window, budget = 4 * time.Second, 30
	someoneElse := "9a0e4c1d-0000-4000-8000-00000000beef"
	tests := []struct {
		name    string
		setup   func(s *hostileServer)
		wantErr string // in an error event or Run's error
		wantRun bool   // Run returns an error by itself
	}{{
		name:    "session create: HTML page with 200",
		setup:   func(s *hostileServer) { s.create = reply(200, htmlPage) },
		wantErr: "PUT /v1/session/create: bad answer: decode JSON: invalid character '<'",
		wantRun: true,
	}, {
		name:    "session create: ID is a number",
		setup:   func(s *hostileServer) { s.create = reply(200, `{"ID":42}`) },
		wantErr: "bad answer: decode JSON: json: cannot unmarshal number",
		wantRun: true,
	}, {
		name:    "session create: truncated JSON",
		setup:   func(s *hostileServer) { s.create = truncated(`{"ID":"5b8f1f0a-1d2e`) },
		wantErr: "PUT /v1/session/create: unexpected EOF",
	}, {
		name:    "session create: 5 MiB answer",
		setup:   func(s *hostileServer) { s.create = reply(200, `{"ID":"`+strings.Repeat("a", 5<<20)+`"}`) },
		wantErr: "bad answer: answer larger than 4194304 bytes",
		wantRun: true,
	}, {
		name:    "session create: HTML 502 from a proxy",
		setup:   func(s *hostileServer) { s.create = reply(502, htmlPage, "Content-Type", "text/html") },
		wantErr: "502 <!DOCTYPE html> <html><head><title>502 Bad Gateway</title></head> <body><h1>Bad Gateway</h1>",
	}, {
		name:    "read: truncated JSON",
		setup:   func(s *hostileServer) { s.get = truncated(kvJSON("svc/leader", "", 12, "x")[:40]) },
		wantErr: "GET /v1/kv/svc/leader: unexpected EOF",
	}, {
		name: "read: JSON cut short in a complete answer",
		setup: func(s *hostileServer) {
			s.get = reply(200, kvJSON("svc/leader", "", 12, "x")[:40], "X-Consul-Index", "12")
		},
		wantErr: "GET /v1/kv/svc/leader: bad answer: decode JSON: unexpected end of JSON input",
	}, {
		name: "read: Session is a number",
		setup: func(s *hostileServer) {
			s.get = reply(200, `[{"Key":"svc/leader","Session":7,"ModifyIndex":12}]`, "X-Consul-Index", "12")
		},
		wantErr: "cannot unmarshal number into Go struct field KVPair.Session of type string",
	}, {
		name: "read: ModifyIndex is a string",
		setup: func(s *hostileServer) {
			s.get = reply(200, `[{"Key":"svc/leader","ModifyIndex":"12"}]`, "X-Consul-Index", "12")
		},
		wantErr: "cannot unmarshal string into Go struct field KVPair.ModifyIndex of type uint64",
	}, {
		name: "read: negative ModifyIndex",
		setup: func(s *hostileServer) {
			s.get = reply(200, `[{"Key":"svc/leader","ModifyIndex":-3}]`, "X-Consul-Index", "12")
		},
		wantErr: "cannot unmarshal number -3 into Go struct field KVPair.ModifyIndex of type uint64",
	}, {
		name:    "read: negative X-Consul-Index",
		setup:   func(s *hostileServer) { s.get = reply(404, "", "X-Consul-Index", "-5") },
		wantErr: `bad answer: X-Consul-Index "-5" is not an index`,
	}, {
		name:    "read: another key's entry",
		setup:   func(s *hostileServer) { s.get = reply(200, kvJSON("svc/other", "", 12, "x"), "X-Consul-Index", "12") },
		wantErr: `asked for key "svc/leader", got "svc/other"`,
	}, {
		name:    "read: endless fast body",
		setup:   func(s *hostileServer) { s.get = endless(0) },
		wantErr: "bad answer: answer larger than 4194304 bytes",
	}, {
		name:    "read: endless slow body",
		setup:   func(s *hostileServer) { s.get = endless(50 * time.Millisecond) },
		wantErr: "GET /v1/kv/svc/leader: no answer in time (1s)",
	}, {
		name:    "read: HTML page with 200",
		setup:   func(s *hostileServer) { s.get = reply(200, htmlPage, "X-Consul-Index", "12") },
		wantErr: "bad answer: decode JSON: invalid character '<'",
	}, {
		name: "read: redirect elsewhere",
		setup: func(s *hostileServer) {
			s.get = func(w http.ResponseWriter, r *http.Request, _ int) {
				http.Redirect(w, r, "http://127.0.0.1:1/v1/kv/svc/leader", http.StatusTemporaryRedirect)
			}
		},
		wantErr: "GET /v1/kv/svc/leader: 307",
	}, {
		name:    "acquire: 200 with an empty body",
		setup:   func(s *hostileServer) { s.acquire = reply(200, "") },
		wantErr: "PUT /v1/txn: bad answer: empty answer, want JSON",
	}, {
		name:    "acquire: yes",
		setup:   func(s *hostileServer) { s.acquire = reply(200, "yes") },
		wantErr: "PUT /v1/txn: bad answer: decode JSON: invalid character 'y'",
	}, {
		name: "acquire: the transaction's answer shows another session",
		setup: func(s *hostileServer) {
			s.acquire = reply(200, txnJSON("svc/leader", someoneElse, 13, `{"id":"other"}`))
		},
		wantErr: "unexpected transaction result",
	}, {
		name: "acquire: the transaction's ModifyIndex is a string",
		setup: func(s *hostileServer) {
			s.acquire = reply(200, `{"Results":[{"KV":{"Key":"svc/leader","Session":"`+sessionID(1)+`","ModifyIndex":"13"}}]}`)
		},
		wantErr: "cannot unmarshal string into Go struct field KVPair.Results.KV.ModifyIndex of type uint64",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				s := newHostileServer(t, budget)
				tc.setup(s)
				hr := runAgainst(s, elect.Config{}, window)
				t.Logf("%s in %v; events %v", s.summary(), hr.elapsed.Round(time.Millisecond), hr.kinds())
				var v verdict
				v.fails = append(v.fails, hr.problems...)
				if hr.elected() {
					v.errorf("elected on bad data: events %v", hr.kinds())
				}
				if hr.returned != tc.wantRun {
					v.errorf("Run returned by itself: %v (err %v), want %v", hr.returned, hr.runErr, tc.wantRun)
				}
				if tc.wantRun && hr.runErr == nil {
					v.errorf("Run returned nil, want an error saying what was wrong")
				}
				if !tc.wantRun && hr.runErr != nil {
					v.errorf("Run = %v after cancel, want nil", hr.runErr)
				}
				texts := hr.errorTexts()
				found := tc.wantErr == ""
				for _, e := range texts {
					found = found || strings.Contains(e, tc.wantErr)
					if strings.Contains(e, hostileToken) {
						v.errorf("error shows the token: %s", e)
					}
					if strings.ContainsAny(e, "\n\r") {
						v.errorf("error is not one line: %q", e)
					}
					if len(e) > 2000 {
						v.errorf("error is %d bytes long: %.200s…", len(e), e)
					}
				}
				if !found {
					v.errorf("no error saying %q; errors:\n%s", tc.wantErr, strings.Join(texts, "\n"))
				}
				v.report(t)
			})
		})
	}
}

// TestIndexGoingBackwardsIsNotAHotLoop: a server whose X-Consul-Index goes
// down on every answer, returning at once. The index rule (go back to 0,
// which does not block) must not turn into a read loop at network speed.
func TestIndexGoingBackwardsIsNotAHotLoop(t *testing.T) {
	const window, budget = 4 * time.Second, 30
	tests := []struct {
		name string
		next func(n int) uint64
	}{
		{"down by one", func(n int) uint64 { return uint64(100000 - n) }},
		{"up then down", func(n int) uint64 { return uint64(1000 + 500*(n%2)) }},
		{"constant, returned at once", func(int) uint64 { return 77 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				s := newHostileServer(t, budget)
				s.get = func(w http.ResponseWriter, r *http.Request, n int) {
					idx := tc.next(n)
					reply(200, kvJSON("svc/leader", "9a0e4c1d-0000-4000-8000-00000000beef", idx, `{"id":"other"}`),
						"X-Consul-Index", strconv.FormatUint(idx, 10))(w, r, n)
				}
				hr := runAgainst(s, elect.Config{}, window)
				t.Logf("%s in %v; events %v", s.summary(), hr.elapsed.Round(time.Millisecond), hr.kinds())
				var v verdict
				v.fails = append(v.fails, hr.problems...)
				if hr.elected() {
					v.errorf("elected while another session holds the key")
				}
				if n := s.count("get"); n < 2 {
					v.errorf("%d reads: the test did not exercise the watch", n)
				}
				v.report(t)
			})
		})
	}
}

// TestRedirectCarriesNoToken: a server that redirects every request to
// another one: the token never reaches the other server, and the session
// create, which retrying cannot fix, ends Run with the 307 in its error.
func TestRedirectCarriesNoToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var elsewhere atomic.Int64
		const other = "elsewhere.test:8500"
		s := newHostileServer(t, 30)
		s.transport[other] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			elsewhere.Add(1)
			http.Error(w, "should not be here", http.StatusTeapot)
		})
		redirect := func(w http.ResponseWriter, r *http.Request, _ int) {
			http.Redirect(w, r, "http://"+other+r.URL.RequestURI(), http.StatusTemporaryRedirect)
		}
		s.create, s.get, s.acquire, s.renew = redirect, redirect, redirect, redirect
		hr := runAgainst(s, elect.Config{}, 4*time.Second)
		for _, p := range hr.problems {
			t.Error(p)
		}
		if !hr.returned || hr.runErr == nil || !strings.Contains(hr.runErr.Error(), "PUT /v1/session/create: 307") {
			t.Errorf("Run = %v (returned by itself: %v), want an error naming the 307 to session create", hr.runErr, hr.returned)
		}
		if n := elsewhere.Load(); n != 0 {
			t.Errorf("the redirect target got %d requests, want 0", n)
		}
	})
}

// TestObserveIndexGoingBackwards: leader discovery (elect.Observe, behind
// `leaderd leader -watch`) against the same server must not spin either.
func TestObserveIndexGoingBackwards(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const window, budget = 3 * time.Second, 20
		s := newHostileServer(t, budget)
		s.get = func(w http.ResponseWriter, r *http.Request, n int) {
			idx := uint64(1000 + 500*(n%2))
			reply(200, kvJSON("svc/leader", "9a0e4c1d-0000-4000-8000-00000000beef", idx, `{"id":"other"}`),
				"X-Consul-Index", strconv.FormatUint(idx, 10))(w, r, n)
		}
		c, err := consulhttp.NewClient(consulhttp.Config{Address: s.addr, Transport: s.transport, RequestTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), window)
		defer cancel()
		var v verdict
		go func() {
			select {
			case <-s.over:
				cancel()
			case <-ctx.Done():
			}
		}()
		var seen []string
		err = elect.Observe(ctx, c, s.key, func(l *elect.Leader) bool {
			if l != nil {
				seen = append(seen, l.ID)
			}
			return true
		}, nil)
		t.Logf("%s in %v", s.summary(), window)
		if err != nil {
			v.errorf("Observe = %v, want nil after cancel", err)
		}
		if len(seen) != 1 || seen[0] != "other" {
			v.errorf("leaders seen %v, want [other] once (the session never changed)", seen)
		}
		select {
		case <-s.over:
			v.errorf("more than %d reads in %v: a hot loop (%s)", budget, window, s.summary())
		default:
		}
		v.report(t)
	})
}

// verdict collects a case's failures and reports them together.
type verdict struct{ fails []string }

func (v *verdict) errorf(format string, a ...any) {
	v.fails = append(v.fails, fmt.Sprintf(format, a...))
}

// report fails t with every failure.
func (v *verdict) report(t *testing.T) {
	t.Helper()
	for _, f := range v.fails {
		t.Error(f)
	}
}

// TestBadRenewsAreNoProof: once elected, a leader whose renews get answers
// it can't read must not count them as proof: it steps down when its lease
// ends (lease_expired), and an empty renew answer (the session is gone)
// ends the term at once. Every term ends within the lease.
func TestBadRenewsAreNoProof(t *testing.T) {
	const (
		// A term that ends at once costs ~11 requests (create, register,
		// acquire, the leader's registry watch, release, destroy, reads):
		// 8 such terms in the window are the protocol, not a hot loop.
		window, budget = 4 * time.Second, 120
		ttl, renew     = 2 * time.Second, 500 * time.Millisecond
		margin         = 500 * time.Millisecond
		lockDelay      = ttl
		lease          = lockDelay - margin
	)
	tests := []struct {
		name   string
		renew  func(http.ResponseWriter, *http.Request, int)
		reason elect.Reason
		terms  int // at least
	}{
		// After a lease expiry the candidate releases the key and
		// campaigns again with a new session: more terms follow.
		{"renew answers garbage", reply(200, `[{"ID":"`+sessionID(1)+`","LockDelay":"soon"}]`), elect.ReasonLeaseExpired, 2},
		{"renew answers HTML 200", reply(200, htmlPage), elect.ReasonLeaseExpired, 2},
		// "Session gone" leaves the key to Consul, which this server
		// does not invalidate: the candidate follows its old session.
		{"renew answers an empty list", reply(200, `[]`), elect.ReasonSessionInvalidated, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				s := newHostileServer(t, budget)
				s.renew = tc.renew
				cfg := elect.Config{TTL: ttl, LockDelay: lockDelay, RenewInterval: renew, Margin: margin}
				hr := runAgainst(s, cfg, window)
				t.Logf("%s in %v; events %v", s.summary(), hr.elapsed.Round(time.Millisecond), hr.kinds())
				for _, p := range hr.problems {
					t.Error(p)
				}
				var elected time.Time
				terms := 0
				for _, ev := range hr.events {
					switch ev.Kind {
					case elect.KindElected:
						elected, terms = ev.At, terms+1
					case elect.KindSteppedDown:
						if elected.IsZero() {
							continue
						}
						// The lease counts from the acquire, sent before
						// the term began: the term is shorter still. Fake
						// time has no scheduling jitter, so no slack.
						if d := ev.At.Sub(elected); d > lease {
							t.Errorf("a term lasted %v on renews that proved nothing; the lease is %v", d, lease)
						}
						if ev.Reason != tc.reason && ev.Reason != elect.ReasonShutdown {
							t.Errorf("stepped down with %q, want %q", ev.Reason, tc.reason)
						}
						elected = time.Time{}
					}
				}
				if terms < tc.terms {
					t.Errorf("%d term(s) in %v, want at least %d", terms, window, tc.terms)
				}
			})
		})
	}
}
