package consulhttp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"syscall"
	"testing"
)

func TestStatusErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  *StatusError
		want string
	}{
		{
			name: "validation 500",
			err:  &StatusError{Method: "PUT", Path: "/v1/session/create", Code: 500, Body: "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"},
			want: "consul: PUT /v1/session/create: 500 Invalid Session TTL '5000000000', must be between [10s=24h0m0s]",
		},
		{
			name: "no body",
			err:  &StatusError{Method: "GET", Path: "/v1/kv/x", Code: 502},
			want: "consul: GET /v1/kv/x: 502 Bad Gateway",
		},
		{
			name: "permission denied says what to do",
			err:  &StatusError{Method: "PUT", Path: "/v1/kv/x", Code: 403, Body: `Permission denied: token with AccessorID 'a1' lacks permission 'key:write' on "x"`},
			want: `consul: PUT /v1/kv/x: 403 Permission denied: token with AccessorID 'a1' lacks permission 'key:write' on "x" (the ACL token lacks this permission: add it to a policy of the token)`,
		},
		{
			name: "unknown token",
			err:  &StatusError{Method: "GET", Path: "/v1/agent/self", Code: 403, Body: "ACL not found"},
			want: "consul: GET /v1/agent/self: 403 ACL not found (Consul does not know the ACL token: check CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestStatusErrorBodyIsOneBoundedLine(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"trimmed", "  No cluster leader\n", "No cluster leader"},
		{"collapsed", "<html>\n  <body>Bad\tGateway</body>\n</html>", "<html> <body>Bad Gateway</body> </html>"},
		{"no terminal escapes", "evil\x1b[2Jtext", "evil [2Jtext"},
		{"invalid UTF-8", "a\xffb", "a?b"},
		{"bounded", string(make([]byte, 0)) + repeat("é", 2000), repeat("é", maxErrorBody/2) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newFakeClient(t, Config{}, replyWith(500, tt.body))
			err := c.DeleteKV(context.Background(), "k")
			var se *StatusError
			if !errors.As(err, &se) {
				t.Fatalf("DeleteKV: %v; want a *StatusError", err)
			}
			if se.Body != tt.want {
				t.Errorf("Body = %q, want %q", se.Body, tt.want)
			}
		})
	}
}

func repeat(s string, n int) string {
	b := make([]byte, 0, len(s)*n)
	for range n {
		b = append(b, s...)
	}
	return string(b)
}

func TestIsRetryable(t *testing.T) {
	status := func(code int, body string) error {
		return &StatusError{Method: "PUT", Path: "/v1/x", Code: code, Body: body}
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain error", errors.New("boom"), false},
		{"connection refused", &RequestError{Method: "GET", Path: "/", Err: syscall.ECONNREFUSED}, true},
		{"our own timeout", &RequestError{Method: "GET", Path: "/", Err: ErrRequestTimeout}, true},
		{"wrapped request error", fmt.Errorf("renew: %w", &RequestError{Err: syscall.ECONNRESET}), true},
		{"caller canceled", fmt.Errorf("consul: GET /: %w", context.Canceled), false},
		{"decode error", &DecodeError{Err: errors.New("bad JSON")}, false},
		{"429", status(429, "RPC rate limit exceeded"), true},
		{"503", status(503, "rate limit exceeded, try again later"), true},
		{"502 from a proxy", status(502, ""), true},
		{"504 from a proxy", status(504, ""), true},
		{"500 no leader", status(500, "No cluster leader"), true},
		{"500 rpc error", status(500, "rpc error making call: EOF"), true},
		{"500 missing node registration", status(500, "Missing node registration"), true},
		{"500 missing check", status(500, "Missing check 'service:web' registration"), true},
		{"500 critical check", status(500, "Check 'serfHealth' is in critical state"), true},
		{"500 invalid TTL", status(500, "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"), false},
		{"500 invalid TTL forwarded", status(500, "rpc error making call: Invalid Session TTL '1'"), false},
		{"500 invalid behavior", status(500, "Invalid session behavior: foo"), false},
		{"500 invalid session", status(500, `invalid session "5f5e…"`), false},
		{"500 no path to datacenter", status(500, "No path to datacenter"), false},
		{"400", status(400, "Conflicting flags"), false},
		{"403", status(403, "Permission denied"), false},
		{"404", status(404, ""), false},
		{"405", status(405, "method GET not allowed"), false},
		{"413", status(413, "Request body too large"), false},
		{"session not found", sessionNotFound(&StatusError{Code: 404}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsRetryable(tt.err); got != tt.want {
				t.Errorf("IsRetryable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestIsPermissionDenied(t *testing.T) {
	c, _ := newFakeClient(t, Config{}, replyWith(403, `Permission denied: anonymous token lacks permission 'key:read' on "k"`))
	_, _, err := c.GetKV(context.Background(), "k", QueryOptions{})
	if !IsPermissionDenied(err) || IsRetryable(err) {
		t.Errorf("403: IsPermissionDenied %v, IsRetryable %v; want true, false", IsPermissionDenied(err), IsRetryable(err))
	}
	for _, err := range []error{nil, errors.New("x"), &StatusError{Code: 500, Body: "Permission denied"}} {
		if IsPermissionDenied(err) {
			t.Errorf("IsPermissionDenied(%v) = true", err)
		}
	}
}

func TestTransportErrorIsRequestError(t *testing.T) {
	c, _ := newFakeClient(t, Config{}, func(*http.Request) (*http.Response, error) {
		return nil, fmt.Errorf("dial tcp 127.0.0.1:8500: %w", syscall.ECONNREFUSED)
	})
	err := c.DestroySession(context.Background(), "sid")
	var re *RequestError
	if !errors.As(err, &re) || !errors.Is(err, syscall.ECONNREFUSED) || !IsRetryable(err) {
		t.Fatalf("DestroySession without Consul: %v; want a retryable *RequestError wrapping ECONNREFUSED", err)
	}
	want := "consul: PUT /v1/session/destroy/sid: dial tcp 127.0.0.1:8500: connection refused"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}
