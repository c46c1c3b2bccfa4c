package action

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/sync/errgroup"

	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/sbom"
	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/token"
)

// Kinds of bundle the action writes.
const (
	KindSignature   = "signature"
	KindProvenance  = "provenance"
	KindSBOM        = "sbom"
	KindAttestation = "attestation"
)

// attestPlan is one attestation to make over all subjects.
type attestPlan struct {
	kind          string
	predicateType string
	predicate     []byte
	// short names the type in bundle file names, as verify-blob-attestation
	// --type expects them.
	short string
}

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
	plans, err := r.localPlans()
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
			plans = append([]attestPlan{p}, plans...)
		}
	}
	if in.Mode == ModeAttest && len(plans) == 0 {
		return nil, badInput("provenance", "nothing to attest: provenance is off (or not possible for this event) and neither sbom-path nor predicate-type is given")
	}

	services, err := sign.FromServer(ctx, in.Server, r.o.HTTPClient, r.o.Now())
	if err != nil {
		return nil, err // names the server already
	}
	opts := sign.Options{Services: services, IdentityToken: tok.Raw, ViaAttestationStore: services.Attestations != nil}

	rep := &report{Mode: in.Mode, Server: in.Server}
	if in.Mode == ModeSign {
		if err := r.signSubjects(ctx, opts, subjects, rep); err != nil {
			return rep, err
		}
	}
	for _, p := range plans {
		e, err := r.attest(ctx, opts, subjects, p)
		if e != nil { // written, even if attaching it failed
			rep.Entries = append(rep.Entries, *e)
		}
		if err != nil {
			return rep, fmt.Errorf("%s attestation: %w", p.kind, err)
		}
	}
	return rep, nil
}

// localPlans reads the SBOM and custom predicate, so a wrong path fails
// before a certificate is requested.
func (r *runner) localPlans() ([]attestPlan, error) {
	in := r.in
	var plans []attestPlan
	if in.SBOMPath != "" {
		info, err := sbom.RecognizeFile(in.SBOMPath)
		if err != nil {
			return nil, badInput("sbom-path", "%v", err)
		}
		doc, err := os.ReadFile(in.SBOMPath)
		if err != nil {
			return nil, badInput("sbom-path", "%v", err)
		}
		short := "spdxjson"
		if info.Format == sbom.CycloneDXJSON {
			short = "cyclonedx"
		}
		plans = append(plans, attestPlan{kind: KindSBOM, predicateType: info.PredicateType, predicate: doc, short: short})
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
		if _, err := intoto.NewStatement([]intoto.Subject{{Name: "_", Digest: map[string]string{"sha256": strings.Repeat("0", 64)}}}, in.PredicateType, pred); err != nil {
			return nil, badInput("predicate", "%v", err)
		}
		plans = append(plans, attestPlan{kind: KindAttestation, predicateType: in.PredicateType, predicate: pred, short: shortType(in.PredicateType)})
	}
	return plans, nil
}

func shortType(pt string) string {
	switch pt {
	case intoto.PredicateSLSAProvenanceV1:
		return "slsaprovenance1"
	case intoto.PredicateSPDX:
		return "spdxjson"
	case intoto.PredicateCycloneDX:
		return "cyclonedx"
	}
	return "attestation"
}

func (r *runner) provenancePlan(rawToken string) (attestPlan, error) {
	claims, err := tokenClaims(rawToken)
	if err != nil {
		return attestPlan{}, err
	}
	ghc, err := r.a.Context()
	if err != nil {
		return attestPlan{}, fmt.Errorf("reading the workflow run's event (GITHUB_EVENT_PATH): %w", err)
	}
	info, err := ReadRunInfo(r.o.Getenv, ghc.Event, claims)
	if err != nil {
		return attestPlan{}, err
	}
	pred, err := Provenance(info, r.started)
	if err != nil {
		return attestPlan{}, err
	}
	return attestPlan{kind: KindProvenance, predicateType: intoto.PredicateSLSAProvenanceV1, predicate: pred, short: "slsaprovenance1"}, nil
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

// signSubjects makes message signatures over files, or the cosign v3 image
// signature (a DSSE statement) for an image.
func (r *runner) signSubjects(ctx context.Context, opts sign.Options, subjects []Subject, rep *report) error {
	if len(subjects) == 1 && subjects[0].Image != nil {
		e, err := r.attest(ctx, opts, subjects, attestPlan{kind: KindSignature, predicateType: oci.CosignSignPredicateType, predicate: []byte("{}"), short: "sig"})
		if e != nil {
			rep.Entries = append(rep.Entries, *e)
		}
		if err != nil {
			return fmt.Errorf("image signature: %w", err)
		}
		return nil
	}
	// Message signatures go to the transparency log; the attestation
	// store keeps DSSE envelopes only.
	opts.ViaAttestationStore = false
	entries := make([]Entry, len(subjects))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(signingConcurrency)
	var mu sync.Mutex
	for i, s := range subjects {
		g.Go(func() error {
			path := s.Path + ".sigstore.json"
			if r.in.BundleDir != "" {
				path = filepath.Join(r.in.BundleDir, s.Name+".sigstore.json")
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return fmt.Errorf("bundle-dir: %w", err)
			}
			res, err := sign.Artifact(gctx, opts, s.Path, path)
			if err != nil {
				return fmt.Errorf("signing %s: %w", s.Path, err)
			}
			entries[i] = newEntry(KindSignature, "", []Subject{s}, path, res, r.in.Server)
			mu.Lock()
			r.logf("signed %s → %s", s.Path, path)
			mu.Unlock()
			return nil
		})
	}
	err := g.Wait()
	for _, e := range entries {
		if e.BundlePath != "" {
			rep.Entries = append(rep.Entries, e)
		}
	}
	return err
}

// attest signs one statement about all subjects and, for an image with
// push-to-registry, attaches the bundle to it.
func (r *runner) attest(ctx context.Context, opts sign.Options, subjects []Subject, p attestPlan) (*Entry, error) {
	st := make([]intoto.Subject, len(subjects))
	for i, s := range subjects {
		st[i] = s.intoto()
	}
	statement, err := intoto.NewStatement(st, p.predicateType, p.predicate)
	if err != nil {
		return nil, err
	}
	payload, err := intoto.MarshalStatement(statement)
	if err != nil {
		return nil, err
	}
	path, err := r.attestationPath(subjects, p, payload)
	if err != nil {
		return nil, err
	}
	res, err := sign.Attestation(ctx, opts, payload, path)
	if err != nil {
		return nil, err
	}
	e := newEntry(p.kind, p.predicateType, subjects, path, res, r.in.Server)
	r.logf("%s → %s", p.kind, path)
	if r.in.PushToRegistry && len(subjects) == 1 && subjects[0].Image != nil {
		kind := oci.KindAttestation
		if p.kind == KindSignature {
			kind = oci.KindSignature
		}
		ar, err := r.o.Registry.Attach(ctx, subjects[0].Image, oci.Attachment{Kind: kind, Bundle: res.JSON, PredicateType: p.predicateType})
		if err != nil {
			return &e, fmt.Errorf("attaching the %s to %s: %w; the bundle is at %s (check the job can push: docker/login-action, permissions: packages: write)", p.kind, subjects[0].Image, err, path)
		}
		e.Referrer = ar.Referrer.String()
		r.logf("attached to %s as %s (%s)", subjects[0].Image, ar.Referrer, ar.Path)
	}
	return &e, nil
}

// attestationPath is where an attestation bundle goes: next to a single file
// subject as <file>.<type>.sigstore.json (where verify-blob-attestation looks),
// else in bundle-dir or $RUNNER_TEMP/signet-bundles, named after the subject
// (or, for several, the statement's digest, so runs never overwrite each other).
func (r *runner) attestationPath(subjects []Subject, p attestPlan, payload []byte) (string, error) {
	if r.in.BundleDir == "" && len(subjects) == 1 && subjects[0].Path != "" {
		return subjects[0].Path + "." + p.short + ".sigstore.json", nil
	}
	dir := r.in.BundleDir
	if dir == "" {
		tmp := r.o.Getenv("RUNNER_TEMP")
		if tmp == "" {
			tmp = os.TempDir()
		}
		dir = filepath.Join(tmp, "signet-bundles")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("bundle directory: %w", err)
	}
	var name string
	if len(subjects) == 1 {
		name = safeName(subjects[0].Name)
		if subjects[0].Image != nil {
			name += "@sha256-" + subjects[0].SHA256[:12]
		}
	} else {
		sum := sha256.Sum256(payload)
		name = "subjects-" + hex.EncodeToString(sum[:6])
	}
	return filepath.Join(dir, name+"."+p.short+".sigstore.json"), nil
}

// safeName makes a subject name usable as a file name.
func safeName(s string) string {
	return strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
			return c
		}
		return '_'
	}, s)
}
