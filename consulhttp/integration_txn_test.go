package consulhttp_test

import (
	"testing"

	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/integration/consultest"
)

// TestTxnAndListAgainstConsul checks what leaderd's slots rest on: a txn's
// write result carries the Raft index of the write (the fencing token), a
// failed op rolls everything back (409 → ok false), check-session fails
// for a key the session does not hold, and a list of a prefix/ returns its
// keys with their sessions and flags.
func TestTxnAndListAgainstConsul(t *testing.T) {
	a := consultest.Start(t, consultest.Options{})
	c := newClient(t, a, "")
	ctx := testCtx(t)
	sid := session(t, c, ttlOnly)
	const flags = 0xe0f69a2baa414de0

	res, ok, err := c.TxnKV(ctx, []consulhttp.TxnKVOp{{Verb: consulhttp.TxnLock, Key: "sem/" + sid, Value: []byte("me"), Flags: flags, Session: sid}})
	if err != nil || !ok || len(res) != 1 {
		t.Fatalf("lock: %v %v %v", res, ok, err)
	}
	res, ok, err = c.TxnKV(ctx, []consulhttp.TxnKVOp{
		{Verb: consulhttp.TxnCheckSession, Key: "sem/" + sid, Session: sid},
		{Verb: consulhttp.TxnCAS, Key: "sem/.lock", Value: []byte(`{"Limit":2}`), Flags: flags, Index: 0},
	})
	if err != nil || !ok || len(res) != 2 {
		t.Fatalf("check-session + cas: %v %v %v", res, ok, err)
	}
	written := res[1].ModifyIndex
	got := getKV(t, c, "sem/.lock")
	if got.ModifyIndex != written || got.Flags != flags || string(got.Value) != `{"Limit":2}` {
		t.Errorf("read back %+v, the txn said index %d", got, written)
	}
	// A lost CAS rolls back the whole transaction.
	_, ok, err = c.TxnKV(ctx, []consulhttp.TxnKVOp{
		{Verb: consulhttp.TxnDelete, Key: "sem/" + sid},
		{Verb: consulhttp.TxnCAS, Key: "sem/.lock", Value: []byte(`x`), Flags: flags, Index: written - 1},
	})
	if err != nil || ok {
		t.Fatalf("stale cas: ok %v err %v, want rolled back", ok, err)
	}
	if p := getKV(t, c, "sem/"+sid); p == nil || p.Session != sid {
		t.Errorf("rolled-back delete happened: %+v", p)
	}
	other := session(t, c, ttlOnly)
	if _, ok, err := c.TxnKV(ctx, []consulhttp.TxnKVOp{{Verb: consulhttp.TxnCheckSession, Key: "sem/" + sid, Session: other}}); err != nil || ok {
		t.Errorf("check-session of another session: ok %v err %v", ok, err)
	}
	ps, meta, err := c.ListKV(ctx, "sem/", consulhttp.QueryOptions{})
	if err != nil || len(ps) != 2 || meta.LastIndex == 0 {
		t.Fatalf("list: %+v %+v %v", ps, meta, err)
	}
	if ps[0].Key != "sem/.lock" || ps[1].Key != "sem/"+sid || ps[1].Session != sid || ps[1].Flags != flags {
		t.Errorf("list: %+v", ps)
	}
	if ps, _, err := c.ListKV(ctx, "nothing/", consulhttp.QueryOptions{}); err != nil || len(ps) != 0 {
		t.Errorf("list of an empty prefix: %v %v", ps, err)
	}
}
