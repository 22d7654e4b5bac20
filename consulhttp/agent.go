package consulhttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// RegisterService registers (or replaces) a service in the local agent.
func (c *Client) RegisterService(ctx context.Context, r ServiceRegistration) error {
	if r.Name == "" {
		return errors.New("consul: register service: empty service Name")
	}
	return c.putJSON(ctx, "/v1/agent/service/register", r)
}

// DeregisterService removes a service (and its checks) from the local agent.
func (c *Client) DeregisterService(ctx context.Context, id string) error {
	return c.putID(ctx, "/v1/agent/service/deregister/", "service ID", id)
}

// RegisterCheck registers (or replaces) a check in the local agent.
func (c *Client) RegisterCheck(ctx context.Context, chk AgentCheck) error {
	if chk.Name == "" {
		return errors.New("consul: register check: empty check Name")
	}
	return c.putJSON(ctx, "/v1/agent/check/register", checkRegistration{ID: chk.CheckID, AgentCheck: chk})
}

// checkRegistration is an AgentCheck as /v1/agent/check/register wants it:
// the check's ID is "ID" there ("CheckID" in a service registration's
// Checks), and the endpoint refuses unknown fields with a 400. The empty
// CheckID, shallower than AgentCheck's, hides it from encoding/json.
type checkRegistration struct {
	ID string `json:",omitempty"`
	AgentCheck
	CheckID string `json:",omitempty"` // always empty
}

// DeregisterCheck removes a check from the local agent.
func (c *Client) DeregisterCheck(ctx context.Context, id string) error {
	return c.putID(ctx, "/v1/agent/check/deregister/", "check ID", id)
}

// UpdateTTL sets a TTL check's status (StatusPassing, StatusWarning,
// StatusCritical) and output, resetting its timer. A check the agent does
// not have gives an error matching ErrCheckNotFound.
func (c *Client) UpdateTTL(ctx context.Context, checkID, status, output string) error {
	seg, err := pathSegment("check ID", checkID)
	if err == nil {
		switch status {
		case StatusPassing, StatusWarning, StatusCritical:
		default:
			err = fmt.Errorf("check status %q: want passing, warning or critical", status)
		}
	}
	if err != nil {
		return fmt.Errorf("consul: update TTL check: %w", err)
	}
	body := struct{ Status, Output string }{status, output}
	return checkNotFound(c.putJSON(ctx, "/v1/agent/check/update/"+seg, body))
}

// NodeName is the name of the node of the agent we talk to (the Node of a
// session created without one).
func (c *Client) NodeName(ctx context.Context) (string, error) {
	var self struct {
		Config struct{ NodeName string }
	}
	req := call{method: http.MethodGet, path: "/v1/agent/self"}
	if err := c.getJSON(ctx, req, &self); err != nil {
		return "", err
	}
	if self.Config.NodeName == "" {
		return "", decodeErr(req, errors.New("no Config.NodeName in the answer"))
	}
	return self.Config.NodeName, nil
}

// Leader is the address of the Consul leader server, "" when there is none.
func (c *Client) Leader(ctx context.Context) (string, error) {
	var leader string
	err := c.getJSON(ctx, call{method: http.MethodGet, path: "/v1/status/leader"}, &leader)
	return leader, err
}

// putJSON sends v as JSON and expects a 2xx; the answer body is ignored.
func (c *Client) putJSON(ctx context.Context, path string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("consul: PUT %s: %w", path, err)
	}
	req := call{method: http.MethodPut, path: path, body: body}
	resp, err := c.do(ctx, req)
	if err != nil {
		return err
	}
	return c.ok(req, resp)
}

// putID sends a bodiless PUT to prefix + escaped id.
func (c *Client) putID(ctx context.Context, prefix, what, id string) error {
	seg, err := pathSegment(what, id)
	if err != nil {
		return fmt.Errorf("consul: PUT %s: %w", prefix, err)
	}
	req := call{method: http.MethodPut, path: prefix + seg}
	resp, err := c.do(ctx, req)
	if err != nil {
		return err
	}
	return c.ok(req, resp)
}

// getJSON sends a GET and decodes the 2xx answer into v.
func (c *Client) getJSON(ctx context.Context, req call, v any) error {
	resp, err := c.do(ctx, req)
	if err != nil {
		return err
	}
	if err := c.ok(req, resp); err != nil {
		return err
	}
	if err := decodeJSON(resp.body, v); err != nil {
		return decodeErr(req, err)
	}
	return nil
}
