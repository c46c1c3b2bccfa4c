package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/server/loadgen"
)

func newBenchCmd() *cobra.Command {
	var (
		serverURL, requestToken, identityToken, dataDir, output string
		clients                                                 []int
		duration, warmup                                        time.Duration
		entries, tokens                                         int
	)
	cmd := &cobra.Command{
		Use:   "bench ca|log|tsa",
		Short: "Load-test a running signet server's APIs and report throughput and latency",
		Long: `Drive a running signet server from this separate process with many concurrent
clients, each on its own connection, and report requests/s and latency
percentiles for each client count.

  ca    full certificate issuance: token check, proof of possession, signing
  log   hashedrekord v0.0.2 appends; each response must carry an inclusion
        proof and a checkpoint that covers the entry
  tsa   RFC 3161 timestamps

The CA and log workloads need the server's development OIDC issuer
(signet server --dev-oidc) to mint tokens; pass its data directory or the
request token. Results for the reference machine are in docs/benchmarks.md.`,
		Example: `  signet server --dev-oidc --data /tmp/bench-data &
  signet bench log --server http://127.0.0.1:8080 --data /tmp/bench-data --clients 16,256
  signet bench ca  --server http://127.0.0.1:8080 --data /tmp/bench-data --clients 128 -o json`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"ca", "log", "tsa"},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			kind := args[0]
			if output != "text" && output != "json" {
				return usageError{fmt.Errorf("--output %q: use text or json", output)}
			}
			if serverURL == "" {
				serverURL = os.Getenv("SIGNET_SERVER")
			}
			if serverURL == "" {
				return usageError{fmt.Errorf("no server: pass --server URL or set SIGNET_SERVER")}
			}
			serverURL = strings.TrimRight(serverURL, "/")
			if identityToken != "" && kind != "log" {
				return usageError{fmt.Errorf("--identity-token is for the log workload; the ca workload mints distinct tokens from the development issuer (--request-token or --data)")}
			}
			if requestToken == "" && identityToken == "" && kind != "tsa" {
				b, err := os.ReadFile(filepath.Join(dataDir, "dev-oidc", "request-token"))
				if err != nil {
					return usageError{fmt.Errorf("the %s workload needs the development issuer's request token: pass --request-token or --data DIR of a server started with --dev-oidc, or (log) --identity-token (%v)", kind, err)}
				}
				requestToken = strings.TrimSpace(string(b))
			}
			maxClients := 0
			for _, c := range clients {
				maxClients = max(maxClients, c)
			}
			progress := func(format string, a ...any) {
				if output == "text" {
					fmt.Fprintf(cmd.ErrOrStderr(), format+"\n", a...)
				}
			}
			progress("preparing %s workload…", kind)
			var (
				w   *loadgen.Workload
				err error
			)
			switch kind {
			case "ca":
				w, err = loadgen.CA(ctx, serverURL, requestToken, maxClients, tokens)
			case "log":
				signed := func(n int) { progress("  %d entries signed", n) }
				if identityToken != "" {
					w, err = loadgen.LogWithToken(ctx, serverURL, identityToken, entries, signed)
				} else {
					w, err = loadgen.Log(ctx, serverURL, requestToken, entries, signed)
				}
			case "tsa":
				w, err = loadgen.TSA(10000)
			default:
				return usageError{fmt.Errorf("unknown workload %q: use ca, log or tsa", kind)}
			}
			if err != nil {
				return err
			}
			var results []loadgen.Result
			for _, c := range clients {
				progress("%s: %d clients for %s (after %s warm-up)…", kind, c, duration, warmup)
				r, err := loadgen.Run(ctx, loadgen.Options{
					Server: serverURL, Clients: c, Duration: duration, Warmup: warmup,
					Next: w.Next, Check: w.Check,
					Progress: func(done int64, el time.Duration) {
						progress("  %s: %d ok", el.Round(time.Second), done)
					},
				})
				if err != nil {
					return err
				}
				results = append(results, r)
				if output == "text" {
					fmt.Fprintf(cmd.OutOrStdout(), "%s  %s\n", kind, r)
				}
			}
			if output == "json" {
				if err := writeJSON(cmd.OutOrStdout(), map[string]any{"workload": kind, "server": serverURL, "results": results}); err != nil {
					return err
				}
			}
			for _, r := range results {
				if r.Errors > 0 {
					return fmt.Errorf("%d requests failed at %d clients (first: %s)", r.Errors, r.Clients, r.FirstError)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&serverURL, "server", "", "signet server URL (default $SIGNET_SERVER)")
	f.StringVar(&requestToken, "request-token", "", "development issuer request token")
	f.StringVar(&identityToken, "identity-token", "", "log: an OIDC token of an issuer the server trusts, for the entries' certificate, instead of the development issuer (servers without --dev-oidc, e.g. on distributed storage)")
	f.StringVar(&dataDir, "data", "./signet-data", "data directory of the server, to read the development issuer's request token")
	f.IntSliceVar(&clients, "clients", []int{16}, "concurrent clients; a list runs one measurement each")
	f.DurationVar(&duration, "duration", 20*time.Second, "measured time per client count")
	f.DurationVar(&warmup, "warmup", 3*time.Second, "unmeasured warm-up before each measurement")
	f.IntVar(&tokens, "tokens", 20000, "ca: distinct tokens minted before the run and used round-robin, as CI jobs each bring their own; 0 reuses one token per client")
	f.IntVar(&entries, "entries", 200000, "distinct log entries prepared before the log run (reused round-robin if exhausted)")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}
