package status

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"testing"
)

// TestListenFallback: a default address that is taken falls back to a free
// loopback port; a named one is an error.
func TestListenFallback(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	log := slog.New(slog.DiscardHandler)
	srv, err := Listen(taken.Addr().String(), false, http.NotFoundHandler(), log)
	if err != nil {
		t.Fatalf("default address taken: %v, want a fallback", err)
	}
	defer srv.ln.Close()
	host, port, _ := net.SplitHostPort(srv.Addr())
	if host != "127.0.0.1" || srv.Addr() == taken.Addr().String() || port == "0" {
		t.Errorf("fell back to %s, want another port on 127.0.0.1", srv.Addr())
	}
	_, err = Listen(taken.Addr().String(), true, http.NotFoundHandler(), log)
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("named address taken: %v, want EADDRINUSE", err)
	}
}
