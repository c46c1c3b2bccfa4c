package tlog

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"testing"

	"github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/sigstore/rekor-tiles/v2/pkg/types/hashedrekord"
	"github.com/sigstore/sigstore/pkg/signature"
	"google.golang.org/protobuf/encoding/protojson"
)

// rekorTilesBody is the reference: rekor-tiles' own construction.
func rekorTilesBody(t *testing.T, req *rekorv2.HashedRekordRequestV002) []byte {
	t.Helper()
	reg, err := signature.NewAlgorithmRegistryConfig(acceptedKeyDetails)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := hashedrekord.ToLogEntry(req, reg)
	if err != nil {
		t.Fatal(err)
	}
	j, err := protojson.Marshal(entry)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsoncanonicalizer.Transform(j)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCanonicalBodyMatchesRekorTiles(t *testing.T) {
	type keyCase struct {
		name    string
		key     crypto.Signer
		hash    crypto.Hash
		details commonv1.PublicKeyDetails
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	cases := []keyCase{
		{"p256", p256, crypto.SHA256, commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256},
		{"p384", p384, crypto.SHA384, commonv1.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384},
		{"p521", p521, crypto.SHA512, commonv1.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512},
		{"rsa2048", rsa2048, crypto.SHA256, commonv1.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256},
	}
	cert := newECDSASigner(t) // a certificate verifier, as keyless clients send
	ed := newEd25519Signer(t)
	for i := 0; i < 3; i++ {
		artifact := []byte(fmt.Sprintf("artifact %d", i))
		reqs := map[string]*rekorv2.HashedRekordRequestV002{
			"certificate": cert.request(t, artifact),
			"ed25519ph":   ed.request(t, artifact),
		}
		for _, c := range cases {
			h := c.hash.New()
			h.Write(artifact)
			digest := h.Sum(nil)
			sig, err := c.key.Sign(rand.Reader, digest, c.hash)
			if err != nil {
				t.Fatal(err)
			}
			der, _ := x509.MarshalPKIXPublicKey(c.key.Public())
			reqs[c.name] = &rekorv2.HashedRekordRequestV002{Digest: digest, Signature: &rekorv2.Signature{
				Content:  sig,
				Verifier: &rekorv2.Verifier{KeyDetails: c.details, Verifier: &rekorv2.Verifier_PublicKey{PublicKey: &rekorv2.PublicKey{RawBytes: der}}},
			}}
		}
		for name, req := range reqs {
			got, err := canonicalHashedRekord(req)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if want := rekorTilesBody(t, req); string(got) != string(want) {
				t.Fatalf("%s: body differs from rekor-tiles\n got %s\nwant %s", name, got, want)
			}
		}
	}
}
