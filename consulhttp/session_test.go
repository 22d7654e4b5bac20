package consulhttp

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCreateSessionBody(t *testing.T) {
	tests := []struct {
		name    string
		req     SessionRequest
		want    string
		wantErr string
	}{
		{name: "zero: lock-delay 0s sent, checks left to Consul", req: SessionRequest{}, want: `{"LockDelay":"0s"}`},
		{name: "TTL-only session", req: SessionRequest{Name: "leaderd", TTL: 10 * time.Second, NodeChecks: []string{}},
			want: `{"Name":"leaderd","TTL":"10s","LockDelay":"0s","NodeChecks":[]}`},
		{name: "bound to checks", req: SessionRequest{Node: "n1", LockDelay: 15 * time.Second, Behavior: "delete",
			NodeChecks: []string{"serfHealth"}, ServiceChecks: []ServiceCheck{{ID: "service:web"}, {ID: "c2", Namespace: "ns"}}},
			want: `{"Node":"n1","LockDelay":"15s","Behavior":"delete","NodeChecks":["serfHealth"],"ServiceChecks":[{"ID":"service:web"},{"ID":"c2","Namespace":"ns"}]}`},
		{name: "fractional durations", req: SessionRequest{TTL: 1500 * time.Millisecond, LockDelay: time.Millisecond, Behavior: "release"},
			want: `{"TTL":"1.5s","LockDelay":"1ms","Behavior":"release"}`},
		{name: "negative TTL", req: SessionRequest{TTL: -time.Second}, wantErr: "session TTL -1s: must not be negative"},
		{name: "lock-delay Consul would read as seconds", req: SessionRequest{LockDelay: 999}, wantErr: "session LockDelay 999ns"},
		{name: "unknown behavior", req: SessionRequest{Behavior: "keep"}, wantErr: `session Behavior "keep": want release or delete`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, f := newFakeClient(t, Config{}, replyWith(200, `{"ID":"adf4238a-882b-9ddc-4a9d-5b6758e4159e"}`))
			id, err := c.CreateSession(context.Background(), tt.req)
			if tt.wantErr != "" {
				if m := missingFrom(errorText(err), tt.wantErr); m != "" || len(f.requests()) != 0 {
					t.Fatalf("CreateSession = %v after %d requests; want %q and no request", err, len(f.requests()), tt.wantErr)
				}
				return
			}
			if err != nil || id != "adf4238a-882b-9ddc-4a9d-5b6758e4159e" {
				t.Fatalf("CreateSession = %q, %v", id, err)
			}
			got := f.last()
			if got.Method != "PUT" || got.Path != "/v1/session/create" || got.Body != tt.want {
				t.Errorf("sent %s %s %s\nwant PUT /v1/session/create %s", got.Method, got.Path, got.Body, tt.want)
			}
		})
	}
}

// renewAnswer has the shape of Consul 1.16.3's answer to a renew (see the
// seed corpus for verbatim ones): LockDelay in nanoseconds, TTL a string.
const renewAnswer = `[{"ID":"0b4b5d8e-62f1-5a4c-ff56-5e6b5c1dbb1f","Name":"leaderd","Node":"node-a","LockDelay":15000000000,"Behavior":"release","TTL":"10s","NodeChecks":["serfHealth"],"ServiceChecks":null,"CreateIndex":21,"ModifyIndex":21}]`

func TestRenewSession(t *testing.T) {
	c, f := newFakeClient(t, Config{}, replyWith(200, renewAnswer, "X-Consul-Index", "21"))
	got, err := c.RenewSession(context.Background(), "0b4b5d8e-62f1-5a4c-ff56-5e6b5c1dbb1f")
	if err != nil {
		t.Fatal(err)
	}
	want := &SessionEntry{
		ID: "0b4b5d8e-62f1-5a4c-ff56-5e6b5c1dbb1f", Name: "leaderd", Node: "node-a", LockDelay: 15 * time.Second,
		Behavior: "release", TTL: 10 * time.Second, NodeChecks: []string{"serfHealth"}, CreateIndex: 21, ModifyIndex: 21,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RenewSession (-want +got):\n%s", diff)
	}
	if s := f.last(); s.Method != "PUT" || s.Path != "/v1/session/renew/0b4b5d8e-62f1-5a4c-ff56-5e6b5c1dbb1f" {
		t.Errorf("sent %s %s", s.Method, s.Path)
	}
}

func TestRenewSessionNotFound(t *testing.T) {
	tests := []struct {
		name string
		resp *http.Response
	}{
		{"404", answer(404, "Session id 'sid' not found")},
		{"empty array", answer(200, "[]")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newFakeClient(t, Config{}, func(*http.Request) (*http.Response, error) { return tt.resp, nil })
			_, err := c.RenewSession(context.Background(), "sid")
			if !errors.Is(err, ErrSessionNotFound) || IsRetryable(err) {
				t.Fatalf("RenewSession = %v; want ErrSessionNotFound, not retryable", err)
			}
		})
	}
	c, _ := newFakeClient(t, Config{}, replyWith(404, "Session id 'sid' not found"))
	_, err := c.RenewSession(context.Background(), "sid")
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 404 || se.Body != "Session id 'sid' not found" {
		t.Errorf("RenewSession 404: %v; want the *StatusError reachable", err)
	}
}

func TestDestroySession(t *testing.T) {
	c, f := newFakeClient(t, Config{}, replyWith(200, "true"))
	if err := c.DestroySession(context.Background(), "sid"); err != nil {
		t.Fatal(err)
	}
	if s := f.last(); s.Method != "PUT" || s.Path != "/v1/session/destroy/sid" || s.Body != "" {
		t.Errorf("sent %s %s %q", s.Method, s.Path, s.Body)
	}
	c, _ = newFakeClient(t, Config{}, replyWith(200, "false"))
	if err := c.DestroySession(context.Background(), "sid"); err == nil {
		t.Error("DestroySession answered false: no error")
	}
	if err := c.DestroySession(context.Background(), ""); err == nil {
		t.Error("DestroySession(\"\"): no error")
	}
}

func TestSessionInfo(t *testing.T) {
	meta := []string{"X-Consul-Index", "33", "X-Consul-KnownLeader", "true", "X-Consul-LastContact", "12"}
	wantMeta := QueryMeta{LastIndex: 33, KnownLeader: true, LastContact: 12 * time.Millisecond}

	c, f := newFakeClient(t, Config{}, replyWith(200, "[]", meta...))
	got, gotMeta, err := c.SessionInfo(context.Background(), "gone", QueryOptions{Index: 30, Wait: time.Second})
	if err != nil || got != nil {
		t.Fatalf("SessionInfo of a missing session = %+v, %v; want nil, nil", got, err)
	}
	if diff := cmp.Diff(wantMeta, gotMeta); diff != "" {
		t.Errorf("meta (-want +got):\n%s", diff)
	}
	if s := f.last(); s.Method != "GET" || s.Path != "/v1/session/info/gone" || s.RawQuery != "index=30&wait=1000ms" {
		t.Errorf("sent %s %s?%s", s.Method, s.Path, s.RawQuery)
	}

	c, _ = newFakeClient(t, Config{}, replyWith(200, renewAnswer, meta...))
	got, _, err = c.SessionInfo(context.Background(), "0b4b5d8e-62f1-5a4c-ff56-5e6b5c1dbb1f", QueryOptions{})
	if err != nil || got == nil || got.ID != "0b4b5d8e-62f1-5a4c-ff56-5e6b5c1dbb1f" {
		t.Fatalf("SessionInfo = %+v, %v", got, err)
	}
}

func TestDecodeSessions(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    []SessionEntry
		wantErr string
	}{
		{name: "lock-delay zero, no TTL", body: `[{"ID":"a","LockDelay":0,"TTL":""}]`, want: []SessionEntry{{ID: "a"}}},
		{name: "lock-delay as a string", body: `[{"ID":"a","LockDelay":"1.5s"}]`, want: []SessionEntry{{ID: "a", LockDelay: 1500 * time.Millisecond}}},
		{name: "lock-delay null", body: `[{"ID":"a","LockDelay":null}]`, want: []SessionEntry{{ID: "a"}}},
		{name: "service checks", body: `[{"ID":"a","ServiceChecks":[{"ID":"c","Namespace":""}]}]`, want: []SessionEntry{{ID: "a", ServiceChecks: []ServiceCheck{{ID: "c"}}}}},
		{name: "bad TTL", body: `[{"ID":"a","TTL":"10"}]`, wantErr: `session "a": TTL`},
		{name: "fractional lock-delay", body: `[{"ID":"a","LockDelay":1.5}]`, wantErr: "not a number of nanoseconds"},
		{name: "not an array", body: `{"ID":"a"}`, wantErr: "decode JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeSessions([]byte(tt.body))
			if tt.wantErr != "" {
				if m := missingFrom(errorText(err), tt.wantErr); m != "" {
					t.Fatalf("decodeSessions error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decodeSessions (-want +got):\n%s", diff)
			}
		})
	}
}
