package devconsul

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// testAgent prepares a -dev agent that isn't running yet, skipping the
// test under -short (no Consul there) and stopping the agent at its end.
func testAgent(t *testing.T) *Agent {
	t.Helper()
	if testing.Short() {
		t.Skip("devconsul: -short runs no Consul agent")
	}
	bin, err := Find(t.Context(), os.Getenv, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a, err := New(Config{Bin: bin, NodeName: "devconsul-test", Dir: dir, LogPath: filepath.Join(t.ArtifactDir(), "consul.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// A lost port race must be recognised so Start can retry on new ports.
func TestPortTakenIsDetectedAsAddrInUse(t *testing.T) {
	t.Parallel()
	a := testAgent(t)
	if err := a.pickPorts(); err != nil {
		t.Fatal(err)
	}
	thief, err := net.Listen("tcp", a.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer thief.Close()
	if err := a.launch(); err != nil {
		t.Fatal(err)
	}
	err = Await(t.Context(), []*Agent{a}, readyTimeout, a.checkReady)
	var exited *ExitedError
	if !errors.As(err, &exited) || !exited.AddrInUse {
		t.Fatalf("Await with the HTTP port taken = %v, want an ExitedError with AddrInUse", err)
	}
}

// Start waits for readiness and Close stops the agent: nothing outlives it.
func TestStartThenCloseStops(t *testing.T) {
	t.Parallel()
	a := testAgent(t)
	if err := a.Start(t.Context(), t.Logf); err != nil {
		t.Fatal(err)
	}
	var leader string
	if err := a.GetJSON(t.Context(), "/v1/status/leader", &leader); err != nil || leader == "" {
		t.Fatalf("raft leader right after Start = %q, %v; want one", leader, err)
	}
	a.Close()
	if a.Running() {
		t.Error("agent still running after Close")
	}
}
