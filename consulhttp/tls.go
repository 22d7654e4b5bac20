package consulhttp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// tlsConfig builds the client side of HTTPS from t, reporting every problem
// at once. It returns nil when t asks for nothing beyond the defaults (system
// roots, verification on). Files are read once, at NewClient: rotating
// certificates means restarting, as with the consul CLI.
func (t TLSConfig) tlsConfig() (*tls.Config, error) {
	if t == (TLSConfig{}) {
		return nil, nil
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: t.InsecureSkipVerify, // #nosec G402 -- the user asked, via CONSUL_HTTP_SSL_VERIFY=false
	}
	var errs []error

	// Like go-rootcerts (used by the consul CLI): a CA file wins over a CA
	// directory; neither means the system roots.
	switch {
	case t.CAFile != "":
		pool, err := loadCAFile(t.CAFile)
		if err != nil {
			errs = append(errs, err)
		}
		cfg.RootCAs = pool
	case t.CAPath != "":
		pool, err := loadCAPath(t.CAPath)
		if err != nil {
			errs = append(errs, err)
		}
		cfg.RootCAs = pool
	}

	switch {
	case t.CertFile != "" && t.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			errs = append(errs, settingErrorf("client certificate %q with key %q (%s, %s): %w",
				t.CertFile, t.KeyFile, envVar(EnvClientCert), envVar(EnvClientKey), err))
		} else {
			cfg.Certificates = []tls.Certificate{cert}
		}
	case t.CertFile != "" || t.KeyFile != "":
		errs = append(errs, settingErrorf("client certificate and key must be set together (%s, %s)", envVar(EnvClientCert), envVar(EnvClientKey)))
	}

	if name := t.ServerName; name != "" {
		// The consul CLI accepts host:port here and uses the host.
		if strings.LastIndex(name, ":") > strings.LastIndex(name, "]") {
			host, _, err := net.SplitHostPort(name)
			if err != nil {
				errs = append(errs, settingErrorf("TLS server name %q (%s): %w", name, envVar(EnvTLSServerName), err))
			}
			name = host
		}
		cfg.ServerName = name
	}

	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, settingErrorf("CA file (%s): %w", envVar(EnvCACert), err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, settingErrorf("CA file %q (%s): no PEM certificate in it", path, envVar(EnvCACert))
	}
	return pool, nil
}

// loadCAPath loads every file under dir, as go-rootcerts does for the
// consul CLI; a file that holds no certificate is an error there too.
func loadCAPath(dir string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		pem, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%q: no PEM certificate in it", path)
		}
		n++
		return nil
	})
	if err == nil && n == 0 {
		err = errors.New("no certificate files in it")
	}
	if err != nil {
		return nil, settingErrorf("CA path %q (%s): %w", dir, envVar(EnvCAPath), err)
	}
	return pool, nil
}
