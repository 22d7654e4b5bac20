// Command child is the work the benchmark's candidates run while they lead:
// it appends "start <unix-nanos> <pid> <label>" to a log file the moment it
// runs, waits for SIGTERM, SIGINT or SIGUSR1 (the benchmark's "exit now"),
// appends "exit <unix-nanos> <pid> <label> <signal>" and exits 0. The
// timestamps are taken by the children themselves, so a handover is
// measured from the old child's last breath to the new child's first,
// whatever the supervisor (leaderd or consul lock) does in between.
//
// It is also the smallest Go program the benchmark has at hand: its RSS is
// the floor any Go supervisor starts from.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	logPath := flag.String("log", "", "file to append start and exit lines to")
	label := flag.String("label", "", "who this child belongs to, echoed in its lines")
	maxLife := flag.Duration("max-life", time.Hour, "exit after this long anyway, so an orphan never lingers")
	flag.Parse()
	// Catch signals before announcing ourselves, so an "exit now" sent
	// right after the start line is never lost.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	// One write per line: O_APPEND makes it atomic among the children.
	fmt.Fprintf(f, "start %d %d %s\n", time.Now().UnixNano(), os.Getpid(), *label)
	var how string
	select {
	case s := <-sig:
		how = "term"
		if s == syscall.SIGUSR1 {
			how = "usr1"
		}
	case <-time.After(*maxLife):
		how = "max-life"
	}
	fmt.Fprintf(f, "exit %d %d %s %s\n", time.Now().UnixNano(), os.Getpid(), *label, how)
	os.Exit(0)
}
