package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/elect"
)

// fakeKV is Consul's KV HTTP API, enough for leaderd transfer: reads
// (blocking on an index), recursive reads, writes, deletes with cas. Its
// leader plays the elect side: on a transfer request it calls hand.
type fakeKV struct {
	t       *testing.T
	mu      sync.Mutex
	index   uint64
	kv      map[string]consulhttp.KVPair
	changed chan struct{} // closed and replaced on every write
	// hand is called (with mu held) on a write to a transfer key: it
	// plays the leader, returning the id and session to hand the key to
	// ("": ignore the request).
	hand     func(req elect.TransferRequest) (id, session string)
	drop     bool // the leader deletes a request once it handled it, as elect's does
	denyPuts bool
	requests []elect.TransferRequest
}

func newFakeKV(t *testing.T) (*fakeKV, string) {
	f := &fakeKV{t: t, kv: map[string]consulhttp.KVPair{}, changed: make(chan struct{}), index: 1}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, strings.TrimPrefix(srv.URL, "http://")
}

// hold makes session hold key with a leader record of id (mu held or not
// yet serving).
func (f *fakeKV) hold(key, id, session string) {
	v, _ := json.Marshal(map[string]any{"id": id, "acquired_at": time.Now()})
	f.write(consulhttp.KVPair{Key: key, Value: v, Session: session})
}

func (f *fakeKV) write(p consulhttp.KVPair) {
	f.index++
	p.ModifyIndex = f.index
	f.kv[p.Key] = p
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeKV) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.URL.Path, "/v1/kv/")
	q := r.URL.Query()
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.Method {
	case http.MethodGet:
		if idx, _ := strconv.ParseUint(q.Get("index"), 10, 64); idx != 0 && idx >= f.index {
			ch := f.changed
			f.mu.Unlock()
			select {
			case <-ch:
			case <-time.After(time.Second):
			case <-r.Context().Done():
			}
			f.mu.Lock()
		}
		var pairs []consulhttp.KVPair
		for k, p := range f.kv {
			if k == key || q.Has("recurse") && strings.HasPrefix(k, key) {
				pairs = append(pairs, p)
			}
		}
		w.Header().Set("X-Consul-Index", strconv.FormatUint(f.index, 10))
		if len(pairs) == 0 {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(pairs)
	case http.MethodPut:
		if f.denyPuts {
			http.Error(w, "Permission denied: token with AccessorID 'x' lacks permission 'key:write' on \""+key+"\"", http.StatusForbidden)
			return
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(r.Body)
		f.write(consulhttp.KVPair{Key: key, Value: body.Bytes()})
		if strings.HasSuffix(key, "/transfer") {
			var req elect.TransferRequest
			if err := json.Unmarshal(body.Bytes(), &req); err != nil {
				f.t.Errorf("transfer request %q: %v", body.String(), err)
			}
			f.requests = append(f.requests, req)
			if id, session := f.hand(req); id != "" {
				// The handover's transaction: its index is the
				// successor's fencing token.
				f.hold(strings.TrimSuffix(key, "/transfer"), id, session)
			}
			if f.drop {
				delete(f.kv, key)
				f.index++
			}
		}
		_, _ = w.Write([]byte("true"))
	case http.MethodDelete:
		cas, _ := strconv.ParseUint(q.Get("cas"), 10, 64)
		if p, ok := f.kv[key]; ok && (!q.Has("cas") || p.ModifyIndex == cas) {
			delete(f.kv, key)
			f.index++
		}
		_, _ = w.Write([]byte("true"))
	default:
		http.Error(w, "unexpected", http.StatusMethodNotAllowed)
	}
}

// TestTransfer: leaderd transfer against a fake Consul whose "leader"
// hands over as told, to someone else, or not at all.
func TestTransfer(t *testing.T) {
	const key = "services/web/leader"
	toAsked := func(req elect.TransferRequest) (string, string) { return req.To, "s-" + req.To }
	tests := []struct {
		name      string
		leader    string // "" nobody
		hand      func(elect.TransferRequest) (string, string)
		denyPuts  bool
		drop      bool
		args      []string
		code      int
		stdout    string // substring
		stderr    string // substring
		requested []string
		withdrawn bool
	}{
		{name: "nobody leads", args: []string{"-to", "b"}, code: exitNoLeader, stderr: "leaderd transfer: nobody leads services/web/leader: nothing to transfer"},
		{name: "-to leads already", leader: "b", args: []string{"-to", "b"}, code: exitOK, stdout: "b leads already (token "},
		{name: "to the one asked", leader: "a", hand: toAsked, args: []string{"-to", "b"}, code: exitOK,
			stdout: "leadership moved from a to b (token 4)", requested: []string{"b"}},
		{name: "to the best other", leader: "a", hand: func(elect.TransferRequest) (string, string) { return "c", "s-c" }, code: exitOK,
			stdout: "leadership moved from a to c (token ", requested: []string{""}},
		{name: "json", leader: "a", hand: toAsked, args: []string{"-to", "b", "-json"}, code: exitOK,
			stdout: `"result":"moved","from":{"id":"a","session":"s-a"`, requested: []string{"b"}},
		{name: "to another than asked", leader: "a", hand: func(elect.TransferRequest) (string, string) { return "c", "s-c" }, args: []string{"-to", "b"},
			code: exitError, stderr: "leaderd transfer: leadership moved from a to c (token 4), not to b", requested: []string{"b"}},
		{name: "not handed over", leader: "a", hand: func(elect.TransferRequest) (string, string) { return "", "" }, args: []string{"-to", "zed", "-timeout", "300ms"},
			code: exitTimeout, stderr: "leaderd transfer: leader a did not hand over within 300ms: zed is not a live candidate (see leaderd leader -candidates); request withdrawn",
			requested: []string{"zed"}, withdrawn: true},
		{name: "not handed over, json", leader: "a", hand: func(elect.TransferRequest) (string, string) { return "", "" }, args: []string{"-timeout", "300ms", "-json"},
			code: exitTimeout, stdout: `"result":"timeout","from":{"id":"a"`, requested: []string{""}, withdrawn: true},
		{name: "refused", leader: "a", hand: func(elect.TransferRequest) (string, string) { return "", "" }, drop: true, args: []string{"-to", "zed"},
			code: exitTimeout, stderr: "leaderd transfer: leader a did not hand over: zed is not a live candidate (see leaderd leader -candidates)\n",
			requested: []string{"zed"}, withdrawn: true},
		{name: "refused, json", leader: "a", hand: func(elect.TransferRequest) (string, string) { return "", "" }, drop: true, args: []string{"-json"},
			code: exitTimeout, stdout: `"result":"refused","from":{"id":"a"`, requested: []string{""}, withdrawn: true},
		{name: "moved, request deleted", leader: "a", hand: toAsked, drop: true, args: []string{"-to", "b"}, code: exitOK,
			stdout: "leadership moved from a to b (token 4)", requested: []string{"b"}, withdrawn: true},
		{name: "acl denies the request", leader: "a", denyPuts: true, args: []string{"-to", "b"}, code: exitError,
			stderr: "lacks permission 'key:write' on \"services/web/leader/transfer\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, addr := newFakeKV(t)
			f.hand, f.denyPuts, f.drop = tc.hand, tc.denyPuts, tc.drop
			if tc.leader != "" {
				f.hold(key, tc.leader, "s-"+tc.leader)
			}
			var stdout, stderr bytes.Buffer
			args := append([]string{"transfer", "-service", "web", "-http-addr", addr}, tc.args...)
			t0 := time.Now()
			code := run(context.Background(), args, envMap(), &stdout, &stderr)
			if took := time.Since(t0); took > 5*time.Second {
				t.Errorf("took %v: waited out the default -timeout?", took)
			}
			if code != tc.code {
				t.Errorf("exit code %d, want %d; stdout %q, stderr %q", code, tc.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) || tc.stdout == "" && stdout.Len() > 0 {
				t.Errorf("stdout %q, want %q", stdout.String(), tc.stdout)
			}
			if !strings.Contains(stderr.String(), tc.stderr) || tc.stderr == "" && stderr.Len() > 0 {
				t.Errorf("stderr %q, want %q", stderr.String(), tc.stderr)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			var asked []string
			for _, r := range f.requests {
				asked = append(asked, r.To)
			}
			if strings.Join(asked, ",") != strings.Join(tc.requested, ",") || len(asked) != len(tc.requested) {
				t.Errorf("requests to %q, want %q", asked, tc.requested)
			}
			if _, left := f.kv[elect.TransferKey(key)]; tc.withdrawn == left && len(tc.requested) > 0 {
				t.Errorf("request left in Consul: %v, want %v", left, !tc.withdrawn)
			}
		})
	}
}

// TestTransferIgnoresRunTimeout: LEADERD_TIMEOUT is leaderd run's give-up
// time (set in a systemd environment file, say), not transfer's -timeout.
func TestTransferIgnoresRunTimeout(t *testing.T) {
	_, addr := newFakeKV(t)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"transfer", "-http-addr", addr}, envMap("LEADERD_SERVICE", "web", "LEADERD_TIMEOUT", "abc"), &stdout, &stderr)
	if code != exitNoLeader {
		t.Errorf("exit code %d, want %d (nobody leads); stderr %q", code, exitNoLeader, stderr.String())
	}
}
