package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/server"
	"github.com/signet-dev/signet/server/trust"
)

func newServerCmd() *cobra.Command {
	var (
		configPath, logLevel, logFormat string
		flagCfg                         server.Config
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the signet server: CA, transparency log and timestamp authority in one binary",
		Long: `Run a private Sigstore in one process: a certificate authority that exchanges
CI OIDC tokens for 10-minute code-signing certificates (Fulcio v2 API), a
transparency log of signatures and attestations (Rekor v2 API, C2SP
checkpoints and tlog-tiles), and an RFC 3161 timestamp authority.

With no configuration it runs on an embedded default: keys are generated in
the data directory on first start and kept across restarts.

Clients get the trust files from the server:
  <url>/trust/trusted_root.json    CA chain, log key, TSA chain
  <url>/trust/signing_config.json  this server's CA, log and TSA URLs
which cosign v3 takes as --trusted-root and --signing-config.`,
		Example: `  # Try it locally with the development OIDC issuer:
  signet server --dev-oidc

  # Production: issuers, TLS and limits in a config file
  signet server --config /etc/signet/server.yaml --data /var/lib/signet`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := server.Config{}
			if configPath != "" {
				var err error
				if cfg, err = server.LoadConfig(configPath); err != nil {
					return err
				}
			}
			// Flags given explicitly win over the file.
			f := cmd.Flags()
			if f.Changed("addr") || cfg.Addr == "" {
				cfg.Addr = flagCfg.Addr
			}
			if f.Changed("data") || cfg.Data == "" {
				cfg.Data = flagCfg.Data
			}
			if f.Changed("url") {
				cfg.URL = flagCfg.URL
			}
			if f.Changed("tls-cert") {
				cfg.TLS.Cert = flagCfg.TLS.Cert
			}
			if f.Changed("tls-key") {
				cfg.TLS.Key = flagCfg.TLS.Key
			}
			if f.Changed("dev-oidc") {
				cfg.DevOIDC = flagCfg.DevOIDC
			}
			if f.Changed("admin-addr") || f.Changed("debug-addr") {
				cfg.AdminAddr = flagCfg.AdminAddr
			}
			logger, err := newLogger(cmd, logLevel, logFormat)
			if err != nil {
				return err
			}

			// The server's live heap is small and its garbage short-lived: a
			// lazier collector frees about a tenth of the CPU under load
			// (docs/benchmarks.md). GOGC and GOMEMLIMIT still win when set.
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(400)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			srv, err := server.New(ctx, cfg, logger)
			if err != nil {
				return err
			}
			printBanner(cmd, srv)
			return srv.Serve(ctx)
		},
	}
	cmd.AddCommand(newServerFsckCmd(), newServerMigrateCmd(), newServerKeygenCmd(), newServerBackupCmd(), newServerRestoreCmd())
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML config file (OIDC issuers, keys, limits); flags override it")
	f.StringVar(&flagCfg.Addr, "addr", server.DefaultAddr, "listen address host:port")
	f.StringVar(&flagCfg.Data, "data", server.DefaultData, "data directory: keys, log and attestations live here")
	f.StringVar(&flagCfg.URL, "url", "", "public base URL clients use (default: http(s)://<addr>)")
	f.StringVar(&flagCfg.TLS.Cert, "tls-cert", "", "PEM certificate for HTTPS")
	f.StringVar(&flagCfg.TLS.Key, "tls-key", "", "PEM private key for HTTPS")
	f.BoolVar(&flagCfg.DevOIDC, "dev-oidc", false, "enable the development OIDC issuer at <url>/dev/oidc (quickstarts and tests only: anyone with its request token can mint any identity)")
	f.StringVar(&flagCfg.AdminAddr, "admin-addr", "", "serve /metrics, /healthz, /readyz and Go profiling (/debug/pprof/) on this separate address, e.g. 127.0.0.1:9090, and no /metrics on the public one; never expose it (config: adminAddr)")
	f.StringVar(&flagCfg.AdminAddr, "debug-addr", "", "old name of --admin-addr")
	_ = f.MarkDeprecated("debug-addr", "use --admin-addr, which serves metrics and health beside profiling")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "json", "log format: json or text")
	return cmd
}

func newLogger(cmd *cobra.Command, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level %q: use debug, info, warn or error", level)}
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), opts)), nil
	default:
		return nil, usageError{fmt.Errorf("--log-format %q: use json or text", format)}
	}
}

// printBanner tells a person what is running and how to use it; logs go to
// stderr, this goes to stdout.
func printBanner(cmd *cobra.Command, srv *server.Server) {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "signet server at %s\n", srv.URL())
	fmt.Fprintf(out, "  data directory   %s\n", srv.DataDir())
	fmt.Fprintf(out, "  trusted root     %s%s\n", srv.URL(), trust.TrustedRootPath)
	fmt.Fprintf(out, "  signing config   %s%s\n", srv.URL(), trust.SigningConfigPath)
	if a := srv.AdminURL(); a != "" {
		fmt.Fprintf(out, "  admin            %s (/metrics, /healthz, /readyz, /debug/pprof/)\n", a)
	}
	if dev := srv.DevOIDC(); dev != nil {
		fmt.Fprintf(out, "  DEVELOPMENT OIDC issuer %s (never expose this server)\n", dev.IssuerURL())
		fmt.Fprintf(out, "    request token  %s\n", dev.RequestToken())
		fmt.Fprintf(out, "    (also in %s)\n", filepath.Join(srv.DataDir(), "dev-oidc", "request-token"))
		fmt.Fprintf(out, "    get a token:   curl -H \"Authorization: bearer $(cat %s)\" '%s/token?audience=sigstore&kind=github&repository=acme/app'\n",
			filepath.Join(srv.DataDir(), "dev-oidc", "request-token"), dev.IssuerURL())
	}
}
