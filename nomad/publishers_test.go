package nomad

import (
	"errors"
	"testing"
)

// TestNewPublishersErrors: what keeps a publisher from being built is
// typed, so the CLI can name its own flags.
func TestNewPublishersErrors(t *testing.T) {
	noEnv := func(string) string { return "" }
	base := PublishersConfig{Names: []string{PublishConsulTags}, ID: "web-1", Service: "web", HealthAddr: "0.0.0.0:8787", Getenv: noEnv}
	tests := []struct {
		name   string
		change func(*PublishersConfig)
		check  func(error) bool
	}{
		{"no service", func(c *PublishersConfig) { c.Service = "" }, func(err error) bool { return errors.Is(err, ErrNoService) }},
		{"no status server", func(c *PublishersConfig) { c.HealthAddr = "" }, func(err error) bool { return errors.Is(err, ErrNoHealthAddr) }},
		{"bad address", func(c *PublishersConfig) { c.Address = "10.0.0.1:http" }, func(err error) bool {
			var ae *AddressError
			return errors.As(err, &ae) && ae.Address == "10.0.0.1:http" && ae.Msg == `port "http" is not a number`
		}},
	}
	for _, tc := range tests {
		cfg := base
		tc.change(&cfg)
		_, err := NewPublishers(cfg)
		var pe *PublisherError
		if !errors.As(err, &pe) || pe.Name != PublishConsulTags || !tc.check(err) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if pubs, err := NewPublishers(PublishersConfig{Getenv: noEnv}); pubs != nil || err != nil {
		t.Errorf("no names: %v, %v; want none", pubs, err)
	}
}
