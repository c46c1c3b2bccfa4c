package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// defaultTimeout bounds a command's network work, as cosign's --timeout does.
const defaultTimeout = 3 * time.Minute

// untimed are the commands that run until stopped.
var untimed = map[string]bool{"server": true, "quickstart": true, "bench": true, "github-action": true, "log monitor": true}

// timeoutError is a command that ran out of --timeout.
type timeoutError struct {
	limit time.Duration
	err   error
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("%v: no result within --timeout %s; a service or registry did not answer in time (raise --timeout, or check that it is reachable)", e.err, e.limit)
}
func (e *timeoutError) Unwrap() error { return e.err }

// addTimeout gives every command but the long-running ones --timeout/-t,
// the deadline for all it does.
func addTimeout(root *cobra.Command) {
	var limit time.Duration
	root.PersistentFlags().DurationVarP(&limit, "timeout", "t", defaultTimeout, "give up after this long (e.g. 30s, 10m); not for server, quickstart, bench, log monitor")
	var cancel context.CancelFunc
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		top := cmd
		for top.HasParent() && top.Parent() != root {
			top = top.Parent()
		}
		if untimed[top.Name()] || untimed[strings.TrimPrefix(cmd.CommandPath(), root.Name()+" ")] {
			return nil
		}
		if limit <= 0 {
			return usageError{fmt.Errorf("--timeout %s: give a positive duration, e.g. 3m", limit)}
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		ctx, cancel = context.WithTimeout(ctx, limit)
		cmd.SetContext(ctx)
		wrapTimeout(cmd, limit)
		return nil
	}
	root.PersistentPostRun = func(*cobra.Command, []string) {
		if cancel != nil {
			cancel()
		}
	}
}

// wrapTimeout makes the command's error say that --timeout ran out.
func wrapTimeout(cmd *cobra.Command, limit time.Duration) {
	run := cmd.RunE
	if run == nil {
		return
	}
	cmd.RunE = func(c *cobra.Command, args []string) error {
		err := run(c, args)
		if err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(c.Context().Err(), context.DeadlineExceeded)) {
			return &timeoutError{limit: limit, err: err}
		}
		return err
	}
}
