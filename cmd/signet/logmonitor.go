package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/core/tlog"
	"github.com/signet-dev/signet/core/verify"
	"github.com/signet-dev/signet/server/storage"
)

// monitorEvent is one line of `signet log monitor -o json`.
type monitorEvent struct {
	Time       time.Time `json:"time"`
	Event      string    `json:"event"` // verified, unreachable, inconsistent
	LogURL     string    `json:"logUrl"`
	TreeSize   uint64    `json:"treeSize,omitempty"`
	RootHash   string    `json:"rootHash,omitempty"`
	FromSize   *uint64   `json:"consistentFromSize,omitempty"`
	Error      string    `json:"error,omitempty"`
	SplitView  bool      `json:"splitView,omitempty"`
	Checkpoint string    `json:"checkpoint,omitempty"`        // inconsistent: the one served now
	Earlier    string    `json:"earlierCheckpoint,omitempty"` // inconsistent: the one seen before
}

func newLogMonitorCmd() *cobra.Command {
	var (
		l        logFlags
		state    string
		interval time.Duration
		once     bool
		witness  policyFlags
	)
	cmd := &cobra.Command{
		Use:   "monitor [--state FILE] [--interval 30s] [--once]",
		Short: "Follow a log, proving every new checkpoint consistent with the one before",
		Long: `Read the log's checkpoint every --interval, verify it against the trusted
root, and prove from the tiles that its tree extends the previous one. The
first inconsistency stops the monitor with the evidence, the two checkpoints
both signed by the log key:

  a split view     two trees of the same size with different roots
  a rewrite        a larger tree that does not extend the earlier one
  a truncation     a smaller tree than one seen before (or a stale answer)
  a bad signature  a checkpoint the log key did not sign
  unwitnessed      with --witness-policy: a checkpoint without the
                   cosignatures the policy requires

--state FILE keeps the last verified checkpoint across runs: the monitor
starts from it and rewrites it after each verified step, so a cron job with
--once checks the log since its last run. An unreachable log is reported and
tried again at the next interval (with --once it ends the run, exit 3).

Exit status: 0 --once found the log consistent; 1 an inconsistency, with
the evidence on stderr (and in -o json); 2 usage error; 3 --once could not
reach or read the log.
` + trustHelpVerify,
		Example: `  signet log monitor --server https://signet.example.com --trusted-root trusted_root.json --state log.cp
  signet log monitor --server $URL --state log.cp --once -o json   # from cron`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := l.out.check(); err != nil {
				return err
			}
			if interval < 0 {
				return usageError{fmt.Errorf("--interval %s: give a positive duration", interval)}
			}
			var pol verify.Policy
			if err := witness.witnesses(&pol); err != nil {
				return err
			}
			var last []byte
			if state != "" {
				b, err := os.ReadFile(state)
				switch {
				case err == nil:
					last = b
				case !errors.Is(err, os.ErrNotExist):
					return usageError{fmt.Errorf("--state: %v", err)}
				}
			}
			hc := httpClient()
			root, err := l.trust.root(cmd.Context(), hc, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			want := l.logURL
			if want == "" {
				if want, err = l.trust.serverURL(); err != nil {
					return err
				}
			}
			w := cmd.OutOrStdout()
			emit := func(e monitorEvent) {
				e.Time = time.Now().UTC()
				if l.out.json() {
					_ = writeJSON(w, e)
					return
				}
				switch e.Event {
				case "verified":
					from := "the first checkpoint of this run"
					if e.FromSize != nil {
						from = fmt.Sprintf("consistent with tree size %d", *e.FromSize)
					}
					fmt.Fprintf(w, "%s  tree size %d  root %s  verified, %s\n", e.Time.Format(time.RFC3339), e.TreeSize, e.RootHash, from)
				case "unreachable":
					fmt.Fprintf(cmd.ErrOrStderr(), "%s  warning: %s; trying again in %s\n", e.Time.Format(time.RFC3339), e.Error, interval)
				}
			}
			err = tlog.Monitor(cmd.Context(), tlog.MonitorOptions{
				Root: root.Root, BaseURL: want, HTTPClient: hc, Last: last, Interval: interval, Once: once, Witnesses: pol.Witnesses,
				Verified: func(cp tlog.Checkpoint, c *tlog.Consistency) {
					e := monitorEvent{Event: "verified", LogURL: want, TreeSize: cp.Size, RootHash: base64.StdEncoding.EncodeToString(cp.Hash)}
					if c != nil {
						e.FromSize = &c.OldSize
					}
					emit(e)
					if state != "" {
						if err := storage.WriteFileSync(state, cp.Note, 0o644); err != nil {
							fmt.Fprintf(cmd.ErrOrStderr(), "warning: --state: %v\n", err)
						}
					}
				},
				Unreachable: func(err error) { emit(monitorEvent{Event: "unreachable", LogURL: want, Error: err.Error()}) },
			})
			var (
				ce  *tlog.ConsistencyError
				cpe *tlog.CheckpointError
			)
			switch {
			case errors.As(err, &ce):
				e := monitorEvent{Event: "inconsistent", LogURL: want, TreeSize: ce.Size, Error: ce.Error(), SplitView: ce.SplitView(), Checkpoint: string(ce.Note), Earlier: string(ce.OldNote)}
				if l.out.json() {
					emit(e)
				}
				if ev := ce.Evidence(); ev != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "evidence (keep it: each checkpoint verifies with the log key on its own):\n%s", ev)
				}
				return err
			case errors.As(err, &cpe):
				if l.out.json() {
					emit(monitorEvent{Event: "inconsistent", LogURL: want, Error: cpe.Error()})
				}
				return err
			case err != nil && once:
				return monitorUnreachable{err}
			}
			return err
		},
	}
	l.add(cmd)
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "file keeping the last verified checkpoint across runs (read at start, rewritten after each verified step)")
	f.DurationVar(&interval, "interval", tlog.DefaultMonitorInterval, "time between checks")
	f.BoolVar(&once, "once", false, "check once (from --state, if any) and exit")
	f.StringVar(&witness.witnessPolicy, "witness-policy", "", "also require every checkpoint to carry the cosignatures this witness policy file requires (docs/verification.md)")
	return cmd
}

// monitorUnreachable is a --once run that could not make its check: exit 3,
// told apart from an inconsistency.
type monitorUnreachable struct{ err error }

func (e monitorUnreachable) Error() string { return e.err.Error() }
func (e monitorUnreachable) Unwrap() error { return e.err }
