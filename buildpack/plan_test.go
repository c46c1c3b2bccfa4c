package buildpack_test

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/types"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/signet-dev/signet/buildpack"
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/oci/ocitest"
	"github.com/signet-dev/signet/core/pipeline"
	"github.com/signet-dev/signet/core/sign"
)

// TestPlanItems: the plan of a Docker v2 schema 2 export expands into the
// image signature, one attestation per SBOM under its own predicate type,
// and the provenance, each about the exported digest, and the referrers
// destination accepts them all.
func TestPlanItems(t *testing.T) {
	reg := ocitest.Start(t)
	e := fixture{api: "0.12", mt: dockerTypes, launch: launchSBOMs, build: buildSBOMs}.export(t, reg)
	b, err := buildpack.Read(context.Background(), e.options("0.12"))
	if err != nil {
		t.Fatal(err)
	}
	c := oci.New(oci.Options{Keychain: authn.NewMultiKeychain()})
	dests := []pipeline.Destination{&pipeline.Referrers{Client: c}}
	plan, err := b.Plan(dests)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(plan.Destinations, dests) || plan.AttestSubjects != nil {
		t.Fatalf("plan %+v", plan)
	}
	items, err := pipeline.Items(sign.Options{}, plan)
	if err != nil {
		t.Fatal(err)
	}
	type kind struct {
		kind          intoto.Kind
		predicateType string
	}
	var got []kind
	for _, it := range items {
		got = append(got, kind{it.Kind, it.PredicateType})
		st, err := intoto.ParseStatement(it.Statement)
		if err != nil {
			t.Fatal(err)
		}
		// cosign v3's image signature names the digest alone.
		wantName := reg.Host + "/app"
		if it.Kind == intoto.KindSignature {
			wantName = ""
		}
		if len(st.Subject) != 1 || "sha256:"+st.Subject[0].Digest["sha256"] != e.digest || st.Subject[0].Name != wantName {
			t.Errorf("%s: subject %v, want %s", it.Describe(), st.Subject, e.digest)
		}
	}
	want := []kind{{intoto.KindSignature, intoto.PredicateCosignSign}}
	for _, s := range b.SBOMs {
		want = append(want, kind{intoto.KindSBOM, s.PredicateType})
	}
	want = append(want, kind{intoto.KindProvenance, intoto.PredicateSLSAProvenanceV1})
	if !reflect.DeepEqual(got, want) || len(b.SBOMs) != 7 {
		t.Errorf("items\n got %v\nwant %v", got, want)
	}
	if err := dests[0].Check(context.Background(), items); err != nil {
		t.Errorf("the referrers destination refuses the plan: %v", err)
	}
}

// TestDockerV2SubjectAttaches: core/oci attaches a bundle to a Docker v2
// schema 2 manifest, as the lifecycle exports on a Docker run image, and
// lists it back, on the registry with and the one without the referrers API.
func TestDockerV2SubjectAttaches(t *testing.T) {
	raw, err := os.ReadFile("../../shared/interop/cosign3-github-provenance.sigstore.json")
	if err != nil {
		t.Skipf("no interop bundle: %v", err)
	}
	for _, reg := range []*ocitest.Registry{ocitest.Start(t), ocitest.StartReferrersAPI(t)} {
		t.Run(fmt.Sprintf("referrers API %v", reg.ReferrersAPI), func(t *testing.T) {
			ctx := context.Background()
			img, _ := appImage(t, dockerTypes, labels(reg.Ref("run@sha256:"+hex64("a")), "run", true), nil, nil)
			push(t, reg.Ref("docker:1"), img)
			c := oci.New(oci.Options{Keychain: authn.NewMultiKeychain()})
			s, err := c.Resolve(ctx, reg.Ref("docker:1"))
			if err != nil {
				t.Fatal(err)
			}
			if s.Descriptor.MediaType != types.DockerManifestSchema2 {
				t.Fatalf("media type %s", s.Descriptor.MediaType)
			}
			var pb protobundle.Bundle
			if err := protojson.Unmarshal(raw, &pb); err != nil {
				t.Fatal(err)
			}
			pb.GetDsseEnvelope().Payload = fmt.Appendf(nil, `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"app","digest":{"sha256":%q}}],"predicateType":"https://cyclonedx.org/bom","predicate":{"bomFormat":"CycloneDX","specVersion":"1.5"}}`, s.Descriptor.Digest.Hex)
			bundle, err := protojson.Marshal(&pb)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Attach(ctx, s, oci.Attachment{Kind: oci.KindAttestation, Bundle: bundle}); err != nil {
				t.Fatalf("attaching to a Docker v2 manifest: %v", err)
			}
			l, err := c.List(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			if a := l.Attestations(); len(a) != 1 || a[0].PredicateType != "https://cyclonedx.org/bom" {
				t.Errorf("listed %+v", l.Items)
			}
		})
	}
}
