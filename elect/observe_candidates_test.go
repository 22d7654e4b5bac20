package elect

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"

	"github.com/leaderd/leaderd/consulhttp"
)

// listAnswers is a KVLister that gives its answers in order, checking the
// prefix and the index each query asks with, then blocks until ctx ends.
type listAnswers struct {
	t       *testing.T
	prefix  string
	answers []listAnswer
	asked   []uint64
}

type listAnswer struct {
	pairs []consulhttp.KVPair
	index uint64
	err   error
}

func (l *listAnswers) ListKV(ctx context.Context, prefix string, q consulhttp.QueryOptions) ([]consulhttp.KVPair, consulhttp.QueryMeta, error) {
	if prefix != l.prefix {
		l.t.Errorf("ListKV(%q), want %q", prefix, l.prefix)
	}
	l.asked = append(l.asked, q.Index)
	if len(l.answers) == 0 {
		<-ctx.Done()
		return nil, consulhttp.QueryMeta{}, ctx.Err()
	}
	a := l.answers[0]
	l.answers = l.answers[1:]
	return a.pairs, consulhttp.QueryMeta{LastIndex: a.index}, a.err
}

// TestObserveCandidates: fn sees the registry and the leader at once, again
// only when what it shows changes (not on a transfer request's write), and
// errors go to onErr and are retried after a backoff.
func TestObserveCandidates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const key = "svc/leader"
		entry := func(id, session string, prio int, holder string) consulhttp.KVPair {
			v, _ := json.Marshal(CandidateEntry{Candidate: Candidate{ID: id}, Priority: prio, Session: session})
			return consulhttp.KVPair{Key: CandidatesPrefix(key) + id, Value: v, Session: holder, ModifyIndex: 5}
		}
		held := func(id, session string, index uint64) consulhttp.KVPair {
			v, _ := json.Marshal(record{Candidate: Candidate{ID: id}})
			return consulhttp.KVPair{Key: key, Value: v, Session: session, ModifyIndex: index}
		}
		request := consulhttp.KVPair{Key: TransferKey(key), Value: []byte(`{"to":"b"}`)}
		aLeads := []consulhttp.KVPair{held("a", "sa", 7), entry("a", "sa", 0, "sa"), entry("b", "sb", 5, "sb")}
		bLeads := []consulhttp.KVPair{held("b", "sb", 12), entry("a", "sa", 0, "sa"), entry("b", "sb", 5, "sb")}
		l := &listAnswers{t: t, prefix: key, answers: []listAnswer{
			{pairs: aLeads, index: 10},
			{pairs: append(aLeads, request), index: 11}, // nothing fn shows changed
			{err: errors.New("boom")},
			{pairs: append(bLeads, request), index: 12},
		}}
		type seen struct {
			Leader string
			IDs    []string
			Live   []bool
			Leads  []bool
		}
		var got []seen
		var errs []string
		ctx, cancel := context.WithCancel(t.Context())
		err := ObserveCandidates(ctx, l, key, func(es []CandidateEntry, ld *Leader) bool {
			s := seen{}
			if ld != nil {
				s.Leader = ld.ID
			}
			for _, e := range es {
				s.IDs, s.Live, s.Leads = append(s.IDs, e.ID), append(s.Live, e.Live), append(s.Leads, e.Leading)
			}
			got = append(got, s)
			if len(got) == 2 {
				cancel()
			}
			return true
		}, func(err error, attempt int) { errs = append(errs, err.Error()) })
		if err != nil {
			t.Fatalf("ObserveCandidates: %v", err)
		}
		synctest.Wait() // the read cancel ended has returned
		want := []seen{
			{Leader: "a", IDs: []string{"b", "a"}, Live: []bool{true, true}, Leads: []bool{false, true}},
			{Leader: "b", IDs: []string{"b", "a"}, Live: []bool{true, true}, Leads: []bool{true, false}},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("calls (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"boom"}, errs); diff != "" {
			t.Errorf("onErr (-want +got):\n%s", diff)
		}
		// The error is a gap: the read after it starts over from index 0.
		// (A last query, which cancel ended, may follow.)
		if diff := cmp.Diff([]uint64{0, 10, 11, 0}, l.asked[:min(4, len(l.asked))]); diff != "" {
			t.Errorf("indexes asked (-want +got):\n%s", diff)
		}
	})
}
