package consulhttp_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/integration/consultest"
)

// TestKVAgainstConsul asserts the KV and lock facts of CONSUL_API.md.
func TestKVAgainstConsul(t *testing.T) {
	a := consultest.Start(t, consultest.Options{})
	c := newClient(t, a, "")

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
}
