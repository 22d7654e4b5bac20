package consulhttp

import (
	"context"
	"errors"
	"testing"
)

// TestTxnRollbackMeanings: Consul rolls a transaction back with 409 for
// every failed op; an unknown session and a denied op are not answers
// about the keys, and say so by type.
func TestTxnRollbackMeanings(t *testing.T) {
	ops := []TxnKVOp{{Verb: TxnLock, Key: "k", Session: "sid"}}
	tests := []struct {
		name         string
		body         string
		wantErr      bool
		gone, denied bool
	}{
		{name: "held by another session", body: `{"Results":null,"Errors":[{"OpIndex":0,"What":"failed to lock key \"k\", lock is already held"}]}`},
		{name: "in lock-delay", body: `{"Results":null,"Errors":[{"OpIndex":0,"What":"failed to lock key \"k\" due to lock delay"}]}`},
		{name: "unknown session", body: `{"Results":null,"Errors":[{"OpIndex":0,"What":"invalid session \"sid\""}]}`, wantErr: true, gone: true},
		{name: "permission denied", body: `{"Results":null,"Errors":[{"OpIndex":0,"What":"Permission denied: token with AccessorID 'x' lacks permission 'key:write' on \"k\""}]}`, wantErr: true, denied: true},
		{name: "not JSON", body: `nope`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newFakeClient(t, Config{}, replyWith(409, tc.body))
			res, ok, err := c.TxnKV(context.Background(), ops)
			if ok || res != nil || (err != nil) != tc.wantErr {
				t.Fatalf("TxnKV = %v, %v, %v; want rolled back, error %v", res, ok, err, tc.wantErr)
			}
			if got := errors.Is(err, ErrSessionNotFound); got != tc.gone {
				t.Errorf("ErrSessionNotFound = %v, want %v (%v)", got, tc.gone, err)
			}
			if got := IsPermissionDenied(err); got != tc.denied {
				t.Errorf("IsPermissionDenied = %v, want %v (%v)", got, tc.denied, err)
			}
		})
	}
}
