package consulhttp

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The fuzz targets feed the decoders what a broken or hostile server could
// send. They must never panic, and what they accept must survive a round
// trip through Consul's own encoding. The seed corpus (real Consul 1.16.3
// answers and edge cases) is in testdata/fuzz/<FuzzName>/; plain `go test`
// runs it. Explore with e.g. go test -run '^$' -fuzz FuzzDecodeKVList -fuzztime 30s ./consulhttp

func FuzzDecodeKVList(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		pairs, err := decodeKVList(body)
		if err != nil {
			return
		}
		again, err := json.Marshal(pairs) // Value as base64, nil as null: Consul's form
		if err != nil {
			t.Fatalf("re-encode %+v: %v", pairs, err)
		}
		back, err := decodeKVList(again)
		if err != nil {
			t.Fatalf("decode of our own encoding %s: %v", again, err)
		}
		if diff := cmp.Diff(pairs, back); diff != "" {
			t.Errorf("round trip of %q (-first +second):\n%s", body, diff)
		}
	})
}

func FuzzDecodeSessions(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		sessions, err := decodeSessions(body)
		if err != nil {
			return
		}
		// Encode as Consul does: LockDelay in nanoseconds, TTL a string.
		wire := make([]sessionWire, len(sessions))
		for i, s := range sessions {
			wire[i] = sessionWire{
				ID: s.ID, Name: s.Name, Node: s.Node, Behavior: s.Behavior,
				LockDelay:  json.RawMessage(strconv.FormatInt(int64(s.LockDelay), 10)),
				NodeChecks: s.NodeChecks, ServiceChecks: s.ServiceChecks,
				CreateIndex: s.CreateIndex, ModifyIndex: s.ModifyIndex,
			}
			if s.TTL != 0 {
				wire[i].TTL = s.TTL.String()
			}
		}
		again, err := json.Marshal(wire)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", sessions, err)
		}
		back, err := decodeSessions(again)
		if err != nil {
			t.Fatalf("decode of Consul's encoding %s: %v", again, err)
		}
		if diff := cmp.Diff(sessions, back); diff != "" {
			t.Errorf("round trip of %q (-first +second):\n%s", body, diff)
		}
	})
}

func FuzzParseQueryMeta(f *testing.F) {
	f.Fuzz(func(t *testing.T, index, knownLeader, lastContact string) {
		h := http.Header{}
		for name, v := range map[string]string{"X-Consul-Index": index, "X-Consul-KnownLeader": knownLeader, "X-Consul-LastContact": lastContact} {
			if v != "" {
				h.Set(name, v)
			}
		}
		m, err := parseQueryMeta(h)
		if err != nil {
			if m != (QueryMeta{}) {
				t.Errorf("error %v with non-zero meta %+v", err, m)
			}
			return
		}
		// What was accepted reads back the same from Consul's own format.
		h2 := http.Header{}
		h2.Set("X-Consul-Index", strconv.FormatUint(m.LastIndex, 10))
		h2.Set("X-Consul-KnownLeader", strconv.FormatBool(m.KnownLeader))
		h2.Set("X-Consul-LastContact", strconv.FormatInt(m.LastContact.Milliseconds(), 10))
		m2, err := parseQueryMeta(h2)
		if err != nil || m2 != m {
			t.Errorf("round trip of %+v: got %+v, %v", m, m2, err)
		}
		if n, err := strconv.ParseUint(index, 10, 64); err == nil && m.LastIndex != n {
			t.Errorf("X-Consul-Index %q read as %d", index, m.LastIndex)
		}
	})
}
