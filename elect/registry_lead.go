package elect

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/leaderd/leaderd/consulhttp"
)

// The leader's side of the registry: its watch on <key>/, which brings
// transfer requests and candidates of a higher priority, and the pruning of
// dead candidates' entries.

// registry: the leader's watch on the registry.
func (l *loop) registry() <-chan answer[[]consulhttp.KVPair] { return l.reg.watch.ch }

// watchRegistry keeps the leader's registry watch going (while leading,
// with a registry).
func (l *loop) watchRegistry(now time.Time) {
	if l.leading && !l.reg.disabled && l.reg.watch.due(now) {
		l.reg.watch.start(l.ctx, l.watchWait, false)
	}
}

func (l *loop) onRegistry(a answer[[]consulhttp.KVPair]) {
	w := &l.reg.watch
	w.received()
	if a.err != nil {
		if l.ctx.Err() != nil {
			return
		}
		if consulhttp.IsPermissionDenied(a.err) {
			l.reg.disabled = true
			l.log.Warn("no permission to read the candidate registry; no transfers or priorities", "err", a.err)
			return
		}
		w.failed(time.Now())
		return
	}
	w.answered(a.asked, a.meta.LastIndex, time.Since(a.sent), l.watchWait)
	if !l.leading {
		return
	}
	l.reg.entries, l.reg.fresh = parseRegistry(l.key, a.val, l.view.last), true
	l.prune(a.val)
	for _, kv := range a.val {
		if kv.Key == TransferKey(l.key) && kv.ModifyIndex != l.reg.handled {
			l.onTransferRequest(kv)
			return
		}
	}
	l.checkPriority(time.Now())
}

// prune deletes the entries of dead candidates (released with their
// session), each only if unchanged since read.
func (l *loop) prune(pairs []consulhttp.KVPair) {
	// One transaction per watch answer, however many died: the loop is
	// the leader's, and a crowd's sessions can end together. Consul takes
	// up to 64 ops in one; a deletion that lost its check-and-set (the
	// candidate came back) rolls them all back, and the next answer, which
	// that change brings, prunes the rest.
	const maxOps = 64
	var ops []consulhttp.TxnKVOp
	for _, kv := range pairs {
		// Only entries: anything else a user keeps under the key is not ours.
		if kv.Session != "" || !strings.HasPrefix(kv.Key, CandidatesPrefix(l.key)) || kv.Key == l.reg.entryKey {
			continue
		}
		if ops = append(ops, consulhttp.TxnKVOp{Verb: consulhttp.TxnDeleteCAS, Key: kv.Key, Index: kv.ModifyIndex}); len(ops) == maxOps {
			break
		}
	}
	if len(ops) == 0 {
		return
	}
	ctx, cancel := l.writeCtx(true)
	defer cancel()
	if _, _, err := l.c.TxnKV(ctx, ops); err != nil {
		l.log.Debug("prune failed", "entries", len(ops), "err", err)
	}
}

// onTransferRequest acts on a transfer request written during our term
// (an older one is for an earlier leader), then deletes it.
func (l *loop) onTransferRequest(kv consulhttp.KVPair) {
	l.reg.handled = kv.ModifyIndex
	var req TransferRequest
	err := json.Unmarshal(kv.Value, &req)
	defer l.dropRequest(kv)
	switch {
	case err != nil:
		l.log.Warn("ignoring a transfer request that is not JSON", "request", kv.Key)
		return
	case kv.ModifyIndex < l.term.Token:
		l.log.Info("ignoring a transfer request older than this term", "to", req.To)
		return
	case req.To == l.candidate.ID:
		l.log.Info("transfer requested to the leader itself: nothing to do")
		return
	}
	succ := successor(l.reg.entries, l.term.Session, req.To)
	if succ == nil {
		l.log.Warn("transfer requested, but no such live candidate", "to", req.To)
		return
	}
	l.log.Info("transfer requested", "to", succ.ID, "nonce", req.Nonce)
	l.stepDownTo(ReasonTransferred, succ)
	l.holdOffUntil = time.Now().Add(l.holdOff)
}

func (l *loop) dropRequest(kv consulhttp.KVPair) {
	ctx, cancel := l.writeCtx(true)
	defer cancel()
	if _, _, err := l.c.TxnKV(ctx, []consulhttp.TxnKVOp{{Verb: consulhttp.TxnDeleteCAS, Key: kv.Key, Index: kv.ModifyIndex}}); err != nil {
		l.log.Debug("delete transfer request failed", "err", err)
	}
}

// checkPriority hands over to the best live candidate once it has a
// higher priority than ours and has been live, as we saw it, for the
// hold time: a candidate that comes and goes restarts its count.
func (l *loop) checkPriority(now time.Time) {
	best := successor(l.reg.entries, l.term.Session, "")
	for s := range l.reg.firstSeen {
		if best == nil || s != best.Session {
			delete(l.reg.firstSeen, s)
		}
	}
	if best == nil || best.Priority <= l.reg.priority {
		return
	}
	first, ok := l.reg.firstSeen[best.Session]
	if !ok {
		l.reg.firstSeen[best.Session] = now
		l.log.Info("candidate of higher priority; handing over after the hold time", "candidate", best.ID, "priority", best.Priority, "hold", l.reg.hold)
		return
	}
	if now.Sub(first) < l.reg.hold {
		return
	}
	l.stepDownTo(ReasonPreempted, best)
	l.holdOffUntil = now.Add(l.holdOff)
}

// priorityWake is when a pending priority handover is due.
func (l *loop) priorityWake(earliest func(time.Time)) {
	for _, t := range l.reg.firstSeen {
		earliest(t.Add(l.reg.hold))
	}
}
