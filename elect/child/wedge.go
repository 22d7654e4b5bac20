package child

import (
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
)

// Wedge exists for leaderd's own integration tests only, never for
// production: with EnvTestHooks=1 in the environment, SIGUSR2 makes the
// next OnLease call block forever. That wedges the election's loop
// (the session itself is still renewed by another goroutine, but no lease
// end reaches the keeper any more), so a test can show that the keeper
// ends the child at the lease end when leaderd can't.
type Wedge struct {
	wedge atomic.Bool
	log   *slog.Logger
}

// EnvTestHooks turns the Wedge on when it is "1".
const EnvTestHooks = "LEADERD_TEST_HOOKS"

// NewWedge arms the wedge when getenv(EnvTestHooks) is "1"; otherwise
// OnLease does nothing.
func NewWedge(getenv func(string) string, log *slog.Logger) *Wedge {
	h := &Wedge{log: log}
	if getenv(EnvTestHooks) != "1" {
		return h
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR2)
	go func() {
		for range sigs {
			h.wedge.Store(true)
		}
	}()
	return h
}

// OnLease runs first in elect.Config.OnLease: once SIGUSR2 came, it
// never returns.
func (h *Wedge) OnLease() {
	if h.wedge.Load() {
		h.log.Warn("test hook: wedging the election loop")
		select {}
	}
}
