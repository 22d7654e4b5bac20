// Package history records what every candidate of an election believed and
// did, and when, and checks the record for the properties leaderd promises:
// a Jepsen-style history checker for the fault-injection tests.
//
// # What is recorded
//
// Events come from three sources, all stamped with the host's wall clock
// (one machine, one clock):
//
//   - leaderd's own JSON log (ParseLeaderd): elected (with the fencing
//     token), stepping down (with the reason), child started / child exited
//     (leaderd's view of its child), leader changed, and at debug level the
//     session proofs (create, renew) that the local lease is computed from;
//   - the child leaderd supervises, the script ChildScript, which appends
//     "start|stop|exit <id> <token> <pid> <unix-ns>" to a shared file opened
//     with O_APPEND when it starts and when it stops on SIGTERM/SIGINT (its
//     trap) or exits by itself (FollowChildLog reads it);
//   - the test: faults and heals, processes it saw gone (a SIGKILLed child
//     writes nothing: WatchChild polls /proc and records the moment the
//     child was seen dead, an upper bound on its death), freezes and resumes.
//
// # The model: when does a term act?
//
// A term is one candidate's leadership with one token. It acts through two
// things:
//
//   - its claim: leaderd believing it leads, from its "elected" record to its
//     "stepping down" record, or to the moment its process was seen gone;
//   - its child: from the child's start record to its death. The death is
//     the earliest upper bound we have: leaderd's "child exited" record
//     (written after the reap) or the moment the test saw the pid gone; if
//     there is neither, the child's own stop record (written by its trap
//     right before it exits); if none, the end of the history.
//
// A stopped process (SIGSTOP) does nothing. So a term's acting set is its
// claim and its child's life minus the spans during which that process was
// frozen: from the moment the test saw it stopped (/proc state T, not the
// moment SIGSTOP was sent) to the moment just before SIGCONT was sent. A
// frozen child still counts as alive until it is really dead: being frozen
// is not being dead, it is only not acting, and it acts again the moment
// it is resumed.
//
// The checker is strict: there is no allowance for a stale leader whose
// lower fencing token a downstream store could reject. Whatever ended a
// term, its child must be dead (not frozen) before the next term's child
// starts, and no two acting sets may touch. A leaderd resumed past its
// lease may claim only until its lease end when Options.Lease is given
// (leaderd reads its clock before acting, which it does not log); without
// it, until its step-down record.
//
// # The properties (Check)
//
//   - overlap: no two terms' acting sets overlap;
//   - token: tokens strictly increase from term to term (terms ordered by
//     their elected records), except right after an Epoch event (Consul lost
//     its state, so its Raft indexes, the tokens, restart low);
//   - child: every term's child was dead before the next term's child
//     started;
//   - term: every child record belongs to an elected term of its candidate;
//   - settle: after each Options.Settle point (the faults healed), exactly
//     one term leads (claim acting, child started) within the bound.
//
// On failure Verify prints the violations and the history as a timeline
// (one line per event, milliseconds from the start, one column per
// candidate) and writes the timeline to the test's artifact directory.
package history
