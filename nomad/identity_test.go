package nomad

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func withHostname(t *testing.T, name string, err error) {
	t.Helper()
	old := hostname
	hostname = func() (string, error) { return name, err }
	t.Cleanup(func() { hostname = old })
}

// taskEnv is what Nomad sets for task "leaderd" of alloc web.web[1].
func taskEnv() map[string]string {
	return map[string]string{
		"NOMAD_ALLOC_ID":              "5c6328f7-48c5-4d03-bada-91ef2e904d0d",
		"NOMAD_ALLOC_NAME":            "web.web[1]",
		"NOMAD_ALLOC_INDEX":           "1",
		"NOMAD_JOB_ID":                "web",
		"NOMAD_JOB_NAME":              "web",
		"NOMAD_GROUP_NAME":            "web",
		"NOMAD_TASK_NAME":             "leaderd",
		"NOMAD_NAMESPACE":             "default",
		"NOMAD_REGION":                "global",
		"NOMAD_DC":                    "dc1",
		"NOMAD_HOST_IP_status":        "10.0.0.5",
		"NOMAD_HOST_PORT_status":      "23456",
		"NOMAD_ADDR_status":           "172.26.64.3:8080", // bridge-side address
		"NOMAD_HOST_IP_http_status":   "10.0.0.5",
		"NOMAD_HOST_PORT_http_status": "23457",
		"NOMAD_ADDR_only":             "10.0.0.5:24000",
		"NOMAD_IP_legacy":             "10.0.0.5",
		"NOMAD_PORT_legacy":           "25000",
	}
}

func TestIdentityFromEnv(t *testing.T) {
	withHostname(t, "node-7", nil)
	base := Identity{
		ID: "5c6328f7-48c5-4d03-bada-91ef2e904d0d", InNomad: true,
		AllocID: "5c6328f7-48c5-4d03-bada-91ef2e904d0d", AllocName: "web.web[1]", AllocIndex: "1",
		JobID: "web", JobName: "web", Group: "web", Task: "leaderd",
		Namespace: "default", Region: "global", Datacenter: "dc1", Hostname: "node-7",
	}
	tests := []struct {
		name    string
		env     map[string]string
		label   string
		want    func(Identity) Identity
		wantErr string
	}{
		{name: "host ip and port win over bridge addr", env: taskEnv(), label: "status",
			want: func(i Identity) Identity { i.Address = "10.0.0.5:23456"; return i }},
		{name: "label normalized like Nomad", env: taskEnv(), label: "http-status",
			want: func(i Identity) Identity { i.Address = "10.0.0.5:23457"; return i }},
		{name: "NOMAD_ADDR_ fallback", env: taskEnv(), label: "only",
			want: func(i Identity) Identity { i.Address = "10.0.0.5:24000"; return i }},
		{name: "NOMAD_IP_ NOMAD_PORT_ fallback", env: taskEnv(), label: "legacy",
			want: func(i Identity) Identity { i.Address = "10.0.0.5:25000"; return i }},
		{name: "no label no address", env: taskEnv(), label: "",
			want: func(i Identity) Identity { return i }},
		{name: "unknown label", env: taskEnv(), label: "nope",
			wantErr: `port label "nope": none of NOMAD_HOST_IP_nope+NOMAD_HOST_PORT_nope, NOMAD_ADDR_nope is set`},
		{name: "missing job and group reported together", label: "",
			env:     map[string]string{"NOMAD_ALLOC_ID": "a1"},
			wantErr: "NOMAD_JOB_ID is empty\nNOMAD_GROUP_NAME is empty"},
		{name: "outside nomad: hostname", env: map[string]string{"NOMAD_ADDR": "http://x:4646"}, label: "status",
			want: func(Identity) Identity { return Identity{ID: "node-7", Hostname: "node-7"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := IdentityFromEnv(envFunc(tt.env), tt.label)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want(base), got); diff != "" {
				t.Errorf("identity (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIdentityOutsideNomadWithoutHostname(t *testing.T) {
	withHostname(t, "", errors.New("uts: no name"))
	_, err := IdentityFromEnv(envFunc(nil), "")
	if err == nil || !strings.Contains(err.Error(), "no hostname") {
		t.Fatalf("err = %v, want a 'no hostname' error", err)
	}
}

func TestInNomad(t *testing.T) {
	if InNomad(envFunc(nil)) {
		t.Error("InNomad without NOMAD_ALLOC_ID = true")
	}
	if !InNomad(envFunc(map[string]string{"NOMAD_ALLOC_ID": "x"})) {
		t.Error("InNomad with NOMAD_ALLOC_ID = false")
	}
}

func TestEnvLabel(t *testing.T) {
	for in, want := range map[string]string{
		"http": "http", "http-status": "http_status", "a.b": "a.b", "9p": "9p", "a b/c": "a_b_c", "ü": "__",
	} {
		if got := EnvLabel(in); got != want {
			t.Errorf("EnvLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNamesAndPaths(t *testing.T) {
	tests := []struct {
		id          Identity
		wantService string
		wantPath    string
	}{
		{Identity{InNomad: true, JobID: "web", Group: "web"}, "web", "nomad/jobs/web/web"},
		{Identity{InNomad: true, JobID: "billing", Group: "Cron_Workers"}, "billing-cron-workers", "nomad/jobs/billing/Cron_Workers"},
		{Identity{InNomad: true, JobID: "batch/dispatch-1", JobParentID: "batch", Group: "g"}, "batch-g", "nomad/jobs/batch/g"},
		{Identity{ID: "host"}, "", ""},
	}
	for _, tt := range tests {
		if got := tt.id.DefaultServiceName(); got != tt.wantService {
			t.Errorf("%+v DefaultServiceName = %q, want %q", tt.id, got, tt.wantService)
		}
		if got := tt.id.VariablePath(); got != tt.wantPath {
			t.Errorf("%+v VariablePath = %q, want %q", tt.id, got, tt.wantPath)
		}
	}
}
