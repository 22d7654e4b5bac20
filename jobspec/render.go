package jobspec

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/leaderd/leaderd/nomad"
)

//go:embed templates/job.nomad.hcl.tmpl
var templates embed.FS

var jobTemplate = template.Must(template.New("job.nomad.hcl.tmpl").Funcs(template.FuncMap{
	"q":       hclString,
	"list":    hclList,
	"s":       func(p *string) string { return *p },
	"i":       func(p *int) int { return *p },
	"b":       func(p *bool) bool { return *p },
	"d":       durationOf,
	"config":  hclConfig,
	"env":     hclEnv,
	"heredoc": heredoc,
	"indent":  func(n int, v any) any { return struct{ In, V any }{strings.Repeat(" ", n), v} },
}).ParseFS(templates, "templates/job.nomad.hcl.tmpl"))

// Render returns the job as HCL (Nomad's HCL2 jobspec), for `nomad job
// run`. It errors, naming every bad option, when opts are invalid.
func Render(opts Options) ([]byte, error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	view := struct {
		Opts          Options
		Job           *api.Job
		Title         string
		VarPath       string
		PolicyCommand string
	}{
		Opts:          o,
		Job:           o.job(),
		Title:         title(o),
		VarPath:       o.VariablePath(),
		PolicyCommand: nomad.PolicyApplyCommand(o.Namespace, o.Job, o.Group, nomad.PolicyName+".policy.hcl"),
	}
	var buf bytes.Buffer
	if err := jobTemplate.Execute(&buf, view); err != nil {
		return nil, fmt.Errorf("jobspec: render HCL: %w", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// RenderJSON returns the job as {"Job": …} built from nomad/api types: the
// body of PUT /v1/jobs, accepted by `nomad job run -json` and by
// Terraform's nomad_job with json = true.
func RenderJSON(opts Options) ([]byte, error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	// No HTML escaping: a shell line's & and > stay readable.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(struct{ Job *api.Job }{o.job()}); err != nil {
		return nil, fmt.Errorf("jobspec: render JSON: %w", err)
	}
	return b.Bytes(), nil
}

// Job returns the api.Job both renderings come from, for callers that
// submit it with the nomad/api client themselves.
func Job(opts Options) (*api.Job, error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	return o.job(), nil
}

// RenderPolicy returns the Nomad ACL policy native mode needs (write and
// read on the group's leader record) and the command that attaches it to
// the job's group.
func RenderPolicy(opts Options) (policy []byte, applyCommand string, err error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return nil, "", err
	}
	file := nomad.PolicyName + ".policy.hcl"
	cmd := nomad.PolicyApplyCommand(o.Namespace, o.Job, o.Group, file)
	head := fmt.Sprintf("# Lets the tasks of job %q, group %q write their leader record (leaderd\n# -publish nomad-vars). Reads are already allowed by Nomad's implicit\n# workload policy; write is not. Apply with:\n#   %s\n", o.Job, o.Group, cmd)
	return []byte(head + nomad.VariablesPolicy(o.Namespace, o.VariablePath())), cmd, nil
}

func title(o Options) string {
	switch o.Mode {
	case ModeWrap:
		return fmt.Sprintf("leaderd: %q runs on the leader only (leader task, %d candidates)", o.Service, o.Count)
	case ModeSidecar:
		return fmt.Sprintf("leaderd: sidecar electing a leader among %d %q allocations", o.Count, o.Service)
	default:
		return fmt.Sprintf("leaderd: %q with Nomad-native leader/follower tags (%d allocations)", o.Service, o.Count)
	}
}

// hclString quotes s for HCL. ${…} stays as it is: Nomad keeps unknown
// references for run-time interpolation (${NOMAD_PORT_status},
// ${attr.unique.network.ip-address}), as it does in JSON jobs. %{ would
// start an HCL template directive, so it is escaped.
func hclString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '%':
			if i+1 < len(s) && s[i+1] == '{' {
				b.WriteByte('%')
			}
			b.WriteByte('%')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func hclList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = hclString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// hclLongList puts a list of more than three items one item a line, for
// the command lines people edit, at the given block indentation.
func hclLongList(ss []string, indent int) string {
	if len(ss) <= 3 {
		return hclList(ss)
	}
	in := strings.Repeat(" ", indent)
	var b strings.Builder
	b.WriteString("[\n")
	for _, s := range ss {
		b.WriteString(in + "  " + hclString(s) + ",\n")
	}
	b.WriteString(in + "]")
	return b.String()
}

// durationOf formats a duration the way people write them in jobspecs
// ("15s", "5m"), accepting a value or a pointer.
func durationOf(v any) string {
	var d time.Duration
	switch x := v.(type) {
	case time.Duration:
		d = x
	case *time.Duration:
		d = *x
	}
	switch {
	case d != 0 && d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d != 0 && d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// configOrder puts driver config keys in the order people expect.
var configOrder = []string{"image", "entrypoint", "command", "args", "ports"}

type kv struct{ K, V string }

func hclConfig(cfg map[string]any) []kv {
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		ia, ib := slices.Index(configOrder, a), slices.Index(configOrder, b)
		if ia < 0 || ib < 0 {
			return strings.Compare(a, b)
		}
		return ia - ib
	})
	out := make([]kv, 0, len(keys))
	for _, k := range pad(keys) {
		switch v := cfg[strings.TrimSpace(k)].(type) {
		case string:
			out = append(out, kv{k, hclString(v)})
		case []string:
			out = append(out, kv{k, hclLongList(v, 8)})
		default:
			panic(fmt.Sprintf("jobspec: config %s has unsupported type %T", k, v))
		}
	}
	return out
}

func hclEnv(env map[string]string) []kv {
	out := make([]kv, 0, len(env))
	for k, v := range env {
		out = append(out, kv{k, hclString(v)})
	}
	slices.SortFunc(out, func(a, b kv) int { return strings.Compare(a.K, b.K) })
	keys := make([]string, len(out))
	for i := range out {
		keys[i] = out[i].K
	}
	for i, k := range pad(keys) {
		out[i].K = k
	}
	return out
}

// pad right-pads keys to one width, so "=" signs line up as hclfmt does.
func pad(keys []string) []string {
	w := 0
	for _, k := range keys {
		w = max(w, len(k))
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + strings.Repeat(" ", w-len(k))
	}
	return out
}

// heredoc indents a template body for a `<<-EOT` heredoc, whose value is the
// lines with the common indentation removed plus a final newline.
func heredoc(n int, s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	pad := strings.Repeat(" ", n)
	for i, l := range lines {
		lines[i] = pad + l
	}
	return strings.Join(lines, "\n")
}
