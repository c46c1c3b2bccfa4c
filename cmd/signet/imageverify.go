package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/pipeline"
	"github.com/signet-dev/signet/core/verify"
)

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

// subjectResultOf reports one manifest's verification.
func subjectResultOf(sr pipeline.SubjectReport) subjectResult {
	s := sr.Subject.Image
	out := subjectResult{Digest: s.Digest.String(), Platform: platformString(s.Platform), Verified: sr.Verified, Attachments: []attachmentResult{}}
	for _, c := range sr.Bundles {
		r := attachmentResult{Source: c.Source, Manifest: c.Location, PredicateType: c.PredicateType}
		fillAttachment(&r, c.Result, c.Err)
		out.Attachments = append(out.Attachments, r)
	}
	if !sr.Verified {
		out.FailedCheck, out.Error = string(verify.CheckOf(sr.Err)), sr.Err.Error()
		var ve *verify.Error
		if errors.As(sr.Err, &ve) {
			out.Error = ve.Msg
			if ve.Err != nil {
				out.Error += ": " + ve.Err.Error()
			}
		}
	}
	return out
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

func (r *imageVerifyResult) print(w io.Writer, wt pipeline.Want) {
	for _, s := range r.Subjects {
		noun := "signature"
		if wt.Kind == intoto.KindAttestation {
			noun = "attestation"
			if wt.PredicateType != "" {
				noun += " of type " + wt.PredicateType
			}
		}
		fmt.Fprintf(w, "Verified OK: %s of %s\n", noun, s.Digest)
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
			if wt.Kind == intoto.KindAttestation {
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
func (f *imageVerifyFlags) run(cmd *cobra.Command, image string, wt pipeline.Want) error {
	if err := f.out.check(); err != nil {
		return err
	}
	pol, err := f.policy.policy()
	if err == nil {
		err = f.policy.witnesses(&pol)
	}
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
	plan := pipeline.VerifyPlan{Registry: c, Want: wt, Policy: pol}
	for _, s := range subjects {
		sub, err := pipeline.ImageSubject(s)
		if err != nil {
			return err
		}
		plan.Subjects = append(plan.Subjects, sub)
	}
	rep, err := pipeline.Verify(ctx, verify.New(root.Root), plan)
	if err != nil {
		return err
	}
	res := &imageVerifyResult{Image: image, Verified: rep.Verified}
	for _, sr := range rep.Subjects {
		r := subjectResultOf(sr)
		res.Subjects = append(res.Subjects, r)
		if !r.Verified && res.FailedCheck == "" {
			res.FailedCheck, res.Error = r.FailedCheck, r.Error
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
    --certificate-identity-regexp '^https://github\.com/acme/app/' \
    --certificate-oidc-issuer https://token.actions.githubusercontent.com -o json`,
		Args: exactArgs(1, "IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, args[0], pipeline.Want{Kind: intoto.KindSignature})
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
			return f.run(cmd, args[0], pipeline.Want{Kind: intoto.KindAttestation, PredicateType: pt})
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&typeName, "type", "", "required predicate type: slsaprovenance1, spdxjson, cyclonedx or a URI")
	return cmd
}
