package nomadfake

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
)

// Error texts Nomad answers with (structs.ErrPermissionDenied,
// structs.ErrTokenNotFound, agent.ErrInvalidMethod, the Task API's
// http.StatusText(401) and the variable endpoint's own).
const (
	msgPermissionDenied = "Permission denied"
	msgTokenNotFound    = "ACL token not found"
	msgInvalidMethod    = "Invalid method"
	msgUnauthorized     = "Unauthorized" // the Task API without a token
	msgNotFound         = "variable not found"
	msgMissingItems     = "variable missing required Items object"
	msgMissingPath      = "missing variable path"
)

// reply is what a handler produced; ServeHTTP writes it like Nomad's wrap.
type reply struct {
	code   int
	body   any    // JSON-encoded when non-nil
	text   string // plain-text error when code >= 400 and body == nil
	header http.Header
}

// Handler serves the Variables API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/vars", s.serve(s.list))
	mux.HandleFunc("/v1/var/", s.serve(s.variable))
	return mux
}

func (s *Server) serve(h func(*http.Request, string, []Rule, bool) reply) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		hook := s.onReq
		s.mu.Unlock()
		if hook != nil {
			hook(r)
		}
		token := r.Header.Get("X-Nomad-Token")
		if token == "" {
			token, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		network, _ := r.Context().Value(networkKey{}).(string)
		rules, known, aclOn := s.resolve(token)
		var rep reply
		switch {
		case network == "unix" && token == "":
			rep = reply{code: http.StatusUnauthorized, text: msgUnauthorized}
		case aclOn && !known:
			rep = reply{code: http.StatusForbidden, text: msgTokenNotFound}
		default:
			rep = h(r, nsOrDefault(r.URL.Query().Get("namespace")), rules, aclOn)
		}
		s.write(w, r, rep)
		s.mu.Lock()
		s.log = append(s.log, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
			HasToken: token != "", Code: rep.code, Network: network})
		s.mu.Unlock()
	}
}

// resolve returns the rules of a token, whether it is known, and whether
// ACLs are on. An empty token is the anonymous one, always known.
func (s *Server) resolve(token string) ([]Rule, bool, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.acl {
		return nil, true, false
	}
	if token == "" {
		return s.anon, true, true
	}
	rules, ok := s.tokens[token]
	return rules, ok, true
}

func can(aclOn bool, rules []Rule, ns, path, capability string) bool {
	return !aclOn || allowed(rules, ns, path, capability)
}

// write mirrors Nomad's HTTP wrap plus its gzip compress handler: JSON
// bodies as application/json, errors as text/plain, gzip when accepted.
func (s *Server) write(w http.ResponseWriter, r *http.Request, rep reply) {
	for k, v := range rep.header {
		w.Header()[k] = v
	}
	var body []byte
	switch {
	case rep.body != nil:
		body, _ = json.Marshal(rep.body)
		if rep.code != http.StatusConflict {
			// Nomad writes 409 before setting Content-Type, so
			// its conflicts go out sniffed, not as JSON.
			w.Header().Set("Content-Type", "application/json")
		}
	case rep.text != "":
		body = []byte(rep.text)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	if len(body) > 0 && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(body)
		zw.Close()
		body = buf.Bytes()
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Vary", "Accept-Encoding")
	}
	w.WriteHeader(rep.code)
	w.Write(body)
}

func queryMeta(index uint64) http.Header {
	return http.Header{
		"X-Nomad-Index":       {strconv.FormatUint(index, 10)},
		"X-Nomad-Knownleader": {"true"},
		"X-Nomad-Lastcontact": {"0"},
	}
}

func writeMeta(index uint64) http.Header {
	return http.Header{"X-Nomad-Index": {strconv.FormatUint(index, 10)}}
}

func (s *Server) variable(r *http.Request, ns string, rules []Rule, aclOn bool) reply {
	path := strings.TrimPrefix(r.URL.Path, "/v1/var/")
	if path == "" {
		return reply{code: http.StatusBadRequest, text: msgMissingPath}
	}
	switch r.Method {
	case http.MethodGet:
		return s.read(r, ns, path, rules, aclOn)
	case http.MethodPut, http.MethodPost:
		return s.upsert(r, ns, path, rules, aclOn)
	case http.MethodDelete:
		return s.delete(r, ns, path, rules, aclOn)
	default:
		return reply{code: http.StatusBadRequest, text: msgInvalidMethod}
	}
}

// parseCAS reads ?cas= like Nomad: present means check-and-set.
func parseCAS(r *http.Request) (bool, uint64, *reply) {
	c := r.URL.Query().Get("cas")
	if c == "" {
		return false, 0, nil
	}
	n, err := strconv.ParseUint(c, 10, 64)
	if err != nil {
		return true, 0, &reply{code: http.StatusBadRequest, text: "can not parse cas: " + err.Error()}
	}
	return true, n, nil
}

func (s *Server) read(r *http.Request, ns, path string, rules []Rule, aclOn bool) reply {
	if !can(aclOn, rules, ns, path, CapRead) {
		return reply{code: http.StatusForbidden, text: msgPermissionDenied}
	}
	if rep := s.block(r, func() uint64 {
		if v, ok := s.vars[key{ns, path}]; ok {
			return v.ModifyIndex
		}
		return s.varIndex
	}); rep != nil {
		return *rep
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vars[key{ns, path}]
	if !ok {
		return reply{code: http.StatusNotFound, text: msgNotFound, header: queryMeta(s.varIndex)}
	}
	return reply{code: http.StatusOK, body: v.Copy(), header: queryMeta(v.ModifyIndex)}
}

// block implements ?index=&wait=: wait until the watched index passes the
// given one, or wait elapses (Nomad's default 5m, capped at 10m).
func (s *Server) block(r *http.Request, index func() uint64) *reply {
	q := r.URL.Query()
	var after uint64
	if v := q.Get("index"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return &reply{code: http.StatusBadRequest, text: "Invalid index"}
		}
		after = n
	}
	wait := 5 * time.Minute
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return &reply{code: http.StatusBadRequest, text: "Invalid wait time"}
		}
		if d > 0 {
			wait = min(d, 10*time.Minute)
		}
	}
	if after == 0 {
		return nil
	}
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for {
		s.mu.Lock()
		idx, ch := index(), s.changed
		s.mu.Unlock()
		if idx > after {
			return nil
		}
		if s.onBlock != nil {
			s.onBlock()
		}
		select {
		case <-ch:
		case <-timeout.C:
			return nil
		case <-r.Context().Done():
			return nil
		}
	}
}

func (s *Server) upsert(r *http.Request, ns, path string, rules []Rule, aclOn bool) reply {
	var in api.Variable
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		return reply{code: http.StatusBadRequest, text: err.Error()}
	}
	if len(in.Items) == 0 {
		return reply{code: http.StatusBadRequest, text: msgMissingItems}
	}
	isCAS, check, bad := parseCAS(r)
	if bad != nil {
		return *bad
	}
	if in.Namespace != "" {
		ns = in.Namespace // the body's namespace wins, as in Variables.Apply
	}
	if !can(aclOn, rules, ns, path, CapWrite) {
		return reply{code: http.StatusForbidden, text: msgPermissionDenied}
	}
	if err := validatePath(path); err != nil {
		// 400 since Nomad 1.7.0 (Variables.Apply's
		// canonicalizeAndValidate); 1.5 and 1.6 answered 500.
		return reply{code: http.StatusBadRequest, text: err.Error()}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, exists := s.vars[key{ns, path}]
	if isCAS && (check == 0 && exists || check != 0 && (!exists || cur.ModifyIndex != check)) {
		return s.conflictLocked(ns, path, cur, can(aclOn, rules, ns, path, CapRead))
	}
	v := s.setLocked(ns, path, in.Items)
	return reply{code: http.StatusOK, body: v, header: writeMeta(v.ModifyIndex)}
}

// conflictLocked answers a failed check-and-set like Nomad: 409, the
// current variable as body (a zero value with namespace and path when it
// doesn't exist; no items when the caller may not read it), and its
// ModifyIndex as X-Nomad-Index. The failed apply still used a raft index.
func (s *Server) conflictLocked(ns, path string, cur *api.Variable, canRead bool) reply {
	s.bumpLocked()
	c := &api.Variable{Namespace: ns, Path: path}
	if cur != nil {
		c = cur.Copy()
		if !canRead {
			c.Items = nil
		}
	}
	return reply{code: http.StatusConflict, body: c, header: writeMeta(c.ModifyIndex)}
}

func (s *Server) delete(r *http.Request, ns, path string, rules []Rule, aclOn bool) reply {
	isCAS, check, bad := parseCAS(r)
	if bad != nil {
		return *bad
	}
	if !can(aclOn, rules, ns, path, CapDestroy) {
		return reply{code: http.StatusForbidden, text: msgPermissionDenied}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, exists := s.vars[key{ns, path}]
	if isCAS && (check == 0 && exists || check != 0 && (!exists || cur.ModifyIndex != check)) {
		return s.conflictLocked(ns, path, cur, can(aclOn, rules, ns, path, CapRead))
	}
	idx := s.bumpLocked()
	if exists {
		delete(s.vars, key{ns, path})
		s.changedLocked(idx)
	}
	return reply{code: http.StatusNoContent, header: writeMeta(idx)}
}

func (s *Server) list(r *http.Request, ns string, rules []Rule, aclOn bool) reply {
	if r.Method != http.MethodGet {
		return reply{code: http.StatusMethodNotAllowed, text: msgInvalidMethod}
	}
	if rep := s.block(r, func() uint64 { return s.varIndex }); rep != nil {
		return *rep
	}
	prefix := r.URL.Query().Get("prefix")
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []*api.VariableMetadata{}
	for k, v := range s.vars {
		if (ns != "*" && k.ns != ns) || !strings.HasPrefix(k.path, prefix) || !can(aclOn, rules, k.ns, k.path, CapList) {
			continue
		}
		out = append(out, v.Metadata())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Path < out[j].Path
	})
	return reply{code: http.StatusOK, body: out, header: queryMeta(s.varIndex)}
}
