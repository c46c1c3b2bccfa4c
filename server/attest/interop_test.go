package attest

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	commonpb "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	prototrustroot "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

const (
	cosignIdentity = "https://github.com/acme/widget/.github/workflows/release.yml@refs/heads/main"
	cosignIssuer   = "http://127.0.0.1:8089"
)

func cosignBundle(t *testing.T) *protobundle.Bundle {
	t.Helper()
	var b protobundle.Bundle
	if err := protojson.Unmarshal(readInterop(t, "cosign3-github-provenance.sigstore.json"), &b); err != nil {
		t.Fatal(err)
	}
	return &b
}

// fulcioRoots returns the CA chain of the interop trusted root.
func fulcioRoots(t *testing.T) *x509.CertPool {
	t.Helper()
	var tr prototrustroot.TrustedRoot
	if err := protojson.Unmarshal(readInterop(t, "trusted_root.json"), &tr); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, ca := range tr.GetCertificateAuthorities() {
		for _, c := range ca.GetCertChain().GetCertificates() {
			cert, err := x509.ParseCertificate(c.GetRawBytes())
			if err != nil {
				t.Fatal(err)
			}
			pool.AddCert(cert)
		}
	}
	return pool
}

// The hashedrekord the store logs for an envelope must be the one cosign v3
// logged for it, or standard verifiers would not accept the entry.
func TestHashedRekordMatchesCosign(t *testing.T) {
	b := cosignBundle(t)
	ver := &rekorv2.Verifier{
		Verifier:   &rekorv2.Verifier_X509Certificate{X509Certificate: b.GetVerificationMaterial().GetCertificate()},
		KeyDetails: commonpb.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
	}
	sub, err := validator{roots: fulcioRoots(t)}.validate(b.GetDsseEnvelope(), ver)
	if err != nil {
		t.Fatal(err)
	}

	var logged rekorv2.Entry
	if err := protojson.Unmarshal(b.GetVerificationMaterial().GetTlogEntries()[0].GetCanonicalizedBody(), &logged); err != nil {
		t.Fatal(err)
	}
	want := logged.GetSpec().GetHashedRekordV002()
	if want.GetData().GetAlgorithm() != commonpb.HashAlgorithm_SHA2_256 {
		t.Fatalf("cosign logged digest algorithm %v", want.GetData().GetAlgorithm())
	}
	if !bytes.Equal(sub.request.GetDigest(), want.GetData().GetDigest()) {
		t.Errorf("digest %x, cosign logged %x", sub.request.GetDigest(), want.GetData().GetDigest())
	}
	if !proto.Equal(sub.request.GetSignature(), want.GetSignature()) {
		t.Errorf("signature %v\ncosign logged %v", sub.request.GetSignature(), want.GetSignature())
	}
	if sub.identity != cosignIdentity || sub.issuer != cosignIssuer {
		t.Errorf("identity %q issuer %q, want %q %q", sub.identity, sub.issuer, cosignIdentity, cosignIssuer)
	}
	if sub.statementType != "https://in-toto.io/Statement/v0.1" || sub.predicateType != "https://slsa.dev/provenance/v1" {
		t.Errorf("statement %q predicate %q", sub.statementType, sub.predicateType)
	}
	if len(sub.subjects) != 1 || sub.subjects[0].Digest["sha256"] != "16d35a65f91d6042bc6555b8137b26a01cd3fa779ffa5eaf64e09b82fe5d3683" {
		t.Errorf("subjects %+v", sub.subjects)
	}
}

// What the store returns (envelope, verifier, entry) must rebuild a bundle
// that an independent verifier, sigstore-go, accepts against the real trust
// root: the store keeps every byte that matters.
func TestStoredAttestationVerifiesWithSigstoreGo(t *testing.T) {
	orig := cosignBundle(t)
	realEntry := orig.GetVerificationMaterial().GetTlogEntries()[0]
	e := newEnv(t, func(o *Options) { o.Roots = fulcioRoots(t) })
	// The fake log answers with the entry the real log gave cosign.
	e.log.answer = func(*rekorv2.HashedRekordRequestV002) *rekorv1.TransparencyLogEntry { return realEntry }

	envJSON, _ := protojson.Marshal(orig.GetDsseEnvelope())
	resp := e.post(map[string]any{
		"envelope": json.RawMessage(envJSON),
		"verifier": map[string]any{"x509Certificate": map[string]any{"rawBytes": orig.GetVerificationMaterial().GetCertificate().GetRawBytes()}, "keyDetails": "PKIX_ECDSA_P256_SHA_256"},
	})
	if resp.status != http.StatusCreated {
		t.Fatalf("status %d: %s", resp.status, resp.body)
	}
	id := resp.json(t)["attestationId"].(string)

	got := e.get("/api/v2/attestations?digest=sha256:16d35a65f91d6042bc6555b8137b26a01cd3fa779ffa5eaf64e09b82fe5d3683&identity=" + cosignIdentity + "&issuer=" + cosignIssuer)
	var page struct {
		Attestations []*Record `json:"attestations"`
	}
	if err := json.Unmarshal(got.body, &page); err != nil || len(page.Attestations) != 1 || page.Attestations[0].ID != id {
		t.Fatalf("query: %v %s", err, got.body)
	}
	rec := page.Attestations[0]

	rebuilt := &protobundle.Bundle{
		MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content:                   &protobundle.VerificationMaterial_Certificate{Certificate: rec.Verifier.GetX509Certificate()},
			TlogEntries:               []*rekorv1.TransparencyLogEntry{rec.Entry},
			TimestampVerificationData: orig.GetVerificationMaterial().GetTimestampVerificationData(),
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: rec.Envelope},
	}
	sb, err := bundle.NewBundle(rebuilt)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := root.NewTrustedRootFromJSON(readInterop(t, "trusted_root.json"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := verify.NewVerifier(tr, verify.WithTransparencyLog(1), verify.WithSignedTimestamps(1))
	if err != nil {
		t.Fatal(err)
	}
	ident, err := verify.NewShortCertificateIdentity(cosignIssuer, "", cosignIdentity, "")
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := hex.DecodeString("16d35a65f91d6042bc6555b8137b26a01cd3fa779ffa5eaf64e09b82fe5d3683")
	if _, err := v.Verify(sb, verify.NewPolicy(verify.WithArtifactDigest("sha256", digest), verify.WithCertificateIdentity(ident))); err != nil {
		t.Fatalf("sigstore-go rejects the bundle rebuilt from the store: %v", err)
	}

	// Control: the same check fails if the stored envelope is altered, so
	// the verification above is not vacuous.
	rebuilt.GetDsseEnvelope().Payload = []byte(strings.Replace(string(rec.Envelope.GetPayload()), "artifact.txt", "artifact.txX", 1))
	sb, _ = bundle.NewBundle(rebuilt)
	if _, err := v.Verify(sb, verify.NewPolicy(verify.WithArtifactDigest("sha256", digest), verify.WithCertificateIdentity(ident))); err == nil {
		t.Fatal("sigstore-go accepted an altered envelope")
	}
}

// A certificate from another CA is refused when the store knows signet's
// roots; the cosign certificate chains to the interop root.
func TestChainToRoots(t *testing.T) {
	b := cosignBundle(t)
	ver := &rekorv2.Verifier{
		Verifier:   &rekorv2.Verifier_X509Certificate{X509Certificate: b.GetVerificationMaterial().GetCertificate()},
		KeyDetails: commonpb.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
	}
	if _, err := (validator{roots: newTestCA(t).pool}).validate(b.GetDsseEnvelope(), ver); err == nil || !strings.Contains(err.Error(), "not issued by this server's certificate authority") {
		t.Fatalf("foreign CA: %v", err)
	}
}
