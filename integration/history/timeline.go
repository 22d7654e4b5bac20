package history

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// maxColumns is how many candidates get a column each; with more, every
// line names its candidate instead.
const maxColumns = 6

// Timeline renders evs (in any order) one event per line: milliseconds
// since start, then the event in its candidate's column (test-wide events
// in the first column).
func Timeline(evs []Event, start time.Time) string {
	evs = slices.Clone(evs)
	Sort(evs)
	cands := Candidates(evs)
	var b strings.Builder
	if len(cands) > maxColumns {
		for _, e := range evs {
			who := e.Candidate
			if who == "" {
				who = "test"
			}
			fmt.Fprintf(&b, "%10s  %-8s %s\n", relMS(e.At, start), who, describe(e))
		}
		return b.String()
	}
	cols := append([]string{""}, cands...)
	width := make([]int, len(cols))
	for i, c := range cols {
		width[i] = max(len(c), 4)
	}
	col := func(e Event) int { return slices.Index(cols, e.Candidate) }
	for _, e := range evs {
		i := col(e)
		width[i] = min(max(width[i], len(describe(e))), 40)
	}
	row := func(ms string, cells []string) {
		line := fmt.Sprintf("%10s", ms)
		for i, c := range cells {
			line += "  " + fmt.Sprintf("%-*s", width[i], c)
		}
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	head := slices.Clone(cols)
	head[0] = "test"
	row("ms", head)
	for _, e := range evs {
		cells := make([]string, len(cols))
		cells[col(e)] = describe(e)
		row(relMS(e.At, start), cells)
	}
	return b.String()
}

// Timeline renders the history so far.
func (h *History) Timeline() string { return Timeline(h.Events(), h.start) }

func relMS(t, start time.Time) string {
	return fmt.Sprintf("%.1f", float64(t.Sub(start))/float64(time.Millisecond))
}

// describe is an event as a timeline cell.
func describe(e Event) string {
	switch e.Kind {
	case Elected:
		return fmt.Sprintf("ELECTED t=%d", e.Token)
	case SteppedDown:
		return fmt.Sprintf("step down t=%d %s", e.Token, e.Note)
	case LeaderSeen:
		if e.Note == "" {
			return "sees no leader"
		}
		return fmt.Sprintf("sees leader %s t=%d", e.Note, e.Token)
	case Proof:
		return "proof (" + e.Note + ")"
	case ChildSpawned:
		return fmt.Sprintf("spawned child %d", e.PID)
	case ChildReaped:
		return fmt.Sprintf("reaped child %d %s", e.PID, e.Note)
	case ProcGone:
		return fmt.Sprintf("leaderd %d gone", e.PID)
	case ChildStart:
		return fmt.Sprintf("child START t=%d pid %d", e.Token, e.PID)
	case ChildStop:
		return fmt.Sprintf("child %s pid %d", e.Note, e.PID)
	case ChildGone:
		return fmt.Sprintf("child %d seen gone", e.PID)
	case Frozen:
		return fmt.Sprintf("FROZEN pid %d", e.PID)
	case Resumed:
		return fmt.Sprintf("RESUMED pid %d", e.PID)
	case Fault, Heal, Epoch:
		return strings.ToUpper(string(e.Kind)) + " " + e.Note
	case BadRecord:
		return "BAD RECORD " + e.Note
	}
	return e.String()
}
