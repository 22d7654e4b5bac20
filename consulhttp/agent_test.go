package consulhttp

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAgentCalls(t *testing.T) {
	ctx := context.Background()
	type sent struct{ Method, Path, Body string }
	tests := []struct {
		name string
		call func(*Client) error
		want sent
	}{
		{
			name: "register service",
			call: func(c *Client) error {
				return c.RegisterService(ctx, ServiceRegistration{
					ID: "web-1", Name: "web", Tags: []string{"leader"}, Port: 8080, Meta: map[string]string{"token": "14"},
					Checks: []AgentCheck{{Name: "leaderd", HTTP: "http://127.0.0.1:8080/v1/health", Interval: "5s", DeregisterCriticalServiceAfter: "1m"}},
				})
			},
			want: sent{"PUT", "/v1/agent/service/register",
				`{"ID":"web-1","Name":"web","Tags":["leader"],"Port":8080,"Meta":{"token":"14"},"Checks":[{"Name":"leaderd","HTTP":"http://127.0.0.1:8080/v1/health","Interval":"5s","DeregisterCriticalServiceAfter":"1m"}]}`},
		},
		{
			name: "deregister service",
			call: func(c *Client) error { return c.DeregisterService(ctx, "web 1") },
			want: sent{"PUT", "/v1/agent/service/deregister/web 1", ""},
		},
		{
			name: "register check",
			call: func(c *Client) error {
				return c.RegisterCheck(ctx, AgentCheck{CheckID: "leaderd-ttl", Name: "leaderd", TTL: "15s", Status: StatusPassing})
			},
			want: sent{"PUT", "/v1/agent/check/register", `{"ID":"leaderd-ttl","Name":"leaderd","TTL":"15s","Status":"passing"}`},
		},
		{
			name: "deregister check",
			call: func(c *Client) error { return c.DeregisterCheck(ctx, "leaderd-ttl") },
			want: sent{"PUT", "/v1/agent/check/deregister/leaderd-ttl", ""},
		},
		{
			name: "update TTL",
			call: func(c *Client) error { return c.UpdateTTL(ctx, "leaderd-ttl", StatusWarning, "slow") },
			want: sent{"PUT", "/v1/agent/check/update/leaderd-ttl", `{"Status":"warning","Output":"slow"}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, f := newFakeClient(t, Config{}, replyWith(200, ""))
			if err := tt.call(c); err != nil {
				t.Fatal(err)
			}
			s := f.last()
			if diff := cmp.Diff(tt.want, sent{s.Method, s.Path, s.Body}); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAgentCallsRefuseBadArguments(t *testing.T) {
	ctx := context.Background()
	c, f := newFakeClient(t, Config{}, nil)
	for name, err := range map[string]error{
		"service without name": c.RegisterService(ctx, ServiceRegistration{ID: "x"}),
		"check without name":   c.RegisterCheck(ctx, AgentCheck{CheckID: "x"}),
		"empty service ID":     c.DeregisterService(ctx, ""),
		"dot check ID":         c.DeregisterCheck(ctx, ".."),
		"unknown status":       c.UpdateTTL(ctx, "x", "ok", ""),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests sent for invalid calls", n)
	}
}

func TestNodeNameAndLeader(t *testing.T) {
	ctx := context.Background()
	c, f := newFakeClient(t, Config{}, replyWith(200, `{"Config":{"Datacenter":"dc1","NodeName":"node-a"},"Member":{}}`))
	if got, err := c.NodeName(ctx); err != nil || got != "node-a" {
		t.Errorf("NodeName = %q, %v; want node-a", got, err)
	}
	if s := f.last(); s.Method != "GET" || s.Path != "/v1/agent/self" {
		t.Errorf("sent %s %s", s.Method, s.Path)
	}
	c, _ = newFakeClient(t, Config{}, replyWith(200, `{"Config":{}}`))
	if _, err := c.NodeName(ctx); err == nil {
		t.Error("NodeName with no name in the answer: no error")
	}

	c, f = newFakeClient(t, Config{}, replyWith(200, `""`))
	if got, err := c.Leader(ctx); err != nil || got != "" {
		t.Errorf("Leader with no leader = %q, %v; want \"\", nil", got, err)
	}
	if s := f.last(); s.Method != "GET" || s.Path != "/v1/status/leader" {
		t.Errorf("sent %s %s", s.Method, s.Path)
	}
}

// The agent's answers that mean "no such TTL check" carry
// ErrCheckNotFound: what elect takes as its session's check being lost.
func TestUpdateTTLOfAMissingCheck(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		code int
		body string
		want bool
	}{
		{"unknown check", 404, "Unknown check ID \"x\"", true},
		{"older agents", 500, `CheckID "x" does not have associated TTL`, true},
		{"no cluster leader", 500, "No cluster leader", false},
		{"denied", 403, "Permission denied", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newFakeClient(t, Config{}, replyWith(tt.code, tt.body))
			err := c.UpdateTTL(ctx, "x", StatusPassing, "")
			var se *StatusError
			if got := errors.Is(err, ErrCheckNotFound); got != tt.want || !errors.As(err, &se) || se.Code != tt.code {
				t.Errorf("UpdateTTL answered %d %q: %v; want ErrCheckNotFound %v and the *StatusError", tt.code, tt.body, err, tt.want)
			}
		})
	}
}
