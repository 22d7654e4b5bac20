package nomad

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/nomad/api"
)

func TestClientConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    api.Config
		wantErr string
	}{
		{name: "defaults", env: nil,
			want: api.Config{Address: "http://127.0.0.1:4646", TLSConfig: &api.TLSConfig{}}},
		{name: "task api socket wins over NOMAD_ADDR",
			env: map[string]string{
				"NOMAD_UNIX_ADDR": "unix:///alloc/leaderd/secrets/api.sock", "NOMAD_ADDR": "http://10.0.0.1:4646",
				"NOMAD_TOKEN": "s3cr3t", "NOMAD_NAMESPACE": "prod", "NOMAD_REGION": "eu",
			},
			want: api.Config{Address: "unix:///alloc/leaderd/secrets/api.sock", SecretID: "s3cr3t",
				Namespace: "prod", Region: "eu", TLSConfig: &api.TLSConfig{}}},
		{name: "task api socket in the secrets dir when only a workload token is set (Nomad 1.5.0-1.10.2)",
			env:  map[string]string{"NOMAD_SECRETS_DIR": "/secrets", "NOMAD_TOKEN": "jwt"},
			want: api.Config{Address: "unix:///secrets/api.sock", SecretID: "jwt", TLSConfig: &api.TLSConfig{}}},
		{name: "NOMAD_ADDR wins over the secrets dir socket",
			env:  map[string]string{"NOMAD_ADDR": "http://10.0.0.1:4646", "NOMAD_SECRETS_DIR": "/secrets", "NOMAD_TOKEN": "jwt"},
			want: api.Config{Address: "http://10.0.0.1:4646", SecretID: "jwt", TLSConfig: &api.TLSConfig{}}},
		{name: "no secrets dir socket without a token (the Task API refuses tokenless requests)",
			env:  map[string]string{"NOMAD_SECRETS_DIR": "/secrets"},
			want: api.Config{Address: "http://127.0.0.1:4646", TLSConfig: &api.TLSConfig{}}},
		{name: "bare socket path",
			env:  map[string]string{"NOMAD_UNIX_ADDR": "/secrets/api.sock"},
			want: api.Config{Address: "unix:///secrets/api.sock", TLSConfig: &api.TLSConfig{}}},
		{name: "https with tls",
			env: map[string]string{
				"NOMAD_ADDR": "https://nomad:4646", "NOMAD_CACERT": "/ca.pem", "NOMAD_CLIENT_CERT": "/c.pem",
				"NOMAD_CLIENT_KEY": "/k.pem", "NOMAD_TLS_SERVER_NAME": "server.global.nomad", "NOMAD_SKIP_VERIFY": "true",
			},
			want: api.Config{Address: "https://nomad:4646", TLSConfig: &api.TLSConfig{
				CACert: "/ca.pem", ClientCert: "/c.pem", ClientKey: "/k.pem", TLSServerName: "server.global.nomad", Insecure: true,
			}}},
		{name: "bad skip verify and half a key pair reported together",
			env:     map[string]string{"NOMAD_SKIP_VERIFY": "maybe", "NOMAD_CLIENT_CERT": "/c.pem"},
			wantErr: "NOMAD_SKIP_VERIFY=\"maybe\" is not a boolean\nNOMAD_CLIENT_CERT and NOMAD_CLIENT_KEY must be set together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ClientConfigFromEnv(envFunc(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, *got, cmp.AllowUnexported(api.Config{})); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNewClientFromEnvMissingSocket: a Task API socket that isn't there is
// an error at start that names the path, where it came from, and the Nomad
// versions, not a dial error on every publish.
func TestNewClientFromEnvMissingSocket(t *testing.T) {
	dir := t.TempDir()
	notSocket := filepath.Join(dir, "file", "api.sock")
	if err := os.MkdirAll(filepath.Dir(notSocket), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(notSocket, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "api.sock")
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"secrets dir without a socket (Nomad before 1.5.0)",
			map[string]string{"NOMAD_SECRETS_DIR": dir, "NOMAD_TOKEN": "jwt"},
			[]string{"Task API socket " + missing + " (NOMAD_SECRETS_DIR/api.sock", "no such file",
				"since 1.5.0", "NOMAD_UNIX_ADDR since 1.10.3", "set NOMAD_ADDR"}},
		{"secrets dir holding a plain file",
			map[string]string{"NOMAD_SECRETS_DIR": filepath.Dir(notSocket), "NOMAD_TOKEN": "jwt"},
			[]string{"Task API socket " + notSocket, "not a socket"}},
		{"NOMAD_UNIX_ADDR names a missing socket (the client could not create it)",
			map[string]string{"NOMAD_UNIX_ADDR": "unix://" + missing, "NOMAD_TOKEN": "jwt"},
			[]string{"Task API socket " + missing + " from NOMAD_UNIX_ADDR: no such file", "error creating task api socket"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClientFromEnv(envFunc(tt.env))
			if err == nil {
				c.Close()
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "jwt") {
				t.Errorf("token in error: %v", err)
			}
		})
	}
}
