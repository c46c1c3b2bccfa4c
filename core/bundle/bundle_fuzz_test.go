package bundle_test

import (
	"bytes"
	"testing"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/signet-dev/signet/core/bundle"
)

// FuzzParse holds bundle.Parse to: a document either parses or is refused
// with an error; whatever parses re-marshals (as protojson, and as v0.3 by
// Marshal) to a document that parses again to the same proto, and its
// accessors are total. Seeds (testdata/fuzz/FuzzParse) are the interop
// bundles of cosign, sigstore-go and sigstore-js, sigstore-go's and cosign's
// test bundles (v0.1 to v0.3, public key, chain, DSSE) and edge cases. For a
// longer run:
//
//	go test ./core/bundle -run '^$' -fuzz '^FuzzParse$' -fuzztime 10m
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"certificate":{"rawBytes":"AA=="}},"messageSignature":{"signature":"AA=="}}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle+json;version=0.1","verificationMaterial":{"x509CertificateChain":{"certificates":[{"rawBytes":"AA=="},{"rawBytes":"AQ=="}]},"tlogEntries":[{"logId":{"keyId":"AA=="},"kindVersion":{},"canonicalizedBody":"AA==","inclusionPromise":{}}]},"dsseEnvelope":{"payloadType":"t","signatures":[{"sig":"AA=="}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := bundle.Parse(data)
		if (b == nil) == (err == nil) {
			t.Fatalf("Parse returned bundle %v and error %v", b != nil, err)
		}
		if err != nil {
			return
		}
		checkAccessors(t, b)

		// The proto as read encodes and parses back to itself.
		j, err := protojson.Marshal(b.Proto())
		if err != nil {
			t.Fatalf("a parsed bundle does not encode: %v", err)
		}
		b2, err := bundle.Parse(j)
		if err != nil {
			t.Fatalf("the re-encoded bundle is refused: %v\n%s", err, j)
		}
		if !proto.Equal(b.Proto(), b2.Proto()) || b.Version() != b2.Version() {
			t.Fatalf("the re-encoded bundle parses to another proto:\n%s\n%s", data, j)
		}

		// Marshal writes v0.3: it refuses only a v0.1 bundle that has no
		// inclusion proofs, and otherwise writes the same bundle with the
		// leaf of a certificate chain.
		out, err := b.Marshal()
		if err != nil {
			if b.Version() != "0.1" {
				t.Fatalf("a v%s bundle cannot be written as v0.3: %v", b.Version(), err)
			}
			return
		}
		b3, err := bundle.Parse(out)
		if err != nil {
			t.Fatalf("Marshal wrote a bundle Parse refuses: %v\n%s", err, out)
		}
		want := proto.Clone(b.Proto()).(*protobundle.Bundle)
		want.MediaType = bundle.MediaTypeV03
		if chain := want.GetVerificationMaterial().GetX509CertificateChain(); chain != nil {
			want.VerificationMaterial.Content = &protobundle.VerificationMaterial_Certificate{Certificate: chain.GetCertificates()[0]}
		}
		if b3.Version() != "0.3" || !proto.Equal(b3.Proto(), want) {
			t.Fatalf("Marshal wrote another bundle:\n%s\n%s", data, out)
		}
		if !bytes.Equal(b3.CertificateDER(), b.CertificateDER()) || !bytes.Equal(b3.Signature(), b.Signature()) {
			t.Fatal("Marshal changed the certificate or the signature")
		}
		if again, err := b3.Marshal(); err != nil || !bytes.Equal(again, out) {
			t.Fatalf("Marshal is not idempotent (%v)", err)
		}
	})
}

// checkAccessors calls every accessor of a parsed bundle; none may panic,
// and what they report agrees with the structure Parse promised.
func checkAccessors(t *testing.T, b *bundle.Bundle) {
	t.Helper()
	switch b.Version() {
	case "0.1", "0.2", "0.3":
	default:
		t.Fatalf("version %q", b.Version())
	}
	if (b.MessageSignature() == nil) == (b.DSSEEnvelope() == nil) {
		t.Fatal("a bundle must hold exactly one of a message signature and a DSSE envelope")
	}
	if len(b.Signature()) == 0 {
		t.Fatal("a parsed bundle has an empty signature")
	}
	der := b.CertificateDER()
	if b.Proto().GetVerificationMaterial().GetPublicKey() == nil && len(der) == 0 {
		t.Fatal("a certificate bundle has no certificate bytes")
	}
	_, _ = b.Certificate()
	if len(b.TlogEntries()) > 32 || len(b.RFC3161Timestamps()) > 32 {
		t.Fatalf("%d log entries and %d timestamps passed the limit of 32", len(b.TlogEntries()), len(b.RFC3161Timestamps()))
	}
	if _, err := bundle.FromProto(b.Proto()); err != nil {
		t.Fatalf("FromProto refuses the proto Parse accepted: %v", err)
	}
}
