package consulhttp

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

// Flags are the consul CLI's connection flags, for a command that talks
// to Consul. Their twins are the CONSUL_* variables ConfigFromEnv reads;
// a flag given wins over its variable. There is deliberately no -token: a
// secret on the command line is visible to every user in ps.
type Flags struct {
	addr, tokenFile, datacenter           string
	caFile, caPath, clientCert, clientKey string
	tlsServerName, namespace, partition   string
}

// Register declares the flags on fs and returns their names.
func (f *Flags) Register(fs *flag.FlagSet) []string {
	var names []string
	str := func(p *string, name, usage string) {
		fs.StringVar(p, name, "", usage)
		names = append(names, name)
	}
	str(&f.addr, "consul-addr", "Consul HTTP API address: host:port, http(s)://host:port or unix:///path ("+EnvHTTPAddr+"; default "+DefaultAddress+")")
	str(&f.addr, "http-addr", "alias of -consul-addr, the consul CLI's name")
	str(&f.tokenFile, "token-file", "file holding the Consul ACL token ("+EnvHTTPTokenFile+"; or set "+EnvHTTPToken+")")
	str(&f.datacenter, "datacenter", "Consul datacenter ("+EnvDatacenter+"; default the agent's)")
	str(&f.caFile, "ca-file", "CA certificate file for HTTPS to Consul ("+EnvCACert+")")
	str(&f.caPath, "ca-path", "directory of CA certificates ("+EnvCAPath+")")
	str(&f.clientCert, "client-cert", "client certificate for mutual TLS ("+EnvClientCert+")")
	str(&f.clientKey, "client-key", "client key for mutual TLS ("+EnvClientKey+")")
	str(&f.tlsServerName, "tls-server-name", "server name to verify in Consul's certificate ("+EnvTLSServerName+")")
	str(&f.namespace, "namespace", "Consul Enterprise namespace ("+EnvNamespace+")")
	str(&f.partition, "partition", "Consul Enterprise admin partition ("+EnvPartition+")")
	return names
}

// Override is the flags given, as a Config to lay over the environment's
// (Config.Merge).
func (f *Flags) Override() Config {
	return Config{
		Address:    f.addr,
		TokenFile:  f.tokenFile,
		Datacenter: f.datacenter,
		Namespace:  f.namespace,
		Partition:  f.partition,
		TLS: TLSConfig{
			CAFile:     f.caFile,
			CAPath:     f.caPath,
			CertFile:   f.clientCert,
			KeyFile:    f.clientKey,
			ServerName: f.tlsServerName,
		},
	}
}

// Check reports what is wrong with the flags alone, naming the flags.
func (f *Flags) Check() error {
	if (f.clientCert == "") != (f.clientKey == "") {
		return errors.New("-client-cert and -client-key must be given together")
	}
	if f.tokenFile != "" {
		// NewClient reads it too, but would name CONSUL_HTTP_TOKEN_FILE.
		fh, err := os.Open(f.tokenFile)
		if err != nil {
			return fmt.Errorf("invalid -token-file: %v", err)
		}
		fh.Close()
	}
	return nil
}

// Name is what to call the setting of variable env in an error: its flag
// when the flag was given (so the value came from it), else env.
func (f *Flags) Name(env string) string {
	for _, s := range []struct{ set, env, flag string }{
		{f.caFile, EnvCACert, "-ca-file"},
		{f.caPath, EnvCAPath, "-ca-path"},
		{f.clientCert, EnvClientCert, "-client-cert"},
		{f.clientKey, EnvClientKey, "-client-key"},
		{f.tlsServerName, EnvTLSServerName, "-tls-server-name"},
		{f.tokenFile, EnvHTTPTokenFile, "-token-file"},
		{f.addr, EnvHTTPAddr, "-consul-addr"},
	} {
		if s.env == env && s.set != "" {
			return s.flag
		}
	}
	return env
}
