package oci

import (
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	intoto "github.com/in-toto/attestation/go/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"

	"github.com/signet-dev/signet/core/bundle"
	sintoto "github.com/signet-dev/signet/core/intoto"
)

// Media types and annotations of the cosign v3 bundle layout
// (sigstore/cosign pkg/oci/remote WriteAttestationNewBundleFormat / WriteReferrer).
const (
	// BundleMediaType is the artifactType of the referrer manifest and the
	// media type of its single layer.
	BundleMediaType = bundle.MediaTypeV03
	// EmptyMediaType is the OCI empty descriptor's media type; its blob is "{}".
	EmptyMediaType = "application/vnd.oci.empty.v1+json"

	AnnotationContent       = "dev.sigstore.bundle.content"
	AnnotationPredicateType = "dev.sigstore.bundle.predicateType"
	AnnotationCreated       = "org.opencontainers.image.created"
	annotationTitle         = "org.opencontainers.image.title"

	// ContentMessageSignature and ContentDSSE are the values of AnnotationContent.
	ContentMessageSignature = "message-signature"
	ContentDSSE             = "dsse-envelope"

	// CosignSignPredicateType is the predicate type cosign v3 records for an
	// image signature (types.CosignSignPredicateType), both as the
	// annotation and as the in-toto predicate type of a DSSE signature.
	CosignSignPredicateType = "https://sigstore.dev/cosign/sign/v1"
)

// emptyJSON is the content of the OCI empty descriptor.
var emptyJSON = []byte("{}")

// Kind says what an attached bundle is.
type Kind int

const (
	// KindSignature is an image signature: a message signature over the
	// manifest digest, or (as cosign v3 signs) a DSSE in-toto statement of
	// predicate type CosignSignPredicateType.
	KindSignature Kind = iota + 1
	// KindAttestation is a DSSE in-toto attestation of some predicate type.
	KindAttestation
	// KindOther is a referrer that is not a Sigstore bundle (listing only).
	KindOther
)

func (k Kind) String() string {
	switch k {
	case KindSignature:
		return "signature"
	case KindAttestation:
		return "attestation"
	case KindOther:
		return "other"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Attachment is a bundle to attach to an image.
type Attachment struct {
	Kind Kind
	// Bundle is the Sigstore bundle v0.3 JSON.
	Bundle []byte
	// PredicateType, for an attestation, is the expected in-toto predicate
	// type; empty means take it from the statement. Ignored for signatures.
	PredicateType string
	// Created is recorded as org.opencontainers.image.created; zero means now.
	Created time.Time
	// Annotations are added to the referrer manifest's (unsigned: what a
	// listing may show before the bundle is verified); they cannot replace
	// the ones Attach derives from the bundle.
	Annotations map[string]string
	// Batch, if set, defers the referrers-tag update (registries without the
	// referrers API) to Batch.Flush.
	Batch *TagBatch
}

// inspected is what the manifest annotations say about a bundle, derived
// from the bundle itself so the annotations cannot disagree with it.
type inspected struct {
	content       string
	predicateType string
	bundle        *bundle.Bundle
}

// inspect checks that the bundle is a v0.3 bundle of the stated kind about
// the subject digest, and returns the annotation values. It checks structure
// and binding only; signatures are the verifier's business.
func inspect(a Attachment, subjectDigest string) (*inspected, error) {
	if a.Kind != KindSignature && a.Kind != KindAttestation {
		return nil, fmt.Errorf("attachment kind %v: attach a signature or an attestation", a.Kind)
	}
	b, err := bundle.Parse(a.Bundle)
	if err != nil {
		return nil, fmt.Errorf("attaching %v: %w", a.Kind, err)
	}
	if b.MediaType() != bundle.MediaTypeV03 {
		return nil, fmt.Errorf("attaching %v: bundle media type is %q; OCI referrers carry %s bundles, re-emit the bundle as v0.3", a.Kind, b.MediaType(), bundle.MediaTypeV03)
	}
	hexDigest, ok := sha256Hex(subjectDigest)
	if !ok {
		return nil, fmt.Errorf("subject digest %s is not sha256; only sha256 images can be signed", subjectDigest)
	}
	if ms := b.MessageSignature(); ms != nil {
		if a.Kind == KindAttestation {
			return nil, errors.New("attaching attestation: the bundle holds a message signature, not a DSSE envelope; attestations are in-toto statements in DSSE")
		}
		md := ms.GetMessageDigest()
		if md.GetAlgorithm() != protocommon.HashAlgorithm_SHA2_256 || hex.EncodeToString(md.GetDigest()) != hexDigest {
			return nil, fmt.Errorf("attaching signature: the bundle signs message digest %s:%x, not the image %s; sign the image's manifest digest", md.GetAlgorithm(), md.GetDigest(), subjectDigest)
		}
		return &inspected{content: ContentMessageSignature, predicateType: CosignSignPredicateType, bundle: b}, nil
	}
	env := b.DSSEEnvelope()
	if env.GetPayloadType() != sintoto.PayloadType {
		return nil, fmt.Errorf("attaching %v: DSSE payload type is %q, want %s", a.Kind, env.GetPayloadType(), sintoto.PayloadType)
	}
	st, err := sintoto.ParseStatementHeader(env.GetPayload())
	if err != nil {
		return nil, fmt.Errorf("attaching %v: DSSE payload: %v", a.Kind, err)
	}
	if !statementNames(st, hexDigest) {
		return nil, fmt.Errorf("attaching %v: the in-toto statement's subjects do not include the image %s; attest the image's manifest digest", a.Kind, subjectDigest)
	}
	pt := st.GetPredicateType()
	switch a.Kind {
	case KindSignature:
		if pt != CosignSignPredicateType {
			return nil, fmt.Errorf("attaching signature: the DSSE statement has predicate type %q; a signature has %s — attach it as an attestation instead", pt, CosignSignPredicateType)
		}
	case KindAttestation:
		if a.PredicateType != "" && a.PredicateType != pt {
			return nil, fmt.Errorf("attaching attestation: the statement's predicate type is %q, not the expected %q", pt, a.PredicateType)
		}
	}
	return &inspected{content: ContentDSSE, predicateType: pt, bundle: b}, nil
}

func statementNames(st *intoto.Statement, hexDigest string) bool {
	for _, s := range st.GetSubject() {
		if s.GetDigest()["sha256"] == hexDigest {
			return true
		}
	}
	return false
}

func sha256Hex(digest string) (string, bool) {
	const prefix = "sha256:"
	if len(digest) != len(prefix)+64 || digest[:len(prefix)] != prefix {
		return "", false
	}
	if _, err := hex.DecodeString(digest[len(prefix):]); err != nil {
		return "", false
	}
	return digest[len(prefix):], true
}

// kindOf classifies a bundle referrer read back from a registry by its
// annotations, as cosign does: the cosign sign predicate type is a signature.
func kindOf(annotations map[string]string) Kind {
	if annotations[AnnotationPredicateType] == CosignSignPredicateType || annotations[AnnotationContent] == ContentMessageSignature {
		return KindSignature
	}
	return KindAttestation
}
