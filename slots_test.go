package main

import (
	"strings"
	"testing"

	"github.com/leaderd/leaderd/elect"
)

// TestSlotsFlag: -n picks the semaphore prefix as -key's default, keeps a
// -key the user gave as the prefix, and refuses what can't work.
func TestSlotsFlag(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantKey string
		wantN   int
		wantErr string
	}{
		{"default: one leader", []string{"-service", "web"}, "services/web/leader", 0, ""},
		{"-n 1 is the election", []string{"-service", "web", "-n", "1"}, "services/web/leader", 0, ""},
		{"-n 3: the slots prefix", []string{"-service", "web", "-n", "3"}, "services/web/slots", 3, ""},
		{"-key is the prefix", []string{"-service", "web", "-n", "2", "-key", "jobs/nightly"}, "jobs/nightly", 2, ""},
		{"-n 0", []string{"-service", "web", "-n", "0"}, "", 0, `invalid value "0" for flag -n: must be at least 1`},
		{"-n with nomad-vars", []string{"-service", "web", "-n", "2", "-publish", "nomad-vars"}, "", 0, "-publish nomad-vars holds one leader record: not with -n 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := parseRunConfig(append(tt.args, "-listen", ""), envMap())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Key != tt.wantKey || cfg.Slots != tt.wantN {
				t.Errorf("key %q n %d, want %q %d", cfg.Key, cfg.Slots, tt.wantKey, tt.wantN)
			}
		})
	}
}

func TestHoldersText(t *testing.T) {
	got := holdersText(2, []elect.Holder{
		{Candidate: elect.Candidate{ID: "a", Address: "10.0.0.1:80"}, Session: "s1", Live: true},
		{Session: "s2"},
	})
	want := "holder=a address=10.0.0.1:80 session=s1 limit=2 live\nholder=- address=- session=s2 limit=2 dead"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := holdersText(2, nil); got != "no holders" {
		t.Errorf("no holders: %q", got)
	}
}
