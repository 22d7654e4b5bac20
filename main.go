// Command leaderd elects one leader among N instances of a service through
// Consul's HTTP API, keeps that leader safe (it steps down before anyone
// else could take over), tells the world who leads, and optionally runs a
// command only while it leads.
//
// This file is the entry point and the command table, which owns parsing,
// help and exit codes; each command lives in its own file (run.go,
// leader.go, transfer.go, jobspec.go, demo.go) and its components in packages (elect,
// consulhttp, nomad, jobspec). Exit codes, for every command:
//
//	0  success
//	1  runtime error (Consul refused, ACL denied, ...); leaderd transfer:
//	   leadership went to another candidate than -to
//	2  bad flags, arguments or environment
//	3  leaderd leader, leaderd transfer: nobody leads
//	4  leaderd run -timeout: not leading within the timeout (gave up);
//	   leaderd transfer: the leader refused to hand over, or did not within
//	   -timeout
//
// leaderd run with a command exits with the command's own code when the
// command exits by itself (128+n when it died of signal n).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/leaderd/leaderd/elect/child"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
// Otherwise it comes from the module's build info.
var version = ""

const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitNoLeader = 3
	exitTimeout  = 4
)

func main() {
	// Not a user command: the keeper of `leaderd run`'s child, which
	// leaderd starts by re-executing itself (package elect/child).
	if len(os.Args) > 1 && os.Args[1] == child.KeeperCommand {
		os.Exit(child.Keep(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one row of the command table. The table owns what every
// command shares: parsing flags and their LEADERD_* twins, -h and help,
// stray arguments, and mapping bad input to exit 2. A command declares its
// flags and gets back control only once they are parsed.
type command struct {
	name    string
	summary string // its line in leaderd -h
	// synopsis and examples frame the flags in the command's -h.
	synopsis, examples string
	// takesCommand: a command line may follow the flags after "--" (run's
	// child, jobspec's app); otherwise any argument is bad input.
	takesCommand bool
	// flags declares the command's flags on fs and returns what runs once
	// they are parsed.
	flags func(fs *flagSet) action
}

// action runs a command with its flags parsed; argv is what followed
// "--". It returns the exit code.
type action func(ctx context.Context, argv []string, in invocation) int

// invocation is the process around a command: environment and output.
type invocation struct {
	getenv         func(string) string
	stdout, stderr io.Writer
}

// commands is the command table, in the order leaderd -h lists them.
var commands = []command{
	{name: "run", summary: "campaign for leadership; optionally run a command while leading",
		synopsis: runSynopsis, examples: runExamples, takesCommand: true, flags: runCommand},
	{name: "leader", summary: "print who leads now, or every change with -watch",
		synopsis: leaderSynopsis, examples: leaderExamples, flags: leaderCommand},
	{name: "transfer", summary: "ask the leader to hand over, to a chosen candidate or the best other one",
		synopsis: transferSynopsis, examples: transferExamples, flags: transferCommand},
	{name: "demo", summary: "start a throwaway Consul and show an election, a handover and a failover",
		synopsis: demoSynopsis, examples: demoExamples, flags: demoCommand},
	{name: "jobspec", summary: "render a Nomad job that runs leaderd",
		synopsis: jobspecSynopsis, examples: jobspecExamples, takesCommand: true, flags: jobspecCommand},
}

const mainUsageHead = `Usage: leaderd <command> [flags] [args]

leaderd elects one leader among N instances of a service through Consul,
steps it down before anyone else could take over, publishes who leads, and
can run a command only while leading.

Commands:
`

const mainUsageTail = `  version  print the version
  help     this text; "leaderd help <command>" or "leaderd <command> -h" for one command

Exit codes: 0 ok, 1 runtime error, 2 bad input, 3 no leader (leaderd leader,
leaderd transfer), 4 not leading within -timeout (leaderd run) or no
handover (leaderd transfer); leaderd run exits with its command's code when
the command exits by itself.

Examples:
  go run . demo                       # see it work, nothing to install
  leaderd run -service billing -- ./billing-worker
  leaderd leader -service billing -watch -json
  leaderd transfer -service billing -to billing-2
`

// mainUsage is leaderd -h: the command table's summaries, framed.
func mainUsage() string {
	var b strings.Builder
	b.WriteString(mainUsageHead)
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-8s %s\n", c.name, c.summary)
	}
	b.WriteString(mainUsageTail)
	return b.String()
}

// run executes one leaderd command and returns the process exit code.
// getenv is os.Getenv in main and a map in tests.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage())
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "leaderd %s (%s, %s/%s)\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] != "help" {
			return run(ctx, []string{rest[0], "-h"}, getenv, stdout, stderr)
		}
		fmt.Fprint(stdout, mainUsage())
		return exitOK
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(ctx, rest, invocation{getenv: getenv, stdout: stdout, stderr: stderr})
		}
	}
	fmt.Fprintf(stderr, "leaderd: unknown command %q (see leaderd -h)\n", name)
	return exitUsage
}

// run parses the command's flags and runs it: help on -h (exit 0), one
// line per problem on bad input (exit 2).
func (c command) run(ctx context.Context, args []string, in invocation) int {
	fs := newFlagSet(c.name)
	act := c.flags(fs)
	argv, err := parseArgs(fs, args, in.getenv, c.takesCommand)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(in.stdout, fs, c.synopsis, c.examples)
		return exitOK
	}
	if err != nil {
		return exitFor(in.stderr, c.name, err)
	}
	return act(ctx, argv, in)
}

// parseArgs parses args into fs (flags, then their environment twins) and
// returns the command line after "--". Without takesCommand any argument
// left is bad input; with it, one is only accepted after "--" (the flag
// package eats the "--"), so a typo is not run as a command.
func parseArgs(fs *flagSet, args []string, getenv func(string) string, takesCommand bool) ([]string, error) {
	if err := fs.parse(args, getenv); err != nil {
		return nil, err
	}
	rest := fs.Args()
	switch {
	case len(rest) == 0:
		return nil, nil
	case !takesCommand:
		return nil, usagef("unexpected argument %q", rest[0])
	}
	if i := len(args) - len(rest) - 1; i < 0 || args[i] != "--" {
		return nil, usagef("unexpected argument %q: put the command after --", rest[0])
	}
	return rest, nil
}

// exitFor reports err on stderr as one line and returns its exit code:
// 0 for -h (the caller printed help), 2 for bad input, 1 otherwise.
func exitFor(stderr io.Writer, cmd string, err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		// Several bad settings: one line each.
		for _, line := range strings.Split(strings.TrimSpace(err.Error()), "\n") {
			fmt.Fprintf(stderr, "leaderd %s: %s\n", cmd, line)
		}
		return exitUsage
	}
	fmt.Fprintf(stderr, "leaderd %s: %s\n", cmd, oneLine(err))
	return exitError
}

// versionString is -ldflags' version, else the module version and VCS
// revision the binary was built from.
func versionString() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if (v == "" || v == "(devel)") && rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		return "devel-" + rev + dirty
	}
	if v == "" {
		return "(devel)"
	}
	return v
}

// newLogger writes fixed lowercase messages with stable keys to w.
func newLogger(w io.Writer, format, level string) *slog.Logger {
	lvl, _ := parseLevel(level)
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, errors.New("want debug, info, warn or error")
}
