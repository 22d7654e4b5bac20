// Package devconsul is leaderd's one Consul launcher: it finds (or builds)
// the pinned Consul v1.16.3 binary and runs throwaway agents on loopback:
// a -dev agent, a real server, a client of a server, or an n-server
// cluster. The integration tests (through package consultest, its
// testing.TB wrapper), the benchmark (integration/bench) and `leaderd
// demo` (integration/demo) all start Consul through it, so the version
// pin, the lookup order and the rules for ports, readiness and stopping
// are written once.
//
// # Which consul binary
//
// Find resolves:
//
//  1. $CONSUL_BIN, which must name an executable file (else the test fails
//     naming it; a wrong path is a mistake, not a reason to build);
//  2. consul on $PATH, but only if `consul version` says v1.16.3 (any other
//     version is logged and ignored: Consul's behaviour differs between
//     releases and CONSUL_API.md was checked against this one);
//  3. a cached build at $XDG_CACHE_HOME/leaderd/consul-v1.16.3 (os.UserCacheDir);
//  4. else it builds that file from the Go module proxy with
//     `go build github.com/hashicorp/consul` inside the nested module
//     integration/consulbuild, which pins v1.16.3. The first build takes
//     about 5–8 minutes on two cores (progress is reported every 10s),
//     longer than go test's default 10m timeout allows comfortably, so on
//     a fresh machine run `go test -timeout 30m ./integration/...` once,
//     or prebuild it. Processes building at once (go test's package
//     binaries, the demo, the benchmark) serialise the build with an
//     exclusive flock on <cache>/consul.lock and re-check the cache after
//     taking it, so only one of them builds.
//
// # The consulbuild module and the checksum database
//
// integration/consulbuild/go.sum is committed and complete for the build, so
// `go build` there needs no special environment (checked with GOSUMDB set to
// an unreachable host and GOFLAGS=-mod=readonly: no lookup was made). Only
// whoever changes that module with `go get` needs
//
//	GONOSUMDB=github.com/hashicorp/hcp-sdk-go,github.com/hashicorp/consul/envoyextensions
//
// (those two could not be verified through sum.golang.org when the module
// was set up); commit the resulting go.mod and go.sum. Commands that load the
// whole module graph rather than the build's packages (go mod download with
// no arguments, go doc inside the module) also hit inet.af/netaddr, which the
// proxy refuses with 403; the build does not need it.
//
// # Agents
//
// Every agent binds 127.0.0.1 only, on ports picked free at start (HTTP,
// server RPC, serf LAN), with DNS, gRPC, gRPC-TLS and serf WAN disabled, so
// many agents from parallel processes can coexist. A start that loses a
// port race ("address already in use") is retried on new ports. Start
// returns once the agent knows a raft leader and its node's serfHealth check
// passes (before that, session create fails with "Missing node
// registration"), polled, never a fixed sleep. Each agent's output goes to
// Config.LogPath. An agent runs in its own process group with Pdeathsig
// SIGKILL (started through child.StartLocked), so it dies with the process
// that started it, even a SIGKILLed one; Stop sends SIGINT and SIGKILLs the
// group after 15s.
//
// -dev agents keep all state in memory: Restart gives an empty Consul on the
// same address. Config.Server (every Cluster member) runs a real
// server with a data directory, whose state survives Restart.
//
// # Client agents
//
// Config.ClientOf runs a client agent (no -server) that retry-joins a server,
// as on every node of a real cluster but the servers: sessions created
// through it belong to its node, and die with the node's registration. It
// is ready once the server's catalog has its node with serfHealth passing
// and it knows the raft leader. Terminate (SIGTERM) is a routine agent stop:
// a client leaves the cluster (leave_on_terminate), the servers deregister
// its node and every session on it is invalidated, about 0.3s after the
// signal; the agent exits ~3s later. Terminate then Restart is a routine
// restart of the local agent. Kill is a crash: the servers mark the node
// failed and its serfHealth critical within a second or two (gossip as
// quick as -dev's), which invalidates the sessions bound to serfHealth.
//
// ForceLeave runs `consul force-leave`. What Consul v1.16.3 does with it
// (serf v0.10.1 Serf.forceLeave → handleNodeLeaveIntent, handlePrune;
// consul agent/consul/leader.go handleDeregisterMember), as measured on
// loopback:
//
//   - a live node, plain force-leave: the servers mark the member "leaving"
//     and nothing else happens: the node stays registered and its sessions
//     valid (observed for 15s);
//   - a live node, -prune: serf holds the request ~8s (its broadcast
//     timeout plus the leave propagation delay), then erases the member;
//     the leader deregisters the node (reason "reaped") and so invalidates
//     its sessions, with their lock-delay, while its agent still runs. The
//     node is then out of the member list and the catalog (observed for a
//     minute): sessions through that agent fail until it restarts;
//   - a failed node: it becomes "left" and is deregistered. Its
//     serfHealth-bound sessions were normally invalidated already when it
//     was seen failed; a force-leave sent before the failure was detected
//     (right after a kill) turns it leaving, then left, without serfHealth
//     ever going critical, and the deregistration invalidates them.
package devconsul
