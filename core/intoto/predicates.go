package intoto

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
)

// Predicate type URIs signet knows by name.
const (
	PredicateSLSAProvenanceV1  = "https://slsa.dev/provenance/v1"
	PredicateSLSAProvenanceV02 = "https://slsa.dev/provenance/v0.2"
	PredicateSPDX              = "https://spdx.dev/Document"
	PredicateCycloneDX         = "https://cyclonedx.org/bom"
	PredicateLinkV1            = "https://in-toto.io/Link/v1"
	PredicateOpenVEX           = "https://openvex.dev/ns"
	// cosign's own predicate types, for --type custom and --type vuln.
	PredicateCosignCustom = "https://cosign.sigstore.dev/attestation/v1"
	PredicateCosignVuln   = "https://cosign.sigstore.dev/attestation/vuln/v1"
	// PredicateCosignSign is what cosign v3 signs for an image: a statement
	// with an empty predicate naming the manifest digest.
	PredicateCosignSign = "https://sigstore.dev/cosign/sign/v1"
)

// Kind is what an attestation is, for reports and default file names.
type Kind string

// The kinds of bundle signet makes.
const (
	KindSignature   Kind = "signature"
	KindProvenance  Kind = "provenance"
	KindSBOM        Kind = "sbom"
	KindAttestation Kind = "attestation"
)

// predicateName is one row of the naming table: the --type names cosign
// accepts (so its command lines mean the same here), and the tag signet
// puts in default bundle file names.
type predicateName struct {
	names []string // first is the canonical short name
	uri   string
	kind  Kind
}

// predicateNames is the one table of predicate type names; cosign's
// PredicateTypeMap is the reference for the names and URIs.
var predicateNames = []predicateName{
	{[]string{"slsaprovenance1"}, PredicateSLSAProvenanceV1, KindProvenance},
	{[]string{"slsaprovenance02", "slsaprovenance"}, PredicateSLSAProvenanceV02, KindProvenance},
	{[]string{"spdxjson", "spdx"}, PredicateSPDX, KindSBOM},
	{[]string{"cyclonedx"}, PredicateCycloneDX, KindSBOM},
	{[]string{"link"}, PredicateLinkV1, KindAttestation},
	{[]string{"openvex"}, PredicateOpenVEX, KindAttestation},
	{[]string{"vuln"}, PredicateCosignVuln, KindAttestation},
	{[]string{"custom"}, PredicateCosignCustom, KindAttestation},
	{[]string{"sig"}, PredicateCosignSign, KindSignature},
}

// TypeNamesHelp lists the short names for --help texts.
const TypeNamesHelp = `  slsaprovenance1   https://slsa.dev/provenance/v1 (checked to be SLSA v1)
  slsaprovenance02  https://slsa.dev/provenance/v0.2 (also: slsaprovenance)
  spdxjson          https://spdx.dev/Document (checked to be SPDX 2.x JSON; also: spdx)
  cyclonedx         https://cyclonedx.org/bom (checked to be CycloneDX JSON)
  link              https://in-toto.io/Link/v1
  openvex           https://openvex.dev/ns
  vuln              https://cosign.sigstore.dev/attestation/vuln/v1
  custom            https://cosign.sigstore.dev/attestation/v1
  <URI>             anything else; the predicate must be a JSON object`

func lookupName(name string) (predicateName, bool) {
	name = strings.ToLower(name)
	for _, p := range predicateNames {
		for _, n := range p.names {
			if n == name {
				return p, true
			}
		}
	}
	return predicateName{}, false
}

func lookupURI(uri string) (predicateName, bool) {
	for _, p := range predicateNames {
		if p.uri == uri {
			return p, true
		}
	}
	return predicateName{}, false
}

// PredicateType resolves a short name (cosign's --type names: slsaprovenance1,
// spdxjson, cyclonedx, custom, …) or an absolute URI to a predicate type URI.
func PredicateType(nameOrURI string) (string, error) {
	if p, ok := lookupName(nameOrURI); ok && p.kind != KindSignature {
		return p.uri, nil
	}
	u, err := url.Parse(nameOrURI)
	if err != nil || u.Scheme == "" || (u.Host == "" && u.Opaque == "") {
		return "", &UnknownPredicateTypeError{Name: nameOrURI}
	}
	return nameOrURI, nil
}

// UnknownPredicateTypeError is a predicate type that is neither a known
// short name nor an absolute URI.
type UnknownPredicateTypeError struct{ Name string }

func (e *UnknownPredicateTypeError) Error() string {
	return fmt.Sprintf("predicate type %q is neither a known name (slsaprovenance1, slsaprovenance02, spdxjson, cyclonedx, link, openvex, vuln, custom) nor an absolute URI such as https://example.com/my-predicate/v1", e.Name)
}

// ShortName is the canonical short name of a predicate type URI, or the URI
// itself when it has none.
func ShortName(uri string) string {
	if p, ok := lookupURI(uri); ok {
		return p.names[0]
	}
	return uri
}

// KindOf says what a predicate type is.
func KindOf(uri string) Kind {
	if p, ok := lookupURI(uri); ok {
		return p.kind
	}
	return KindAttestation
}

// FileTag names a predicate type in a default bundle file name
// (<file>.<tag>.sigstore.json): the short name for a known type, else
// "att-" and 12 hex digits of the URI's SHA-256, so attestations of two
// custom types never share a file and the tag is found again from the URI.
func FileTag(uri string) string {
	if p, ok := lookupURI(uri); ok {
		return p.names[0]
	}
	sum := sha256.Sum256([]byte(uri))
	return "att-" + hex.EncodeToString(sum[:6])
}
