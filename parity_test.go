package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestParseParityFlags: consul lock's flags and the hook flags, from
// flags and from their LEADERD_ twins.
func TestParseParityFlags(t *testing.T) {
	type parity struct {
		SessionName string
		Timeout     time.Duration
		PassStdin   bool
		Hook        string
		HookTimeout time.Duration
	}
	tests := []struct {
		name string
		args []string
		env  []string
		want parity
	}{
		{"defaults", nil, nil, parity{}},
		{"flags", []string{"-name", "nightly job", "-timeout", "30s", "-pass-stdin", "-hook", "/etc/leaderd/notify", "-hook-timeout", "5s"}, nil,
			parity{SessionName: "nightly job", Timeout: 30 * time.Second, PassStdin: true, Hook: "/etc/leaderd/notify", HookTimeout: 5 * time.Second}},
		{"try is timeout", []string{"-try", "10s"}, nil, parity{Timeout: 10 * time.Second}},
		{"environment", nil, []string{"LEADERD_NAME", "n", "LEADERD_TIMEOUT", "1m", "LEADERD_PASS_STDIN", "true", "LEADERD_HOOK", "echo hi", "LEADERD_HOOK_TIMEOUT", "2s"},
			parity{SessionName: "n", Timeout: time.Minute, PassStdin: true, Hook: "echo hi", HookTimeout: 2 * time.Second}},
		{"no LEADERD_TRY twin", nil, []string{"LEADERD_TRY", "1m"}, parity{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := parseRunConfig(append([]string{"-service", "web"}, tc.args...), envMap(tc.env...))
			if err != nil {
				t.Fatal(err)
			}
			got := parity{cfg.SessionName, cfg.Timeout, cfg.PassStdin, cfg.Hook, cfg.HookTimeout}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if name := cfg.electConfig(time.Time{}).SessionName; name != tc.want.SessionName {
				t.Errorf("elect session name %q, want %q", name, tc.want.SessionName)
			}
		})
	}
}

// TestDefaultListen: which address the status server tries, and whether
// it was named (only a default one may fall back to a free port).
func TestDefaultListen(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		env    []string
		listen string
		named  bool
	}{
		{"default", nil, nil, "127.0.0.1:8787", false},
		{"nomad allocated port", nil, []string{"NOMAD_PORT_status", "23456"}, "0.0.0.0:23456", false},
		{"named flag", []string{"-listen", "127.0.0.1:9000"}, []string{"NOMAD_PORT_status", "23456"}, "127.0.0.1:9000", true},
		{"named env", nil, []string{"LEADERD_LISTEN", "127.0.0.1:9001"}, "127.0.0.1:9001", true},
		{"off", []string{"-listen", ""}, []string{"NOMAD_PORT_status", "23456"}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := parseRunConfig(append([]string{"-service", "web"}, tc.args...), envMap(tc.env...))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Listen != tc.listen || cfg.ListenNamed != tc.named {
				t.Errorf("listen %q named %v, want %q named %v", cfg.Listen, cfg.ListenNamed, tc.listen, tc.named)
			}
		})
	}
}

// TestCampaignDeadline: winning and giving up exclude each other, even
// when they race; a winner stays one for every later term.
func TestCampaignDeadline(t *testing.T) {
	var d campaignDeadline
	if !d.elected() || d.giveUp() || !d.elected() {
		t.Error("elected first: giveUp must fail and later terms must start")
	}
	var d2 campaignDeadline
	if !d2.giveUp() || d2.elected() {
		t.Error("gave up first: elected must fail")
	}
	for range 100 {
		var d campaignDeadline
		var wins, gaveUps int
		var mu sync.Mutex
		var wg sync.WaitGroup
		wg.Go(func() {
			if d.elected() {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
		wg.Go(func() {
			if d.giveUp() {
				mu.Lock()
				gaveUps++
				mu.Unlock()
			}
		})
		wg.Wait()
		if wins+gaveUps != 1 {
			t.Fatalf("wins %d, gave up %d: want exactly one", wins, gaveUps)
		}
	}
}

// TestRunTimeoutUnreachable: with Consul out of reach nobody can lead;
// -timeout ends the run with exit 4.
func TestRunTimeoutUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var stderr bytes.Buffer
	start := time.Now()
	code := run(context.Background(), []string{"run", "-service", "web", "-timeout", "300ms", "-listen", "", "-http-addr", addr}, envMap(), io.Discard, &stderr)
	if code != exitTimeout {
		t.Errorf("exit code %d, want %d; stderr:\n%s", code, exitTimeout, stderr.String())
	}
	if took := time.Since(start); took < 300*time.Millisecond || took > 10*time.Second {
		t.Errorf("took %v, want just over the 300ms timeout", took)
	}
	if !strings.Contains(stderr.String(), "not leading within -timeout; giving up") {
		t.Errorf("stderr lacks the give-up line:\n%s", stderr.String())
	}
}

func TestWarnShortTimeout(t *testing.T) {
	for _, tc := range []struct {
		timeout time.Duration
		warn    bool
	}{{0, false}, {10 * time.Second, true}, {12500 * time.Millisecond, true}, {30 * time.Second, false}} {
		var buf bytes.Buffer
		cfg, _, err := parseRunConfig([]string{"-service", "web", "-timeout", tc.timeout.String()}, envMap())
		if err != nil {
			t.Fatal(err)
		}
		warnShortTimeout(cfg, slog.New(slog.NewTextHandler(&buf, nil)))
		if got := strings.Contains(buf.String(), "a key that does not exist yet"); got != tc.warn {
			t.Errorf("-timeout %v: warned %v, want %v (%q)", tc.timeout, got, tc.warn, buf.String())
		}
	}
}
