package integration

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/leaderd/leaderd/elect/child"
	"github.com/leaderd/leaderd/integration/consultest"
	"github.com/leaderd/leaderd/integration/history"
)

// The fault tests share these settings: short leases so a fault plays out
// in seconds, and TTL-only sessions (-check-ttl 0) unless a test binds its
// session to a check. -kill-timeout 500ms makes leaderd's margin 1s, so a
// leader's lease is its last proof + lock-delay − margin = 2s, and it
// renews every min(ttl/3, lease/3) ≈ 667ms. A crashed leader's session
// ends TTL..2×TTL after its last renew, then Consul keeps the key for
// the lock-delay: a follower leads faultTTL−faultRenew+faultLockDelay to
// 2×faultTTL+faultLockDelay after the crash.
const (
	faultTTL         = 3 * time.Second
	faultLockDelay   = 3 * time.Second
	faultKillTimeout = 500 * time.Millisecond
	faultMargin      = faultKillTimeout + 500*time.Millisecond // leaderd's killMargin
	faultLease       = faultLockDelay - faultMargin
	faultRenew       = faultLease / 3 // below faultTTL/3
	// faultSlack absorbs a loaded two-core machine in every bound.
	faultSlack = 2 * time.Second
	// faultPoll is how often the child log and child pids are polled.
	faultPoll = 5 * time.Millisecond
)

// faultAgent is a dev agent that accepts 1s session TTLs.
func faultAgent(t *testing.T, hcl ...string) *consultest.Agent {
	t.Helper()
	return consultest.Start(t, consultest.Options{HCL: append([]string{`session_ttl_min = "1s"`}, hcl...)})
}

// faultRig is one fault test's world: the history of every leaderd it
// starts and of their children, which append to one shared file.
type faultRig struct {
	t        *testing.T
	h        *history.History
	service  string
	childLog string
	children *history.ChildLog
	seq      int // processes started, for unique log names
	// settings are the flags every leaderd starts with: the short fault
	// leases by default; nil runs leaderd with its own defaults.
	settings []string
}

func newFaultRig(t *testing.T, service string) *faultRig {
	r := &faultRig{t: t, h: history.New(), service: service, childLog: filepath.Join(t.TempDir(), "children.log"),
		settings: faultSettings()}
	r.children = r.h.FollowChildLog(r.childLog, faultPoll)
	// Registered first, so it runs last: after every process is killed.
	t.Cleanup(r.children.Stop)
	return r
}

// faultSettings are the flags of the fault leases (see faultTTL).
func faultSettings() []string {
	return []string{"-ttl", faultTTL.String(), "-lock-delay", faultLockDelay.String(),
		"-check-ttl", "0", "-kill-timeout", faultKillTimeout.String()}
}

// faultProc is one leaderd process.
type faultProc struct {
	r    *faultRig
	name string // candidate id
	pid  int
	done chan struct{} // closed once it exited and ProcGone is recorded
	code int
}

// start runs `leaderd run` for candidate name against consul (host:port),
// with ChildScript as its child. flags replace r.settings (faultSettings
// unless changed) where they repeat them: the flag package keeps the
// last. env is added to the environment.
func (r *faultRig) start(name, consul string, flags []string, env ...string) *faultProc {
	t := r.t
	t.Helper()
	r.seq++
	args := append([]string{"run", "-service", r.service, "-id", name}, r.settings...)
	args = append(args, "-listen", "", "-log-format", "json")
	args = append(append(args, flags...), "--", "sh", "-c", history.ChildScript)
	cmd := exec.Command(leaderdBin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"CONSUL_HTTP_ADDR=" + consul, history.ChildLogEnv + "=" + r.childLog}, env...)
	// Its own process group, so cleanup can kill it whole; Pdeathsig so it
	// dies with the test (and its child with it: the keeper kills the
	// child's group when leaderd dies).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// An *os.File as stderr: Wait returns when leaderd exits, not when its
	// last grandchild closes the pipe, so ProcGone is timely.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	logf, err := os.Create(filepath.Join(t.ArtifactDir(), fmt.Sprintf("leaderd-%s-%d.log", name, r.seq)))
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProc{r: r, name: name, done: make(chan struct{})}
	// Pdeathsig follows the creating thread, not the process: p.done
	// keeps that thread until leaderd is reaped.
	err = child.StartLocked(cmd.Start, p.done)
	pw.Close()
	if err == nil {
		p.pid = cmd.Process.Pid
		go func() {
			_ = cmd.Wait()
			p.code = cmd.ProcessState.ExitCode()
			r.h.Add(history.Event{Candidate: name, Kind: history.ProcGone, PID: p.pid, Note: fmt.Sprintf("exit %d", p.code)})
			close(p.done)
		}()
	}
	if err != nil {
		pr.Close()
		logf.Close()
		t.Fatalf("start leaderd %s: %v", name, err)
	}
	go p.scan(pr, logf)
	t.Cleanup(func() {
		syscall.Kill(-p.pid, syscall.SIGKILL) // a frozen leaderd too
		<-p.done
	})
	return p
}

// scan feeds leaderd's log lines to the history and keeps them as an
// artifact.
func (p *faultProc) scan(r io.ReadCloser, logf *os.File) {
	defer r.Close()
	defer logf.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Fprintln(logf, sc.Text())
		if e, ok := history.ParseLeaderd(p.name, p.pid, sc.Bytes()); ok {
			p.r.h.Add(e)
		}
	}
}

// signal sends sig to leaderd.
func (p *faultProc) signal(sig syscall.Signal) {
	p.r.t.Helper()
	if err := syscall.Kill(p.pid, sig); err != nil {
		p.r.t.Fatalf("signal %v to leaderd %s: %v", sig, p.name, err)
	}
}

// exit waits for leaderd to end and returns its exit code.
func (p *faultProc) exit(timeout time.Duration) int {
	p.r.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		p.r.t.Fatalf("leaderd %s still running %v later", p.name, timeout)
	}
	return -1
}

// kill SIGKILLs leaderd, recording the fault, and waits until it is gone.
func (p *faultProc) kill() (sent time.Time) {
	p.r.t.Helper()
	sent = time.Now()
	p.r.h.Add(history.Event{At: sent, Candidate: p.name, Kind: history.Fault, Note: "SIGKILL"})
	p.signal(syscall.SIGKILL)
	p.exit(5 * time.Second)
	return sent
}

// stop SIGTERMs leaderd and waits for a clean exit.
func (p *faultProc) stop() {
	p.r.t.Helper()
	p.signal(syscall.SIGTERM)
	if code := p.exit(10 * time.Second); code != 0 {
		p.r.t.Errorf("leaderd %s exited %d after SIGTERM, want 0", p.name, code)
	}
}

// mark is the number of events so far: wait(…, mark, …) skips them.
func (r *faultRig) mark() int { return r.h.Len() }

// wait returns the first event from mark on that matches, or fails the
// test with the timeline.
func (r *faultRig) wait(timeout time.Duration, mark int, what string, match func(history.Event) bool) history.Event {
	r.t.Helper()
	e, err := r.h.Wait(mark, timeout, match)
	if err != nil {
		r.t.Fatalf("no %s within %v; the history so far:\n%s", what, timeout, r.h.Timeline())
	}
	return e
}

// evIs matches events of kind k, of candidate cand if not "".
func evIs(k history.Kind, cand string) func(history.Event) bool {
	return func(e history.Event) bool { return e.Kind == k && (cand == "" || e.Candidate == cand) }
}

// term is a term as the test saw it begin: leaderd's elected record and
// its child's start record.
type term struct {
	elected, child history.Event
}

// leading waits for candidate p (any candidate if nil) to be elected and
// its child to start. The two records come by different paths (leaderd's
// log, the child log), so it waits for both.
func (r *faultRig) leading(timeout time.Duration, mark int, p *faultProc) term {
	r.t.Helper()
	cand := ""
	if p != nil {
		cand = p.name
	}
	deadline := time.Now().Add(timeout)
	child := r.wait(timeout, mark, "child start of "+cmp.Or(cand, "a new leader"), evIs(history.ChildStart, cand))
	elected := r.wait(max(time.Until(deadline), time.Second), mark, "election of "+child.Candidate, func(e history.Event) bool {
		return e.Kind == history.Elected && e.Candidate == child.Candidate && e.Token == child.Token
	})
	return term{elected: elected, child: child}
}

// lastLeader is the candidate of the latest elected record.
func (r *faultRig) lastLeader() string {
	evs := r.events(history.Elected, "", time.Time{}, time.Time{})
	if len(evs) == 0 {
		return ""
	}
	return evs[len(evs)-1].Candidate
}

// following waits for p to see leader as the leader.
func (r *faultRig) following(timeout time.Duration, mark int, p *faultProc, leader string) {
	r.t.Helper()
	r.wait(timeout, mark, p.name+" following "+leader, func(e history.Event) bool {
		return e.Kind == history.LeaderSeen && e.Candidate == p.name && e.Note == leader
	})
}

// childPID is the pid of p's current child, from its latest start record.
func (r *faultRig) childPID(p *faultProc) int {
	pid := 0
	for _, e := range r.h.Events() {
		if e.Kind == history.ChildStart && e.Candidate == p.name {
			pid = e.PID
		}
	}
	return pid
}

// freeze SIGSTOPs leaderd p and its child's process group, and records
// them Frozen once both are seen stopped. It returns the pids.
func (r *faultRig) freeze(p *faultProc) (leaderd, child int) {
	r.t.Helper()
	child = r.childPID(p)
	watches := []*history.ProcWatch{history.NewProcWatch(p.pid)}
	if child != 0 {
		watches = append(watches, history.NewProcWatch(child))
	}
	r.h.Add(history.Event{Candidate: p.name, Kind: history.Fault, Note: "SIGSTOP leaderd and child"})
	p.signal(syscall.SIGSTOP)
	if child != 0 {
		syscall.Kill(-child, syscall.SIGSTOP)
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for _, w := range watches {
		for !w.Stopped() {
			if time.Now().After(deadline) {
				r.t.Fatalf("%s not stopped 5s after SIGSTOP", p.name)
			}
			<-tick.C
		}
	}
	now := time.Now()
	r.h.Add(history.Event{At: now, Candidate: p.name, Kind: history.Frozen, PID: p.pid})
	if child != 0 {
		r.h.Add(history.Event{At: now, Candidate: p.name, Kind: history.Frozen, PID: child})
	}
	return p.pid, child
}

// resume records pids Resumed, then SIGCONTs them in order (a child pid
// as its whole process group).
func (r *faultRig) resume(p *faultProc, pids ...int) time.Time {
	now := time.Now()
	for _, pid := range pids {
		r.h.Add(history.Event{At: now, Candidate: p.name, Kind: history.Resumed, PID: pid})
	}
	for _, pid := range pids {
		if pid == p.pid {
			syscall.Kill(pid, syscall.SIGCONT)
		} else {
			syscall.Kill(-pid, syscall.SIGCONT)
		}
	}
	return now
}

// note records an event of kind k (Fault, Heal, Epoch, Note) about
// candidate cand ("" test-wide), and returns its time.
func (r *faultRig) note(k history.Kind, cand, format string, a ...any) time.Time {
	now := time.Now()
	r.h.Add(history.Event{At: now, Candidate: cand, Kind: k, Note: fmt.Sprintf(format, a...)})
	return now
}

// lastProof is the send time of p's latest session proof before t (needs
// -log-level debug).
func (r *faultRig) lastProof(p *faultProc, t time.Time) time.Time {
	r.t.Helper()
	proofs := r.events(history.Proof, p.name, time.Time{}, t)
	if len(proofs) == 0 {
		r.t.Fatalf("no session proof of %s before %v: is -log-level debug set?", p.name, t)
	}
	return proofs[len(proofs)-1].At
}

// verify reads the child log up to now and checks the history (see
// history.Verify), ending it now.
func (r *faultRig) verify(opts history.Options) history.Report {
	r.t.Helper()
	r.children.Flush()
	return history.Verify(r.t, r.h, opts)
}

// events returns the events of kind k by cand ("" anyone) in [from, to]
// (zero to: no end).
func (r *faultRig) events(k history.Kind, cand string, from, to time.Time) []history.Event {
	var out []history.Event
	for _, e := range r.h.Events() {
		if e.Kind == k && (cand == "" || e.Candidate == cand) && !e.At.Before(from) && (to.IsZero() || !e.At.After(to)) {
			out = append(out, e)
		}
	}
	return out
}

// faultMS formats a duration in milliseconds for the figures tests log.
func faultMS(d time.Duration) string {
	return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
}
