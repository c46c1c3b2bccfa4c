package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/trust"
)

// Names of the pinned files in --out.
const (
	trustedRootFile   = "trusted_root.json"
	signingConfigFile = "signing_config.json"
)

// trustResult is what `signet trust` reports (--output json).
type trustResult struct {
	Server string `json:"server"`
	// VerifiedOverTUF: the files came through the server's TUF repository,
	// verified from the pinned root (--root).
	VerifiedOverTUF bool          `json:"verifiedOverTUF"`
	TrustedRoot     string        `json:"trustedRoot"`
	SigningConfig   string        `json:"signingConfig"`
	Changed         bool          `json:"changed"` // an earlier pin was replaced (--force)
	CAs             []authorityFP `json:"cas"`
	Logs            []logFP       `json:"logs"`
	TSAs            []authorityFP `json:"tsas"`
	Services        servicesJSON  `json:"services"`
}

// authorityFP identifies a CA or TSA by the SHA-256 of its root certificate
// (and of its pinned leaf, for a TSA that pins one).
type authorityFP struct {
	URI        string    `json:"uri"`
	Subject    string    `json:"subject"`
	RootSHA256 string    `json:"rootSha256"`
	LeafSHA256 string    `json:"leafSha256,omitempty"`
	ValidFrom  time.Time `json:"validFrom"`
}

// logFP identifies a log by its ID and the SHA-256 of its public key (PKIX DER).
type logFP struct {
	BaseURL   string    `json:"baseUrl"`
	Origin    string    `json:"origin"`
	LogID     string    `json:"logId"`
	KeySHA256 string    `json:"keySha256"`
	ValidFrom time.Time `json:"validFrom"`
}

type servicesJSON struct {
	CAs  []string `json:"cas"`
	Logs []string `json:"logs"`
	TSAs []string `json:"tsas"`
}

func certFP(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	s := sha256.Sum256(c.Raw)
	return hex.EncodeToString(s[:])
}

func authorities(cas []*trust.CA) []authorityFP {
	out := []authorityFP{}
	for _, c := range cas {
		a := authorityFP{URI: c.URI, Subject: c.Subject, RootSHA256: certFP(c.Root), LeafSHA256: certFP(c.Leaf), ValidFrom: c.ValidFor.Start.UTC()}
		if a.Subject == "" && c.Root != nil {
			a.Subject = c.Root.Subject.String()
		}
		out = append(out, a)
	}
	return out
}

func logFingerprints(r *trust.Root) ([]logFP, error) {
	out := []logFP{}
	for _, l := range r.Logs {
		der, err := x509.MarshalPKIXPublicKey(l.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("log %s key: %w", l.BaseURL, err)
		}
		s := sha256.Sum256(der)
		out = append(out, logFP{BaseURL: l.BaseURL, Origin: l.Origin, LogID: hex.EncodeToString(l.ID), KeySHA256: hex.EncodeToString(s[:]), ValidFrom: l.ValidFor.Start.UTC()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ValidFrom.Before(out[j].ValidFrom) })
	return out, nil
}

func serviceURLs(s []trust.Service) []string {
	out := []string{}
	for _, x := range s {
		out = append(out, x.URL)
	}
	return out
}

func newTrustCmd() *cobra.Command {
	var (
		src     trustSource
		out     outputFormat
		dir     string
		force   bool
		tufRoot string
	)
	cmd := &cobra.Command{
		Use:   "trust --server URL [--root root.json] [--out DIR]",
		Short: "Fetch and pin a signet server's trusted_root.json and signing_config.json",
		Long: `Fetch a server's trust files, check they parse, and write them to DIR as
trusted_root.json and signing_config.json. Then sign with
--signing-config DIR/signing_config.json and verify offline with
--trusted-root DIR/trusted_root.json; cosign takes the same two files.

The fingerprints printed (SHA-256 of each CA's and TSA's root certificate,
and of each log's public key) identify the keys you now trust: compare them
out of band with the server's operator before relying on them.

With --root FILE (the server's TUF root metadata, e.g. /tuf/root.json,
obtained out of band) the two files come through the server's TUF
repository (<server>/tuf) and are verified from that root: signatures,
thresholds, expiry, rollback and the targets' hashes, as cosign initialize
and sigstore-go's TUF client check them. Without it the files are trusted
as the network delivers them.

Re-running refuses to overwrite pinned files that differ from what the
server now serves (exit 1) unless --force: keys that change unexpectedly are
exactly what pinning should surface.

Exit status: 0 pinned (or unchanged); 1 fetch failed or the pin differs;
2 usage error.`,
		Example: `  signet trust --server https://signet.example.com --out .signet
  signet verify-blob app.tar.gz --trusted-root .signet/trusted_root.json \
    --certificate-identity … --certificate-oidc-issuer …`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			srv, err := src.serverURL()
			if err != nil {
				return err
			}
			if srv == "" {
				return usageError{fmt.Errorf("signet trust needs --server URL (or $%s)", serverEnv)}
			}
			ctx, hc := cmd.Context(), httpClient()
			var rootJSON, scJSON []byte
			if tufRoot != "" {
				pinned, err := os.ReadFile(tufRoot)
				if err != nil {
					return usageError{fmt.Errorf("--root: %v", err)}
				}
				got, err := trust.FetchOverTUF(srv+"/tuf", pinned, hc, trust.TUFTrustedRootTarget, trust.TUFSigningConfigTarget)
				if err != nil {
					return fmt.Errorf("%w; check that --root %s is the root metadata the operator published, and that the server's TUF repository is current", err, tufRoot)
				}
				rootJSON, scJSON = got[trust.TUFTrustedRootTarget], got[trust.TUFSigningConfigTarget]
			} else {
				if rootJSON, err = sign.FetchTrustFile(ctx, srv, sign.TrustedRootPath, hc); err != nil {
					return err
				}
				if scJSON, err = sign.FetchTrustFile(ctx, srv, sign.SigningConfigPath, hc); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "note: the trust files are as the network delivered them from %s; pin its TUF root and pass --root to verify them\n", srv)
			}
			root, err := trust.ParseRoot(rootJSON)
			if err != nil {
				return fmt.Errorf("%s%s: %w", srv, sign.TrustedRootPath, err)
			}
			sc, err := trust.ParseSigningConfig(scJSON)
			if err != nil {
				return fmt.Errorf("%s%s: %w", srv, sign.SigningConfigPath, err)
			}
			logs, err := logFingerprints(root)
			if err != nil {
				return err
			}
			res := &trustResult{
				Server: srv, VerifiedOverTUF: tufRoot != "", TrustedRoot: filepath.Join(dir, trustedRootFile), SigningConfig: filepath.Join(dir, signingConfigFile),
				CAs: authorities(root.CAs), Logs: logs, TSAs: authorities(root.TSAs),
				Services: servicesJSON{CAs: serviceURLs(sc.CAs), Logs: serviceURLs(sc.RekorLogs), TSAs: serviceURLs(sc.TSAs)},
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return usageError{fmt.Errorf("--out: %v", err)}
			}
			// Check both pins before writing either, so a refusal changes nothing.
			files := []struct {
				path string
				data []byte
			}{{res.TrustedRoot, rootJSON}, {res.SigningConfig, scJSON}}
			for _, f := range files {
				old, err := os.ReadFile(f.path)
				switch {
				case errors.Is(err, os.ErrNotExist):
				case err != nil:
					return usageError{fmt.Errorf("--out: %v", err)}
				case !bytes.Equal(old, f.data):
					res.Changed = true
				}
			}
			var pinErr error
			if res.Changed && !force {
				pinErr = fmt.Errorf("%s already pins different trust material than %s now serves; compare the fingerprints above with the operator out of band, then re-run with --force to replace it", dir, srv)
			} else {
				for _, f := range files {
					if err := sign.WriteBundle(f.path, f.data); err != nil {
						return err
					}
				}
			}
			if out.json() {
				if err := writeJSON(cmd.OutOrStdout(), res); err != nil {
					return err
				}
			} else {
				res.print(cmd.OutOrStdout(), pinErr == nil)
			}
			return pinErr
		},
	}
	src.addServer(cmd.Flags())
	cmd.Flags().StringVar(&dir, "out", ".", "directory to write trusted_root.json and signing_config.json to")
	cmd.Flags().BoolVar(&force, "force", false, "replace pinned files that differ from what the server serves")
	cmd.Flags().StringVar(&tufRoot, "root", "", "TUF root metadata (the server's /tuf/root.json, obtained out of band): fetch the files through TUF, verified from it")
	out.add(cmd.Flags())
	return cmd
}

func (r *trustResult) print(w io.Writer, pinned bool) {
	if pinned {
		fmt.Fprintf(w, "pinned the trust of %s\n  %s\n  %s\n", r.Server, r.TrustedRoot, r.SigningConfig)
		if r.Changed {
			fmt.Fprintln(w, "  (replaced an earlier, different pin)")
		}
	} else {
		fmt.Fprintf(w, "NOT pinned: %s now serves different trust material than %s holds\n", r.Server, filepath.Dir(r.TrustedRoot))
	}
	fmt.Fprintln(w, "\nCompare these fingerprints with the operator, out of band:")
	for _, c := range r.CAs {
		fmt.Fprintf(w, "  CA   %s\n       %s\n       root sha256 %s (valid from %s)\n", c.URI, c.Subject, c.RootSHA256, c.ValidFrom.Format(time.RFC3339))
	}
	for _, l := range r.Logs {
		fmt.Fprintf(w, "  log  %s (origin %s)\n       log ID %s\n       key sha256 %s (valid from %s)\n", l.BaseURL, l.Origin, l.LogID, l.KeySHA256, l.ValidFrom.Format(time.RFC3339))
	}
	for _, t := range r.TSAs {
		fmt.Fprintf(w, "  TSA  %s\n       %s\n       root sha256 %s", t.URI, t.Subject, t.RootSHA256)
		if t.LeafSHA256 != "" {
			fmt.Fprintf(w, "\n       leaf sha256 %s", t.LeafSHA256)
		}
		fmt.Fprintf(w, " (valid from %s)\n", t.ValidFrom.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "\nSigning services: CA %v, logs %v, TSAs %v\n", r.Services.CAs, r.Services.Logs, r.Services.TSAs)
}
