package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/leaderd/leaderd/jobspec"
)

const jobspecSynopsis = `
Usage: leaderd jobspec -service name [flags] [-- command [args...]]

Print a Nomad job that runs leaderd as a task group of -count candidates,
in HCL (default) or in the JSON that "nomad job run -json" and Terraform's
nomad_job (json = true) accept. Layouts (-mode):
  wrap     leaderd runs the command as its child, on the leader only
  sidecar  the app always runs; leaderd beside it tells who leads
           (GET /v1/leader, Consul tag leader/follower)
  native   sidecar, plus a leader/follower tag on a Nomad-native service
           fed by a Nomad Variable; needs the ACL policy from -policy
The command after -- is the app (wrap: leaderd's child). Nomad interpolates
${NOMAD_...} in it at run time: quote it for your shell.

These flags have no LEADERD_* twins: a rendering depends on its arguments
only. Exit codes: 0 printed, 2 bad flags or options.`

const jobspecExamples = `
  leaderd jobspec -service reports -- /usr/local/bin/reports-worker --loop > reports.nomad.hcl
  leaderd jobspec -service web -mode sidecar -image nginx:1.27 -app-port 80 -json > web.json
  leaderd jobspec -service web -mode native -image nginx:1.27 -policy > leaderd-vars.policy.hcl`

func runJobspec(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	var o jobspec.Options
	var mode string
	var asJSON, policy bool
	fs := newFlagSet("jobspec")
	fs.StringVar(&mode, "mode", string(jobspec.ModeWrap), "layout: wrap, sidecar or native")
	fs.StringVar(&o.Service, "service", "", "service name, a DNS label (required)")
	fs.StringVar(&o.Job, "job", "", "Nomad job name (default the service name)")
	fs.StringVar(&o.Group, "group", "", "task group name (default the service name)")
	fs.StringVar(&o.Namespace, "namespace", "", "Nomad namespace (default Nomad's default)")
	fs.Var(listValue{&o.Datacenters}, "datacenters", `datacenters, comma list (default "*": all)`)
	fs.IntVar(&o.Count, "count", 3, "number of candidates (task group count)")
	fs.StringVar(&o.Image, "image", "", "the app's Docker image; empty: the exec driver runs the command")
	fs.IntVar(&o.AppPort, "app-port", 0, "port the app listens on inside its container (0: it reads NOMAD_PORT_app)")
	fs.StringVar(&o.LeaderdPath, "leaderd-path", "/usr/local/bin/leaderd", "leaderd's path on the Nomad clients (or in the image)")
	fs.StringVar(&o.ConsulAddr, "consul-addr", "${attr.unique.network.ip-address}:8500", "CONSUL_HTTP_ADDR given to leaderd in the job")
	fs.Var(listValue{&o.Tags}, "tags", "extra Consul tags, comma list")
	o.KillTimeout = 15 * time.Second
	fs.Var(durationValue{&o.KillTimeout}, "kill-timeout", "the leaderd task's kill_timeout: time to stop the child and release before Nomad's SIGKILL")
	fs.IntVar(&o.CPU, "cpu", 200, "app CPU in MHz")
	fs.IntVar(&o.MemoryMB, "memory", 256, "app memory in MB")
	fs.BoolVar(&asJSON, "json", false, "print JSON ({\"Job\": ...}) instead of HCL")
	fs.BoolVar(&policy, "policy", false, "print the Nomad ACL policy -mode native needs, and how to apply it")
	fs.VisitAll(func(f *flag.Flag) { fs.noEnv[f.Name] = true })
	err := fs.parse(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout, fs, jobspecSynopsis, jobspecExamples)
		return exitOK
	}
	if err != nil {
		return exitFor(stderr, "jobspec", err)
	}
	o.Mode = jobspec.Mode(mode)
	if rest := fs.Args(); len(rest) > 0 {
		if i := len(args) - len(rest) - 1; i < 0 || args[i] != "--" {
			return exitFor(stderr, "jobspec", usagef("unexpected argument %q: put the command after --", rest[0]))
		}
		o.Command, o.Args = rest[0], rest[1:]
	}

	var out []byte
	switch {
	case policy:
		var cmd string
		out, cmd, err = jobspec.RenderPolicy(o)
		if err == nil {
			fmt.Fprintf(stderr, "apply it with: %s\n", cmd)
		}
	case asJSON:
		out, err = jobspec.RenderJSON(o)
	default:
		out, err = jobspec.Render(o)
	}
	if err != nil {
		return exitFor(stderr, "jobspec", usagef("%s", strings.TrimPrefix(oneLine(err), "jobspec: ")))
	}
	_, _ = stdout.Write(out)
	return exitOK
}
