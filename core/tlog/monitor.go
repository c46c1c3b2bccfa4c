package tlog

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/core/verify"
)

// MonitorOptions configure Monitor.
type MonitorOptions struct {
	Root       *trust.Root
	BaseURL    string // as for Open
	HTTPClient *http.Client
	// Last is the signed checkpoint the monitor saw last (from an earlier
	// run); nil starts from the log's current one.
	Last []byte
	// Interval between checks; default DefaultMonitorInterval.
	Interval time.Duration
	// Once checks once and returns.
	Once bool
	// Verified is called with every checkpoint that verified and extends
	// the one before (c is nil for the first, with no Last): the note to
	// keep as the next Last.
	Verified func(cp Checkpoint, c *Consistency)
	// Unreachable is called when a check could not be made (the log did
	// not answer); the monitor tries again at the next interval.
	Unreachable func(err error)
	// Witnesses, when set, must have cosigned every checkpoint; one
	// without their cosignatures stops the monitor (a *CheckpointError
	// whose Err has verify.CheckWitness).
	Witnesses *verify.WitnessPolicy
}

// DefaultMonitorInterval is how often Monitor reads the checkpoint.
const DefaultMonitorInterval = 30 * time.Second

// Monitor follows a log: at every interval it verifies the latest checkpoint
// against the trusted root and proves, from the tiles, that its tree extends
// the previous one. It returns the first inconsistency, with the evidence
// (*ConsistencyError: a split view, a rewritten or truncated tree;
// *CheckpointError: a checkpoint the log key did not sign), ctx's error
// when ctx ends, and with Once the error that kept the check from being
// made.
func Monitor(ctx context.Context, o MonitorOptions) error {
	if o.Interval <= 0 {
		o.Interval = DefaultMonitorInterval
	}
	last := o.Last
	for {
		l, err := Open(ctx, o.Root, o.BaseURL, o.HTTPClient)
		if err == nil && o.Witnesses != nil {
			if _, werr := o.Witnesses.Check(l.Checkpoint().Note); werr != nil {
				err = &CheckpointError{LogURL: l.Trusted().BaseURL, Served: true, Err: werr}
			}
		}
		if err == nil {
			var c *Consistency
			if last != nil {
				c, err = l.ConsistencyFrom(ctx, last)
			}
			if err == nil {
				last = l.Checkpoint().Note
				if o.Verified != nil {
					o.Verified(l.Checkpoint(), c)
				}
			}
		}
		var (
			ce  *ConsistencyError
			cpe *CheckpointError
			lc  *LogChoiceError
		)
		switch {
		case errors.As(err, &ce), errors.As(err, &cpe), errors.As(err, &lc):
			return err
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil && o.Once:
			return err
		case err != nil && o.Unreachable != nil:
			o.Unreachable(err)
		}
		if o.Once {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(o.Interval):
		}
	}
}
