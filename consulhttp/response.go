package consulhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// maxResponseBody bounds what we read of any answer, so that a hostile or
// broken server cannot make us allocate without limit. leaderd's largest
// answer is /v1/agent/self (tens of KiB); a KV value is at most 512 KiB.
const maxResponseBody = 4 << 20

var errBodyTooLarge = fmt.Errorf("answer larger than %d bytes", maxResponseBody)

// readBody reads the whole body, up to maxResponseBody, and closes it. A
// body read to EOF lets the connection go back to the pool; an oversize one
// is closed unread, which drops the connection, as it should.
func readBody(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxResponseBody {
		return nil, errBodyTooLarge
	}
	return b, nil
}

// statusError turns a non-2xx answer into a *StatusError whose Body is
// one clean, bounded line with no credentials in it.
func (c *Client) statusError(r call, resp *response) *StatusError {
	// A server may echo what it got (a proxy's debug page): never pass
	// our credentials on to logs. Redact before cutting, so that no part
	// of a secret survives at the cut.
	body := string(resp.body)
	for _, secret := range []string{c.token, c.pass} {
		if secret != "" {
			body = strings.ReplaceAll(body, secret, "<redacted>")
		}
	}
	body = strings.ToValidUTF8(body[:min(len(body), 4*maxErrorBody)], "?")
	// One line: no control characters (terminal escapes), runs of
	// whitespace (an HTML error page) collapsed.
	body = strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, body)), " ")
	if len(body) > maxErrorBody {
		cut := maxErrorBody
		for cut > 0 && !utf8.RuneStart(body[cut]) {
			cut--
		}
		body = body[:cut] + "…"
	}
	return &StatusError{Method: r.method, Path: r.path, Code: resp.code, Body: body}
}

// ok returns nil for a 2xx answer and a *StatusError otherwise.
func (c *Client) ok(r call, resp *response) error {
	if resp.code/100 == 2 {
		return nil
	}
	return c.statusError(r, resp)
}

// parseQueryMeta reads the X-Consul-* headers of a read. A missing header
// is zero; a malformed one is an error (an index we misread would break the
// caller's blocking loop).
func parseQueryMeta(h http.Header) (QueryMeta, error) {
	var m QueryMeta
	var errs []error
	if v := h.Get("X-Consul-Index"); v != "" {
		idx, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("X-Consul-Index %q is not an index", v))
		}
		m.LastIndex = idx
	}
	if v := h.Get("X-Consul-KnownLeader"); v != "" {
		known, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("X-Consul-KnownLeader %q is not a boolean", v))
		}
		m.KnownLeader = known
	}
	if v := h.Get("X-Consul-LastContact"); v != "" {
		ms, err := strconv.ParseUint(v, 10, 64)
		if err != nil || ms > math.MaxInt64/uint64(time.Millisecond) {
			errs = append(errs, fmt.Errorf("X-Consul-LastContact %q is not a number of milliseconds", v))
			ms = 0
		}
		m.LastContact = time.Duration(ms) * time.Millisecond
	}
	if len(errs) > 0 {
		return QueryMeta{}, errors.Join(errs...)
	}
	return m, nil
}

// decodeJSON decodes a whole body into v; trailing data is an error.
func decodeJSON(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return errors.New("empty answer, want JSON")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode JSON: %w", err)
	}
	return nil
}

// decodeBool reads Consul's "true" / "false" answer to a KV write.
func decodeBool(b []byte) (bool, error) {
	switch string(bytes.TrimSpace(b)) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("answer %q, want true or false", truncate(b, 64))
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// decodeErr wraps err for r as a *DecodeError.
func decodeErr(r call, err error) error {
	return &DecodeError{Method: r.method, Path: r.path, Err: err}
}
