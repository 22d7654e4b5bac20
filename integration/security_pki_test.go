package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/leaderd/leaderd/integration/consultest"
)

// testPKI is a throwaway certificate authority made for one test, plus a
// second, unrelated one: the "wrong CA".
type testPKI struct {
	dir                   string
	ca, caDir             string // CA certificate file, and a directory holding only it
	serverCert, serverKey string // for 127.0.0.1, localhost, server.dc1.consul
	clientCert, clientKey string
	otherCA               string // an unrelated CA
	otherCert, otherKey   string // a client certificate from otherCA
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	ca, caKey := p.authority(t, "ca.pem", "leaderd test CA")
	p.ca = filepath.Join(p.dir, "ca.pem")
	p.caDir = filepath.Join(p.dir, "cas")
	if err := os.Mkdir(p.caDir, 0o700); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p.ca)
	if err := os.WriteFile(filepath.Join(p.caDir, "ca.pem"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	p.serverCert, p.serverKey = p.leaf(t, "server", ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "server.dc1.consul"},
		DNSNames:    []string{"server.dc1.consul", "localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	p.clientCert, p.clientKey = p.leaf(t, "client", ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "leaderd"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	other, otherKey := p.authority(t, "other-ca.pem", "some other CA")
	p.otherCA = filepath.Join(p.dir, "other-ca.pem")
	p.otherCert, p.otherKey = p.leaf(t, "other-client", other, otherKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "leaderd"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return p
}

// newSerial is a random certificate serial number (unique in practice,
// and safe for tests running in parallel).
func newSerial(t *testing.T) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (p *testPKI) authority(t *testing.T, file, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(t), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p.write(t, file, "CERTIFICATE", der)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// leaf signs tmpl with the CA and writes <name>.pem and <name>-key.pem.
func (p *testPKI) leaf(t *testing.T, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, tmpl *x509.Certificate) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = newSerial(t)
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+"-key.pem", "EC PRIVATE KEY", kb)
}

func (p *testPKI) write(t *testing.T, file, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, file)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startTLSAgent starts a Consul agent that also serves HTTPS with the test
// PKI's server certificate (Consul 1.16's tls stanza) and returns it with
// its HTTPS base URL. The plain HTTP port stays up: the harness polls it
// for readiness, and tests use it to set up. verifyIncoming makes HTTPS
// demand a client certificate signed by the test CA.
func startTLSAgent(t *testing.T, p *testPKI, verifyIncoming bool) (*consultest.Agent, string) {
	t.Helper()
	port := consultest.FreePort(t)
	tlsHCL := fmt.Sprintf(`
ports { https = %d }
tls {
  defaults {
    ca_file   = %q
    cert_file = %q
    key_file  = %q
  }
  https { verify_incoming = %t }
}`, port, p.ca, p.serverCert, p.serverKey, verifyIncoming)
	a := consultest.Start(t, consultest.Options{HCL: []string{`session_ttl_min = "1s"`, tlsHCL}})
	return a, "https://127.0.0.1:" + strconv.Itoa(port)
}
