package consulhttp

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestKVPath(t *testing.T) {
	tests := []struct {
		key, want, wantErr string
	}{
		{key: "leader", want: "/v1/kv/leader"},
		{key: "service/web/leader", want: "/v1/kv/service/web/leader"},
		{key: "folder/", want: "/v1/kv/folder/"},
		{key: "a b/c?d#e%f", want: "/v1/kv/a%20b/c%3Fd%23e%25f"},
		{key: "ünï/ç", want: "/v1/kv/%C3%BCn%C3%AF/%C3%A7"},
		{key: "", wantErr: "empty KV key"},
		{key: "/leader", wantErr: `KV key "/leader" starts with /`},
		{key: "a//b", wantErr: "empty path segment"},
		{key: "a/./b", wantErr: `a "." path segment`},
		{key: "a/..", wantErr: `a ".." path segment`},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, err := kvPath(tt.key)
			if tt.wantErr != "" {
				if m := missingFrom(errorText(err), tt.wantErr); m != "" {
					t.Fatalf("kvPath(%q) = %q, %v; want error %q", tt.key, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("kvPath(%q) = %q, %v; want %q", tt.key, got, err, tt.want)
			}
			// What goes on the wire decodes back to the key.
			c, f := newFakeClient(t, Config{}, replyWith(200, "true"))
			if err := c.PutKV(context.Background(), tt.key, nil); err != nil {
				t.Fatal(err)
			}
			if s := f.last(); s.EscapedPath != tt.want || s.Path != "/v1/kv/"+tt.key {
				t.Errorf("sent path %q (decoded %q), want %q (decoded %q)", s.EscapedPath, s.Path, tt.want, "/v1/kv/"+tt.key)
			}
		})
	}
}

const kvAnswer = `[{"LockIndex":2,"Key":"svc/leader","Flags":0,"Value":"eyJpZCI6ImEifQ==","Session":"sid","CreateIndex":10,"ModifyIndex":14}]`

func TestGetKV(t *testing.T) {
	meta := []string{"X-Consul-Index", "14", "X-Consul-KnownLeader", "true", "X-Consul-LastContact", "0"}
	tests := []struct {
		name     string
		resp     *http.Response
		want     *KVPair
		wantMeta QueryMeta
		wantErr  string
	}{
		{
			name:     "present",
			resp:     answer(200, kvAnswer, meta...),
			want:     &KVPair{Key: "svc/leader", Value: []byte(`{"id":"a"}`), Session: "sid", LockIndex: 2, CreateIndex: 10, ModifyIndex: 14},
			wantMeta: QueryMeta{LastIndex: 14, KnownLeader: true},
		},
		{
			name:     "null value",
			resp:     answer(200, `[{"Key":"svc/leader","Value":null,"ModifyIndex":3}]`, "X-Consul-Index", "3"),
			want:     &KVPair{Key: "svc/leader", ModifyIndex: 3},
			wantMeta: QueryMeta{LastIndex: 3},
		},
		{
			name:     "missing key: nil with the index",
			resp:     answer(404, "", "X-Consul-Index", "57", "X-Consul-KnownLeader", "true"),
			wantMeta: QueryMeta{LastIndex: 57, KnownLeader: true},
		},
		{name: "404 that is not Consul's KV", resp: answer(404, "Invalid URL path: not a recognized HTTP API endpoint"), wantErr: "consul: GET /v1/kv/svc/leader: 404 Invalid URL path"},
		{name: "another key", resp: answer(200, `[{"Key":"svc/other"}]`, "X-Consul-Index", "3"), wantErr: `asked for key "svc/leader", got "svc/other"`},
		{name: "bad base64", resp: answer(200, `[{"Key":"svc/leader","Value":"!!"}]`), wantErr: "decode JSON"},
		{name: "500", resp: answer(500, "No cluster leader"), wantErr: "500 No cluster leader"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newFakeClient(t, Config{}, func(*http.Request) (*http.Response, error) { return tt.resp, nil })
			got, gotMeta, err := c.GetKV(context.Background(), "svc/leader", QueryOptions{})
			if tt.wantErr != "" {
				if m := missingFrom(errorText(err), tt.wantErr); m != "" {
					t.Fatalf("GetKV error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("GetKV pair (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantMeta, gotMeta); diff != "" {
				t.Errorf("GetKV meta (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKVWrites(t *testing.T) {
	ctx := context.Background()
	type sent struct{ Method, Path, Query, Body, ContentType string }
	tests := []struct {
		name   string
		answer string
		call   func(*Client) (bool, error)
		want   sent
		wantOK bool
	}{
		{
			name: "acquire", answer: "true",
			call: func(c *Client) (bool, error) { return c.Acquire(ctx, "svc/leader", "sid", []byte(`{"id":"a"}`)) },
			want: sent{"PUT", "/v1/kv/svc/leader", "acquire=sid", `{"id":"a"}`, "application/octet-stream"}, wantOK: true,
		},
		{
			name: "acquire refused", answer: "false",
			call: func(c *Client) (bool, error) { return c.Acquire(ctx, "svc/leader", "sid", nil) },
			want: sent{"PUT", "/v1/kv/svc/leader", "acquire=sid", "", ""},
		},
		{
			name: "release", answer: "true",
			call: func(c *Client) (bool, error) { return c.Release(ctx, "svc/leader", "sid", []byte("bye")) },
			want: sent{"PUT", "/v1/kv/svc/leader", "release=sid", "bye", "application/octet-stream"}, wantOK: true,
		},
		{
			name: "put", answer: "true",
			call: func(c *Client) (bool, error) { return true, c.PutKV(ctx, "k", []byte("v")) },
			want: sent{"PUT", "/v1/kv/k", "", "v", "application/octet-stream"}, wantOK: true,
		},
		{
			name: "cas lost", answer: "false",
			call: func(c *Client) (bool, error) { return c.CASKV(ctx, "k", []byte("v"), 42) },
			want: sent{"PUT", "/v1/kv/k", "cas=42", "v", "application/octet-stream"},
		},
		{
			name: "cas create-only", answer: "true",
			call: func(c *Client) (bool, error) { return c.CASKV(ctx, "k", []byte("v"), 0) },
			want: sent{"PUT", "/v1/kv/k", "cas=0", "v", "application/octet-stream"}, wantOK: true,
		},
		{
			name: "delete", answer: "true",
			call: func(c *Client) (bool, error) { return true, c.DeleteKV(ctx, "k") },
			want: sent{"DELETE", "/v1/kv/k", "", "", ""}, wantOK: true,
		},
		{
			name: "delete cas", answer: "false",
			call: func(c *Client) (bool, error) { return c.DeleteCASKV(ctx, "k", 7) },
			want: sent{"DELETE", "/v1/kv/k", "cas=7", "", ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, f := newFakeClient(t, Config{}, replyWith(200, tt.answer))
			ok, err := tt.call(c)
			if err != nil || ok != tt.wantOK {
				t.Fatalf("= %v, %v; want %v, nil", ok, err, tt.wantOK)
			}
			s := f.last()
			got := sent{s.Method, s.Path, s.RawQuery, s.Body, s.Header.Get("Content-Type")}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKVWriteErrors(t *testing.T) {
	ctx := context.Background()
	c, _ := newFakeClient(t, Config{}, replyWith(200, "false"))
	if err := c.PutKV(ctx, "k", nil); err == nil {
		t.Error("PutKV answered false: no error")
	}
	if err := c.DeleteKV(ctx, "k"); err == nil {
		t.Error("DeleteKV answered false: no error")
	}

	c, f := newFakeClient(t, Config{}, nil)
	if _, err := c.Acquire(ctx, "k", "", nil); err == nil {
		t.Error("Acquire with no session: no error")
	}
	if _, err := c.Release(ctx, "/k", "sid", nil); err == nil {
		t.Error("Release of a key with a leading slash: no error")
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests sent for invalid calls", n)
	}

	c, _ = newFakeClient(t, Config{}, replyWith(500, `invalid session "sid"`))
	_, err := c.Acquire(ctx, "k", "sid", nil)
	var se *StatusError
	if !errors.Is(err, ErrSessionNotFound) || !errors.As(err, &se) || IsRetryable(err) {
		t.Errorf("Acquire with an unknown session: %v; want ErrSessionNotFound and the *StatusError, not retryable", err)
	}
}

func TestBlockingGetKVParameters(t *testing.T) {
	c, f := newFakeClient(t, Config{Datacenter: "dc1"}, replyWith(200, kvAnswer, "X-Consul-Index", "15"))
	_, meta, err := c.GetKV(context.Background(), "svc/leader", QueryOptions{Index: 14, Wait: 30 * time.Second, Consistent: true})
	if err != nil || meta.LastIndex != 15 {
		t.Fatalf("GetKV = %+v, %v", meta, err)
	}
	if got, want := f.last().RawQuery, "consistent=&dc=dc1&index=14&wait=30000ms"; got != want {
		t.Errorf("query = %q, want %q", got, want)
	}
}
