package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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

func runJobspec(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	var f jobspec.Flags
	fs := newFlagSet("jobspec")
	f.Register(fs.FlagSet)
	fs.VisitAll(func(fl *flag.Flag) { fs.noEnv[fl.Name] = true })
	err := fs.parse(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout, fs, jobspecSynopsis, jobspecExamples)
		return exitOK
	}
	if err != nil {
		return exitFor(stderr, "jobspec", err)
	}
	if rest := fs.Args(); len(rest) > 0 {
		if i := len(args) - len(rest) - 1; i < 0 || args[i] != "--" {
			return exitFor(stderr, "jobspec", usagef("unexpected argument %q: put the command after --", rest[0]))
		}
		f.SetCommand(rest)
	}
	out, note, err := f.Render()
	if err != nil {
		return exitFor(stderr, "jobspec", usagef("%s", strings.TrimPrefix(oneLine(err), "jobspec: ")))
	}
	if note != "" {
		fmt.Fprintln(stderr, note)
	}
	_, _ = stdout.Write(out)
	return exitOK
}
