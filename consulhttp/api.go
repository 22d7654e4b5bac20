// Package consulhttp is a minimal Consul HTTP API client: sessions, KV
// (acquire/release/cas), blocking queries, agent service and check
// registration, and configuration from the same environment variables as the
// consul CLI. It exists so leaderd does not depend on
// github.com/hashicorp/consul/api and can get the details that matter for
// leader election exactly right (explicit zero lock-delay, Content-Length on
// session bodies, index handling, no global client timeout).
//
// A command that talks to Consul gets the consul CLI's connection flags
// from Flags. A bad setting is a *SettingError that names the CONSUL_*
// variables it came from; SettingError.Named lets a caller name its own
// flags instead, without rewriting the text.
package consulhttp

// This file holds the package's data types (the contract used by elect/,
// nomad/ and main). The client lives in client.go, its calls in session.go,
// kv.go and agent.go, configuration in config.go and tls.go, errors in
// errors.go.

import (
	"errors"
	"net/http"
	"time"
)

// Config says how to reach Consul. Zero values mean "default" (see
// ConfigFromEnv for the environment variables that fill it).
type Config struct {
	// Address is host:port, http://host:port, https://host:port or
	// unix:///path/to/socket. Default 127.0.0.1:8500.
	Address string
	// Scheme is "http" or "https"; derived from Address when it has one.
	Scheme string
	// Token is the ACL token. TokenFile, when set, wins over Token.
	Token     string
	TokenFile string
	// HTTPAuth is basic auth ("user" or "user:pass"), CONSUL_HTTP_AUTH.
	HTTPAuth   string
	Datacenter string
	Namespace  string // sent as ?ns= only when non-empty
	Partition  string // sent as ?partition= only when non-empty
	TLS        TLSConfig

	// RequestTimeout bounds a non-blocking request (default 10s) unless the
	// caller's ctx ends earlier. A blocking query gets wait×17/16 (Consul's
	// jitter) plus RequestTimeout. http.Client.Timeout is never set: it would
	// cut blocking queries short.
	RequestTimeout time.Duration
	// Transport replaces the pooled go-cleanhttp transport (tests use an
	// in-process fake). When set, the TLS settings and unix sockets are the
	// transport's business.
	Transport http.RoundTripper
}

// TLSConfig configures HTTPS to Consul.
type TLSConfig struct {
	CAFile             string // CONSUL_CACERT
	CAPath             string // CONSUL_CAPATH
	CertFile           string // CONSUL_CLIENT_CERT
	KeyFile            string // CONSUL_CLIENT_KEY
	ServerName         string // CONSUL_TLS_SERVER_NAME
	InsecureSkipVerify bool   // CONSUL_HTTP_SSL_VERIFY=false
}

// QueryOptions control a read.
type QueryOptions struct {
	Index      uint64        // blocking: return when the index moves past this (0: don't block)
	Wait       time.Duration // blocking: max wait (0: Consul's default, 5m)
	Consistent bool          // ?consistent
	Stale      bool          // ?stale (never together with Consistent)
}

// QueryMeta is what Consul's headers said about a read.
type QueryMeta struct {
	LastIndex   uint64        // X-Consul-Index
	KnownLeader bool          // X-Consul-KnownLeader
	LastContact time.Duration // X-Consul-LastContact
}

// ServiceCheck names a service check a session is bound to.
type ServiceCheck struct {
	ID        string
	Namespace string `json:",omitempty"`
}

// SessionRequest is the body of PUT /v1/session/create.
type SessionRequest struct {
	Name      string
	Node      string        // empty: the agent's node
	TTL       time.Duration // 0: no TTL; sent as "10s"
	LockDelay time.Duration // always sent, "0s" included
	Behavior  string        // "release" (default) or "delete"
	// NodeChecks nil: Consul's default (serfHealth). Non-nil empty: no node
	// checks (sent as []).
	NodeChecks    []string
	ServiceChecks []ServiceCheck
}

// SessionEntry is a session as Consul reports it.
type SessionEntry struct {
	ID            string
	Name          string
	Node          string
	LockDelay     time.Duration
	Behavior      string
	TTL           time.Duration
	NodeChecks    []string
	ServiceChecks []ServiceCheck
	CreateIndex   uint64
	ModifyIndex   uint64
}

// KVPair is one KV entry.
type KVPair struct {
	Key         string
	Value       []byte
	Flags       uint64
	Session     string
	LockIndex   uint64
	CreateIndex uint64
	ModifyIndex uint64
}

// AgentCheck is a check definition for service or check registration.
type AgentCheck struct {
	// CheckID is sent as "CheckID" in ServiceRegistration.Checks and as
	// "ID" by RegisterCheck, as each endpoint wants it.
	CheckID                        string `json:",omitempty"`
	Name                           string `json:",omitempty"`
	Notes                          string `json:",omitempty"`
	ServiceID                      string `json:",omitempty"` // only for RegisterCheck
	TTL                            string `json:",omitempty"` // e.g. "5s"
	HTTP                           string `json:",omitempty"`
	Method                         string `json:",omitempty"`
	Interval                       string `json:",omitempty"`
	Timeout                        string `json:",omitempty"`
	Status                         string `json:",omitempty"` // initial status: passing|warning|critical
	DeregisterCriticalServiceAfter string `json:",omitempty"`
}

// ServiceRegistration is the body of PUT /v1/agent/service/register.
type ServiceRegistration struct {
	ID      string `json:",omitempty"`
	Name    string
	Tags    []string          `json:",omitempty"`
	Address string            `json:",omitempty"`
	Port    int               `json:",omitempty"`
	Meta    map[string]string `json:",omitempty"`
	Checks  []AgentCheck      `json:",omitempty"`
}

// Check statuses for UpdateTTL.
const (
	StatusPassing  = "passing"
	StatusWarning  = "warning"
	StatusCritical = "critical"
)

// ErrSessionNotFound: renew of an unknown or expired session (404), or an
// acquire/release naming a session Consul does not have (500 "invalid
// session"). The *StatusError stays reachable with errors.As.
var ErrSessionNotFound = errors.New("consulhttp: session not found")

// ErrCheckNotFound: UpdateTTL of a check the local agent does not have as a
// TTL check, so nothing bound to it can stay alive: a 404 ("Unknown check
// ID"), or the 500 "does not have associated TTL" that agents answer when
// the id is unknown or not a TTL check. The *StatusError stays reachable
// with errors.As.
var ErrCheckNotFound = errors.New("consulhttp: no such TTL check")

// StatusError is any non-2xx answer. Body is Consul's (trimmed, bounded)
// text; the token is never part of it. Path has no query string secrets.
type StatusError struct {
	Method string
	Path   string
	Code   int
	Body   string
}
