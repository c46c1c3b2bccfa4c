// Package bundle reads and writes Sigstore bundles (protobuf-specs
// dev.sigstore.bundle.v1.Bundle in its protojson form). Reading accepts the
// v0.1, v0.2 and v0.3 media types; writing always produces v0.3.
package bundle

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Media types of the bundle versions this package understands.
const (
	MediaTypeV01    = "application/vnd.dev.sigstore.bundle+json;version=0.1"
	MediaTypeV02    = "application/vnd.dev.sigstore.bundle+json;version=0.2"
	MediaTypeV03    = "application/vnd.dev.sigstore.bundle.v0.3+json"
	mediaTypeV03Alt = "application/vnd.dev.sigstore.bundle+json;version=0.3"
)

// Limits that keep a hostile bundle from making verification expensive.
const (
	maxTlogEntries = 32
	maxTimestamps  = 32
)

// Bundle is a parsed, structurally valid Sigstore bundle.
type Bundle struct {
	pb      *protobundle.Bundle
	version string
}

// Parse decodes a bundle from its JSON form and checks its structure.
func Parse(data []byte) (*Bundle, error) {
	var pb protobundle.Bundle
	if err := protojson.Unmarshal(data, &pb); err != nil {
		return nil, fmt.Errorf("bundle: not a Sigstore bundle JSON document: %v", err)
	}
	return FromProto(&pb)
}

// ReadFile reads and parses the bundle at path.
func ReadFile(path string) (*Bundle, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	b, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// FromProto wraps an existing protobuf bundle after checking its structure.
// The bundle keeps a reference to pb; do not modify it afterwards.
func FromProto(pb *protobundle.Bundle) (*Bundle, error) {
	if pb == nil {
		return nil, errors.New("bundle: nil bundle")
	}
	version, err := versionOf(pb.GetMediaType())
	if err != nil {
		return nil, err
	}
	if err := validate(pb, version); err != nil {
		return nil, fmt.Errorf("bundle (media type %s): %w", pb.GetMediaType(), err)
	}
	return &Bundle{pb: pb, version: version}, nil
}

func versionOf(mediaType string) (string, error) {
	switch mediaType {
	case MediaTypeV01:
		return "0.1", nil
	case MediaTypeV02:
		return "0.2", nil
	case MediaTypeV03, mediaTypeV03Alt:
		return "0.3", nil
	case "":
		return "", errors.New("bundle: mediaType is missing; expected " + MediaTypeV03)
	}
	return "", fmt.Errorf("bundle: unsupported mediaType %q; supported are %s, %s and %s", mediaType, MediaTypeV01, MediaTypeV02, MediaTypeV03)
}

func validate(pb *protobundle.Bundle, version string) error {
	vm := pb.GetVerificationMaterial()
	if vm == nil {
		return errors.New("verificationMaterial is missing")
	}
	switch c := vm.GetContent().(type) {
	case *protobundle.VerificationMaterial_Certificate:
		if len(c.Certificate.GetRawBytes()) == 0 {
			return errors.New("verificationMaterial.certificate.rawBytes is empty")
		}
	case *protobundle.VerificationMaterial_X509CertificateChain:
		if version == "0.3" {
			return errors.New("verificationMaterial.x509CertificateChain is not allowed in v0.3; use verificationMaterial.certificate (the leaf only)")
		}
		certs := c.X509CertificateChain.GetCertificates()
		if len(certs) == 0 || len(certs[0].GetRawBytes()) == 0 {
			return errors.New("verificationMaterial.x509CertificateChain has no leaf certificate")
		}
	case *protobundle.VerificationMaterial_PublicKey:
		// Key-based bundles parse, but signet's verifier is keyless-only and
		// rejects them with its own error.
	default:
		return errors.New("verificationMaterial has no certificate or public key")
	}

	entries := vm.GetTlogEntries()
	if len(entries) > maxTlogEntries {
		return fmt.Errorf("%d tlogEntries exceed the limit of %d", len(entries), maxTlogEntries)
	}
	for i, e := range entries {
		if e.GetLogId() == nil || len(e.GetLogId().GetKeyId()) == 0 {
			return fmt.Errorf("tlogEntries[%d].logId is missing", i)
		}
		if e.GetKindVersion() == nil {
			return fmt.Errorf("tlogEntries[%d].kindVersion is missing", i)
		}
		if len(e.GetCanonicalizedBody()) == 0 {
			return fmt.Errorf("tlogEntries[%d].canonicalizedBody is missing", i)
		}
		if version == "0.1" && e.GetInclusionPromise() == nil {
			return fmt.Errorf("tlogEntries[%d].inclusionPromise is missing (required in v0.1 bundles)", i)
		}
		if version != "0.1" && e.GetInclusionProof() == nil {
			return fmt.Errorf("tlogEntries[%d].inclusionProof is missing (required since v0.2)", i)
		}
		if p := e.GetInclusionProof(); p != nil && p.GetCheckpoint() == nil {
			return fmt.Errorf("tlogEntries[%d].inclusionProof.checkpoint is missing", i)
		}
	}
	if n := len(vm.GetTimestampVerificationData().GetRfc3161Timestamps()); n > maxTimestamps {
		return fmt.Errorf("%d rfc3161Timestamps exceed the limit of %d", n, maxTimestamps)
	}

	switch c := pb.GetContent().(type) {
	case *protobundle.Bundle_MessageSignature:
		if len(c.MessageSignature.GetSignature()) == 0 {
			return errors.New("messageSignature.signature is empty")
		}
	case *protobundle.Bundle_DsseEnvelope:
		env := c.DsseEnvelope
		if len(env.GetSignatures()) != 1 {
			return fmt.Errorf("dsseEnvelope has %d signatures; Sigstore bundles carry exactly one", len(env.GetSignatures()))
		}
		if len(env.GetSignatures()[0].GetSig()) == 0 {
			return errors.New("dsseEnvelope.signatures[0].sig is empty")
		}
		if env.GetPayloadType() == "" {
			return errors.New("dsseEnvelope.payloadType is empty")
		}
	default:
		return errors.New("bundle has neither messageSignature nor dsseEnvelope")
	}
	return nil
}

// Marshal encodes the bundle as protojson with the v0.3 media type. Bundles
// read as v0.1/v0.2 are upgraded: a certificate chain is reduced to its leaf,
// as v0.3 requires.
func (b *Bundle) Marshal() ([]byte, error) {
	out := proto.Clone(b.pb).(*protobundle.Bundle)
	out.MediaType = MediaTypeV03
	if chain := out.GetVerificationMaterial().GetX509CertificateChain(); chain != nil {
		out.VerificationMaterial.Content = &protobundle.VerificationMaterial_Certificate{
			Certificate: chain.GetCertificates()[0],
		}
	}
	if err := validate(out, "0.3"); err != nil {
		// A v0.1 bundle without inclusion proofs cannot be expressed as v0.3.
		return nil, fmt.Errorf("bundle: cannot write as v0.3: %w", err)
	}
	return protojson.Marshal(out)
}

// Proto returns the underlying protobuf message. Treat it as read-only.
func (b *Bundle) Proto() *protobundle.Bundle { return b.pb }

// MediaType returns the media type the bundle was read with.
func (b *Bundle) MediaType() string { return b.pb.GetMediaType() }

// Version returns the bundle format version: "0.1", "0.2" or "0.3".
func (b *Bundle) Version() string { return b.version }

// CertificateDER returns the DER bytes of the signing (leaf) certificate, or
// nil for a public-key bundle.
func (b *Bundle) CertificateDER() []byte {
	vm := b.pb.GetVerificationMaterial()
	if c := vm.GetCertificate(); c != nil {
		return c.GetRawBytes()
	}
	if chain := vm.GetX509CertificateChain(); chain != nil {
		return chain.GetCertificates()[0].GetRawBytes()
	}
	return nil
}

// Certificate parses the signing (leaf) certificate.
// ErrPublicKeyBundle is Certificate's error for a bundle signed with a
// self-managed key.
var ErrPublicKeyBundle = errors.New("bundle: verificationMaterial holds a public key, not a certificate; verify it with the signer's public key")

func (b *Bundle) Certificate() (*x509.Certificate, error) {
	der := b.CertificateDER()
	if der == nil {
		return nil, ErrPublicKeyBundle
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("bundle: signing certificate does not parse: %v", err)
	}
	return cert, nil
}

// MessageSignature returns the message signature, or nil for a DSSE bundle.
func (b *Bundle) MessageSignature() *protocommon.MessageSignature {
	return b.pb.GetMessageSignature()
}

// DSSEEnvelope returns the DSSE envelope, or nil for a message-signature bundle.
func (b *Bundle) DSSEEnvelope() *protodsse.Envelope { return b.pb.GetDsseEnvelope() }

// Signature returns the raw signature bytes: the message signature or the
// single DSSE signature. Timestamps and log entries commit to these bytes.
func (b *Bundle) Signature() []byte {
	if ms := b.pb.GetMessageSignature(); ms != nil {
		return ms.GetSignature()
	}
	return b.pb.GetDsseEnvelope().GetSignatures()[0].GetSig()
}

// TlogEntries returns the transparency log entries.
func (b *Bundle) TlogEntries() []*protorekor.TransparencyLogEntry {
	return b.pb.GetVerificationMaterial().GetTlogEntries()
}

// RFC3161Timestamps returns the DER-encoded signed timestamps.
func (b *Bundle) RFC3161Timestamps() [][]byte {
	ts := b.pb.GetVerificationMaterial().GetTimestampVerificationData().GetRfc3161Timestamps()
	out := make([][]byte, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.GetSignedTimestamp())
	}
	return out
}
