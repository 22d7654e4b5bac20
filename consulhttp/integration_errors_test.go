package consulhttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/integration/consultest"
)

// raw calls Consul's HTTP API without consulhttp, to set up and to look at
// what the client did. It fails the test on a non-2xx answer.
func raw(t *testing.T, a *consultest.Agent, token, method, path string, in, out any) int {
	t.Helper()
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequestWithContext(testCtx(t), method, a.URL()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Consul-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 && out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

func TestAgentRegistrations(t *testing.T) {
	a := consultest.Start(t, consultest.Options{})
	c := newClient(t, a, "")
	ctx := testCtx(t)

	svc := consulhttp.ServiceRegistration{
		ID: "web-1", Name: "web", Tags: []string{"leader"}, Port: 8080, Meta: map[string]string{"token": "42"},
		Checks: []consulhttp.AgentCheck{{CheckID: "web-1-ttl", Name: "leaderd", TTL: "30s", Status: consulhttp.StatusPassing,
			DeregisterCriticalServiceAfter: "1m"}},
	}
	if err := c.RegisterService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Service string
		Tags    []string
		Port    int
		Meta    map[string]string
	}
	if code := raw(t, a, "", "GET", "/v1/agent/service/web-1", nil, &got); code != 200 {
		t.Fatalf("service after RegisterService: %d", code)
	}
	want := struct {
		Service string
		Tags    []string
		Port    int
		Meta    map[string]string
	}{"web", []string{"leader"}, 8080, map[string]string{"token": "42"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("registered service (-want +got):\n%s", diff)
	}

	type check struct{ Status, Output, ServiceID string }
	checks := func() map[string]check {
		var m map[string]check
		raw(t, a, "", "GET", "/v1/agent/checks", nil, &m)
		return m
	}
	if err := c.UpdateTTL(ctx, "web-1-ttl", consulhttp.StatusWarning, "slow"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(check{"warning", "slow", "web-1"}, checks()["web-1-ttl"]); diff != "" {
		t.Errorf("service check after UpdateTTL (-want +got):\n%s", diff)
	}

	if err := c.RegisterCheck(ctx, consulhttp.AgentCheck{CheckID: "node-ttl", Name: "node ttl", TTL: "30s"}); err != nil {
		t.Fatal(err)
	}
	if err := c.UpdateTTL(ctx, "node-ttl", consulhttp.StatusPassing, "fine"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(check{Status: "passing", Output: "fine"}, checks()["node-ttl"]); diff != "" {
		t.Errorf("node check after UpdateTTL (-want +got):\n%s", diff)
	}
	if err := c.DeregisterCheck(ctx, "node-ttl"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeregisterService(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	if m := checks(); len(m) != 0 {
		t.Errorf("checks after deregistering: %v", m)
	}
	if code := raw(t, a, "", "GET", "/v1/agent/service/web-1", nil, nil); code != 404 {
		t.Errorf("service after DeregisterService: %d, want 404", code)
	}

	err := c.UpdateTTL(ctx, "no-such-check", consulhttp.StatusPassing, "")
	var se *consulhttp.StatusError
	if !errors.As(err, &se) || consulhttp.IsRetryable(err) {
		t.Errorf("UpdateTTL of an unknown check: %v; want a *StatusError, not retryable", err)
	}
	t.Logf("Consul says: %v", err)
}

func TestACL(t *testing.T) {
	a := consultest.Start(t, consultest.Options{ACL: true})
	ctx := testCtx(t)
	mgmt := newClient(t, a, a.Token)

	var policy struct{ ID string }
	raw(t, a, a.Token, "PUT", "/v1/acl/policy", map[string]string{
		"Name": "ro", "Rules": `key_prefix "ro/" { policy = "read" }`,
	}, &policy)
	var token struct{ SecretID string }
	raw(t, a, a.Token, "PUT", "/v1/acl/token", map[string]any{
		"Description": "consulhttp test: read ro/", "Policies": []map[string]string{{"ID": policy.ID}},
	}, &token)
	limited := newClient(t, a, token.SecretID)

	sid := session(t, mgmt, ttlOnly)
	if !acquire(t, mgmt, "ro/leader", sid, "v") {
		t.Fatal("management token: acquire refused")
	}

	t.Run("allowed", func(t *testing.T) {
		if kv := getKV(t, limited, "ro/leader"); kv == nil || kv.Session != sid {
			t.Errorf("limited GetKV = %+v", kv)
		}
		// Without session:read, Consul filters instead of refusing.
		if info, _, err := limited.SessionInfo(ctx, sid, consulhttp.QueryOptions{}); err != nil || info != nil {
			t.Errorf("limited SessionInfo = %+v, %v; want nil, nil", info, err)
		}
	})

	denied := []struct {
		name   string
		secret string
		call   func() error
		want   []string
	}{
		{"anonymous read", "", func() error {
			_, _, err := newClient(t, a, "").GetKV(ctx, "ro/leader", consulhttp.QueryOptions{})
			return err
		}, []string{`403 Permission denied: anonymous token lacks permission 'key:read' on "ro/leader"`, "the ACL token lacks this permission"}},
		{"unknown token", "0b4b5d8e-62f1-5a4c-ff56-5e6b5c1dbb1f", func() error {
			return newClient(t, a, "0b4b5d8e-62f1-5a4c-ff56-5e6b5c1dbb1f").PutKV(ctx, "ro/x", nil)
		}, []string{"403 ACL not found", "check CONSUL_HTTP_TOKEN"}},
		{"write with a read token", token.SecretID, func() error { return limited.PutKV(ctx, "ro/leader", []byte("x")) },
			[]string{"lacks permission 'key:write'", `on "ro/leader"`}},
		{"acquire with a read token", token.SecretID, func() error {
			_, err := limited.Acquire(ctx, "ro/leader", sid, nil)
			return err
		}, []string{"lacks permission 'key:write'"}},
		{"session create with a read token", token.SecretID, func() error {
			_, err := limited.CreateSession(ctx, ttlOnly)
			return err
		}, []string{"lacks permission 'session:write'"}},
		{"register service with a read token", token.SecretID, func() error {
			return limited.RegisterService(ctx, consulhttp.ServiceRegistration{Name: "web"})
		}, []string{"lacks permission 'service:write'"}},
	}
	for _, tt := range denied {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !consulhttp.IsPermissionDenied(err) || consulhttp.IsRetryable(err) {
				t.Fatalf("error %v: want permission denied, not retryable", err)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q: want it to contain %q", msg, w)
				}
			}
			if tt.secret != "" && strings.Contains(msg, tt.secret) {
				t.Errorf("error %q contains the token", msg)
			}
		})
	}

	t.Run("token file from the environment wins over the token", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(file, []byte(a.Token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"CONSUL_HTTP_ADDR": "http://" + a.Addr, "CONSUL_HTTP_TOKEN": token.SecretID, "CONSUL_HTTP_TOKEN_FILE": file}
		cfg, err := consulhttp.ConfigFromEnv(func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		c, err := consulhttp.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.PutKV(ctx, "ro/by-file", []byte("x")); err != nil {
			t.Errorf("PutKV with the management token from the file: %v", err)
		}
	})
}

func TestErrorsFromConsul(t *testing.T) {
	a := consultest.Start(t, consultest.Options{})
	ctx := testCtx(t)
	withCfg := func(cfg consulhttp.Config) *consulhttp.Client {
		cfg.Address = a.Addr
		c, err := consulhttp.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("unknown datacenter", func(t *testing.T) {
		_, _, err := withCfg(consulhttp.Config{Datacenter: "nowhere"}).GetKV(ctx, "k", consulhttp.QueryOptions{})
		var se *consulhttp.StatusError
		if !errors.As(err, &se) || se.Code != 500 || !strings.Contains(se.Body, "No path to datacenter") || consulhttp.IsRetryable(err) {
			t.Fatalf("GetKV in an unknown dc: %v; want 500 No path to datacenter, not retryable", err)
		}
	})

	t.Run("namespace on the community edition", func(t *testing.T) {
		_, _, err := withCfg(consulhttp.Config{Namespace: "default"}).GetKV(ctx, "k", consulhttp.QueryOptions{})
		var se *consulhttp.StatusError
		if !errors.As(err, &se) || se.Code != 400 || consulhttp.IsRetryable(err) {
			t.Fatalf("GetKV with ?ns=default: %v; want a 400, not retryable", err)
		}
	})

	t.Run("nothing listening", func(t *testing.T) {
		c, err := consulhttp.NewClient(consulhttp.Config{Address: "127.0.0.1:" + strconv.Itoa(consultest.FreePort(t))})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Leader(ctx)
		var re *consulhttp.RequestError
		if !errors.As(err, &re) || !errors.Is(err, syscall.ECONNREFUSED) || !consulhttp.IsRetryable(err) {
			t.Fatalf("Leader with nothing listening: %v; want a retryable connection refused", err)
		}
	})

	t.Run("agent dies under a blocking query", func(t *testing.T) {
		c := newClient(t, a, "")
		_, meta, err := c.GetKV(ctx, "k", consulhttp.QueryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, _, err := c.GetKV(ctx, "k", consulhttp.QueryOptions{Index: meta.LastIndex, Wait: time.Minute})
			done <- err
		}()
		a.Kill() // before or after the query arrives: either way no answer
		err = <-done
		var re *consulhttp.RequestError
		if !errors.As(err, &re) || !consulhttp.IsRetryable(err) || errors.Is(err, context.Canceled) {
			t.Fatalf("blocking GetKV on a killed agent: %v; want a retryable *RequestError", err)
		}
		t.Logf("got: %v", err)
	})
}
