package jobspec

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// leaderdDefaultKillTimeout is `leaderd run -kill-timeout`'s default.
const leaderdDefaultKillTimeout = 2 * time.Second

// shutdownMargin covers what leaderd does after its child is gone: the
// lock release (elect's 5s release timeout) and the publishers' cleanup
// (5s), each bounded.
const shutdownMargin = 10 * time.Second

// readKV reads KEY=VALUE lines (systemd unit sections flattened, or an
// environment file), skipping comments; a repeated key is an error.
func readKV(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kv := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s:%d: not KEY=VALUE: %q", path, n, line)
		}
		if _, dup := kv[k]; dup {
			t.Fatalf("%s:%d: %s set twice", path, n, k)
		}
		kv[k] = v
	}
	return kv
}

// systemdDuration parses the time spans used here: "30s", "2min", "90".
func systemdDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second
	}
	d, err := time.ParseDuration(strings.Replace(s, "min", "m", 1))
	if err != nil {
		t.Fatalf("time span %q: %v", s, err)
	}
	return d
}

func TestSystemdUnit(t *testing.T) {
	unit := readKV(t, "systemd/leaderd.service")
	env := readKV(t, "systemd/leaderd.env.example")

	for k, want := range map[string]string{
		"Restart":         "on-failure",
		"KillSignal":      "SIGTERM",
		"KillMode":        "mixed", // SIGTERM to leaderd only: it stops the app itself
		"EnvironmentFile": "/etc/leaderd/leaderd.env",
		"WantedBy":        "multi-user.target",
	} {
		if unit[k] != want {
			t.Errorf("%s=%q, want %q", k, unit[k], want)
		}
	}
	if !strings.HasPrefix(unit["ExecStart"], "/usr/local/bin/leaderd run ") {
		t.Errorf("ExecStart=%q, want /usr/local/bin/leaderd run …", unit["ExecStart"])
	}

	kill := leaderdDefaultKillTimeout
	if v, ok := env["LEADERD_KILL_TIMEOUT"]; ok {
		kill = systemdDuration(t, v)
	}
	stop := systemdDuration(t, unit["TimeoutStopSec"])
	if stop <= kill+shutdownMargin {
		t.Errorf("TimeoutStopSec=%s must exceed the kill timeout %s + %s (release and deregistration)", stop, kill, shutdownMargin)
	}

	for _, k := range []string{"CONSUL_HTTP_ADDR", "LEADERD_SERVICE", "LEADERD_LISTEN", "LEADERD_PUBLISH"} {
		if env[k] == "" {
			t.Errorf("leaderd.env.example lacks %s", k)
		}
	}
	for k := range env {
		if !strings.HasPrefix(k, "CONSUL_") && !strings.HasPrefix(k, "LEADERD_") {
			t.Errorf("leaderd.env.example sets %s: only CONSUL_* and LEADERD_* belong there", k)
		}
		if k == "CONSUL_HTTP_TOKEN" {
			t.Error("leaderd.env.example puts a token in the file; use CONSUL_HTTP_TOKEN_FILE")
		}
	}
}

// TestNomadKillTimeout checks the same rule for the jobspecs: Nomad waits
// kill_timeout after SIGTERM, which must cover leaderd's child kill timeout
// plus release and deregistration.
func TestNomadKillTimeout(t *testing.T) {
	job, err := Job(exampleWrap)
	if err != nil {
		t.Fatal(err)
	}
	if kt := *job.TaskGroups[0].Tasks[0].KillTimeout; kt <= leaderdDefaultKillTimeout+shutdownMargin {
		t.Errorf("kill_timeout %s must exceed %s + %s", kt, leaderdDefaultKillTimeout, shutdownMargin)
	}
}
