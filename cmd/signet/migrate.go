package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/server"
	"github.com/signet-dev/signet/server/tlog"
)

// migrateResult is `signet server migrate --output json`.
type migrateResult struct {
	Log migratedLog `json:"log"`
	// CTLog is the certificate transparency log, when the data directory
	// holds one; CTIssuers the issuer certificates copied beside it.
	CTLog     *migratedLog `json:"ctLog,omitempty"`
	CTIssuers int          `json:"ctIssuers,omitempty"`
	// Attestations: the attestation store's records, when the data
	// directory has one.
	Attestations *migratedAttestations `json:"attestations,omitempty"`
}

type migratedAttestations struct {
	Total   int `json:"total"`
	Copied  int `json:"copied"`
	Present int `json:"alreadyPresent"`
	// Pending are attestations whose log append started but was never
	// stored: not copied; resubmitting the envelope completes them.
	Pending []string `json:"pending"`
}

func migrated(r *tlog.MigrateReport) migratedLog {
	return migratedLog{TreeSize: r.TreeSize, Root: base64.StdEncoding.EncodeToString(r.Root), SignedSize: r.SignedSize, AlreadyDone: r.Done}
}

type migratedLog struct {
	TreeSize   uint64 `json:"treeSize"`
	Root       string `json:"root"` // base64, as in checkpoints
	SignedSize uint64 `json:"signedSize"`
	// AlreadyDone: the target held exactly this log before the run.
	AlreadyDone bool `json:"alreadyDone"`
}

func newServerMigrateCmd() *cobra.Command {
	var (
		configPath string
		data       string
		out        outputFormat
	)
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Copy a stopped server's data directory into distributed storage",
		Long: `Copy a stopped embedded server's data directory into the distributed storage
(a MySQL-compatible database and an S3-compatible object store) that --config
names, so that several servers can serve the same log (docs/scale-out.md).

The transparency log, and the certificate transparency log beside it, keep
every entry at its index: the same root at the same size, which the copy
checks before it reports success, so every bundle the log ever returned
still verifies against the distributed servers' checkpoints. The CT log
needs storage.ctDatabase in the configuration. The attestation store is
copied into storage.database in its order (so queries and page tokens give
the same answers); that database must not yet hold attestations of its own,
so migrate before the distributed servers take any. The data directory is checked first as fsck does, and a damaged one is not
copied. The signed-head record is carried over last: a server started on the
target after an interrupted run refuses to start, and running migrate again
resumes. Keys are not copied: give every distributed server the same keys
(this data directory's keys/, or the configured key files or URIs).

It takes the data directory's lock, so stop the server first; it changes
nothing in the data directory, which stays a complete backup.

Exit status: 0 migrated (or already migrated); 1 refused or failed (the
message says why; nothing a server would use has been changed); 2 usage error.`,
		Example: `  systemctl stop signet   # or however the server runs: it must be stopped
  signet server migrate --data /var/lib/signet --config /etc/signet/distributed.yaml
  signet server migrate --data /var/lib/signet --config distributed.yaml -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			if configPath == "" {
				return usageError{errors.New("--config is required: the configuration of the distributed deployment (storage.driver: distributed) to copy into")}
			}
			cfg, err := server.LoadConfig(configPath)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("data") || cfg.Data == "" {
				cfg.Data = data
			}
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			rep, err := server.Migrate(cmd.Context(), cfg, logger)
			if err != nil {
				return err
			}
			res := migrateResult{Log: migrated(rep.Log), CTIssuers: rep.CTIssuers}
			if rep.CTLog != nil {
				ct := migrated(rep.CTLog)
				res.CTLog = &ct
			}
			if a := rep.Attestations; a != nil {
				res.Attestations = &migratedAttestations{Total: a.Total, Copied: a.Copied, Present: a.Present, Pending: append([]string{}, a.Pending...)}
			}
			w := cmd.OutOrStdout()
			if out.json() {
				return writeJSON(w, res)
			}
			line := func(what string, l migratedLog) {
				how := "copied"
				if l.AlreadyDone {
					how = "already there"
				}
				fmt.Fprintf(w, "%s: %d entries, root %s, %s\n", what, l.TreeSize, l.Root, how)
			}
			line("transparency log", res.Log)
			if res.CTLog != nil {
				line("certificate transparency log", *res.CTLog)
				fmt.Fprintf(w, "certificate transparency log issuers: %d\n", res.CTIssuers)
			}
			if a := res.Attestations; a != nil {
				fmt.Fprintf(w, "attestations: %d, %d copied, %d already there\n", a.Total, a.Copied, a.Present)
				for _, id := range a.Pending {
					fmt.Fprintf(w, "attestation %s was never stored (its log append did not finish): not copied; resubmit its envelope to the new deployment\n", id)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "the distributed deployment's YAML config file (storage.driver: distributed); required")
	f.StringVar(&data, "data", server.DefaultData, "the stopped server's data directory to copy")
	out.add(f)
	return cmd
}
