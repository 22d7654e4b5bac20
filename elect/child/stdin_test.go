package child

import (
	"os"
	"testing"
	"time"
)

func withStdin(f *os.File) rigOpt { return func(c *Config) { c.Stdin = f } }

// TestStdin: the command reads what leaderd was given on stdin when it is
// passed on (-pass-stdin), and /dev/null otherwise.
func TestStdin(t *testing.T) {
	const script = `read -r line || line=EOF; echo "got $line"`
	t.Run("passed", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		rg := newRig(t, script, time.Second, withStdin(r))
		r.Close() // the keeper has its own copy
		if _, err := w.WriteString("hello\n"); err != nil {
			t.Fatal(err)
		}
		w.Close()
		rg.sup.Start(testTerm(time.Minute))
		rg.expect(t, "got hello")
	})
	t.Run("not passed", func(t *testing.T) {
		rg := newRig(t, script, time.Second)
		rg.sup.Start(testTerm(time.Minute))
		rg.expect(t, "got EOF")
	})
}
