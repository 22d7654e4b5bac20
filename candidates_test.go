package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/leaderd/leaderd/elect"
)

func TestCandidatesText(t *testing.T) {
	since := time.Date(2026, 12, 2, 8, 40, 1, 500, time.UTC)
	entry := func(id string, prio int, session string, live, leading bool) elect.CandidateEntry {
		return elect.CandidateEntry{Candidate: elect.Candidate{ID: id}, Priority: prio, Session: session, Since: since, Live: live, Leading: leading}
	}
	leaderB := &elect.Leader{Candidate: elect.Candidate{ID: "b"}, Session: "5f3e2a1b-0000-1111", Token: 42}
	tests := []struct {
		name   string
		es     []elect.CandidateEntry
		leader *elect.Leader
		want   string
	}{{
		name: "three, b leads",
		es: []elect.CandidateEntry{
			entry("b", 5, "5f3e2a1b-0000-1111", true, true),
			entry("web-long-id", 0, "0a0b0c0d-2222", true, false),
			entry("c", -1, "77777777-3333", false, false),
		},
		leader: leaderB,
		want: "ID           PRIORITY  LIVE  LEADING  SINCE                 SESSION\n" +
			"b            5         yes   yes      2026-12-02T08:40:01Z  5f3e2a1b\n" +
			"web-long-id  0         yes   no       2026-12-02T08:40:01Z  0a0b0c0d\n" +
			"c            -1        no    no       2026-12-02T08:40:01Z  77777777\n" +
			"leader=b token=42\n",
	}, {
		name:   "a leader without an entry",
		es:     []elect.CandidateEntry{entry("a", 0, "0a0b0c0d-2222", true, false)},
		leader: leaderB,
		want: "ID  PRIORITY  LIVE  LEADING  SINCE                 SESSION\n" +
			"a   0         yes   no       2026-12-02T08:40:01Z  0a0b0c0d\n" +
			"leader=b token=42 (not in the registry)\n",
	}, {
		name: "nothing",
		want: "no candidates registered\nno leader\n",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, candidatesText(tc.es, tc.leader)); diff != "" {
				t.Errorf("candidatesText (-want +got):\n%s", diff)
			}
		})
	}
}
