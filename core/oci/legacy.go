package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"

	"github.com/signet-dev/signet/core/bundle"
)

// The legacy cosign layout (sigstore/cosign pkg/oci/static, pkg/types):
// tag sha256-<hex>.sig holds simple-signing payload layers, tag
// sha256-<hex>.att holds DSSE envelope layers, and the signature material
// rides in layer annotations.
const (
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	DSSEMediaType          = "application/vnd.dsse.envelope.v1+json"

	AnnotationLegacySignature   = "dev.cosignproject.cosign/signature"
	AnnotationLegacyCertificate = "dev.sigstore.cosign/certificate"
	AnnotationLegacyChain       = "dev.sigstore.cosign/chain"
	AnnotationLegacyBundle      = "dev.sigstore.cosign/bundle"
	AnnotationLegacyTimestamp   = "dev.sigstore.cosign/rfc3161timestamp"
	AnnotationLegacyPredicate   = "predicateType"

	simpleSigningType = "cosign container image signature"
)

// LegacyLayer is one layer of a legacy .sig or .att tag.
type LegacyLayer struct {
	MediaType string
	// Payload is the simple-signing payload (.sig) or the DSSE envelope JSON (.att).
	Payload []byte
	// Signature is the base64 signature annotation (empty for .att).
	Signature string
	// Certificate and Chain are PEM; RekorBundle and RFC3161Timestamp are
	// cosign's JSON annotations, each empty when absent.
	Certificate, Chain, RekorBundle, RFC3161Timestamp string
}

// AttachLegacySignature writes a cosign legacy signature: the simple-signing
// payload as a layer of tag sha256-<hex>.sig, with the signature,
// certificate and log/timestamp material of the bundle as annotations. The
// bundle must be a message signature over exactly that payload.
func (c *Client) AttachLegacySignature(ctx context.Context, s *Subject, payload, bundleJSON []byte) (name.Tag, error) {
	b, err := bundle.Parse(bundleJSON)
	if err != nil {
		return name.Tag{}, fmt.Errorf("legacy signature: %w", err)
	}
	if err := checkSimpleSigning(payload, s.Descriptor.Digest.String()); err != nil {
		return name.Tag{}, err
	}
	ms := b.MessageSignature()
	if ms == nil {
		return name.Tag{}, errors.New("legacy signature: the bundle holds a DSSE envelope; a .sig layer needs a message signature over the simple-signing payload")
	}
	sum := sha256.Sum256(payload)
	if md := ms.GetMessageDigest(); md.GetAlgorithm() != protocommon.HashAlgorithm_SHA2_256 || !bytes.Equal(md.GetDigest(), sum[:]) {
		return name.Tag{}, errors.New("legacy signature: the bundle does not sign this simple-signing payload (message digest differs); sign the payload bytes themselves")
	}
	ann, err := legacyAnnotations(b)
	if err != nil {
		return name.Tag{}, err
	}
	ann[AnnotationLegacySignature] = base64.StdEncoding.EncodeToString(ms.GetSignature())
	if err := c.checkUnchanged(ctx, s); err != nil {
		return name.Tag{}, err
	}
	return c.appendLegacy(ctx, s, ".sig", payload, SimpleSigningMediaType, ann)
}

// AttachLegacyAttestation writes a cosign legacy attestation: the bundle's
// DSSE envelope as a layer of tag sha256-<hex>.att, annotated with its
// predicate type and the certificate and log/timestamp material.
func (c *Client) AttachLegacyAttestation(ctx context.Context, s *Subject, bundleJSON []byte) (name.Tag, error) {
	in, err := inspect(Attachment{Kind: KindAttestation, Bundle: bundleJSON}, s.Descriptor.Digest.String())
	if err != nil {
		return name.Tag{}, fmt.Errorf("legacy attestation: %w", err)
	}
	env := in.bundle.DSSEEnvelope()
	type sig struct {
		KeyID string `json:"keyid"`
		Sig   string `json:"sig"`
	}
	envJSON, err := json.Marshal(struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []sig  `json:"signatures"`
	}{env.GetPayloadType(), base64.StdEncoding.EncodeToString(env.GetPayload()), []sig{{env.GetSignatures()[0].GetKeyid(), base64.StdEncoding.EncodeToString(env.GetSignatures()[0].GetSig())}}})
	if err != nil {
		return name.Tag{}, err
	}
	ann, err := legacyAnnotations(in.bundle)
	if err != nil {
		return name.Tag{}, err
	}
	ann[AnnotationLegacySignature] = "" // cosign: the signature is inside the envelope
	ann[AnnotationLegacyPredicate] = in.predicateType
	if err := c.checkUnchanged(ctx, s); err != nil {
		return name.Tag{}, err
	}
	return c.appendLegacy(ctx, s, ".att", envJSON, DSSEMediaType, ann)
}

func checkSimpleSigning(payload []byte, digest string) error {
	var ss struct {
		Critical struct {
			Image struct {
				Digest string `json:"docker-manifest-digest"`
			} `json:"image"`
			Type string `json:"type"`
		} `json:"critical"`
	}
	if err := json.Unmarshal(payload, &ss); err != nil {
		return fmt.Errorf("legacy signature: payload is not simple-signing JSON: %v", err)
	}
	if ss.Critical.Type != simpleSigningType {
		return fmt.Errorf("legacy signature: payload critical.type is %q, want %q", ss.Critical.Type, simpleSigningType)
	}
	if ss.Critical.Image.Digest != digest {
		return fmt.Errorf("legacy signature: payload names image %q, not %s", ss.Critical.Image.Digest, digest)
	}
	return nil
}

// legacyAnnotations carries the bundle's certificate, log entry (when it has
// a signed entry timestamp, the only form cosign's legacy bundle annotation
// holds) and first RFC 3161 timestamp in cosign's annotation encodings.
func legacyAnnotations(b *bundle.Bundle) (map[string]string, error) {
	ann := map[string]string{}
	der := b.CertificateDER()
	if der == nil {
		return nil, errors.New("legacy layout: the bundle has no certificate; signet attaches keyless bundles only")
	}
	ann[AnnotationLegacyCertificate] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	if chain := b.Proto().GetVerificationMaterial().GetX509CertificateChain().GetCertificates(); len(chain) > 1 {
		var sb strings.Builder
		for _, c := range chain[1:] {
			sb.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.GetRawBytes()}))
		}
		ann[AnnotationLegacyChain] = sb.String()
	}
	for _, e := range b.TlogEntries() {
		set := e.GetInclusionPromise().GetSignedEntryTimestamp()
		if len(set) == 0 {
			continue
		}
		rb, err := json.Marshal(map[string]any{
			"SignedEntryTimestamp": set,
			"Payload": map[string]any{
				"body":           base64.StdEncoding.EncodeToString(e.GetCanonicalizedBody()),
				"integratedTime": e.GetIntegratedTime(),
				"logIndex":       e.GetLogIndex(),
				"logID":          hex.EncodeToString(e.GetLogId().GetKeyId()),
			},
		})
		if err != nil {
			return nil, err
		}
		ann[AnnotationLegacyBundle] = string(rb)
		break
	}
	if ts := b.RFC3161Timestamps(); len(ts) > 0 {
		tb, err := json.Marshal(map[string][]byte{"SignedRFC3161Timestamp": ts[0]})
		if err != nil {
			return nil, err
		}
		ann[AnnotationLegacyTimestamp] = string(tb)
	}
	return ann, nil
}

func legacyTag(s *Subject, suffix string) name.Tag {
	return s.Digest.Context().Tag(strings.Replace(s.Descriptor.Digest.String(), ":", "-", 1) + suffix)
}

// appendLegacy adds a layer to the legacy tag image (creating it if
// missing), as cosign does; an identical layer is not added twice.
func (c *Client) appendLegacy(ctx context.Context, s *Subject, suffix string, content []byte, mt types.MediaType, ann map[string]string) (name.Tag, error) {
	tag := legacyTag(s, suffix)
	repo := tag.Context()
	var base v1.Image = mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	existing, err := remote.Image(tag, c.remoteOptions(ctx)...)
	if err != nil {
		if _, missing := classify(err, tag.String(), repo, false).(*NotFoundError); !missing {
			return name.Tag{}, classify(err, tag.String(), repo, false)
		}
	} else {
		base = existing
	}
	layer := static.NewLayer(content, mt)
	ld, err := layer.Digest()
	if err != nil {
		return name.Tag{}, err
	}
	m, err := base.Manifest()
	if err != nil {
		return name.Tag{}, classify(err, tag.String(), repo, false)
	}
	for _, l := range m.Layers {
		if l.Digest == ld && equalMaps(l.Annotations, ann) {
			return tag, nil
		}
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, Annotations: ann, MediaType: mt})
	if err != nil {
		return name.Tag{}, err
	}
	if err := remote.Write(tag, img, c.remoteOptions(ctx)...); err != nil {
		return name.Tag{}, classify(err, tag.String(), repo, true)
	}
	return tag, nil
}

// listLegacy reads the legacy .sig and .att tags of the subject.
func (c *Client) listLegacy(ctx context.Context, s *Subject, budget *listBudget) ([]Attached, error) {
	var out []Attached
	for _, t := range []struct {
		suffix string
		src    Source
		kind   Kind
	}{{".sig", SourceLegacySig, KindSignature}, {".att", SourceLegacyAtt, KindAttestation}} {
		tag := legacyTag(s, t.suffix)
		repo := tag.Context()
		desc, err := remote.Get(tag, c.remoteOptions(ctx)...)
		if err != nil {
			err = classify(err, tag.String(), repo, false)
			if _, missing := err.(*NotFoundError); missing {
				continue
			}
			return nil, err
		}
		var m v1.Manifest
		if err := json.Unmarshal(desc.Manifest, &m); err != nil {
			return nil, fmt.Errorf("legacy tag %s is not an image manifest: %v", tag, err)
		}
		for _, l := range m.Layers {
			if err := budget.spend(l.Size); err != nil {
				return nil, err
			}
			b, err := c.readBlob(ctx, repo, l)
			if err != nil {
				return nil, err
			}
			a := Attached{
				Kind:        t.kind,
				Source:      t.src,
				Manifest:    repo.Digest(desc.Digest.String()),
				Annotations: l.Annotations,
				Legacy: &LegacyLayer{
					MediaType:        string(l.MediaType),
					Payload:          b,
					Signature:        l.Annotations[AnnotationLegacySignature],
					Certificate:      l.Annotations[AnnotationLegacyCertificate],
					Chain:            l.Annotations[AnnotationLegacyChain],
					RekorBundle:      l.Annotations[AnnotationLegacyBundle],
					RFC3161Timestamp: l.Annotations[AnnotationLegacyTimestamp],
				},
			}
			if t.kind == KindAttestation {
				a.Content = ContentDSSE
				a.PredicateType = l.Annotations[AnnotationLegacyPredicate]
			} else {
				a.Content = ContentMessageSignature
				a.PredicateType = CosignSignPredicateType
			}
			out = append(out, a)
		}
	}
	return out, nil
}
