package integration

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leaderd/leaderd/integration/history"
)

// The keeper tests run leaderd alone with these settings: a lease of
// lock-delay − (kill-timeout + 500ms) = 1s from each proof, renewed every
// 333ms, and a child that needs longer than the kill timeout to stop.
const keeperLockDelay = 2 * time.Second

func keeperArgs(service string) []string {
	return []string{"run", "-service", service, "-id", "a", "-ttl", "3s", "-lock-delay", keeperLockDelay.String(),
		"-check-ttl", "0", "-kill-timeout", faultKillTimeout.String(), "-listen", "", "-log-format", "json", "-log-level", "debug"}
}

// slowChild takes a second to stop after SIGTERM, as real programs do, and
// has two grandchildren that ignore SIGTERM: one in its process group, one
// in a session of its own. It prints "pid <what> <pid>" for itself and
// each, then "ready".
const slowChild = `trap 'sleep 1; exit 0' TERM
sh -c 'trap "" TERM; exec sleep 1000' &
echo "pid ingroup $!"
setsid sh -c 'trap "" TERM; exec sleep 1000' &
echo "pid setsid $!"
echo "pid cmd $$"
echo ready
while :; do sleep 1 & wait $!; done`

// startKeeperTest starts leaderd with child script on a fresh agent and
// returns it once the child is ready, with the pids the child printed.
func startKeeperTest(t *testing.T, h *hub, service, script string, env ...string) (*proc, map[string]int) {
	t.Helper()
	agent := faultAgent(t)
	seedKey(t, agent.Addr, "services/"+service+"/leader")
	args := append(keeperArgs(service), "--", "sh", "-c", script)
	p := start(t, h, "a", append([]string{"CONSUL_HTTP_ADDR=" + agent.Addr}, env...), args...)
	h.wait(t, 20*time.Second, 0, "the child ready", func(l logLine) bool { return l.p == p && l.stdout && l.raw == "ready" })
	pids := map[string]int{}
	for _, l := range h.all() {
		if f := strings.Fields(l.raw); l.stdout && len(f) == 3 && f[0] == "pid" {
			pid, err := strconv.Atoi(f[2])
			if err != nil {
				t.Fatalf("child line %q", l.raw)
			}
			pids[f[1]] = pid
		}
	}
	if len(pids) != 3 {
		t.Fatalf("the child printed pids %v, want cmd, ingroup and setsid", pids)
	}
	return p, pids
}

// TestKeeperFrozenLeaderd: leaderd alone (not its child) is SIGSTOPped for
// longer than its lease. The keeper stops the child by itself: its whole
// tree is dead before the lease from leaderd's last proof ends (proof +
// lock-delay: Consul could let another session in from then on), while
// leaderd is still stopped. Resumed, leaderd steps down and exits cleanly.
func TestKeeperFrozenLeaderd(t *testing.T) {
	t.Parallel()
	h := newHub()
	p, pids := startKeeperTest(t, h, "keeper-freeze", slowChild)
	w := history.NewProcWatch(p.cmd.Process.Pid)
	p.signal(t, syscall.SIGSTOP)
	for deadline := time.Now().Add(5 * time.Second); !w.Stopped(); runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("leaderd not stopped 5s after SIGSTOP")
		}
	}
	stoppedAt := time.Now()
	deadAt := waitAllGone(t, 10*time.Second, pids)
	if !w.Stopped() {
		t.Error("leaderd was no longer stopped when the child was seen dead")
	}
	proof := lastProof(t, h, p, deadAt)
	end := proof.Add(keeperLockDelay)
	t.Logf("leaderd stopped %s after its last proof; the child's tree seen dead %s after the proof, %s before the lease's end (proof + lock-delay), %s after leaderd's own lease end",
		faultMS(stoppedAt.Sub(proof)), faultMS(deadAt.Sub(proof)), faultMS(end.Sub(deadAt)), faultMS(deadAt.Sub(end.Add(-faultMargin))))
	if !deadAt.Before(end) {
		t.Errorf("the child's tree was still alive %v after the lease ended", deadAt.Sub(end))
	}
	keeperSaid(t, h, p, "lease ended; stopping child")

	mark := h.mark()
	p.signal(t, syscall.SIGCONT)
	h.wait(t, 5*time.Second, mark, "a stepping down after its resume", from(p, "stepping down"))
	p.signal(t, syscall.SIGTERM)
	if code := p.exit(t, 15*time.Second); code != 0 {
		t.Errorf("leaderd exited %d after SIGTERM, want 0", code)
	}
}

// TestKeeperKilledLeaderd: leaderd is SIGKILLed while its child runs with
// two grandchildren, one of them in a session of its own. The keeper sees
// its pipe end and kills the whole tree at once, then exits.
func TestKeeperKilledLeaderd(t *testing.T) {
	t.Parallel()
	h := newHub()
	p, pids := startKeeperTest(t, h, "keeper-kill", `sleep 1000 &
echo "pid ingroup $!"
setsid sleep 1000 &
echo "pid setsid $!"
echo "pid cmd $$"
echo ready
exec sleep 1000`)
	pids["keeper"] = keeperOf(t, p.cmd.Process.Pid)
	killed := time.Now()
	p.signal(t, syscall.SIGKILL)
	deadAt := waitAllGone(t, 10*time.Second, pids)
	t.Logf("SIGKILL of leaderd: its child, both grandchildren and the keeper seen dead %s later", faultMS(deadAt.Sub(killed)))
	if d := deadAt.Sub(killed); d > faultSlack {
		t.Errorf("the child's tree died %v after leaderd, want at once", d)
	}
}

// TestKeeperWedgedLoop: leaderd's election loop wedges (a test hook blocks
// it in OnLease; the session goroutine still renews). No lease end reaches
// the keeper any more, and it kills the child by the end of the last lease
// it was told of, while leaderd still runs.
func TestKeeperWedgedLoop(t *testing.T) {
	t.Parallel()
	h := newHub()
	p, pids := startKeeperTest(t, h, "keeper-wedge", slowChild, "LEADERD_TEST_HOOKS=1")
	mark := h.mark()
	p.signal(t, syscall.SIGUSR2)
	// The wedged call is for a proof sent before this line; the keeper
	// has the lease of the proof before, which ends earlier.
	wedgedAt := lineTime(t, h.wait(t, 5*time.Second, mark, "the loop wedged", from(p, "test hook: wedging the election loop")))
	deadAt := waitAllGone(t, 10*time.Second, pids)
	end := wedgedAt.Add(keeperLockDelay)
	t.Logf("loop wedged; the child's tree seen dead %s later, %s before the end of the wedged proof's lease", faultMS(deadAt.Sub(wedgedAt)), faultMS(end.Sub(deadAt)))
	if !deadAt.Before(end) {
		t.Errorf("the child's tree was still alive %v after the lease ended", deadAt.Sub(end))
	}
	select {
	case <-p.done:
		t.Errorf("leaderd exited (%d): the test wants it running, wedged", p.code)
	default:
	}
	keeperSaid(t, h, p, "lease ended; stopping child")
}

// all is every line so far.
func (h *hub) all() []logLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lines
}

// lineTime is a JSON log line's time.
func lineTime(t *testing.T, l logLine) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, l.str("time"))
	if err != nil {
		t.Fatalf("log line without a time: %s", l.raw)
	}
	return at
}

// lastProof is the send time of p's latest session proof logged before t:
// a renew (its log time less its latency), a create or an acquire (their
// log time, later than the send: a looser bound).
func lastProof(t *testing.T, h *hub, p *proc, before time.Time) time.Time {
	t.Helper()
	var last time.Time
	for _, l := range h.all() {
		if l.p != p || l.stdout {
			continue
		}
		var at time.Time
		switch l.msg() {
		case "session renewed":
			at = lineTime(t, l).Add(-time.Duration(l.num("latency")))
		case "session created", "elected":
			at = lineTime(t, l)
		default:
			continue
		}
		if at.Before(before) && at.After(last) {
			last = at
		}
	}
	if last.IsZero() {
		t.Fatalf("no session proof of %s logged", p.name)
	}
	return last
}

// keeperSaid checks that p's keeper logged msg.
func keeperSaid(t *testing.T, h *hub, p *proc, msg string) {
	t.Helper()
	for _, l := range h.all() {
		if l.p == p && l.str("component") == "keeper" && l.msg() == msg {
			return
		}
	}
	t.Errorf("the keeper did not log %q", msg)
}

// waitAllGone waits until every pid is dead and returns when they were
// seen so: an upper bound on the last death.
func waitAllGone(t *testing.T, timeout time.Duration, pids map[string]int) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, pid := range pids {
		waitGone(t, pid, time.Until(deadline))
	}
	return time.Now()
}

// keeperOf is the pid of leaderd's keeper: its child running __keeper.
func keeperOf(t *testing.T, leaderd int) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		i := bytes.LastIndexByte(st, ')')
		if i < 0 || !bytes.Contains(cmd, []byte("\x00__keeper\x00")) {
			continue
		}
		if f := strings.Fields(string(st[i+1:])); len(f) > 1 && f[1] == strconv.Itoa(leaderd) {
			return pid
		}
	}
	t.Fatalf("no keeper process under leaderd %d", leaderd)
	return 0
}
