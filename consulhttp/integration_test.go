package consulhttp_test

// These tests run the client against a real Consul v1.16.3 agent on loopback
// (integration/consultest) and assert the facts of shared/CONSUL_API.md that
// leader election rests on.

import (
	"context"
	"errors"
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

// TestSessionsAgainstConsul asserts the session and agent facts of CONSUL_API.md.
func TestSessionsAgainstConsul(t *testing.T) {
	// A 1s minimum TTL lets a session expire within the test.
	a := consultest.Start(t, consultest.Options{HCL: []string{`session_ttl_min = "1s"`}})
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

	t.Run("blocking info wakes on destroy", func(t *testing.T) {
		ctx := testCtx(t)
		sid := session(t, c, ttlOnly)
		_, meta, err := c.SessionInfo(ctx, sid, consulhttp.QueryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		var info *consulhttp.SessionEntry
		var after consulhttp.QueryMeta
		go func() {
			var err error
			info, after, err = c.SessionInfo(ctx, sid, consulhttp.QueryOptions{Index: meta.LastIndex, Wait: time.Minute})
			done <- err
		}()
		if err := c.DestroySession(ctx, sid); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil || info != nil || after.LastIndex <= meta.LastIndex {
			t.Fatalf("blocking SessionInfo across destroy = %+v, %+v, %v; want nil with a higher index", info, after, err)
		}
	})

	t.Run("TTL expiry", func(t *testing.T) {
		ctx := testCtx(t)
		sid := session(t, c, consulhttp.SessionRequest{TTL: time.Second, NodeChecks: []string{}})
		// Consul invalidates after up to 2×TTL; wait for it with blocking
		// reads, not sleeps.
		var index uint64
		for {
			info, meta, err := c.SessionInfo(ctx, sid, consulhttp.QueryOptions{Index: index, Wait: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if info == nil {
				break
			}
			index = meta.LastIndex
		}
		_, err := c.RenewSession(ctx, sid)
		if !errors.Is(err, consulhttp.ErrSessionNotFound) {
			t.Fatalf("RenewSession of an expired session: %v; want ErrSessionNotFound", err)
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
