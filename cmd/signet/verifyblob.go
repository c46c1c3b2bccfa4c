package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/certext"
	"github.com/signet-dev/signet/core/keyref"
	"github.com/signet-dev/signet/core/verify"
)

// extensionFlag binds one certificate extension to a policy flag and a JSON
// field of the verification result.
type extensionFlag struct {
	flag, json, help string
	field            func(*certext.Extensions) *string
}

// extensionFlags: cosign's GitHub flags, then signet's generic CI ones
// (Fulcio extensions .9–.20), which every CI platform's certificates carry.
var extensionFlags = []extensionFlag{
	{"certificate-github-workflow-trigger", "githubWorkflowTrigger", "GitHub workflow trigger event, e.g. push (extension .2)", func(e *certext.Extensions) *string { return &e.GithubWorkflowTrigger }},
	{"certificate-github-workflow-sha", "githubWorkflowSha", "GitHub commit SHA the workflow ran at (extension .3)", func(e *certext.Extensions) *string { return &e.GithubWorkflowSHA }},
	{"certificate-github-workflow-name", "githubWorkflowName", "GitHub workflow name (extension .4)", func(e *certext.Extensions) *string { return &e.GithubWorkflowName }},
	{"certificate-github-workflow-repository", "githubWorkflowRepository", "GitHub repository, owner/name (extension .5)", func(e *certext.Extensions) *string { return &e.GithubWorkflowRepository }},
	{"certificate-github-workflow-ref", "githubWorkflowRef", "GitHub git ref, e.g. refs/heads/main (extension .6)", func(e *certext.Extensions) *string { return &e.GithubWorkflowRef }},
	{"certificate-build-signer-uri", "buildSignerURI", "URI of the build instructions that signed, e.g. the workflow file at a ref (extension .9)", func(e *certext.Extensions) *string { return &e.BuildSignerURI }},
	{"certificate-build-signer-digest", "buildSignerDigest", "digest of those build instructions (extension .10)", func(e *certext.Extensions) *string { return &e.BuildSignerDigest }},
	{"certificate-runner-environment", "runnerEnvironment", "runner environment, e.g. github-hosted or self-hosted (extension .11)", func(e *certext.Extensions) *string { return &e.RunnerEnvironment }},
	{"certificate-source-repository-uri", "sourceRepositoryURI", "source repository URI, e.g. https://github.com/acme/app (extension .12)", func(e *certext.Extensions) *string { return &e.SourceRepositoryURI }},
	{"certificate-source-repository-digest", "sourceRepositoryDigest", "source commit digest (extension .13)", func(e *certext.Extensions) *string { return &e.SourceRepositoryDigest }},
	{"certificate-source-repository-ref", "sourceRepositoryRef", "source ref, e.g. refs/tags/v1.2.3 (extension .14)", func(e *certext.Extensions) *string { return &e.SourceRepositoryRef }},
	{"certificate-build-trigger", "buildTrigger", "event that triggered the build (extension .20)", func(e *certext.Extensions) *string { return &e.BuildTrigger }},
}

// policyFlags are the signer policy flags, named as cosign names them.
type policyFlags struct {
	identity, identityRegexp, issuer, issuerRegexp string
	ext                                            certext.Extensions
	ignoreSCT                                      bool
	witnessPolicy                                  string
}

func (p *policyFlags) add(f *pflag.FlagSet) {
	f.StringVar(&p.identity, "certificate-identity", "", "signer identity the certificate must name exactly (email or URI, e.g. a workflow URI)")
	f.StringVar(&p.identityRegexp, "certificate-identity-regexp", "", "regular expression the signer identity must match, searched for anywhere in it as cosign does: anchor it with ^ (and $) to match from the start")
	f.StringVar(&p.issuer, "certificate-oidc-issuer", "", "OIDC issuer the certificate must name exactly, e.g. https://token.actions.githubusercontent.com")
	f.StringVar(&p.issuerRegexp, "certificate-oidc-issuer-regexp", "", "regular expression the OIDC issuer must match, searched for anywhere in it as cosign does: anchor it with ^ (and $) to match from the start")
	for _, x := range extensionFlags {
		f.StringVar(x.field(&p.ext), x.flag, "", x.help)
	}
	f.BoolVar(&p.ignoreSCT, "insecure-ignore-sct", false, "accept a signing certificate without an SCT from a CT log of the trusted root (checked whenever the root names CT logs), as cosign's flag: only for a CA that logs in no CT log")
	f.StringVar(&p.witnessPolicy, "witness-policy", "", "file naming the witnesses that must have cosigned each log entry's checkpoint, and how many (witness/group/quorum lines, the file the log's log.witnessPolicy uses; docs/verification.md)")
}

// witnesses reads --witness-policy into pol; it applies to keyless and
// --key verification alike.
func (p *policyFlags) witnesses(pol *verify.Policy) error {
	if p.witnessPolicy == "" {
		return nil
	}
	text, err := os.ReadFile(p.witnessPolicy)
	if err != nil {
		return usageError{fmt.Errorf("--witness-policy: %v", err)}
	}
	if pol.Witnesses, err = verify.ParseWitnessPolicy(text); err != nil {
		return usageError{fmt.Errorf("--witness-policy %s: %v", p.witnessPolicy, err)}
	}
	return nil
}

func (p *policyFlags) policy() (verify.Policy, error) {
	var pol verify.Policy
	var err error
	if pol.Identity, err = matcher("--certificate-identity", "identity", p.identity, p.identityRegexp); err != nil {
		return pol, err
	}
	if pol.Issuer, err = matcher("--certificate-oidc-issuer", "OIDC issuer", p.issuer, p.issuerRegexp); err != nil {
		return pol, err
	}
	pol.Extensions = p.ext
	pol.IgnoreSCT = p.ignoreSCT
	return pol, nil
}

// matcher turns an exact/-regexp flag pair into a matcher: exactly one is
// required, since verifying "any signer" proves nothing. A regexp without a
// leading ^ gets a warning on stderr: it matches anywhere in the value (what
// names it), as in cosign.
func matcher(flag, what, exact, expr string) (verify.Matcher, error) {
	switch {
	case exact != "" && expr != "":
		return verify.Matcher{}, usageError{fmt.Errorf("%s and %s-regexp exclude each other; give one", flag, flag)}
	case exact != "":
		return verify.Exact(exact), nil
	case expr != "":
		m, err := verify.Regexp(expr)
		if err != nil {
			return m, usageError{fmt.Errorf("%s-regexp: %v", flag, err)}
		}
		if w := verify.UnanchoredWarning(flag+"-regexp", what, expr); w != "" {
			fmt.Fprintln(os.Stderr, "warning:", w)
		}
		return m, nil
	}
	return verify.Matcher{}, usageError{fmt.Errorf("%s (or %s-regexp) is required: say whom you trust to have signed", flag, flag)}
}

// verifyResult is what verify-blob and verify-blob-attestation report
// (--output json), on success and on failure alike.
type verifyResult struct {
	Verified bool   `json:"verified"`
	Artifact string `json:"artifact"`
	Bundle   string `json:"bundle"`
	Digest   string `json:"digest,omitempty"`
	Identity string `json:"identity,omitempty"`
	Issuer   string `json:"issuer,omitempty"`
	// Key is the fingerprint (sha256:<hex of the PKIX DER>) of the --key
	// that verified, in place of identity and issuer.
	Key string `json:"key,omitempty"`
	// Extensions are the certificate's non-empty CI extensions, named as
	// in extensionFlags.
	Extensions    map[string]string `json:"extensions,omitempty"`
	CA            string            `json:"ca,omitempty"`
	VerifiedTimes []verifiedTime    `json:"verifiedTimes,omitempty"`
	LogEntries    []logEntryJSON    `json:"logEntries,omitempty"`
	// TimestampLogEntries are the proven log entries of timestamps that
	// carry one (time transparency).
	TimestampLogEntries []logEntryJSON `json:"timestampLogEntries,omitempty"`
	PredicateType       string         `json:"predicateType,omitempty"`
	// On failure: the check that failed, the message, and where it applies
	// what was expected versus found.
	FailedCheck string `json:"failedCheck,omitempty"`
	Error       string `json:"error,omitempty"`
	Expected    string `json:"expected,omitempty"`
	Found       string `json:"found,omitempty"`

	err error // the failure, for failure() and its remedy
}

type verifiedTime struct {
	Time   time.Time `json:"time"`
	Source string    `json:"source"`
}

func newVerifyResult(file, bundlePath string, res *verify.Result, err error) *verifyResult {
	r := &verifyResult{Artifact: file, Bundle: bundlePath}
	if err != nil {
		r.Error, r.err = err.Error(), err
		var ve *verify.Error
		if errors.As(err, &ve) {
			r.FailedCheck, r.Expected, r.Found = string(ve.Check), ve.Expected, ve.Found
		}
		return r
	}
	r.Verified = true
	r.Digest = res.Digest.String()
	r.Identity, r.Issuer, r.CA, r.Key = res.Signer.SAN, res.Signer.Issuer, res.CA, res.KeyFingerprint
	if res.KeyFingerprint == "" {
		r.Extensions = map[string]string{}
		for _, x := range extensionFlags {
			if v := *x.field(&res.Signer.Extensions); v != "" {
				r.Extensions[x.json] = v
			}
		}
	}
	for _, t := range res.Times {
		r.VerifiedTimes = append(r.VerifiedTimes, verifiedTime{Time: t.Time.UTC(), Source: t.Source})
	}
	r.LogEntries = verifiedEntries(res.Entries)
	if len(res.TimestampEntries) > 0 {
		r.TimestampLogEntries = verifiedEntries(res.TimestampEntries)
	}
	if res.Statement != nil {
		r.PredicateType = res.Statement.GetPredicateType()
	}
	return r
}

func (r *verifyResult) print(w io.Writer) {
	what := "signature"
	if r.PredicateType != "" {
		what = "attestation"
	}
	fmt.Fprintf(w, "Verified OK: %s of %s\n", what, r.Artifact)
	fmt.Fprintf(w, "  digest     %s\n", r.Digest)
	if r.Key != "" {
		fmt.Fprintf(w, "  key        %s\n", r.Key)
	} else {
		fmt.Fprintf(w, "  signer     %s\n  issuer     %s\n", r.Identity, r.Issuer)
	}
	if r.PredicateType != "" {
		fmt.Fprintf(w, "  predicate  %s\n", r.PredicateType)
	}
	for _, t := range r.VerifiedTimes {
		fmt.Fprintf(w, "  signed at  %s (%s)\n", t.Time.Format(time.RFC3339), t.Source)
	}
	for _, e := range r.LogEntries {
		fmt.Fprintf(w, "  logged as  entry %d in %s (tree size %d)\n", e.LogIndex, e.LogURL, e.TreeSize)
	}
}

// failure is the error a failed verification returns, the check named first
// so that a CI log shows at a glance why it failed.
func (r *verifyResult) failure() error {
	// A *verify.Error's message starts with the check's name.
	if r.err != nil {
		return fmt.Errorf("verification failed: %w", r.err)
	}
	return fmt.Errorf("verification failed: %s", r.Error)
}

// verifyFlags are the flags both verify commands share.
type verifyFlags struct {
	trust  trustSource
	policy policyFlags
	out    outputFormat
	bundle string
	key    string
}

func (v *verifyFlags) add(f *pflag.FlagSet) {
	v.trust.addTrustedRoot(f)
	v.trust.addServer(f)
	v.policy.add(f)
	v.out.add(f)
	f.StringVar(&v.key, "key", "", "trust this public key as the signer instead of a certificate identity, as cosign verify-blob --key does: a PEM (PKIX) file, or a pkcs11: or KMS URI (awskms://, gcpkms://, azurekms://, hashivault://)")
}

// keyPolicy is the policy for --key: the key replaces every certificate
// flag, which would otherwise look checked while being ignored.
func (v *verifyFlags) keyPolicy(cmd *cobra.Command) (verify.Policy, error) {
	var set []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed && strings.HasPrefix(f.Name, "certificate-") {
			set = append(set, "--"+f.Name)
		}
	})
	if len(set) > 0 {
		return verify.Policy{}, usageError{fmt.Errorf("--key excludes %s: with --key the public key is the trusted signer and no certificate identity is checked; give --key or the certificate flags, not both", strings.Join(set, ", "))}
	}
	if !keyref.IsURI(v.key) {
		if err := checkFile("--key", v.key); err != nil {
			return verify.Policy{}, err
		}
	}
	k, err := verify.OpenPublicKey(cmd.Context(), v.key)
	if err != nil {
		return verify.Policy{}, usageError{fmt.Errorf("--key: %w", err)}
	}
	return verify.Policy{Key: k}, nil
}

// prepare checks the command line and loads the trust, in that order, so
// usage errors come before any network use.
func (v *verifyFlags) prepare(cmd *cobra.Command, file string) (*verify.Verifier, *bundle.Bundle, verify.Policy, error) {
	if err := v.out.check(); err != nil {
		return nil, nil, verify.Policy{}, err
	}
	if err := checkFile("FILE", file); err != nil {
		return nil, nil, verify.Policy{}, err
	}
	var pol verify.Policy
	var err error
	if v.key != "" {
		pol, err = v.keyPolicy(cmd)
	} else {
		pol, err = v.policy.policy()
	}
	if err == nil {
		err = v.policy.witnesses(&pol)
	}
	if err != nil {
		return nil, nil, verify.Policy{}, err
	}
	if err := checkFile("--bundle", v.bundle); err != nil {
		return nil, nil, verify.Policy{}, err
	}
	root, err := v.trust.root(cmd.Context(), httpClient(), cmd.ErrOrStderr())
	if err != nil {
		return nil, nil, pol, err
	}
	// An unreadable bundle is a failed verification (check "bundle"), not a
	// usage error: the file exists, its content is wrong.
	b, err := bundle.ReadFile(v.bundle)
	if err != nil {
		return verify.New(root.Root), nil, pol, &verify.Error{Check: verify.CheckBundle, Msg: fmt.Sprintf("reading %s", v.bundle), Err: err}
	}
	return verify.New(root.Root), b, pol, nil
}

// report prints the result and turns a failed verification into exit 1.
func (v *verifyFlags) report(cmd *cobra.Command, r *verifyResult) error {
	if v.out.json() {
		if err := writeJSON(cmd.OutOrStdout(), r); err != nil {
			return err
		}
	} else if r.Verified {
		r.print(cmd.OutOrStdout())
	}
	if !r.Verified {
		return r.failure()
	}
	return nil
}

func verifyBlobFile(ctx context.Context, v *verify.Verifier, b *bundle.Bundle, file string, pol verify.Policy) (*verify.Result, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return v.VerifyArtifact(ctx, b, f, pol)
}

func verifyAttestationFile(ctx context.Context, v *verify.Verifier, b *bundle.Bundle, file string, pol verify.Policy, predicateType string) (*verify.Result, error) {
	d, err := fileDigest(file)
	if err != nil {
		return nil, err
	}
	return v.VerifyAttestation(ctx, b, d, pol, predicateType)
}

const keyHelp = `
With --key PUB.pem (a PEM "PUBLIC KEY"; ECDSA P-256/384/521, RSA or Ed25519)
that key, not a certificate identity, is the trusted signer, as with cosign
verify-blob --key: the signature must verify with it and the log entry must
record it; timestamps and the log entry are checked as for keyless bundles.
A bundle carrying a certificate is accepted if the certificate holds that
key; its chain and identity are then not checked. The certificate flags are
refused with --key. The result names the key by its fingerprint
(sha256:<hex of the DER public key>).
`

const verifyExitHelp = `
Exit status: 0 verified; 1 verification failed (the failed check is named:
bundle, timestamp, inclusion promise, certificate chain, certificate profile,
identity, key, artifact, signature, statement, tlog body, inclusion proof,
checkpoint, tlog, time source; docs/verification.md says what each proves);
2 usage error.
With --output json the result is printed either way, with "verified" false
and "failedCheck" set on failure.`

func newVerifyBlobCmd() *cobra.Command {
	var v verifyFlags
	cmd := &cobra.Command{
		Use:   "verify-blob FILE (--certificate-identity ID --certificate-oidc-issuer URL | --key PUB.pem)",
		Short: "Verify a file's Sigstore bundle against a signer policy, offline",
		Long: `Verify that FILE was signed by the expected identity: the RFC 3161 timestamp
proves when, the certificate chains to a trusted CA at that time and names
the identity and issuer you require (plus any CI extensions you pin), the
signature covers FILE's digest, and the transparency log entry is included
in a checkpoint signed by a trusted log. With --trusted-root nothing is
fetched from the network.

Bundles from cosign v3, sigstore-go and sigstore-js verify too. For a DSSE
(attestation) bundle, verify-blob checks that the statement names FILE;
verify-blob-attestation also checks the predicate type.
` + keyHelp + verifyExitHelp + "\n" + trustHelpVerify,
		Example: `  # A GitHub Actions release, fully offline:
  signet verify-blob app.tar.gz --bundle app.tar.gz.sigstore.json \
    --trusted-root trusted_root.json \
    --certificate-identity https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.3 \
    --certificate-oidc-issuer https://token.actions.githubusercontent.com

  # Any tag of the release workflow, from the main repository only:
  signet verify-blob app.tar.gz --trusted-root trusted_root.json \
    --certificate-identity-regexp '^https://github\.com/acme/app/\.github/workflows/release\.yml@refs/tags/v' \
    --certificate-oidc-issuer https://token.actions.githubusercontent.com \
    --certificate-github-workflow-repository acme/app -o json

  # Signed with a self-managed key (sign-blob --key):
  openssl pkey -in release.key -pubout -out release.pub
  signet verify-blob app.tar.gz --trusted-root trusted_root.json --key release.pub`,
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			if v.bundle == "" {
				if file == stdinName {
					return usageError{errStdinBundle}
				}
				v.bundle = file + ".sigstore.json"
			}
			path, cleanup, err := spoolStdin(cmd, file, "FILE")
			if err != nil {
				return err
			}
			defer cleanup()
			ver, b, pol, err := v.prepare(cmd, path)
			var res *verify.Result
			if err == nil {
				res, err = verifyBlobFile(cmd.Context(), ver, b, path, pol)
			} else if ver == nil {
				return err
			}
			return v.report(cmd, newVerifyResult(file, v.bundle, res, err))
		},
	}
	v.add(cmd.Flags())
	cmd.Flags().StringVar(&v.bundle, "bundle", "", "the Sigstore bundle (default <FILE>.sigstore.json)")
	return cmd
}

func newVerifyBlobAttestationCmd() *cobra.Command {
	var (
		v             verifyFlags
		typeName      string
		digestArgFlag string
		fromStore     bool
	)
	cmd := &cobra.Command{
		Use:   "verify-blob-attestation (FILE | --digest sha256:HEX) --type TYPE [--bundle B | --from-store] (--certificate-identity ID --certificate-oidc-issuer URL | --key PUB.pem)",
		Short: "Verify an attestation about a file (SLSA provenance, SBOM…) against a signer policy, offline",
		Long: `Verify a DSSE attestation bundle as verify-blob does, and that its in-toto
statement names FILE's SHA-256 among its subjects and has the predicate type
--type (slsaprovenance1, spdxjson, cyclonedx or a URI; omit it to accept
any type, which is then reported).

Without a bundle at hand, --digest sha256:HEX (instead of FILE) or
--from-store fetches the attestations about the digest from the signet
server's attestation store (--server or $SIGNET_SERVER) as whole bundles
and verifies them offline against the trusted root, as 'gh attestation
verify' does: the server is trusted for nothing, so pin the root with
--trusted-root. It passes when one of them verifies; each is reported.
` + keyHelp + verifyExitHelp + "\n" + trustHelpVerify,
		Example: `  signet verify-blob-attestation app.tar.gz --bundle app.provenance.sigstore.json \
    --type slsaprovenance1 --trusted-root trusted_root.json \
    --certificate-identity https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main \
    --certificate-oidc-issuer https://token.actions.githubusercontent.com

  # Only the digest, the attestations from the server:
  signet verify-blob-attestation --digest sha256:4f1e… --type slsaprovenance1 \
    --server https://signet.example.com --trusted-root trusted_root.json \
    --certificate-identity-regexp '^https://github\.com/acme/' \
    --certificate-oidc-issuer https://token.actions.githubusercontent.com`,
		Args: func(cmd *cobra.Command, args []string) error {
			if digestArgFlag != "" {
				return exactArgs(0, "no FILE with --digest")(cmd, args)
			}
			return exactArgs(1, "FILE (or --digest sha256:HEX)")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if digestArgFlag != "" || fromStore {
				return verifyFromStore(cmd, &v, args, digestArgFlag, typeName)
			}
			file := args[0]
			pt := ""
			if typeName != "" {
				var err error
				if pt, err = predicateTypeArg(typeName); err != nil {
					return err
				}
			}
			if v.bundle == "" {
				if typeName == "" {
					return usageError{errors.New("--bundle is required without --type")}
				}
				v.bundle = defaultAttestationBundle(file, pt)
				// Before v0.4, bundles of every custom type were named
				// <FILE>.attestation.sigstore.json.
				if old := file + ".attestation.sigstore.json"; !exists(v.bundle) && exists(old) {
					v.bundle = old
				}
				if !exists(v.bundle) {
					return usageError{fmt.Errorf("no attestation of type %s for %s: %s does not exist (attest-blob writes it there); pass --bundle if it is elsewhere", pt, file, v.bundle)}
				}
			}
			ver, b, pol, err := v.prepare(cmd, file)
			var res *verify.Result
			if err == nil {
				res, err = verifyAttestationFile(cmd.Context(), ver, b, file, pol, pt)
			} else if ver == nil {
				return err
			}
			return v.report(cmd, newVerifyResult(file, v.bundle, res, err))
		},
	}
	v.add(cmd.Flags())
	cmd.Flags().StringVar(&v.bundle, "bundle", "", "the attestation bundle (default <FILE>.<type>.sigstore.json, as attest-blob writes it)")
	cmd.Flags().StringVar(&typeName, "type", "", "required predicate type: slsaprovenance1, spdxjson, cyclonedx or a URI")
	cmd.Flags().StringVar(&digestArgFlag, "digest", "", "verify the attestations the server's store holds about this digest (sha256:HEX) instead of a FILE's")
	cmd.Flags().BoolVar(&fromStore, "from-store", false, "fetch the attestations about FILE from the server's attestation store instead of reading a bundle file")
	return cmd
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
