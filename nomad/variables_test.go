package nomad

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/nomad/api"
	"github.com/leaderd/leaderd/nomad/nomadfake"
)

const (
	varPath   = "nomad/jobs/web/api"
	workload  = "workload-identity-jwt" // a token with the implicit policy plus leaderd-vars
	readOnly  = "read-only-jwt"         // implicit policy alone
	leaderAt  = "2030-01-02T03:04:05Z"
	leaderTok = 42
)

// syncBuffer is a log sink that tests read while the publisher writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeNomad starts the fake with ACLs: the workload token has the implicit
// rules and the policy leaderd's jobspecs ship; readOnly lacks the latter.
func fakeNomad(t *testing.T) *nomadfake.Server {
	s := nomadfake.Start(t)
	s.EnableACL()
	implicit := nomadfake.WorkloadRules("default", "web", "api", "leaderd")
	s.AddToken(workload, append(implicit, nomadfake.Rule{Namespace: "default", PathGlob: varPath, Capabilities: []string{"write", "read"}})...)
	s.AddToken(readOnly, implicit...)
	return s
}

func newVarsPublisher(t *testing.T, env map[string]string, logs *syncBuffer) *VariablesPublisher {
	t.Helper()
	c, err := NewClientFromEnv(envFunc(env))
	if err != nil {
		t.Fatal(err)
	}
	cfg := VariablesConfig{Client: c, Identity: nomadIdentity(), CleanupTimeout: 5 * time.Second}
	if logs != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p, err := NewVariablesPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func leaderStatus(id string, token uint64) Status {
	since, _ := time.Parse(time.RFC3339, leaderAt)
	return Status{Role: RoleLeader, ID: id, Address: "10.0.0.5:8080", Token: token, Since: since, LeaderID: id}
}

func items(id, addr, token, since string) api.VariableItems {
	return api.VariableItems{"leader_id": id, "leader_address": addr, "token": token, "since": since}
}

type call struct {
	Method, Query string
	Code          int
}

func calls(s *nomadfake.Server) []call {
	var out []call
	for _, r := range s.Requests() {
		out = append(out, call{r.Method, r.Query, r.Code})
	}
	return out
}

func TestVariablesLeaderWrites(t *testing.T) {
	for _, tr := range []struct{ name, addrVar string }{
		{"task api unix socket", "NOMAD_UNIX_ADDR"},
		{"NOMAD_ADDR tcp", "NOMAD_ADDR"},
	} {
		t.Run(tr.name, func(t *testing.T) {
			s := fakeNomad(t)
			addr := map[string]string{"NOMAD_UNIX_ADDR": s.UnixAddr, "NOMAD_ADDR": s.HTTPAddr}[tr.addrVar]
			logs := &syncBuffer{}
			p := newVarsPublisher(t, map[string]string{tr.addrVar: addr, "NOMAD_TOKEN": workload, "NOMAD_NAMESPACE": "default"}, logs)
			ctx := t.Context()

			// A follower never writes; the first leader creates; the same
			// status again reads and leaves it alone.
			for _, st := range []Status{{Role: RoleFollower, ID: "alloc-1"}, leaderStatus("alloc-1", leaderTok), leaderStatus("alloc-1", leaderTok)} {
				if err := p.Reconcile(ctx, st); err != nil {
					t.Fatalf("Reconcile(%s) = %v", st.Role, err)
				}
			}
			v, ok := s.Get("default", varPath)
			if !ok {
				t.Fatal("no leader record written")
			}
			if diff := cmp.Diff(items("alloc-1", "10.0.0.5:8080", "42", leaderAt), v.Items); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
			want := []call{
				{"GET", "namespace=default", 404},
				{"GET", "namespace=default", 404},
				{"PUT", "cas=0&namespace=default", 200},
				{"GET", "namespace=default", 200},
			}
			if diff := cmp.Diff(want, calls(s)); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			wantNet := map[string]string{"NOMAD_UNIX_ADDR": "unix", "NOMAD_ADDR": "tcp"}[tr.addrVar]
			for _, r := range s.Requests() {
				if !r.HasToken || r.Network != wantNet {
					t.Errorf("request %+v: want a token over %s", r, wantNet)
				}
			}
			if strings.Contains(logs.String(), workload) {
				t.Errorf("token in logs:\n%s", logs)
			}
		})
	}
}

// TestVariablesThroughSecretsDirSocket is a task on Nomad 1.5.0-1.10.2:
// identity { env = true } gives NOMAD_TOKEN, the client creates
// $NOMAD_SECRETS_DIR/api.sock, and nothing else names an address. The
// record must go through that socket, not to http://127.0.0.1:4646.
func TestVariablesThroughSecretsDirSocket(t *testing.T) {
	s := fakeNomad(t)
	p := newVarsPublisher(t, map[string]string{"NOMAD_SECRETS_DIR": s.SecretsDir, "NOMAD_TOKEN": workload}, nil)
	if err := p.Reconcile(t.Context(), leaderStatus("alloc-1", leaderTok)); err != nil {
		t.Fatal(err)
	}
	v, ok := s.Get("default", varPath)
	if !ok {
		t.Fatal("no leader record written")
	}
	if diff := cmp.Diff(items("alloc-1", "10.0.0.5:8080", "42", leaderAt), v.Items); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
	reqs := s.Requests()
	if len(reqs) == 0 {
		t.Fatal("no request reached the fake")
	}
	for _, r := range reqs {
		if r.Network != "unix" || !r.HasToken {
			t.Errorf("request %+v: want it over the unix socket with the workload token", r)
		}
	}
}

func TestVariablesCASConflictRereadsAndRetries(t *testing.T) {
	s := fakeNomad(t)
	s.Put("default", varPath, items("alloc-0", "10.0.0.4:8080", "40", ""))
	// Another writer (the previous leader clearing its record) slips in
	// between our read and our first write.
	var once sync.Once
	s.OnRequest(func(r *http.Request) {
		if r.Method == http.MethodPut {
			once.Do(func() { s.Put("default", varPath, items("", "", "40", "")) })
		}
	})
	p := newVarsPublisher(t, map[string]string{"NOMAD_UNIX_ADDR": s.UnixAddr, "NOMAD_TOKEN": workload}, nil)
	if err := p.Reconcile(t.Context(), leaderStatus("alloc-1", leaderTok)); err != nil {
		t.Fatal(err)
	}
	v, _ := s.Get("default", varPath)
	if diff := cmp.Diff(items("alloc-1", "10.0.0.5:8080", "42", leaderAt), v.Items); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
	var codes []string
	for _, c := range calls(s) {
		codes = append(codes, c.Method+" "+http.StatusText(c.Code))
	}
	want := []string{"GET OK", "PUT Conflict", "GET OK", "PUT OK"}
	if diff := cmp.Diff(want, codes); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestVariablesNeverOverwritesANewerTerm(t *testing.T) {
	s := fakeNomad(t)
	s.Put("default", varPath, items("alloc-2", "10.0.0.6:8080", "50", leaderAt))
	p := newVarsPublisher(t, map[string]string{"NOMAD_UNIX_ADDR": s.UnixAddr, "NOMAD_TOKEN": workload}, nil)
	if err := p.Reconcile(t.Context(), leaderStatus("alloc-1", leaderTok)); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Get("default", varPath); v.Items["leader_id"] != "alloc-2" {
		t.Errorf("a stale leader (token 42) overwrote term 50: %v", v.Items)
	}
}

func TestVariablesPermissionDenied(t *testing.T) {
	s := fakeNomad(t)
	logs := &syncBuffer{}
	p := newVarsPublisher(t, map[string]string{"NOMAD_UNIX_ADDR": s.UnixAddr, "NOMAD_TOKEN": readOnly}, logs)
	err := p.Reconcile(t.Context(), leaderStatus("alloc-1", leaderTok))
	var pe *PermissionError
	if !errors.As(err, &pe) {
		t.Fatalf("Reconcile = %v, want a *PermissionError", err)
	}
	for _, want := range []string{
		`write of variable "nomad/jobs/web/api" in namespace "default": Permission denied (403)`,
		"nomad acl policy apply -namespace default -job web -group api leaderd-vars leaderd-vars.policy.hcl",
		`namespace "default" { variables { path "nomad/jobs/web/api" { capabilities = ["write", "read"] } } }`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%s", want, err)
		}
	}
	if strings.Contains(err.Error(), readOnly) {
		t.Errorf("token in error: %s", err)
	}

	// Run logs the advice once at Error, then keeps retrying quietly:
	// wait for the third write attempt, by which time the second failure
	// has been handled.
	third := make(chan struct{})
	puts := 0
	s.OnRequest(func(r *http.Request) {
		if r.Method == http.MethodPut {
			if puts++; puts == 3 {
				close(third)
			}
		}
	})
	p.cfg.Backoff = Backoff{Min: 5 * time.Millisecond, Max: 10 * time.Millisecond}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	p.Publish(leaderStatus("alloc-1", leaderTok))
	<-third
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	if n := strings.Count(logs.String(), "nomad variable access denied"); n != 1 {
		t.Errorf("advice logged %d times, want once:\n%s", n, logs)
	}
	if strings.Contains(logs.String(), readOnly) {
		t.Errorf("token in logs:\n%s", logs)
	}
}

func TestVariablesClearing(t *testing.T) {
	tests := []struct {
		name   string
		before api.VariableItems
		status Status // published before exit; zero: exit right away
		want   api.VariableItems
	}{
		{"leader clears its record on exit", items("alloc-1", "10.0.0.5:8080", "42", leaderAt), leaderStatus("alloc-1", 42),
			items("", "", "42", "")},
		{"another leader's record is left alone", items("alloc-2", "10.0.0.6:8080", "50", leaderAt), Status{Role: RoleFollower, ID: "alloc-1"},
			items("alloc-2", "10.0.0.6:8080", "50", leaderAt)},
		{"a follower clears its own stale record", items("alloc-1", "10.0.0.5:8080", "41", leaderAt), Status{Role: RoleFollower, ID: "alloc-1"},
			items("", "", "41", "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fakeNomad(t)
			s.Put("default", varPath, tt.before)
			p := newVarsPublisher(t, map[string]string{"NOMAD_UNIX_ADDR": s.UnixAddr, "NOMAD_TOKEN": workload}, nil)
			if err := p.Reconcile(t.Context(), tt.status); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			p.Publish(tt.status)
			cancel() // Run finds ctx done and goes straight to cleanup
			if err := p.Run(ctx); err != nil {
				t.Fatal(err)
			}
			v, _ := s.Get("default", varPath)
			if diff := cmp.Diff(tt.want, v.Items); diff != "" {
				t.Errorf("record after exit (-want +got):\n%s", diff)
			}
		})
	}
}

// TestVariablesRunAndBoundedCleanup drives Run on fake time through the
// in-process transport: the record follows the published status, and a
// Nomad that hangs during cleanup delays exit by CleanupTimeout, no more.
func TestVariablesRunAndBoundedCleanup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := nomadfake.New()
		c, err := api.NewClient(&api.Config{Address: "http://nomad.test", HttpClient: &http.Client{Transport: s.Transport()}})
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewVariablesPublisher(VariablesConfig{Client: c, Identity: nomadIdentity(), CleanupTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- p.Run(ctx) }()
		p.Publish(leaderStatus("alloc-1", 7))
		synctest.Wait()
		if v, _ := s.Get("default", varPath); v.Items["leader_id"] != "alloc-1" {
			t.Fatalf("record after leading = %v", v.Items)
		}
		hang := make(chan struct{})
		s.OnRequest(func(r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-hang:
			}
		})
		start := time.Now()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
		if took := time.Since(start); took != 2*time.Second {
			t.Errorf("exit took %s, want the 2s CleanupTimeout", took)
		}
		close(hang)
	})
}
