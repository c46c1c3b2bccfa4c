package buildpack

import (
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/pipeline"
	"github.com/signet-dev/signet/core/sign"
)

// Annotations on each SBOM attestation's referrer (unsigned; the signed
// record of the same is the provenance's byproducts): whether the SBOM
// describes the image (launch) or the build, which buildpack wrote it, and
// its path under the layers directory.
const (
	AnnotationSBOMScope     = "dev.signet.buildpack.sbom.scope"
	AnnotationSBOMBuildpack = "dev.signet.buildpack.sbom.buildpack"
	AnnotationSBOMPath      = "dev.signet.buildpack.sbom.path"
)

// Attestations are the build's attestations: one per SBOM, under its
// format's predicate type, then the provenance.
func (b *Build) Attestations() ([]pipeline.Attestation, error) {
	var atts []pipeline.Attestation
	for _, s := range b.SBOMs {
		atts = append(atts, pipeline.Attestation{Type: s.PredicateType, Predicate: s.Content, Kind: intoto.KindSBOM, Annotations: map[string]string{
			AnnotationSBOMScope: s.Scope, AnnotationSBOMBuildpack: s.Buildpack, AnnotationSBOMPath: s.Name,
		}})
	}
	prov, err := b.Provenance()
	if err != nil {
		return nil, err
	}
	return append(atts, pipeline.Attestation{Type: intoto.PredicateSLSAProvenanceV1, Predicate: prov}), nil
}

// Plan is what to make, for dests: the signature of the image and, for an
// index, of every platform manifest; then every attestation about the image
// (what the tag names) and, for an index, the platform manifest this build
// exported (what the SBOMs describe), not the other platforms, which other
// builds made. Every statement is built and checked before anything is
// signed.
func (b *Build) Plan(dests []pipeline.Destination) (pipeline.Plan, error) {
	atts, err := b.Attestations()
	if err != nil {
		return pipeline.Plan{}, err
	}
	img, err := pipeline.ImageSubject(b.Image)
	if err != nil {
		return pipeline.Plan{}, err
	}
	p := pipeline.Plan{Subjects: []pipeline.Subject{img}, Sign: true, Attestations: atts, PerSubject: true, Destinations: dests}
	if b.Image.IsIndex() {
		for _, ps := range b.Platforms {
			s, err := pipeline.ImageSubject(ps)
			if err != nil {
				return pipeline.Plan{}, err
			}
			p.Subjects = append(p.Subjects, s)
		}
		exported, err := pipeline.ImageSubject(b.Exported)
		if err != nil {
			return pipeline.Plan{}, err
		}
		p.AttestSubjects = []pipeline.Subject{img, exported}
	}
	if _, err := pipeline.Items(sign.Options{}, p); err != nil {
		return pipeline.Plan{}, err
	}
	return p, nil
}
