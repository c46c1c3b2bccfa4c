package buildpack

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	attestation "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/pipeline"
)

// BuildType is the SLSA buildType of a Cloud Native Buildpacks build as
// signet records it; docs/buildpack.md defines its parameters.
const BuildType = "https://signet.dev/buildpack/v1"

// DefaultBuilderID is runDetails.builder.id when the platform gives none:
// the platform by name under the build type ("unknown" if none is known).
func DefaultBuilderID(platform string) string {
	if platform == "" {
		platform = "unknown"
	}
	return BuildType + "/platform/" + url.PathEscape(platform)
}

// Names of the resolved dependencies that are not buildpacks.
const (
	depSource   = "source"
	depBuilder  = "builder"
	depRunImage = "runImage"
)

// Provenance is the SLSA v1 provenance predicate (JSON) of the build, in
// BuildType, checked as core checks every provenance predicate.
func (b *Build) Provenance() ([]byte, error) {
	external := map[string]any{"tags": anySlice(b.Tags)}
	if !b.Source.empty() {
		src := map[string]any{}
		if b.Source.URI != "" {
			src["uri"] = b.Source.URI
		}
		if len(b.Source.Digest) > 0 {
			src["digest"] = stringMap(b.Source.Digest)
		}
		external["source"] = src
	}
	if b.Platform != "" {
		external["platform"] = b.Platform
	}
	if b.PlatformAPI != "" {
		external["platformApi"] = b.PlatformAPI
	}
	internal := map[string]any{"buildpacks": ids(b.Buildpacks)}
	if len(b.Extensions) > 0 {
		internal["extensions"] = ids(b.Extensions)
	}
	if b.Lifecycle != "" {
		internal["lifecycleVersion"] = b.Lifecycle
	}
	ext, err := structpb.NewStruct(external)
	if err != nil {
		return nil, err
	}
	in, err := structpb.NewStruct(internal)
	if err != nil {
		return nil, err
	}

	var deps []*attestation.ResourceDescriptor
	if !b.Source.empty() {
		deps = append(deps, &attestation.ResourceDescriptor{Name: depSource, Uri: b.Source.URI, Digest: b.Source.Digest})
	}
	for _, d := range []struct {
		name string
		img  Image
	}{{depBuilder, b.Builder}, {depRunImage, b.RunImage}} {
		if rd := imageDependency(d.name, d.img); rd != nil {
			deps = append(deps, rd)
		}
	}
	for _, bp := range b.Buildpacks {
		deps = append(deps, buildpackDependency("buildpack/", bp))
	}
	for _, e := range b.Extensions {
		deps = append(deps, buildpackDependency("extension/", e))
	}

	run := &slsa.RunDetails{Builder: &slsa.Builder{Id: b.BuilderID}}
	if b.Lifecycle != "" {
		run.Builder.Version = map[string]string{"lifecycle": b.Lifecycle}
	}
	if !b.StartedOn.IsZero() || !b.FinishedOn.IsZero() {
		run.Metadata = &slsa.BuildMetadata{}
		if !b.StartedOn.IsZero() {
			run.Metadata.StartedOn = timestamppb.New(b.StartedOn.UTC())
		}
		if !b.FinishedOn.IsZero() {
			run.Metadata.FinishedOn = timestamppb.New(b.FinishedOn.UTC())
		}
	}
	// Every SBOM is a byproduct, named by its path in the layers directory
	// and annotated with its scope and buildpack: the signed record of which
	// SBOM attestation is of what is in the image (launch) and which of what
	// only built it (build).
	for _, s := range b.SBOMs {
		sum := sha256.Sum256(s.Content)
		ann, err := structpb.NewStruct(map[string]any{"scope": s.Scope, "buildpack": s.Buildpack, "predicateType": s.PredicateType})
		if err != nil {
			return nil, err
		}
		run.Byproducts = append(run.Byproducts, &attestation.ResourceDescriptor{
			Name: s.Name, Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}, MediaType: s.MediaType, Annotations: ann,
		})
	}
	p := &slsa.Provenance{
		BuildDefinition: &slsa.BuildDefinition{BuildType: BuildType, ExternalParameters: ext, InternalParameters: in, ResolvedDependencies: deps},
		RunDetails:      run,
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	out, err := protojson.Marshal(p)
	if err != nil {
		return nil, err
	}
	if err := pipeline.CheckPredicate(intoto.PredicateSLSAProvenanceV1, out); err != nil {
		return nil, err
	}
	return out, nil
}

// imageDependency is oci://<repository> with the manifest digest, as the
// Tekton provenance names images; nil when nothing is known.
func imageDependency(depName string, img Image) *attestation.ResourceDescriptor {
	if d, err := name.NewDigest(img.Digest); err == nil {
		if h, err := v1.NewHash(d.DigestStr()); err == nil && h.Algorithm == "sha256" {
			return &attestation.ResourceDescriptor{Name: depName, Uri: "oci://" + d.Context().Name(), Digest: map[string]string{"sha256": h.Hex}}
		}
	}
	if ref, err := name.ParseReference(img.Reference); err == nil && img.Reference != "" {
		return &attestation.ResourceDescriptor{Name: depName, Uri: "oci://" + ref.Name()}
	}
	return nil
}

// buildpackDependency names a buildpack as pack does one of a builder's,
// urn:cnb:builder:<id>@<version>: in a lifecycle build every buildpack
// comes from the builder's /cnb/buildpacks.
func buildpackDependency(prefix string, bp Buildpack) *attestation.ResourceDescriptor {
	return &attestation.ResourceDescriptor{Name: prefix + bp.ID, Uri: "urn:cnb:builder:" + bp.ID + "@" + bp.Version}
}

func ids(bps []Buildpack) []any {
	out := make([]any, len(bps))
	for i, bp := range bps {
		out[i] = bp.ID + "@" + bp.Version
	}
	return out
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
