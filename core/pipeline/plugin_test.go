package pipeline_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/oci/ocitest"
	"github.com/signet-dev/signet/core/pipeline"
	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/core/verify"
	"github.com/signet-dev/signet/server/servertest"
)

// examplePlugin is the smallest plugin there is: it reads a build system's
// report (artifacts it wrote and an image it pushed), and translates it
// into subjects, a provenance predicate and destinations; everything else
// is the pipeline's. The Tekton controller and the buildpack hook are this,
// with their platforms' reports.
type examplePlugin struct {
	Artifacts []string `json:"artifacts"`
	Image     string   `json:"image"`
	Builder   string   `json:"builder"`
}

func (p *examplePlugin) plan(ctx context.Context, reg *oci.Client, keep *memory) (pipeline.Plan, error) {
	plan := pipeline.Plan{Sign: true, Destinations: []pipeline.Destination{keep, &pipeline.Referrers{Client: reg}}}
	for _, a := range p.Artifacts {
		s, err := pipeline.FileSubject(a)
		if err != nil {
			return plan, err
		}
		plan.Subjects = append(plan.Subjects, s)
	}
	img, err := reg.Resolve(ctx, p.Image)
	if err != nil {
		return plan, err
	}
	s, err := pipeline.ImageSubject(img)
	if err != nil {
		return plan, err
	}
	plan.Subjects = append(plan.Subjects, s)
	pred, _ := json.Marshal(map[string]any{
		"buildDefinition": map[string]any{"buildType": "https://example.com/build/v1", "externalParameters": map[string]any{"report": "build.json"}},
		"runDetails":      map[string]any{"builder": map[string]any{"id": p.Builder}},
	})
	plan.Attestations = []pipeline.Attestation{{Type: intoto.PredicateSLSAProvenanceV1, Predicate: pred}}
	return plan, nil
}

func TestExamplePluginAgainstSignetServer(t *testing.T) {
	ctx := context.Background()
	p := servertest.Start(t, t.TempDir(), "--dev-oidc")
	reg := ocitest.Start(t)
	tok, err := p.Token(ctx, url.Values{"kind": {"github"}, "repository": {"acme/app"}, "workflow": {".github/workflows/release.yml"}, "ref": {"refs/heads/main"}})
	if err != nil {
		t.Fatal(err)
	}
	identity := "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
	issuer := p.URL + "/dev/oidc"

	dir := t.TempDir()
	var arts []string
	for _, n := range []string{"app-linux-amd64", "app-linux-arm64"} {
		f := filepath.Join(dir, n)
		os.WriteFile(f, bytes.Repeat([]byte(n), 1000), 0o644)
		arts = append(arts, f)
	}
	img, _ := random.Image(256, 1)
	ref := reg.Ref("acme/app:1.0")
	r, _ := name.ParseReference(ref, name.Insecure)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	plugin := &examplePlugin{Artifacts: arts, Image: ref, Builder: "https://example.com/builder"}

	services, err := sign.FromServer(ctx, p.URL, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	client := oci.New(oci.Options{})
	keep := &memory{}
	plan, err := plugin.plan(ctx, client, keep)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := pipeline.Run(ctx, sign.Options{Services: services, IdentityToken: tok}, plan)
	if err != nil {
		t.Fatal(err)
	}
	// Two file signatures, the image signature, one provenance over all three.
	if len(rep.Bundles) != 4 || len(keep.bundles) != 4 {
		t.Fatalf("%d bundles reported, %d kept; want 4", len(rep.Bundles), len(keep.bundles))
	}
	for _, b := range rep.Bundles {
		if b.Identity != identity || b.Issuer != issuer || len(b.LogEntries) != 1 {
			t.Errorf("%s: identity %q issuer %q entries %v", b.Item.Describe(), b.Identity, b.Issuer, b.LogEntries)
		}
		wantPlaces := 1 // memory
		if b.Item.Subjects[len(b.Item.Subjects)-1].Image != nil {
			wantPlaces = 2 // and the image's referrer
		}
		if len(b.Placements) != wantPlaces {
			t.Errorf("%s placed %v", b.Item.Describe(), b.Placements)
		}
	}
	if rep.Bundles[3].AttestationID == "" || rep.Bundles[2].AttestationID != "" {
		t.Error("the provenance should go through the attestation store and the image signature straight to the log")
	}

	// Verify through the seam: the kept bundles for every subject, and what
	// is attached to the image; then another identity fails.
	trJSON, _ := p.Get("/trust/trusted_root.json")
	tr, err := trust.ParseRoot(trJSON)
	if err != nil {
		t.Fatal(err)
	}
	var cands []pipeline.Candidate
	for k, raw := range keep.bundles {
		cands = append(cands, pipeline.Candidate{Source: "memory", Location: k, Raw: raw})
	}
	pol := verify.Policy{Identity: verify.Exact(identity), Issuer: verify.Exact(issuer)}
	v := verify.New(tr)
	vr, err := pipeline.Verify(ctx, v, pipeline.VerifyPlan{Subjects: plan.Subjects, Bundles: cands, Want: pipeline.Want{}, Policy: pol})
	if err != nil || !vr.Verified {
		s, ferr := vr.FirstFailure()
		t.Fatalf("kept bundles: %v; first failure %s: %v", err, s.Name, ferr)
	}
	vr, err = pipeline.Verify(ctx, v, pipeline.VerifyPlan{Subjects: plan.Subjects, Bundles: cands, Want: pipeline.Want{Kind: intoto.KindAttestation, PredicateType: intoto.PredicateSLSAProvenanceV1}, Policy: pol})
	if err != nil || !vr.Verified {
		t.Fatalf("provenance covers every subject: %v %+v", err, vr)
	}
	imageOnly := plan.Subjects[2:]
	for _, w := range []pipeline.Want{{Kind: intoto.KindSignature}, {Kind: intoto.KindAttestation, PredicateType: intoto.PredicateSLSAProvenanceV1}} {
		vr, err = pipeline.Verify(ctx, v, pipeline.VerifyPlan{Subjects: imageOnly, Registry: client, Want: w, Policy: pol})
		if err != nil || !vr.Verified {
			t.Fatalf("attached %v: %v %+v", w, err, vr)
		}
	}
	other := verify.Policy{Identity: verify.Exact("https://github.com/evil/app/.github/workflows/release.yml@refs/heads/main"), Issuer: verify.Exact(issuer)}
	vr, err = pipeline.Verify(ctx, v, pipeline.VerifyPlan{Subjects: plan.Subjects, Bundles: cands, Policy: other})
	if err != nil || vr.Verified {
		t.Fatalf("another identity verified: %v", err)
	}
	if _, ferr := vr.FirstFailure(); verify.CheckOf(ferr) != verify.CheckIdentity {
		t.Errorf("another identity fails on %q: %v", verify.CheckOf(ferr), ferr)
	}
	vr, _ = pipeline.Verify(ctx, v, pipeline.VerifyPlan{Subjects: imageOnly, Registry: client, Want: pipeline.Want{Kind: intoto.KindAttestation, PredicateType: intoto.PredicateSPDX}, Policy: pol})
	if _, ferr := vr.FirstFailure(); vr.Verified || verify.CheckOf(ferr) != pipeline.CheckAttachment {
		t.Errorf("no SBOM attached: %v", ferr)
	}

	// An independent verifier agrees on the provenance.
	sgRoot, err := root.NewTrustedRootFromJSON(trJSON)
	if err != nil {
		t.Fatal(err)
	}
	sv, _ := sgverify.NewVerifier(sgRoot, sgverify.WithSignedTimestamps(1), sgverify.WithTransparencyLog(1))
	var sb sgbundle.Bundle
	if err := sb.UnmarshalJSON(rep.Bundles[3].Result.JSON); err != nil {
		t.Fatal(err)
	}
	id, _ := sgverify.NewShortCertificateIdentity(issuer, "", identity, "")
	d, _ := hexDigest(plan.Subjects[0].SHA256)
	if _, err := sv.Verify(&sb, sgverify.NewPolicy(sgverify.WithArtifactDigest("sha256", d), sgverify.WithCertificateIdentity(id))); err != nil {
		t.Errorf("sigstore-go rejects the provenance: %v", err)
	}
}

func hexDigest(s string) ([]byte, error) { return hex.DecodeString(s) }

// With a Verifier, each bundle is proven against the trusted root before any
// destination gets it: a root that does not know the server's keys stops the
// bundle from being written.
func TestVerifyBeforeWriting(t *testing.T) {
	ctx := context.Background()
	p := servertest.Start(t, t.TempDir(), "--dev-oidc")
	tok, err := p.Token(ctx, url.Values{"kind": {"github"}, "repository": {"acme/app"}, "workflow": {".github/workflows/release.yml"}, "ref": {"refs/heads/main"}})
	if err != nil {
		t.Fatal(err)
	}
	services, err := sign.FromServer(ctx, p.URL, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	trJSON, _ := p.Get("/trust/trusted_root.json")
	own, err := trust.ParseRoot(trJSON)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := trust.ReadRootFile("../../../shared/interop/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a := file(t, dir, "a.bin", "a")
	o := sign.Options{Services: services, IdentityToken: tok}
	for _, signIt := range []bool{true, false} {
		plan := func(v *verify.Verifier) pipeline.Plan {
			pl := pipeline.Plan{Subjects: []pipeline.Subject{a}, Sign: signIt, Destinations: []pipeline.Destination{&pipeline.Files{}}, Verifier: v}
			if !signIt {
				pl.Attestations = []pipeline.Attestation{{Type: "https://example.com/x/v1", Predicate: []byte(`{"ok":true}`)}}
			}
			return pl
		}
		if _, err := pipeline.Run(ctx, o, plan(verify.New(own))); err != nil {
			t.Fatalf("sign=%v against its own root: %v", signIt, err)
		}
		written := a.Path + ".sigstore.json"
		if !signIt {
			written = a.Path + "." + intoto.FileTag("https://example.com/x/v1") + ".sigstore.json"
		}
		os.Remove(written)
		_, err := pipeline.Run(ctx, o, plan(verify.New(foreign)))
		var sv *pipeline.SelfVerifyError
		if !errors.As(err, &sv) || verify.CheckOf(err) == "" {
			t.Fatalf("sign=%v against a foreign root: %v, want a SelfVerifyError naming the check", signIt, err)
		}
		if _, err := os.Stat(written); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("sign=%v: a bundle that does not verify was written (%v)", signIt, err)
		}
	}
}
