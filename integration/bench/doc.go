// Command bench measures leaderd against `consul lock`, side by side in one
// run on one Consul v1.16.3 dev agent, and writes the results as markdown
// (RESULTS.md), raw data (results.json) and SVG charts, into this directory
// by default:
//
//	go run ./integration/bench            # full run, ~8-10 minutes on 2 cores (+5-8 to build Consul once)
//	go run ./integration/bench -quick     # a few repetitions of everything, ~2 minutes
//	go run ./integration/bench -render    # rewrite RESULTS.md and the SVGs from results.json
//
// What it measures, and how:
//
//   - Graceful handover: 3 candidates per tool on one key; the leader's
//     child exits (leaderd runs with -restart; consul lock releases and
//     exits, and a new waiter is started) or the leader gets SIGTERM. The
//     latency is from the old child's exit line to the new child's start
//     line, timestamps the children take themselves (package child).
//   - Crash failover: the leader process is SIGKILLed at points spread
//     evenly over its keep-alive cycle (a TTL check pass with leaderd's
//     defaults and fast settings, a session renew otherwise); failover
//     lasts until another candidate's child writes its start line.
//     leaderd with its defaults (-ttl 10s -lock-delay 10s -check-ttl 3s
//     -kill-timeout 2s), with the fast settings (-check-ttl 1s
//     -lock-delay 2s -kill-timeout 500ms), and with consul lock's session
//     (-ttl 15s -lock-delay 15s -check-ttl 0, renewing every 6s, the
//     slowest that lock-delay allows); consul lock with its defaults (it
//     has no flags for TTL or lock-delay). Whether the killed leader's
//     child outlived it is recorded: consul lock sets no parent-death
//     signal; leaderd's keeper must kill the child at once when leaderd
//     dies.
//   - Idle cost: every candidate talks to Consul through its own port of a
//     counting reverse proxy, so requests per minute are counted per
//     process and per kind (renew, blocking read, acquire, check pass,
//     ...; leaderd's transactions by their operations: acquire, handover,
//     registry register/deregister/prune; its registry lists apart from
//     reads of the key), split into what the agent forwards to the servers and the TTL
//     check passes it answers alone; CPU time and memory come from /proc,
//     leaderd's with its keeper's (`leaderd __keeper`, the second process
//     of a leaderd that runs a command) added.
//   - Scale: handovers among 10, 100 and 500 candidate processes of each
//     tool on one key (a size is skipped when the machine's free memory
//     can't hold it), with the requests per handover split into writes
//     and reads; crash failover with 3, 100 and 500 candidates (-scale-crash;
//     a few runs each, at the same kill phases at every size); and one
//     process running 1,000 elections on one shared session (this program
//     re-executed with -internal-many).
//
// Consul and its agent come from package devconsul, as for the tests:
// $CONSUL_BIN, consul on $PATH if it is v1.16.3, the cached build in
// <user cache dir>/leaderd, or built there from integration/consulbuild.
// The agent's per-client connection limit is raised: all candidates reach
// it from 127.0.0.1 through the proxy.
//
// It is a program, not a test: `go test ./...` only runs its unit tests
// (statistics, parsing, the SVG writer and the report).
package main
