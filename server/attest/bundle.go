package attest

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"

	"github.com/signet-dev/signet/core/bundle"
)

// bundle assembles the record as the Sigstore bundle v0.3 the signer's
// client builds (core/sign): the envelope, the certificate (or, for a key,
// the hint naming it), the log entry and the server's timestamp. It is
// checked by core/bundle, so what is served is a bundle verifiers read.
func (r *Record) bundle() ([]byte, error) {
	if len(r.SignedTimestamp) == 0 {
		return nil, errors.New("the record has no timestamp")
	}
	vm := &protobundle.VerificationMaterial{
		TlogEntries: []*rekorv1.TransparencyLogEntry{r.Entry},
		TimestampVerificationData: &protobundle.TimestampVerificationData{
			Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: r.SignedTimestamp}},
		},
	}
	switch {
	case r.Verifier.GetX509Certificate() != nil:
		vm.Content = &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: r.Verifier.GetX509Certificate().GetRawBytes()}}
	case r.Verifier.GetPublicKey() != nil:
		// The hint signet and cosign write: base64 SHA-256 of the DER key.
		sum := sha256.Sum256(r.Verifier.GetPublicKey().GetRawBytes())
		vm.Content = &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: base64.StdEncoding.EncodeToString(sum[:])}}
	default:
		return nil, errors.New("the record's verifier has neither a certificate nor a public key")
	}
	b, err := bundle.FromProto(&protobundle.Bundle{
		MediaType:            bundle.MediaTypeV03,
		VerificationMaterial: vm,
		Content:              &protobundle.Bundle_DsseEnvelope{DsseEnvelope: r.Envelope},
	})
	if err != nil {
		return nil, err
	}
	return b.Marshal()
}
