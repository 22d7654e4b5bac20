package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
)

// TestPassEnv: -pass-env and its twin take only the withheld names, and
// name themselves when given another.
func TestPassEnv(t *testing.T) {
	svc := []string{"LEADERD_SERVICE", "web"}
	tests := []struct {
		name string
		args []string
		env  []string
		want []string // parsed PassEnv; nil with bad set
		bad  string   // the one line of a usage error
	}{
		{name: "default", args: []string{"-pass-env", ""}, want: nil},
		{name: "flag", args: []string{"-pass-env", "CONSUL_HTTP_TOKEN, NOMAD_TOKEN"}, want: []string{"CONSUL_HTTP_TOKEN", "NOMAD_TOKEN"}},
		{name: "env", env: []string{"LEADERD_PASS_ENV", "CONSUL_HTTP_AUTH"}, want: []string{"CONSUL_HTTP_AUTH"}},
		{name: "flag wins", args: []string{"-pass-env", "NOMAD_TOKEN"}, env: []string{"LEADERD_PASS_ENV", "HOME"}, want: []string{"NOMAD_TOKEN"}},
		{name: "other name", args: []string{"-pass-env", "NOMAD_TOKEN,HOME"}, bad: `invalid value "NOMAD_TOKEN,HOME" for flag -pass-env: "HOME" is not withheld`},
		{name: "other name in env", env: []string{"LEADERD_PASS_ENV", "AWS_SECRET_ACCESS_KEY"}, bad: `invalid value "AWS_SECRET_ACCESS_KEY" for LEADERD_PASS_ENV`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := envMap(append(slices.Clone(svc), tc.env...)...)
			cfg, _, err := parseRunConfig(tc.args, env)
			if tc.bad == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(cfg.PassEnv, tc.want) {
					t.Errorf("PassEnv = %q, want %q", cfg.PassEnv, tc.want)
				}
				return
			}
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), append([]string{"run"}, tc.args...), env, &stdout, &stderr); code != exitUsage {
				t.Errorf("exit code = %d, want %d", code, exitUsage)
			}
			if lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n"); len(lines) != 1 || !strings.Contains(lines[0], tc.bad) {
				t.Errorf("stderr = %q, want one line containing %q", stderr.String(), tc.bad)
			}
		})
	}
}
