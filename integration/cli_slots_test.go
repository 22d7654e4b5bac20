package integration

import (
	"encoding/json"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leaderd/leaderd/integration/consultest"
)

// Slots tests: `leaderd run -n 2` with the fast flags, lease 2s − 1s, a
// dead holder's slot taken lock-delay + margin = 3s after it was seen dead.
const (
	slotsLockDelay = 2 * time.Second
	slotsMargin    = time.Second // -kill-timeout 500ms + 500ms
	slotsPrune     = slotsLockDelay + slotsMargin
)

func slotsArgs(prefix, id string) []string {
	return []string{"run", "-n", "2", "-key", prefix, "-id", id, "-ttl", testTTL.String(), "-lock-delay", slotsLockDelay.String(),
		"-check-ttl", "0", "-kill-timeout", killTimeout, "-listen", "127.0.0.1:0", "-log-format", "json", "--", "sh", "-c", childScript}
}

// childSpans are the lives of every child in a child log: from its start
// record to its stop record, or to the moment the test saw it gone
// (gone[pid]), or to now if it still runs.
type childSpan struct {
	id         string
	pid        int
	start, end time.Time
}

func childSpans(evs []childEvent, gone map[int]time.Time) []childSpan {
	var spans []childSpan
	open := map[int]int{}
	for _, ev := range evs {
		switch ev.Kind {
		case "start":
			open[ev.PID] = len(spans)
			spans = append(spans, childSpan{id: ev.ID, pid: ev.PID, start: ev.At})
		case "term", "int":
			if i, ok := open[ev.PID]; ok {
				spans[i].end = ev.At
				delete(open, ev.PID)
			}
		}
	}
	for _, i := range open {
		if g, ok := gone[spans[i].pid]; ok {
			spans[i].end = g
		} else {
			spans[i].end = time.Now()
		}
	}
	return spans
}

// maxRunning is the most children alive at one moment, and the ids then.
func maxRunning(spans []childSpan) (int, []string) {
	best, ids := 0, []string(nil)
	for _, s := range spans {
		var at []string
		for _, o := range spans {
			if !o.start.After(s.start) && o.end.After(s.start) {
				at = append(at, o.id)
			}
		}
		if len(at) > best {
			best, ids = len(at), at
		}
	}
	return best, ids
}

// goneBook records when the test saw a child's pid gone.
type goneBook struct {
	mu sync.Mutex
	at map[int]time.Time
}

func (g *goneBook) wait(t *testing.T, pid int, timeout time.Duration) {
	t.Helper()
	waitGone(t, pid, timeout)
	g.mu.Lock()
	g.at[pid] = time.Now()
	g.mu.Unlock()
}

// TestRunSlots: five `leaderd run -n 2`. Two children run, never three;
// the status endpoint, /metrics and `leaderd leader -n 2` list the holders;
// SIGTERM of a holder frees its slot at once; SIGKILL of a holder frees
// it only after its session dies and a prune wait passes (the dead holder's
// lease is over by then), and fencing tokens keep increasing.
func TestRunSlots(t *testing.T) {
	agent := fastAgent(t)
	h := newHub()
	childLog := filepath.Join(t.TempDir(), "child.log")
	env := []string{"CONSUL_HTTP_ADDR=" + agent.Addr, "CHILD_LOG=" + childLog}
	const prefix = "services/slotest/slots"
	procs := map[string]*proc{}
	addr := map[string]string{}
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		procs[id] = start(t, h, id, env, slotsArgs(prefix, id)...)
		addr[id] = statusAddr(t, h, procs[id])
	}
	gb := &goneBook{at: map[int]time.Time{}}

	first := waitChild(t, h, 20*time.Second, 0)
	other := h.wait(t, 20*time.Second, 0, "a second child start", func(l logLine) bool {
		return from(nil, "child started")(l) && l.p != first.p
	})
	h.wait(t, 5*time.Second, 0, other.p.name+"'s child running", func(c logLine) bool { return c.p == other.p && childSaid("start")(c) })
	holders := map[*proc]logLine{first.p: first, other.p: other}
	if l := h.matching(0, from(nil, "child started")); len(l) != 2 {
		t.Fatalf("%d children started, want 2", len(l))
	}

	// Status, metrics, `leaderd leader -n 2`.
	for _, l := range holders {
		_, body := httpGet(t, addr[l.p.name], "/v1/status")
		var st struct {
			Role  string
			Token int64
			Slots struct {
				Limit   int
				Holders []struct {
					ID      string
					Session string
					Live    bool
					Self    bool
				}
			}
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("%s: /v1/status: %v\n%s", l.p.name, err, body)
		}
		self := 0
		for _, hd := range st.Slots.Holders {
			if hd.Self && hd.ID == l.p.name && hd.Live {
				self++
			}
		}
		if st.Role != "leader" || st.Token != l.num("token") || st.Slots.Limit != 2 || len(st.Slots.Holders) != 2 || self != 1 {
			t.Errorf("%s: /v1/status = %s", l.p.name, body)
		}
		if code, _ := httpGet(t, addr[l.p.name], "/v1/leader"); code != 200 {
			t.Errorf("%s: /v1/leader = %d, want 200", l.p.name, code)
		}
		_, m := httpGet(t, addr[l.p.name], "/metrics")
		for _, want := range []string{"leaderd_is_leader 1\n", "leaderd_slots_limit 2\n", "leaderd_slots_live_holders 2\n"} {
			if !strings.Contains(m, want) {
				t.Errorf("%s: /metrics lacks %q", l.p.name, want)
			}
		}
	}
	code, out, errOut := runOnce(t, 10*time.Second, env, "leader", "-n", "2", "-key", prefix)
	if code != 0 || strings.Count(out, "holder=") != 2 {
		t.Errorf("leaderd leader -n 2: exit %d\n%s%s", code, out, errOut)
	}
	for p := range holders {
		if !strings.Contains(out, "holder="+p.name+" ") {
			t.Errorf("leaderd leader -n 2 does not list %s:\n%s", p.name, out)
		}
	}
	var tokens []int64
	for _, l := range holders {
		tokens = append(tokens, l.num("token"))
	}

	// SIGTERM one holder: another fills its slot within seconds.
	var victim logLine
	for _, l := range holders {
		victim = l
		break
	}
	mark, t0 := h.mark(), time.Now()
	victim.p.signal(t, syscall.SIGTERM)
	if code := victim.p.exit(t, 5*time.Second); code != 0 {
		t.Errorf("%s exited %d after SIGTERM", victim.p.name, code)
	}
	refill := waitChild(t, h, 5*time.Second, mark)
	t.Logf("graceful: %s's slot refilled by %s %v after SIGTERM", victim.p.name, refill.p.name, time.Since(t0))
	if took := time.Since(t0); took > 3*time.Second {
		t.Errorf("graceful refill took %v", took)
	}
	tokens = append(tokens, refill.num("token"))
	delete(holders, victim.p)
	holders[refill.p] = refill

	// SIGKILL one holder: its child dies with it; the slot is refilled only
	// after the session dies (TTL..2×TTL) and a prune wait has passed.
	for _, l := range holders {
		victim = l
		break
	}
	mark, t0 = h.mark(), time.Now()
	victim.p.signal(t, syscall.SIGKILL)
	victim.p.exit(t, 5*time.Second)
	gb.wait(t, int(victim.num("pid")), 2*time.Second)
	refill = waitChild(t, h, 2*testTTL+slotsPrune+5*time.Second, mark)
	took := time.Since(t0)
	t.Logf("crash: %s's slot refilled by %s %v after SIGKILL (prune wait %v)", victim.p.name, refill.p.name, took, slotsPrune)
	if took < slotsPrune {
		t.Errorf("slot refilled %v after SIGKILL, before the prune wait %v", took, slotsPrune)
	}
	// The first candidate to see the dead holder logged it; the slot was
	// taken a full prune wait after that.
	dead := h.wait(t, time.Second, mark, "a holder seen dead", from(nil, "holder seen dead; its slot is free after its lease"))
	if d := logTime(t, refill).Sub(logTime(t, dead)); d < slotsPrune {
		t.Errorf("slot taken %v after %s saw the holder dead, before the prune wait %v", d, dead.p.name, slotsPrune)
	}
	tokens = append(tokens, refill.num("token"))
	if !slices.IsSorted(tokens[1:]) || tokens[2] <= max(tokens[0], tokens[1]) {
		t.Errorf("fencing tokens %v: each new slot term must be above the ones before", tokens)
	}

	// Stop everyone; never three children at once.
	stopAll(t, slices.Collect(maps.Values(procs))...)
	if n, ids := maxRunning(childSpans(readChildLog(t, childLog), gb.at)); n > 2 {
		t.Errorf("%d children at once (%v), limit 2", n, ids)
	}
}

// TestRunSlotsCrashWithCheckTTL: with fast crash detection a SIGKILLed
// holder's slot is refilled after check-ttl + lock-delay + margin, and not
// before lock-delay + margin: the prune wait after its session ended.
func TestRunSlotsCrashWithCheckTTL(t *testing.T) {
	agent := fastAgent(t)
	h := newHub()
	env := []string{"CONSUL_HTTP_ADDR=" + agent.Addr, "CHILD_LOG=" + filepath.Join(t.TempDir(), "child.log")}
	const prefix, checkTTL = "services/slotcheck/slots", time.Second
	var procs []*proc
	for _, id := range []string{"a", "b", "c"} {
		args := slotsArgs(prefix, id)
		args[slices.Index(args, "-check-ttl")+1] = checkTTL.String()
		procs = append(procs, start(t, h, id, env, args...))
	}
	first := waitChild(t, h, 20*time.Second, 0)
	h.wait(t, 10*time.Second, 0, "a second holder", func(l logLine) bool {
		return from(nil, "child started")(l) && l.p != first.p
	})
	mark, t0 := h.mark(), time.Now()
	first.p.signal(t, syscall.SIGKILL)
	first.p.exit(t, 5*time.Second)
	refill := waitChild(t, h, checkTTL+slotsPrune+5*time.Second, mark)
	took := time.Since(t0)
	t.Logf("crash: %s's slot refilled by %s %v after SIGKILL (check-ttl %v + prune wait %v)", first.p.name, refill.p.name, took, checkTTL, slotsPrune)
	if took < slotsPrune || took > checkTTL+slotsPrune+2*time.Second {
		t.Errorf("slot refilled %v after SIGKILL, want between %v and %v + slack", took, slotsPrune, checkTTL+slotsPrune)
	}
	stopAll(t, procs...)
}

// TestRunSlotsWithConsulLock: leaderd -n 2 and `consul lock -n 2` share one
// semaphore on one agent: never more than two children between them, and a
// slot either frees is taken by the other kind.
func TestRunSlotsWithConsulLock(t *testing.T) {
	agent := fastAgent(t)
	h := newHub()
	childLog := filepath.Join(t.TempDir(), "child.log")
	env := []string{"CONSUL_HTTP_ADDR=" + agent.Addr, "CHILD_LOG=" + childLog}
	const prefix = "services/mixed/slots"
	consul := consultest.Binary(t)

	// Two consul lock -n 2 first: they create .lock and take both slots.
	var locks []*exec.Cmd
	for _, id := range []string{"cl1", "cl2"} {
		cmd := exec.Command(consul, "lock", "-http-addr="+agent.Addr, "-n", "2", "-timeout", "30s", prefix, childScript)
		cmd.Env = append(baseEnv(), "CHILD_LOG="+childLog, "LEADERD_TOKEN=0", "LEADERD_ID="+id)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("consul lock %s:\n%s", id, out.String())
			}
		})
		locks = append(locks, cmd)
	}
	waitLog := func(what string, timeout time.Duration, cond func([]childEvent) bool) []childEvent {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			evs := readChildLog(t, childLog)
			if cond(evs) {
				return evs
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s within %v; child log: %+v", what, timeout, evs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	started := func(id string) func([]childEvent) bool {
		return func(evs []childEvent) bool {
			return slices.ContainsFunc(evs, func(e childEvent) bool { return e.Kind == "start" && e.ID == id })
		}
	}
	waitLog("consul lock children", 20*time.Second, func(evs []childEvent) bool { return started("cl1")(evs) && started("cl2")(evs) })

	// Three leaderd -n 2: the semaphore is full, none of them may start.
	var lds []*proc
	for _, id := range []string{"a", "b", "c"} {
		lds = append(lds, start(t, h, id, env, slotsArgs(prefix, id)...))
	}
	for _, p := range lds {
		h.wait(t, 20*time.Second, 0, p.name+" contending", from(p, "holders changed"))
	}
	time.Sleep(slotsPrune + time.Second) // a full prune wait: still nobody
	if l := h.matching(0, from(nil, "child started")); len(l) > 0 {
		t.Fatalf("a leaderd child started while consul lock held both slots: %s", l[0].raw)
	}

	// consul lock cl1 stops gracefully: a leaderd takes its slot.
	mark, t0 := h.mark(), time.Now()
	_ = syscall.Kill(-locks[0].Process.Pid, syscall.SIGTERM)
	ld1 := waitChild(t, h, 10*time.Second, mark)
	t.Logf("consul lock's slot taken by leaderd %s %v after its SIGTERM", ld1.p.name, time.Since(t0))

	// That leaderd stops gracefully: another leaderd takes the slot.
	mark, t0 = h.mark(), time.Now()
	ld1.p.signal(t, syscall.SIGTERM)
	ld1.p.exit(t, 5*time.Second)
	ld2 := waitChild(t, h, 10*time.Second, mark)
	t.Logf("leaderd %s's slot taken by leaderd %s %v after its SIGTERM", ld1.p.name, ld2.p.name, time.Since(t0))

	// A new consul lock waits: both slots are held.
	cl3 := exec.Command(consul, "lock", "-http-addr="+agent.Addr, "-n", "2", prefix, childScript)
	cl3.Env = append(baseEnv(), "CHILD_LOG="+childLog, "LEADERD_TOKEN=0", "LEADERD_ID=cl3")
	cl3.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cl3.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cl3.Process.Pid, syscall.SIGKILL); _ = cl3.Wait() })
	time.Sleep(2 * time.Second)
	if started("cl3")(readChildLog(t, childLog)) {
		t.Fatal("consul lock cl3 started while leaderd and cl2 held both slots")
	}
	// The leaderd holder stops: cl3 or the last leaderd takes the slot.
	mark = h.mark()
	ld2.p.signal(t, syscall.SIGTERM)
	ld2.p.exit(t, 5*time.Second)
	waitLog("the freed slot refilled", 10*time.Second, func(evs []childEvent) bool {
		return started("cl3")(evs) || len(h.matching(mark, from(nil, "child started"))) > 0
	})

	// Another limit on the same semaphore is refused, as consul lock does.
	args := slotsArgs(prefix, "wrong-n")
	args[2] = "3"
	if code, _, errOut := runOnce(t, 20*time.Second, env, args...); code != 1 || !strings.Contains(errOut, "limit 2, ours is 3") {
		t.Errorf("leaderd run -n 3 on a semaphore of 2: exit %d, stderr:\n%s", code, errOut)
	}

	stopAll(t, lds...)
	_ = syscall.Kill(-locks[1].Process.Pid, syscall.SIGTERM)
	_ = syscall.Kill(-cl3.Process.Pid, syscall.SIGTERM)
	// Their children's stop lines are in the log once they are gone.
	waitGone(t, locks[1].Process.Pid, 15*time.Second)
	waitGone(t, cl3.Process.Pid, 15*time.Second)
	if n, ids := maxRunning(childSpans(readChildLog(t, childLog), nil)); n > 2 {
		t.Errorf("%d children at once (%v), limit 2", n, ids)
	}
}

// logTime is the time of a leaderd JSON log line.
func logTime(t *testing.T, l logLine) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, l.str("time"))
	if err != nil {
		t.Fatalf("log line without a time: %s", l.raw)
	}
	return at
}

// stopAll sends SIGTERM to every process still running and waits for all.
func stopAll(t *testing.T, ps ...*proc) {
	t.Helper()
	for _, p := range ps {
		select {
		case <-p.done:
		default:
			p.signal(t, syscall.SIGTERM)
		}
	}
	for _, p := range ps {
		p.exit(t, 10*time.Second)
	}
}

// matching returns the lines at or after index from that match.
func (h *hub) matching(from int, match func(logLine) bool) []logLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logLine
	for _, l := range h.lines[min(from, len(h.lines)):] {
		if match(l) {
			out = append(out, l)
		}
	}
	return out
}
