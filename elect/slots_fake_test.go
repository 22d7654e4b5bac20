package elect

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// ListKV and TxnKV make fakeConsul a SlotsConsul. A list blocks on the
// fake's global index (any write wakes it: a wake-up is no proof of change).
func (f *fakeConsul) ListKV(ctx context.Context, prefix string, q consulhttp.QueryOptions) ([]consulhttp.KVPair, consulhttp.QueryMeta, error) {
	f.mu.Lock()
	if err := f.enter("list"); err != nil {
		f.mu.Unlock()
		return nil, consulhttp.QueryMeta{}, err
	}
	timeout := blockingTimeout(q)
	for {
		if q.Index == 0 || f.index > q.Index {
			var out []consulhttp.KVPair
			for k, p := range f.kv {
				if strings.HasPrefix(k, prefix) {
					out = append(out, *p)
				}
			}
			sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
			idx := f.index
			f.mu.Unlock()
			return out, consulhttp.QueryMeta{LastIndex: idx, KnownLeader: true}, nil
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, consulhttp.QueryMeta{}, ctx.Err()
		case <-timeout:
			q.Index = 0
		case <-ch:
		}
		f.mu.Lock()
		if f.down {
			f.mu.Unlock()
			return nil, consulhttp.QueryMeta{}, errCut
		}
	}
}

// TxnKV applies lock, cas, check-session and delete atomically, all or
// nothing, as Consul's /v1/txn does.
func (f *fakeConsul) TxnKV(ctx context.Context, ops []consulhttp.TxnKVOp) ([]consulhttp.KVPair, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(ops) == 1 && ops[0].Verb == consulhttp.TxnLock && ops[0].Flags == 0 && !strings.Contains(ops[0].Key, "/candidates/") {
		// A lone lock is how an Election acquires: count it as one (a
		// Slots contender key has SemaphoreFlags, a registry entry its
		// prefix).
		op := ops[0]
		ok, err := f.acquireLocked(op.Key, op.Session, op.Value)
		if !ok || err != nil {
			return nil, false, err
		}
		// As Consul does, the answer to a write carries no value.
		res := *f.kv[op.Key]
		res.Value = nil
		return []consulhttp.KVPair{res}, true, nil
	}
	if err := f.enter("txn"); err != nil {
		return nil, false, err
	}
	// Check every op first, in order (a lock sees an unlock before it),
	// then apply them at one new index.
	holder := map[string]string{}
	holderOf := func(key string) string {
		if h, ok := holder[key]; ok {
			return h
		}
		if p, ok := f.kv[key]; ok {
			return p.Session
		}
		return ""
	}
	for _, op := range ops {
		p, ok := f.kv[op.Key]
		switch op.Verb {
		case consulhttp.TxnLock:
			if _, live := f.sessions[op.Session]; !live {
				return nil, false, fmt.Errorf("%w (fake txn: invalid session %q)", consulhttp.ErrSessionNotFound, op.Session)
			}
			if h := holderOf(op.Key); h != "" && h != op.Session || time.Now().Before(f.delay[op.Key]) {
				return nil, false, nil
			}
			holder[op.Key] = op.Session
		case consulhttp.TxnUnlock:
			if holderOf(op.Key) != op.Session {
				return nil, false, nil
			}
			holder[op.Key] = ""
		case consulhttp.TxnCAS:
			if op.Index == 0 && ok || op.Index != 0 && (!ok || p.ModifyIndex != op.Index) {
				return nil, false, nil
			}
		case consulhttp.TxnCheckSession:
			if !ok || p.Session != op.Session {
				return nil, false, nil
			}
		case consulhttp.TxnDelete:
		case consulhttp.TxnDeleteCAS:
			if !ok || p.ModifyIndex != op.Index {
				return nil, false, nil
			}
		default:
			f.t.Errorf("txn: unexpected verb %q", op.Verb)
			return nil, false, fmt.Errorf("bad verb %q", op.Verb)
		}
	}
	idx := f.bump()
	var out []consulhttp.KVPair
	for _, op := range ops {
		p, ok := f.kv[op.Key]
		switch op.Verb {
		case consulhttp.TxnLock, consulhttp.TxnCAS:
			if !ok {
				p = &consulhttp.KVPair{Key: op.Key, CreateIndex: idx}
				f.kv[op.Key] = p
			}
			p.Value, p.Flags, p.ModifyIndex = op.Value, op.Flags, idx
			if op.Verb == consulhttp.TxnLock && p.Session != op.Session {
				p.Session = op.Session
				p.LockIndex++
			}
			out = append(out, *p)
		case consulhttp.TxnUnlock:
			p.Value, p.Flags, p.ModifyIndex, p.Session = op.Value, op.Flags, idx, ""
			out = append(out, *p)
		case consulhttp.TxnCheckSession:
			out = append(out, *p)
		case consulhttp.TxnDelete, consulhttp.TxnDeleteCAS:
			delete(f.kv, op.Key)
		}
	}
	return out, true, nil
}

// slotsCut is a CutConsul for Slots: cut, every call fails, and a list in
// flight when the cut begins fails too (the answer never arrives), without
// anything changing in the fake.
type slotsCut struct {
	*CutConsul
	f *fakeConsul

	mu  sync.Mutex
	cut chan struct{} // closed by cutOff
	// beforeTxn, if set, runs before a TxnKV reaches the fake (another
	// writer getting in between a read and a CAS) until it returns true.
	beforeTxn func(ops []consulhttp.TxnKVOp) bool
}

func (c *slotsCut) ListKV(ctx context.Context, prefix string, q consulhttp.QueryOptions) ([]consulhttp.KVPair, consulhttp.QueryMeta, error) {
	if c.isCut() {
		return nil, consulhttp.QueryMeta{}, errCut
	}
	c.mu.Lock()
	if c.cut == nil {
		c.cut = make(chan struct{})
	}
	cut := c.cut
	c.mu.Unlock()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-cut:
			cancel()
		case <-lctx.Done():
		}
	}()
	ps, meta, err := c.f.ListKV(lctx, prefix, q)
	if c.isCut() {
		return nil, consulhttp.QueryMeta{}, errCut
	}
	return ps, meta, err
}

func (c *slotsCut) TxnKV(ctx context.Context, ops []consulhttp.TxnKVOp) ([]consulhttp.KVPair, bool, error) {
	if c.isCut() {
		return nil, false, errCut
	}
	c.mu.Lock()
	if c.beforeTxn != nil && c.beforeTxn(ops) {
		c.beforeTxn = nil
	}
	c.mu.Unlock()
	return c.f.TxnKV(ctx, ops)
}

// cutOff cuts the connection and makes a list in flight fail now, as a
// broken connection would; SetCut(false) heals it.
func (c *slotsCut) cutOff() {
	c.SetCut(true)
	c.mu.Lock()
	if c.cut == nil {
		c.cut = make(chan struct{})
	}
	close(c.cut)
	c.cut = nil
	c.mu.Unlock()
}
