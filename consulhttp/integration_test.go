package consulhttp_test

// These tests run the client against a real Consul v1.16.3 agent on loopback
// (integration/consultest) and assert the facts of shared/CONSUL_API.md that
// leader election rests on.

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/integration/consultest"
)

// newClient is a client for agent a with token (may be "").
func newClient(t *testing.T, a *consultest.Agent, token string) *consulhttp.Client {
	t.Helper()
	c, err := consulhttp.NewClient(consulhttp.Config{Address: a.Addr, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testCtx bounds a test's Consul calls, so a hang fails instead of waiting
// for go test's global timeout.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// session creates a session and destroys it when the test ends.
func session(t *testing.T, c *consulhttp.Client, r consulhttp.SessionRequest) string {
	t.Helper()
	id, err := c.CreateSession(testCtx(t), r)
	if err != nil {
		t.Fatalf("CreateSession(%+v): %v", r, err)
	}
	t.Cleanup(func() { c.DestroySession(context.Background(), id) })
	return id
}

// ttlOnly is a TTL session with no checks and no lock-delay.
var ttlOnly = consulhttp.SessionRequest{Name: "leaderd-test", TTL: 10 * time.Second, NodeChecks: []string{}}

func getKV(t *testing.T, c *consulhttp.Client, key string) *consulhttp.KVPair {
	t.Helper()
	kv, _, err := c.GetKV(testCtx(t), key, consulhttp.QueryOptions{})
	if err != nil {
		t.Fatalf("GetKV(%q): %v", key, err)
	}
	return kv
}

func acquire(t *testing.T, c *consulhttp.Client, key, sid, value string) bool {
	t.Helper()
	ok, err := c.Acquire(testCtx(t), key, sid, []byte(value))
	if err != nil {
		t.Fatalf("Acquire(%q, %s): %v", key, sid, err)
	}
	return ok
}

// lockState is what the lock tests compare.
type lockState struct {
	Value     string
	Session   string
	LockIndex uint64
}

func stateOf(kv *consulhttp.KVPair) lockState {
	if kv == nil {
		return lockState{Value: "<missing>"}
	}
	return lockState{Value: string(kv.Value), Session: kv.Session, LockIndex: kv.LockIndex}
}

func TestAgainstConsul(t *testing.T) {
	a := consultest.Start(t, consultest.Options{})
	c := newClient(t, a, "")

	t.Run("status and agent", func(t *testing.T) {
		ctx := testCtx(t)
		leader, err := c.Leader(ctx)
		if err != nil || leader == "" {
			t.Fatalf("Leader = %q, %v; want a raft address", leader, err)
		}
		node, err := c.NodeName(ctx)
		if err != nil || node != a.NodeName {
			t.Fatalf("NodeName = %q, %v; want %q", node, err, a.NodeName)
		}
	})

	t.Run("session lifecycle", func(t *testing.T) {
		ctx := testCtx(t)
		// NodeChecks [] and LockDelay 0 only arrive if the body is read,
		// which Consul does only with a Content-Length.
		sid := session(t, c, ttlOnly)
		info, meta, err := c.SessionInfo(ctx, sid, consulhttp.QueryOptions{})
		if err != nil || info == nil {
			t.Fatalf("SessionInfo = %+v, %v", info, err)
		}
		want := &consulhttp.SessionEntry{ID: sid, Name: "leaderd-test", Node: a.NodeName, Behavior: "release",
			TTL: 10 * time.Second, LockDelay: 0, NodeChecks: []string{}, CreateIndex: info.CreateIndex, ModifyIndex: info.ModifyIndex}
		if diff := cmp.Diff(want, info); diff != "" {
			t.Errorf("SessionInfo (-want +got):\n%s", diff)
		}
		if meta.LastIndex == 0 || !meta.KnownLeader {
			t.Errorf("meta = %+v, want an index and a known leader", meta)
		}

		renewed, err := c.RenewSession(ctx, sid)
		if err != nil || renewed.ID != sid || renewed.TTL != 10*time.Second {
			t.Fatalf("RenewSession = %+v, %v", renewed, err)
		}
		if err := c.DestroySession(ctx, sid); err != nil {
			t.Fatal(err)
		}
		info, meta, err = c.SessionInfo(ctx, sid, consulhttp.QueryOptions{})
		if err != nil || info != nil || meta.LastIndex == 0 {
			t.Errorf("SessionInfo after destroy = %+v, %+v, %v; want nil with an index", info, meta, err)
		}
		_, err = c.RenewSession(ctx, sid)
		if !errors.Is(err, consulhttp.ErrSessionNotFound) || consulhttp.IsRetryable(err) {
			t.Errorf("RenewSession after destroy: %v; want ErrSessionNotFound, not retryable", err)
		}
		if err := c.DestroySession(ctx, "00000000-0000-0000-0000-000000000000"); err != nil {
			t.Errorf("DestroySession of an unknown ID: %v; Consul answers true", err)
		}
	})

	t.Run("session defaults", func(t *testing.T) {
		sid := session(t, c, consulhttp.SessionRequest{LockDelay: 15 * time.Second})
		info, _, err := c.SessionInfo(testCtx(t), sid, consulhttp.QueryOptions{})
		if err != nil || info == nil {
			t.Fatalf("SessionInfo = %+v, %v", info, err)
		}
		got := []any{info.NodeChecks, info.LockDelay, info.TTL}
		if diff := cmp.Diff([]any{[]string{"serfHealth"}, 15 * time.Second, time.Duration(0)}, got); diff != "" {
			t.Errorf("NodeChecks, LockDelay, TTL of a session with nil NodeChecks (-want +got):\n%s", diff)
		}
	})

	t.Run("invalid TTL is a permanent 500", func(t *testing.T) {
		_, err := c.CreateSession(testCtx(t), consulhttp.SessionRequest{TTL: 25 * time.Hour})
		var se *consulhttp.StatusError
		if !errors.As(err, &se) || se.Code != 500 || consulhttp.IsRetryable(err) {
			t.Fatalf("CreateSession with TTL 25h: %v; want a 500 that is not retryable", err)
		}
		t.Logf("Consul says: %v", err)
	})

	t.Run("re-acquire, release, plain put", func(t *testing.T) {
		const key = "test/lock"
		s1 := session(t, c, ttlOnly)
		s2 := session(t, c, ttlOnly)
		steps := []struct {
			name string
			do   func() bool
			ok   bool
			want lockState
		}{
			{"acquire", func() bool { return acquire(t, c, key, s1, "v1") }, true, lockState{"v1", s1, 1}},
			{"same session again: value updated, LockIndex unchanged", func() bool { return acquire(t, c, key, s1, "v2") }, true, lockState{"v2", s1, 1}},
			{"other session refused", func() bool { return acquire(t, c, key, s2, "x") }, false, lockState{"v2", s1, 1}},
			{"release writes the body, keeps LockIndex", func() bool {
				ok, err := c.Release(testCtx(t), key, s1, []byte("left"))
				if err != nil {
					t.Fatal(err)
				}
				return ok
			}, true, lockState{"left", "", 1}},
			{"no lock-delay after release", func() bool { return acquire(t, c, key, s2, "v3") }, true, lockState{"v3", s2, 2}},
			{"plain put keeps Session, resets LockIndex", func() bool {
				if err := c.PutKV(testCtx(t), key, []byte("plain")); err != nil {
					t.Fatal(err)
				}
				return true
			}, true, lockState{"plain", s2, 0}},
		}
		for _, st := range steps {
			if ok := st.do(); ok != st.ok {
				t.Fatalf("%s: answer %v, want %v", st.name, ok, st.ok)
			}
			if diff := cmp.Diff(st.want, stateOf(getKV(t, c, key))); diff != "" {
				t.Fatalf("%s: key (-want +got):\n%s", st.name, diff)
			}
		}
	})

	t.Run("lock-delay", func(t *testing.T) {
		tests := []struct {
			name      string
			lockDelay time.Duration
			wantOK    bool
		}{
			{"0s is honoured: acquire right after destroy", 0, true},
			{"15s blocks acquire after destroy", 15 * time.Second, false},
		}
		for i, tt := range tests {
			key := "test/lock-delay/" + strconv.Itoa(i)
			r := ttlOnly
			r.LockDelay = tt.lockDelay
			holder := session(t, c, r)
			if !acquire(t, c, key, holder, "held") {
				t.Fatalf("%s: first acquire refused", tt.name)
			}
			if err := c.DestroySession(testCtx(t), holder); err != nil {
				t.Fatal(err)
			}
			next := session(t, c, ttlOnly)
			if ok := acquire(t, c, key, next, "next"); ok != tt.wantOK {
				t.Errorf("%s: acquire after destroy = %v, want %v", tt.name, ok, tt.wantOK)
			}
			if !tt.wantOK {
				if kv := getKV(t, c, key); kv == nil || kv.Session != "" {
					t.Errorf("%s: key %+v; want no holder while lock-delay runs", tt.name, kv)
				}
			}
		}
	})

	t.Run("acquire with a destroyed session", func(t *testing.T) {
		sid := session(t, c, ttlOnly)
		if err := c.DestroySession(testCtx(t), sid); err != nil {
			t.Fatal(err)
		}
		_, err := c.Acquire(testCtx(t), "test/gone", sid, nil)
		if !errors.Is(err, consulhttp.ErrSessionNotFound) || consulhttp.IsRetryable(err) {
			t.Fatalf("Acquire with a destroyed session: %v; want ErrSessionNotFound, not retryable", err)
		}
	})

	t.Run("cas and delete", func(t *testing.T) {
		ctx := testCtx(t)
		const key = "test/cas"
		steps := []struct {
			name string
			do   func() (bool, error)
			want bool
		}{
			{"create-only on a missing key", func() (bool, error) { return c.CASKV(ctx, key, []byte("a"), 0) }, true},
			{"create-only on an existing key", func() (bool, error) { return c.CASKV(ctx, key, []byte("b"), 0) }, false},
			{"stale index", func() (bool, error) { return c.CASKV(ctx, key, []byte("b"), 1) }, false},
			{"current index", func() (bool, error) { return c.CASKV(ctx, key, []byte("b"), getKV(t, c, key).ModifyIndex) }, true},
			{"delete with a stale index", func() (bool, error) { return c.DeleteCASKV(ctx, key, 1) }, false},
			{"delete with the current index", func() (bool, error) { return c.DeleteCASKV(ctx, key, getKV(t, c, key).ModifyIndex) }, true},
			{"delete-cas of a missing key", func() (bool, error) { return c.DeleteCASKV(ctx, key, 12345) }, true},
		}
		for _, st := range steps {
			if got, err := st.do(); err != nil || got != st.want {
				t.Fatalf("%s: %v, %v; want %v", st.name, got, err, st.want)
			}
		}
		if err := c.DeleteKV(ctx, key); err != nil {
			t.Errorf("DeleteKV of a missing key: %v", err)
		}
	})

	t.Run("keys that need escaping", func(t *testing.T) {
		for _, key := range []string{"test/a b", "test/q?x=1#frag", "test/100%", "test/ünï+çødé", "test/folder/"} {
			if err := c.PutKV(testCtx(t), key, []byte(key)); err != nil {
				t.Fatalf("PutKV(%q): %v", key, err)
			}
			if kv := getKV(t, c, key); kv == nil || kv.Key != key || string(kv.Value) != key {
				t.Errorf("GetKV(%q) = %+v", key, kv)
			}
		}
	})

	t.Run("missing key", func(t *testing.T) {
		kv, meta, err := c.GetKV(testCtx(t), "test/never-written", consulhttp.QueryOptions{Consistent: true})
		if err != nil || kv != nil || meta.LastIndex == 0 {
			t.Fatalf("GetKV of a missing key = %+v, %+v, %v; want nil with an index", kv, meta, err)
		}
	})

	t.Run("blocking GetKV", func(t *testing.T) {
		ctx := testCtx(t)
		const key = "test/watch"
		if err := c.PutKV(ctx, key, []byte("one")); err != nil {
			t.Fatal(err)
		}
		_, meta, err := c.GetKV(ctx, key, consulhttp.QueryOptions{})
		if err != nil {
			t.Fatal(err)
		}

		// Timeout: same index, same value, after at least the wait.
		start := time.Now()
		kv, again, err := c.GetKV(ctx, key, consulhttp.QueryOptions{Index: meta.LastIndex, Wait: time.Second})
		if elapsed := time.Since(start); err != nil || elapsed < time.Second || again.LastIndex != meta.LastIndex || string(kv.Value) != "one" {
			t.Fatalf("blocking GetKV with no change = %+v, %+v, %v after %s; want the same index after >= 1s", kv, again, err, elapsed)
		}

		// Change: whether the write lands before or after the query
		// reaches Consul, the answer must carry it.
		type result struct {
			kv   *consulhttp.KVPair
			meta consulhttp.QueryMeta
			err  error
		}
		done := make(chan result, 1)
		go func() {
			kv, m, err := c.GetKV(ctx, key, consulhttp.QueryOptions{Index: meta.LastIndex, Wait: time.Minute})
			done <- result{kv, m, err}
		}()
		if err := c.PutKV(ctx, key, []byte("two")); err != nil {
			t.Fatal(err)
		}
		r := <-done
		if r.err != nil || r.meta.LastIndex <= meta.LastIndex || string(r.kv.Value) != "two" {
			t.Fatalf("blocking GetKV across a write = %+v, %+v, %v; want value two with a higher index", r.kv, r.meta, r.err)
		}

		// Delete: returns with a 404 (nil) and the delete's index.
		go func() {
			kv, m, err := c.GetKV(ctx, key, consulhttp.QueryOptions{Index: r.meta.LastIndex, Wait: time.Minute})
			done <- result{kv, m, err}
		}()
		if err := c.DeleteKV(ctx, key); err != nil {
			t.Fatal(err)
		}
		d := <-done
		if d.err != nil || d.kv != nil || d.meta.LastIndex <= r.meta.LastIndex {
			t.Fatalf("blocking GetKV across a delete = %+v, %+v, %v; want nil with a higher index", d.kv, d.meta, d.err)
		}
	})

	t.Run("session bound to a TTL check", func(t *testing.T) {
		ctx := testCtx(t)
		chk := consulhttp.AgentCheck{CheckID: "leaderd-test-ttl", Name: "leaderd test", TTL: "30s"}
		if err := c.RegisterCheck(ctx, chk); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.DeregisterCheck(context.Background(), chk.CheckID) })
		bound := consulhttp.SessionRequest{TTL: 10 * time.Second, NodeChecks: []string{chk.CheckID}}
		// A new TTL check starts critical: Consul refuses the session, and
		// that is a state that clears, so it is retryable.
		_, err := c.CreateSession(ctx, bound)
		var se *consulhttp.StatusError
		if !errors.As(err, &se) || se.Code != 500 || !consulhttp.IsRetryable(err) {
			t.Fatalf("CreateSession bound to a critical check: %v; want a retryable 500", err)
		}
		t.Logf("Consul says: %v", err)
		if err := c.UpdateTTL(ctx, chk.CheckID, consulhttp.StatusPassing, "ok"); err != nil {
			t.Fatal(err)
		}
		// Passing on the agent reaches the catalog through anti-entropy,
		// so retry, as the election does.
		poll := time.NewTicker(50 * time.Millisecond)
		defer poll.Stop()
		var sid string
		for {
			if sid, err = c.CreateSession(ctx, bound); err == nil {
				break
			}
			if !consulhttp.IsRetryable(err) {
				t.Fatalf("CreateSession bound to a passing check: %v", err)
			}
			select {
			case <-poll.C:
			case <-ctx.Done():
				t.Fatalf("CreateSession bound to a passing check: %v", err)
			}
		}
		t.Cleanup(func() { c.DestroySession(context.Background(), sid) })
		info, _, err := c.SessionInfo(ctx, sid, consulhttp.QueryOptions{})
		if err != nil || info == nil || !cmp.Equal(info.NodeChecks, []string{chk.CheckID}) {
			t.Fatalf("SessionInfo = %+v, %v; want NodeChecks [%s]", info, err, chk.CheckID)
		}
	})
}
