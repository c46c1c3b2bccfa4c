package bundle_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"google.golang.org/protobuf/proto"

	"github.com/signet-dev/signet/core/bundle"
)

func interopDir(t *testing.T) string {
	t.Helper()
	p := filepath.Join("..", "..", "..", "shared", "interop")
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("interop vectors missing at %s (%v); CI must provide ../shared/interop next to the module root", p, err)
		}
		t.Skipf("interop vectors not found at %s", p)
	}
	return p
}

var interopFiles = []string{
	"cosign3-email.sigstore.json",
	"sigstore-go-email.sigstore.json",
	"sigstore-js-email.sigstore.json",
	"cosign3-github.sigstore.json",
	"cosign3-github-provenance.sigstore.json",
}

func TestRoundTrip(t *testing.T) {
	dir := interopDir(t)
	for _, name := range interopFiles {
		t.Run(name, func(t *testing.T) {
			b1, err := bundle.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			out, err := b1.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			b2, err := bundle.Parse(out)
			if err != nil {
				t.Fatalf("re-reading written bundle: %v", err)
			}
			if b2.MediaType() != bundle.MediaTypeV03 || b2.Version() != "0.3" {
				t.Fatalf("written media type %q", b2.MediaType())
			}
			if b1.Version() == "0.3" {
				if !proto.Equal(b1.Proto(), b2.Proto()) {
					t.Fatal("read → write → read changed the bundle")
				}
			} else {
				// Upgraded from v0.1/v0.2: same content, leaf certificate only.
				if !bytes.Equal(b1.CertificateDER(), b2.CertificateDER()) || !bytes.Equal(b1.Signature(), b2.Signature()) ||
					!proto.Equal(b1.Proto().GetVerificationMaterial().GetTimestampVerificationData(), b2.Proto().GetVerificationMaterial().GetTimestampVerificationData()) ||
					len(b2.TlogEntries()) != len(b1.TlogEntries()) || !proto.Equal(b1.TlogEntries()[0], b2.TlogEntries()[0]) {
					t.Fatal("upgrading to v0.3 lost content")
				}
				if b2.Proto().GetVerificationMaterial().GetCertificate() == nil {
					t.Fatal("v0.3 output does not use verificationMaterial.certificate")
				}
			}
			// Writing is deterministic: a second write gives the same bytes.
			out2, err := b2.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, out2) {
				t.Fatal("write → read → write is not stable")
			}
		})
	}
}

func TestReadsOlderMediaTypes(t *testing.T) {
	dir := interopDir(t)
	b, err := bundle.ReadFile(filepath.Join(dir, "sigstore-js-email.sigstore.json"))
	if err != nil {
		t.Fatal(err)
	}
	if b.Version() != "0.2" || b.MediaType() != bundle.MediaTypeV02 {
		t.Fatalf("version %q media type %q", b.Version(), b.MediaType())
	}
	if _, err := b.Certificate(); err != nil {
		t.Fatal(err)
	}
}

func TestAccessors(t *testing.T) {
	dir := interopDir(t)
	msg, err := bundle.ReadFile(filepath.Join(dir, "cosign3-email.sigstore.json"))
	if err != nil {
		t.Fatal(err)
	}
	if msg.MessageSignature() == nil || msg.DSSEEnvelope() != nil || !bytes.Equal(msg.Signature(), msg.MessageSignature().GetSignature()) {
		t.Fatal("message signature accessors")
	}
	if len(msg.RFC3161Timestamps()) != 1 || len(msg.TlogEntries()) != 1 {
		t.Fatal("verification material accessors")
	}
	env, err := bundle.ReadFile(filepath.Join(dir, "cosign3-github-provenance.sigstore.json"))
	if err != nil {
		t.Fatal(err)
	}
	if env.DSSEEnvelope() == nil || !bytes.Equal(env.Signature(), env.DSSEEnvelope().GetSignatures()[0].GetSig()) {
		t.Fatal("DSSE accessors")
	}
}

func TestRejectsMalformed(t *testing.T) {
	dir := interopDir(t)
	good, err := bundle.ReadFile(filepath.Join(dir, "cosign3-email.sigstore.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(pb *protobundle.Bundle)
		want   string
	}{
		{"unknown media type", func(pb *protobundle.Bundle) { pb.MediaType = "application/json" }, "unsupported mediaType"},
		{"missing media type", func(pb *protobundle.Bundle) { pb.MediaType = "" }, "mediaType is missing"},
		{"no verification material", func(pb *protobundle.Bundle) { pb.VerificationMaterial = nil }, "verificationMaterial is missing"},
		{"no content", func(pb *protobundle.Bundle) { pb.Content = nil }, "neither messageSignature nor dsseEnvelope"},
		{"empty signature", func(pb *protobundle.Bundle) { pb.GetMessageSignature().Signature = nil }, "signature is empty"},
		{"no inclusion proof in v0.3", func(pb *protobundle.Bundle) { pb.VerificationMaterial.TlogEntries[0].InclusionProof = nil }, "inclusionProof is missing"},
		{"no checkpoint", func(pb *protobundle.Bundle) { pb.VerificationMaterial.TlogEntries[0].InclusionProof.Checkpoint = nil }, "checkpoint is missing"},
		{"no log ID", func(pb *protobundle.Bundle) { pb.VerificationMaterial.TlogEntries[0].LogId = nil }, "logId is missing"},
		{"no body", func(pb *protobundle.Bundle) { pb.VerificationMaterial.TlogEntries[0].CanonicalizedBody = nil }, "canonicalizedBody is missing"},
		{"chain in v0.3", func(pb *protobundle.Bundle) {
			vm := pb.VerificationMaterial
			vm.Content = &protobundle.VerificationMaterial_X509CertificateChain{X509CertificateChain: nil}
		}, "x509CertificateChain is not allowed in v0.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pb := proto.Clone(good.Proto()).(*protobundle.Bundle)
			tc.mutate(pb)
			_, err := bundle.FromProto(pb)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if _, err := bundle.Parse([]byte(`{"mediaType": 5}`)); err == nil || !strings.Contains(err.Error(), "not a Sigstore bundle") {
		t.Fatalf("non-bundle JSON: %v", err)
	}
	if _, err := bundle.ReadFile(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("missing file read without error")
	}
}
