package nomad

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
)

// Publisher names: the values of leaderd run's -publish.
const (
	PublishConsulTags = "consul-tags"
	PublishNomadVars  = "nomad-vars"
)

// Why NewPublishers can't build a consul-tags publisher; the caller names
// the setting the way its user knows it (a flag).
var (
	ErrNoService    = errors.New("no Consul service name")
	ErrNoHealthAddr = errors.New("no status server: Consul checks its /v1/health")
)

// PublisherError is a publisher NewPublishers could not build.
type PublisherError struct {
	Name string // PublishConsulTags or PublishNomadVars
	Err  error
}

func (e *PublisherError) Error() string { return e.Name + ": " + e.Err.Error() }
func (e *PublisherError) Unwrap() error { return e.Err }

// AddressError is a PublishersConfig.Address the catalog can't advertise.
type AddressError struct {
	Address string
	Msg     string
}

func (e *AddressError) Error() string { return fmt.Sprintf("address %q: %s", e.Address, e.Msg) }

// PublishersConfig is what NewPublishers builds its publishers from.
type PublishersConfig struct {
	Names   []string // PublishConsulTags, PublishNomadVars, in order
	ID      string   // this candidate
	Service string   // the Consul service name (consul-tags)
	Address string   // host:port others reach this instance at; "": the node's
	Tags    []string // extra Consul tags (consul-tags)

	// Agent registers the service (consul-tags); a *consulhttp.Client.
	Agent ConsulAgent
	// HealthAddr is the status server's bound address, whose /v1/health
	// the service's check probes (consul-tags); "": no status server.
	HealthAddr string
	// Getenv reads the Nomad task's environment: identity and API access.
	Getenv func(string) string
	Logger *slog.Logger
}

// NewPublishers builds the publishers cfg.Names asks for. Inside a Nomad
// task they publish its identity (job, group, alloc); outside, the ID only.
func NewPublishers(cfg PublishersConfig) ([]Publisher, error) {
	if len(cfg.Names) == 0 {
		return nil, nil
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ident := Identity{ID: cfg.ID}
	if InNomad(cfg.Getenv) {
		var err error
		if ident, err = IdentityFromEnv(cfg.Getenv, ""); err != nil {
			return nil, err
		}
		ident.ID = cfg.ID
	}
	var pubs []Publisher
	for _, name := range cfg.Names {
		var p Publisher
		var err error
		switch name {
		case PublishConsulTags:
			p, err = newConsulTags(cfg, ident)
		case PublishNomadVars:
			nc, cerr := NewClientFromEnv(cfg.Getenv)
			if err = cerr; err == nil {
				p, err = NewVariablesPublisher(VariablesConfig{
					Client: nc, Identity: ident, Logger: cfg.Logger.With("publisher", name),
				})
			}
		default:
			err = errors.New("unknown publisher")
		}
		if err != nil {
			return nil, &PublisherError{Name: name, Err: err}
		}
		pubs = append(pubs, p)
	}
	return pubs, nil
}

// newConsulTags registers this instance with a leader/follower tag and a
// Consul HTTP check on the status server's /v1/health, so it needs one.
func newConsulTags(cfg PublishersConfig, ident Identity) (Publisher, error) {
	if cfg.Service == "" {
		return nil, ErrNoService
	}
	if cfg.HealthAddr == "" {
		return nil, ErrNoHealthAddr
	}
	host, port, _ := net.SplitHostPort(cfg.HealthAddr)
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1" // the local agent probes us
	}
	healthURL := fmt.Sprintf("http://%s/v1/health", net.JoinHostPort(host, port))
	var addr string
	var p int
	if cfg.Address != "" {
		h, ps, err := net.SplitHostPort(cfg.Address)
		if err != nil {
			return nil, &AddressError{cfg.Address, err.Error()}
		}
		if p, err = strconv.Atoi(ps); err != nil {
			return nil, &AddressError{cfg.Address, fmt.Sprintf("port %q is not a number", ps)}
		}
		addr = h
	}
	return NewConsulTagsPublisher(ConsulTagsConfig{
		Agent: cfg.Agent, Service: cfg.Service, Address: addr, Port: p, Tags: cfg.Tags,
		Identity: ident, HealthURL: healthURL, Logger: cfg.Logger.With("publisher", PublishConsulTags),
	})
}
