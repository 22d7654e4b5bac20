package nomad

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/nomad/api"
)

// ClientConfigFromEnv builds a nomad/api client configuration from the task
// environment, reading only through getenv (api.DefaultConfig reads the
// process environment behind our back, which tests can't control).
//
// Address: NOMAD_UNIX_ADDR (the Task API socket Nomad gives a task with
// `identity { env = true }`; it always requires a token and never TLS) wins
// over NOMAD_ADDR, which wins over http://127.0.0.1:4646. Token:
// NOMAD_TOKEN (the workload identity). NOMAD_NAMESPACE and NOMAD_REGION
// scope requests; NOMAD_CACERT, NOMAD_CAPATH, NOMAD_CLIENT_CERT,
// NOMAD_CLIENT_KEY, NOMAD_TLS_SERVER_NAME and NOMAD_SKIP_VERIFY configure
// TLS for an https NOMAD_ADDR (an unparsable NOMAD_SKIP_VERIFY is an error,
// not "verify").
func ClientConfigFromEnv(getenv func(string) string) (*api.Config, error) {
	cfg := &api.Config{
		Address:   "http://127.0.0.1:4646",
		Region:    getenv("NOMAD_REGION"),
		Namespace: getenv("NOMAD_NAMESPACE"),
		SecretID:  getenv("NOMAD_TOKEN"),
		TLSConfig: &api.TLSConfig{
			CACert:        getenv("NOMAD_CACERT"),
			CAPath:        getenv("NOMAD_CAPATH"),
			ClientCert:    getenv("NOMAD_CLIENT_CERT"),
			ClientKey:     getenv("NOMAD_CLIENT_KEY"),
			TLSServerName: getenv("NOMAD_TLS_SERVER_NAME"),
		},
	}
	var errs []error
	switch unix, addr := getenv("NOMAD_UNIX_ADDR"), getenv("NOMAD_ADDR"); {
	case unix != "":
		// Nomad sets it as "unix:///…/secrets/api.sock"; accept a bare
		// path too.
		if !strings.HasPrefix(unix, "unix://") {
			unix = "unix://" + unix
		}
		cfg.Address = unix
	case addr != "":
		cfg.Address = addr
	}
	if v := getenv("NOMAD_SKIP_VERIFY"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("NOMAD_SKIP_VERIFY=%q is not a boolean", v))
		}
		cfg.TLSConfig.Insecure = b
	}
	if (cfg.TLSConfig.ClientCert == "") != (cfg.TLSConfig.ClientKey == "") {
		errs = append(errs, errors.New("NOMAD_CLIENT_CERT and NOMAD_CLIENT_KEY must be set together"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("nomad: client environment: %w", errors.Join(errs...))
	}
	return cfg, nil
}

// NewClientFromEnv is ClientConfigFromEnv followed by api.NewClient.
func NewClientFromEnv(getenv func(string) string) (*api.Client, error) {
	cfg, err := ClientConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("nomad: client for %s: %w", cfg.Address, err)
	}
	return c, nil
}
