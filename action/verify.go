package action

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/pipeline"
	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/core/verify"
)

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
	cands, err := r.candidates()
	if err != nil {
		return nil, err
	}
	want := pipeline.Want{PredicateType: in.PredicateType}
	if in.PredicateType != "" {
		want.Kind = intoto.KindAttestation
	}
	vr, err := pipeline.Verify(ctx, verify.New(root), pipeline.VerifyPlan{Subjects: subjects, Bundles: cands, Registry: r.o.Registry, Want: want, Policy: policy})
	if err != nil {
		return nil, fmt.Errorf("listing what is attached to %s: %w", in.Image, err)
	}
	rep := &report{Mode: ModeVerify, Server: in.Server}
	if len(subjects) == 1 && subjects[0].Image != nil {
		rep.Image = subjects[0].Image.String()
	}
	var failures []string
	skipped := 0
	for _, c := range byCandidate(vr) {
		if c.result == nil {
			if c.Attached {
				skipped++
				r.logf("skipped %s: %v", c.Location, c.err())
				continue
			}
			failures = append(failures, fmt.Sprintf("%s: %v", c.Location, c.err()))
			continue
		}
		e := entryOfVerified(c)
		rep.Entries = append(rep.Entries, e)
		r.logf("verified %s: %s signed by %s", c.Location, e.Kind, e.Identity)
	}
	for _, sr := range vr.Subjects {
		switch {
		case sr.Verified:
		case verify.CheckOf(sr.Err) == pipeline.CheckAttachment:
			failures = append(failures, fmt.Sprintf("no Sigstore bundles are attached to %s; sign it with push-to-registry: true, or give bundle-path", in.Image))
		default:
			failures = append(failures, fmt.Sprintf("no bundle verifies %s (sha256:%s) for the policy %s", sr.Subject.Name, sr.Subject.SHA256, policyString(in)))
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

// candidates are the bundle-path files; without them, pipeline.Verify
// lists what is attached to the image.
func (r *runner) candidates() ([]pipeline.Candidate, error) {
	var out []pipeline.Candidate
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
		out = append(out, pipeline.Candidate{Source: "file", Location: f, Raw: raw})
	}
	return out, nil
}

// candidateResult is one bundle across every subject it was tried on.
type candidateResult struct {
	pipeline.Candidate
	result   *verify.Result
	subjects []Subject // the subjects it verified
	failed   []string  // "<subject>: <error>" where it did not
	first    error
}

// err says why a bundle verified no subject: a policy or signature failure
// is the same for every subject and is said once.
func (c *candidateResult) err() error {
	if ch := verify.CheckOf(c.first); ch != verify.CheckArtifact && ch != verify.CheckStatement && ch != verify.CheckSignature {
		return c.first
	}
	return errors.New(strings.Join(c.failed, "; "))
}

// byCandidate regroups a per-subject report by bundle, in the order found.
func byCandidate(vr *pipeline.VerifyReport) []*candidateResult {
	var out []*candidateResult
	index := map[string]*candidateResult{}
	for _, sr := range vr.Subjects {
		for _, c := range sr.Bundles {
			cr := index[c.Location]
			if cr == nil {
				cr = &candidateResult{Candidate: c.Candidate}
				index[c.Location] = cr
				out = append(out, cr)
			}
			if c.Err != nil {
				if cr.first == nil {
					cr.first = c.Err
				}
				cr.failed = append(cr.failed, fmt.Sprintf("%s: %v", sr.Subject.Name, c.Err))
				continue
			}
			cr.result = c.Result
			cr.subjects = append(cr.subjects, sr.Subject)
		}
	}
	return out
}

func entryOfVerified(c *candidateResult) Entry {
	res := c.result
	e := Entry{Kind: KindSignature, BundlePath: c.Location, Identity: res.Signer.SAN, Issuer: res.Signer.Issuer, Subjects: c.subjects}
	if res.Statement != nil {
		e.PredicateType = res.Statement.GetPredicateType()
		e.Kind = string(intoto.KindOf(e.PredicateType))
	}
	e.LogEntries = pipeline.VerifiedEntries(res.Entries)
	if len(res.Entries) > 0 {
		e.LogIndex = res.Entries[0].LogIndex
		e.LogOrigin = res.Entries[0].BaseURL
	}
	return e
}
