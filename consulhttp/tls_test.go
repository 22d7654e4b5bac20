package consulhttp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{name}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	return certFile, keyFile
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	certA, keyA := writeCert(t, filepath.Join(dir, "cas"), "a.test")
	writeCert(t, filepath.Join(dir, "cas"), "b.test")
	_, keyB := writeCert(t, dir, "other.test")
	notPEM := filepath.Join(dir, "junk.txt")
	writeFile(t, notPEM, []byte("not a certificate"))
	emptyDir := filepath.Join(dir, "empty")
	if err := os.Mkdir(emptyDir, 0o700); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		cfg        TLSConfig
		wantNil    bool
		wantCAs    int // subjects in RootCAs; -1: system roots (nil)
		wantCerts  int
		wantServer string
		wantErr    string
	}{
		{name: "nothing asked", cfg: TLSConfig{}, wantNil: true},
		{name: "CA file", cfg: TLSConfig{CAFile: certA}, wantCAs: 1},
		{name: "CA file wins over CA path", cfg: TLSConfig{CAFile: certA, CAPath: filepath.Join(dir, "cas")}, wantCAs: 1},
		// The cas directory holds two certificates and two keys: keys are
		// not certificates, so loading it fails like go-rootcerts does.
		{name: "CA path with a key in it", cfg: TLSConfig{CAPath: filepath.Join(dir, "cas")}, wantErr: "no PEM certificate in it"},
		{name: "CA file that is not PEM", cfg: TLSConfig{CAFile: notPEM}, wantErr: `CA file "` + notPEM + `" (CONSUL_CACERT): no PEM certificate`},
		{name: "empty CA path", cfg: TLSConfig{CAPath: emptyDir}, wantErr: "(CONSUL_CAPATH): no certificate files in it"},
		{name: "client certificate", cfg: TLSConfig{CertFile: certA, KeyFile: keyA}, wantCAs: -1, wantCerts: 1},
		{name: "key of another certificate", cfg: TLSConfig{CertFile: certA, KeyFile: keyB}, wantErr: "(CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY)"},
		{name: "server name with port", cfg: TLSConfig{ServerName: "server.dc1.consul:8501"}, wantCAs: -1, wantServer: "server.dc1.consul"},
		{name: "server name", cfg: TLSConfig{ServerName: "consul.test"}, wantCAs: -1, wantServer: "consul.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.tlsConfig()
			if tt.wantErr != "" {
				if m := missingFrom(errorText(err), tt.wantErr); m != "" {
					t.Fatalf("tlsConfig error = %v, want %q", err, m)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantNil {
				if got != nil {
					t.Fatalf("tlsConfig = %+v, want nil (Go's defaults)", got)
				}
				return
			}
			cas := -1
			if got.RootCAs != nil {
				cas = len(got.RootCAs.Subjects()) //nolint:staticcheck // fine for a pool we built
			}
			if cas != tt.wantCAs || len(got.Certificates) != tt.wantCerts || got.ServerName != tt.wantServer {
				t.Errorf("tlsConfig: %d CAs, %d certs, server name %q; want %d, %d, %q",
					cas, len(got.Certificates), got.ServerName, tt.wantCAs, tt.wantCerts, tt.wantServer)
			}
		})
	}
}

// TestHTTPSRoundTrip checks the TLS settings against a real TLS server on
// loopback: trusted through CONSUL_CACERT, refused (and not retryable)
// without it.
func TestHTTPSRoundTrip(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`"127.0.0.1:8300"`))
	}))
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	writeFile(t, caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))

	cfg, err := ConfigFromEnv(env{
		"CONSUL_HTTP_ADDR": srv.Listener.Addr().String(), "CONSUL_HTTP_SSL": "true", "CONSUL_CACERT": caFile,
	}.get)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Leader(context.Background()); err != nil || got != "127.0.0.1:8300" {
		t.Fatalf("Leader over https = %q, %v; want 127.0.0.1:8300", got, err)
	}

	cfg.TLS.CAFile = ""
	c, err = NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Leader(context.Background())
	var cve *tls.CertificateVerificationError
	if !errors.As(err, &cve) || IsRetryable(err) {
		t.Fatalf("Leader with an untrusted server certificate: %v (retryable %v); want a certificate error, not retryable", err, IsRetryable(err))
	}
}

// TestUnixSocket checks that unix:///path dials the socket.
func TestUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "consul.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"Config":{"NodeName":"via-socket"}}`))
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	c, err := NewClient(Config{Address: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.NodeName(context.Background()); err != nil || got != "via-socket" {
		t.Fatalf("NodeName over a unix socket = %q, %v; want via-socket", got, err)
	}
}

type env map[string]string

func (e env) get(k string) string { return e[k] }
