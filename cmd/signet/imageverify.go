package main

import (
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/verify"
)

// checkAttachment is the failed check reported when nothing of the wanted
// kind is attached at all, so there was nothing to verify.
const checkAttachment = "attachment"

// imageVerifyFlags are the flags verify and verify-attestation share.
type imageVerifyFlags struct {
	trust     trustSource
	policy    policyFlags
	out       outputFormat
	reg       registryFlags
	recursive bool
}

func (f *imageVerifyFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	f.trust.addTrustedRoot(fs)
	f.trust.addServer(fs)
	f.policy.add(fs)
	fs.BoolVarP(&f.recursive, "recursive", "r", false, "for a multi-platform index, also require each platform manifest to verify")
	f.reg.add(fs)
	f.out.add(fs)
}

// attachmentResult is the verification of one attached bundle.
type attachmentResult struct {
	// Source is where it was found: referrers API, referrers tag, legacy
	// .sig tag, legacy .att tag.
	Source string `json:"source"`
	// Manifest is the referrer (or legacy tag) manifest, repository@digest.
	Manifest      string            `json:"manifest"`
	PredicateType string            `json:"predicateType,omitempty"`
	Verified      bool              `json:"verified"`
	Identity      string            `json:"identity,omitempty"`
	Issuer        string            `json:"issuer,omitempty"`
	Extensions    map[string]string `json:"extensions,omitempty"`
	VerifiedTimes []verifiedTime    `json:"verifiedTimes,omitempty"`
	LogEntries    []logEntryJSON    `json:"logEntries,omitempty"`
	FailedCheck   string            `json:"failedCheck,omitempty"`
	Error         string            `json:"error,omitempty"`
	Expected      string            `json:"expected,omitempty"`
	Found         string            `json:"found,omitempty"`
}

// subjectResult is the verification of one manifest: it passes when at
// least one attachment verified.
type subjectResult struct {
	Digest      string             `json:"digest"`
	Platform    string             `json:"platform,omitempty"`
	Verified    bool               `json:"verified"`
	Attachments []attachmentResult `json:"attachments"`
	FailedCheck string             `json:"failedCheck,omitempty"`
	Error       string             `json:"error,omitempty"`
}

// imageVerifyResult is what verify and verify-attestation report
// (--output json), on success and on failure alike.
type imageVerifyResult struct {
	Image    string          `json:"image"`
	Verified bool            `json:"verified"`
	Subjects []subjectResult `json:"subjects"`
	// FailedCheck and Error are those of the first subject that failed.
	FailedCheck string `json:"failedCheck,omitempty"`
	Error       string `json:"error,omitempty"`
}

// want says what kind of attachment a verify command checks.
type want struct {
	kind          oci.Kind
	predicateType string // verify-attestation --type; "" accepts any
}

func (w want) noun() string {
	if w.kind == oci.KindSignature {
		return "signature"
	}
	if w.predicateType != "" {
		return "attestation of type " + w.predicateType
	}
	return "attestation"
}

func sha256Digest(s *oci.Subject) (verify.Digest, error) {
	if s.Descriptor.Digest.Algorithm != "sha256" {
		return verify.Digest{}, fmt.Errorf("image %s has a %s digest; only sha256 images are signed", s.Digest, s.Descriptor.Digest.Algorithm)
	}
	v, err := hex.DecodeString(s.Descriptor.Digest.Hex)
	if err != nil {
		return verify.Digest{}, err
	}
	return verify.Digest{Algorithm: crypto.SHA256, Value: v}, nil
}

// verifySubject lists what is attached to s and verifies every candidate.
func verifySubject(ctx context.Context, c *oci.Client, v *verify.Verifier, pol verify.Policy, s *oci.Subject, w want) (*subjectResult, error) {
	out := &subjectResult{Digest: s.Digest.String(), Platform: platformString(s.Platform), Attachments: []attachmentResult{}}
	d, err := sha256Digest(s)
	if err != nil {
		return nil, err
	}
	l, err := c.List(ctx, s)
	if err != nil {
		return nil, err
	}
	var otherTypes []string
	for _, a := range l.Items {
		if a.Kind != w.kind {
			continue
		}
		if w.predicateType != "" && a.PredicateType != w.predicateType {
			otherTypes = append(otherTypes, a.PredicateType)
			continue
		}
		r := attachmentResult{Source: string(a.Source), Manifest: a.Manifest.String(), PredicateType: a.PredicateType}
		res, err := verifyAttached(ctx, v, pol, a, d, w)
		fillAttachment(&r, res, err)
		out.Attachments = append(out.Attachments, r)
		out.Verified = out.Verified || r.Verified
	}
	if out.Verified {
		return out, nil
	}
	if len(out.Attachments) == 0 {
		out.FailedCheck = checkAttachment
		out.Error = fmt.Sprintf("no %s is attached to %s (looked in the %s and the legacy .sig/.att tags)", w.noun(), s.Digest, l.Path)
		if len(otherTypes) > 0 {
			out.Error += "; attestations of other types are: " + strings.Join(dedupe(otherTypes), ", ")
		}
		return out, nil
	}
	// The first bundle's failure stands for the subject (legacy layers
	// fail for want of a bundle, which says little); all are listed.
	first := out.Attachments[0]
	for _, a := range out.Attachments {
		if a.Source != string(oci.SourceLegacySig) && a.Source != string(oci.SourceLegacyAtt) {
			first = a
			break
		}
	}
	out.FailedCheck = first.FailedCheck
	out.Error = fmt.Sprintf("none of the %d %s(s) attached to %s verified; %s: %s", len(out.Attachments), w.kind, s.Digest, first.Source, first.Error)
	return out, nil
}

// verifyAttached verifies one attachment against the subject digest.
func verifyAttached(ctx context.Context, v *verify.Verifier, pol verify.Policy, a oci.Attached, d verify.Digest, w want) (*verify.Result, error) {
	if a.Bundle == nil {
		// cosign's legacy layout keeps a Rekor v1 signed entry timestamp
		// at most, never the inclusion proof a Rekor v2 entry needs, so it
		// cannot be verified offline to the same standard.
		return nil, &verify.Error{Check: verify.CheckBundle, Msg: "cosign's legacy tag layout carries no Sigstore bundle (no transparency log inclusion proof); signet verifies the bundle referrers, which 'signet sign' and cosign v3 attach alongside"}
	}
	b, err := bundle.Parse(a.Bundle)
	if err != nil {
		return nil, &verify.Error{Check: verify.CheckBundle, Msg: "reading the attached bundle", Err: err}
	}
	if b.DSSEEnvelope() == nil {
		if w.kind == oci.KindAttestation {
			return nil, &verify.Error{Check: verify.CheckBundle, Msg: "the attached bundle holds a message signature, not an attestation"}
		}
		return v.VerifyDigest(ctx, b, d, pol)
	}
	pt := w.predicateType
	if w.kind == oci.KindSignature {
		// A cosign v3 image signature is a statement of this type; any
		// other statement is an attestation, not a signature.
		pt = oci.CosignSignPredicateType
	}
	return v.VerifyAttestation(ctx, b, d, pol, pt)
}

func fillAttachment(r *attachmentResult, res *verify.Result, err error) {
	if err != nil {
		r.Error = err.Error()
		var ve *verify.Error
		if errors.As(err, &ve) {
			r.FailedCheck, r.Expected, r.Found = string(ve.Check), ve.Expected, ve.Found
		}
		return
	}
	vr := newVerifyResult("", "", res, nil)
	r.Verified = true
	r.Identity, r.Issuer, r.Extensions = vr.Identity, vr.Issuer, vr.Extensions
	r.VerifiedTimes, r.LogEntries = vr.VerifiedTimes, vr.LogEntries
	if vr.PredicateType != "" {
		r.PredicateType = vr.PredicateType
	}
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func (r *imageVerifyResult) print(w io.Writer, wt want) {
	for _, s := range r.Subjects {
		fmt.Fprintf(w, "Verified OK: %s of %s\n", wt.noun(), s.Digest)
		if s.Platform != "" {
			fmt.Fprintf(w, "  platform   %s\n", s.Platform)
		}
		for _, a := range s.Attachments {
			if !a.Verified {
				fmt.Fprintf(w, "  not verified: %s %s — %s\n", a.Source, a.Manifest, a.Error)
				continue
			}
			fmt.Fprintf(w, "  verified   %s %s\n", a.Source, a.Manifest)
			fmt.Fprintf(w, "    signer     %s\n    issuer     %s\n", a.Identity, a.Issuer)
			if wt.kind == oci.KindAttestation {
				fmt.Fprintf(w, "    predicate  %s\n", a.PredicateType)
			}
			for _, t := range a.VerifiedTimes {
				fmt.Fprintf(w, "    signed at  %s (%s)\n", t.Time.Format(time.RFC3339), t.Source)
			}
			for _, e := range a.LogEntries {
				fmt.Fprintf(w, "    logged as  entry %d in %s (tree size %d)\n", e.LogIndex, e.LogURL, e.TreeSize)
			}
		}
	}
}

// run resolves the image, verifies every subject and reports. Usage errors
// and trust come first, before the registry is contacted.
func (f *imageVerifyFlags) run(cmd *cobra.Command, image string, wt want) error {
	if err := f.out.check(); err != nil {
		return err
	}
	pol, err := f.policy.policy()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	c := f.reg.client()
	if _, err := c.ParseReference(image); err != nil {
		return usageError{fmt.Errorf("IMAGE: %w", err)}
	}
	root, err := f.trust.root(ctx, httpClient(), cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	subjects, err := resolveImage(ctx, c, image, f.recursive)
	if err != nil {
		return err
	}
	if !f.recursive {
		recursiveNote(ctx, cmd.ErrOrStderr(), c, subjects[0], "verify", "verified")
	}
	v := verify.New(root.Root)
	res := &imageVerifyResult{Image: image, Verified: true}
	for _, s := range subjects {
		sr, err := verifySubject(ctx, c, v, pol, s, wt)
		if err != nil {
			return err
		}
		res.Subjects = append(res.Subjects, *sr)
		if !sr.Verified && res.Verified {
			res.Verified, res.FailedCheck, res.Error = false, sr.FailedCheck, sr.Error
		}
	}
	if f.out.json() {
		if err := writeJSON(cmd.OutOrStdout(), res); err != nil {
			return err
		}
	} else if res.Verified {
		res.print(cmd.OutOrStdout(), wt)
	}
	if !res.Verified {
		return fmt.Errorf("verification failed: %s: %s", res.FailedCheck, res.Error)
	}
	return nil
}

const imageVerifyExitHelp = `
Every attached bundle (OCI 1.1 referrers through the referrers API or the
referrers tag; cosign's legacy .sig/.att tags are listed but carry no
bundle) is verified; the image passes when at least one does, and all are
reported. With -r, the index and each platform manifest must pass.

Exit status: 0 verified; 1 verification failed (the failed check is named:
attachment when nothing is attached, else bundle, timestamp, certificate
chain, identity, signature, statement, inclusion proof…) or the registry
failed; 2 usage error. With --output json the result is printed either
way, with "verified" false and "failedCheck" set on failure.`

func newImageVerifyCmd() *cobra.Command {
	var f imageVerifyFlags
	cmd := &cobra.Command{
		Use:   "verify IMAGE --certificate-identity ID --certificate-oidc-issuer URL",
		Short: "Verify a container image's signatures against a signer policy",
		Long: `Verify that IMAGE (a tag, resolved once, or a digest) carries a signature by
the expected identity: signatures made by 'signet sign' or 'cosign sign'
(cosign v3's DSSE statements of type https://sigstore.dev/cosign/sign/v1,
or message signatures over the manifest digest) are fetched from the
registry and verified offline against the trusted root, as verify-blob
verifies a file.
` + imageVerifyExitHelp + "\n" + registryHelp + "\n" + trustHelpVerify,
		Example: `  signet verify ghcr.io/acme/app:1.2.3 --trusted-root trusted_root.json \
    --certificate-identity https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.3 \
    --certificate-oidc-issuer https://token.actions.githubusercontent.com

  # Every platform of a multi-platform image, as JSON:
  signet verify -r ghcr.io/acme/app:1.2.3 --trusted-root trusted_root.json \
    --certificate-identity-regexp 'https://github\.com/acme/app/.*' \
    --certificate-oidc-issuer https://token.actions.githubusercontent.com -o json`,
		Args: exactArgs(1, "IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, args[0], want{kind: oci.KindSignature})
		},
	}
	f.add(cmd)
	return cmd
}

func newImageVerifyAttestationCmd() *cobra.Command {
	var (
		f        imageVerifyFlags
		typeName string
	)
	cmd := &cobra.Command{
		Use:   "verify-attestation IMAGE --type TYPE --certificate-identity ID --certificate-oidc-issuer URL",
		Short: "Verify a container image's attestations (SLSA provenance, SBOM…) against a signer policy",
		Long: `Verify the attestations attached to IMAGE as verify does for signatures, and
that each in-toto statement names the image's manifest digest and has the
predicate type --type (slsaprovenance1, spdxjson, cyclonedx or a URI; omit
it to accept any type, which is then reported).
` + imageVerifyExitHelp + "\n" + registryHelp + "\n" + trustHelpVerify,
		Example: `  signet verify-attestation ghcr.io/acme/app:1.2.3 --type slsaprovenance1 \
    --trusted-root trusted_root.json \
    --certificate-identity https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main \
    --certificate-oidc-issuer https://token.actions.githubusercontent.com`,
		Args: exactArgs(1, "IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			pt := ""
			if typeName != "" {
				var err error
				if pt, err = predicateTypeArg(typeName); err != nil {
					return err
				}
			}
			return f.run(cmd, args[0], want{kind: oci.KindAttestation, predicateType: pt})
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&typeName, "type", "", "required predicate type: slsaprovenance1, spdxjson, cyclonedx or a URI")
	return cmd
}
