package consulhttp

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The tests here put a real socket between the client and a server that
// lies, which the in-process fakeConsul can't: bodies cut short on the
// wire, endless streams, gzip bombs, broken status lines, oversize headers,
// answers that never come. Every call must end with a typed error that
// names the request and says what was wrong, within its deadline, without
// reading more than the client's limits.

const hostileToken = "7e6d5c4b-hostile-token-0a1b2c3d"

// hostileHandler answers every request the same lying way.
type hostileHandler func(w http.ResponseWriter, r *http.Request)

func status(code int, body string, headers ...string) hostileHandler {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(code)
		fmt.Fprint(w, body)
	}
}

// cutShort promises twice the body it sends, then drops the connection.
func cutShort(body string) hostileHandler {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(2*len(body)))
		w.Header().Set("X-Consul-Index", "5")
		fmt.Fprint(w, body)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
}

// stream writes chunks forever (a pause between them) until the client
// goes away.
func stream(pause time.Duration) hostileHandler {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Consul-Index", "5")
		chunk := bytes.Repeat([]byte(`{"Key":"k","Value":null},`), 1000)
		w.Write([]byte("["))
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
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

// gzipBomb sends about 64 KiB that inflate to 64 MiB, if the client asked for
// gzip (Go's transport does, and inflates transparently).
func gzipBomb() hostileHandler {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	zw.Write([]byte("["))
	for range 64 {
		zw.Write(zeros)
	}
	zw.Close()
	bomb := buf.Bytes()
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("X-Consul-Index", "5")
		w.Write(bomb)
	}
}

// raw hijacks the connection and writes s as the whole answer.
func raw(s string) hostileHandler {
	return func(w http.ResponseWriter, _ *http.Request) {
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		rw.WriteString(s)
		rw.Flush()
	}
}

// silent never answers until the client gives up.
func silent(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

func TestHostileServerAnswers(t *testing.T) {
	var redirected atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirected.Add(1)
	}))
	t.Cleanup(elsewhere.Close)
	// After the subtests, which run in parallel.
	t.Cleanup(func() {
		if n := redirected.Load(); n != 0 {
			t.Errorf("the redirect target got %d requests, want 0", n)
		}
	})

	ctx := context.Background()
	getKV := func(c *Client) error { _, _, err := c.GetKV(ctx, "k", QueryOptions{}); return err }
	blockKV := func(c *Client) error {
		_, _, err := c.GetKV(ctx, "k", QueryOptions{Index: 7, Wait: 500 * time.Millisecond})
		return err
	}
	acquire := func(c *Client) error { _, err := c.Acquire(ctx, "k", "sid", []byte("v")); return err }
	renew := func(c *Client) error { _, err := c.RenewSession(ctx, "sid"); return err }
	create := func(c *Client) error {
		_, err := c.CreateSession(ctx, SessionRequest{TTL: 10 * time.Second})
		return err
	}
	info := func(c *Client) error { _, _, err := c.SessionInfo(ctx, "sid", QueryOptions{}); return err }
	nodeName := func(c *Client) error { _, err := c.NodeName(ctx); return err }

	var (
		request   *RequestError
		decode    *DecodeError
		statusErr *StatusError
	)
	tests := []struct {
		name      string
		handler   hostileHandler
		call      func(*Client) error
		as        any    // pointer to the wanted error type
		want      string // in the message
		retryable bool
		within    time.Duration // the call returns within this
	}{
		{"truncated JSON on the wire", cutShort(`[{"Key":"k","Sess`), getKV, &request, "GET /v1/kv/k: unexpected EOF", true, time.Second},
		{"truncated JSON in a complete answer", status(200, `[{"Key":"k","Sess`, "X-Consul-Index", "5"), getKV, &decode, "GET /v1/kv/k: bad answer: decode JSON: unexpected end of JSON input", false, time.Second},
		{"endless body", stream(0), getKV, &decode, "bad answer: answer larger than 4194304 bytes", false, 5 * time.Second},
		{"gzip bomb", gzipBomb(), getKV, &decode, "GET /v1/kv/k: bad answer: answer larger than 4194304 bytes", false, 5 * time.Second},
		{"invalid gzip", status(200, "not gzip at all", "Content-Encoding", "gzip"), getKV, &request, "gzip: invalid header", true, time.Second},
		{"slow endless body", stream(20 * time.Millisecond), getKV, &request, "GET /v1/kv/k: no answer in time (500ms)", true, 2 * time.Second},
		{"slow endless body, blocking query", stream(20 * time.Millisecond), blockKV, &request, "no answer in time (1.03125s)", true, 3 * time.Second},
		{"no answer at all", silent, renew, &request, "PUT /v1/session/renew/sid: no answer in time (500ms)", true, 2 * time.Second},
		{"connection closed without an answer", raw(""), acquire, &request, "PUT /v1/kv/k: EOF", true, time.Second},
		{"garbage status line", raw("HTTP/1.1 two hundred OK\r\n\r\n"), acquire, &request, "malformed HTTP status code", true, time.Second},
		{"not HTTP at all", raw("SSH-2.0-OpenSSH_9.6\r\n"), getKV, &request, "malformed HTTP", true, time.Second},
		{"11 MiB of headers", status(200, "[]", "X-Junk", strings.Repeat("j", 11<<20)), getKV, &request, "server response headers exceeded", true, 5 * time.Second},
		{"Session is a number", status(200, `[{"Key":"k","Session":5}]`, "X-Consul-Index", "5"), getKV, &decode, "cannot unmarshal number into Go struct field KVPair.Session of type string", false, time.Second},
		{"ModifyIndex is a string", status(200, `[{"Key":"k","ModifyIndex":"5"}]`, "X-Consul-Index", "5"), getKV, &decode, "KVPair.ModifyIndex of type uint64", false, time.Second},
		{"Flags are negative", status(200, `[{"Key":"k","Flags":-1}]`, "X-Consul-Index", "5"), getKV, &decode, "KVPair.Flags of type uint64", false, time.Second},
		{"Value is not base64", status(200, `[{"Key":"k","Value":"%%%"}]`, "X-Consul-Index", "5"), getKV, &decode, "illegal base64 data", false, time.Second},
		{"negative X-Consul-Index", status(200, "[]", "X-Consul-Index", "-1"), getKV, &decode, `X-Consul-Index "-1" is not an index`, false, time.Second},
		{"X-Consul-Index past uint64", status(200, "[]", "X-Consul-Index", "18446744073709551616"), info, &decode, `X-Consul-Index "18446744073709551616" is not an index`, false, time.Second},
		{"X-Consul-KnownLeader not a boolean", status(200, "[]", "X-Consul-Index", "5", "X-Consul-KnownLeader", "maybe"), info, &decode, `X-Consul-KnownLeader "maybe" is not a boolean`, false, time.Second},
		{"renew answers an object", status(200, `{"ID":"sid"}`), renew, &decode, "PUT /v1/session/renew/sid: bad answer: decode JSON: json: cannot unmarshal object", false, time.Second},
		{"renew answers a TTL without unit", status(200, `[{"ID":"sid","TTL":"10"}]`), renew, &decode, `session "sid": TTL: time: missing unit in duration "10"`, false, time.Second},
		{"session ID is a number", status(200, `{"ID":42}`), create, &decode, "PUT /v1/session/create: bad answer", false, time.Second},
		{"empty body for a boolean", status(200, ""), acquire, &decode, `PUT /v1/kv/k: bad answer: answer "", want true or false`, false, time.Second},
		{"JSON for a boolean", status(200, `{"ok":true}`), acquire, &decode, `answer "{\"ok\":true}", want true or false`, false, time.Second},
		{"agent self is a list", status(200, `["n1"]`), nodeName, &decode, "GET /v1/agent/self: bad answer: decode JSON", false, time.Second},
		{"HTML error page", status(502, "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>nginx</body>\n</html>\n", "Content-Type", "text/html"), acquire, &statusErr,
			"PUT /v1/kv/k: 502 <html> <head><title>502 Bad Gateway</title></head> <body>nginx</body> </html>", true, time.Second},
		{"HTML page with 200", status(200, "<html><body>Welcome to nginx!</body></html>"), getKV, &decode, "decode JSON: invalid character '<'", false, time.Second},
		{"redirect elsewhere", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
		}, acquire, &statusErr, "PUT /v1/kv/k: 307 Temporary Redirect", false, time.Second},
	}
	// The client reads 10 MiB of headers before it refuses them: ~0.5s
	// under -race, so the 500ms request timeout, which this case does not
	// test, would fire first. It gets its whole time bound instead.
	slowToRefuse := map[string]bool{"11 MiB of headers": true}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Side by side: the timeouts wait in real time.
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(tt.handler))
			t.Cleanup(srv.Close)
			timeout := 500 * time.Millisecond
			if slowToRefuse[tt.name] {
				timeout = tt.within
			}
			c, err := NewClient(Config{Address: srv.URL, Token: hostileToken, RequestTimeout: timeout})
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			err = tt.call(c)
			took := time.Since(t0)
			if took > tt.within {
				t.Errorf("the call took %v, want at most %v", took, tt.within)
			}
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			// A target of its own: errors.As writes to it, and the
			// subtests run side by side.
			as := reflect.New(reflect.TypeOf(tt.as).Elem()).Interface()
			if !errors.As(err, as) {
				t.Errorf("error %T %q, want a %T", err, msg, as)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q\nwant it to contain %q", msg, tt.want)
			}
			if got := IsRetryable(err); got != tt.retryable {
				t.Errorf("IsRetryable = %v, want %v", got, tt.retryable)
			}
			if strings.Contains(msg, hostileToken) || strings.ContainsAny(msg, "\r\n") || len(msg) > 2*maxErrorBody {
				t.Errorf("error is not one short line without the token: %q", msg)
			}
		})
	}
}

// TestHostileServerConnectionsAreReused: bad answers that were read to the
// end keep the pool usable, and answers dropped half-way don't poison it:
// the next good answer on the same client works.
func TestHostileServerConnectionsAreReused(t *testing.T) {
	var n atomic.Int64
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 3 {
		case 1:
			cutShort(`[{"Key":"k"`)(w, r)
		case 2:
			status(200, `[{"Key":"k","Session":5}]`, "X-Consul-Index", "5")(w, r)
		default:
			status(200, `[{"Key":"k","Session":"s"}]`, "X-Consul-Index", "5")(w, r)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := NewClient(Config{Address: srv.URL, RequestTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 10
	good := 0
	for range 3 * rounds {
		p, _, err := c.GetKV(context.Background(), "k", QueryOptions{})
		if err == nil && p != nil && p.Session == "s" {
			good++
		}
	}
	if good != rounds {
		t.Errorf("%d good answers out of %d, want %d", good, 3*rounds, rounds)
	}
	// One new connection per dropped answer, plus the first.
	if got := conns.Load(); got > rounds+1 {
		t.Errorf("%d connections for %d requests, want at most %d: bad answers read in full must not cost a connection", got, 3*rounds, rounds+1)
	}
}
