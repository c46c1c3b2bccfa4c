package action

import (
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/core/verify"
)

// candidate is a bundle to verify: a file, or one attached to an image.
type candidate struct {
	source string // path, or the referrer manifest
	raw    []byte
	// attached: found on the registry, where other signers' bundles may sit
	// next to the ones the policy trusts; those are skipped, not failures.
	attached bool
}

func (r *runner) verify(ctx context.Context) (*report, error) {
	in := r.in
	policy, err := r.policy()
	if err != nil {
		return nil, err
	}
	root, err := r.trustedRoot(ctx)
	if err != nil {
		return nil, err
	}
	subjects, err := resolveSubjects(ctx, in, r.o.Registry)
	if err != nil {
		return nil, err
	}
	cands, err := r.candidates(ctx, subjects)
	if err != nil {
		return nil, err
	}
	v := verify.New(root)
	rep := &report{Mode: ModeVerify, Server: in.Server}
	covered := make([]bool, len(subjects))
	var failures []string
	skipped := 0
	for _, c := range cands {
		e, idx, err := r.verifyOne(ctx, v, c, subjects, policy)
		if err != nil {
			if c.attached {
				skipped++
				r.logf("skipped %s: %v", c.source, err)
				continue
			}
			failures = append(failures, fmt.Sprintf("%s: %v", c.source, err))
			continue
		}
		for _, i := range idx {
			covered[i] = true
		}
		rep.Entries = append(rep.Entries, *e)
		r.logf("verified %s: %s signed by %s", c.source, e.Kind, e.Identity)
	}
	for i, ok := range covered {
		if !ok {
			failures = append(failures, fmt.Sprintf("no bundle verifies %s (sha256:%s) for the policy %s", subjects[i].Name, subjects[i].SHA256, policyString(in)))
		}
	}
	if skipped > 0 {
		r.a.Noticef("%d bundle(s) attached to %s were not made by %s and were skipped", skipped, in.Image, policyString(in))
	}
	if len(failures) > 0 {
		// One annotation per failure is easier to read than a joined one;
		// the returned error (reported by Run) summarises.
		for _, f := range failures[:len(failures)-1] {
			r.a.Errorf("verification failed: %s", f)
		}
		return rep, fmt.Errorf("verification failed: %s", failures[len(failures)-1])
	}
	return rep, nil
}

func policyString(in *Inputs) string {
	id, iss := in.CertIdentity, in.CertIssuer
	if id == "" {
		id = "~" + in.CertIdentityRegexp
	}
	if iss == "" {
		iss = "~" + in.CertIssuerRegexp
	}
	return fmt.Sprintf("identity %s, issuer %s", id, iss)
}

func (r *runner) policy() (verify.Policy, error) {
	in := r.in
	var p verify.Policy
	var err error
	if in.CertIdentity != "" {
		p.Identity = verify.Exact(in.CertIdentity)
	} else if p.Identity, err = r.regexpInput("certificate-identity-regexp", "identity", in.CertIdentityRegexp); err != nil {
		return p, err
	}
	if in.CertIssuer != "" {
		p.Issuer = verify.Exact(in.CertIssuer)
	} else if p.Issuer, err = r.regexpInput("certificate-oidc-issuer-regexp", "OIDC issuer", in.CertIssuerRegexp); err != nil {
		return p, err
	}
	return p, nil
}

// regexpInput compiles a -regexp input, searched for anywhere in the value
// as cosign does, and warns in an annotation when it has no leading ^.
func (r *runner) regexpInput(name, what, expr string) (verify.Matcher, error) {
	m, err := verify.Regexp(expr)
	if err != nil {
		return m, badInput(name, "%v", err)
	}
	if w := verify.UnanchoredWarning(name, what, expr); w != "" {
		r.a.Warningf("%s", w)
	}
	return m, nil
}

// trustedRoot loads trusted-root, or fetches the server's (trust on first
// use, said in the log so it is a visible choice).
func (r *runner) trustedRoot(ctx context.Context) (*trust.Root, error) {
	if r.in.TrustedRoot != "" {
		root, err := trust.ReadRootFile(r.in.TrustedRoot)
		if err != nil {
			return nil, badInput("trusted-root", "%v", err)
		}
		return root, nil
	}
	raw, err := sign.FetchTrustFile(ctx, r.in.Server, sign.TrustedRootPath, r.o.HTTPClient)
	if err != nil {
		return nil, err // names the server already
	}
	root, err := trust.ParseRoot(raw)
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", r.in.Server, sign.TrustedRootPath, err)
	}
	r.logf("using the trusted root served by %s now; commit it to the repository and pass trusted-root to verify offline", r.in.Server)
	return root, nil
}

// candidates are the bundle-path files or, without them, the bundles
// attached to the image.
func (r *runner) candidates(ctx context.Context, subjects []Subject) ([]candidate, error) {
	var out []candidate
	if len(r.in.BundlePaths) > 0 {
		var files []string
		for _, p := range r.in.BundlePaths {
			matches, err := doublestar.FilepathGlob(p)
			if err != nil {
				return nil, badInput("bundle-path", "%q: %v", p, err)
			}
			if len(matches) == 0 {
				wd, _ := os.Getwd()
				return nil, badInput("bundle-path", "%q matched no files in %s; download the bundles first (actions/download-artifact) or fix the path", p, wd)
			}
			for _, m := range matches {
				if !slices.Contains(files, m) {
					files = append(files, m)
				}
			}
		}
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				return nil, badInput("bundle-path", "%v", err)
			}
			out = append(out, candidate{source: f, raw: raw})
		}
		return out, nil
	}
	img := subjects[0].Image
	listing, err := r.o.Registry.List(ctx, img)
	if err != nil {
		return nil, fmt.Errorf("listing what is attached to %s: %w", img, err)
	}
	for _, it := range listing.Items {
		if len(it.Bundle) > 0 {
			out = append(out, candidate{source: it.Manifest.String(), raw: it.Bundle, attached: true})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no Sigstore bundles are attached to %s; sign it with push-to-registry: true, or give bundle-path", img)
	}
	return out, nil
}

// verifyOne verifies a bundle against the subjects it is about: a message
// signature against one subject's content (or digest), an attestation
// against every subject its statement lists. It returns the indexes of the
// subjects the bundle covers.
func (r *runner) verifyOne(ctx context.Context, v *verify.Verifier, c candidate, subjects []Subject, pol verify.Policy) (*Entry, []int, error) {
	b, err := bundle.Parse(c.raw)
	if err != nil {
		return nil, nil, fmt.Errorf("not a Sigstore bundle: %w", err)
	}
	dsse := b.DSSEEnvelope() != nil
	if !dsse && r.in.PredicateType != "" {
		return nil, nil, fmt.Errorf("a message signature, not an attestation of type %s", r.in.PredicateType)
	}
	var (
		res  *verify.Result
		idx  []int
		errs []string
	)
	for i, s := range subjects {
		sum, _ := hex.DecodeString(s.SHA256)
		d := verify.Digest{Algorithm: crypto.SHA256, Value: sum}
		var got *verify.Result
		var err error
		switch {
		case dsse:
			got, err = v.VerifyAttestation(ctx, b, d, pol, r.in.PredicateType)
		case s.Path != "":
			var f *os.File
			if f, err = os.Open(s.Path); err == nil {
				got, err = v.VerifyArtifact(ctx, b, f, pol)
				f.Close()
			}
		default:
			got, err = v.VerifyDigest(ctx, b, d, pol)
		}
		if err != nil {
			// A policy or signature failure is the same for every
			// subject: report it once, not per subject.
			if ch := verify.CheckOf(err); ch != verify.CheckArtifact && ch != verify.CheckStatement && ch != verify.CheckSignature {
				return nil, nil, err
			}
			errs = append(errs, fmt.Sprintf("%s: %v", s.Name, err))
			continue
		}
		res = got
		idx = append(idx, i)
	}
	if res == nil {
		return nil, nil, errors.New(strings.Join(errs, "; "))
	}
	e := &Entry{Kind: KindSignature, BundlePath: c.source, Identity: res.Signer.SAN, Issuer: res.Signer.Issuer}
	if res.Statement != nil {
		e.PredicateType = res.Statement.GetPredicateType()
		e.Kind = shortKind(e.PredicateType)
	}
	if len(res.Entries) > 0 {
		e.LogIndex = res.Entries[0].LogIndex
		e.LogOrigin = res.Entries[0].BaseURL
	}
	for _, i := range idx {
		e.Subjects = append(e.Subjects, subjects[i])
	}
	return e, idx, nil
}

func shortKind(pt string) string {
	return string(intoto.KindOf(pt))
}
