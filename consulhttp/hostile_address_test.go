package consulhttp

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestUnreachableAddressIsBadInput: an address no request could ever reach
// is refused when the configuration is read, naming CONSUL_HTTP_ADDR. Before
// this was checked, "::bad" or "127.0.0.1:99999" passed ConfigFromEnv and
// every request failed with a connection error that leaderd retried forever.
func TestUnreachableAddressIsBadInput(t *testing.T) {
	tests := []struct {
		addr string
		want string // "" for accepted
	}{
		{"::bad", `address "::bad": an IPv6 address needs brackets, e.g. [::1]:8500`},
		{"::1", `an IPv6 address needs brackets`},
		{"http://::1:8500", `an IPv6 address needs brackets`},
		{"127.0.0.1:notaport", `address "127.0.0.1:notaport": port "notaport" is not a number between 1 and 65535`},
		{"127.0.0.1:99999", `port "99999" is not a number between 1 and 65535`},
		{"127.0.0.1:0", `port "0" is not a number`},
		{"127.0.0.1:", `port "" is not a number`},
		{"https://consul:-1", `port "-1" is not a number`},
		{"[::1]x:80", `not a host:port`},
		{"a%zz:80", `not a host:port (invalid URL escape "%zz")`},
		// Accepted forms, for contrast (the consul CLI takes them too).
		{"[::1]:8500", ""},
		{"[::1]", ""},
		{"localhost", ""}, // port 80, as in the consul CLI
		{"https://consul.example:8501/prefix", ""},
		{"http://[fe80::1%25en0]:8500", ""},
		{"unix:///run/consul.sock", ""},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			_, err := ConfigFromEnv(func(k string) string {
				if k == EnvHTTPAddr {
					return tt.addr
				}
				return ""
			})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("ConfigFromEnv(CONSUL_HTTP_ADDR=%q) = %v, want it accepted", tt.addr, err)
				}
				return
			}
			if m := missingFrom(errorText(err), EnvHTTPAddr+": ", tt.want); m != "" {
				t.Fatalf("ConfigFromEnv(CONSUL_HTTP_ADDR=%q) error = %v, want it to contain %q", tt.addr, err, m)
			}
			// NewClient refuses it too (a flag's value does not go through
			// ConfigFromEnv), without blaming a variable it did not read.
			_, err = NewClient(Config{Address: tt.addr})
			if m := missingFrom(errorText(err), "consul ", tt.want); m != "" || strings.Contains(errorText(err), EnvHTTPAddr) {
				t.Errorf("NewClient(Address %q) error = %v, want it to contain %q and not name %s", tt.addr, err, tt.want, EnvHTTPAddr)
			}
		})
	}
}

// TestUnreachableAddressNeverSendsARequest: whatever NewClient accepts, a
// request reaches the transport with a URL the transport can use.
func TestUnreachableAddressNeverSendsARequest(t *testing.T) {
	for _, addr := range []string{"[::1]:8500", "localhost", "https://consul:8501/prefix"} {
		c, f := newFakeClient(t, Config{Address: addr}, replyWith(200, `"10.0.0.1:8300"`))
		if _, err := c.Leader(context.Background()); err != nil {
			var re *RequestError
			t.Errorf("Leader via %q: %v (RequestError: %v)", addr, err, errors.As(err, &re))
		}
		if n := len(f.requests()); n != 1 {
			t.Errorf("%q: %d requests, want 1", addr, n)
		}
	}
}

// TestTokenWithControlCharacterIsBadInput: Go refuses to send a header
// with a control character, and its refusal used to come back as a
// retryable RequestError on every request. NewClient refuses such a token
// instead, without quoting it.
func TestTokenWithControlCharacterIsBadInput(t *testing.T) {
	tests := []struct{ token, want string }{
		{"s3cret\x00token", "ACL token contains a control character"},
		{"s3cret\x7ftoken", "ACL token contains a control character"},
		{"s3cret\x1btoken", "ACL token contains a control character"},
		{"s3cret\ntoken", "ACL token contains a line break"},
	}
	for _, tt := range tests {
		_, err := NewClient(Config{Token: tt.token})
		if msg := errorText(err); !strings.Contains(msg, tt.want) || strings.Contains(msg, "s3cret") {
			t.Errorf("NewClient(token %q) error = %q, want %q without the token", tt.token, msg, tt.want)
		}
	}
	for _, ok := range []string{"jeton-é-ü", "e95b599e-166e-7d80-08ad-aee76e7ddf19"} {
		if _, err := NewClient(Config{Token: ok}); err != nil {
			t.Errorf("NewClient(token %q) = %v, want it accepted", ok, err)
		}
	}
}
