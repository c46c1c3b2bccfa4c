package buildpack

import (
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/pipeline"
	"github.com/signet-dev/signet/core/sign"
)

// Attestations are the build's attestations: one per SBOM, under its
// format's predicate type, then the provenance.
func (b *Build) Attestations() ([]pipeline.Attestation, error) {
	var atts []pipeline.Attestation
	for _, s := range b.SBOMs {
		atts = append(atts, pipeline.Attestation{Type: s.PredicateType, Predicate: s.Content, Kind: intoto.KindSBOM})
	}
	prov, err := b.Provenance()
	if err != nil {
		return nil, err
	}
	return append(atts, pipeline.Attestation{Type: intoto.PredicateSLSAProvenanceV1, Predicate: prov}), nil
}

// Plan is what to make, for dests. For an image manifest it is one plan:
// its signature and every attestation. For an index it is two, since one
// plan attests to all its subjects alike: the signatures of the index and
// of every platform manifest, then the attestations about the index (what
// the tag names) and the platform manifest this build exported (what the
// SBOMs describe) — not about other platforms, which other builds made.
// cmd should expand every plan (pipeline.Items) and check every
// destination before running the first, so that nothing is signed if any
// would be refused.
func (b *Build) Plan(dests []pipeline.Destination) ([]pipeline.Plan, error) {
	atts, err := b.Attestations()
	if err != nil {
		return nil, err
	}
	img, err := pipeline.ImageSubject(b.Image)
	if err != nil {
		return nil, err
	}
	var plans []pipeline.Plan
	if !b.Image.IsIndex() {
		plans = []pipeline.Plan{{Subjects: []pipeline.Subject{img}, Sign: true, Attestations: atts, PerSubject: true, Destinations: dests}}
	} else {
		signed := []pipeline.Subject{img}
		for _, p := range b.Platforms {
			s, err := pipeline.ImageSubject(p)
			if err != nil {
				return nil, err
			}
			signed = append(signed, s)
		}
		exported, err := pipeline.ImageSubject(b.Exported)
		if err != nil {
			return nil, err
		}
		plans = []pipeline.Plan{
			{Subjects: signed, Sign: true, PerSubject: true, Destinations: dests},
			{Subjects: []pipeline.Subject{img, exported}, Attestations: atts, PerSubject: true, Destinations: dests},
		}
	}
	// Every statement is built and checked now, before anything is signed.
	for _, p := range plans {
		if _, err := pipeline.Items(sign.Options{}, p); err != nil {
			return nil, err
		}
	}
	return plans, nil
}
