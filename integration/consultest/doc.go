// Package consultest starts real Consul v1.16.3 agents on loopback for
// tests: a single -dev agent (Start), an n-server cluster with data
// directories (StartCluster) or a client agent of a server (StartClient).
// leaderd's promises are about what Consul really does, so its tests talk
// to the real thing, never to a mock of it.
//
// It is the testing.TB wrapper of package devconsul, which finds the
// binary (its package doc has the lookup order, the nested build module
// and what Consul does with force-leave) and runs the agents: here a
// failure fails the test, each agent's log goes to t.ArtifactDir() with
// its last lines printed when the test fails, and every agent is stopped
// in t.Cleanup.
//
// Binary, the one way to a binary, skips the test under `go test -short`:
// every test that needs a real Consul agent comes through it.
package consultest
