package jobspec

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/nomad/api"
)

var update = flag.Bool("update", false, "rewrite golden files and the shipped examples from the current renderer")

// golden compares got with the file, or rewrites it under -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./jobspec -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs from the renderer's output (-file +rendered); if intended, run go test ./jobspec -update:\n%s", path, diff)
	}
}

// The shipped examples users copy.
var (
	exampleWrap = Options{Mode: ModeWrap, Service: "example",
		Command: "/usr/local/bin/my-app", Args: []string{"--listen", "0.0.0.0:${NOMAD_PORT_app}"}}
	exampleSidecar = Options{Mode: ModeSidecar, Service: "example", Image: "ghcr.io/example/app:1.0", AppPort: 8080}
	exampleNative  = Options{Mode: ModeNative, Service: "example",
		Command: "/usr/local/bin/my-app", Args: []string{"--listen", "0.0.0.0:${NOMAD_PORT_app}"}}
)

// renderCases: shipped marks the cases whose HCL golden file is a shipped,
// copy-ready example in jobspec/ rather than a copy under testdata/.
var renderCases = []struct {
	name    string
	opts    Options
	shipped string
}{
	{"wrap-exec", exampleWrap, "leader-task.nomad.hcl"},
	{"wrap-docker", Options{Service: "reports", Job: "reports-job", Group: "workers", Namespace: "batch",
		Datacenters: []string{"dc1", "dc2"}, Count: 5, Image: "registry.example.com/reports:2.1", AppPort: 9000,
		Command: "/app/reports", Args: []string{"--loop", `--say="hi" 100%{x}`}, Tags: []string{"v2", "blue"},
		KillTimeout: 30 * time.Second, CPU: 500, MemoryMB: 1024}, ""},
	{"sidecar-docker", exampleSidecar, "sidecar.nomad.hcl"},
	{"sidecar-exec", Options{Mode: ModeSidecar, Service: "cron", Command: "/usr/bin/cron-runner", Tags: []string{"ops"}}, ""},
	{"native-exec", exampleNative, "native.nomad.hcl"},
	{"native-docker", Options{Mode: ModeNative, Service: "api", Namespace: "prod", Image: "ghcr.io/example/api:3", Tags: []string{"v3"}}, ""},
}

// TestRenderForms renders every case in HCL and JSON, checks both against
// golden files, parses the HCL, decodes the JSON into api.Job, and compares
// the key fields of the two.
func TestRenderForms(t *testing.T) {
	for _, tc := range renderCases {
		t.Run(tc.name, func(t *testing.T) {
			hcl, err := Render(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			js, err := RenderJSON(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			hclGolden := filepath.Join("testdata", tc.name+".nomad.hcl")
			if tc.shipped != "" {
				hclGolden = tc.shipped
			}
			golden(t, hclGolden, hcl)
			golden(t, filepath.Join("testdata", tc.name+".json"), js)

			root, err := parseHCL(string(hcl))
			if err != nil {
				t.Fatalf("HCL does not parse: %v", err)
			}
			fromH, err := fromHCL(root)
			if err != nil {
				t.Fatal(err)
			}
			var req struct{ Job *api.Job }
			dec := json.NewDecoder(bytes.NewReader(js))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil || req.Job == nil {
				t.Fatalf("JSON does not decode into {Job: api.Job}: %v", err)
			}
			if diff := cmp.Diff(fromAPI(req.Job), fromH); diff != "" {
				t.Errorf("HCL and JSON disagree (-json +hcl):\n%s", diff)
			}
		})
	}
}

// TestRenderedJobProperties asserts what the jobspecs promise, on the
// decoded JSON (which TestRenderForms ties to the HCL).
func TestRenderedJobProperties(t *testing.T) {
	for _, tc := range renderCases {
		t.Run(tc.name, func(t *testing.T) {
			job, err := Job(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			o := tc.opts.withDefaults()
			g := job.TaskGroups[0]
			if *g.Count != o.Count || *job.Update.MaxParallel != 1 || *g.RestartPolicy.Mode != "delay" {
				t.Errorf("count %d (want %d), max_parallel %d, restart mode %s", *g.Count, o.Count, *job.Update.MaxParallel, *g.RestartPolicy.Mode)
			}
			var leaderd *api.Task
			for _, task := range g.Tasks {
				if task.Name == TaskLeaderd {
					leaderd = task
				}
			}
			if leaderd == nil {
				t.Fatal("no leaderd task")
			}
			if leaderd.KillSignal != "SIGTERM" || *leaderd.KillTimeout != o.KillTimeout || o.KillTimeout < 15*time.Second {
				t.Errorf("leaderd kill_signal %q kill_timeout %s, want SIGTERM and %s (>= 15s)", leaderd.KillSignal, *leaderd.KillTimeout, o.KillTimeout)
			}
			if got := leaderd.Env["CONSUL_HTTP_ADDR"]; got != "${attr.unique.network.ip-address}:8500" {
				t.Errorf("CONSUL_HTTP_ADDR = %q", got)
			}
			args := strings.Join(leaderd.Config["args"].([]string), " ")
			wantPublish := map[Mode]string{ModeWrap: "-publish consul-tags", ModeSidecar: "-publish consul-tags", ModeNative: "-publish nomad-vars"}[o.Mode]
			for _, want := range []string{"run -service " + o.Service, "-listen 0.0.0.0:${NOMAD_PORT_status}", wantPublish} {
				if !strings.Contains(args, want) {
					t.Errorf("leaderd args %q lack %q", args, want)
				}
			}
			if hasChild := strings.Contains(args, " -- "); hasChild != (o.Mode == ModeWrap) {
				t.Errorf("leaderd args %q: child command present = %t in %s mode", args, hasChild, o.Mode)
			}
			if identity := leaderd.Identity != nil && leaderd.Identity.Env; identity != (o.Mode == ModeNative) {
				t.Errorf("identity env = %t in %s mode", identity, o.Mode)
			}
			// A leader-only check on /v1/leader that can't fail deployments.
			var checks []api.ServiceCheck
			for _, s := range g.Services {
				checks = append(checks, s.Checks...)
			}
			for _, task := range g.Tasks {
				for _, s := range task.Services {
					checks = append(checks, s.Checks...)
				}
			}
			if len(checks) != 1 || checks[0].Path != "/v1/leader" || checks[0].OnUpdate != "ignore" || checks[0].PortLabel != PortStatus {
				t.Errorf("checks = %+v, want one /v1/leader check on the status port with on_update ignore", checks)
			}
		})
	}
}

// TestRoleTemplate executes the native role template with stand-ins for
// Nomad's nomadVarExists, nomadVar and env, shaped like consul-template's
// (nomadVar yields a map of items whose .Value is the string).
func TestRoleTemplate(t *testing.T) {
	type item struct{ Key, Value string }
	const path = "nomad/jobs/api/api"
	tests := []struct {
		name  string
		items map[string]string // nil: variable missing
		want  string
	}{
		{"this allocation leads", map[string]string{"leader_id": "alloc-1", "token": "9"}, "LEADERD_ROLE=leader"},
		{"another allocation leads", map[string]string{"leader_id": "alloc-2", "token": "9"}, "LEADERD_ROLE=follower"},
		{"record cleared", map[string]string{"leader_id": "", "token": "9"}, "LEADERD_ROLE=follower"},
		{"record without leader_id", map[string]string{"token": "9"}, "LEADERD_ROLE=follower"},
		{"no record yet", nil, "LEADERD_ROLE=follower"},
	}
	data := Options{Service: "api"}.withDefaults().roleTemplate()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := template.New("role").Funcs(template.FuncMap{
				"nomadVarExists": func(p string) bool { return p == path && tt.items != nil },
				"nomadVar": func(p string) map[string]item {
					if p != path || tt.items == nil {
						t.Fatalf("nomadVar(%q) on a missing variable: Nomad would block here", p)
					}
					m := map[string]item{}
					for k, v := range tt.items {
						m[k] = item{k, v}
					}
					return m
				},
				"env": func(k string) string { return map[string]string{"NOMAD_ALLOC_ID": "alloc-1"}[k] },
			}).Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			if err := tmpl.Execute(&out, nil); err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(out.String()); got != tt.want {
				t.Errorf("rendered %q, want %q", got, tt.want)
			}
		})
	}
}

// TestShippedExamples keeps the shipped variables policy equal to what
// RenderPolicy produces (the shipped jobs are TestRenderForms' goldens).
func TestShippedExamples(t *testing.T) {
	policy, cmd, err := RenderPolicy(exampleNative)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "leaderd-vars.policy.hcl", policy)
	if want := "nomad acl policy apply -namespace default -job example -group example leaderd-vars leaderd-vars.policy.hcl"; cmd != want {
		t.Errorf("policy command = %q, want %q", cmd, want)
	}
	root, err := parseHCL(string(policy))
	if err != nil {
		t.Fatalf("policy does not parse: %v", err)
	}
	ns := need(root.one("namespace"), "namespace block")
	p := need(need(ns.one("variables"), "variables block").one("path"), "path block")
	if ns.Labels[0] != "default" || p.Labels[0] != "nomad/jobs/example/example" ||
		!cmp.Equal(strs(p, "capabilities"), []string{"write", "read"}) {
		t.Errorf("policy grants %v on %s/%s, want [write read] on default/nomad/jobs/example/example", p.Attrs, ns.Labels, p.Labels)
	}
}

func TestOptionErrors(t *testing.T) {
	_, err := Render(Options{Mode: "blue", Service: "Bad_Name", Group: "a.b", Count: -1, Tags: []string{"leader"},
		KillTimeout: time.Second, LeaderdPath: "leaderd", Datacenters: []string{`d"c`}})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`mode "blue"`, `service "Bad_Name"`, `group "a.b"`, "count -1", `tag "leader"`, "kill timeout 1s",
		`leaderd path "leaderd"`, `datacenter "d\"c"`, "image or command is required",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := RenderJSON(Options{Service: "x"}); err == nil || !strings.Contains(err.Error(), "command is required in wrap mode") {
		t.Errorf("wrap without command: %v", err)
	}
}

// TestNativeVariablePathLength: each name fits Nomad's rule alone, but
// native mode's nomad/jobs/<job>/<group> must fit in 128 characters too.
func TestNativeVariablePathLength(t *testing.T) {
	o := Options{Mode: ModeNative, Service: "x", Command: "/app", Job: strings.Repeat("j", 70), Group: strings.Repeat("g", 60)}
	_, err := Render(o)
	if err == nil || !strings.Contains(err.Error(), "native mode keeps the leader record at nomad/jobs/<job>/<group>") ||
		!strings.Contains(err.Error(), "is 142 characters long") {
		t.Errorf("native: err = %v, want the path length error", err)
	}
	o.Mode = ModeSidecar
	if _, err := Render(o); err != nil {
		t.Errorf("sidecar writes no variable, yet: %v", err)
	}
}

func TestHCLString(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:              `"plain"`,
		`say "hi"\now`:       `"say \"hi\"\\now"`,
		"two\nlines":         `"two\nlines"`,
		"${NOMAD_PORT_app}":  `"${NOMAD_PORT_app}"`,
		"100%{x} and 100% y": `"100%%{x} and 100% y"`,
	} {
		if got := hclString(in); got != want {
			t.Errorf("hclString(%q) = %s, want %s", in, got, want)
		}
		root, err := parseHCL("a = " + hclString(in) + "\n")
		if err != nil || root.Attrs["a"] != in {
			t.Errorf("round trip of %q: %v, %v", in, root, err)
		}
	}
}

// TestParserRejects makes sure "the HCL parses" can fail.
func TestParserRejects(t *testing.T) {
	for _, src := range []string{
		"job \"x\" {\n",
		"job \"x\" {}}\n",
		"a = \"unterminated\n",
		"a = \"%{ if x }\"\n",
		"a = var.x\n",
		"a = 1 b = 2\n",
		"a = [\"x\" \"y\"]\n",
		"a = 1\na = 2\n",
		"a = <<-EOT\nno end\n",
	} {
		if _, err := parseHCL(src); err == nil {
			t.Errorf("parseHCL accepted %q", src)
		}
	}
}
