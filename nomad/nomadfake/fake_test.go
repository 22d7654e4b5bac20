package nomadfake

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/nomad/api"
)

const (
	writer = "writer-token"
	reader = "reader-token"
)

func client(t *testing.T, addr, token string) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: addr, SecretID: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func startACL(t *testing.T) *Server {
	s := Start(t)
	s.EnableACL()
	s.AddToken(writer, Rule{Namespace: "default", PathGlob: "nomad/jobs/web/*", Capabilities: []string{"read", "write", "list", "destroy"}})
	s.AddToken(reader, WorkloadRules("default", "web", "web", "leaderd")...)
	return s
}

var ignoreTimes = cmpopts.IgnoreFields(api.Variable{}, "CreateTime", "ModifyTime")

func TestVariableLifecycleOverBothListeners(t *testing.T) {
	s := startACL(t)
	for _, addr := range []string{s.UnixAddr, s.HTTPAddr} {
		t.Run(strings.SplitN(addr, ":", 2)[0], func(t *testing.T) {
			vars := client(t, addr, writer).Variables()
			path := "nomad/jobs/web/" + strings.SplitN(addr, ":", 2)[0]

			_, _, err := vars.Read(path, nil)
			if !errors.Is(err, api.ErrVariablePathNotFound) {
				t.Fatalf("Read missing = %v, want ErrVariablePathNotFound", err)
			}
			created, wm, err := vars.CheckedCreate(&api.Variable{Path: path, Items: api.VariableItems{"a": "1"}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if wm.LastIndex != created.ModifyIndex || created.CreateIndex != created.ModifyIndex {
				t.Errorf("create: X-Nomad-Index %d, variable %+v", wm.LastIndex, created)
			}
			// cas=0 on an existing variable conflicts, body = current.
			_, _, err = vars.CheckedCreate(&api.Variable{Path: path, Items: api.VariableItems{"a": "2"}}, nil)
			var conflict api.ErrCASConflict
			if !errors.As(err, &conflict) {
				t.Fatalf("second create = %v, want ErrCASConflict", err)
			}
			if diff := cmp.Diff(created, conflict.Conflict, ignoreTimes); diff != "" {
				t.Errorf("conflict body (-want +got):\n%s", diff)
			}
			updated, _, err := vars.CheckedUpdate(&api.Variable{Path: path, Items: api.VariableItems{"a": "3"}, ModifyIndex: created.ModifyIndex}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if updated.ModifyIndex <= created.ModifyIndex || updated.CreateIndex != created.CreateIndex {
				t.Errorf("update indexes: created %+v, updated %+v", created, updated)
			}
			got, qm, err := vars.Read(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if qm.LastIndex != updated.ModifyIndex || !qm.KnownLeader {
				t.Errorf("read meta = %+v, want LastIndex %d and KnownLeader", qm, updated.ModifyIndex)
			}
			if diff := cmp.Diff(updated, got, ignoreTimes); diff != "" {
				t.Errorf("read (-want +got):\n%s", diff)
			}
			list, _, err := vars.PrefixList("nomad/jobs/web/", nil)
			if err != nil || len(list) == 0 {
				t.Fatalf("PrefixList = %v, %v", list, err)
			}
			if _, err := vars.CheckedDelete(path, created.ModifyIndex, nil); !errors.As(err, &conflict) {
				t.Errorf("stale CheckedDelete = %v, want ErrCASConflict", err)
			}
			if _, err := vars.CheckedDelete(path, updated.ModifyIndex, nil); err != nil {
				t.Errorf("CheckedDelete = %v", err)
			}
			if _, ok := s.Get("", path); ok {
				t.Error("variable still there after delete")
			}
		})
	}
	for _, r := range s.Requests() {
		if !r.HasToken {
			t.Errorf("request without token: %+v", r)
		}
	}
}

func TestErrorAnswers(t *testing.T) {
	s := startACL(t)
	s.Put("default", "nomad/jobs/web/web", map[string]string{"leader_id": "a"})
	tests := []struct {
		name, token, method, path, body string
		wantCode                        int
		wantBody                        string
	}{
		{"workload identity may not write", reader, "PUT", "/v1/var/nomad/jobs/web/web", `{"Items":{"a":"b"}}`, 403, "Permission denied"},
		{"workload identity may read", reader, "GET", "/v1/var/nomad/jobs/web/web", "", 200, `"leader_id":"a"`},
		{"unknown token", "bogus", "GET", "/v1/var/nomad/jobs/web/web", "", 403, "ACL token not found"},
		{"anonymous", "", "GET", "/v1/var/nomad/jobs/web/web", "", 403, "Permission denied"},
		{"missing variable", writer, "GET", "/v1/var/nomad/jobs/web/none", "", 404, "variable not found"},
		{"empty items", writer, "PUT", "/v1/var/nomad/jobs/web/x", `{"Items":{}}`, 400, "variable missing required Items object"},
		{"bad cas", writer, "PUT", "/v1/var/nomad/jobs/web/x?cas=abc", `{"Items":{"a":"b"}}`, 400, "can not parse cas"},
		{"delete needs destroy", reader, "DELETE", "/v1/var/nomad/jobs/web/web", "", 403, "Permission denied"},
		{"conflict redacted without read", "cas-only", "PUT", "/v1/var/nomad/jobs/web/web?cas=1", `{"Items":{"a":"b"}}`, 409, `"Items":null`},
		{"path outside Nomad's rule (400 since 1.7.0)", writer, "PUT", "/v1/var/nomad/jobs/web/a.b", `{"Items":{"a":"b"}}`, 400, `invalid path "nomad/jobs/web/a.b"`},
		{"missing path", writer, "GET", "/v1/var/", "", 400, "missing variable path"},
		{"list is GET only", writer, "PUT", "/v1/vars", "", 405, "Invalid method"},
	}
	s.AddToken("cas-only", Rule{Namespace: "*", PathGlob: "*", Capabilities: []string{"write"}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, s.HTTPAddr+tt.path, strings.NewReader(tt.body))
			if tt.token != "" {
				req.Header.Set("X-Nomad-Token", tt.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantCode || !strings.Contains(string(b), tt.wantBody) {
				t.Errorf("%s %s = %d %q, want %d containing %q", tt.method, tt.path, resp.StatusCode, b, tt.wantCode, tt.wantBody)
			}
			if tt.wantCode == 404 && resp.Header.Get("X-Nomad-Index") == "" {
				t.Error("404 without X-Nomad-Index")
			}
		})
	}
}

func TestBearerTokenAndGzip(t *testing.T) {
	s := startACL(t)
	s.Put("", "nomad/jobs/web/web", map[string]string{"k": "v"})
	req, _ := http.NewRequest("GET", s.HTTPAddr+"/v1/var/nomad/jobs/web/web", nil)
	req.Header.Set("Authorization", "Bearer "+reader)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("got %d, Content-Encoding %q; want 200 gzip", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}
}

func TestBlockingRead(t *testing.T) {
	s := startACL(t)
	v := s.Put("", "nomad/jobs/web/web", map[string]string{"k": "1"})
	blocked := make(chan struct{})
	var once sync.Once
	s.onBlock = func() { once.Do(func() { close(blocked) }) }
	vars := client(t, s.UnixAddr, reader).Variables()
	got := make(chan *api.Variable)
	go func() {
		out, _, err := vars.Read("nomad/jobs/web/web", &api.QueryOptions{WaitIndex: v.ModifyIndex, WaitTime: time.Minute})
		if err != nil {
			t.Error(err)
		}
		got <- out
	}()
	// Change the variable only once the request is known to be waiting.
	select {
	case <-blocked:
	case out := <-got:
		t.Fatalf("blocking read returned before any change: %+v", out)
	}
	s.Put("", "nomad/jobs/web/web", map[string]string{"k": "2"})
	if out := <-got; out.Items["k"] != "2" {
		t.Errorf("blocking read returned %v, want k=2", out.Items)
	}
}

func TestNetworkRecorded(t *testing.T) {
	s := Start(t)
	for _, addr := range []string{s.UnixAddr, s.HTTPAddr} {
		client(t, addr, "").Variables().Peek("a", nil)
	}
	var got []string
	for _, r := range s.Requests() {
		got = append(got, r.Network)
	}
	if diff := cmp.Diff([]string{"unix", "tcp"}, got); diff != "" {
		t.Errorf("networks (-want +got):\n%s", diff)
	}
}

// TestTaskAPIRequiresToken: like Nomad's Task API, the unix socket refuses a
// request without a token with 401 even when ACLs are off; TCP serves it.
func TestTaskAPIRequiresToken(t *testing.T) {
	s := Start(t)
	path := "nomad/jobs/web/web"
	_, _, err := client(t, s.UnixAddr, "").Variables().Read(path, nil)
	var ure api.UnexpectedResponseError
	if !errors.As(err, &ure) || ure.StatusCode() != http.StatusUnauthorized || ure.Body() != "Unauthorized" {
		t.Errorf("unix, no token: err = %v, want 401 Unauthorized", err)
	}
	_, _, err = client(t, s.HTTPAddr, "").Variables().Read(path, nil)
	if !errors.Is(err, api.ErrVariablePathNotFound) {
		t.Errorf("tcp, no token, ACLs off: err = %v, want not found", err)
	}
	if want := "unix://" + s.SecretsDir + "/api.sock"; s.UnixAddr != want {
		t.Errorf("UnixAddr = %q, want %q", s.UnixAddr, want)
	}
}
