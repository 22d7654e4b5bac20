package main

import (
	"context"
	"fmt"
	"io"

	"github.com/leaderd/leaderd/consulhttp"
)

// watchRetries is the onErr of a watch a command runs (elect.Observe,
// elect.ObserveCandidates): it tells stderr that an error is being retried,
// except an ACL denial, which no retry can fix: that stops the watch.
type watchRetries struct {
	cmd    string
	stderr io.Writer
	stop   context.CancelFunc
	denied error
}

// newWatchRetries returns the context to run the watch in, which onErr
// cancels on an ACL denial; call stop when the watch is over.
func newWatchRetries(ctx context.Context, cmd string, stderr io.Writer) (context.Context, *watchRetries) {
	ctx, stop := context.WithCancel(ctx)
	return ctx, &watchRetries{cmd: cmd, stderr: stderr, stop: stop}
}

func (w *watchRetries) onErr(err error, attempt int) {
	if consulhttp.IsPermissionDenied(err) {
		w.denied = err
		w.stop()
		return
	}
	fmt.Fprintf(w.stderr, "leaderd %s: %s (attempt %d, retrying)\n", w.cmd, oneLine(err), attempt)
}

// err is what ended the watch: the denial if there was one, else err (the
// watch's own result).
func (w *watchRetries) err(err error) error {
	if w.denied != nil {
		return w.denied
	}
	return err
}
