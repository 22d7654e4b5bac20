package child

import (
	"os"
	"testing"
)

// TestMain lets the test binary be its own keeper, as leaderd is: the
// Supervisor re-executes /proc/self/exe with KeeperCommand.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == KeeperCommand {
		os.Exit(Keep(os.Args[2:]))
	}
	os.Exit(m.Run())
}
