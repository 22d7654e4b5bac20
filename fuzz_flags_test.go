package main

import (
	"errors"
	"flag"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/leaderd/leaderd/elect"
	"github.com/leaderd/leaderd/nomad"
)

// settingNamed matches an error line that names what is wrong: a flag, an
// environment variable, the command, or the stray argument.
var settingNamed = regexp.MustCompile(`(^|[^\w])-[a-z]|LEADERD_|CONSUL_|NOMAD_|unexpected argument|command "|` +
	`bad flag syntax: |flag provided but not defined: |flag needs an argument: `)

// FuzzParseRunConfig feeds `leaderd run`'s flag and environment parsing
// any arguments (one per line) and any LEADERD_/CONSUL_/NOMAD_ variables
// (NAME=value lines). It must never panic; bad input is a usage error
// (exit 2) whose every line names the setting; and what it accepts is a
// configuration the election accepts too, with every documented bound
// holding. Seeds are in testdata/fuzz/FuzzParseRunConfig/; explore with
// go test -run '^$' -fuzz FuzzParseRunConfig -fuzztime 20s .
func FuzzParseRunConfig(f *testing.F) {
	f.Fuzz(func(t *testing.T, argLines, envLines string) {
		var args []string
		if argLines != "" {
			args = strings.Split(argLines, "\n")
		}
		env := map[string]string{}
		for _, line := range strings.Split(envLines, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				env[k] = v
			}
		}
		if skipFuzzArgs(args, env) {
			t.Skip("names a file that could block on open")
		}
		cfg, _, err := parseRunConfig(args, func(k string) string { return env[k] })
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		if err != nil {
			if code := exitFor(io.Discard, "run", err); code != exitUsage {
				t.Errorf("exit code %d for %v, want %d", code, err, exitUsage)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !settingNamed.MatchString(line) {
					t.Errorf("error line %q names no setting", line)
				}
			}
			return
		}
		checkRunConfig(t, cfg)
	})
}

// checkRunConfig asserts the bounds a parsed configuration promises, and
// that elect.New takes it: else leaderd would stop with elect's words
// ("check ttl"), not the flag's name.
func checkRunConfig(t *testing.T, cfg runConfig) {
	t.Helper()
	bad := func(format string, a ...any) { t.Errorf("accepted %+v: "+format, append([]any{cfg}, a...)...) }
	if cfg.Key == "" || strings.HasPrefix(cfg.Key, "/") {
		bad("key %q", cfg.Key)
	}
	if strings.ContainsAny(cfg.Service, "/ \t\n") {
		bad("service %q", cfg.Service)
	}
	if cfg.LockDelay <= 0 || cfg.KillTimeout < 0 {
		bad("lock-delay %v kill-timeout %v", cfg.LockDelay, cfg.KillTimeout)
	}
	if cfg.Listen != "" {
		if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
			bad("listen %q", cfg.Listen)
		}
	}
	for _, p := range cfg.Publish {
		if p != nomad.PublishConsulTags && p != nomad.PublishNomadVars {
			bad("publisher %q", p)
		}
	}
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		bad("log format %q", cfg.LogFormat)
	}
	if _, err := parseLevel(cfg.LogLevel); err != nil {
		bad("log level %q", cfg.LogLevel)
	}
	// The timing rules are elect's: whatever leaderd accepts, elect takes.
	_, err := elect.New(nil, cfg.electConfig(time.Now()))
	if err != nil {
		bad("elect.New refuses it: %v", err)
	}
}

// skipFuzzArgs keeps the fuzzer from opening device files and FIFOs:
// -token-file is opened (and closed) while parsing.
func skipFuzzArgs(args []string, env map[string]string) bool {
	for _, a := range args {
		if strings.Contains(a, "/dev") || strings.Contains(a, "/proc") || strings.Contains(a, "/sys") {
			return true
		}
	}
	return false
}

// TestCheckTTLFloorNamesTheFlag: FuzzParseRunConfig found a -check-ttl
// below elect's 100ms floor that passed leaderd's own checks, so the error
// came in elect's words instead of naming the flag.
func TestCheckTTLFloorNamesTheFlag(t *testing.T) {
	args := []string{"-service", "x", "-check-ttl", "50ms", "-lock-delay", "2s", "-kill-timeout", "0s", "-listen", ""}
	_, _, err := parseRunConfig(args, envMap())
	if err == nil || !strings.Contains(err.Error(), "-check-ttl") {
		t.Errorf("parseRunConfig(%v) = %v, want an error naming -check-ttl", args, err)
	}
}
