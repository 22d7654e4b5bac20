// Package consulhttp is a minimal Consul HTTP API client: sessions, KV
// (acquire/release/cas), blocking queries, agent service and check
// registration, and configuration from the same environment variables as the
// consul CLI. It exists so leaderd does not depend on
// github.com/hashicorp/consul/api and can get the details that matter for
// leader election exactly right (explicit zero lock-delay, Content-Length on
// session bodies, index handling, no global client timeout).
package consulhttp

// THIS FILE IS THE API CONTRACT. Implementations live in the other files of
// the package. Signatures here are used by elect/, nomad/ and main.

import (
	"context"
	"errors"
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
	ID      string            `json:",omitempty"`
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

// ErrSessionNotFound: renew of an unknown or expired session (404).
var ErrSessionNotFound = errors.New("consulhttp: session not found")

// StatusError is any non-2xx answer. Body is Consul's (trimmed, bounded)
// text; the token is never part of it. Path has no query string secrets.
type StatusError struct {
	Method string
	Path   string
	Code   int
	Body   string
}

// Client talks to one Consul agent. Safe for concurrent use; long-lived.
type Client struct {
	impl clientImpl
}

// The methods below are the whole surface used by the rest of leaderd.
//
//	func ConfigFromEnv(getenv func(string) string) (Config, error)
//	func (c Config) Merge(override Config) Config // non-zero fields of override win
//	func NewClient(cfg Config) (*Client, error)   // reads TokenFile, builds TLS; errors name the setting
//	func (c *Client) Address() string              // for logs; never includes the token
//
//	func (c *Client) CreateSession(ctx context.Context, r SessionRequest) (string, error)
//	func (c *Client) RenewSession(ctx context.Context, id string) (*SessionEntry, error) // 404 → ErrSessionNotFound
//	func (c *Client) DestroySession(ctx context.Context, id string) error
//	func (c *Client) SessionInfo(ctx context.Context, id string, q QueryOptions) (*SessionEntry, QueryMeta, error) // missing → nil, meta, nil
//
//	func (c *Client) GetKV(ctx context.Context, key string, q QueryOptions) (*KVPair, QueryMeta, error) // missing → nil, meta (with index), nil
//	func (c *Client) Acquire(ctx context.Context, key, session string, value []byte) (bool, error)
//	func (c *Client) Release(ctx context.Context, key, session string, value []byte) (bool, error)
//	func (c *Client) PutKV(ctx context.Context, key string, value []byte) error
//	func (c *Client) CASKV(ctx context.Context, key string, value []byte, index uint64) (bool, error)
//	func (c *Client) DeleteKV(ctx context.Context, key string) error
//	func (c *Client) DeleteCASKV(ctx context.Context, key string, index uint64) (bool, error)
//
//	func (c *Client) RegisterService(ctx context.Context, r ServiceRegistration) error
//	func (c *Client) DeregisterService(ctx context.Context, id string) error
//	func (c *Client) RegisterCheck(ctx context.Context, chk AgentCheck) error
//	func (c *Client) DeregisterCheck(ctx context.Context, id string) error
//	func (c *Client) UpdateTTL(ctx context.Context, checkID, status, output string) error
//	func (c *Client) NodeName(ctx context.Context) (string, error) // GET /v1/agent/self → Config.NodeName
//	func (c *Client) Leader(ctx context.Context) (string, error)   // GET /v1/status/leader
//
//	func IsRetryable(err error) bool       // connection errors, 429, 5xx except validation 500s
//	func IsPermissionDenied(err error) bool // 403
var _ = context.Background
