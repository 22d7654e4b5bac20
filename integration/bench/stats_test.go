package main

import (
	"io"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPercentile(t *testing.T) {
	fifty := make([]float64, 50)
	for i := range fifty {
		fifty[i] = float64(50 - i) // unsorted on purpose
	}
	tests := []struct {
		name string
		xs   []float64
		p    float64
		want float64
	}{
		{"one sample", []float64{7}, 50, 7},
		{"median of odd count", []float64{3, 1, 2}, 50, 2},
		{"median of even count is the lower middle", []float64{4, 1, 3, 2}, 50, 2},
		{"p99 of 50 is the maximum", fifty, 99, 50},
		{"p98 of 50 is the second largest", fifty, 98, 49},
		{"p100 is the maximum", []float64{1, 9, 5}, 100, 9},
		{"tiny p is the minimum", []float64{1, 9, 5}, 0.1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.xs, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.xs, tt.p, got, tt.want)
			}
		})
	}
	if got := percentile(nil, 50); !math.IsNaN(got) {
		t.Errorf("percentile(nil) = %v, want NaN", got)
	}
	in := []float64{3, 1, 2}
	percentile(in, 50)
	if diff := cmp.Diff([]float64{3, 1, 2}, in); diff != "" {
		t.Errorf("percentile reordered its input (-want +got):\n%s", diff)
	}
}

func TestParseChildLine(t *testing.T) {
	tests := []struct {
		line   string
		want   childEvent
		wantOK bool
	}{
		{"start 1700000000000000001 42 handover-leaderd-exit#0.1", childEvent{Kind: "start", At: time.Unix(0, 1700000000000000001), PID: 42, Label: "handover-leaderd-exit#0.1"}, true},
		{"exit 1700000000000000002 42 x#1.2 usr1", childEvent{Kind: "exit", At: time.Unix(0, 1700000000000000002), PID: 42, Label: "x#1.2", How: "usr1"}, true},
		{"exit 17000 42", childEvent{}, false},
		{"begin 1 2 x", childEvent{}, false},
		{"start notanumber 2 x", childEvent{}, false},
		{"", childEvent{}, false},
	}
	for _, tt := range tests {
		got, ok := parseChildLine(tt.line)
		if ok != tt.wantOK {
			t.Errorf("parseChildLine(%q) ok = %v, want %v", tt.line, ok, tt.wantOK)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("parseChildLine(%q) (-want +got):\n%s", tt.line, diff)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		method, target, want string
		body                 string
	}{
		{"PUT", "/v1/session/renew/abc", kindRenew, ""},
		{"PUT", "/v1/session/create", kindCreate, ""},
		{"PUT", "/v1/session/destroy/abc", kindDestroy, ""},
		{"GET", "/v1/kv/services/x/leader?index=12&wait=300000ms", kindWatch, ""},
		{"GET", "/v1/kv/services/x/leader?index=0&wait=15s", kindRead, ""},
		{"GET", "/v1/kv/services/x/leader?consistent=", kindRead, ""},
		{"PUT", "/v1/kv/services/x/leader?acquire=abc", kindAcquire, ""},
		{"PUT", "/v1/kv/services/x/leader?release=abc", kindRelease, ""},
		{"PUT", "/v1/agent/check/pass/leaderd-1", kindCheck, ""},
		{"PUT", "/v1/agent/check/update/leaderd-1", kindCheck, ""},
		{"PUT", "/v1/agent/check/register", kindCheckReg, ""},
		{"DELETE", "/v1/kv/bench/x/.lock?cas=5", kindOtherWrite, ""},
		{"GET", "/v1/agent/self", kindOther, ""},
		{"GET", "/v1/kv/services/x/leader/candidates/?recurse=", kindList, ""},
		{"GET", "/v1/kv/services/x/leader/?recurse=&index=40&wait=300000ms", kindWatchList, ""},
		{"PUT", "/v1/txn", kindTxnAcquire, `[{"KV":{"Verb":"lock","Key":"services/x/leader","Session":"s1","Value":"e30="}}]`},
		{"PUT", "/v1/txn", kindRegister, `[{"KV":{"Verb":"lock","Key":"services/x/leader/candidates/a","Session":"s1"}}]`},
		{"PUT", "/v1/txn", kindHandover, `[{"KV":{"Verb":"unlock","Key":"services/x/leader","Session":"s1"}},{"KV":{"Verb":"lock","Key":"services/x/leader","Session":"s2"}}]`},
		{"PUT", "/v1/txn", kindDeregister, `[{"KV":{"Verb":"check-session","Key":"services/x/leader/candidates/a","Session":"s1"}},{"KV":{"Verb":"delete","Key":"services/x/leader/candidates/a"}}]`},
		{"PUT", "/v1/txn", kindPrune, `[{"KV":{"Verb":"delete-cas","Key":"services/x/leader/candidates/b","Index":7}}]`},
		{"PUT", "/v1/txn", kindOtherTxn, `[{"KV":{"Verb":"cas","Key":"services/x/leader"}}]`},
		{"PUT", "/v1/txn", kindOtherTxn, `not json`},
	}
	for _, tt := range tests {
		var body io.Reader
		if tt.body != "" {
			body = strings.NewReader(tt.body)
		}
		r := httptest.NewRequest(tt.method, tt.target, body)
		b := txnBody(r)
		if got := classify(r, b); got != tt.want {
			t.Errorf("classify(%s %s %s) = %q, want %q", tt.method, tt.target, tt.body, got, tt.want)
		}
		if rest, _ := io.ReadAll(r.Body); string(rest) != tt.body {
			t.Errorf("classify(%s %s): the body left for the agent is %q, want %q", tt.method, tt.target, rest, tt.body)
		}
	}
}
