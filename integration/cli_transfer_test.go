package integration

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leaderd/leaderd/integration/history"
)

// Candidates that know each other (issue 12): `leaderd transfer`,
// `leaderd leader -candidates` and -priority, between real leaderd
// processes on a real Consul, each history checked for overlapping terms.

// candidatesView is one line of `leaderd leader -candidates -json`.
type candidatesView struct {
	Leader *struct {
		ID      string `json:"id"`
		Session string `json:"session"`
		Token   uint64 `json:"token"`
	} `json:"leader"`
	Candidates []struct {
		ID       string `json:"id"`
		Priority int    `json:"priority"`
		Session  string `json:"session"`
		Live     bool   `json:"live"`
		Leading  bool   `json:"leading"`
	} `json:"candidates"`
}

// live is the ids of the live candidates, best first, and who leads ("").
func (v candidatesView) live() (ids []string, leading string) {
	for _, c := range v.Candidates {
		if c.Live {
			ids = append(ids, c.ID)
		}
		if c.Leading {
			leading = c.ID
		}
	}
	return ids, leading
}

// transferRig is a fault rig (history-checked leaderd processes) plus a
// `leaderd leader -candidates -watch -json` on the same election.
type transferRig struct {
	*faultRig
	consul string
	watch  *hub // the -candidates watcher's lines
	env    []string
}

func newTransferRig(t *testing.T, service string) *transferRig {
	t.Helper()
	agent := faultAgent(t)
	// A free key that exists: the first election needn't wait out the
	// lease window a missing key calls for.
	seedKey(t, agent.Addr, "services/"+service+"/leader")
	r := &transferRig{faultRig: newFaultRig(t, service), consul: agent.Addr, watch: newHub(), env: []string{"CONSUL_HTTP_ADDR=" + agent.Addr}}
	start(t, r.watch, "candidates", r.env, "leader", "-service", service, "-candidates", "-watch", "-json")
	return r
}

// registered waits until the watcher shows exactly the live candidates
// want (in that order: best first, the leader ranked like the others)
// with leader leading, and returns that view.
func (r *transferRig) registered(timeout time.Duration, leader string, want ...string) candidatesView {
	r.t.Helper()
	var got candidatesView
	r.watch.wait(r.t, timeout, 0, "candidates "+strings.Join(want, ",")+" with "+leader+" leading", func(l logLine) bool {
		var v candidatesView
		if !l.stdout || json.Unmarshal([]byte(l.raw), &v) != nil {
			return false
		}
		ids, leading := v.live()
		if !slices.Equal(ids, want) || leading != leader || v.Leader == nil || v.Leader.ID != leader {
			return false
		}
		got = v
		return true
	})
	return got
}

// transfer runs `leaderd transfer` with args and returns its exit code,
// stdout and stderr.
func (r *transferRig) transfer(timeout time.Duration, args ...string) (int, string, string) {
	r.t.Helper()
	code, stdout, stderr := runOnce(r.t, timeout, r.env, append([]string{"transfer", "-service", r.service}, args...)...)
	r.t.Logf("leaderd transfer %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, stdout, stderr)
	return code, stdout, stderr
}

var movedLine = regexp.MustCompile(`^leadership moved from (\S+) to (\S+) \(token (\d+)\)\n$`)

// TestTransferTo: `leaderd transfer -to c` hands leadership from a to c,
// a follower that is not the best one (b has waited longer): c leads,
// its child starts only after a's is dead, tokens increase; and
// `leaderd leader -candidates -json` shows all three with the right leader
// before and after.
func TestTransferTo(t *testing.T) {
	r := newTransferRig(t, "xfer-to")
	a := r.start("a", r.consul, nil)
	first := r.leading(20*time.Second, 0, a)
	var procs []*faultProc
	for _, id := range []string{"b", "c"} {
		p := r.start(id, r.consul, nil)
		r.following(20*time.Second, 0, p, "a")
		procs = append(procs, p)
	}
	r.registered(20*time.Second, "a", "a", "b", "c")

	// One-shot -candidates -json: the same registry.
	code, out, _ := runOnce(t, 10*time.Second, r.env, "leader", "-service", r.service, "-candidates", "-json")
	var v candidatesView
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != 0 {
		t.Fatalf("leader -candidates -json: exit %d, %v: %q", code, err, out)
	}
	if ids, leading := v.live(); len(v.Candidates) != 3 || !slices.Equal(ids, []string{"a", "b", "c"}) || leading != "a" ||
		v.Leader == nil || v.Leader.ID != "a" || v.Leader.Token != first.elected.Token {
		t.Errorf("leader -candidates -json = %s\nwant a, b, c live (in the order they started), a leading with token %d", out, first.elected.Token)
	}

	mark := r.mark()
	code, out, _ = r.transfer(30*time.Second, "-to", "c", "-timeout", "20s")
	m := movedLine.FindStringSubmatch(out)
	if code != 0 || m == nil || m[1] != "a" || m[2] != "c" {
		t.Fatalf("transfer -to c: exit %d, stdout %q; want 0 and \"leadership moved from a to c (token N)\"", code, out)
	}
	next := r.leading(10*time.Second, mark, procs[1])
	if next.elected.Token <= first.elected.Token {
		t.Errorf("c's token %d is not above a's %d", next.elected.Token, first.elected.Token)
	}
	if got := m[3]; got != strconv.FormatUint(next.elected.Token, 10) {
		t.Errorf("transfer printed token %s, c was elected with %d", got, next.elected.Token)
	}
	down := r.wait(10*time.Second, mark, "a stepping down", evIs(history.SteppedDown, "a"))
	if down.Note != "transferred" {
		t.Errorf("a stepped down for %q, want transferred", down.Note)
	}
	r.registered(10*time.Second, "c", "a", "b", "c")
	r.verify(history.Options{})
	for _, p := range append(procs, a) {
		p.stop()
	}
}

// TestTransferToBest: `leaderd transfer` without -to hands over to the
// best other live candidate: b, the one with -priority 5, although c has
// waited as long. The hold is long so that b does not take over by
// itself (priority) before the transfer.
func TestTransferToBest(t *testing.T) {
	r := newTransferRig(t, "xfer-best")
	hold := []string{"-priority-hold", "1h"}
	a := r.start("a", r.consul, hold)
	first := r.leading(20*time.Second, 0, a)
	c := r.start("c", r.consul, hold)
	r.following(20*time.Second, 0, c, "a")
	b := r.start("b", r.consul, append(hold, "-priority", "5"))
	r.following(20*time.Second, 0, b, "a")
	r.registered(20*time.Second, "a", "b", "a", "c")

	mark := r.mark()
	code, out, _ := r.transfer(30*time.Second, "-timeout", "20s")
	if m := movedLine.FindStringSubmatch(out); code != 0 || m == nil || m[1] != "a" || m[2] != "b" {
		t.Fatalf("transfer: exit %d, stdout %q; want 0 and \"leadership moved from a to b (token N)\"", code, out)
	}
	next := r.leading(10*time.Second, mark, b)
	if next.elected.Token <= first.elected.Token {
		t.Errorf("b's token %d is not above a's %d", next.elected.Token, first.elected.Token)
	}
	r.verify(history.Options{})
	for _, p := range []*faultProc{a, b, c} {
		p.stop()
	}
}

// TestTransferToNobody: a transfer to an id that is no candidate changes
// nothing: the leader refuses it, leaderd transfer exits 4 at once (not
// after -timeout), a keeps leading (same term), and no request is left
// for a later candidate of that name to be handed the key out of the blue.
func TestTransferToNobody(t *testing.T) {
	r := newTransferRig(t, "xfer-nobody")
	a := r.start("a", r.consul, nil)
	first := r.leading(20*time.Second, 0, a)
	b := r.start("b", r.consul, nil)
	r.following(20*time.Second, 0, b, "a")
	r.registered(20*time.Second, "a", "a", "b")

	mark := r.mark()
	t0 := time.Now()
	code, _, stderr := r.transfer(30*time.Second, "-to", "zed", "-timeout", "20s")
	if took := time.Since(t0); code != 4 || !strings.Contains(stderr, "leader a did not hand over: zed is not a live candidate") || took > 10*time.Second {
		t.Errorf("transfer -to zed: exit %d after %v, stderr %q; want 4 as soon as the leader refused, saying zed is not a live candidate", code, took, stderr)
	}
	if e, err := r.h.Wait(mark, time.Second, func(e history.Event) bool {
		return (e.Kind == history.SteppedDown || e.Kind == history.Elected) && e.Candidate != ""
	}); err == nil {
		t.Errorf("leadership changed after a transfer to nobody: %v", e)
	}
	code, out, _ := runOnce(t, 10*time.Second, r.env, "leader", "-service", r.service, "-json")
	var l struct {
		Leader struct {
			ID    string `json:"id"`
			Token uint64 `json:"token"`
		} `json:"leader"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil || code != 0 || l.Leader.ID != "a" || l.Leader.Token != first.elected.Token {
		t.Errorf("leader after the transfer: exit %d, %s; want a, token %d", code, out, first.elected.Token)
	}
	// Deleted: nothing is left for a later leader to act on.
	consulAPIGet(t, r.consul, "/v1/kv/services/"+r.service+"/leader/transfer", http.StatusNotFound)
	r.verify(history.Options{})
	b.stop()
	a.stop()
}

// TestPriorityTakeover: a candidate of higher priority takes over from the
// leader once it has been live for -priority-hold (2s), not before, by a
// handover (no lock-delay); and leadership does not flap back.
func TestPriorityTakeover(t *testing.T) {
	const hold = 2 * time.Second
	r := newTransferRig(t, "xfer-prio")
	holdFlag := []string{"-priority-hold", hold.String()}
	a := r.start("a", r.consul, append(holdFlag, "-priority", "0"))
	first := r.leading(20*time.Second, 0, a)

	mark := r.mark()
	started := time.Now()
	b := r.start("b", r.consul, append(holdFlag, "-priority", "10"))
	next := r.leading(hold+10*time.Second, mark, b)
	took := next.elected.At.Sub(started)
	t.Logf("b (priority 10) elected %s after it started (hold %v)", faultMS(took), hold)
	if took < hold {
		t.Errorf("b led %v after it started, before the hold %v", took, hold)
	}
	if next.elected.Token <= first.elected.Token {
		t.Errorf("b's token %d is not above a's %d", next.elected.Token, first.elected.Token)
	}
	down := r.wait(5*time.Second, mark, "a stepping down", evIs(history.SteppedDown, "a"))
	if down.Note != "preempted" {
		t.Errorf("a stepped down for %q, want preempted", down.Note)
	}
	// No flapping: a stays a follower for several holds.
	settled := r.mark()
	if e, err := r.h.Wait(settled, 3*hold, evIs(history.Elected, "")); err == nil {
		t.Errorf("leadership moved again after the takeover: %v", e)
	}
	r.registered(5*time.Second, "b", "b", "a")
	r.verify(history.Options{})
	a.stop()
	b.stop()
}

// consulAPIGet GETs path from the agent at addr (no ACLs) and fails the
// test unless the answer has status code.
func consulAPIGet(t *testing.T, addr, path string, code int) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != code {
		t.Errorf("GET %s: %s, want %d", path, resp.Status, code)
	}
}
