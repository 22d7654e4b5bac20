package jobspec

import (
	"flag"
	"strings"
	"time"
)

// Flags are leaderd jobspec's flags: the Options, and which rendering to
// print. They have no environment twins: a rendering depends on its
// arguments only.
type Flags struct {
	Options Options
	JSON    bool // RenderJSON instead of Render
	Policy  bool // RenderPolicy instead of a job
}

// Register declares the flags on fs, with the defaults the command has
// always had (3 candidates, 15s kill_timeout, 200 MHz, 256 MB).
func (f *Flags) Register(fs *flag.FlagSet) {
	o := &f.Options
	o.KillTimeout = 15 * time.Second
	fs.StringVar((*string)(&o.Mode), "mode", string(ModeWrap), "layout: wrap, sidecar or native")
	fs.StringVar(&o.Service, "service", "", "service name, a DNS label (required)")
	fs.StringVar(&o.Job, "job", "", "Nomad job name (default the service name)")
	fs.StringVar(&o.Group, "group", "", "task group name (default the service name)")
	fs.StringVar(&o.Namespace, "namespace", "", "Nomad namespace (default Nomad's default)")
	fs.Func("datacenters", "datacenters, comma `list` (default \"*\": all)", listSetter(&o.Datacenters))
	fs.IntVar(&o.Count, "count", 3, "number of candidates (task group count)")
	fs.StringVar(&o.Image, "image", "", "the app's Docker image; empty: the exec driver runs the command")
	fs.IntVar(&o.AppPort, "app-port", 0, "port the app listens on inside its container (0: it reads NOMAD_PORT_app)")
	fs.StringVar(&o.LeaderdPath, "leaderd-path", "/usr/local/bin/leaderd", "leaderd's path on the Nomad clients (or in the image)")
	fs.StringVar(&o.ConsulAddr, "consul-addr", "${attr.unique.network.ip-address}:8500", "CONSUL_HTTP_ADDR given to leaderd in the job")
	fs.Func("tags", "extra Consul tags, comma `list`", listSetter(&o.Tags))
	fs.Var(durationFlag{&o.KillTimeout}, "kill-timeout", "the leaderd task's kill_timeout: time to stop the child and release before Nomad's SIGKILL")
	fs.IntVar(&o.CPU, "cpu", 200, "app CPU in MHz")
	fs.IntVar(&o.MemoryMB, "memory", 256, "app memory in MB")
	fs.BoolVar(&f.JSON, "json", false, "print JSON ({\"Job\": ...}) instead of HCL")
	fs.BoolVar(&f.Policy, "policy", false, "print the Nomad ACL policy -mode native needs, and how to apply it")
}

// SetCommand sets the app's command line (what follows -- on leaderd
// jobspec's command line).
func (f *Flags) SetCommand(argv []string) {
	if len(argv) > 0 {
		f.Options.Command, f.Options.Args = argv[0], argv[1:]
	}
}

// Render is what the flags ask for. note, with -policy, is how to apply
// the policy, for the user (stderr) rather than for the file.
func (f *Flags) Render() (out []byte, note string, err error) {
	switch {
	case f.Policy:
		out, cmd, err := RenderPolicy(f.Options)
		if err != nil {
			return nil, "", err
		}
		return out, "apply it with: " + cmd, nil
	case f.JSON:
		out, err = RenderJSON(f.Options)
	default:
		out, err = Render(f.Options)
	}
	return out, "", err
}

// listSetter sets a comma-separated list; each call replaces the list.
func listSetter(l *[]string) func(string) error {
	return func(s string) error {
		*l = nil
		for _, item := range strings.Split(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				*l = append(*l, item)
			}
		}
		return nil
	}
}

// durationFlag keeps time.ParseDuration's error, so "-kill-timeout abc"
// says why instead of the flag package's bare "parse error". Get makes it
// a flag.Getter of a time.Duration, which help texts show as "duration".
type durationFlag struct{ d *time.Duration }

func (v durationFlag) String() string {
	if v.d == nil {
		return ""
	}
	return v.d.String()
}

func (v durationFlag) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

func (v durationFlag) Get() any { return *v.d }
