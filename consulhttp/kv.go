package consulhttp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// kvPath checks a key and returns its escaped path. Each segment is escaped
// on its own so that '/' keeps separating them and '?', '#', '%' or spaces
// stay part of the key. Keys that Consul's router would rewrite (an empty
// segment, "." or "..") are refused: the router answers with a redirect to
// another path, that is another key.
func kvPath(key string) (string, error) {
	if key == "" {
		return "", errors.New("empty KV key")
	}
	if strings.HasPrefix(key, "/") {
		return "", fmt.Errorf("KV key %q starts with /: Consul keys have no leading slash", key)
	}
	segs := strings.Split(key, "/")
	for i, s := range segs {
		switch {
		case s == "" && i < len(segs)-1: // a trailing "/" (a folder key) is fine
			return "", fmt.Errorf("KV key %q has an empty path segment (//)", key)
		case s == "." || s == "..":
			return "", fmt.Errorf("KV key %q has a %q path segment", key, s)
		}
		segs[i] = url.PathEscape(s)
	}
	return "/v1/kv/" + strings.Join(segs, "/"), nil
}

// GetKV reads a key. A missing key is nil with the meta of the answer (its
// index is what to block on to wait for the key to appear). q may block.
func (c *Client) GetKV(ctx context.Context, key string, q QueryOptions) (*KVPair, QueryMeta, error) {
	path, err := kvPath(key)
	if err != nil {
		return nil, QueryMeta{}, fmt.Errorf("consul: get key: %w", err)
	}
	req := call{method: http.MethodGet, path: path, opts: &q}
	pairs, meta, err := c.readKVs(ctx, req)
	if err != nil || len(pairs) == 0 {
		return nil, meta, err
	}
	if pairs[0].Key != key {
		return nil, QueryMeta{}, decodeErr(req, fmt.Errorf("asked for key %q, got %q", key, pairs[0].Key))
	}
	return &pairs[0], meta, nil
}

// readKVs sends a KV read and decodes its list; nothing (a missing key or
// prefix) is an empty list with the answer's meta.
func (c *Client) readKVs(ctx context.Context, req call) ([]KVPair, QueryMeta, error) {
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, QueryMeta{}, err
	}
	// A missing key is a 404 with the usual X-Consul-* headers. A 404
	// without them is not Consul's KV store answering (a wrong address, a
	// proxy) and stays an error.
	missing := resp.code == http.StatusNotFound && resp.header.Get("X-Consul-Index") != ""
	if !missing {
		if err := c.ok(req, resp); err != nil {
			return nil, QueryMeta{}, err
		}
	}
	meta, err := parseQueryMeta(resp.header)
	if err != nil {
		return nil, QueryMeta{}, decodeErr(req, err)
	}
	if missing {
		return nil, meta, nil
	}
	pairs, err := decodeKVList(resp.body)
	if err != nil {
		return nil, QueryMeta{}, decodeErr(req, err)
	}
	return pairs, meta, nil
}

// decodeKVList decodes GET /v1/kv's array; Value is base64 or null.
func decodeKVList(b []byte) ([]KVPair, error) {
	var pairs []KVPair
	if err := decodeJSON(b, &pairs); err != nil {
		return nil, err
	}
	return pairs, nil
}

// Acquire writes value to key and locks it for session, if no other session
// holds it and no lock-delay is running. Consul's answer is the result:
// false is not an error. Acquiring a key the session already holds is true
// and updates the value. An unknown session gives an error matching
// ErrSessionNotFound.
func (c *Client) Acquire(ctx context.Context, key, session string, value []byte) (bool, error) {
	return c.lockOp(ctx, "acquire", key, session, value)
}

// Release unlocks key if session holds it, writing value as the key's new
// value (Consul writes the body on release). No lock-delay follows.
func (c *Client) Release(ctx context.Context, key, session string, value []byte) (bool, error) {
	return c.lockOp(ctx, "release", key, session, value)
}

func (c *Client) lockOp(ctx context.Context, op, key, session string, value []byte) (bool, error) {
	path, err := kvPath(key)
	if err == nil && session == "" {
		err = errors.New("empty session ID")
	}
	if err != nil {
		return false, fmt.Errorf("consul: %s key: %w", op, err)
	}
	req := call{method: http.MethodPut, path: path, query: url.Values{op: {session}}, body: value, raw: true}
	ok, err := c.writeBool(ctx, req, false)
	var se *StatusError
	if errors.As(err, &se) && se.Code == http.StatusInternalServerError && strings.Contains(se.Body, `invalid session "`) {
		return false, sessionNotFound(se)
	}
	return ok, err
}

// PutKV writes value to key unconditionally. On a locked key this keeps the
// lock holder but resets LockIndex to 0 (Consul's behaviour).
func (c *Client) PutKV(ctx context.Context, key string, value []byte) error {
	path, err := kvPath(key)
	if err != nil {
		return fmt.Errorf("consul: put key: %w", err)
	}
	_, err = c.writeBool(ctx, call{method: http.MethodPut, path: path, body: value, raw: true}, true)
	return err
}

// CASKV writes value to key only if the key's ModifyIndex is index (0: only
// if the key does not exist). false means someone else wrote first.
func (c *Client) CASKV(ctx context.Context, key string, value []byte, index uint64) (bool, error) {
	path, err := kvPath(key)
	if err != nil {
		return false, fmt.Errorf("consul: cas key: %w", err)
	}
	req := call{method: http.MethodPut, path: path, query: casQuery(index), body: value, raw: true}
	return c.writeBool(ctx, req, false)
}

// DeleteKV deletes key; deleting a missing key is not an error.
func (c *Client) DeleteKV(ctx context.Context, key string) error {
	path, err := kvPath(key)
	if err != nil {
		return fmt.Errorf("consul: delete key: %w", err)
	}
	_, err = c.writeBool(ctx, call{method: http.MethodDelete, path: path}, true)
	return err
}

// DeleteCASKV deletes key only if its ModifyIndex is index. Consul answers
// true for a key that is already gone.
func (c *Client) DeleteCASKV(ctx context.Context, key string, index uint64) (bool, error) {
	path, err := kvPath(key)
	if err != nil {
		return false, fmt.Errorf("consul: delete key: %w", err)
	}
	return c.writeBool(ctx, call{method: http.MethodDelete, path: path, query: casQuery(index)}, false)
}

func casQuery(index uint64) url.Values {
	return url.Values{"cas": {strconv.FormatUint(index, 10)}}
}

// writeBool sends a write whose answer is true or false. With mustBeTrue,
// false is an error (for writes Consul documents as always true).
func (c *Client) writeBool(ctx context.Context, req call, mustBeTrue bool) (bool, error) {
	resp, err := c.do(ctx, req)
	if err != nil {
		return false, err
	}
	if err := c.ok(req, resp); err != nil {
		return false, err
	}
	ok, err := decodeBool(resp.body)
	if err != nil {
		return false, decodeErr(req, err)
	}
	if mustBeTrue && !ok {
		return false, decodeErr(req, errors.New("Consul answered false"))
	}
	return ok, nil
}
