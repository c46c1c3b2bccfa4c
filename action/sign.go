package action

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/pipeline"
	"github.com/signet-dev/signet/core/sbom"
	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/token"
)

// Kinds of bundle the action writes.
const (
	KindSignature   = string(intoto.KindSignature)
	KindProvenance  = string(intoto.KindProvenance)
	KindSBOM        = string(intoto.KindSBOM)
	KindAttestation = string(intoto.KindAttestation)
)

// signingConcurrency bounds parallel signatures: each one is a few round
// trips to the server, and the server batches log entries.
const signingConcurrency = 4

func (r *runner) sign(ctx context.Context) (*report, error) {
	in := r.in
	subjects, err := resolveSubjects(ctx, in, r.o.Registry)
	if err != nil {
		return nil, err
	}
	// Everything that can be wrong locally is checked before the network.
	atts, err := r.localPlans()
	if err != nil {
		return nil, err
	}
	tok, err := token.Detect(ctx, token.Options{Getenv: r.o.Getenv, HTTPClient: r.o.HTTPClient, Now: r.o.Now})
	if err != nil {
		return nil, err
	}
	r.logf("signing as %s (token from %s)", tok.Claims.Identity(), tok.Source)
	if in.Provenance {
		p, err := r.provenancePlan(tok.Raw)
		switch {
		case errors.Is(err, ErrUnsupportedEvent):
			r.a.Warningf("no SLSA provenance: %v. Run the signing job on push, release, create or workflow_dispatch, or set provenance: false to silence this", err)
		case err != nil:
			return nil, err
		default:
			atts = append([]pipeline.Attestation{p}, atts...)
		}
	}
	if in.Mode == ModeAttest && len(atts) == 0 {
		return nil, badInput("provenance", "nothing to attest: provenance is off (or not possible for this event) and neither sbom-path nor predicate-type is given")
	}

	services, err := sign.FromServer(ctx, in.Server, r.o.HTTPClient, r.o.Now())
	if err != nil {
		return nil, err // names the server already
	}
	tmp := r.o.Getenv("RUNNER_TEMP")
	if tmp == "" {
		tmp = os.TempDir()
	}
	files := &pipeline.Files{Dir: in.BundleDir, FallbackDir: filepath.Join(tmp, "signet-bundles")}
	plan := pipeline.Plan{
		Subjects:     subjects,
		Sign:         in.Mode == ModeSign,
		Attestations: atts,
		Destinations: []pipeline.Destination{files},
		Concurrency:  signingConcurrency,
		Progress:     r.progress,
	}
	if in.PushToRegistry && len(subjects) == 1 && subjects[0].Image != nil {
		plan.Destinations = append(plan.Destinations, &pipeline.Referrers{Client: r.o.Registry})
	}
	rep, err := pipeline.Run(ctx, sign.Options{Services: services, IdentityToken: tok.Raw}, plan)
	out := &report{Mode: in.Mode, Server: in.Server}
	if len(subjects) == 1 && subjects[0].Image != nil {
		out.Image = subjects[0].Image.String()
	}
	if rep != nil {
		for _, b := range rep.Bundles {
			out.Entries = append(out.Entries, r.entryOf(b))
		}
	}
	if err != nil {
		return out, r.explain(err, files)
	}
	return out, nil
}

// progress logs each finished bundle and where it went.
func (r *runner) progress(e pipeline.Event) {
	if e.Step != sign.StepBundle {
		return
	}
	r.logf("%s: bundle made", e.Item.Describe())
}

// entryOf reports one bundle, and logs where it went.
func (r *runner) entryOf(b pipeline.Bundle) Entry {
	e := Entry{Kind: string(b.Kind), PredicateType: b.PredicateType, Subjects: b.Subjects, Identity: b.Identity, Issuer: b.Issuer, AttestationID: b.AttestationID}
	if b.Kind == intoto.KindSignature && b.Subjects[0].Image == nil {
		e.PredicateType = "" // a message signature
	}
	e.LogEntries = b.LogEntries
	if len(b.LogEntries) > 0 {
		e.LogIndex, e.LogOrigin = b.LogEntries[0].LogIndex, b.LogEntries[0].Origin
	}
	if e.AttestationID != "" {
		e.AttestationURL = r.in.Server + "/api/v2/attestations/" + e.AttestationID
	}
	for _, p := range b.Placements {
		switch p.Destination {
		case "file":
			e.BundlePath = p.Location
			r.logf("%s → %s", b.Item.Describe(), p.Location)
		case "oci":
			e.Referrer = p.Location
			r.logf("attached to %s as %s (%s)", p.Subject, p.Location, p.Via)
		}
	}
	return e
}

// explain adds the remedy, in the action's input terms, to a failure.
func (r *runner) explain(err error, files *pipeline.Files) error {
	var (
		pe  *pipeline.PathError
		ie  *pipeline.ItemError
		put *pipeline.PutError
	)
	switch {
	case errors.As(err, &pe) && r.in.BundleDir != "":
		return badInput("bundle-dir", "%v", err)
	case errors.As(err, &pe):
		return fmt.Errorf("%w; set bundle-dir to a writable directory", err)
	case errors.As(err, &ie) && errors.As(err, &put) && put.Destination == "oci":
		return fmt.Errorf("%w; the bundle is at %s (check the job can push: docker/login-action, permissions: packages: write)", err, files.PathOf(ie.Item))
	}
	return err
}

// localPlans reads the SBOM and custom predicate, so a wrong path fails
// before a certificate is requested.
func (r *runner) localPlans() ([]pipeline.Attestation, error) {
	in := r.in
	var atts []pipeline.Attestation
	if in.SBOMPath != "" {
		info, err := sbom.RecognizeFile(in.SBOMPath)
		if err != nil {
			return nil, badInput("sbom-path", "%v", err)
		}
		doc, err := os.ReadFile(in.SBOMPath)
		if err != nil {
			return nil, badInput("sbom-path", "%v", err)
		}
		atts = append(atts, pipeline.Attestation{Type: info.PredicateType, Predicate: doc, Kind: intoto.KindSBOM})
	}
	if in.PredicateType != "" {
		pred := []byte(in.Predicate)
		if in.PredicatePath != "" {
			var err error
			if pred, err = os.ReadFile(in.PredicatePath); err != nil {
				return nil, badInput("predicate-path", "%v", err)
			}
		}
		// Validate now; the subjects are filled in when signing.
		if err := pipeline.CheckPredicate(in.PredicateType, pred); err != nil {
			return nil, badInput("predicate", "%v", err)
		}
		atts = append(atts, pipeline.Attestation{Type: in.PredicateType, Predicate: pred, Kind: intoto.KindAttestation})
	}
	return atts, nil
}

func (r *runner) provenancePlan(rawToken string) (pipeline.Attestation, error) {
	info, err := r.runInfo(rawToken)
	if err != nil {
		return pipeline.Attestation{}, err
	}
	pred, err := Provenance(info, r.started)
	if err != nil {
		return pipeline.Attestation{}, err
	}
	return pipeline.Attestation{Type: intoto.PredicateSLSAProvenanceV1, Predicate: pred, Kind: intoto.KindProvenance}, nil
}

// tokenClaims reads all claims of the identity token without verifying it:
// the CA verifies it, and provenance only cross-checks the runner's
// variables against it.
func tokenClaims(raw string) (map[string]any, error) {
	t, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512, jose.PS256, jose.EdDSA})
	if err != nil {
		return nil, fmt.Errorf("identity token: %w", err)
	}
	var m map[string]any
	if err := t.UnsafeClaimsWithoutVerification(&m); err != nil {
		return nil, fmt.Errorf("identity token claims: %w", err)
	}
	return m, nil
}
