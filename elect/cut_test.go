package elect

import (
	"context"
	"sync"

	"github.com/leaderd/leaderd/consulhttp"
)

// CutConsul is a candidate's own view of Consul that a test can cut off, as
// if its network (or the whole process) froze: every call then fails like a
// refused connection. Used by the unit tests (over the fake) and, through
// this export, by the integration tests (over a real client).
type CutConsul struct {
	Consul
	mu  sync.Mutex
	cut bool
	// beforeTxn, if set, runs before a transaction reaches Consul.
	beforeTxn func(ops []consulhttp.TxnKVOp)
}

// setBeforeTxn sets beforeTxn.
func (c *CutConsul) setBeforeTxn(f func(ops []consulhttp.TxnKVOp)) {
	c.mu.Lock()
	c.beforeTxn = f
	c.mu.Unlock()
}

func (c *CutConsul) TxnKV(ctx context.Context, ops []consulhttp.TxnKVOp) ([]consulhttp.KVPair, bool, error) {
	if c.isCut() {
		return nil, false, errCut
	}
	c.mu.Lock()
	before := c.beforeTxn
	c.mu.Unlock()
	if before != nil {
		before(ops)
	}
	return c.Consul.TxnKV(ctx, ops)
}

func (c *CutConsul) ListKV(ctx context.Context, prefix string, q consulhttp.QueryOptions) ([]consulhttp.KVPair, consulhttp.QueryMeta, error) {
	if c.isCut() {
		return nil, consulhttp.QueryMeta{}, errCut
	}
	return c.Consul.ListKV(ctx, prefix, q)
}

func (c *CutConsul) SetCut(v bool) { c.mu.Lock(); c.cut = v; c.mu.Unlock() }
func (c *CutConsul) isCut() bool   { c.mu.Lock(); defer c.mu.Unlock(); return c.cut }

func (c *CutConsul) CreateSession(ctx context.Context, r consulhttp.SessionRequest) (string, error) {
	if c.isCut() {
		return "", errCut
	}
	return c.Consul.CreateSession(ctx, r)
}
func (c *CutConsul) RenewSession(ctx context.Context, id string) (*consulhttp.SessionEntry, error) {
	if c.isCut() {
		return nil, errCut
	}
	return c.Consul.RenewSession(ctx, id)
}
func (c *CutConsul) DestroySession(ctx context.Context, id string) error {
	if c.isCut() {
		return errCut
	}
	return c.Consul.DestroySession(ctx, id)
}
func (c *CutConsul) GetKV(ctx context.Context, key string, q consulhttp.QueryOptions) (*consulhttp.KVPair, consulhttp.QueryMeta, error) {
	if c.isCut() {
		return nil, consulhttp.QueryMeta{}, errCut
	}
	return c.Consul.GetKV(ctx, key, q)
}
func (c *CutConsul) Acquire(ctx context.Context, key, s string, v []byte) (bool, error) {
	if c.isCut() {
		return false, errCut
	}
	return c.Consul.Acquire(ctx, key, s, v)
}
func (c *CutConsul) Release(ctx context.Context, key, s string, v []byte) (bool, error) {
	if c.isCut() {
		return false, errCut
	}
	return c.Consul.Release(ctx, key, s, v)
}
func (c *CutConsul) UpdateTTL(ctx context.Context, id, st, out string) error {
	if c.isCut() {
		return errCut
	}
	return c.Consul.UpdateTTL(ctx, id, st, out)
}
