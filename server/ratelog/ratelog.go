// Package ratelog logs errors that come in floods (a full disk fails every
// request) at most once a second, with the count of those it held back.
package ratelog

import (
	"log/slog"
	"sync"
	"time"
)

// Limiter logs at most one error a second; the rest are counted and the
// count goes with the next line, so a full disk is a line a second, not
// thousands. The zero value is ready to use.
type Limiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// Error logs msg at error level unless one was logged in the last second.
func (r *Limiter) Error(l *slog.Logger, msg string, args ...any) {
	r.mu.Lock()
	now := time.Now()
	if now.Sub(r.last) < time.Second {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed_since_last", n)
	}
	l.Error(msg, args...)
}
