package nomad

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"
	"github.com/leaderd/leaderd/nomad/nomadfake"
)

// TestValidateVariablePath checks the rule on paths Nomad accepts and
// refuses, and that the fake (which mirrors Nomad's server-side check)
// agrees: every path refused here is a 400 on write there, and no other.
func TestValidateVariablePath(t *testing.T) {
	long := "nomad/jobs/" + strings.Repeat("j", 58) + "/" + strings.Repeat("g", 58) // 128
	tests := []struct {
		path string
		want string // "" valid, else a part of the error
	}{
		{"nomad/jobs/web/api", ""},
		{"nomad/jobs/a~b-c_D9/E", ""},
		{long, ""},
		{"nomad/job-templates/base", ""},
		{"app/config", ""},
		{"nomad/jobs/my.app/web", `has '.'`},
		{"nomad/jobs/web/api v2", `has ' '`},
		{"nomad/jobs/wéb/api", `has 'é'`},
		{"nomad/jobs/web@dc1/api", `has '@'`},
		{long + "g", "is 129 characters long"},
		{"nomad", `below "nomad/"`},
		{"nomad/other", `below "nomad/"`},
		{"nomad/job-templates", `below "nomad/"`},
		{"nomad/job-templates/a/b", `below "nomad/"`},
	}
	fake := nomadfake.New()
	c, err := api.NewClient(&api.Config{Address: "http://nomad.invalid", HttpClient: &http.Client{Transport: fake.Transport()}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			err := ValidateVariablePath(tt.path)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("ValidateVariablePath = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("ValidateVariablePath = %v, want an error containing %q", err, tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), "^[a-zA-Z0-9-_~/]{1,128}$") && !strings.Contains(tt.want, "nomad/"):
				t.Errorf("error does not state the rule: %v", err)
			}
			_, _, werr := c.Variables().Create(&api.Variable{Path: tt.path, Items: api.VariableItems{"k": "v"}}, nil)
			if refused := statusIs(werr, http.StatusBadRequest); refused != (err != nil) {
				t.Errorf("fake Nomad write: %v; ValidateVariablePath: %v", werr, err)
			}
		})
	}
	if err := ValidateVariablePath(""); err == nil {
		t.Error("empty path accepted")
	}
}

func statusIs(err error, code int) bool {
	c, _ := statusCode(err)
	return c == code
}

// TestVariablesPublisherRefusesBadPath: inside a task whose job or group
// can't be part of a variable path, the publisher fails at construction,
// naming the job or group and the rule, and nothing reaches Nomad. Only
// NOMAD_SECRETS_DIR and NOMAD_TOKEN point at the (fake) Task API.
func TestVariablesPublisherRefusesBadPath(t *testing.T) {
	tests := []struct {
		name       string
		job, group string
		want       []string
	}{
		{"dotted job", "my.app", "web", []string{`leader record path "nomad/jobs/my.app/web"`, `job "my.app" has '.'`}},
		{"group with a space and a dotted job", "my.app", "web api", []string{`job "my.app" has '.', group "web api" has ' '`}},
		{"too long", strings.Repeat("j", 70), strings.Repeat("g", 50),
			[]string{"is 132 characters long", `job "` + strings.Repeat("j", 70) + `": 70`, `: 50`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fakeNomad(t)
			c, err := NewClientFromEnv(envFunc(map[string]string{"NOMAD_SECRETS_DIR": s.SecretsDir, "NOMAD_TOKEN": workload}))
			if err != nil {
				t.Fatal(err)
			}
			id := nomadIdentity()
			id.JobID, id.Group = tt.job, tt.group
			_, err = NewVariablesPublisher(VariablesConfig{Client: c, Identity: id})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range append(tt.want, "^[a-zA-Z0-9-_~/]{1,128}$", "rename the job or group") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if reqs := s.Requests(); len(reqs) != 0 {
				t.Errorf("requests reached Nomad: %+v", reqs)
			}
		})
	}
	t.Run("explicit path", func(t *testing.T) {
		c, err := NewClientFromEnv(envFunc(map[string]string{"NOMAD_ADDR": "http://127.0.0.1:1"}))
		if err != nil {
			t.Fatal(err)
		}
		_, err = NewVariablesPublisher(VariablesConfig{Client: c, Identity: Identity{ID: "vm1"}, Path: "leaders/reports.v2"})
		if err == nil || !strings.Contains(err.Error(), `Path: variable path "leaders/reports.v2" has '.'`) {
			t.Errorf("err = %v", err)
		}
	})
}
