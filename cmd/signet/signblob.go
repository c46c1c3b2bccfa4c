package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/signet-dev/signet/core/keyref"
	"github.com/signet-dev/signet/core/pipeline"
	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/signer"
	"github.com/signet-dev/signet/core/token"
	"github.com/signet-dev/signet/core/verify"
)

// signFlags are the flags sign-blob and attest-blob share.
type signFlags struct {
	trust           trustSource
	out             outputFormat
	identityToken   string
	key             string
	bundle          string
	yes             bool
	newBundleFormat bool
}

func (s *signFlags) add(f *pflag.FlagSet) {
	s.addCommon(f)
	f.StringVar(&s.bundle, "bundle", "", "where to write the Sigstore bundle (default <FILE>.sigstore.json)")
	s.out.add(f)
}

// addCommon adds the flags every signing command has.
func (s *signFlags) addCommon(f *pflag.FlagSet) {
	s.trust.addSigningConfig(f)
	s.trust.addServer(f)
	f.StringVar(&s.trust.trustedRoot, "trusted-root", "", "trusted_root.json: verify each bundle against it before writing it, as cosign v3 does (default: not checked)")
	f.StringVar(&s.identityToken, "identity-token", "", "OIDC identity token (a JWT, or a file holding one); default: detected from the CI environment")
	f.StringVar(&s.key, "key", "", "sign with this self-managed key instead of keyless: a PEM file (password in $"+signer.PasswordEnv+" if encrypted), or a pkcs11: or KMS URI (awskms://, gcpkms://, azurekms://, hashivault://), as cosign's --key")
	// cosign's, accepted so its command lines work unchanged.
	f.BoolVarP(&s.yes, "yes", "y", false, "accepted for cosign compatibility: signet asks nothing, so there is nothing to confirm")
	f.BoolVar(&s.newBundleFormat, "new-bundle-format", true, "accepted for cosign compatibility: signet writes Sigstore bundles v0.3 only")
}

// verifier is the trusted root's verifier with --trusted-root, else nil.
func (s *signFlags) verifier(ctx context.Context, stderr io.Writer) (*verify.Verifier, error) {
	if !s.newBundleFormat {
		return nil, usageError{errors.New("--new-bundle-format=false: signet writes Sigstore bundles (v0.3) only, which cosign v3 reads; drop the flag")}
	}
	if s.trust.trustedRoot == "" {
		return nil, nil
	}
	r, err := s.trust.root(ctx, httpClient(), stderr)
	if err != nil {
		return nil, err
	}
	return verify.New(r.Root), nil
}

const identityTokenHelp = `
Keyless signing exchanges an OIDC identity token for a short-lived
certificate. The token is found, first that applies: --identity-token;
$SIGSTORE_ID_TOKEN (GitLab CI id_tokens); GitHub Actions (needs
"permissions: id-token: write"); Buildkite; CircleCI ($CIRCLE_OIDC_TOKEN_V2);
a Kubernetes projected token at ` + token.DefaultKubernetesTokenPath + `;
the SPIFFE workload API ($SPIFFE_ENDPOINT_SOCKET).
With --key, the bundle names a public key instead of an identity.`

// signer describes who signs, for output.
type signerInfo struct {
	Identity string // from the token, before the certificate confirms it
	Source   string
	KeyFile  string
}

// options resolves the services and the key or token. Nothing is signed yet.
func (s *signFlags) options(ctx context.Context, stderr io.Writer) (sign.Options, signerInfo, error) {
	if err := s.out.check(); err != nil {
		return sign.Options{}, signerInfo{}, err
	}
	services, err := s.trust.services(ctx, httpClient(), time.Now())
	if err != nil {
		return sign.Options{}, signerInfo{}, err
	}
	o := sign.Options{Services: services, Progress: progressPrinter(stderr)}
	if s.key != "" {
		if s.identityToken != "" {
			return o, signerInfo{}, usageError{errors.New("--key and --identity-token exclude each other: a self-managed key signs without a certificate")}
		}
		if !keyref.IsURI(s.key) {
			if _, err := os.Stat(s.key); err != nil {
				return o, signerInfo{}, usageError{fmt.Errorf("--key: %v", err)}
			}
		}
		if o.Key, err = signer.Open(ctx, s.key, signer.LoadOptions{}); err != nil {
			return o, signerInfo{}, fmt.Errorf("--key %s: %w", keyref.Redact(s.key), err)
		}
		return o, signerInfo{KeyFile: keyref.Redact(s.key)}, nil
	}
	tok, err := token.Detect(ctx, token.Options{Explicit: s.identityToken})
	if err != nil {
		switch {
		case errors.Is(err, token.ErrNoToken):
			return o, signerInfo{}, usageError{fmt.Errorf("%w; pass --identity-token, run in a CI job with OIDC enabled, or sign with --key", err)}
		case errors.Is(err, token.ErrBadExplicitToken):
			return o, signerInfo{}, usageError{fmt.Errorf("--identity-token: %w", err)}
		case s.identityToken != "":
			return o, signerInfo{}, fmt.Errorf("--identity-token: %w", err)
		}
		return o, signerInfo{}, err
	}
	o.IdentityToken = tok.Raw
	src := string(tok.Source)
	if tok.Source == token.SourceExplicit {
		src = "--identity-token"
	}
	return o, signerInfo{Identity: tok.Claims.Identity(), Source: src}, nil
}

// announce says who is about to sign what, before the network is used.
func (si signerInfo) announce(w io.Writer, what string) {
	if si.KeyFile != "" {
		fmt.Fprintf(w, "signing %s with the key in %s…\n", what, si.KeyFile)
		return
	}
	fmt.Fprintf(w, "signing %s as %s, token from %s; requesting certificate…\n", what, si.Identity, si.Source)
}

// signResult is what sign-blob and attest-blob report (--output json).
type signResult struct {
	Artifact string `json:"artifact"`
	Bundle   string `json:"bundle"`
	// Digest is the artifact's digest, "<algorithm>:<hex>".
	Digest string `json:"digest"`
	// Identity and Issuer are the certificate's (keyless only).
	Identity string `json:"identity,omitempty"`
	Issuer   string `json:"issuer,omitempty"`
	// Key is the public key's fingerprint, sha256:<hex of DER>, as
	// verify-blob --key reports it; KeyHint is the bundle's hint (--key only).
	Key           string         `json:"key,omitempty"`
	KeyHint       string         `json:"keyHint,omitempty"`
	PredicateType string         `json:"predicateType,omitempty"`
	AttestationID string         `json:"attestationId,omitempty"`
	LogEntries    []logEntryJSON `json:"logEntries"`
}

// newSignResult reports the one bundle a blob command made.
func newSignResult(o sign.Options, b pipeline.Bundle) *signResult {
	res := b.Result
	r := &signResult{Artifact: b.Subjects[0].Path, AttestationID: b.AttestationID, LogEntries: b.LogEntries,
		Identity: b.Identity, Issuer: b.Issuer, KeyHint: b.KeyHint, Digest: "sha256:" + b.Subjects[0].SHA256}
	if b.Item.Statement == nil {
		r.Digest = hashName(res.DigestAlgorithm) + ":" + fmt.Sprintf("%x", res.Digest)
	} else {
		r.PredicateType = b.PredicateType
	}
	for _, p := range b.Placements {
		if p.Destination == "file" {
			r.Bundle = p.Location
		}
	}
	if res.Certificate == nil && o.Key != nil {
		r.Key, _ = verify.KeyFingerprint(o.Key.Public())
	}
	return r
}

func (r *signResult) print(w io.Writer) {
	fmt.Fprintf(w, "wrote %s\n", r.Bundle)
	fmt.Fprintf(w, "  artifact   %s (%s)\n", r.Artifact, r.Digest)
	if r.Identity != "" {
		fmt.Fprintf(w, "  signer     %s\n  issuer     %s\n", r.Identity, r.Issuer)
	} else {
		fmt.Fprintf(w, "  key        %s\n", r.Key)
	}
	if r.PredicateType != "" {
		fmt.Fprintf(w, "  predicate  %s\n", r.PredicateType)
	}
	if r.AttestationID != "" {
		fmt.Fprintf(w, "  stored as  attestation %s\n", r.AttestationID)
	}
	for _, e := range r.LogEntries {
		fmt.Fprintf(w, "  logged as  entry %d in %s (log ID %s)\n", e.LogIndex, e.Origin, e.LogID)
	}
}

// checkFile is a usage check: the named input must be a readable file.
func checkFile(flag, path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return usageError{fmt.Errorf("%s: %v", flag, err)}
	}
	if st.IsDir() {
		return usageError{fmt.Errorf("%s: %s is a directory; give a file (e.g. an archive of the directory)", flag, path)}
	}
	return nil
}

// signBlob signs file into bundlePath ("" for <file>.sigstore.json), or
// makes the attestation att about it; the bundle path is checked writable
// before anything is signed.
func signBlob(ctx context.Context, o sign.Options, v *verify.Verifier, file, bundlePath string, att *pipeline.Attestation) (*signResult, error) {
	sub, err := pipeline.FileSubject(file)
	if err != nil {
		return nil, usageError{fmt.Errorf("FILE: %w", err)}
	}
	plan := pipeline.Plan{Subjects: []pipeline.Subject{sub}, Sign: att == nil, Destinations: []pipeline.Destination{&pipeline.Files{Path: bundlePath}}, Verifier: v}
	if att != nil {
		plan.Attestations = []pipeline.Attestation{*att}
	}
	steps := o.Progress
	plan.Progress = func(e pipeline.Event) {
		if e.Step != "" && steps != nil {
			steps(sign.Event{Step: e.Step, Detail: e.Detail, Elapsed: e.Elapsed})
		}
	}
	rep, err := pipeline.Run(ctx, o, plan)
	if err != nil {
		var pe *pipeline.PathError
		var pre *pipeline.PredicateError
		switch {
		case errors.As(err, &pe) && bundlePath != "":
			return nil, usageError{fmt.Errorf("--bundle: %w", err)}
		case errors.As(err, &pe):
			return nil, usageError{fmt.Errorf("%w; pass --bundle to write it elsewhere", err)}
		case errors.As(err, &pre):
			return nil, usageError{fmt.Errorf("--predicate: %w", err)}
		}
		return nil, err
	}
	return newSignResult(o, rep.Bundles[0]), nil
}

func newSignBlobCmd() *cobra.Command {
	var s signFlags
	cmd := &cobra.Command{
		Use:   "sign-blob FILE",
		Short: "Sign a file and log the signature; writes a Sigstore bundle",
		Long: `Sign a file with a certificate bound to your CI identity (keyless), or with
your own key, and record the signature in a transparency log. The result is a
Sigstore bundle (v0.3) holding the signature, the certificate, an RFC 3161
timestamp and the log entry with its inclusion proof: everything a verifier
needs, offline.

Progress goes to stderr, the result to stdout. Exit status: 0 signed,
1 signing failed (a service refused, the network failed), 2 usage error.
` + identityTokenHelp + "\n" + trustHelpSign,
		Example: `  # In GitHub Actions (permissions: id-token: write), against a signet server:
  signet sign-blob dist/app.tar.gz --server https://signet.example.com

  # With standard trust files (works with any Sigstore deployment):
  signet sign-blob app.tar.gz --bundle app.sigstore.json \
    --signing-config signing_config.json --identity-token "$TOKEN"

  # With a self-managed key:
  SIGNET_PASSWORD=… signet sign-blob app.tar.gz --key cosign.key --server $URL -o json`,
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			if file == stdinName && s.bundle == "" {
				return usageError{errStdinBundle}
			}
			path, cleanup, err := spoolStdin(cmd, file, "FILE")
			if err != nil {
				return err
			}
			defer cleanup()
			if err := checkFile("FILE", path); err != nil {
				return err
			}
			ctx := cmd.Context()
			o, who, err := s.options(ctx, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			v, err := s.verifier(ctx, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			who.announce(cmd.ErrOrStderr(), file)
			r, err := signBlob(ctx, o, v, path, s.bundle, nil)
			if err != nil {
				return err
			}
			r.Artifact = file
			if s.out.json() {
				return writeJSON(cmd.OutOrStdout(), r)
			}
			r.print(cmd.OutOrStdout())
			return nil
		},
	}
	s.add(cmd.Flags())
	return cmd
}

// exactArgs is cobra.ExactArgs with a usage error that names the arguments.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s takes %s, got %d argument(s)\nRun '%s --help' for usage", cmd.Name(), names, len(args), cmd.CommandPath())}
		}
		return nil
	}
}
