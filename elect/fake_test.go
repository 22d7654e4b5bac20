package elect

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// fakeConsul is an in-process Consul for tests inside synctest bubbles. It
// follows CONSUL_API.md: sessions expire 2×TTL after the last renew, destroy
// and expiry invalidate (release/delete held keys, start lock-delay),
// same-session re-acquire is true, release writes the body as the value,
// a missing key reads as nil with an index. Unknown behaviour fails the test.
type fakeConsul struct {
	t *testing.T

	mu       sync.Mutex
	index    uint64
	kv       map[string]*consulhttp.KVPair
	sessions map[string]*fakeSession
	checks   map[string]*fakeCheck
	delay    map[string]time.Time // key → lock-delay end
	changed  chan struct{}
	nextID   int
	down     bool                  // every request fails like a cut network
	fail     func(op string) error // injected answer for op, nil: normal
	calls    map[string]int
	acquires []string // "session@time" of every acquire, for failure messages
	minTTL   time.Duration
}

type fakeSession struct {
	req   consulhttp.SessionRequest
	timer *time.Timer
}

type fakeCheck struct {
	ttl    time.Duration
	status string
	timer  *time.Timer
}

// newFake returns a fake whose election keys ("services/web/leader" and
// "k") exist, free, as a graceful release leaves them: a missing key makes
// candidates wait a lease window (TestMissingKeyWaitsALeaseWindow).
func newFake(t *testing.T) *fakeConsul {
	f := newEmptyFake(t)
	f.put("services/web/leader", []byte(`{"released":true}`))
	f.put("k", []byte(`{"released":true}`))
	return f
}

func newEmptyFake(t *testing.T) *fakeConsul {
	f := &fakeConsul{
		t: t, index: 1,
		kv:       map[string]*consulhttp.KVPair{},
		sessions: map[string]*fakeSession{},
		checks:   map[string]*fakeCheck{},
		delay:    map[string]time.Time{},
		changed:  make(chan struct{}),
		calls:    map[string]int{},
		minTTL:   time.Second,
	}
	// The node's own check: always passing, never expires.
	f.checks["serfHealth"] = &fakeCheck{status: consulhttp.StatusPassing, timer: time.NewTimer(time.Hour)}
	return f
}

var errCut = &consulhttp.RequestError{Method: "GET", Path: "/", Err: fmt.Errorf("connection refused")}

// enter counts the call and returns the injected error, if any. Caller holds mu.
func (f *fakeConsul) enter(op string) error {
	f.calls[op]++
	if f.down {
		return errCut
	}
	if f.fail != nil {
		return f.fail(op)
	}
	return nil
}

func (f *fakeConsul) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

func (f *fakeConsul) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *fakeConsul) bump() uint64 {
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
	return f.index
}

func (f *fakeConsul) CreateSession(ctx context.Context, r consulhttp.SessionRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("create"); err != nil {
		return "", err
	}
	if r.TTL != 0 && (r.TTL < f.minTTL || r.TTL > 24*time.Hour) {
		return "", &consulhttp.StatusError{Method: "PUT", Path: "/v1/session/create", Code: 500, Body: "Invalid Session TTL"}
	}
	for _, c := range r.NodeChecks {
		chk, ok := f.checks[c]
		if !ok {
			return "", &consulhttp.StatusError{Method: "PUT", Path: "/v1/session/create", Code: 500, Body: fmt.Sprintf("Missing check '%s' registration", c)}
		}
		if chk.status == consulhttp.StatusCritical {
			return "", &consulhttp.StatusError{Method: "PUT", Path: "/v1/session/create", Code: 500, Body: fmt.Sprintf("Check '%s' is in critical state", c)}
		}
	}
	if r.NodeChecks == nil {
		f.t.Errorf("session create without NodeChecks: Consul would bind serfHealth")
	}
	f.nextID++
	id := fmt.Sprintf("sess-%d", f.nextID)
	s := &fakeSession{req: r}
	if r.TTL > 0 {
		s.timer = time.AfterFunc(2*r.TTL, func() { f.invalidate(id) })
	}
	f.sessions[id] = s
	f.bump()
	return id, nil
}

func (f *fakeConsul) RenewSession(ctx context.Context, id string) (*consulhttp.SessionEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("renew"); err != nil {
		return nil, err
	}
	s, ok := f.sessions[id]
	if !ok {
		return nil, consulhttp.ErrSessionNotFound
	}
	if s.timer != nil {
		s.timer.Reset(2 * s.req.TTL)
	}
	return &consulhttp.SessionEntry{ID: id, TTL: s.req.TTL, LockDelay: s.req.LockDelay}, nil
}

func (f *fakeConsul) DestroySession(ctx context.Context, id string) error {
	f.mu.Lock()
	if err := f.enter("destroy"); err != nil {
		f.mu.Unlock()
		return err
	}
	f.mu.Unlock()
	f.invalidate(id)
	return nil
}

// invalidate ends a session as Consul does on destroy, TTL expiry or a
// critical check: held keys are released (or deleted) under lock-delay.
func (f *fakeConsul) invalidate(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[id]
	if !ok {
		return
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	delete(f.sessions, id)
	for k, p := range f.kv {
		if p.Session != id {
			continue
		}
		if s.req.LockDelay > 0 {
			f.delay[k] = time.Now().Add(min(s.req.LockDelay, 60*time.Second))
		}
		if s.req.Behavior == "delete" {
			delete(f.kv, k)
		} else {
			p.Session = ""
			p.ModifyIndex = f.index + 1
		}
	}
	f.bump()
}

// blockingTimeout is when a blocking query with q returns unchanged, as
// Consul does (a wait of 0 is 5 minutes); nil when q does not block.
func blockingTimeout(q consulhttp.QueryOptions) <-chan time.Time {
	if q.Index == 0 {
		return nil
	}
	wait := q.Wait
	if wait <= 0 {
		wait = 5 * time.Minute
	}
	return time.After(wait)
}

func (f *fakeConsul) GetKV(ctx context.Context, key string, q consulhttp.QueryOptions) (*consulhttp.KVPair, consulhttp.QueryMeta, error) {
	f.mu.Lock()
	if err := f.enter("get"); err != nil {
		f.mu.Unlock()
		return nil, consulhttp.QueryMeta{}, err
	}
	timeout := blockingTimeout(q)
	for {
		p, ok := f.kv[key]
		idx := f.index
		if ok {
			idx = p.ModifyIndex
		}
		if q.Index == 0 || idx > q.Index {
			var out *consulhttp.KVPair
			if ok {
				c := *p
				out = &c
			}
			f.mu.Unlock()
			return out, consulhttp.QueryMeta{LastIndex: idx, KnownLeader: true}, nil
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, consulhttp.QueryMeta{}, ctx.Err()
		case <-timeout:
			f.mu.Lock()
			if f.down {
				f.mu.Unlock()
				return nil, consulhttp.QueryMeta{}, errCut
			}
			q.Index = 0 // answer with the current state
			continue
		case <-ch:
		}
		f.mu.Lock()
		if f.down {
			f.mu.Unlock()
			return nil, consulhttp.QueryMeta{}, errCut
		}
	}
}

func (f *fakeConsul) Acquire(ctx context.Context, key, session string, value []byte) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.acquireLocked(key, session, value)
}

// acquireLocked is an acquire, by ?acquire= or by a txn's lone lock op
// (how elect takes the key). Caller holds mu.
func (f *fakeConsul) acquireLocked(key, session string, value []byte) (bool, error) {
	f.acquires = append(f.acquires, session+"@"+time.Now().Format("05.000"))
	if err := f.enter("acquire"); err != nil {
		return false, err
	}
	if _, ok := f.sessions[session]; !ok {
		// As consulhttp.Client.Acquire reports Consul's answer.
		se := &consulhttp.StatusError{Method: "PUT", Path: "/v1/kv/" + key, Code: 500, Body: fmt.Sprintf("invalid session %q", session)}
		return false, fmt.Errorf("%w (%w)", consulhttp.ErrSessionNotFound, se)
	}
	p, ok := f.kv[key]
	switch {
	case ok && p.Session == session:
		p.Value = value
		p.ModifyIndex = f.bump()
		return true, nil
	case ok && p.Session != "":
		return false, nil
	case time.Now().Before(f.delay[key]):
		return false, nil
	}
	idx := f.bump()
	if !ok {
		p = &consulhttp.KVPair{Key: key, CreateIndex: idx}
		f.kv[key] = p
	}
	p.Value, p.Session, p.ModifyIndex = value, session, idx
	p.LockIndex++
	return true, nil
}

func (f *fakeConsul) Release(ctx context.Context, key, session string, value []byte) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("release"); err != nil {
		return false, err
	}
	p, ok := f.kv[key]
	if !ok || p.Session != session {
		return false, nil
	}
	p.Session, p.Value, p.ModifyIndex = "", value, f.bump()
	return true, nil
}

// put is a plain write by somebody else (an operator).
func (f *fakeConsul) put(key string, value []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.kv[key]
	idx := f.bump()
	if !ok {
		p = &consulhttp.KVPair{Key: key, CreateIndex: idx}
		f.kv[key] = p
	}
	p.Value, p.ModifyIndex, p.LockIndex = value, idx, 0
}

func (f *fakeConsul) RegisterCheck(ctx context.Context, chk consulhttp.AgentCheck) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("register_check"); err != nil {
		return err
	}
	ttl, err := time.ParseDuration(chk.TTL)
	if err != nil {
		f.t.Errorf("register check with TTL %q: %v", chk.TTL, err)
		return &consulhttp.StatusError{Code: 400, Body: "bad ttl"}
	}
	status := chk.Status
	if old, ok := f.checks[chk.CheckID]; ok {
		old.timer.Stop()
		status = old.status // as Consul does: a re-registered check keeps its status
	}
	c := &fakeCheck{ttl: ttl, status: status}
	id := chk.CheckID
	c.timer = time.AfterFunc(ttl, func() { f.critical(id) })
	f.checks[id] = c
	return nil
}

func (f *fakeConsul) critical(id string) {
	f.mu.Lock()
	c, ok := f.checks[id]
	if ok {
		c.status = consulhttp.StatusCritical
	}
	var bound []string
	for sid, s := range f.sessions {
		for _, n := range s.req.NodeChecks {
			if n == id {
				bound = append(bound, sid)
			}
		}
	}
	f.mu.Unlock()
	for _, sid := range bound {
		f.invalidate(sid)
	}
}

func (f *fakeConsul) DeregisterCheck(ctx context.Context, id string) error {
	f.mu.Lock()
	if err := f.enter("deregister_check"); err != nil {
		f.mu.Unlock()
		return err
	}
	if c, ok := f.checks[id]; ok {
		c.timer.Stop()
	}
	f.mu.Unlock()
	f.critical(id)
	f.mu.Lock()
	delete(f.checks, id)
	f.mu.Unlock()
	return nil
}

func (f *fakeConsul) UpdateTTL(ctx context.Context, checkID, status, output string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("update_ttl"); err != nil {
		return err
	}
	c, ok := f.checks[checkID]
	if !ok {
		se := &consulhttp.StatusError{Method: "PUT", Path: "/v1/agent/check/update/" + checkID, Code: http.StatusNotFound, Body: "Unknown check ID"}
		return fmt.Errorf("%w (%w)", consulhttp.ErrCheckNotFound, se) // as consulhttp.Client.UpdateTTL reports it
	}
	c.status = status
	c.timer.Reset(c.ttl)
	return nil
}

var _ Consul = (*fakeConsul)(nil)
