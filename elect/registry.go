package elect

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// The candidate registry: every candidate of an Election keeps an entry
// under CandidatesPrefix(key), locked with its own session, so that an
// entry whose candidate died is released with its session. Nothing polls
// the registry: followers read it once when the key becomes free (to take
// their turn in rank order, see Rank), the leader watches it only while it
// leads (for transfer requests and candidates of a higher priority), and
// `leaderd leader -candidates` reads it on demand.

// CandidatesPrefix is the registry prefix of the election on key.
func CandidatesPrefix(key string) string { return key + "/candidates/" }

// TransferKey is where a transfer request for the election on key is
// written (RequestTransfer): the leader watches it.
func TransferKey(key string) string { return key + "/transfer" }

// candidateKey is the registry entry of the candidate id.
func candidateKey(key, id string) string { return CandidatesPrefix(key) + id }

// CandidateEntry is one candidate as registered: who it is, its priority,
// its session and since when it has been a candidate (its clock).
type CandidateEntry struct {
	Candidate
	Priority    int       `json:"priority"`
	Session     string    `json:"session"`
	Since       time.Time `json:"since"`
	LockDelayMS int64     `json:"lock_delay_ms"`
	// Live: the entry is held by its session (a dead candidate's entry is
	// released with its session and stays until the next leader prunes it).
	Live bool `json:"live"`
	// Leading: its session holds the key.
	Leading bool `json:"leading"`
	// index is the entry's ModifyIndex (pruning is a check-and-set).
	index uint64
}

// better orders candidates best first: higher priority, then longer
// waiting, then by id (a total order every reader agrees on).
func better(a, b CandidateEntry) int {
	switch {
	case a.Priority != b.Priority:
		return b.Priority - a.Priority
	case !a.Since.Equal(b.Since):
		return a.Since.Compare(b.Since)
	}
	return strings.Compare(a.ID, b.ID)
}

// parseRegistry decodes the entries under the prefix of key, best first
// (see better), marking who leads: the holder of the key p (nil: missing).
// Entries that are not valid JSON are skipped.
func parseRegistry(key string, pairs []consulhttp.KVPair, p *consulhttp.KVPair) []CandidateEntry {
	prefix := CandidatesPrefix(key)
	var out []CandidateEntry
	for _, kv := range pairs {
		if !strings.HasPrefix(kv.Key, prefix) {
			continue
		}
		var c CandidateEntry
		if json.Unmarshal(kv.Value, &c) != nil || c.ID == "" {
			continue
		}
		c.Live = kv.Session != "" && kv.Session == c.Session
		c.Leading = c.Live && p != nil && p.Session == c.Session
		c.index = kv.ModifyIndex
		out = append(out, c)
	}
	slices.SortFunc(out, better)
	return out
}

// successor is the best live candidate to hand the key to, other than
// session self: the one named to if it is given (nil if it is not live),
// else the best of all.
func successor(entries []CandidateEntry, self, to string) *CandidateEntry {
	for i := range entries {
		c := &entries[i]
		if !c.Live || c.Session == self {
			continue
		}
		if to == "" || c.ID == to {
			return c
		}
	}
	return nil
}

// Rank is the position of session self among the live candidates that do
// not hold the key, best first: 0 acquires a free key at once, each next
// one a step later. A session without an entry ranks after all of them.
func Rank(entries []CandidateEntry, self string) int {
	r := 0
	for _, c := range entries {
		if !c.Live || c.Leading {
			continue
		}
		if c.Session == self {
			return r
		}
		r++
	}
	return r
}

// Candidates reads the registry and the key of the election on key: every
// registered candidate, best first, with who leads marked, and the leader
// (nil: nobody).
func Candidates(ctx context.Context, c RegistryReader, key string) ([]CandidateEntry, *Leader, error) {
	p, _, err := c.GetKV(ctx, key, consulhttp.QueryOptions{})
	if err != nil {
		return nil, nil, err
	}
	pairs, _, err := c.ListKV(ctx, CandidatesPrefix(key), consulhttp.QueryOptions{})
	if err != nil {
		return nil, nil, err
	}
	return parseRegistry(key, pairs, p), decodeLeader(p), nil
}

// RegistryReader is what reading the registry needs; *consulhttp.Client
// satisfies it.
type RegistryReader interface {
	KVReader
	KVLister
}

// TransferRequest is the value of TransferKey(key): the leader hands over
// to To (an id; empty: the best other candidate) once it sees the request.
// A leader ignores requests written before its term began.
type TransferRequest struct {
	To    string    `json:"to,omitempty"`
	Nonce string    `json:"nonce"`
	At    time.Time `json:"at"` // the requester's clock, for people reading it
}

// KVWriter is what RequestTransfer needs; *consulhttp.Client satisfies it.
type KVWriter interface {
	PutKV(ctx context.Context, key string, value []byte) error
}

// RequestTransfer asks the current leader of the election on key to hand
// over to the candidate to (empty: the best other one), through a key the
// leader watches. It returns once the request is written; watch the key
// (Observe) to see the handover.
func RequestTransfer(ctx context.Context, c KVWriter, key, to string) (TransferRequest, error) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	req := TransferRequest{To: to, Nonce: hex.EncodeToString(b), At: time.Now()}
	val, _ := json.Marshal(req)
	if err := c.PutKV(ctx, TransferKey(key), val); err != nil {
		return req, fmt.Errorf("elect: write transfer request: %w", err)
	}
	return req, nil
}
