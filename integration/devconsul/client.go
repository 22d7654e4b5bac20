package devconsul

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"
)

// forceLeaveTimeout bounds `consul force-leave`. With -prune of a live node
// serf holds the request for its broadcast timeout plus the leave
// propagation delay (5s + 1s) before it erases the member.
const forceLeaveTimeout = 30 * time.Second

// ForceLeave runs `consul force-leave [-prune] <node>` against a's HTTP API
// with a's token, as an operator would. See the package doc for what
// Consul does with it.
func (a *Agent) ForceLeave(ctx context.Context, node string, prune bool) error {
	ctx, cancel := context.WithTimeout(ctx, forceLeaveTimeout)
	defer cancel()
	args := []string{"force-leave"}
	if prune {
		args = append(args, "-prune")
	}
	cmd := exec.CommandContext(ctx, a.bin, append(args, node)...)
	// Only what the CLI needs: a CONSUL_HTTP_* of our own environment must
	// not point it elsewhere.
	cmd.Env = []string{"HOME=" + os.Getenv("HOME"), "CONSUL_HTTP_ADDR=" + a.Addr, "CONSUL_HTTP_TOKEN=" + a.Token}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("consul %v via %s: %w\n%s", args, a.NodeName, err, out)
	}
	return nil
}
