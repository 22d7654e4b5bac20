package elect

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// FuzzDecodeLeader feeds the leader record decoder whatever a key's value,
// session and index could be: another program's value, a truncated or
// hostile one. It must never panic; a key without a session is nobody's;
// the session and fencing token always come from Consul's fields, never
// from the value; what it reads from a value survives our own encoding; and
// the lock-delay it derives from a record stays within Consul's bounds.
// Seeds are in testdata/fuzz/FuzzDecodeLeader/; explore with
// go test -run '^$' -fuzz FuzzDecodeLeader -fuzztime 20s ./elect
func FuzzDecodeLeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, value []byte, session string, modifyIndex uint64, fallbackMS int64) {
		if decodeLeader(nil) != nil {
			t.Fatal("decodeLeader(nil) is a leader")
		}
		p := &consulhttp.KVPair{Key: "services/x/leader", Value: value, Session: session, ModifyIndex: modifyIndex}
		l := decodeLeader(p)
		if (l == nil) != (session == "") {
			t.Fatalf("session %q gave leader %+v", session, l)
		}
		if l != nil {
			if l.Session != session || l.Token != modifyIndex {
				t.Errorf("leader session %q token %d, want Consul's %q %d (never the value's)", l.Session, l.Token, session, modifyIndex)
			}
			// What we read survives our own encoding of it.
			again, err := json.Marshal(record{Candidate: l.Candidate, AcquiredAt: l.Since})
			if err == nil {
				back := decodeLeader(&consulhttp.KVPair{Value: again, Session: session, ModifyIndex: modifyIndex})
				if !sameLeader(l, back) {
					t.Errorf("re-decoding %s gave %+v, want %+v", again, back, l)
				}
			} else if l.Since.Year() >= 0 && l.Since.Year() <= 9999 && l.StartedAt.Year() >= 0 && l.StartedAt.Year() <= 9999 {
				t.Errorf("cannot re-encode %+v: %v", l, err)
			}
		}

		fallback := time.Duration(fallbackMS%60_001) * time.Millisecond
		if fallback < 0 {
			fallback = -fallback
		}
		if d := lockDelayOf(p, fallback); d < 0 || d > MaxLockDelay {
			t.Errorf("lock-delay %v from value %q (fallback %v), want within [0, %v]", d, value, fallback, MaxLockDelay)
		}
	})
}

// TestLockDelayOfHugeRecord: FuzzDecodeLeader found that a huge
// lock_delay_ms overflowed into a negative delay.
func TestLockDelayOfHugeRecord(t *testing.T) {
	for _, ms := range []int64{60_000, 9223372036855, 1 << 62, 9223372036854775807} {
		v, _ := json.Marshal(record{LockDelayMS: ms})
		if d := lockDelayOf(&consulhttp.KVPair{Value: v}, 0); d != MaxLockDelay {
			t.Errorf("lock_delay_ms %d gave %v, want %v", ms, d, MaxLockDelay)
		}
	}
}

func sameLeader(a, b *Leader) bool {
	if a == nil || b == nil {
		return a == b
	}
	ca, cb := a.Candidate, b.Candidate
	return ca.ID == cb.ID && ca.Name == cb.Name && ca.Address == cb.Address && ca.AllocID == cb.AllocID &&
		ca.Node == cb.Node && ca.StartedAt.Equal(cb.StartedAt) && a.Since.Equal(b.Since) &&
		a.Session == b.Session && a.Token == b.Token
}
