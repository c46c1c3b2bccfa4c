package pipeline

import (
	"context"
	"crypto"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/verify"
)

// CheckAttachment is the failed check of a subject that has nothing of the
// wanted kind attached, so there was nothing to verify.
const CheckAttachment verify.Check = "attachment"

// Want says what a verification looks for.
type Want struct {
	// Kind is KindSignature (message signatures, or cosign v3's image
	// signature statements), KindAttestation (any other statement), or ""
	// for either.
	Kind intoto.Kind
	// PredicateType, when set, is the only statement type accepted.
	PredicateType string
}

func (w Want) noun() string {
	switch {
	case w.Kind == intoto.KindSignature:
		return "signature"
	case w.PredicateType != "":
		return "attestation of type " + w.PredicateType
	case w.Kind == "":
		return "signature or attestation"
	}
	return "attestation"
}

// Candidate is a bundle that may verify a subject.
type Candidate struct {
	// Source is where it was found: "file", or how it is attached
	// ("referrers API", "referrers tag", "legacy .sig tag", …).
	Source string
	// Location is the file, or the referrer (or legacy tag) manifest.
	Location string
	// Raw is the bundle JSON; nil for a legacy layer, which has none.
	Raw []byte
	// PredicateType is what the attachment is annotated with, if anything.
	PredicateType string
	// Attached says it was found on the registry, where other signers'
	// bundles may sit beside the ones a policy trusts.
	Attached bool
}

// VerifyPlan is what to verify: every subject must be covered by at least
// one bundle that passes the policy.
type VerifyPlan struct {
	Subjects []Subject
	// Bundles are the bundles given; when empty, the bundles attached to
	// each image subject are listed from Registry.
	Bundles  []Candidate
	Registry *oci.Client
	Want     Want
	Policy   verify.Policy
}

// Checked is one candidate verified against one subject.
type Checked struct {
	Candidate
	Result *verify.Result
	Err    error
}

// SubjectReport is the verification of one subject.
type SubjectReport struct {
	Subject  Subject
	Verified bool
	// Bundles are the candidates tried, in order.
	Bundles []Checked
	// Err, when not verified, says why, as a *verify.Error (CheckAttachment
	// when nothing was there to verify).
	Err error
}

// VerifyReport is the verification of a plan.
type VerifyReport struct {
	Verified bool
	Subjects []SubjectReport
}

// FirstFailure is the error of the first subject that failed, if any.
func (r *VerifyReport) FirstFailure() (Subject, error) {
	for _, s := range r.Subjects {
		if !s.Verified {
			return s.Subject, s.Err
		}
	}
	return Subject{}, nil
}

// Verify verifies every subject against the plan's policy, offline apart
// from listing what is attached to images. A failed verification is in the
// report; the error is for what stopped it (a registry that cannot be read).
func Verify(ctx context.Context, v *verify.Verifier, p VerifyPlan) (*VerifyReport, error) {
	rep := &VerifyReport{Verified: true}
	for _, s := range p.Subjects {
		sr, err := verifySubject(ctx, v, p, s)
		if err != nil {
			return nil, err
		}
		rep.Subjects = append(rep.Subjects, *sr)
		rep.Verified = rep.Verified && sr.Verified
	}
	return rep, nil
}

func verifySubject(ctx context.Context, v *verify.Verifier, p VerifyPlan, s Subject) (*SubjectReport, error) {
	out := &SubjectReport{Subject: s}
	cands, where := p.Bundles, "the bundles given"
	var otherTypes []string
	if len(cands) == 0 && s.Image != nil {
		l, err := p.Registry.List(ctx, s.Image)
		if err != nil {
			return nil, err
		}
		where = fmt.Sprintf("the %s and the legacy .sig/.att tags", l.Path)
		for _, a := range l.Items {
			if !p.Want.takes(a.Kind) {
				continue
			}
			if p.Want.PredicateType != "" && a.PredicateType != p.Want.PredicateType {
				otherTypes = append(otherTypes, a.PredicateType)
				continue
			}
			cands = append(cands, Candidate{Source: string(a.Source), Location: a.Manifest.String(), Raw: a.Bundle, PredicateType: a.PredicateType, Attached: true})
		}
	}
	for _, c := range cands {
		res, err := VerifyCandidate(ctx, v, c, s, p.Want, p.Policy)
		out.Bundles = append(out.Bundles, Checked{Candidate: c, Result: res, Err: err})
		out.Verified = out.Verified || err == nil
	}
	if out.Verified {
		return out, nil
	}
	if len(out.Bundles) == 0 {
		msg := fmt.Sprintf("no %s is attached to %s (looked in %s)", p.Want.noun(), describeSubject(s), where)
		if len(otherTypes) > 0 {
			msg += "; attestations of other types are: " + strings.Join(dedupe(otherTypes), ", ")
		}
		out.Err = &verify.Error{Check: CheckAttachment, Msg: msg}
		return out, nil
	}
	// The first bundle's failure stands for the subject (legacy layers fail
	// for want of a bundle, which says little); all are listed.
	first := out.Bundles[0]
	for _, c := range out.Bundles {
		if c.Raw != nil {
			first = c
			break
		}
	}
	out.Err = &verify.Error{Check: verify.CheckOf(first.Err), Msg: fmt.Sprintf("none of the %d bundle(s) for %s verified; %s %s", len(out.Bundles), describeSubject(s), first.Source, first.Location), Err: first.Err}
	return out, nil
}

func (w Want) takes(k oci.Kind) bool {
	switch w.Kind {
	case intoto.KindSignature:
		return k == oci.KindSignature
	case "":
		return k == oci.KindSignature || k == oci.KindAttestation
	}
	return k == oci.KindAttestation
}

func describeSubject(s Subject) string {
	if s.Image != nil {
		return s.Image.Digest.String()
	}
	return s.Name + " (sha256:" + s.SHA256 + ")"
}

// VerifyCandidate verifies one bundle against one subject: a message
// signature against the file's content (or the digest, for a digest or an
// image), a statement against the subject's digest and the wanted type.
func VerifyCandidate(ctx context.Context, v *verify.Verifier, c Candidate, s Subject, w Want, pol verify.Policy) (*verify.Result, error) {
	if c.Raw == nil {
		// cosign's legacy layout keeps a Rekor v1 signed entry timestamp at
		// most, never the inclusion proof a Rekor v2 entry needs, so it
		// cannot be verified offline to the same standard.
		return nil, &verify.Error{Check: verify.CheckBundle, Msg: "cosign's legacy tag layout carries no Sigstore bundle (no transparency log inclusion proof); signet verifies the bundle referrers, which 'signet sign' and cosign v3 attach alongside"}
	}
	b, err := bundle.Parse(c.Raw)
	if err != nil {
		return nil, &verify.Error{Check: verify.CheckBundle, Msg: "reading the bundle", Err: err}
	}
	sum, err := hex.DecodeString(s.SHA256)
	if err != nil {
		return nil, err
	}
	d := verify.Digest{Algorithm: crypto.SHA256, Value: sum}
	if b.DSSEEnvelope() == nil {
		if w.Kind == intoto.KindAttestation || w.PredicateType != "" {
			return nil, &verify.Error{Check: verify.CheckBundle, Msg: "the bundle holds a message signature, not an attestation"}
		}
		if s.Path == "" {
			return v.VerifyDigest(ctx, b, d, pol)
		}
		f, err := os.Open(s.Path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return v.VerifyArtifact(ctx, b, f, pol)
	}
	pt := w.PredicateType
	if w.Kind == intoto.KindSignature {
		// A cosign v3 image signature is a statement of this type; any
		// other statement is an attestation, not a signature.
		pt = intoto.PredicateCosignSign
	}
	return v.VerifyAttestation(ctx, b, d, pol, pt)
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
