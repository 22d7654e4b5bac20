// Package integration runs the real leaderd binary against real Consul
// agents on loopback (package consultest): elections between processes,
// signals, the supervised child, the status server, `leaderd leader` and
// `leaderd demo`.
package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// leaderdBin is the binary under test, built once per test run by TestMain.
var leaderdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "leaderd-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	leaderdBin = filepath.Join(dir, "leaderd")
	out, err := exec.Command("go", "build", "-o", leaderdBin, "github.com/leaderd/leaderd").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build github.com/leaderd/leaderd: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
