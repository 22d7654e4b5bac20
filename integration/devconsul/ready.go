package devconsul

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// httpClient talks to agents that come and go: no keep-alives, so a dead
// agent leaves no idle connection behind, and a short timeout per poll.
var httpClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// HTTPClient returns the client this package polls agents with, for
// callers that talk to agents that come and go as well (a test's KV
// requests across Restart): no keep-alives, so a dead agent leaves no idle
// connection behind, and a 5s timeout per request.
func HTTPClient() *http.Client { return httpClient }

// pollInterval is how often readiness is polled; a dev agent is ready
// about 0.15s after start.
const pollInterval = 50 * time.Millisecond

// Await polls ready every 50ms until it succeeds. It fails early with an
// *ExitedError when one of agents exits, with ctx's error when ctx ends,
// and after timeout with ready's last error. Never a fixed sleep: a dev
// agent is ready about 0.15s after start.
func Await(ctx context.Context, agents []*Agent, timeout time.Duration, ready func(context.Context) error) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// A poll can hang on a port someone else holds; an exit must end it.
	pollCtx, cancelPoll := context.WithCancel(ctx)
	defer cancelPoll()
	for _, a := range agents {
		if p := a.current(); p != nil {
			go func() {
				select {
				case <-p.done:
					cancelPoll()
				case <-pollCtx.Done():
				}
			}()
		}
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		for _, a := range agents {
			if p := a.current(); p != nil && p.exited() {
				return a.exitedErr(p)
			}
		}
		err := ready(pollCtx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if parent.Err() != nil {
				return parent.Err()
			}
			return fmt.Errorf("consul not ready after %s: %w", timeout, err)
		case <-pollCtx.Done(): // an agent exited; report it above
		case <-tick.C:
		}
	}
}

// checkReady reports whether the agent knows a raft leader and its node's
// serfHealth check passes; until then session create can fail with
// "Missing node registration". A client's node is looked up in its
// server's catalog: it is there only once the server's leader has seen it
// join and registered it.
func (a *Agent) checkReady(ctx context.Context) error {
	leader, err := a.raftLeader(ctx)
	if err != nil {
		return err
	}
	if leader == "" {
		return fmt.Errorf("agent %s knows no raft leader yet", a.NodeName)
	}
	catalog := a
	if a.server != nil {
		catalog = a.server
	}
	var checks []struct{ CheckID, Status string }
	if err := catalog.GetJSON(ctx, "/v1/health/node/"+url.PathEscape(a.NodeName), &checks); err != nil {
		return err
	}
	for _, c := range checks {
		if c.CheckID == "serfHealth" {
			if c.Status != "passing" {
				return fmt.Errorf("node %s serfHealth is %s", a.NodeName, c.Status)
			}
			return nil
		}
	}
	return fmt.Errorf("node %s has no serfHealth check yet", a.NodeName)
}

// raftLeader returns the raft address ("127.0.0.1:port") of the leader as
// this agent sees it, "" if it knows none.
func (a *Agent) raftLeader(ctx context.Context) (string, error) {
	var leader string
	err := a.GetJSON(ctx, "/v1/status/leader", &leader)
	return leader, err
}

// getJSON GETs path from the agent, with its token if any, and decodes a
// 200 answer into out.
func (a *Agent) GetJSON(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL()+path, nil)
	if err != nil {
		return err
	}
	if a.Token != "" {
		req.Header.Set("X-Consul-Token", a.Token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("agent %s: %w", a.NodeName, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("agent %s: GET %s: read body: %w", a.NodeName, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("agent %s: GET %s: %s: %.200s", a.NodeName, path, resp.Status, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("agent %s: GET %s: decode: %w", a.NodeName, path, err)
	}
	return nil
}
