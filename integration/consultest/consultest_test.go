package consultest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/leaderd/leaderd/integration/devconsul"
)

// httpClient talks to agents that come and go (see devconsul.HTTPClient).
var httpClient = devconsul.HTTPClient()

// kv does one KV request against a; it returns the status and body.
func kv(t *testing.T, a *Agent, method, key, token, value string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, a.URL()+"/v1/kv/"+key, strings.NewReader(value))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Consul-Token", token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, key, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, key, err)
	}
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// put writes key=value and fails the test unless Consul answers 200 true.
func put(t *testing.T, a *Agent, key, value string) {
	t.Helper()
	if code, body := kv(t, a, http.MethodPut, key, a.Token, value); code != http.StatusOK || body != "true" {
		t.Fatalf("PUT %s on %s: %d %q, want 200 true", key, a.NodeName, code, body)
	}
}

// get reads key: its value, or "" and false when Consul answers 404.
func get(t *testing.T, a *Agent, key string) (string, bool) {
	t.Helper()
	code, body := kv(t, a, http.MethodGet, key, a.Token, "")
	if code == http.StatusNotFound {
		return "", false
	}
	if code != http.StatusOK {
		t.Fatalf("GET %s on %s: %d %q", key, a.NodeName, code, body)
	}
	var entries []struct{ Value []byte }
	if err := json.Unmarshal([]byte(body), &entries); err != nil || len(entries) != 1 {
		t.Fatalf("GET %s on %s: %q: %v", key, a.NodeName, body, err)
	}
	return string(entries[0].Value), true
}

func TestStartReadyAndKVWorks(t *testing.T) {
	t.Parallel()
	a := Start(t, Options{HCL: []string{`session_ttl_min = "1s"`}})
	if !strings.HasPrefix(a.URL(), "http://127.0.0.1:") || a.URL() != "http://"+a.Addr {
		t.Errorf("URL() = %q with Addr %q, want http://127.0.0.1:<port>", a.URL(), a.Addr)
	}
	// Ready means a session bound to serfHealth can be created at once.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, a.URL()+"/v1/session/create",
		strings.NewReader(`{"TTL":"1s"}`))
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("session create with a 1s TTL right after Start: %s %s", resp.Status, body)
	}
	put(t, a, "consultest/hello", "world")
	got, ok := get(t, a, "consultest/hello")
	if !ok || got != "world" {
		t.Errorf("GET consultest/hello = %q, %v; want \"world\", true", got, ok)
	}
}

func TestParallelAgentsDoNotCollide(t *testing.T) {
	SkipIfShort(t)
	t.Parallel()
	var (
		mu    sync.Mutex
		addrs = map[string]string{} // Addr → node
	)
	t.Run("group", func(t *testing.T) {
		for _, name := range []string{"one", "two"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				a := Start(t, Options{})
				put(t, a, "who", a.NodeName)
				got, _ := get(t, a, "who")
				if diff := cmp.Diff(a.NodeName, got); diff != "" {
					t.Errorf("value of key who on %s (-want +got):\n%s", a.NodeName, diff)
				}
				mu.Lock()
				defer mu.Unlock()
				if other, dup := addrs[a.Addr]; dup {
					t.Errorf("agents %s and %s share %s", other, a.NodeName, a.Addr)
				}
				addrs[a.Addr] = a.NodeName
			})
		}
	})
	if len(addrs) != 2 {
		t.Errorf("got %d distinct agent addresses %v, want 2", len(addrs), addrs)
	}
}

func TestRestart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		opts     Options
		kill     bool // Kill instead of a graceful Stop before Restart
		wantKept bool // the key survives the restart
	}{
		{name: "dev agent loses state", opts: Options{}, wantKept: false},
		{name: "dev agent after kill", opts: Options{}, kill: true, wantKept: false},
		{name: "server keeps state", opts: Options{Server: true}, wantKept: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := Start(t, tt.opts)
			addr := a.Addr
			put(t, a, "kept", "yes")
			if tt.kill {
				a.Kill()
			} else {
				a.Stop()
				a.Stop() // idempotent
			}
			if a.Running() {
				t.Fatal("agent still running after Stop/Kill")
			}
			a.Restart(t)
			if a.Addr != addr {
				t.Errorf("Addr after Restart = %s, want %s", a.Addr, addr)
			}
			_, kept := get(t, a, "kept")
			if kept != tt.wantKept {
				t.Errorf("key found after restart = %v, want %v", kept, tt.wantKept)
			}
		})
	}
}

func TestACLDeniesAnonymousAcceptsManagementToken(t *testing.T) {
	t.Parallel()
	a := Start(t, Options{ACL: true})
	if len(a.Token) != 36 {
		t.Fatalf("Token has %d characters, want a 36-character UUID", len(a.Token))
	}
	tests := []struct {
		name     string
		token    string
		wantCode int
	}{
		{name: "anonymous", token: "", wantCode: http.StatusForbidden},
		{name: "unknown token", token: devconsul.NewUUID(), wantCode: http.StatusForbidden},
		{name: "management token", token: a.Token, wantCode: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := kv(t, a, http.MethodPut, "acl/"+strings.ReplaceAll(tt.name, " ", "-"), tt.token, "v")
			if code != tt.wantCode {
				t.Errorf("PUT: %d %q, want %d", code, body, tt.wantCode)
			}
		})
	}
	logged, err := os.ReadFile(a.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(logged), a.Token) {
		t.Error("the management token appears in the agent log")
	}
}

func TestClusterElectsNewLeaderAfterKill(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, 3, Options{NodeName: "srv"})
	var names []string
	for _, s := range c.Servers {
		names = append(names, s.NodeName)
	}
	if diff := cmp.Diff([]string{"srv-0", "srv-1", "srv-2"}, names); diff != "" {
		t.Errorf("server names (-want +got):\n%s", diff)
	}
	old := c.Leader(t)
	put(t, old, "term", "1")
	old.Kill()
	next := c.Leader(t)
	if next == old {
		t.Fatalf("leader after killing %s is still %s", old.NodeName, next.NodeName)
	}
	// Raft kept the write, and the new leader accepts new ones. A default
	// read right after the election can come before the new leader has
	// applied the log it inherited, so ask until it has (bounded).
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(10 * time.Second); ; <-tick.C {
		got, _ := get(t, next, "term")
		if got == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("term on the new leader = %q, want \"1\"", got)
		}
	}
	put(t, next, "term", "2")

	var oldIndex int
	for i, s := range c.Servers {
		if s == old {
			oldIndex = i
		}
	}
	c.Restart(t, oldIndex)
	if got, _ := get(t, old, "term"); got != "2" {
		t.Errorf("term on the restarted server = %q, want \"2\"", got)
	}
	if l := c.Leader(t); l == nil {
		t.Error("no leader once the killed server is back")
	}
}

// failingTB passes everything to the real test but reports it as failed
// and holds back cleanups, so the harness's failure path can be observed.
type failingTB struct {
	testing.TB
	logs     []string
	cleanups []func()
}

func (f *failingTB) Failed() bool { return true }
func (f *failingTB) Logf(format string, args ...any) {
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}
func (f *failingTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }

func TestFailedTestGetsLogTailAndStoppedAgent(t *testing.T) {
	t.Parallel()
	f := &failingTB{TB: t}
	a := Start(f, Options{ACL: true})
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	if a.Running() {
		t.Error("agent still running after its cleanups")
	}
	out := strings.Join(f.logs, "\n")
	for _, want := range []string{"consul agent " + a.NodeName + " log (last 50 lines", "[INFO]  agent", "=== devconsul: consul agent " + a.NodeName + " exited"} {
		if !strings.Contains(out, want) {
			t.Errorf("failure output lacks %q; got:\n%s", want, out)
		}
	}
	if strings.Contains(out, a.Token) {
		t.Error("failure output shows the ACL token")
	}
	if n := strings.Count(out, "\n"); n > 55 {
		t.Errorf("failure output has %d lines, want about 50", n)
	}
}

// Every server of an ACL cluster accepts the one shared management token.
func TestACLClusterSharesTheManagementToken(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, 3, Options{ACL: true})
	for i, s := range c.Servers {
		if s.Token != c.Servers[0].Token {
			t.Fatalf("server %d has a different token from server 0", i)
		}
		put(t, s, "acl-cluster/"+s.NodeName, "v")
		if code, body := kv(t, s, http.MethodPut, "acl-cluster/anon", "", "v"); code != http.StatusForbidden {
			t.Errorf("anonymous PUT on %s: %d %q, want 403", s.NodeName, code, body)
		}
	}
}

// A client agent joins its server, owns the sessions created through it,
// and leaves the cluster on SIGTERM, which deregisters its node and
// destroys its sessions. Restart brings it back; a killed client can be
// force-left.
func TestClientAgent(t *testing.T) {
	t.Parallel()
	srv := Start(t, Options{})
	cl := StartClient(t, srv, Options{})
	if cl.Addr == srv.Addr || cl.NodeName == srv.NodeName || cl.DataDir == "" {
		t.Fatalf("client %s at %s (data %q) vs server %s at %s: want its own node, address and data directory",
			cl.NodeName, cl.Addr, cl.DataDir, srv.NodeName, srv.Addr)
	}
	sid := createSession(t, cl)
	var info []struct{ Node string }
	if err := srv.GetJSON(t.Context(), "/v1/session/info/"+sid, &info); err != nil || len(info) != 1 || info[0].Node != cl.NodeName {
		t.Fatalf("session info on the server: %+v, %v; want one session on node %s", info, err, cl.NodeName)
	}

	cl.Terminate()
	if cl.Running() {
		t.Fatal("client still running after Terminate")
	}
	// The node is deregistered when it leaves, and its sessions with it.
	// (Its catalog entry may come back: a client stopped right after its
	// start can finish its first anti-entropy sync after the leave.)
	if err := srv.GetJSON(t.Context(), "/v1/session/info/"+sid, &info); err != nil || len(info) != 0 {
		t.Errorf("session info after the client left: %+v, %v; want none", info, err)
	}
	var members []struct {
		Name   string
		Status int
	}
	if err := srv.GetJSON(t.Context(), "/v1/agent/members", &members); err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if m.Name == cl.NodeName && m.Status != 3 { // serf.StatusLeft
			t.Errorf("member %s has serf status %d after Terminate, want 3 (left)", m.Name, m.Status)
		}
	}

	cl.Restart(t) // ready: registered again with serfHealth passing
	createSession(t, cl)

	cl.Kill()
	srv.ForceLeave(t, cl.NodeName, false)
	awaitNodeGone(t, srv, cl.NodeName)
}

// createSession creates a session through a and returns its id.
func createSession(t *testing.T, a *Agent) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, a.URL()+"/v1/session/create", strings.NewReader(`{"TTL":"30s"}`))
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("session create on %s: %s, %v", a.NodeName, resp.Status, err)
	}
	return s.ID
}

// awaitNodeGone waits until node is no longer in srv's catalog.
func awaitNodeGone(t *testing.T, srv *Agent, node string) {
	t.Helper()
	err := devconsul.Await(t.Context(), nil, 15*time.Second, func(ctx context.Context) error {
		var nodes []struct{ Node string }
		if err := srv.GetJSON(ctx, "/v1/catalog/nodes", &nodes); err != nil {
			return err
		}
		for _, n := range nodes {
			if n.Node == node {
				return fmt.Errorf("node %s still registered", node)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
