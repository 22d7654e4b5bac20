package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestJobspecCommand(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		check    func(t *testing.T, stdout, stderr string)
	}{
		{"hcl", []string{"-service", "reports", "--", "/usr/local/bin/worker", "--loop"}, exitOK, func(t *testing.T, out, _ string) {
			for _, want := range []string{`job "reports"`, `count = 3`, "\"--\",\n          \"/usr/local/bin/worker\",\n          \"--loop\""} {
				if !strings.Contains(out, want) {
					t.Errorf("HCL lacks %q:\n%s", want, out)
				}
			}
		}},
		{"json", []string{"-service", "web", "-mode", "sidecar", "-image", "nginx:1.27", "-count", "5", "-json"}, exitOK, func(t *testing.T, out, _ string) {
			var v struct {
				Job struct {
					ID         string
					TaskGroups []struct{ Count int }
				}
			}
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
			if v.Job.ID != "web" || len(v.Job.TaskGroups) != 1 || v.Job.TaskGroups[0].Count != 5 {
				t.Errorf("job = %+v, want ID web with one group of 5", v.Job)
			}
		}},
		{"policy", []string{"-service", "web", "-mode", "native", "-image", "nginx:1.27", "-policy"}, exitOK, func(t *testing.T, out, errOut string) {
			if !strings.Contains(out, `nomad/jobs/web/web`) || !strings.Contains(errOut, "nomad acl policy apply") {
				t.Errorf("policy %q, stderr %q: want the variable path and the apply command", out, errOut)
			}
		}},
		{"bad options", []string{"-service", "Bad_Name"}, exitUsage, func(t *testing.T, _, errOut string) {
			if lines := strings.Count(errOut, "\n"); lines != 1 || !strings.HasPrefix(errOut, `leaderd jobspec: service "Bad_Name"`) {
				t.Errorf("stderr %q: want one line naming the service", errOut)
			}
		}},
		{"command without --", []string{"-service", "x", "/bin/app"}, exitUsage, nil},
		{"no env twin", []string{"-json"}, exitUsage, nil}, // LEADERD_SERVICE below must not count
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"jobspec"}, tc.args...), envMap("LEADERD_SERVICE", "fromenv"), &stdout, &stderr)
			if code != tc.wantCode {
				t.Fatalf("exit code = %d, want %d; stderr: %s", code, tc.wantCode, stderr.String())
			}
			if tc.check != nil {
				tc.check(t, stdout.String(), stderr.String())
			}
		})
	}
}
