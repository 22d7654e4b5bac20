package consulhttp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr []string // substrings, all of them in one joined error
	}{
		{name: "empty environment is all defaults", env: nil, want: Config{}},
		{
			name: "every variable",
			env: map[string]string{
				"CONSUL_HTTP_ADDR": "https://consul.example:8501", "CONSUL_HTTP_TOKEN": "tok",
				"CONSUL_HTTP_TOKEN_FILE": "/run/tok", "CONSUL_HTTP_AUTH": "user:pa:ss",
				"CONSUL_HTTP_SSL": "true", "CONSUL_HTTP_SSL_VERIFY": "false",
				"CONSUL_CACERT": "/ca.pem", "CONSUL_CAPATH": "/cas", "CONSUL_CLIENT_CERT": "/c.pem",
				"CONSUL_CLIENT_KEY": "/k.pem", "CONSUL_TLS_SERVER_NAME": "server.dc1.consul",
				"CONSUL_NAMESPACE": "ns1", "CONSUL_PARTITION": "p1", "CONSUL_DATACENTER": "dc2",
			},
			want: Config{
				Address: "https://consul.example:8501", Scheme: "https", Token: "tok", TokenFile: "/run/tok",
				HTTPAuth: "user:pa:ss", Datacenter: "dc2", Namespace: "ns1", Partition: "p1",
				TLS: TLSConfig{CAFile: "/ca.pem", CAPath: "/cas", CertFile: "/c.pem", KeyFile: "/k.pem",
					ServerName: "server.dc1.consul", InsecureSkipVerify: true},
			},
		},
		{name: "SSL as 1", env: map[string]string{"CONSUL_HTTP_SSL": "1"}, want: Config{Scheme: "https"}},
		{name: "SSL false keeps the default", env: map[string]string{"CONSUL_HTTP_SSL": "FALSE"}, want: Config{}},
		{name: "SSL_VERIFY true verifies", env: map[string]string{"CONSUL_HTTP_SSL_VERIFY": "True"}, want: Config{}},
		{name: "SSL_VERIFY 0 skips", env: map[string]string{"CONSUL_HTTP_SSL_VERIFY": "0"}, want: Config{TLS: TLSConfig{InsecureSkipVerify: true}}},
		{name: "unix socket address", env: map[string]string{"CONSUL_HTTP_ADDR": "unix:///run/consul.sock"}, want: Config{Address: "unix:///run/consul.sock"}},
		{
			name:    "unparsable SSL_VERIFY is an error, not skip verification",
			env:     map[string]string{"CONSUL_HTTP_SSL_VERIFY": "flase"},
			wantErr: []string{`CONSUL_HTTP_SSL_VERIFY: "flase" is not a boolean`},
		},
		{
			name:    "client cert without key",
			env:     map[string]string{"CONSUL_CLIENT_CERT": "/c.pem"},
			wantErr: []string{"CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY must be set together"},
		},
		{
			name: "every problem at once",
			env: map[string]string{
				"CONSUL_HTTP_ADDR": "ftp://x:1", "CONSUL_HTTP_SSL": "yes", "CONSUL_HTTP_SSL_VERIFY": "no",
				"CONSUL_CLIENT_KEY": "/k.pem",
			},
			wantErr: []string{
				`CONSUL_HTTP_ADDR: address "ftp://x:1": unknown scheme "ftp"`,
				`CONSUL_HTTP_SSL: "yes" is not a boolean`,
				`CONSUL_HTTP_SSL_VERIFY: "no" is not a boolean`,
				"CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY",
			},
		},
		{
			name:    "address with a path but no scheme",
			env:     map[string]string{"CONSUL_HTTP_ADDR": "127.0.0.1:8500/consul"},
			wantErr: []string{`CONSUL_HTTP_ADDR: address "127.0.0.1:8500/consul": want host:port`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConfigFromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != nil {
				if m := missingFrom(errorText(err), tt.wantErr...); m != "" {
					t.Fatalf("ConfigFromEnv error = %v, want it to contain %q", err, m)
				}
				return
			}
			if err != nil {
				t.Fatalf("ConfigFromEnv: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ConfigFromEnv (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	env := Config{
		Address: "10.0.0.1:8500", Token: "env-token", TokenFile: "/env/token", Datacenter: "dc1",
		TLS: TLSConfig{CAFile: "/env/ca.pem", InsecureSkipVerify: true},
	}
	tests := []struct {
		name     string
		override Config
		want     Config
	}{
		{name: "zero override changes nothing", override: Config{}, want: env},
		{
			name:     "explicit token beats the environment's token file",
			override: Config{Token: "flag-token"},
			want: Config{Address: "10.0.0.1:8500", Token: "flag-token", Datacenter: "dc1",
				TLS: TLSConfig{CAFile: "/env/ca.pem", InsecureSkipVerify: true}},
		},
		{
			name:     "explicit token file replaces both",
			override: Config{TokenFile: "/flag/token"},
			want: Config{Address: "10.0.0.1:8500", TokenFile: "/flag/token", Datacenter: "dc1",
				TLS: TLSConfig{CAFile: "/env/ca.pem", InsecureSkipVerify: true}},
		},
		{
			name:     "fields one by one",
			override: Config{Address: "unix:///s", Datacenter: "dc9", TLS: TLSConfig{ServerName: "n"}, RequestTimeout: time.Second},
			want: Config{Address: "unix:///s", Token: "env-token", TokenFile: "/env/token", Datacenter: "dc9",
				TLS: TLSConfig{CAFile: "/env/ca.pem", ServerName: "n", InsecureSkipVerify: true}, RequestTimeout: time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, env.Merge(tt.override)); diff != "" {
				t.Errorf("Merge (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseAddress(t *testing.T) {
	tests := []struct {
		addr, scheme string
		want         endpoint
		wantErr      string
	}{
		{addr: "", want: endpoint{scheme: "http", host: "127.0.0.1:8500"}},
		{addr: "consul:8500", want: endpoint{scheme: "http", host: "consul:8500"}},
		{addr: "consul:8501", scheme: "https", want: endpoint{scheme: "https", host: "consul:8501"}},
		{addr: "http://consul:8500", want: endpoint{scheme: "http", host: "consul:8500"}},
		{addr: "http://consul:8500", scheme: "https", want: endpoint{scheme: "https", host: "consul:8500"}},
		{addr: "https://consul:8501/", want: endpoint{scheme: "https", host: "consul:8501"}},
		{addr: "https://proxy:443/consul/v", want: endpoint{scheme: "https", host: "proxy:443", prefix: "/consul/v"}},
		{addr: "http://[::1]:8500", want: endpoint{scheme: "http", host: "[::1]:8500"}},
		{addr: "unix:///run/consul/http.sock", want: endpoint{scheme: "http", host: "localhost", socket: "/run/consul/http.sock"}},
		{addr: "unix://", wantErr: "no socket path"},
		{addr: "http://", wantErr: "want host:port"},
		{addr: "tcp://consul:8500", wantErr: `unknown scheme "tcp"`},
		{addr: "user@consul:8500", wantErr: "want host:port"},
		{addr: "consul:8500", scheme: "ftp", wantErr: `scheme "ftp": want http or https`},
	}
	for _, tt := range tests {
		t.Run(tt.addr+"|"+tt.scheme, func(t *testing.T) {
			got, err := parseAddress(tt.addr, tt.scheme)
			if tt.wantErr != "" {
				if !strings.Contains(errorText(err), tt.wantErr) {
					t.Fatalf("parseAddress error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(endpoint{})); diff != "" {
				t.Errorf("parseAddress (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewClientToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "  file-token\n")
	empty := write("empty", " \n")
	tests := []struct {
		name      string
		cfg       Config
		wantToken string
		wantErr   []string
	}{
		{name: "token", cfg: Config{Token: "plain"}, wantToken: "plain"},
		{name: "file wins over token, trimmed", cfg: Config{Token: "plain", TokenFile: good}, wantToken: "file-token"},
		{name: "missing file", cfg: Config{TokenFile: filepath.Join(dir, "nope")}, wantErr: []string{"token file (CONSUL_HTTP_TOKEN_FILE)", "no such file"}},
		{name: "empty file", cfg: Config{TokenFile: empty}, wantErr: []string{"CONSUL_HTTP_TOKEN_FILE) is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Transport = &fakeConsul{t: t}
			c, err := NewClient(tt.cfg)
			if tt.wantErr != nil {
				if m := missingFrom(errorText(err), tt.wantErr...); m != "" {
					t.Fatalf("NewClient error = %v, want %q", err, m)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.token != tt.wantToken {
				t.Errorf("token = %q, want %q", c.token, tt.wantToken)
			}
		})
	}
}

func TestNewClientReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	_, err := NewClient(Config{
		Address:        "gopher://x",
		TokenFile:      filepath.Join(dir, "token"),
		RequestTimeout: -time.Second,
		TLS:            TLSConfig{CAFile: filepath.Join(dir, "ca.pem"), CertFile: "/c.pem"},
	})
	want := []string{
		`consul address "gopher://x": unknown scheme "gopher"`,
		"token file (CONSUL_HTTP_TOKEN_FILE)",
		"request timeout -1s: must not be negative",
		"CA file (CONSUL_CACERT)",
		"client certificate and key must be set together",
	}
	if m := missingFrom(errorText(err), want...); m != "" {
		t.Fatalf("NewClient error = %v\nwant it to contain %q", err, m)
	}
}

func TestAddressNeverShowsSecrets(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"", "http://127.0.0.1:8500"},
		{"https://consul:8501/prefix", "https://consul:8501/prefix"},
		{"unix:///run/c.sock", "unix:///run/c.sock"},
	}
	for _, tt := range tests {
		c, err := NewClient(Config{Address: tt.addr, Token: "s3cret-token", HTTPAuth: "u:s3cret-pass", Transport: &fakeConsul{t: t}})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Address(); got != tt.want {
			t.Errorf("Address() = %q, want %q", got, tt.want)
		}
	}
}
