package history

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Verify checks h (End defaults to now), writes the report and the
// timeline to history.txt in t's artifact directory, and on a violation
// fails t with the violations and the timeline.
func Verify(t testing.TB, h *History, opts Options) Report {
	t.Helper()
	r := h.Check(opts)
	text := r.Format(h.Timeline())
	path := filepath.Join(t.ArtifactDir(), "history.txt")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Errorf("history: write %s: %v", path, err)
	}
	if len(r.Violations) > 0 {
		t.Errorf("history: %d violation(s); written to %s\n%s", len(r.Violations), path, text)
	}
	return r
}

// Format is the report followed by timeline.
func (r Report) Format(timeline string) string {
	var b strings.Builder
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "VIOLATION %s\n", v)
	}
	for _, n := range r.Notices {
		fmt.Fprintf(&b, "notice: %s\n", n)
	}
	fmt.Fprintf(&b, "%d terms:\n", len(r.Terms))
	for _, t := range r.Terms {
		fmt.Fprintf(&b, "  %-10s token %-6d elected %s ended %s (%s)", t.Candidate, t.Token,
			t.Elected.Format("15:04:05.000"), t.Ended.Format("15:04:05.000"), t.Reason)
		if c := t.Child; c != nil {
			fmt.Fprintf(&b, " child %d %s..%s", c.PID, c.Start.Format("15:04:05.000"), c.Dead.Format("15:04:05.000"))
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
	b.WriteString(timeline)
	return b.String()
}
