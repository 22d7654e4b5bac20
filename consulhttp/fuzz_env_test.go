package consulhttp

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz targets for what the user (environment, flags) hands the client,
// and for what it makes of Consul's error bodies. Seed corpora are in
// testdata/fuzz/<FuzzName>/; plain `go test` runs them. Explore with e.g.
// go test -run '^$' -fuzz FuzzConfigFromEnv -fuzztime 20s ./consulhttp

// FuzzConfigFromEnv: any environment gives a Config or an error, never a
// panic. Every line of the error names the variable it is about. What is
// accepted gives a client whose requests reach the transport: an address
// that no request could use must be refused here, not retried forever
// later. The token never shows in an error.
func FuzzConfigFromEnv(f *testing.F) {
	f.Fuzz(func(t *testing.T, addr, token, ssl, verify, cert, key, serverName, ns string) {
		env := map[string]string{
			EnvHTTPAddr: addr, EnvHTTPToken: token, EnvHTTPSSL: ssl, EnvHTTPSSLVerify: verify,
			EnvClientCert: cert, EnvClientKey: key, EnvTLSServerName: serverName, EnvNamespace: ns,
		}
		cfg, err := ConfigFromEnv(func(k string) string { return env[k] })
		if err != nil {
			if cfg != (Config{}) {
				t.Errorf("error %v with a non-zero Config %+v", err, cfg)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "CONSUL_") {
					t.Errorf("error line %q does not start with the variable it is about", line)
				}
			}
			if secretShows(err.Error(), token, addr, ssl, verify, cert, key, serverName, ns) {
				t.Errorf("error %q shows the token", err)
			}
			return
		}
		// The variables ConfigFromEnv only copies must come back as given.
		if cfg.Address != addr || cfg.Token != token || cfg.TLS.CertFile != cert || cfg.TLS.KeyFile != key ||
			cfg.TLS.ServerName != serverName || cfg.Namespace != ns {
			t.Errorf("ConfigFromEnv changed a value: %+v", cfg)
		}
		if (cert == "") != (key == "") {
			t.Errorf("accepted a client certificate without its key (cert %q, key %q)", cert, key)
		}
		// No files here: the TLS material is the transport's business.
		cfg.TLS = TLSConfig{}
		var got *http.Request
		cfg.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			got = r
			return answer(200, `"127.0.0.1:8300"`), nil
		})
		c, err := NewClient(cfg)
		if err != nil {
			if strings.ContainsFunc(token, func(r rune) bool { return r < 0x20 || r == 0x7f }) && strings.Contains(err.Error(), "ACL token contains a") {
				return
			}
			t.Fatalf("NewClient refused what ConfigFromEnv accepted: %v", err)
		}
		if _, err := c.Leader(context.Background()); err != nil {
			t.Fatalf("CONSUL_HTTP_ADDR=%q: %v", addr, err)
		}
		if !strings.HasSuffix(got.URL.Path, "/v1/status/leader") {
			t.Errorf("request path %q", got.URL.Path)
		}
		if tok := got.Header.Get("X-Consul-Token"); tok != token {
			t.Errorf("X-Consul-Token %q, want %q", tok, token)
		}
		if ns != "" && got.URL.Query().Get("ns") != ns {
			t.Errorf("ns=%q sent as %q", ns, got.URL.Query().Get("ns"))
		}

		// Go's own transport checks the URL and headers before it dials:
		// what we accepted must pass them, or every request would fail
		// with an error that looks like a connection problem and is
		// retried forever.
		cfg.Transport = &http.Transport{DialContext: intercept, DialTLSContext: intercept}
		if c, err = NewClient(cfg); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Leader(context.Background()); !errors.Is(err, errIntercepted) {
			t.Errorf("CONSUL_HTTP_ADDR=%q accepted, but the request fails before it is sent: %v", addr, err)
		}
	})
}

var errIntercepted = errors.New("dial intercepted by the test")

func intercept(context.Context, string, string) (net.Conn, error) { return nil, errIntercepted }

// secretShows reports whether a token long enough to be recognised shows
// in msg without being part of another input (which the message may quote).
func secretShows(msg, token string, others ...string) bool {
	if len(token) < 8 || !strings.Contains(msg, token) {
		return false
	}
	for _, o := range others {
		if strings.Contains(o, token) {
			return false
		}
	}
	return true
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// FuzzStatusErrorBody: whatever a server puts in an error answer, the
// *StatusError says it in one bounded line of valid UTF-8 without control
// characters, and never repeats the token or the basic-auth password, even
// cut in half at the size limit.
func FuzzStatusErrorBody(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte, token, pass string) {
		if token == "" || pass == "" {
			return // nothing to leak
		}
		c, err := NewClient(Config{Token: token, HTTPAuth: "u:" + pass, Transport: roundTripFunc(nil)})
		if err != nil {
			return // a token NewClient refuses is never sent
		}
		se := c.statusError(call{method: "PUT", path: "/v1/kv/k"}, &response{code: 500, body: body})
		msg := se.Error()
		if len(se.Body) > maxErrorBody+len("…") {
			t.Errorf("Body is %d bytes, want at most %d", len(se.Body), maxErrorBody)
		}
		if !utf8.ValidString(msg) || strings.ContainsFunc(msg, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Errorf("message %q is not one clean line", msg)
		}
		for _, secret := range []string{token, pass} {
			// A secret of a few common characters shows by chance; and the
			// redaction marker may itself contain a short secret.
			if len(secret) >= 6 && strings.Contains(msg, secret) && !strings.Contains("consul: PUT /v1/kv/k: 500 <redacted>…", secret) {
				if !strings.Contains(strings.ReplaceAll(string(body), secret, ""), secret) {
					t.Errorf("message %q shows a secret %q", msg, secret)
				}
			}
		}
	})
}

// FuzzKVPath: a key is refused or becomes a path that says exactly that
// key: decoding the path gives it back, and nothing in the key (?, #, %,
// ..) can turn into a query, a fragment or another path.
func FuzzKVPath(f *testing.F) {
	f.Fuzz(func(t *testing.T, key string) {
		p, err := kvPath(key)
		if err != nil {
			return
		}
		u, err := url.Parse("http://consul" + p + "?index=1")
		if err != nil {
			t.Fatalf("key %q: path %q does not parse: %v", key, p, err)
		}
		if u.RawQuery != "index=1" || u.Fragment != "" {
			t.Errorf("key %q: path %q leaks into the query or fragment: %+v", key, p, u)
		}
		if u.Path != "/v1/kv/"+key {
			t.Errorf("key %q: path %q decodes to %q", key, p, u.Path)
		}
		for _, seg := range strings.Split(strings.TrimPrefix(u.Path, "/v1/kv/"), "/") {
			if seg == "." || seg == ".." {
				t.Errorf("key %q: segment %q would be cleaned away by Consul's router", key, seg)
			}
		}
	})
}
