package elect_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// handlerTransport is an http.RoundTripper that runs an http.Handler in
// process, per host, and streams its answer back through a pipe, so that a
// *consulhttp.Client sees what Go's own transport would hand it from a
// socket: the answer as soon as the header is written, a body that arrives
// as the handler writes it (a slow or endless stream stays slow or
// endless), io.ErrUnexpectedEOF when the handler aborts mid-body
// (panic(http.ErrAbortHandler)) or sends less than its Content-Length, and
// the request's context error when the caller gives up. The handler's
// r.Context() ends when the client closes the body or gives up, as a
// server's does when the connection goes.
//
// Unlike a loopback httptest server it needs no socket, so it works inside
// a testing/synctest bubble: a blocking read that Consul would hold for
// minutes, or a request timeout, takes no real time. What only a real
// socket shows (wire framing, gzip, broken status lines) is tested in
// consulhttp's hostile_server_test.go.
type handlerTransport map[string]http.Handler // by URL host

// errRefused is what a request to a host with no handler gets, as from a
// closed port.
var errRefused = errors.New("connect: connection refused")

func (ht handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	h := ht[r.URL.Host]
	if h == nil {
		return nil, fmt.Errorf("dial tcp %s: %w", r.URL.Host, errRefused)
	}
	// The server reads the whole request before it answers.
	var body []byte
	if r.Body != nil {
		var err error
		body, err = io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(r.Context())
	sr := r.Clone(ctx)
	sr.Body = io.NopCloser(bytes.NewReader(body))
	sr.RequestURI = r.URL.RequestURI()
	sr.RemoteAddr = "192.0.2.1:40000"

	pr, pw := io.Pipe()
	w := &pipeWriter{header: http.Header{}, pw: pw, sent: make(chan struct{}), req: r, body: pr, cancel: cancel}
	// The caller giving up ends the body (the transport's read returns
	// the context's error) and the handler's context.
	stop := context.AfterFunc(r.Context(), func() {
		pr.CloseWithError(r.Context().Err())
		cancel()
	})
	aborted := make(chan error, 1)
	go func() {
		defer cancel()
		defer func() {
			if v := recover(); v != nil {
				if v != http.ErrAbortHandler {
					panic(v) // a bug in the test's handler
				}
				// The connection drops: before the header the request
				// fails, after it the body ends short.
				if !w.headerSent() {
					aborted <- io.EOF // what Go's transport says
				}
				pw.CloseWithError(io.ErrUnexpectedEOF)
				return
			}
			w.WriteHeader(http.StatusOK)
			pw.Close()
		}()
		h.ServeHTTP(w, sr)
	}()
	select {
	case <-w.sent:
		return w.resp, nil
	case err := <-aborted:
		stop()
		return nil, err
	case <-r.Context().Done():
		// The AfterFunc closes the pipe: the handler's writes fail.
		return nil, r.Context().Err()
	}
}

// pipeWriter is the handler's http.ResponseWriter: the header goes to
// RoundTrip once, the body into the pipe.
type pipeWriter struct {
	header http.Header
	pw     *io.PipeWriter
	req    *http.Request
	body   *io.PipeReader
	cancel context.CancelFunc

	once sync.Once
	sent chan struct{} // closed once resp is set
	resp *http.Response
}

func (w *pipeWriter) Header() http.Header { return w.header }

func (w *pipeWriter) headerSent() bool {
	select {
	case <-w.sent:
		return true
	default:
		return false
	}
}

func (w *pipeWriter) WriteHeader(code int) {
	w.once.Do(func() {
		h := w.header.Clone()
		length := int64(-1)
		if n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil {
			length = n
		}
		var body io.Reader = w.body
		if length >= 0 {
			body = &lengthReader{r: w.body, left: length}
		}
		w.resp = &http.Response{
			Status:     fmt.Sprintf("%d %s", code, http.StatusText(code)),
			StatusCode: code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:        h,
			Body:          &clientBody{r: body, ctx: w.req.Context(), pipe: w.body, cancel: w.cancel},
			ContentLength: length,
			Request:       w.req,
		}
		close(w.sent)
	})
}

func (w *pipeWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.pw.Write(p)
}

// Flush sends the header; the pipe has no buffer to flush.
func (w *pipeWriter) Flush() { w.WriteHeader(http.StatusOK) }

// clientBody is the response body the client reads: closing it drops the
// connection, which the handler sees as a failed write and an ended
// context.
type clientBody struct {
	r      io.Reader
	ctx    context.Context // the client's request's
	pipe   *io.PipeReader
	cancel context.CancelFunc
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && b.ctx.Err() != nil {
		// The handler may see its context end and return (an EOF in
		// the pipe) before the reader sees it: the caller gave up.
		err = b.ctx.Err()
	}
	return n, err
}

func (b *clientBody) Close() error {
	b.pipe.Close()
	b.cancel()
	return nil
}

// lengthReader reads a body of a declared length, as Go's transport does:
// io.EOF after length bytes, io.ErrUnexpectedEOF if the stream ends first.
type lengthReader struct {
	r    io.Reader
	left int64
}

func (l *lengthReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if err == io.EOF && l.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// TestHandlerTransportAnswersLikeASocket keeps handlerTransport honest: a
// client reading the same hostile answers over loopback and in process
// gets the same result and the same error text. It runs in real time (a
// socket can't be in a synctest bubble) with a short request timeout.
func TestHandlerTransportAnswersLikeASocket(t *testing.T) {
	t.Parallel()
	const key = "svc/leader"
	tests := []struct {
		name   string
		handle func(http.ResponseWriter, *http.Request, int)
		// quick: answers at once, with a 10s request timeout it should
		// never need (a socket under -race on a busy machine is slow);
		// the others wait out a 300ms one.
		quick bool
	}{
		{"like Consul", reply(200, kvJSON(key, "", 12, "x"), "X-Consul-Index", "12"), true},
		{"404 with an index", reply(404, "", "X-Consul-Index", "12"), true},
		{"HTML 502", reply(502, htmlPage, "Content-Type", "text/html"), true},
		{"HTML with 200", reply(200, htmlPage, "X-Consul-Index", "12"), true},
		{"truncated", truncated(kvJSON(key, "", 12, "x")[:40]), true},
		{"shorter than its Content-Length", reply(200, "[]", "Content-Length", "10", "X-Consul-Index", "12"), true},
		{"aborted before the header", func(http.ResponseWriter, *http.Request, int) { panic(http.ErrAbortHandler) }, true},
		{"endless fast body", endless(0), true},
		{"endless slow body", endless(20 * time.Millisecond), false},
		{"redirect", func(w http.ResponseWriter, r *http.Request, _ int) {
			http.Redirect(w, r, "http://127.0.0.1:1/v1/kv/svc/leader", http.StatusTemporaryRedirect)
		}, true},
		{"no answer", func(_ http.ResponseWriter, r *http.Request, _ int) {
			// A server notices a closed connection only once it has
			// read the request's body.
			io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		}, false},
		{"5 MiB answer", reply(200, `{"ID":"`+strings.Repeat("a", 5<<20)+`"}`), true},
	}
	// A read and a session create (a PUT with a body) through the client.
	calls := func(ctx context.Context, cfg consulhttp.Config) string {
		c, err := consulhttp.NewClient(cfg)
		if err != nil {
			return err.Error()
		}
		kv, meta, err := c.GetKV(ctx, key, consulhttp.QueryOptions{})
		got := fmt.Sprintf("read: %+v %+v %v", kv, meta, err)
		id, err := c.CreateSession(ctx, consulhttp.SessionRequest{TTL: 10 * time.Second})
		return got + fmt.Sprintf("\ncreate: %q %v", id, err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tc.handle(w, r, 1) })
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			timeout := 300 * time.Millisecond
			if tc.quick {
				timeout = 10 * time.Second
			}
			var overSocket, inProcess string
			var wg sync.WaitGroup
			wg.Go(func() {
				overSocket = calls(t.Context(), consulhttp.Config{Address: srv.URL, RequestTimeout: timeout})
			})
			wg.Go(func() {
				inProcess = calls(t.Context(), consulhttp.Config{
					Address: "consul.test:8500", Transport: handlerTransport{"consul.test:8500": h}, RequestTimeout: timeout,
				})
			})
			wg.Wait()
			if inProcess != overSocket {
				t.Errorf("in process:\n%s\nover a socket:\n%s", inProcess, overSocket)
			}
		})
	}
}
