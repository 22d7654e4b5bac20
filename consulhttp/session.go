package consulhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// sessionCreateBody is what PUT /v1/session/create gets. NodeChecks and
// ServiceChecks use omitzero: nil is left out (Consul's default, serfHealth)
// while a non-nil empty slice is sent as [] (no checks). LockDelay is always
// sent: left out, it means 15s.
type sessionCreateBody struct {
	Name          string `json:",omitempty"`
	Node          string `json:",omitempty"`
	TTL           string `json:",omitempty"`
	LockDelay     string
	Behavior      string         `json:",omitempty"`
	NodeChecks    []string       `json:",omitzero"`
	ServiceChecks []ServiceCheck `json:",omitzero"`
}

// lockDelayMinThreshold mirrors Consul's quirk (agent/structs): a LockDelay
// below 1000 in Consul's units is taken as seconds, so "999ns" would mean
// 999 seconds.
const lockDelayMinThreshold = 1000 * time.Nanosecond

func (r SessionRequest) body() ([]byte, error) {
	var errs []error
	if r.TTL < 0 {
		errs = append(errs, fmt.Errorf("session TTL %s: must not be negative", r.TTL))
	}
	if r.LockDelay < 0 || (r.LockDelay > 0 && r.LockDelay < lockDelayMinThreshold) {
		errs = append(errs, fmt.Errorf("session LockDelay %s: want 0 or at least 1µs (Consul reads smaller values as seconds)", r.LockDelay))
	}
	switch r.Behavior {
	case "", "release", "delete":
	default:
		errs = append(errs, fmt.Errorf("session Behavior %q: want release or delete", r.Behavior))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	b := sessionCreateBody{
		Name:          r.Name,
		Node:          r.Node,
		LockDelay:     r.LockDelay.String(), // "0s" when zero
		Behavior:      r.Behavior,
		NodeChecks:    r.NodeChecks,
		ServiceChecks: r.ServiceChecks,
	}
	if r.TTL > 0 {
		b.TTL = r.TTL.String()
	}
	return json.Marshal(b)
}

// CreateSession creates a session and returns its ID.
func (c *Client) CreateSession(ctx context.Context, r SessionRequest) (string, error) {
	body, err := r.body()
	if err != nil {
		return "", fmt.Errorf("consul: create session: %w", err)
	}
	req := call{method: http.MethodPut, path: "/v1/session/create", body: body}
	resp, err := c.do(ctx, req)
	if err != nil {
		return "", err
	}
	if err := c.ok(req, resp); err != nil {
		return "", err
	}
	var out struct{ ID string }
	if err := decodeJSON(resp.body, &out); err != nil {
		return "", decodeErr(req, err)
	}
	if out.ID == "" {
		return "", decodeErr(req, errors.New("no session ID in the answer"))
	}
	return out.ID, nil
}

// RenewSession resets a TTL session's timer and returns the session. An
// unknown or expired session gives an error matching ErrSessionNotFound
// (the *StatusError stays reachable with errors.As).
func (c *Client) RenewSession(ctx context.Context, id string) (*SessionEntry, error) {
	seg, err := pathSegment("session ID", id)
	if err != nil {
		return nil, fmt.Errorf("consul: renew session: %w", err)
	}
	req := call{method: http.MethodPut, path: "/v1/session/renew/" + seg}
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp.code == http.StatusNotFound {
		return nil, sessionNotFound(c.statusError(req, resp))
	}
	if err := c.ok(req, resp); err != nil {
		return nil, err
	}
	// The answer is an array of one session.
	sessions, err := decodeSessions(resp.body)
	if err != nil {
		return nil, decodeErr(req, err)
	}
	if len(sessions) == 0 {
		return nil, fmt.Errorf("%w (consul: %s %s: empty answer)", ErrSessionNotFound, req.method, req.path)
	}
	return &sessions[0], nil
}

// DestroySession invalidates a session: its locks are released (or keys
// deleted, per Behavior) and lock-delay starts on them. Consul answers true
// even for an unknown ID, so destroying twice is fine.
func (c *Client) DestroySession(ctx context.Context, id string) error {
	seg, err := pathSegment("session ID", id)
	if err != nil {
		return fmt.Errorf("consul: destroy session: %w", err)
	}
	req := call{method: http.MethodPut, path: "/v1/session/destroy/" + seg}
	_, err = c.writeBool(ctx, req, true)
	return err
}

// SessionInfo reads a session; a missing one is nil (Consul answers 200 []
// for it, and also when the token may not read it). q may block.
func (c *Client) SessionInfo(ctx context.Context, id string, q QueryOptions) (*SessionEntry, QueryMeta, error) {
	seg, err := pathSegment("session ID", id)
	if err != nil {
		return nil, QueryMeta{}, fmt.Errorf("consul: session info: %w", err)
	}
	req := call{method: http.MethodGet, path: "/v1/session/info/" + seg, opts: &q}
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, QueryMeta{}, err
	}
	if err := c.ok(req, resp); err != nil {
		return nil, QueryMeta{}, err
	}
	meta, err := parseQueryMeta(resp.header)
	if err != nil {
		return nil, QueryMeta{}, decodeErr(req, err)
	}
	sessions, err := decodeSessions(resp.body)
	if err != nil {
		return nil, QueryMeta{}, decodeErr(req, err)
	}
	if len(sessions) == 0 {
		return nil, meta, nil
	}
	return &sessions[0], meta, nil
}

// sessionWire is a session as Consul writes it: TTL is a duration string
// ("10s"), LockDelay a number of nanoseconds (a string is accepted too, as
// Consul itself does).
type sessionWire struct {
	ID            string
	Name          string
	Node          string
	LockDelay     json.RawMessage
	Behavior      string
	TTL           string
	NodeChecks    []string
	ServiceChecks []ServiceCheck
	CreateIndex   uint64
	ModifyIndex   uint64
}

// decodeSessions decodes a JSON array of sessions (renew, info).
func decodeSessions(b []byte) ([]SessionEntry, error) {
	var wire []sessionWire
	if err := decodeJSON(b, &wire); err != nil {
		return nil, err
	}
	out := make([]SessionEntry, 0, len(wire))
	for _, w := range wire {
		e := SessionEntry{
			ID:            w.ID,
			Name:          w.Name,
			Node:          w.Node,
			Behavior:      w.Behavior,
			NodeChecks:    w.NodeChecks,
			ServiceChecks: w.ServiceChecks,
			CreateIndex:   w.CreateIndex,
			ModifyIndex:   w.ModifyIndex,
		}
		var err error
		if e.LockDelay, err = decodeLockDelay(w.LockDelay); err != nil {
			return nil, fmt.Errorf("session %q: LockDelay: %w", w.ID, err)
		}
		if w.TTL != "" {
			if e.TTL, err = time.ParseDuration(w.TTL); err != nil {
				return nil, fmt.Errorf("session %q: TTL: %w", w.ID, err)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func decodeLockDelay(raw json.RawMessage) (time.Duration, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
		if s == "" {
			return 0, nil
		}
		return time.ParseDuration(s)
	}
	ns, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s is not a number of nanoseconds", truncate(raw, 32))
	}
	return time.Duration(ns), nil
}

// pathSegment escapes an ID for use as one path segment. "." and ".."
// would be cleaned away by Consul's router (a redirect to another path).
func pathSegment(what, s string) (string, error) {
	switch s {
	case "":
		return "", fmt.Errorf("empty %s", what)
	case ".", "..":
		return "", fmt.Errorf("%s %q is not usable in a URL path", what, s)
	}
	return url.PathEscape(s), nil
}
