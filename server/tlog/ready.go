package tlog

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// readyWindow is how long a failed append keeps the log unready when no
// append succeeds after it: long enough for a load balancer to see it,
// short enough that a recovered log is back without a restart.
const readyWindow = 10 * time.Second

// health remembers the newest append that failed for a cause that will
// fail the next one too (a full disk, witnesses that do not cosign).
type health struct {
	mu   sync.Mutex
	err  error
	when time.Time
}

func (h *health) record(err error) {
	// Only the cause is kept: the detail names server paths, and /readyz
	// may be public.
	for _, cause := range []error{ErrStorageFull, ErrNotWitnessed} {
		if errors.Is(err, cause) {
			h.mu.Lock()
			h.err, h.when = cause, time.Now()
			h.mu.Unlock()
			return
		}
	}
}

func (h *health) ok() {
	h.mu.Lock()
	h.err = nil
	h.mu.Unlock()
}

// Ready says whether the log can acknowledge entries now: nil, or the
// cause of the newest failed append when it is recent and nothing was
// appended since (readiness, for /readyz; liveness is not its business).
func (l *Log) Ready() error {
	l.health.mu.Lock()
	defer l.health.mu.Unlock()
	if l.health.err != nil && time.Since(l.health.when) < readyWindow {
		return fmt.Errorf("the last append failed %s ago: %w", time.Since(l.health.when).Round(time.Second), l.health.err)
	}
	return nil
}
