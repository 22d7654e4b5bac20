package consulhttp

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Environment variables read by ConfigFromEnv: the same names, forms and
// precedence as the consul CLI (github.com/hashicorp/consul/api, api.go).
const (
	EnvHTTPAddr      = "CONSUL_HTTP_ADDR"
	EnvHTTPToken     = "CONSUL_HTTP_TOKEN"
	EnvHTTPTokenFile = "CONSUL_HTTP_TOKEN_FILE"
	EnvHTTPAuth      = "CONSUL_HTTP_AUTH"
	EnvHTTPSSL       = "CONSUL_HTTP_SSL"
	EnvHTTPSSLVerify = "CONSUL_HTTP_SSL_VERIFY"
	EnvCACert        = "CONSUL_CACERT"
	EnvCAPath        = "CONSUL_CAPATH"
	EnvClientCert    = "CONSUL_CLIENT_CERT"
	EnvClientKey     = "CONSUL_CLIENT_KEY"
	EnvTLSServerName = "CONSUL_TLS_SERVER_NAME"
	EnvNamespace     = "CONSUL_NAMESPACE"
	EnvPartition     = "CONSUL_PARTITION"
	// EnvDatacenter is not read by the consul CLI (it has -datacenter); we
	// accept it so a Nomad task can set the datacenter like the rest.
	EnvDatacenter = "CONSUL_DATACENTER"
)

// DefaultAddress is where Consul's HTTP API listens unless told otherwise.
const DefaultAddress = "127.0.0.1:8500"

// DefaultRequestTimeout bounds a non-blocking request; see
// Config.RequestTimeout.
const DefaultRequestTimeout = 10 * time.Second

// ConfigFromEnv reads the consul CLI's environment variables through getenv
// (os.Getenv in main, a map in tests). It reads no files: NewClient loads the
// token file and TLS material. Unlike the official client, which logs a
// warning and goes on, an unparsable boolean is an error: reading
// CONSUL_HTTP_SSL_VERIFY=flase as "skip verification" would be a silent
// downgrade. Every problem is reported, joined, each naming its variable.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	var cfg Config
	var errs []error

	cfg.Address = getenv(EnvHTTPAddr)
	if cfg.Address != "" {
		if _, err := parseAddress(cfg.Address, ""); err != nil {
			errs = append(errs, settingErrorf("%s: %w", envVar(EnvHTTPAddr), err))
		}
	}
	// Both are kept; NewClient reads the file, which wins over the token.
	cfg.TokenFile = getenv(EnvHTTPTokenFile)
	cfg.Token = getenv(EnvHTTPToken)
	cfg.HTTPAuth = getenv(EnvHTTPAuth)

	if v := getenv(EnvHTTPSSL); v != "" {
		on, err := parseBool(EnvHTTPSSL, v)
		if err != nil {
			errs = append(errs, err)
		} else if on {
			cfg.Scheme = "https"
		}
	}
	if v := getenv(EnvHTTPSSLVerify); v != "" {
		verify, err := parseBool(EnvHTTPSSLVerify, v)
		if err != nil {
			errs = append(errs, err)
		} else {
			cfg.TLS.InsecureSkipVerify = !verify
		}
	}

	cfg.TLS.CAFile = getenv(EnvCACert)
	cfg.TLS.CAPath = getenv(EnvCAPath)
	cfg.TLS.CertFile = getenv(EnvClientCert)
	cfg.TLS.KeyFile = getenv(EnvClientKey)
	if (cfg.TLS.CertFile == "") != (cfg.TLS.KeyFile == "") {
		errs = append(errs, settingErrorf("%s and %s must be set together (client certificate and its key)", envVar(EnvClientCert), envVar(EnvClientKey)))
	}
	cfg.TLS.ServerName = getenv(EnvTLSServerName)

	cfg.Namespace = getenv(EnvNamespace)
	cfg.Partition = getenv(EnvPartition)
	cfg.Datacenter = getenv(EnvDatacenter)

	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return cfg, nil
}

// parseBool accepts what strconv.ParseBool accepts (1, t, true, 0, f, false,
// any case), like the consul CLI, and names the variable otherwise.
func parseBool(name, v string) (bool, error) {
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return false, settingErrorf("%s: %q is not a boolean (want true or false)", envVar(name), v)
	}
	return b, nil
}

// Merge returns c with every non-zero field of override in its place:
// explicit options (flags) over the environment. Token and TokenFile are
// one setting: an override of either replaces both, so a -token flag beats a
// CONSUL_HTTP_TOKEN_FILE from the environment, as in the consul CLI
// (-token-file > -token > CONSUL_HTTP_TOKEN_FILE > CONSUL_HTTP_TOKEN).
// A false InsecureSkipVerify cannot override a true one (zero means unset).
func (c Config) Merge(override Config) Config {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&c.Address, override.Address)
	set(&c.Scheme, override.Scheme)
	if override.Token != "" || override.TokenFile != "" {
		c.Token, c.TokenFile = override.Token, override.TokenFile
	}
	set(&c.HTTPAuth, override.HTTPAuth)
	set(&c.Datacenter, override.Datacenter)
	set(&c.Namespace, override.Namespace)
	set(&c.Partition, override.Partition)
	set(&c.TLS.CAFile, override.TLS.CAFile)
	set(&c.TLS.CAPath, override.TLS.CAPath)
	set(&c.TLS.CertFile, override.TLS.CertFile)
	set(&c.TLS.KeyFile, override.TLS.KeyFile)
	set(&c.TLS.ServerName, override.TLS.ServerName)
	if override.TLS.InsecureSkipVerify {
		c.TLS.InsecureSkipVerify = true
	}
	if override.RequestTimeout != 0 {
		c.RequestTimeout = override.RequestTimeout
	}
	if override.Transport != nil {
		c.Transport = override.Transport
	}
	return c
}

// endpoint is a parsed Config.Address.
type endpoint struct {
	scheme string // http or https
	host   string // host:port for TCP; "localhost" for a unix socket
	prefix string // reverse-proxy path prefix, "" or "/something"
	socket string // unix socket path, "" for TCP
}

// parseAddress understands the consul CLI's address forms: host:port,
// http://host:port[/prefix], https://host:port[/prefix], unix:///path.
// scheme is Config.Scheme; as in the consul CLI an explicit "https" is never
// downgraded by an http:// address.
func parseAddress(addr, scheme string) (endpoint, error) {
	const forms = "want host:port, http://host:port, https://host:port or unix:///path"
	switch scheme {
	case "", "http", "https":
	default:
		return endpoint{}, fmt.Errorf("scheme %q: want http or https", scheme)
	}
	e := endpoint{scheme: "http"}
	if scheme == "https" {
		e.scheme = "https"
	}
	if addr == "" {
		addr = DefaultAddress
	}
	proto, rest, ok := strings.Cut(addr, "://")
	if !ok {
		if strings.ContainsAny(addr, "/?#@ ") {
			return endpoint{}, fmt.Errorf("address %q: %s", addr, forms)
		}
		if err := checkHost(addr); err != nil {
			return endpoint{}, fmt.Errorf("address %q: %w", addr, err)
		}
		e.host = addr
		return e, nil
	}
	switch proto {
	case "unix":
		if rest == "" {
			return endpoint{}, fmt.Errorf("address %q: no socket path (%s)", addr, forms)
		}
		// Go validates Host since 1.20.6/1.19.11; a socket path is not one.
		e.host, e.socket = "localhost", rest
		return e, nil
	case "https":
		e.scheme = "https"
	case "http":
	default:
		return endpoint{}, fmt.Errorf("address %q: unknown scheme %q (%s)", addr, proto, forms)
	}
	host, prefix, _ := strings.Cut(rest, "/")
	if host == "" || strings.ContainsAny(host, "?#@ ") {
		return endpoint{}, fmt.Errorf("address %q: %s", addr, forms)
	}
	if err := checkHost(host); err != nil {
		return endpoint{}, fmt.Errorf("address %q: %w", addr, err)
	}
	e.host = host
	if prefix = strings.TrimSuffix(prefix, "/"); prefix != "" {
		e.prefix = "/" + prefix
	}
	return e, nil
}

// checkHost refuses a host[:port] that no request could reach: an IPv6
// address without brackets, anything Go's URL parser rejects, a port that
// is not a number in 1..65535. Caught here it is bad input (exit 2); caught
// at the first request it would be a connection error, retried forever.
func checkHost(host string) error {
	if strings.Count(host, ":") > 1 && !strings.HasPrefix(host, "[") {
		return errors.New("an IPv6 address needs brackets, e.g. [::1]:8500")
	}
	if i := strings.LastIndex(host, ":"); i > strings.LastIndex(host, "]") {
		port := host[i+1:]
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not a number between 1 and 65535", port)
		}
	}
	if _, err := url.Parse("http://" + host + "/"); err != nil {
		return fmt.Errorf("not a host:port (%v)", errors.Unwrap(err))
	}
	return nil
}

// String is the address as a user would type it, for logs.
func (e endpoint) String() string {
	if e.socket != "" {
		return "unix://" + e.socket
	}
	return e.scheme + "://" + e.host + e.prefix
}
