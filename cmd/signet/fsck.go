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
tree; the signed and published trees as prefixes of the stored one.

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
			res := fsckResult{OK: len(rep.Problems) == 0, TreeSize: rep.TreeSize, PublishedSize: rep.PublishedSize, SignedSize: rep.SignedSize, Problems: append([]string{}, rep.Problems...)}
			w := cmd.OutOrStdout()
			if out.json() {
				if err := writeJSON(w, res); err != nil {
					return err
				}
			} else {
				for _, p := range rep.Problems {
					fmt.Fprintf(w, "problem: %s\n", p)
				}
				if res.OK {
					fmt.Fprintf(w, "ok: %s holds a log of %d entries; the published checkpoint (%d) and the last signed tree (%d) are prefixes of it, and every tile and entry bundle agrees\n", cfg.Data, rep.TreeSize, rep.PublishedSize, rep.SignedSize)
				}
			}
			if !res.OK {
				return errors.New(fmt.Sprint(len(rep.Problems), " problem(s) found in ", cfg.Data, "; see docs/operations.md"))
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
