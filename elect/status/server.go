package status

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"
)

// FallbackAddr is where Listen goes when a default address is taken: any
// free loopback port, logged and shown in /v1/status.
const FallbackAddr = "127.0.0.1:0"

// Listen starts listening on addr for h. An address the user named must be
// free (a taken one is an error); a default one that is taken — another
// leaderd on this host — falls back to FallbackAddr, so any number of
// instances run with the default flags.
func Listen(addr string, named bool, h http.Handler, log *slog.Logger) (*Server, error) {
	srv, err := listen(addr, h, log)
	if err == nil || named || !errors.Is(err, syscall.EADDRINUSE) {
		return srv, err
	}
	srv, err2 := listen(FallbackAddr, h, log)
	if err2 != nil {
		return nil, err
	}
	log.Info("default status address taken; listening on a free port", "taken", addr, "addr", srv.Addr())
	return srv, nil
}

// Server is the status HTTP server (leaderd run -listen). Listening happens at start
// so a taken port is reported as bad input before any campaigning.
type Server struct {
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
}

func listen(addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &Server{
		ln: ln,
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		log: log,
	}, nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until Shutdown.
func (s *Server) Serve() {
	s.log.Info("status server listening", "addr", s.Addr())
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("status server failed", "err", err)
	}
}

// Shutdown stops the server, waiting at most a second for open requests.
func (s *Server) Shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}
