package consulhttp

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeConsul is an in-process http.RoundTripper: it records every request
// and answers with handle. It fails the test on a request when handle is nil.
type fakeConsul struct {
	t      testing.TB
	handle func(*http.Request) (*http.Response, error)

	mu   sync.Mutex
	reqs []seen
}

// seen is what the fake saw of one request.
type seen struct {
	Method           string
	Path             string // decoded
	EscapedPath      string
	RawQuery         string
	Header           http.Header
	Body             string
	ContentLength    int64
	TransferEncoding []string
	Deadline         time.Time
}

func (f *fakeConsul) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			return nil, err
		}
		r.Body.Close()
	}
	dl, _ := r.Context().Deadline()
	f.mu.Lock()
	f.reqs = append(f.reqs, seen{
		Method: r.Method, Path: r.URL.Path, EscapedPath: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: string(body), ContentLength: r.ContentLength,
		TransferEncoding: r.TransferEncoding, Deadline: dl,
	})
	f.mu.Unlock()
	if f.handle == nil {
		f.t.Errorf("unexpected request %s %s", r.Method, r.URL)
		return nil, fmt.Errorf("unexpected request")
	}
	return f.handle(r)
}

func (f *fakeConsul) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.reqs...)
}

// last is the only request the fake saw; it fails the test otherwise.
func (f *fakeConsul) last() seen {
	f.t.Helper()
	reqs := f.requests()
	if len(reqs) != 1 {
		f.t.Fatalf("fake saw %d requests, want 1: %+v", len(reqs), reqs)
	}
	return reqs[0]
}

// answer builds a response; headers come as name, value pairs.
func answer(code int, body string, headers ...string) *http.Response {
	h := http.Header{}
	for i := 0; i+1 < len(headers); i += 2 {
		h.Set(headers[i], headers[i+1])
	}
	return &http.Response{
		StatusCode:    code,
		Status:        fmt.Sprintf("%d %s", code, http.StatusText(code)),
		Header:        h,
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		ProtoMajor:    1, ProtoMinor: 1,
	}
}

// replyWith is a handler that always gives the same answer.
func replyWith(code int, body string, headers ...string) func(*http.Request) (*http.Response, error) {
	return func(*http.Request) (*http.Response, error) { return answer(code, body, headers...), nil }
}

// newFakeClient is a client whose requests go to a fakeConsul.
func newFakeClient(t testing.TB, cfg Config, handle func(*http.Request) (*http.Response, error)) (*Client, *fakeConsul) {
	t.Helper()
	f := &fakeConsul{t: t, handle: handle}
	cfg.Transport = f
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c, f
}

// errorText is err's message, "" for nil.
func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// missingFrom reports the first of subs missing from s.
func missingFrom(s string, subs ...string) string {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return sub
		}
	}
	return ""
}
