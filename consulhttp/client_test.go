package consulhttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRequestHeadersAndParameters(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		wantQuery string
		wantToken string
		wantAuth  string // "user:pass", "" for none
	}{
		{name: "defaults send nothing extra"},
		{name: "token as header", cfg: Config{Token: "secret-token"}, wantToken: "secret-token"},
		{name: "basic auth user only", cfg: Config{HTTPAuth: "alice"}, wantAuth: "alice:"},
		{name: "basic auth with colon in password", cfg: Config{HTTPAuth: "alice:pa:ss"}, wantAuth: "alice:pa:ss"},
		{name: "dc", cfg: Config{Datacenter: "dc2"}, wantQuery: "dc=dc2"},
		{name: "ns and partition", cfg: Config{Namespace: "team", Partition: "part"}, wantQuery: "ns=team&partition=part"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, f := newFakeClient(t, tt.cfg, replyWith(200, `"10.0.0.1:8300"`))
			if _, err := c.Leader(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := f.last()
			if got.RawQuery != tt.wantQuery {
				t.Errorf("query = %q, want %q", got.RawQuery, tt.wantQuery)
			}
			if tok := got.Header.Get("X-Consul-Token"); tok != tt.wantToken {
				t.Errorf("X-Consul-Token = %q, want %q", tok, tt.wantToken)
			}
			if tt.wantToken != "" && strings.Contains(got.RawQuery+got.EscapedPath, tt.wantToken) {
				t.Errorf("token in the URL: %s?%s", got.EscapedPath, got.RawQuery)
			}
			r := &http.Request{Header: got.Header}
			user, pass, ok := r.BasicAuth()
			if gotAuth := user + ":" + pass; ok != (tt.wantAuth != "") || (ok && gotAuth != tt.wantAuth) {
				t.Errorf("basic auth = %q (set %v), want %q", gotAuth, ok, tt.wantAuth)
			}
		})
	}
}

func TestQueryOptionsParameters(t *testing.T) {
	tests := []struct {
		name string
		q    QueryOptions
		want string
	}{
		{name: "none", q: QueryOptions{}, want: ""},
		{name: "consistent", q: QueryOptions{Consistent: true}, want: "consistent="},
		{name: "stale", q: QueryOptions{Stale: true}, want: "stale="},
		{name: "wait without index does not block", q: QueryOptions{Wait: minute}, want: ""},
		{name: "index without wait: Consul's default", q: QueryOptions{Index: 7}, want: "index=7"},
		{name: "blocking", q: QueryOptions{Index: 18446744073709551615, Wait: minute}, want: "index=18446744073709551615&wait=60000ms"},
		{name: "sub-millisecond wait rounds up", q: QueryOptions{Index: 1, Wait: 1}, want: "index=1&wait=1ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, f := newFakeClient(t, Config{}, replyWith(200, "[]", "X-Consul-Index", "9"))
			if _, _, err := c.SessionInfo(context.Background(), "sid", tt.q); err != nil {
				t.Fatal(err)
			}
			if got := f.last().RawQuery; got != tt.want {
				t.Errorf("query = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBadQueryOptionsSendNothing(t *testing.T) {
	for _, q := range []QueryOptions{{Consistent: true, Stale: true}, {Index: 1, Wait: -1}} {
		c, f := newFakeClient(t, Config{}, nil)
		_, _, err := c.GetKV(context.Background(), "k", q)
		if err == nil || len(f.requests()) != 0 {
			t.Errorf("GetKV(%+v) = %v after %d requests; want an error and no request", q, err, len(f.requests()))
		}
	}
}

// TestBodiesHaveContentLength: Consul reads a session-create body only with
// a Content-Length, so no body may go out chunked.
func TestBodiesHaveContentLength(t *testing.T) {
	ctx := context.Background()
	calls := map[string]func(c *Client) error{
		"CreateSession": func(c *Client) error {
			_, err := c.CreateSession(ctx, SessionRequest{TTL: 10e9, NodeChecks: []string{}})
			return err
		},
		"Acquire": func(c *Client) error { _, err := c.Acquire(ctx, "k", "sid", []byte("v")); return err },
		"Release": func(c *Client) error { _, err := c.Release(ctx, "k", "sid", []byte("v")); return err },
		"PutKV":   func(c *Client) error { return c.PutKV(ctx, "k", []byte("v")) },
		"CASKV":   func(c *Client) error { _, err := c.CASKV(ctx, "k", []byte("v"), 3); return err },
		"RegisterService": func(c *Client) error {
			return c.RegisterService(ctx, ServiceRegistration{Name: "svc"})
		},
		"RegisterCheck": func(c *Client) error { return c.RegisterCheck(ctx, AgentCheck{Name: "chk", TTL: "5s"}) },
		"UpdateTTL":     func(c *Client) error { return c.UpdateTTL(ctx, "chk", StatusPassing, "ok") },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			c, f := newFakeClient(t, Config{}, replyWith(200, `{"ID":"sid"}`))
			f.handle = func(r *http.Request) (*http.Response, error) {
				if strings.HasPrefix(r.URL.Path, "/v1/kv/") {
					return answer(200, "true"), nil
				}
				return answer(200, `{"ID":"sid"}`), nil
			}
			if err := call(c); err != nil {
				t.Fatal(err)
			}
			got := f.last()
			if got.Body == "" || got.ContentLength != int64(len(got.Body)) || len(got.TransferEncoding) != 0 {
				t.Errorf("body %q sent with Content-Length %d, Transfer-Encoding %v; want its length, not chunked",
					got.Body, got.ContentLength, got.TransferEncoding)
			}
		})
	}
}

// TestContentLengthOnTheWire checks what a real HTTP server receives, which
// the fake transport cannot see.
func TestContentLengthOnTheWire(t *testing.T) {
	type wire struct {
		ContentLength    int64
		TransferEncoding []string
		Body             string
	}
	got := make(chan wire, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- wire{r.ContentLength, r.TransferEncoding, string(b)}
		w.Write([]byte(`{"ID":"sid"}`))
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSession(context.Background(), SessionRequest{NodeChecks: []string{}}); err != nil {
		t.Fatal(err)
	}
	body := `{"LockDelay":"0s","NodeChecks":[]}`
	want := wire{ContentLength: int64(len(body)), Body: body}
	if diff := cmp.Diff(want, <-got); diff != "" {
		t.Errorf("session create on the wire (-want +got):\n%s", diff)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	c, f := newFakeClient(t, Config{Token: "secret-token"}, replyWith(301, "", "Location", "http://elsewhere.example/v1/kv/other"))
	err := c.PutKV(context.Background(), "k", []byte("v"))
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 301 {
		t.Fatalf("PutKV answered by a redirect: %v; want a *StatusError 301", err)
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d requests, want 1 (the redirect not followed)", n)
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	const token, pass = "0f5e8a7c-token-secret", "hunter2-password"
	echo := func(r *http.Request) (*http.Response, error) {
		u, p, _ := r.BasicAuth()
		return answer(500, "debug: token="+r.Header.Get("X-Consul-Token")+" auth="+u+":"+p), nil
	}
	c, _ := newFakeClient(t, Config{Token: token, HTTPAuth: "alice:" + pass}, echo)
	err := c.PutKV(context.Background(), "k", nil)
	msg := errorText(err)
	if msg == "" || strings.Contains(msg, token) || strings.Contains(msg, pass) {
		t.Fatalf("error %q: want an error without the token or password", msg)
	}
	if !strings.Contains(msg, "token=<redacted> auth=alice:<redacted>") {
		t.Errorf("error %q: want the secrets replaced by <redacted>", msg)
	}
}

func TestResponseBodyLimit(t *testing.T) {
	huge := strings.Repeat("x", maxResponseBody+1)
	c, _ := newFakeClient(t, Config{}, replyWith(200, huge))
	_, err := c.Leader(context.Background())
	var de *DecodeError
	if !errors.As(err, &de) || !errors.Is(err, errBodyTooLarge) || IsRetryable(err) {
		t.Fatalf("oversize answer: %v; want a *DecodeError for the size, not retryable", err)
	}
	if len(err.Error()) > 200 {
		t.Errorf("error is %d bytes long; the body must not be in it", len(err.Error()))
	}
}

func TestMalformedAnswers(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		answer *http.Response
		call   func(*Client) error
		want   string
	}{
		{"HTML instead of JSON", answer(200, "<html>proxy</html>"), func(c *Client) error { _, err := c.Leader(ctx); return err }, "decode JSON"},
		{"empty body", answer(200, ""), func(c *Client) error { _, err := c.Leader(ctx); return err }, "empty answer"},
		{"trailing data", answer(200, `"a" "b"`), func(c *Client) error { _, err := c.Leader(ctx); return err }, "decode JSON"},
		{"KV write not a boolean", answer(200, "yes"), func(c *Client) error { return c.PutKV(ctx, "k", nil) }, `answer "yes", want true or false`},
		{"index not a number", answer(200, "[]", "X-Consul-Index", "12a"), func(c *Client) error { _, _, err := c.GetKV(ctx, "k", QueryOptions{}); return err }, `X-Consul-Index "12a"`},
		{"no session ID", answer(200, `{}`), func(c *Client) error { _, err := c.CreateSession(ctx, SessionRequest{}); return err }, "no session ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newFakeClient(t, Config{}, func(*http.Request) (*http.Response, error) { return tt.answer, nil })
			err := tt.call(c)
			var de *DecodeError
			if !errors.As(err, &de) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v; want a *DecodeError containing %q", err, tt.want)
			}
		})
	}
}
