package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/leaderd/leaderd/consulhttp"
)

func envMap(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// TestBadInput: every bad flag or variable exits 2 with one line on stderr
// that names the setting, before anything talks to Consul.
func TestBadInput(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	svc := []string{"LEADERD_SERVICE", "web"}
	tests := []struct {
		name string
		args []string
		env  []string
		want string // substring of the one stderr line
	}{
		{"no command", nil, nil, ""},
		{"unknown command", []string{"bogus"}, nil, `leaderd: unknown command "bogus"`},
		{"unparsable ttl flag", []string{"run", "-ttl", "abc"}, svc, `leaderd run: invalid value "abc" for flag -ttl: time: invalid duration "abc"`},
		{"unparsable ttl env", []string{"run"}, append(svc, "LEADERD_TTL", "abc"), `invalid value "abc" for LEADERD_TTL: time: invalid duration "abc"`},
		{"negative ttl", []string{"run", "-ttl=-5s"}, svc, `invalid -ttl: ttl -5s must be between 1s and 24h0m0s`},
		{"ttl too long", []string{"run", "-ttl", "48h"}, svc, `invalid -ttl: ttl 48h0m0s must be between 1s and 24h0m0s`},
		{"ttl too short from env", []string{"run"}, append(svc, "LEADERD_TTL", "500ms"), `invalid LEADERD_TTL: ttl 500ms must be between`},
		{"lock-delay over cap", []string{"run", "-lock-delay", "61s"}, svc, `invalid -lock-delay: lock delay 1m1s must be above 0s and at most 1m0s`},
		{"negative lock-delay", []string{"run", "-lock-delay=-1s"}, svc, `invalid -lock-delay -1s`},
		{"key with leading slash", []string{"run", "-key", "/a/b"}, nil, `invalid -key "/a/b": a Consul key must not start with '/'`},
		{"key with leading slash from env", []string{"run"}, []string{"LEADERD_KEY", "/a/b"}, `invalid LEADERD_KEY "/a/b"`},
		{"no service", []string{"run"}, nil, `-service is required outside Nomad`},
		{"service with slash", []string{"run", "-service", "a/b"}, nil, `invalid -service "a/b"`},
		{"renew not below ttl", []string{"run", "-renew-interval", "10s"}, svc, `invalid -renew-interval, -ttl: renew interval 10s must be positive and shorter than the ttl 10s`},
		{"negative renew", []string{"run", "-renew-interval=-1s"}, svc, `invalid -renew-interval, -ttl: renew interval -1s must be positive`},
		{"kill-timeout beyond the lease", []string{"run", "-kill-timeout", "9500ms"}, svc, `invalid -lock-delay, -kill-timeout, -renew-interval: lock delay 10s - margin 10s = 0s leaves less than two renew intervals (2×3.333333333s): raise the lock delay, or lower the margin or the renew interval (margin = kill-timeout + 500ms)`},
		{"lease too short for the renew interval", []string{"run", "-lock-delay", "4s", "-renew-interval", "1s"}, svc, `invalid -lock-delay, -kill-timeout, -renew-interval: lock delay 4s - margin 2.5s = 1.5s leaves less than two renew intervals (2×1s)`},
		{"lease too short to renew", []string{"run", "-lock-delay", "2700ms"}, svc, `invalid -renew-interval, -lock-delay: renew interval 66.666666ms is below 100ms`},
		{"lock-delay zero", []string{"run", "-lock-delay", "0s"}, svc, `invalid -lock-delay 0s: must be above 0s: the lock-delay is the leader's lease`},
		{"negative kill-timeout", []string{"run", "-kill-timeout=-1s"}, svc, `invalid -kill-timeout -1s: must not be negative`},
		{"negative check-ttl", []string{"run", "-check-ttl=-1s"}, svc, `invalid -check-ttl: check ttl -1s must not be negative`},
		{"unknown publisher", []string{"run", "-publish", "consul-tags,dns"}, svc, `invalid -publish "dns": unknown publisher`},
		{"bad boolean env", []string{"run"}, append(svc, "LEADERD_RESTART", "yes"), `invalid value "yes" for LEADERD_RESTART: want true or false`},
		{"bad log format", []string{"run", "-log-format", "xml"}, svc, `invalid -log-format "xml": want text or json`},
		{"bad log level env", []string{"run"}, append(svc, "LEADERD_LOG_LEVEL", "loud"), `invalid LEADERD_LOG_LEVEL "loud"`},
		{"unknown flag", []string{"run", "-foo"}, svc, `leaderd run: flag provided but not defined: -foo`},
		{"no token flag", []string{"run", "-token", "s3cret"}, svc, `flag provided but not defined: -token`},
		{"command without --", []string{"run", "./worker"}, svc, `unexpected argument "./worker": put the command after --`},
		{"command not found", []string{"run", "--", "/nonexistent/worker"}, svc, `command "/nonexistent/worker": `},
		{"listen without port", []string{"run", "-listen", "127.0.0.1"}, svc, `invalid -listen "127.0.0.1"`},
		{"listen taken", []string{"run", "-listen", taken.Addr().String()}, svc, `invalid -listen "` + taken.Addr().String() + `": listen tcp`},
		{"listen taken from env", []string{"run"}, append(svc, "LEADERD_LISTEN", taken.Addr().String()), `invalid LEADERD_LISTEN "` + taken.Addr().String() + `": listen tcp`},
		{"negative timeout", []string{"run", "-timeout=-1s"}, svc, `invalid -timeout -1s: must not be negative`},
		{"negative try", []string{"run", "-try=-1s"}, svc, `invalid -try -1s: must not be negative`},
		{"negative timeout env", []string{"run"}, append(svc, "LEADERD_TIMEOUT", "-1s"), `invalid LEADERD_TIMEOUT -1s`},
		{"negative hook timeout", []string{"run", "-hook-timeout=-1s"}, svc, `invalid -hook-timeout -1s: must not be negative`},
		{"unreadable token file", []string{"run", "-token-file", "/nonexistent/token"}, svc, `invalid -token-file: open /nonexistent/token: no such file or directory`},
		{"unreadable token file from env", []string{"run"}, append(svc, "CONSUL_HTTP_TOKEN_FILE", "/nonexistent/token"), `/nonexistent/token`},
		{"unparsable ssl verify", []string{"run"}, append(svc, "CONSUL_HTTP_SSL_VERIFY", "flase"), `CONSUL_HTTP_SSL_VERIFY`},
		{"cert without key", []string{"run", "-client-cert", "c.pem"}, svc, `-client-cert and -client-key must be given together`},
		{"consul-tags without listen", []string{"run", "-publish", "consul-tags", "-listen", ""}, svc, `-publish consul-tags: needs -listen`},
		{"unparsable priority", []string{"run", "-priority", "high"}, svc, `invalid value "high" for flag -priority: parse error`},
		{"unparsable priority env", []string{"run"}, append(svc, "LEADERD_PRIORITY", "1.5"), `invalid value "1.5" for LEADERD_PRIORITY`},
		{"negative priority hold", []string{"run", "-priority-hold=-1s"}, svc, `invalid -priority-hold: priority hold -1s must not be negative`},
		{"zero priority hold from env", []string{"run"}, append(svc, "LEADERD_PRIORITY_HOLD", "0s"), `invalid LEADERD_PRIORITY_HOLD 0s: must be above 0s`},
		{"priority with slots", []string{"run", "-n", "3", "-priority", "5"}, svc, `-priority ranks candidates for one leader: not with -n 3`},
		{"priority hold with slots from env", []string{"run", "-n", "2"}, append(svc, "LEADERD_PRIORITY_HOLD", "5s"), `LEADERD_PRIORITY_HOLD ranks candidates for one leader: not with -n 2`},
		{"leader without key", []string{"leader"}, nil, `leaderd leader: -service or -key is required`},
		{"leader key with slash", []string{"leader", "-key", "/x"}, nil, `invalid -key "/x"`},
		{"leader extra argument", []string{"leader", "-service", "web", "now"}, nil, `unexpected argument "now"`},
		{"leader bad flag", []string{"leader", "-wait"}, nil, `flag provided but not defined: -wait`},
		{"transfer without key", []string{"transfer", "-to", "b"}, nil, `leaderd transfer: -service or -key is required`},
		{"transfer key with slash", []string{"transfer"}, []string{"LEADERD_KEY", "/x"}, `invalid LEADERD_KEY "/x"`},
		{"transfer zero timeout", []string{"transfer", "-service", "web", "-timeout", "0s"}, nil, `invalid -timeout 0s: must be above 0s`},
		{"transfer unparsable timeout", []string{"transfer", "-service", "web", "-timeout", "soon"}, nil, `invalid value "soon" for flag -timeout`},
		{"transfer extra argument", []string{"transfer", "-service", "web", "b"}, nil, `unexpected argument "b"`},
		{"candidates with slots", []string{"leader", "-service", "web", "-candidates", "-n", "3"}, nil, `-candidates lists the candidates of one leader: not with -n 3`},
		{"candidates with slots from env", []string{"leader", "-candidates", "-watch"}, []string{"LEADERD_SERVICE", "web", "LEADERD_N", "2"}, `not with LEADERD_N 2`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, envMap(tc.env...), &stdout, &stderr)
			if code != exitUsage {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, exitUsage, stderr.String())
			}
			if tc.want == "" {
				return
			}
			lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Errorf("stderr = %q, want one line containing %q", stderr.String(), tc.want)
			}
			if strings.Contains(stderr.String(), "s3cret") {
				t.Errorf("stderr repeats the secret: %q", stderr.String())
			}
		})
	}
}

func TestParseRunConfig(t *testing.T) {
	nomadEnv := []string{"NOMAD_ALLOC_ID", "a1b2", "NOMAD_JOB_ID", "billing", "NOMAD_GROUP_NAME", "workers"}
	tests := []struct {
		name string
		args []string
		env  []string
		want runConfig
	}{{
		name: "defaults",
		args: []string{"-service", "web", "-id", "web-1"},
		want: runConfig{Service: "web", Key: "services/web/leader", ID: "web-1", TTL: 10 * time.Second,
			LockDelay: 10 * time.Second, CheckTTL: 3 * time.Second, KillTimeout: 2 * time.Second, Listen: "127.0.0.1:8787", LogFormat: "text", LogLevel: "info", PriorityHold: 10 * time.Second},
	}, {
		name: "environment twins",
		env: []string{"LEADERD_SERVICE", "web", "LEADERD_ID", "w2", "LEADERD_TTL", "30s", "LEADERD_LOCK_DELAY", "15s",
			"LEADERD_RENEW_INTERVAL", "4s", "LEADERD_CHECK_TTL", "9s", "LEADERD_KILL_TIMEOUT", "1s", "LEADERD_RESTART", "true",
			"LEADERD_LISTEN", "", "LEADERD_PUBLISH", "consul-tags, nomad-vars", "LEADERD_TAGS", "a,b",
			"LEADERD_LOG_FORMAT", "json", "LEADERD_LOG_LEVEL", "debug", "LEADERD_ADDRESS", "10.0.0.1:80",
			"LEADERD_PRIORITY", "3"},
		want: runConfig{Service: "web", Key: "services/web/leader", ID: "w2", Address: "10.0.0.1:80", Priority: 3,
			TTL: 30 * time.Second, LockDelay: 15 * time.Second, RenewInterval: 4 * time.Second, CheckTTL: 9 * time.Second,
			KillTimeout: time.Second, Restart: true, Listen: "127.0.0.1:8787",
			Publish: []string{"consul-tags", "nomad-vars"}, Tags: []string{"a", "b"}, LogFormat: "json", LogLevel: "debug", PriorityHold: 10 * time.Second},
	}, {
		name: "flags win over environment",
		args: []string{"-ttl", "20s", "-key", "custom/lock", "-listen", "", "-tags", "x"},
		env:  []string{"LEADERD_SERVICE", "web", "LEADERD_ID", "w3", "LEADERD_TTL", "30s", "LEADERD_KEY", "other", "LEADERD_TAGS", "a,b"},
		want: runConfig{Service: "web", Key: "custom/lock", ID: "w3", TTL: 20 * time.Second,
			LockDelay: 10 * time.Second, CheckTTL: 3 * time.Second, KillTimeout: 2 * time.Second, Tags: []string{"x"}, LogFormat: "text", LogLevel: "info", PriorityHold: 10 * time.Second},
	}, {
		name: "priority",
		args: []string{"-service", "web", "-id", "p", "-priority", "-2", "-priority-hold", "2s"},
		want: runConfig{Service: "web", Key: "services/web/leader", ID: "p", TTL: 10 * time.Second,
			LockDelay: 10 * time.Second, CheckTTL: 3 * time.Second, KillTimeout: 2 * time.Second, Listen: "127.0.0.1:8787", LogFormat: "text", LogLevel: "info",
			Priority: -2, PriorityHold: 2 * time.Second},
	}, {
		name: "priority hold from the environment",
		args: []string{"-service", "web", "-id", "p"},
		env:  []string{"LEADERD_PRIORITY", "10", "LEADERD_PRIORITY_HOLD", "1m"},
		want: runConfig{Service: "web", Key: "services/web/leader", ID: "p", TTL: 10 * time.Second,
			LockDelay: 10 * time.Second, CheckTTL: 3 * time.Second, KillTimeout: 2 * time.Second, Listen: "127.0.0.1:8787", LogFormat: "text", LogLevel: "info",
			Priority: 10, PriorityHold: time.Minute},
	}, {
		name: "nomad defaults",
		env:  nomadEnv,
		want: runConfig{Service: "billing-workers", Key: "services/billing-workers/leader", ID: "a1b2", AllocID: "a1b2",
			TTL: 10 * time.Second, LockDelay: 10 * time.Second, CheckTTL: 3 * time.Second, KillTimeout: 2 * time.Second, Listen: "127.0.0.1:8787", LogFormat: "text", LogLevel: "info", PriorityHold: 10 * time.Second},
	}, {
		name: "command after --",
		args: []string{"-service", "web", "-id", "x", "--", "sh", "-c", "exit 0"},
		want: runConfig{Service: "web", Key: "services/web/leader", ID: "x", TTL: 10 * time.Second,
			LockDelay: 10 * time.Second, CheckTTL: 3 * time.Second, KillTimeout: 2 * time.Second, Listen: "127.0.0.1:8787", LogFormat: "text", LogLevel: "info", PriorityHold: 10 * time.Second,
			Command: []string{"sh", "-c", "exit 0"}},
	}, {
		name: "consul flags over CONSUL_ variables",
		args: []string{"-service", "web", "-id", "x", "-http-addr", "127.0.0.1:9500", "-datacenter", "dc2"},
		env:  []string{"CONSUL_HTTP_ADDR", "127.0.0.1:8501", "CONSUL_HTTP_TOKEN", "tok", "CONSUL_DATACENTER", "dc1"},
		want: runConfig{Service: "web", Key: "services/web/leader", ID: "x", TTL: 10 * time.Second,
			LockDelay: 10 * time.Second, CheckTTL: 3 * time.Second, KillTimeout: 2 * time.Second, Listen: "127.0.0.1:8787", LogFormat: "text", LogLevel: "info", PriorityHold: 10 * time.Second,
			Consul: consulhttp.Config{Address: "127.0.0.1:9500", Token: "tok", Datacenter: "dc2"}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := parseRunConfig(tc.args, envMap(tc.env...))
			if err != nil {
				t.Fatalf("parseRunConfig: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDefaultID(t *testing.T) {
	got, _, err := parseRunConfig([]string{"-service", "web"}, envMap())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(got.ID, "-"+strconv.Itoa(os.Getpid())) {
		t.Errorf("id = %q, want <hostname>-<pid>", got.ID)
	}
}

// TestHelpAndVersion: -h everywhere prints usage with examples on stdout
// and exits 0.
func TestHelpAndVersion(t *testing.T) {
	tests := []struct {
		args []string
		want []string // substrings of stdout
	}{
		{[]string{"-h"}, []string{"Usage: leaderd <command>", "Examples:", "Exit codes:"}},
		{[]string{"help"}, []string{"Usage: leaderd <command>"}},
		{[]string{"help", "run"}, []string{"Usage: leaderd run", "-kill-timeout duration", "[LEADERD_KILL_TIMEOUT]", "-http-addr", "Examples:",
			"-priority int", "[LEADERD_PRIORITY]", "-priority-hold duration", "(default 10s) [LEADERD_PRIORITY_HOLD]"}},
		{[]string{"run", "-h"}, []string{"Usage: leaderd run", "Exit codes:"}},
		{[]string{"leader", "--help"}, []string{"Usage: leaderd leader", "-watch", "-candidates", "Examples:"}},
		{[]string{"transfer", "-h"}, []string{"Usage: leaderd transfer", "-to string", "[LEADERD_TO]", "-timeout duration", "(default 30s)\n", "Exit codes:", "Examples:"}},
		{[]string{"-h"}, []string{"  transfer ask the leader to hand over", "no\nhandover (leaderd transfer)"}},
		{[]string{"demo", "-h"}, []string{"Usage: leaderd demo", "Examples:"}},
		{[]string{"jobspec", "-h"}, []string{"Usage: leaderd jobspec", "-mode", "Examples:"}},
		{[]string{"version"}, []string{"leaderd ", runtime.Version()}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tc.args, envMap(), &stdout, &stderr); code != exitOK {
				t.Errorf("exit code = %d, want 0; stderr: %s", code, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
		})
	}
}

// The shipped systemd environment file must be a configuration leaderd run
// accepts: a bad one makes systemd restart leaderd in a loop.
func TestShippedSystemdEnvIsValid(t *testing.T) {
	b, err := os.ReadFile("jobspec/systemd/leaderd.env.example")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("bad line %q", line)
		}
		env[k] = v
	}
	// The token file named there does not exist here; everything else must pass.
	delete(env, "CONSUL_HTTP_TOKEN_FILE")
	if _, _, err := parseRunConfig([]string{"--", "true"}, func(k string) string { return env[k] }); err != nil {
		t.Errorf("leaderd run rejects jobspec/systemd/leaderd.env.example: %v", err)
	}
}

// A bad file given by flag is reported under the flag's name, not the
// CONSUL_* variable the flag overrides.
func TestConsulFileFlagsNameTheFlag(t *testing.T) {
	for _, tc := range []struct{ flag, env string }{
		{"-ca-file", "CONSUL_CACERT"},
		{"-ca-path", "CONSUL_CAPATH"},
	} {
		_, _, err := parseRunConfig([]string{"-service", "x", tc.flag, "/nonexistent"}, func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), tc.flag) || strings.Contains(err.Error(), tc.env) {
			t.Errorf("%s /nonexistent: error %v, want it to name %s (not %s)", tc.flag, err, tc.flag, tc.env)
		}
	}
}
