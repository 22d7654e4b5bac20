// Command leaderd elects one leader among N instances of a service through
// Consul's HTTP API, keeps that leader safe (it steps down before anyone
// else could take over), tells the world who leads, and optionally runs a
// command only while it leads.
//
// This file is the entry point and the command table; each command lives in
// its own file (run.go, leader.go, demo.go). Exit codes, for every command:
//
//	0  success
//	1  runtime error (Consul refused, ACL denied, ...)
//	2  bad flags, arguments or environment
//	3  leaderd leader: nobody leads
//	4  leaderd run -timeout: not leading within the timeout (gave up)
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

const mainUsage = `Usage: leaderd <command> [flags] [args]

leaderd elects one leader among N instances of a service through Consul,
steps it down before anyone else could take over, publishes who leads, and
can run a command only while leading.

Commands:
  run      campaign for leadership; optionally run a command while leading
  leader   print who leads now, or every change with -watch
  demo     start a throwaway Consul and show an election, a handover and a failover
  jobspec  render a Nomad job that runs leaderd
  version  print the version
  help     this text; "leaderd help <command>" or "leaderd <command> -h" for one command

Exit codes: 0 ok, 1 runtime error, 2 bad input, 3 no leader (leaderd leader),
4 not leading within -timeout (leaderd run); leaderd run exits with its
command's code when the command exits by itself.

Examples:
  go run . demo                       # see it work, nothing to install
  leaderd run -service billing -- ./billing-worker
  leaderd leader -service billing -watch -json
`

// run executes one leaderd command and returns the process exit code.
// getenv is os.Getenv in main and a map in tests.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return runRun(ctx, rest, getenv, stdout, stderr)
	case "leader":
		return runLeader(ctx, rest, getenv, stdout, stderr)
	case "demo":
		return runDemo(ctx, rest, getenv, stdout, stderr)
	case "jobspec":
		return runJobspec(ctx, rest, getenv, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "leaderd %s (%s, %s/%s)\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] != "help" {
			return run(ctx, []string{rest[0], "-h"}, getenv, stdout, stderr)
		}
		fmt.Fprint(stdout, mainUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "leaderd: unknown command %q (see leaderd -h)\n", cmd)
	return exitUsage
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
