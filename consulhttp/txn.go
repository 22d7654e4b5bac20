package consulhttp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// ListKV reads every key under prefix (GET /v1/kv/<prefix>?recurse). No
// key is an empty list with the answer's meta. q may block: the answer
// then comes when anything under prefix changes.
func (c *Client) ListKV(ctx context.Context, prefix string, q QueryOptions) ([]KVPair, QueryMeta, error) {
	path, err := kvPath(prefix)
	if err != nil {
		return nil, QueryMeta{}, fmt.Errorf("consul: list keys: %w", err)
	}
	req := call{method: http.MethodGet, path: path, query: map[string][]string{"recurse": {""}}, opts: &q}
	pairs, meta, err := c.readKVs(ctx, req)
	if err != nil {
		return nil, QueryMeta{}, err
	}
	for _, p := range pairs {
		if !strings.HasPrefix(p.Key, prefix) {
			return nil, QueryMeta{}, decodeErr(req, fmt.Errorf("listed %q, got key %q", prefix, p.Key))
		}
	}
	return pairs, meta, nil
}

// Verbs of TxnKVOp (Consul's KV transaction verbs).
const (
	TxnLock         = "lock"          // acquire Key for Session, writing Value and Flags
	TxnUnlock       = "unlock"        // release Key held by Session, writing Value and Flags
	TxnCAS          = "cas"           // write Value and Flags if ModifyIndex is Index (0: if missing)
	TxnCheckSession = "check-session" // fail unless Key is held by Session
	TxnDeleteCAS    = "delete-cas"    // delete Key if ModifyIndex is Index
	TxnDelete       = "delete"        // delete Key
)

// TxnKVOp is one KV operation of a transaction.
type TxnKVOp struct {
	Verb    string
	Key     string
	Value   []byte
	Flags   uint64
	Index   uint64
	Session string
}

// TxnKV applies ops atomically (PUT /v1/txn). ok false (with a nil error)
// means Consul rolled the transaction back because an operation failed (a
// CAS lost, a lock held by another session or in its lock-delay, a session
// that does not hold a key): an answer, not a failure to talk to Consul. A
// lock or unlock by a session Consul does not know is an error matching
// ErrSessionNotFound, and one the token may not do is a 403 StatusError
// (IsPermissionDenied), although Consul answers both with 409. On success the
// results are the keys as written, one per op that returns one; a write's
// ModifyIndex is the Raft index of the transaction.
func (c *Client) TxnKV(ctx context.Context, ops []TxnKVOp) ([]KVPair, bool, error) {
	type kvOp struct {
		Verb    string
		Key     string
		Value   []byte `json:",omitempty"`
		Flags   uint64 `json:",omitempty"`
		Index   uint64 `json:",omitempty"`
		Session string `json:",omitempty"`
	}
	body := make([]struct{ KV kvOp }, len(ops))
	for i, op := range ops {
		if _, err := kvPath(op.Key); err != nil {
			return nil, false, fmt.Errorf("consul: txn: %w", err)
		}
		body[i].KV = kvOp(op)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, false, fmt.Errorf("consul: txn: %w", err)
	}
	req := call{method: http.MethodPut, path: "/v1/txn", body: b}
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, false, err
	}
	var out struct {
		Results []struct{ KV *KVPair }
		Errors  []struct{ What string }
	}
	if resp.code == http.StatusConflict {
		// Rolled back. A lock by a session Consul doesn't know is not an
		// answer about the key: the session is gone.
		if decodeJSON(resp.body, &out) == nil {
			for _, e := range out.Errors {
				switch {
				case strings.Contains(e.What, `invalid session "`):
					return nil, false, sessionNotFound(&StatusError{Method: req.method, Path: req.path, Code: resp.code, Body: e.What})
				case strings.HasPrefix(e.What, "Permission denied"):
					// An op the token may not do: Consul rolls back with
					// 409, but it means what a 403 means.
					return nil, false, &StatusError{Method: req.method, Path: req.path, Code: http.StatusForbidden, Body: e.What}
				}
			}
		}
		return nil, false, nil
	}
	if err := c.ok(req, resp); err != nil {
		return nil, false, err
	}
	if err := decodeJSON(resp.body, &out); err != nil {
		return nil, false, decodeErr(req, err)
	}
	var pairs []KVPair
	for _, r := range out.Results {
		if r.KV != nil {
			pairs = append(pairs, *r.KV)
		}
	}
	return pairs, true, nil
}
