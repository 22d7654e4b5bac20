package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/leaderd/leaderd/integration/devconsul"
)

// agentHCL raises the per-client connection limit: every candidate reaches
// the agent through the benchmark's proxy, so all connections come from
// 127.0.0.1, and 500 candidates each hold a blocking query (default 200).
const agentHCL = `limits { http_max_conns_per_client = 8192 }`

// startAgent starts the -dev agent every measurement shares, through
// devconsul, with its output in work/consul.log.
func startAgent(ctx context.Context, bin, work string, logf func(string, ...any)) (*devconsul.Agent, error) {
	a, err := devconsul.New(devconsul.Config{
		Bin:      bin,
		NodeName: "leaderd-bench",
		Dir:      filepath.Join(work, "consul"),
		LogPath:  filepath.Join(work, "consul.log"),
		HCL:      []string{agentHCL},
		LogLevel: "warn",
	})
	if err != nil {
		return nil, err
	}
	if err := a.Start(ctx, logf); err != nil {
		a.Close()
		return nil, fmt.Errorf("consul agent (log %s): %w", a.LogPath, err)
	}
	return a, nil
}
