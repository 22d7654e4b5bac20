package demo

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Cut aborts a request in flight (a leader's blocking watch) and fails
// every later one at once, as a host that lost its network would.
func TestCuttableCutAbortsInFlightAndLater(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			return
		}
		close(arrived)
		<-r.Context().Done() // a blocking query that never answers
	}))
	defer srv.Close()
	c := newCuttable(http.DefaultTransport)
	client := &http.Client{Transport: c}

	resp, err := client.Get(srv.URL + "/ok")
	if err != nil {
		t.Fatalf("GET before the cut: %v", err)
	}
	resp.Body.Close()

	inFlight := make(chan error, 1)
	go func() {
		resp, err := client.Get(srv.URL + "/watch")
		if err == nil {
			resp.Body.Close()
		}
		inFlight <- err
	}()
	<-arrived
	c.Cut()
	if err := <-inFlight; !errors.Is(err, errNetworkCut) {
		t.Errorf("request in flight at the cut: %v, want errNetworkCut", err)
	}
	if _, err := client.Get(srv.URL + "/ok"); !errors.Is(err, errNetworkCut) {
		t.Errorf("request after the cut: %v, want errNetworkCut", err)
	}
}
