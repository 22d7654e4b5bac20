package nomad

import (
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
