package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// admin is the operators' listener (adminAddr): metrics, health and
// profiling, apart from the public API so none of them is exposed with it.
type admin struct {
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
}

func newAdmin(addr string, metrics http.Handler, s *Server, logger *slog.Logger) (*admin, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("adminAddr %s: %w; choose another address (or leave adminAddr unset to serve /metrics with the API)", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	// A consistent copy of the data directory, taken while serving (backup.go).
	mux.HandleFunc("GET /backup", s.handleBackup)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	a := &admin{ln: ln, log: logger, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}}
	s.adminURL = "http://" + ln.Addr().String()
	return a, nil
}

func (a *admin) serve() {
	a.log.Info("admin listener (metrics, health, profiling)", "addr", a.ln.Addr().String())
	if err := a.srv.Serve(a.ln); err != nil && err != http.ErrServerClosed {
		a.log.Error("admin listener stopped", "error", err)
	}
}

func (a *admin) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = a.srv.Shutdown(ctx)
}

// handleHealthz is liveness: the process serves requests. It stays 200
// while draining, so an orchestrator does not kill a server finishing its
// requests.
func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// handleReadyz is readiness: the server can take new work now. 503 while
// it drains for shutdown, and while the log cannot acknowledge entries (a
// full disk, witnesses that do not cosign), naming the cause.
func (s *Server) handleReadyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready: shutting down\n"))
		return
	}
	if err := s.logs.Ready(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "not ready: transparency log: %v\n", err)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// AdminURL is the admin listener's URL, empty when adminAddr is unset.
func (s *Server) AdminURL() string { return s.adminURL }
