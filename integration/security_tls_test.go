package integration

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leaderd/leaderd/integration/consultest"
)

// tlsCase is one way of reaching a Consul agent over HTTPS.
type tlsCase struct {
	name string
	env  []string
	// Exactly one of the three outcomes:
	elected bool   // leads, then stops cleanly on SIGTERM
	exit    string // exits 1 at once; its last line contains this
	retries string // keeps retrying without leading; a warning contains this
}

// TestTLSServerVerification: HTTPS to a real agent with a CA made by the
// test. Verification is on by default: with the CA (file, directory or
// system roots) leaderd leads; a server certificate it can't verify (no CA,
// the wrong CA, the wrong server name) makes it exit 1 at once saying why,
// instead of silently skipping verification or retrying forever. Only
// CONSUL_HTTP_SSL_VERIFY=false skips it.
func TestTLSServerVerification(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	agent, https := startTLSAgent(t, pki, false)
	port := strings.TrimPrefix(https, "https://127.0.0.1:")
	tests := []tlsCase{
		{name: "CA file", env: []string{"CONSUL_HTTP_ADDR=" + https, "CONSUL_CACERT=" + pki.ca}, elected: true},
		{name: "CA directory", env: []string{"CONSUL_HTTP_ADDR=" + https, "CONSUL_CAPATH=" + pki.caDir}, elected: true},
		{name: "CONSUL_HTTP_SSL with host:port", env: []string{"CONSUL_HTTP_ADDR=127.0.0.1:" + port, "CONSUL_HTTP_SSL=true", "CONSUL_CACERT=" + pki.ca}, elected: true},
		{name: "server name from CONSUL_TLS_SERVER_NAME", env: []string{"CONSUL_HTTP_ADDR=" + https, "CONSUL_CACERT=" + pki.ca, "CONSUL_TLS_SERVER_NAME=server.dc1.consul"}, elected: true},
		{name: "no CA: the system roots don't know it", env: []string{"CONSUL_HTTP_ADDR=" + https},
			exit: "tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{name: "the wrong CA", env: []string{"CONSUL_HTTP_ADDR=" + https, "CONSUL_CACERT=" + pki.otherCA},
			exit: "certificate signed by unknown authority"},
		{name: "the wrong server name", env: []string{"CONSUL_HTTP_ADDR=" + https, "CONSUL_CACERT=" + pki.ca, "CONSUL_TLS_SERVER_NAME=consul.example"},
			exit: "x509: certificate is valid for server.dc1.consul, localhost, not consul.example"},
		{name: "plain HTTP to the HTTPS port", env: []string{"CONSUL_HTTP_ADDR=http://127.0.0.1:" + port},
			exit: "400 Client sent an HTTP request to an HTTPS server."},
		{name: "verification skipped only when asked", env: []string{"CONSUL_HTTP_ADDR=" + https, "CONSUL_HTTP_SSL_VERIFY=false"}, elected: true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runTLSCase(t, agent, "tls-server-"+string(rune('a'+i)), tc) })
	}
}

// TestTLSClientCertificates: an agent whose HTTPS demands a client
// certificate (verify_incoming). leaderd's certificate from
// CONSUL_CLIENT_CERT/KEY is accepted; without one Consul refuses the
// handshake, and leaderd keeps retrying (with backoff) without leading,
// saying why. A certificate from another CA is not even sent (Go's client
// only offers one the server's CA list accepts): same outcome.
func TestTLSClientCertificates(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	agent, https := startTLSAgent(t, pki, true)
	base := []string{"CONSUL_HTTP_ADDR=" + https, "CONSUL_CACERT=" + pki.ca}
	tests := []tlsCase{
		{name: "client certificate", env: append(base, "CONSUL_CLIENT_CERT="+pki.clientCert, "CONSUL_CLIENT_KEY="+pki.clientKey), elected: true},
		{name: "no client certificate", env: base, retries: "remote error: tls: certificate required"},
		{name: "client certificate from another CA", env: append(base, "CONSUL_CLIENT_CERT="+pki.otherCert, "CONSUL_CLIENT_KEY="+pki.otherKey),
			retries: "remote error: tls: certificate required"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runTLSCase(t, agent, "tls-client-"+string(rune('a'+i)), tc) })
	}
}

func runTLSCase(t *testing.T, agent *consultest.Agent, service string, tc tlsCase) {
	t.Helper()
	// A free key that exists: a fresh leaderd waits out a lease window
	// before taking a key that is missing altogether.
	consulAPI(t, agent, http.MethodPut, "/v1/kv/services/"+service+"/leader", map[string]string{}, nil)
	h := newHub()
	p := start(t, h, "tls", tc.env, runArgs(service, "t1")...)
	switch {
	case tc.elected:
		h.wait(t, 10*time.Second, 0, "election over HTTPS", from(p, "elected"))
		p.signal(t, syscall.SIGTERM)
		if code := p.exit(t, 5*time.Second); code != 0 {
			t.Errorf("exit code after SIGTERM = %d, want 0", code)
		}
	case tc.exit != "":
		if code := p.exit(t, 10*time.Second); code != 1 {
			t.Errorf("exit code = %d, want 1", code)
		}
		last := h.wait(t, time.Second, 0, "the error line", func(l logLine) bool {
			return !l.stdout && strings.HasPrefix(l.raw, "leaderd run: ")
		})
		t.Logf("%s", last.raw)
		if !strings.Contains(last.raw, tc.exit) {
			t.Errorf("last line %q\nwant it to contain %q", last.raw, tc.exit)
		}
	default:
		// Retrying, not stopped: a second failed session create a backoff
		// after the first. The reason is named in some warnings only: with
		// TLS 1.3 the server's refusal of the client comes after the
		// client's handshake has succeeded, so a request may instead fail
		// with "write: broken pipe" or "http2: client conn could not be
		// established" (reported as a usability problem).
		h.wait(t, 10*time.Second, 0, "a warning naming the reason", func(l logLine) bool {
			return (from(p, "create session failed")(l) || from(p, "watch key failed")(l)) && strings.Contains(l.str("err"), tc.retries)
		})
		h.wait(t, 10*time.Second, 0, "a second failed session create", func(l logLine) bool {
			return from(p, "create session failed")(l) && l.num("attempt") >= 2
		})
		for _, l := range h.lines {
			if from(p, "create session failed")(l) || from(p, "watch key failed")(l) {
				t.Logf("attempt %d: %s", l.num("attempt"), l.str("err"))
			}
		}
		addr := statusAddr(t, h, p)
		if code, _ := httpGet(t, addr, "/v1/leader"); code != http.StatusServiceUnavailable {
			t.Errorf("GET /v1/leader = %d, want 503", code)
		}
		p.signal(t, syscall.SIGTERM)
		if code := p.exit(t, 5*time.Second); code != 0 {
			t.Errorf("exit code after SIGTERM = %d, want 0", code)
		}
	}
	for _, l := range h.lines {
		if !tc.elected && from(p, "elected")(l) {
			t.Errorf("elected over a connection that should not work: %s", l.raw)
		}
	}
}
