package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

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

// jobspecCommand is `leaderd jobspec` in the command table. Its flags
// have no environment twins: a rendering depends on its arguments only.
func jobspecCommand(fs *flagSet) action {
	var f jobspec.Flags
	f.Register(fs.FlagSet)
	fs.VisitAll(func(fl *flag.Flag) { fs.noEnv[fl.Name] = true })
	return func(_ context.Context, argv []string, in invocation) int {
		f.SetCommand(argv)
		out, note, err := f.Render()
		if err != nil {
			return exitFor(in.stderr, "jobspec", usagef("%s", strings.TrimPrefix(oneLine(err), "jobspec: ")))
		}
		if note != "" {
			fmt.Fprintln(in.stderr, note)
		}
		_, _ = in.stdout.Write(out)
		return exitOK
	}
}
