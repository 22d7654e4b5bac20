// Package child runs a leader's command only while its lease lasts, and
// enforces that lease outside the election's own process loop.
//
// The election (package elect) steps a leader down when its local lease
// ends, but only while its loop runs: a leaderd that is stopped (SIGSTOP,
// a VM freeze), stalled or wedged can't. So the command is not run by
// leaderd itself but by a keeper: a small process (leaderd re-executing
// itself as the hidden command KeeperCommand, see Keep) started once, when
// leaderd starts, and living as long as leaderd. The keeper
//
//   - runs in its own process group, so a signal to leaderd's group (a
//     terminal's ^Z or ^C, a SIGSTOP of the group) does not reach it;
//   - starts the command in a session (so a process group) of its own,
//     with Pdeathsig, and is the child subreaper of everything the command
//     starts, so grandchildren that leave the group or double-fork still
//     come back to it when their parents die;
//   - is told each new lease end, as an absolute CLOCK_MONOTONIC time so
//     the delay of the message can't lengthen the lease, and stops the
//     command by itself when the latest lease end passes: the stop signal
//     to the group, then SIGKILL to everything after the kill timeout;
//   - SIGKILLs the whole tree at once when leaderd dies (its command pipe
//     reaches EOF), which covers a SIGKILL of leaderd;
//   - reports a stop as done ("gone") only once the whole tree is dead and
//     reaped, so leaderd gives up the key only then.
//
// If the keeper itself dies (kill -9, the OOM killer), leaderd kills what
// it left before the term ends: leaderd is the child subreaper too, so the
// keeper's orphans come to it, and everything of a command's tree is in a
// session other than leaderd's (see orphans.go).
//
// Supervisor is leaderd's side: it starts the keeper and talks to it over
// two pipes (the keeper's fd 3 and 4) in JSON lines (see msg).
//
// The command gets none of the secrets in Withheld from leaderd's
// environment unless they are passed on explicitly, and neither does the
// keeper.
package child
