package consulhttp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
)

// Client talks to one Consul agent. Safe for concurrent use; long-lived:
// it keeps a pool of connections, so make one and share it.
type Client struct {
	httpc    *http.Client
	endpoint endpoint
	token    string
	user     string // basic auth, when hasAuth
	pass     string
	hasAuth  bool
	params   url.Values // dc, ns, partition: on every request, when set
	timeout  time.Duration
}

// NewClient checks cfg, reads the token file and the TLS files, and builds
// the client. Every problem is reported at once, each naming its setting.
func NewClient(cfg Config) (*Client, error) {
	var errs []error
	ep, err := parseAddress(cfg.Address, cfg.Scheme)
	if err != nil {
		// From the environment or a flag: parseAddress names the value.
		errs = append(errs, fmt.Errorf("consul %w", err))
	}
	c := &Client{endpoint: ep, token: cfg.Token, timeout: cfg.RequestTimeout, params: url.Values{}}
	if cfg.TokenFile != "" {
		tok, err := readTokenFile(cfg.TokenFile)
		if err != nil {
			errs = append(errs, err)
		}
		c.token = tok
	}
	// Never quote the token itself. Go refuses to send a header with a
	// control character, and that refusal would look like a connection
	// error, retried forever: refuse the token here instead.
	switch {
	case strings.ContainsAny(c.token, "\r\n"):
		errs = append(errs, errors.New("ACL token contains a line break"))
	case strings.ContainsFunc(c.token, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		errs = append(errs, errors.New("ACL token contains a control character"))
	}
	if cfg.HTTPAuth != "" {
		c.user, c.pass, _ = strings.Cut(cfg.HTTPAuth, ":")
		c.hasAuth = true
	}
	switch {
	case c.timeout < 0:
		errs = append(errs, fmt.Errorf("request timeout %s: must not be negative", c.timeout))
	case c.timeout == 0:
		c.timeout = DefaultRequestTimeout
	}
	for name, v := range map[string]string{"dc": cfg.Datacenter, "ns": cfg.Namespace, "partition": cfg.Partition} {
		if v != "" {
			c.params.Set(name, v)
		}
	}

	rt := cfg.Transport
	if rt == nil {
		tlsCfg, err := cfg.TLS.tlsConfig()
		if err != nil {
			errs = append(errs, err)
		}
		// Pooled: one long-lived client makes many small requests and
		// holds a few blocking ones open.
		t := cleanhttp.DefaultPooledTransport()
		t.TLSClientConfig = tlsCfg
		if ep.socket != "" {
			socket := ep.socket
			t.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			}
		}
		rt = t
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c.httpc = &http.Client{
		Transport: rt,
		// No Timeout: deadlines come per request from ctx (see do).
		// No redirects: Go turns a redirected PUT into a GET, and would
		// carry X-Consul-Token to wherever the redirect points.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// readTokenFile reads an ACL token file the way the consul CLI does
// (content trimmed). An empty file is an error here, where the CLI would
// fall back to the anonymous token and fail later with a 403.
func readTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", settingErrorf("token file (%s): %w", envVar(EnvHTTPTokenFile), err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", settingErrorf("token file %q (%s) is empty", path, envVar(EnvHTTPTokenFile))
	}
	return tok, nil
}

// Address is where the client sends requests, for logs. It never includes
// the token or basic-auth credentials.
func (c *Client) Address() string { return c.endpoint.String() }

// call is one HTTP request.
type call struct {
	method string
	path   string     // escaped, e.g. "/v1/kv/" + escapeKey(key)
	query  url.Values // nil: none
	body   []byte     // nil: no body
	raw    bool       // body is a raw KV value, not JSON
	opts   *QueryOptions
}

// response is a fully read answer; the body is already closed.
type response struct {
	code   int
	header http.Header
	body   []byte
}

// do sends r and reads the whole answer. It returns a *RequestError when no
// answer came (and ctx is still live), ctx's error when the caller gave up,
// and a *DecodeError for an oversize body. Any status is returned as is;
// callers turn unwanted ones into a *StatusError with statusError.
func (c *Client) do(ctx context.Context, r call) (*response, error) {
	q := c.query(r)
	if r.opts != nil {
		if err := r.opts.apply(q); err != nil {
			return nil, fmt.Errorf("consul: %s %s: %w", r.method, r.path, err)
		}
	}
	timeout := c.timeout
	if r.opts != nil && r.opts.Index > 0 {
		timeout = blockingTimeout(r.opts.Wait, c.timeout)
	}
	// context.WithTimeout keeps an earlier deadline of the caller's ctx.
	reqCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	u := url.URL{
		Scheme:   c.endpoint.scheme,
		Host:     c.endpoint.host,
		RawQuery: q.Encode(),
	}
	rawPath := c.endpoint.prefix + r.path
	if p, err := url.PathUnescape(rawPath); err == nil {
		u.Path, u.RawPath = p, rawPath
	} else {
		return nil, fmt.Errorf("consul: %s %s: bad path: %w", r.method, r.path, err)
	}
	var body io.Reader
	if r.body != nil {
		// A bytes.Reader gives the request a Content-Length: Consul reads
		// a session-create body only when Content-Length > 0.
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(reqCtx, r.method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("consul: %s %s: %w", r.method, r.path, err)
	}
	switch {
	case r.body != nil && r.raw:
		req.Header.Set("Content-Type", "application/octet-stream")
	case r.body != nil:
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("X-Consul-Token", c.token)
	}
	if c.hasAuth {
		req.SetBasicAuth(c.user, c.pass)
	}

	resp, err := c.httpc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			// The caller gave up (or its deadline passed): say so, not
			// "connection error".
			return nil, fmt.Errorf("consul: %s %s: %w", r.method, r.path, context.Cause(ctx))
		}
		if reqCtx.Err() != nil {
			err = fmt.Errorf("%w (%s)", ErrRequestTimeout, timeout)
		} else {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // the URL is in our message already
			}
		}
		return nil, &RequestError{Method: r.method, Path: r.path, Err: err}
	}
	b, err := readBody(resp)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("consul: %s %s: %w", r.method, r.path, context.Cause(ctx))
		}
		if errors.Is(err, errBodyTooLarge) {
			return nil, &DecodeError{Method: r.method, Path: r.path, Err: err}
		}
		if reqCtx.Err() != nil {
			err = fmt.Errorf("%w (%s)", ErrRequestTimeout, timeout)
		}
		return nil, &RequestError{Method: r.method, Path: r.path, Err: err}
	}
	return &response{code: resp.StatusCode, header: resp.Header, body: b}, nil
}

// query is the per-request parameters plus the client's dc/ns/partition.
func (c *Client) query(r call) url.Values {
	q := url.Values{}
	for k, v := range c.params {
		q[k] = v
	}
	for k, v := range r.query {
		q[k] = v
	}
	return q
}

// Consul's blocking-query limits (agent/http.go, agent/structs).
const (
	defaultBlockingWait = 5 * time.Minute
	maxBlockingWait     = 10 * time.Minute
)

// blockingTimeout is how long to wait for a blocking query's answer: Consul
// holds it up to wait (5m when unset, 10m at most) plus up to wait/16 of
// jitter, and margin covers the round trip.
func blockingTimeout(wait, margin time.Duration) time.Duration {
	if wait <= 0 {
		wait = defaultBlockingWait
	}
	wait = min(wait, maxBlockingWait)
	return wait + wait/16 + margin
}

// apply adds q's parameters. Index 0 does not block, so no wait is sent then.
func (q *QueryOptions) apply(v url.Values) error {
	if q.Consistent && q.Stale {
		return errors.New("QueryOptions: Consistent and Stale together (Consul answers 400)")
	}
	if q.Wait < 0 {
		return fmt.Errorf("QueryOptions: negative Wait %s", q.Wait)
	}
	if q.Consistent {
		v.Set("consistent", "")
	}
	if q.Stale {
		v.Set("stale", "")
	}
	if q.Index > 0 {
		v.Set("index", strconv.FormatUint(q.Index, 10))
		if q.Wait > 0 {
			// Consul needs a unit; milliseconds, rounded up so that a
			// sub-millisecond wait does not become "0ms" (= 5 minutes).
			ms := (q.Wait + time.Millisecond - 1) / time.Millisecond
			v.Set("wait", strconv.FormatInt(int64(ms), 10)+"ms")
		}
	}
	return nil
}
