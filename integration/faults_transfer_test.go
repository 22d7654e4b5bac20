package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
	"github.com/leaderd/leaderd/elect"
	"github.com/leaderd/leaderd/integration/consultest"
	"github.com/leaderd/leaderd/integration/history"
)

// The handover tests: a leader that lets go (SIGTERM) stops its child,
// then moves the key in one transaction [unlock ours, lock theirs] to the
// best live candidate, which leads on seeing its own session on the key.
// Each leaderd talks to Consul through a consulTap of its own, so a test
// sees which candidate wrote what, and can act at the very moment a
// handover passes.

// tapOp is one operation of a transaction as it went to Consul.
type tapOp struct{ Verb, Key, Session string }

// tapTxn is one PUT /v1/txn a candidate sent: its ops, when it was
// received, and Consul's answer (409: rolled back) with the ModifyIndex of
// its first result (the transaction's Raft index).
type tapTxn struct {
	At    time.Time
	Ops   []tapOp
	Code  int
	Index uint64
}

// lonelock: a lone lock of key, an acquire.
func (x tapTxn) lonelock(key string) bool {
	return len(x.Ops) == 1 && x.Ops[0].Verb == consulhttp.TxnLock && x.Ops[0].Key == key
}

// handover: [unlock key, lock key], a handover.
func (x tapTxn) handover(key string) bool {
	return len(x.Ops) == 2 && x.Ops[0].Verb == consulhttp.TxnUnlock && x.Ops[0].Key == key &&
		x.Ops[1].Verb == consulhttp.TxnLock && x.Ops[1].Key == key
}

// consulTap is an HTTP reverse proxy between one leaderd and its Consul
// agent that records the transactions and releases that candidate sends,
// and can run a hook before a transaction is forwarded.
type consulTap struct {
	name string
	addr string
	rp   *httputil.ReverseProxy

	mu       sync.Mutex
	txns     []tapTxn
	releases []time.Time // PUT /v1/kv/…?release=
	before   func(ops []tapOp)
	after    func(x tapTxn)
}

func startConsulTap(t *testing.T, name, target string) *consulTap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &consulTap{name: name, addr: ln.Addr().String(),
		rp: httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})}
	// Canceled blocking queries are routine: answer 502 quietly.
	p.rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(http.StatusBadGateway) }
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) // returns when closed at cleanup
	t.Cleanup(func() { srv.Close() })
	return p
}

// onTxn runs f (nil: nothing) on every transaction before it is forwarded.
func (p *consulTap) onTxn(f func(ops []tapOp)) {
	p.mu.Lock()
	p.before = f
	p.mu.Unlock()
}

// afterTxn runs f (nil: nothing) on every transaction once Consul has
// answered it, before the candidate gets the answer.
func (p *consulTap) afterTxn(f func(x tapTxn)) {
	p.mu.Lock()
	p.after = f
	p.mu.Unlock()
}

// heldAnswer keeps an answer from Consul (a transaction's: small, not
// streamed) until the tap passes it on.
type heldAnswer struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (a *heldAnswer) Header() http.Header         { return a.header }
func (a *heldAnswer) WriteHeader(code int)        { a.code = code }
func (a *heldAnswer) Write(b []byte) (int, error) { return a.body.Write(b) }

func (p *consulTap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v1/kv/") && r.URL.Query().Has("release") {
		p.mu.Lock()
		p.releases = append(p.releases, time.Now())
		p.mu.Unlock()
	}
	if r.Method != http.MethodPut || r.URL.Path != "/v1/txn" {
		p.rp.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var raw []struct{ KV tapOp }
	_ = json.Unmarshal(body, &raw)
	x := tapTxn{At: time.Now()}
	for _, op := range raw {
		x.Ops = append(x.Ops, op.KV)
	}
	p.mu.Lock()
	before, after := p.before, p.after
	p.mu.Unlock()
	if before != nil {
		before(x.Ops)
	}
	a := &heldAnswer{header: w.Header(), code: http.StatusOK}
	p.rp.ServeHTTP(a, r)
	x.Code = a.code
	var out struct {
		Results []struct{ KV struct{ ModifyIndex uint64 } }
	}
	if json.Unmarshal(a.body.Bytes(), &out) == nil && len(out.Results) > 0 {
		x.Index = out.Results[0].KV.ModifyIndex
	}
	p.mu.Lock()
	p.txns = append(p.txns, x)
	p.mu.Unlock()
	if after != nil {
		after(x)
	}
	w.WriteHeader(a.code)
	w.Write(a.body.Bytes())
}

// seen returns the transactions received from from on that match.
func (p *consulTap) seen(from time.Time, match func(tapTxn) bool) []tapTxn {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []tapTxn
	for _, x := range p.txns {
		if !x.At.Before(from) && match(x) {
			out = append(out, x)
		}
	}
	return out
}

// releasedSince counts the releases received from from on.
func (p *consulTap) releasedSince(from time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, at := range p.releases {
		if !at.Before(from) {
			n++
		}
	}
	return n
}

// transferRig is a handover test's world: one Consul agent, a fault rig,
// and a tap per candidate.
type transferRig struct {
	*faultRig
	agent  *consultest.Agent
	client *consulhttp.Client
	key    string
	procs  map[string]*faultProc
	taps   map[string]*consulTap
}

// transferChild: the child takes 1s to stop after SIGTERM, as real
// programs do; leaderd kills its group at -kill-timeout (500ms), so a
// handover comes about half a second after the signal.
var transferChild = history.ChildStopDelayEnv + "=1"

// newTransferRig starts candidate names[0] and waits until it leads, then
// the others, each following it, and waits until all are registered.
func newTransferRig(t *testing.T, service string, names ...string) *transferRig {
	t.Helper()
	agent := faultAgent(t)
	tr := &transferRig{faultRig: newFaultRig(t, service), agent: agent, client: consulClient(t, agent.Addr), key: elect.KeyFor(service),
		procs: map[string]*faultProc{}, taps: map[string]*consulTap{}}
	for i, name := range names {
		tap := startConsulTap(t, name, agent.Addr)
		tr.taps[name] = tap
		p := tr.start(name, tap.addr, nil, transferChild)
		tr.procs[name] = p
		if i == 0 {
			tr.leading(30*time.Second, 0, p)
		} else {
			tr.following(30*time.Second, 0, p, names[0])
		}
	}
	tr.registered(len(names), 30*time.Second)
	return tr
}

// registered waits until n candidates are live in the registry and returns
// them, best first. Nothing announces a registration to the test: it polls.
func (tr *transferRig) registered(n int, timeout time.Duration) []elect.CandidateEntry {
	tr.t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(timeout); ; <-tick.C {
		es, _, err := elect.Candidates(context.Background(), tr.client, tr.key)
		live := 0
		for _, e := range es {
			if e.Live {
				live++
			}
		}
		if err == nil && live == n {
			return es
		}
		if time.Now().After(deadline) {
			tr.t.Fatalf("%d live candidates registered after %v, want %d (err %v): %+v", live, timeout, n, err, es)
		}
	}
}

// successorOf is the best live candidate other than the leader: who a
// handover goes to.
func successorOf(es []elect.CandidateEntry) elect.CandidateEntry {
	for _, e := range es {
		if e.Live && !e.Leading {
			return e
		}
	}
	return elect.CandidateEntry{}
}

// keyNow reads the election key.
func (tr *transferRig) keyNow() consulhttp.KVPair {
	tr.t.Helper()
	p, _, err := tr.client.GetKV(context.Background(), tr.key, consulhttp.QueryOptions{})
	if err != nil || p == nil {
		tr.t.Fatalf("read %s: %+v, %v", tr.key, p, err)
	}
	return *p
}

// acquiresSince are the lone locks of the key that reached Consul from
// from on, by candidate.
func (tr *transferRig) acquiresSince(from time.Time) map[string][]tapTxn {
	out := map[string][]tapTxn{}
	for name, tap := range tr.taps {
		if xs := tap.seen(from, func(x tapTxn) bool { return x.lonelock(tr.key) }); len(xs) > 0 {
			out[name] = xs
		}
	}
	return out
}

// stopAll stops every candidate still running, the leader last so that
// nobody is handed the key on the way out.
func (tr *transferRig) stopAll(leader string) {
	tr.t.Helper()
	for name, p := range tr.procs {
		if name != leader && !p.exited() {
			p.stop()
		}
	}
	if p := tr.procs[leader]; p != nil && !p.exited() {
		p.stop()
	}
}

func (p *faultProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// TestFaultHandoverOneSuccessor: five candidates; the leader is SIGTERMed.
// It stops its child (1s), then hands the key in one transaction to the
// best live candidate, which leads with no lock-delay and no race: the
// followers send no acquire at all, the key's LockIndex goes up by exactly
// one (the handover's lock), and the successor's child starts well within
// the lock-delay after the old child died.
func TestFaultHandoverOneSuccessor(t *testing.T) {
	t.Parallel()
	tr := newTransferRig(t, "handover", "a", "b", "c", "d", "e")
	want := successorOf(tr.registered(5, 10*time.Second))
	before := tr.keyNow()

	mark := tr.mark()
	sent := tr.note(history.Fault, "a", "SIGTERM")
	tr.procs["a"].signal(syscall.SIGTERM)
	next := tr.leading(10*time.Second, mark, nil)
	if code := tr.procs["a"].exit(10 * time.Second); code != 0 {
		t.Errorf("leaderd a exited %d after SIGTERM, want 0", code)
	}
	after := tr.keyNow()
	dead := tr.wait(5*time.Second, mark, "a's child reaped", evIs(history.ChildReaped, "a"))

	handovers := tr.taps["a"].seen(sent, func(x tapTxn) bool { return x.handover(tr.key) })
	acquires := tr.acquiresSince(sent)
	gap := next.elected.At.Sub(dead.At)
	t.Logf("SIGTERM of a: its child reaped %s later; %s elected %s after that, its child started %s after it; handover txns from a: %d; acquires from anyone: %v; LockIndex %d → %d",
		faultMS(dead.At.Sub(sent)), next.elected.Candidate, faultMS(gap), faultMS(next.child.At.Sub(dead.At)), len(handovers), acquires, before.LockIndex, after.LockIndex)

	if next.elected.Candidate != want.ID {
		t.Errorf("%s leads after the handover, want %s, the best live candidate", next.elected.Candidate, want.ID)
	}
	if len(handovers) != 1 || handovers[0].Code != http.StatusOK || handovers[0].Ops[0].Session != before.Session || handovers[0].Ops[1].Session != want.Session {
		t.Errorf("a's handover transactions %+v, want one [unlock %s, lock %s] answered 200", handovers, before.Session, want.Session)
	}
	if len(acquires) != 0 {
		t.Errorf("acquires reached Consul during a handover: %+v; the successor should lead on the handover alone", acquires)
	}
	if n := tr.taps["a"].releasedSince(sent); n != 0 {
		t.Errorf("a sent %d releases as well as its handover", n)
	}
	if after.Session != want.Session || after.LockIndex != before.LockIndex+1 {
		t.Errorf("after the handover the key is held by %s with LockIndex %d, want %s's session %s with LockIndex %d (one lock)",
			after.Session, after.LockIndex, want.ID, want.Session, before.LockIndex+1)
	}
	if bound := faultLockDelay / 2; gap > bound {
		t.Errorf("%s elected %v after a's child died, want well under the lock-delay %v (at most %v)", next.elected.Candidate, gap, faultLockDelay, bound)
	}
	tr.stopAll(next.elected.Candidate)
	tr.verify(history.Options{})
}

// TestFaultHandoverSuccessorVanishes: the successor's session is destroyed
// during the leader's handover.
//
// Before the transaction reaches Consul: it fails as a whole (the key
// stays the leader's), the leader falls back to a plain release, and
// exactly one other candidate leads at once, never two at a time.
//
// Right after Consul committed it (before the leader hears back): the key
// is held by a destroyed session, so Consul keeps it for that session's
// lock-delay. The successor may lead briefly on its last proof (it can't
// know yet), and must be dead before anyone else leads; nobody else may
// lead before the lock-delay is over.
func TestFaultHandoverSuccessorVanishes(t *testing.T) {
	t.Parallel()
	t.Run("before the handover commits", func(t *testing.T) {
		t.Parallel()
		tr := newTransferRig(t, "vanish-before", "a", "b", "c", "d")
		want := successorOf(tr.registered(4, 10*time.Second))
		before := tr.keyNow()
		var once sync.Once
		destroyed := make(chan string, 1)
		tr.taps["a"].onTxn(func(ops []tapOp) {
			if !(tapTxn{Ops: ops}).handover(tr.key) {
				return
			}
			once.Do(func() {
				sid := ops[1].Session
				tr.note(history.Fault, "", "handover to session %s on its way: destroying that session", sid)
				if err := destroySession(tr.agent.Addr, sid); err != nil {
					t.Errorf("destroy session %s: %v", sid, err)
				}
				destroyed <- sid
			})
		})

		mark := tr.mark()
		sent := tr.note(history.Fault, "a", "SIGTERM")
		tr.procs["a"].signal(syscall.SIGTERM)
		next := tr.leading(10*time.Second, mark, nil)
		if code := tr.procs["a"].exit(10 * time.Second); code != 0 {
			t.Errorf("leaderd a exited %d after SIGTERM, want 0", code)
		}
		var sid string
		select {
		case sid = <-destroyed:
		default:
			t.Fatalf("a sent no handover transaction; the history:\n%s", tr.h.Timeline())
		}
		handovers := tr.taps["a"].seen(sent, func(x tapTxn) bool { return x.handover(tr.key) })
		acquires := tr.acquiresSince(sent)
		dead := tr.wait(5*time.Second, mark, "a's child reaped", evIs(history.ChildReaped, "a"))
		after := tr.keyNow()
		t.Logf("a handed over to %s (session %s, destroyed on the way): answers %+v; then %d release(s); %s elected %s after a's child died; acquires %v; LockIndex %d → %d",
			want.ID, sid, handovers, tr.taps["a"].releasedSince(sent), next.elected.Candidate, faultMS(next.elected.At.Sub(dead.At)), acquires, before.LockIndex, after.LockIndex)

		if sid != want.Session {
			t.Errorf("a handed over to session %s, want %s's %s (the best live candidate)", sid, want.ID, want.Session)
		}
		if len(handovers) != 1 || handovers[0].Code == http.StatusOK {
			t.Errorf("a's handover transactions %+v, want one, rolled back", handovers)
		}
		if n := tr.taps["a"].releasedSince(sent); n != 1 {
			t.Errorf("a sent %d releases after its handover failed, want 1", n)
		}
		if next.elected.Candidate == "a" {
			t.Errorf("a leads again after its SIGTERM")
		}
		won := 0
		for _, xs := range acquires {
			for _, x := range xs {
				if x.Code == http.StatusOK {
					won++
				}
			}
		}
		if won != 1 || after.LockIndex != before.LockIndex+1 {
			t.Errorf("%d acquires won and LockIndex %d → %d, want exactly one new holder", won, before.LockIndex, after.LockIndex)
		}
		tr.stopAll(next.elected.Candidate)
		tr.verify(history.Options{})
	})

	t.Run("right after the handover commits", func(t *testing.T) {
		t.Parallel()
		tr := newTransferRig(t, "vanish-after", "a", "b", "c", "d")
		want := successorOf(tr.registered(4, 10*time.Second))
		var once sync.Once
		type destroy struct {
			at       time.Time
			handover tapTxn
		}
		destroyed := make(chan destroy, 1)
		tr.taps["a"].afterTxn(func(x tapTxn) {
			if !x.handover(tr.key) || x.Code != http.StatusOK {
				return
			}
			once.Do(func() {
				sid := x.Ops[1].Session
				at := tr.note(history.Fault, "", "handover to session %s committed (index %d): destroying that session", sid, x.Index)
				if err := destroySession(tr.agent.Addr, sid); err != nil {
					t.Errorf("destroy session %s: %v", sid, err)
				}
				destroyed <- destroy{at, x}
			})
		})

		mark := tr.mark()
		sent := tr.note(history.Fault, "a", "SIGTERM")
		tr.procs["a"].signal(syscall.SIGTERM)
		if code := tr.procs["a"].exit(10 * time.Second); code != 0 {
			t.Errorf("leaderd a exited %d after SIGTERM, want 0", code)
		}
		var d destroy
		select {
		case d = <-destroyed:
		default:
			t.Fatalf("a's handover did not commit; the history:\n%s", tr.h.Timeline())
		}
		// A term after the handover's: Consul lets nobody in before the
		// destroyed session's lock-delay is over.
		bound := faultLockDelay + 2*faultSlack
		next := tr.wait(bound+faultSlack, mark, "a term after the destroyed successor's", func(e history.Event) bool {
			return e.Kind == history.Elected && e.Token > d.handover.Index
		})
		child := tr.wait(10*time.Second, mark, "the child of "+next.Candidate, func(e history.Event) bool {
			return e.Kind == history.ChildStart && e.Candidate == next.Candidate && e.Token == next.Token
		})
		handed := "did not lead on the handover"
		if evs := tr.events(history.Elected, want.ID, sent, time.Time{}); len(evs) > 0 && evs[0].Token == d.handover.Index {
			handed = fmt.Sprintf("led on the handover from %s after the destroy", faultMS(evs[0].At.Sub(d.at)))
		}
		took := next.At.Sub(d.at)
		t.Logf("a handed over to %s (index %d); its session destroyed right after: %s %s; %s elected %s after the destroy (lock-delay %v), its child started %s after it",
			want.ID, d.handover.Index, want.ID, handed, next.Candidate, faultMS(took), faultLockDelay, faultMS(child.At.Sub(d.at)))
		if d.handover.Ops[1].Session != want.Session {
			t.Errorf("a handed over to session %s, want %s's %s (the best live candidate)", d.handover.Ops[1].Session, want.ID, want.Session)
		}
		if n := tr.taps["a"].releasedSince(sent); n != 0 {
			t.Errorf("a sent %d releases after its handover succeeded, want none", n)
		}
		if next.Candidate == "a" {
			t.Errorf("a leads again after its SIGTERM")
		}
		if took < faultLockDelay {
			t.Errorf("%s elected %v after the successor's session was destroyed, inside its lock-delay %v", next.Candidate, took, faultLockDelay)
		}
		if took > bound {
			t.Errorf("%s elected %v after the successor's session was destroyed, want within %v", next.Candidate, took, bound)
		}
		tr.stopAll(next.Candidate)
		tr.verify(history.Options{Settle: []history.Settle{{What: "after the destroy", After: d.at, Within: bound}}})
	})
}

// destroySession destroys session sid on the agent at addr, as an
// operator's `consul session destroy` does. Safe off the test goroutine.
func destroySession(addr, sid string) error {
	req, err := http.NewRequest(http.MethodPut, "http://"+addr+"/v1/session/destroy/"+sid, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PUT /v1/session/destroy/%s: %s", sid, resp.Status)
	}
	return nil
}

// TestFaultHandoverRacingCrash: the leader is SIGTERMed and its best
// successor SIGKILLed together: at the signal, or just as the handover
// transaction goes to Consul. The key may go to the dead successor's
// session, which Consul expires TTL..2×TTL after its last renew, then
// keeps the key for the lock-delay; or, if the session is gone first, the
// handover fails and the leader releases. Either way: never two leaders,
// and a leader again within the crash bound.
func TestFaultHandoverRacingCrash(t *testing.T) {
	t.Parallel()
	for _, atTxn := range []bool{false, true} {
		name := map[bool]string{false: "kill with the SIGTERM", true: "kill as the handover is sent"}[atTxn]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tr := newTransferRig(t, "race", "a", "b", "c", "d")
			succ := successorOf(tr.registered(4, 10*time.Second))
			victim := tr.procs[succ.ID]
			kill := func() time.Time {
				at := tr.note(history.Fault, victim.name, "SIGKILL")
				syscall.Kill(victim.pid, syscall.SIGKILL)
				return at
			}
			killed := make(chan time.Time, 1)
			if atTxn {
				var once sync.Once
				tr.taps["a"].onTxn(func(ops []tapOp) {
					if (tapTxn{Ops: ops}).handover(tr.key) {
						once.Do(func() { killed <- kill() })
					}
				})
			}
			mark := tr.mark()
			tr.note(history.Fault, "a", "SIGTERM")
			tr.procs["a"].signal(syscall.SIGTERM)
			if !atTxn {
				killed <- kill()
			}
			if code := tr.procs["a"].exit(10 * time.Second); code != 0 {
				t.Errorf("leaderd a exited %d after SIGTERM, want 0", code)
			}
			var at time.Time
			select {
			case at = <-killed:
			default:
				t.Fatalf("a sent no handover transaction; the history:\n%s", tr.h.Timeline())
			}
			victim.exit(5 * time.Second)
			// The crash bound of TestFaultKillLeader, from the kill, plus a
			// second for a's child to stop (killed at -kill-timeout).
			bound := 2*faultTTL + faultLockDelay + faultSlack + time.Second
			next := tr.leading(bound+faultSlack, mark, nil)
			handovers := tr.taps["a"].seen(at.Add(-5*time.Second), func(x tapTxn) bool { return x.handover(tr.key) })
			t.Logf("%s killed (%s); a's handover to it answered %+v; %s elected %s after the kill",
				succ.ID, name, handovers, next.elected.Candidate, faultMS(next.elected.At.Sub(at)))
			if next.elected.Candidate == "a" || next.elected.Candidate == succ.ID {
				t.Errorf("%s leads: a was stopped and %s killed", next.elected.Candidate, succ.ID)
			}
			if d := next.elected.At.Sub(at); d > bound {
				t.Errorf("a leader again %v after the kill, more than the bound %v", d, bound)
			}
			gone := tr.events(history.ProcGone, victim.name, at, time.Time{})[0].At
			tr.stopAll(next.elected.Candidate)
			tr.verify(history.Options{Settle: []history.Settle{{What: "after the handover and the kill", After: gone, Within: bound}}})
		})
	}
}

// acquireSeen is one acquire (a lone lock of the election key) an
// in-process candidate sent, and what came of it.
type acquireSeen struct {
	ID  string
	At  time.Time // sent
	OK  bool
	Err error
}

// reachedConsul: Consul answered it (true, false, or an error of its own),
// as opposed to a request that never got through.
func (a acquireSeen) reachedConsul() bool {
	var se *consulhttp.StatusError
	return a.Err == nil || errors.As(a.Err, &se)
}

// acquireLog collects the acquires of every candidate of one election.
type acquireLog struct {
	key string
	mu  sync.Mutex
	all []acquireSeen
}

func (l *acquireLog) since(t time.Time) []acquireSeen {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []acquireSeen
	for _, a := range l.all {
		if !a.At.Before(t) {
			out = append(out, a)
		}
	}
	return out
}

// countedConsul is a real Consul client that logs every acquire.
type countedConsul struct {
	*consulhttp.Client
	id  string
	log *acquireLog
}

func (c *countedConsul) TxnKV(ctx context.Context, ops []consulhttp.TxnKVOp) ([]consulhttp.KVPair, bool, error) {
	sent := time.Now()
	res, ok, err := c.Client.TxnKV(ctx, ops)
	if len(ops) == 1 && ops[0].Verb == consulhttp.TxnLock && ops[0].Key == c.log.key {
		c.log.mu.Lock()
		c.log.all = append(c.log.all, acquireSeen{ID: c.id, At: sent, OK: ok, Err: err})
		c.log.mu.Unlock()
	}
	return res, ok, err
}

// leaderTrack follows the terms of in-process elections through their
// hooks, and fails the test if two ever lead at once.
type leaderTrack struct {
	t       *testing.T
	mu      sync.Mutex
	holder  string
	elected []elect.Event // Candidate in Leader.ID, Token, At
	changed chan struct{}
}

func (lt *leaderTrack) onElected(id string, tm elect.Term) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.holder != "" {
		lt.t.Errorf("%s elected (token %d) while %s still leads", id, tm.Token, lt.holder)
	}
	lt.holder = id
	lt.elected = append(lt.elected, elect.Event{Kind: elect.KindElected, Token: tm.Token, At: time.Now(),
		Leader: &elect.Leader{Candidate: elect.Candidate{ID: id}}})
	close(lt.changed)
	lt.changed = make(chan struct{})
}

func (lt *leaderTrack) onStepDown(id string) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.holder == id {
		lt.holder = ""
	}
}

// waitElected returns the first term won from position from on.
func (lt *leaderTrack) waitElected(from int, timeout time.Duration) elect.Event {
	lt.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		lt.mu.Lock()
		evs, changed := lt.elected, lt.changed
		lt.mu.Unlock()
		if len(evs) > from {
			return evs[from]
		}
		select {
		case <-changed:
		case <-deadline.C:
			lt.t.Fatalf("nobody elected within %v", timeout)
		}
	}
}

func (lt *leaderTrack) terms() int {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	return len(lt.elected)
}

// inProcCandidate is one in-process election over a real Consul client.
type inProcCandidate struct {
	id   string
	e    *elect.Election
	stop func()
}

func startInProc(t *testing.T, id, addr string, cfg elect.Config, log *acquireLog, lt *leaderTrack) *inProcCandidate {
	t.Helper()
	c, err := consulhttp.NewClient(consulhttp.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Candidate = elect.Candidate{ID: id, Name: "ranked", StartedAt: time.Now()}
	cfg.OnElected = func(tm elect.Term) { lt.onElected(id, tm) }
	cfg.OnStepDown = func(elect.Term, elect.Reason) { lt.onStepDown(id) }
	e, err := elect.New(&countedConsul{Client: c, id: id, log: log}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	p := &inProcCandidate{id: id, e: e}
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: Run: %v", id, err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("%s: Run did not return 20s after cancel", id)
			}
		})
	}
	t.Cleanup(p.stop)
	return p
}

// pollUntil polls cond every 50ms until it holds, or fails the test.
// Nothing announces what it waits for (a registration, a follower's view).
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(timeout); !cond(); <-tick.C {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
	}
}

// TestFaultRankedFailoverHundred: 120 candidates (in-process elections,
// each with its own Consul client and session: 120 leaderd processes are
// more than two shared cores can run). The leader crashes: its network is
// cut and its session destroyed, which makes Consul keep the key for the
// lock-delay. Then the candidates take the key in rank order: the best one
// (priority 5, though it joined late) tries first and leads just after the
// lock-delay; the others see the key taken before their turn. So the crowd
// sends O(1) acquires, not one or more each.
func TestFaultRankedFailoverHundred(t *testing.T) {
	const n, best = 120, "c077"
	agent := faultAgent(t, `limits { http_max_conns_per_client = 1000 }`)
	key := elect.KeyFor("ranked")
	seedKey(t, agent.Addr, key)
	log, lt := &acquireLog{key: key}, &leaderTrack{t: t, changed: make(chan struct{})}
	// PriorityHold: no preemption by the priority-5 candidate before the
	// crash; the crash is what this test is about.
	cfg := elect.Config{Key: key, TTL: 10 * time.Second, LockDelay: faultLockDelay, Margin: 500 * time.Millisecond, PriorityHold: time.Hour}

	// The first leader talks through a proxy the test can drop: its crash.
	cut := startTCPProxy(t, agent.Addr)
	lead := startInProc(t, "c000", cut.Addr(), cfg, log, lt)
	lt.waitElected(0, 30*time.Second)
	cands := []*inProcCandidate{lead}
	t0 := time.Now()
	for i := 1; i < n; i++ {
		id, c := fmt.Sprintf("c%03d", i), cfg
		if id == best {
			c.Priority = 5
		}
		cands = append(cands, startInProc(t, id, agent.Addr, c, log, lt))
	}
	client := consulClient(t, agent.Addr)
	pollUntil(t, 60*time.Second, fmt.Sprintf("%d candidates registered and following c000", n), func() bool {
		es, _, err := elect.Candidates(context.Background(), client, key)
		live := 0
		for _, e := range es {
			if e.Live {
				live++
			}
		}
		return err == nil && live == n && following(cands[1:], lead.e.State().Session)
	})
	t.Logf("%d candidates up in %s", n, faultMS(time.Since(t0)))
	es, _, err := elect.Candidates(context.Background(), client, key)
	if err != nil {
		t.Fatal(err)
	}
	var ranked []string // the followers best first: the order they try in
	for _, e := range es {
		if e.Live && !e.Leading {
			ranked = append(ranked, e.ID)
		}
	}
	if ranked[0] != best {
		t.Fatalf("ranked %v, want %s first", ranked[:5], best)
	}

	sid := lead.e.State().Session
	cut.set(proxyDrop)
	crashed := time.Now()
	if err := destroySession(agent.Addr, sid); err != nil {
		t.Fatal(err)
	}
	next := lt.waitElected(1, faultLockDelay+3*faultSlack)
	took := next.At.Sub(crashed)
	winner := next.Leader.ID
	var winnerSession string
	for _, c := range cands {
		if c.id == winner {
			winnerSession = c.e.State().Session
		}
	}
	defer func() {
		if t.Failed() {
			describe(t, cands, lt, log, crashed)
		}
	}()
	pollUntil(t, 30*time.Second, "every candidate following "+winner, func() bool { return following(cands[1:], winnerSession) })
	acquires := log.since(crashed)
	reached := 0
	for _, a := range acquires {
		if a.reachedConsul() {
			reached++
		}
	}
	t.Logf("c000 crashed; %s elected %s later (lock-delay %v); acquires after the crash: %d reached Consul: %+v",
		winner, faultMS(took), faultLockDelay, reached, acquires)
	// Each candidate counts its turn from when its own watch showed the
	// key free: on a loaded machine the best one may hear of it more than
	// RankStep−20ms after the next, and lose to it. A known flaw
	// (TestFaultRankInversionSlowWatch makes it certain); here only the
	// first few ranks may win.
	if r := slices.Index(ranked, winner); r != 0 {
		t.Logf("rank inversion: %s (rank %d) leads, not %s (rank 0, priority 5)", winner, r, best)
		if r < 0 || r > 3 {
			t.Errorf("%s leads after the crash, want %s (priority 5) or at worst one of the next ranks %v", winner, best, ranked[1:4])
		}
	}
	if took < faultLockDelay {
		t.Errorf("%s elected %v after the session was destroyed, inside the lock-delay %v", winner, took, faultLockDelay)
	}
	// The winner retries when the lock-delay is over as it saw it: from
	// when its watch showed the key free, late on a loaded machine.
	if bound := faultLockDelay + 2*faultSlack; took > bound {
		t.Errorf("%s elected %v after the crash, want within lock-delay + %v = %v", winner, took, 2*faultSlack, bound)
	}
	if reached > 5 {
		t.Errorf("%d acquires by %d candidates reached Consul after the crash, want a handful (≤ 5)", reached, n-1)
	}
	if got := lt.terms(); got != 2 {
		t.Errorf("%d terms, want 2: c000's and %s's", got, winner)
	}
	// The followers first, so nobody is handed the key on the way out.
	for _, c := range cands {
		if c.id != winner {
			go c.stop()
		}
	}
	for _, c := range cands {
		if c.id != winner {
			c.stop()
		}
	}
}

// describe logs what each candidate believes, the terms and the acquires,
// times from the crash.
func describe(t *testing.T, cs []*inProcCandidate, lt *leaderTrack, log *acquireLog, crashed time.Time) {
	for _, c := range cs {
		st := c.e.State()
		ld := "nobody"
		if st.Leader != nil {
			ld = fmt.Sprintf("%s (session %s, token %d)", st.Leader.ID, st.Leader.Session, st.Leader.Token)
		}
		t.Logf("%s: session %s leading=%v token=%d sees %s; last error %v", c.id, st.Session, st.Leading, st.Token, ld, st.LastError)
	}
	lt.mu.Lock()
	for _, e := range lt.elected {
		t.Logf("elected %s token %d at %s", e.Leader.ID, e.Token, faultMS(e.At.Sub(crashed)))
	}
	lt.mu.Unlock()
	for _, a := range log.since(time.Time{}) {
		t.Logf("acquire by %s at %s: ok=%v err=%v", a.ID, faultMS(a.At.Sub(crashed)), a.OK, a.Err)
	}
}

// following: every candidate in cs sees session as the leader's. By
// session, not id: a leader that acquired knows itself by session only
// (see TestFaultAcquiredLeaderKnowsItself).
func following(cs []*inProcCandidate, session string) bool {
	for _, c := range cs {
		if ld := c.e.State().Leader; ld == nil || ld.Session != session {
			return false
		}
	}
	return true
}

// TestFaultAcquiredLeaderKnowsItself: a leader's State().Leader (what
// leaderd's /v1/status shows as the leader, and library users read) names
// the leader, whether it acquired the key or was handed it. Consul answers
// a transaction's write ops with the key's Value blanked, so the leader
// must not take its identity from that answer.
func TestFaultAcquiredLeaderKnowsItself(t *testing.T) {
	t.Parallel()
	agent := faultAgent(t)
	key := elect.KeyFor("itself")
	seedKey(t, agent.Addr, key)
	log, lt := &acquireLog{key: key}, &leaderTrack{t: t, changed: make(chan struct{})}
	cfg := elect.Config{Key: key, TTL: faultTTL, LockDelay: faultLockDelay, Margin: 500 * time.Millisecond}
	a := startInProc(t, "a", agent.Addr, cfg, log, lt)
	lt.waitElected(0, 30*time.Second)
	b := startInProc(t, "b", agent.Addr, cfg, log, lt)
	pollUntil(t, 30*time.Second, "b following a", func() bool { return following([]*inProcCandidate{b}, a.e.State().Session) })
	if ld := a.e.State().Leader; ld == nil || ld.ID != "a" || ld.Since.IsZero() {
		t.Errorf("a acquired the key; its State().Leader = %+v, want id a and the time of its acquire", ld)
	}
	if ld := b.e.State().Leader; ld == nil || ld.ID != "a" {
		t.Errorf("b follows; its State().Leader = %+v, want id a", ld)
	}
	// Resign hands the key to b, the only other candidate.
	if err := a.e.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e := lt.waitElected(1, 10*time.Second); e.Leader.ID != "b" {
		t.Fatalf("%s elected after a resigned, want b", e.Leader.ID)
	}
	if ld := b.e.State().Leader; ld == nil || ld.ID != "b" {
		t.Errorf("b was handed the key; its State().Leader = %+v, want id b", ld)
	}
	a.stop()
	b.stop()
}

// TestFaultHandoverToStoppingSuccessor: the leader and its best successor
// are stopped together, as a rolling deploy two at a time or a job stop
// does: the successor's SIGTERM comes as the handover goes to Consul. Both
// stop gracefully, so the key must not end up in a lock-delay: the
// successor, handed the key while it shuts down, has to pass it on or
// release it, not let its session's destroy invalidate it. A third
// candidate leads well within the lock-delay, never two at once.
func TestFaultHandoverToStoppingSuccessor(t *testing.T) {
	t.Parallel()
	tr := newTransferRig(t, "stopping", "a", "b", "c", "d")
	succ := successorOf(tr.registered(4, 10*time.Second))
	victim := tr.procs[succ.ID]
	var once sync.Once
	stopped := make(chan time.Time, 1)
	tr.taps["a"].onTxn(func(ops []tapOp) {
		if (tapTxn{Ops: ops}).handover(tr.key) {
			once.Do(func() {
				at := tr.note(history.Fault, victim.name, "SIGTERM as a's handover to it is sent")
				syscall.Kill(victim.pid, syscall.SIGTERM)
				stopped <- at
			})
		}
	})
	mark := tr.mark()
	tr.note(history.Fault, "a", "SIGTERM")
	tr.procs["a"].signal(syscall.SIGTERM)
	for _, p := range []*faultProc{tr.procs["a"], victim} {
		if code := p.exit(10 * time.Second); code != 0 {
			t.Errorf("leaderd %s exited %d after SIGTERM, want 0", p.name, code)
		}
	}
	var at time.Time
	select {
	case at = <-stopped:
	default:
		t.Fatalf("a sent no handover transaction; the history:\n%s", tr.h.Timeline())
	}
	next := tr.wait(faultLockDelay+3*faultSlack, mark, "a leader other than a and "+succ.ID, func(e history.Event) bool {
		return e.Kind == history.Elected && e.Candidate != "a" && e.Candidate != succ.ID
	})
	handovers := tr.taps["a"].seen(at.Add(-time.Second), func(x tapTxn) bool { return x.handover(tr.key) })
	var sHand []tapTxn
	if tap := tr.taps[succ.ID]; tap != nil {
		sHand = tap.seen(at, func(x tapTxn) bool { return x.handover(tr.key) })
	}
	took := next.At.Sub(at)
	t.Logf("%s SIGTERMed as a's handover to it was sent (answered %+v); %s's own handovers %d, releases %d; %s elected %s later",
		succ.ID, handovers, succ.ID, len(sHand), tr.taps[succ.ID].releasedSince(at), next.Candidate, faultMS(took))
	if bound := faultLockDelay / 2; took > bound {
		t.Errorf("%s elected %v after the successor's SIGTERM, want well under the lock-delay %v (at most %v): the key sat in a lock-delay though everyone stopped gracefully",
			next.Candidate, took, faultLockDelay, bound)
	}
	tr.stopAll(next.Candidate)
	tr.verify(history.Options{})
}

// TestFaultKillLeaderRankedProcesses: the rank-ordered takeover of
// TestFaultRankedFailoverHundred with real leaderd processes and a real
// crash: twelve candidates, the leader SIGKILLed. Once Consul expires its
// session and the lock-delay is over, the longest-waiting candidate leads,
// and the crowd sends a handful of acquires, counted at the taps.
func TestFaultKillLeaderRankedProcesses(t *testing.T) {
	t.Parallel()
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"}
	tr := newTransferRig(t, "ranked-kill", names...)
	es := tr.registered(len(names), 10*time.Second)
	want := successorOf(es)
	before := tr.keyNow()

	mark := tr.mark()
	killed := tr.procs["a"].kill()
	bound := 2*faultTTL + faultLockDelay + faultSlack
	next := tr.leading(bound+faultSlack, mark, nil)
	for _, name := range names[1:] {
		if name != next.elected.Candidate {
			tr.following(10*time.Second, mark, tr.procs[name], next.elected.Candidate)
		}
	}
	acquires := tr.acquiresSince(killed)
	n, won := 0, 0
	for _, xs := range acquires {
		for _, x := range xs {
			n++
			if x.Code == http.StatusOK {
				won++
			}
		}
	}
	after := tr.keyNow()
	t.Logf("SIGKILL of a: %s elected %s later (allowed %s..%s); %d acquires reached Consul, %d won: %v; LockIndex %d → %d",
		next.elected.Candidate, faultMS(next.elected.At.Sub(killed)), faultMS(faultTTL-faultRenew+faultLockDelay), faultMS(bound), n, won, acquires, before.LockIndex, after.LockIndex)
	if next.elected.Candidate != want.ID {
		t.Errorf("%s leads after the crash, want %s (ranked first: the longest waiting)", next.elected.Candidate, want.ID)
	}
	if d := next.elected.At.Sub(killed); d > bound {
		t.Errorf("failover took %v, more than the bound %v", d, bound)
	}
	if n > 5 || won != 1 {
		t.Errorf("%d acquires by %d candidates reached Consul after the crash (%d won), want a handful and one winner", n, len(names)-1, won)
	}
	gone := tr.events(history.ProcGone, "a", killed, time.Time{})[0].At
	tr.stopAll(next.elected.Candidate)
	tr.verify(history.Options{Settle: []history.Settle{{What: "after SIGKILL of a", After: gone, Within: bound}}})
}

// TestFaultTransferRequest: a transfer request (elect.RequestTransfer,
// what `leaderd transfer` will write) names a candidate that is not the
// best. The leader stops its child, hands the key to that one in one
// transaction and follows; nobody races for the key. A request naming no
// live candidate changes nothing. The leader deletes each request it acted
// on.
func TestFaultTransferRequest(t *testing.T) {
	t.Parallel()
	tr := newTransferRig(t, "transfer", "a", "b", "c", "d")
	es := tr.registered(4, 10*time.Second)
	var c elect.CandidateEntry
	for _, e := range es {
		if e.ID == "c" {
			c = e
		}
	}
	if successorOf(es).ID == "c" {
		t.Fatalf("c is the best successor already: %+v", es)
	}
	before := tr.keyNow()

	mark := tr.mark()
	sent := tr.note(history.Note, "", "transfer request to c")
	if _, err := elect.RequestTransfer(context.Background(), tr.client, tr.key, "c"); err != nil {
		t.Fatal(err)
	}
	next := tr.leading(10*time.Second, mark, tr.procs["c"])
	tr.following(10*time.Second, mark, tr.procs["a"], "c")
	tr.requestGone(10 * time.Second)
	handovers := tr.taps["a"].seen(sent, func(x tapTxn) bool { return x.handover(tr.key) })
	acquires := tr.acquiresSince(sent)
	after := tr.keyNow()
	t.Logf("transfer to c: elected %s after the request; a's handovers %+v; acquires %v; LockIndex %d → %d",
		faultMS(next.elected.At.Sub(sent)), handovers, acquires, before.LockIndex, after.LockIndex)
	if len(handovers) != 1 || handovers[0].Ops[1].Session != c.Session || handovers[0].Code != http.StatusOK {
		t.Errorf("a's handovers %+v, want one to c's session %s", handovers, c.Session)
	}
	if len(acquires) != 0 {
		t.Errorf("acquires during a transfer: %v", acquires)
	}
	if after.Session != c.Session || after.LockIndex != before.LockIndex+1 {
		t.Errorf("after the transfer the key is held by %s with LockIndex %d, want c's session %s with LockIndex %d",
			after.Session, after.LockIndex, c.Session, before.LockIndex+1)
	}

	// A request for nobody: c stays leader.
	noted := tr.note(history.Note, "", "transfer request to zz (no such candidate)")
	if _, err := elect.RequestTransfer(context.Background(), tr.client, tr.key, "zz"); err != nil {
		t.Fatal(err)
	}
	tr.requestGone(10 * time.Second)
	if evs := tr.events(history.SteppedDown, "", noted, time.Time{}); len(evs) > 0 {
		t.Errorf("a transfer request for no live candidate ended a term: %v", evs)
	}
	if k := tr.keyNow(); k.Session != c.Session {
		t.Errorf("after a transfer request for nobody the key is held by %s, want c's %s", k.Session, c.Session)
	}
	tr.stopAll("c")
	tr.verify(history.Options{})
}

// requestGone waits until the leader has deleted the transfer request.
func (tr *transferRig) requestGone(timeout time.Duration) {
	tr.t.Helper()
	pollUntil(tr.t, timeout, "the transfer request deleted", func() bool {
		p, _, err := tr.client.GetKV(context.Background(), elect.TransferKey(tr.key), consulhttp.QueryOptions{})
		return err == nil && p == nil
	})
}

// TestFaultRankInversionSlowWatch: after a crash the best candidate must
// lead even if its watch hears of the free key a little later than the
// others': 60ms, what a loaded host or Consul's fan-out to 100+ blocking
// queries gives (TestFaultRankedFailoverHundred sees such inversions now
// and then). Each candidate counts the lock-delay and its rank's step from
// its own receipt of the free key: the best retries 20ms after its
// lock-delay, the next 50ms after its own, so a skew above 30ms hands the
// key to the second best.
func TestFaultRankInversionSlowWatch(t *testing.T) {
	t.Parallel()
	const skew = 60 * time.Millisecond
	agent := faultAgent(t)
	key := elect.KeyFor("inversion")
	seedKey(t, agent.Addr, key)
	log, lt := &acquireLog{key: key}, &leaderTrack{t: t, changed: make(chan struct{})}
	cfg := elect.Config{Key: key, TTL: 10 * time.Second, LockDelay: faultLockDelay, Margin: 500 * time.Millisecond, PriorityHold: time.Hour}
	cut := startTCPProxy(t, agent.Addr)
	lead := startInProc(t, "c0", cut.Addr(), cfg, log, lt)
	lt.waitElected(0, 30*time.Second)
	cands := []*inProcCandidate{lead}
	for _, id := range []string{"c1", "c2", "c3"} {
		cands = append(cands, startInProc(t, id, agent.Addr, cfg, log, lt))
	}
	best := cfg
	best.Priority = 5
	slow := startSlowReads(t, agent.Addr, "/v1/kv/"+key, skew)
	cands = append(cands, startInProc(t, "best", slow, best, log, lt))
	client := consulClient(t, agent.Addr)
	pollUntil(t, 30*time.Second, "every candidate registered and following c0", func() bool {
		es, _, err := elect.Candidates(context.Background(), client, key)
		live := 0
		for _, e := range es {
			if e.Live {
				live++
			}
		}
		return err == nil && live == len(cands) && following(cands[1:], lead.e.State().Session)
	})

	cut.set(proxyDrop)
	crashed := time.Now()
	if err := destroySession(agent.Addr, lead.e.State().Session); err != nil {
		t.Fatal(err)
	}
	next := lt.waitElected(1, faultLockDelay+3*faultSlack)
	t.Logf("c0 crashed; %s elected %s later; acquires: %+v", next.Leader.ID, faultMS(next.At.Sub(crashed)), log.since(crashed))
	if next.Leader.ID != "best" {
		t.Errorf("%s leads after the crash, want best (priority 5), whose watch is only %v behind", next.Leader.ID, skew)
	}
	for _, c := range cands {
		c.stop()
	}
}

// consulClient is a Consul client of the test's own for the agent at addr.
func consulClient(t *testing.T, addr string) *consulhttp.Client {
	t.Helper()
	c, err := consulhttp.NewClient(consulhttp.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startSlowReads starts an HTTP proxy to target that holds every answer to
// a GET of path (blocking queries included) for delay before passing it
// on: a candidate that hears of changes late. It returns its address.
func startSlowReads(t *testing.T, target, path string, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(http.StatusBadGateway) }
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodGet && resp.Request.URL.Path == path {
			time.Sleep(delay)
		}
		return nil
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) // returns when closed at cleanup
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
