package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/signet-dev/signet/server"
)

// fsckResult is `signet server fsck --output json`.
type fsckResult struct {
	OK            bool     `json:"ok"`
	TreeSize      uint64   `json:"treeSize"`
	PublishedSize uint64   `json:"publishedSize"`
	SignedSize    uint64   `json:"signedSize"`
	Problems      []string `json:"problems"`
	// Shards are the reports on the log shards of key rotations.
	Shards []fsckLog `json:"shards,omitempty"`
	// CTLog is the certificate transparency log's report, when the data
	// directory holds one.
	CTLog *fsckLog `json:"ctLog,omitempty"`
}

type fsckLog struct {
	Origin        string   `json:"origin,omitempty"`
	OK            bool     `json:"ok"`
	TreeSize      uint64   `json:"treeSize"`
	PublishedSize uint64   `json:"publishedSize"`
	SignedSize    uint64   `json:"signedSize"`
	Problems      []string `json:"problems"`
}

func newServerFsckCmd() *cobra.Command {
	var (
		configPath string
		data       string
		out        outputFormat
	)
	cmd := &cobra.Command{
		Use:   "fsck",
		Short: "Check a stopped server's data directory for damage",
		Long: `Check a stopped server's data directory: the published checkpoint and the
signed-head record against the log key; tessera's tree state against the
tiles; every entry bundle and tile, recomputed from the entries, against the
tree; the signed and published trees as prefixes of the stored one. The
certificate transparency log (ctlog/, its static-ct-api data tiles and
ctlog.signed-head) and every log shard of a key rotation (log.<origin>/ and
signed-head.<origin>; give --config so their keys are known) get the same
checks.

It reads only, and takes the data directory's lock, so stop the server first.
The server makes the quick form of these checks at every start and refuses
to start on damage; fsck is the full walk, for after a crash, a restore or a
disk error. docs/operations.md says what to do about each problem.

Exit status: 0 no problem; 1 problems found (each is printed) or the check
could not run; 2 usage error.`,
		Example: `  signet server fsck --data /var/lib/signet
  signet server fsck --data /var/lib/signet --config /etc/signet/server.yaml -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			cfg := server.Config{}
			if configPath != "" {
				var err error
				if cfg, err = server.LoadConfig(configPath); err != nil {
					return err
				}
			}
			if cmd.Flags().Changed("data") || cfg.Data == "" {
				cfg.Data = data
			}
			// tessera's fsck reports progress through klog; keep stdout the report.
			klog.SetOutput(io.Discard)
			klog.LogToStderr(false)
			rep, err := server.Fsck(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			lg := rep.Log
			res := fsckResult{OK: len(lg.Problems) == 0, TreeSize: lg.TreeSize, PublishedSize: lg.PublishedSize, SignedSize: lg.SignedSize, Problems: append([]string{}, lg.Problems...)}
			problems := len(lg.Problems)
			for _, sh := range rep.Shards {
				res.Shards = append(res.Shards, fsckLog{Origin: sh.Origin, OK: len(sh.Problems) == 0, TreeSize: sh.TreeSize, PublishedSize: sh.PublishedSize, SignedSize: sh.SignedSize, Problems: append([]string{}, sh.Problems...)})
				res.OK = res.OK && len(sh.Problems) == 0
				problems += len(sh.Problems)
			}
			if ct := rep.CTLog; ct != nil {
				res.CTLog = &fsckLog{OK: len(ct.Problems) == 0, TreeSize: ct.TreeSize, PublishedSize: ct.PublishedSize, SignedSize: ct.SignedSize, Problems: append([]string{}, ct.Problems...)}
				res.OK = res.OK && res.CTLog.OK
				problems += len(ct.Problems)
			}
			w := cmd.OutOrStdout()
			if out.json() {
				if err := writeJSON(w, res); err != nil {
					return err
				}
			} else {
				for _, p := range lg.Problems {
					fmt.Fprintf(w, "problem: %s\n", p)
				}
				if len(lg.Problems) == 0 {
					fmt.Fprintf(w, "ok: %s holds a log of %d entries; the published checkpoint (%d) and the last signed tree (%d) are prefixes of it, and every tile and entry bundle agrees\n", cfg.Data, lg.TreeSize, lg.PublishedSize, lg.SignedSize)
				}
				for _, sh := range rep.Shards {
					for _, p := range sh.Problems {
						fmt.Fprintf(w, "problem: log shard %s: %s\n", sh.Origin, p)
					}
					if len(sh.Problems) == 0 {
						fmt.Fprintf(w, "ok: the log shard %s holds %d entries; its published checkpoint (%d) and last signed tree (%d) are prefixes of it, and every tile and entry bundle agrees\n", sh.Origin, sh.TreeSize, sh.PublishedSize, sh.SignedSize)
					}
				}
				if ct := rep.CTLog; ct != nil {
					for _, p := range ct.Problems {
						fmt.Fprintf(w, "problem: CT log: %s\n", p)
					}
					if len(ct.Problems) == 0 {
						fmt.Fprintf(w, "ok: the CT log holds %d precertificates; its published checkpoint (%d) and last signed tree (%d) are prefixes of it, and every tile and data tile agrees\n", ct.TreeSize, ct.PublishedSize, ct.SignedSize)
					}
				}
			}
			if !res.OK {
				return errors.New(fmt.Sprint(problems, " problem(s) found in ", cfg.Data, "; see docs/operations.md"))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "the server's YAML config file (for operator-supplied keys and log.origin)")
	f.StringVar(&data, "data", server.DefaultData, "data directory to check")
	out.add(f)
	return cmd
}
