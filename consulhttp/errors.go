package consulhttp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// maxErrorBody bounds StatusError.Body: Consul's error texts are one line.
const maxErrorBody = 1 << 10

// Error reads like `consul: PUT /v1/session/create: 500 Invalid Session TTL
// '5000000000', must be between [10s=24h0m0s]`. A 403 adds what to do.
func (e *StatusError) Error() string {
	text := e.Body
	if text == "" {
		text = http.StatusText(e.Code)
	}
	msg := fmt.Sprintf("consul: %s %s: %d %s", e.Method, e.Path, e.Code, text)
	if e.Code == http.StatusForbidden {
		if strings.Contains(e.Body, "ACL not found") {
			msg += " (Consul does not know the ACL token: check " + EnvHTTPToken + " or " + EnvHTTPTokenFile + ")"
		} else {
			msg += " (the ACL token lacks this permission: add it to a policy of the token)"
		}
	}
	return msg
}

// RequestError is a request that got no HTTP answer: connection refused or
// reset, DNS, TLS, or no answer within the request's timeout. It is
// retryable, except a failed TLS certificate verification. A request stopped
// because the caller's ctx ended is not a RequestError: it returns the ctx's
// error.
type RequestError struct {
	Method string
	Path   string
	Err    error
}

func (e *RequestError) Error() string {
	return fmt.Sprintf("consul: %s %s: %v", e.Method, e.Path, e.Err)
}

func (e *RequestError) Unwrap() error { return e.Err }

// ErrRequestTimeout is RequestError.Err when Consul did not answer within
// the request's own deadline (Config.RequestTimeout, or the blocking
// query's wait plus margin) while the caller's ctx was still live.
var ErrRequestTimeout = errors.New("no answer in time")

// DecodeError is a 2xx answer we could not understand: malformed JSON, a
// header that is not a number, a body over the size limit. Not retryable:
// something between us and Consul is not Consul.
type DecodeError struct {
	Method string
	Path   string
	Err    error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("consul: %s %s: bad answer: %v", e.Method, e.Path, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// permanent500 lists Consul's 500 answers that are a verdict on the request
// itself, so sending it again gets the same answer (Consul sends validation
// errors as 500, agent/http.go). Everything else that is a 500 is taken as
// transient: "No cluster leader", "rpc error making call: …" (a client agent
// that cannot reach a server), "Not ready to serve consistent reads", and
// these, which look final but are states that clear on their own:
//   - "Missing node registration": the agent has not synced its node to the
//     catalog yet (right after agent start).
//   - "Missing check 'x' registration": anti-entropy has not yet synced a
//     check we just registered.
//   - "Check 'x' is in critical state": a check a session binds to goes
//     passing later (our TTL check once updated, a service once healthy).
//
// The list is matched with Contains because a client agent wraps forwarded
// errors ("rpc error making call: Invalid Session TTL …").
var permanent500 = []string{
	// Session TTL outside [session_ttl_min, 24h]: a configuration error.
	"Invalid Session TTL",
	// Behavior other than release/delete.
	"Invalid session behavior",
	// Acquire/release with a session Consul does not have (destroyed,
	// expired): it will not come back; create a new session.
	`invalid session "`,
	// ?dc= names a datacenter the servers do not know. Usually a typo; a WAN
	// partition gives the same text, and then failing loud beats retrying
	// into the void.
	"No path to datacenter",
}

// IsRetryable says whether sending the same request again may succeed:
// connection errors and timeouts (RequestError), 429, 502, 503, 504, and 500
// unless Consul said the request itself is wrong (see permanent500). 4xx are
// final. The caller's own ctx cancellation is not retryable, nor is a server
// certificate we do not trust (wrong CA file or server name: configuration).
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	var re *RequestError
	if errors.As(err, &re) {
		var cve *tls.CertificateVerificationError
		return !errors.As(re.Err, &cve)
	}
	var se *StatusError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	case http.StatusInternalServerError:
		for _, s := range permanent500 {
			if strings.Contains(se.Body, s) {
				return false
			}
		}
		return true
	}
	return false
}

// IsPermissionDenied says whether Consul refused the ACL token (403): the
// token is unknown or lacks a permission. Retrying will not help; the
// message says which permission.
func IsPermissionDenied(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusForbidden
}

// sessionNotFound marks se as meaning ErrSessionNotFound while keeping it
// reachable with errors.As.
func sessionNotFound(se *StatusError) error {
	return fmt.Errorf("%w (%w)", ErrSessionNotFound, se)
}

// checkNotFound gives an UpdateTTL's error its meaning: ErrCheckNotFound
// when the agent has no TTL check by that id (see ErrCheckNotFound).
func checkNotFound(err error) error {
	var se *StatusError
	if !errors.As(err, &se) {
		return err
	}
	if se.Code == http.StatusNotFound ||
		se.Code == http.StatusInternalServerError && strings.Contains(strings.ToLower(se.Body), "does not have associated ttl") {
		return fmt.Errorf("%w (%w)", ErrCheckNotFound, se)
	}
	return err
}
