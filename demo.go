package main

import (
	"context"
	"fmt"
	"time"

	"github.com/leaderd/leaderd/integration/demo"
)

const demoSynopsis = `
Usage: leaderd demo [-ttl duration]

Start a throwaway Consul v1.16.3 dev agent on loopback (consul from
CONSUL_BIN, PATH if it is v1.16.3, or leaderd's cache, else built once from
integration/consulbuild in a leaderd clone), run three candidates in this
process, each with its own session, and show:
  1. an election: exactly one of them leads;
  2. a graceful handover: the leader resigns and releases the key, a
     follower takes over in about one round trip (measured);
  3. a failover: the new leader is cut off from Consul without releasing
     anything, stops acting as leader when its local lease runs out, and a
     follower takes over once Consul expired the session and its
     lock-delay passed (measured).
Everything is stopped and removed at the end, or on Ctrl-C.

Exit codes: 0 the demo ran, 1 it could not (no consul, interrupted, ...),
2 bad flags.`

const demoExamples = `
  go run . demo                 # from a clone: nothing to install
  CONSUL_BIN=/usr/local/bin/consul leaderd demo -ttl 5s`

// demoCommand declares demo's one flag; the demo itself lives in
// integration/demo.
func demoCommand(fs *flagSet) action {
	ttl := 3 * time.Second
	fs.Var(durationValue{&ttl}, "ttl", "session TTL of the candidates, 3s..1m, also their lock-delay: the failover takes between 2×TTL and 3×TTL")
	fs.noEnv["ttl"] = true
	return func(ctx context.Context, _ []string, in invocation) int {
		if ttl < 3*time.Second || ttl > time.Minute {
			return exitFor(in.stderr, "demo", usagef("invalid -ttl %v: must be between 3s and 1m", ttl))
		}
		if err := demo.Run(ctx, ttl, in.getenv, in.stdout); err != nil {
			if ctx.Err() != nil {
				fmt.Fprintln(in.stdout, "interrupted; everything was stopped")
				return exitError
			}
			return exitFor(in.stderr, "demo", err)
		}
		return exitOK
	}
}
