package tlog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	f_log "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"
)

const interopDir = "../../../shared/interop"

type interopRoot struct {
	Tlogs []struct {
		BaseURL   string `json:"baseUrl"`
		PublicKey struct {
			RawBytes []byte `json:"rawBytes"`
		} `json:"publicKey"`
		LogID struct {
			KeyID []byte `json:"keyId"`
		} `json:"logId"`
	} `json:"tlogs"`
}

// interopLog returns the origin, key and log ID of the rekor-tiles instance
// that logged the interop bundles.
func interopLog(t *testing.T) (string, ed25519.PublicKey, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(interopDir, "trusted_root.json"))
	if err != nil {
		t.Fatalf("interop material: %v", err)
	}
	var root interopRoot
	if err := json.Unmarshal(raw, &root); err != nil {
		t.Fatal(err)
	}
	if len(root.Tlogs) != 1 {
		t.Fatalf("want one tlog in the interop trusted root, got %d", len(root.Tlogs))
	}
	tl := root.Tlogs[0]
	u, err := url.Parse(tl.BaseURL)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(tl.PublicKey.RawBytes)
	if err != nil {
		t.Fatal(err)
	}
	return u.Hostname(), pub.(ed25519.PublicKey), tl.LogID.KeyID
}

func TestLogIDIsRekorV2CheckpointKeyID(t *testing.T) {
	origin, pub, want := interopLog(t)
	_, got := checkpointKeyID(origin, pub)
	if !bytes.Equal(got, want) {
		t.Fatalf("log ID for origin %q = %s, trusted root says %s", origin,
			base64.StdEncoding.EncodeToString(got), base64.StdEncoding.EncodeToString(want))
	}
	// And a log opened with that origin reports it (key differs, so the ID must too).
	tl := openTestLog(t, "", nil, func(o *Options) { o.Origin = origin })
	if bytes.Equal(tl.LogID(), want) {
		t.Fatal("a different key produced the interop log ID")
	}
	if _, id := checkpointKeyID(origin, tl.PublicKey()); !bytes.Equal(tl.LogID(), id) {
		t.Fatal("LogID() is not the checkpoint key ID of PublicKey()")
	}
}

// TestInteropBundlesMatchOurEntries checks, for every bundle rekor-tiles
// logged, that the checkpoint verifies with our verifier construction, that
// canonicalHashedRekord rebuilds the logged body byte for byte from what the
// client sent, and that the inclusion proof holds for that body.
func TestInteropBundlesMatchOurEntries(t *testing.T) {
	origin, pub, _ := interopLog(t)
	keyHash, _ := checkpointKeyID(origin, pub)
	vkey, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if verifier.KeyHash() != keyHash {
		t.Fatalf("note key hash %08x != ours %08x", verifier.KeyHash(), keyHash)
	}
	files, err := filepath.Glob(filepath.Join(interopDir, "*.sigstore.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no interop bundles: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var b protobundle.Bundle
			if err := protojson.Unmarshal(raw, &b); err != nil {
				t.Fatal(err)
			}
			tle := b.GetVerificationMaterial().GetTlogEntries()[0]

			n, err := note.Open([]byte(tle.GetInclusionProof().GetCheckpoint().GetEnvelope()), note.VerifierList(verifier))
			if err != nil {
				t.Fatalf("checkpoint does not verify: %v", err)
			}
			var cp f_log.Checkpoint
			if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
				t.Fatal(err)
			}
			if cp.Origin != origin || !bytes.Equal(cp.Hash, tle.GetInclusionProof().GetRootHash()) {
				t.Fatalf("checkpoint %+v does not match proof root", cp)
			}

			certDER := b.GetVerificationMaterial().GetCertificate().GetRawBytes()
			if chain := b.GetVerificationMaterial().GetX509CertificateChain(); chain != nil { // bundle v0.2
				certDER = chain.GetCertificates()[0].GetRawBytes()
			}
			var digest, sig []byte
			switch {
			case b.GetMessageSignature() != nil:
				digest = b.GetMessageSignature().GetMessageDigest().GetDigest()
				sig = b.GetMessageSignature().GetSignature()
			case b.GetDsseEnvelope() != nil:
				env := b.GetDsseEnvelope()
				d := sha256.Sum256(dsse.PAE(env.GetPayloadType(), env.GetPayload()))
				digest = d[:]
				sig = env.GetSignatures()[0].GetSig()
			}
			req := &rekorv2.HashedRekordRequestV002{
				Digest: digest,
				Signature: &rekorv2.Signature{Content: sig, Verifier: &rekorv2.Verifier{
					Verifier:   &rekorv2.Verifier_X509Certificate{X509Certificate: &commonv1.X509Certificate{RawBytes: certDER}},
					KeyDetails: commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
				}},
			}
			body, err := canonicalHashedRekord(req)
			if err != nil {
				t.Fatalf("our validation refuses what rekor-tiles logged: %v", err)
			}
			if !bytes.Equal(body, tle.GetCanonicalizedBody()) {
				t.Fatalf("canonicalized body differs from rekor-tiles'\nours:   %s\ntheirs: %s", body, tle.GetCanonicalizedBody())
			}
			ip := tle.GetInclusionProof()
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(ip.GetLogIndex()), uint64(ip.GetTreeSize()),
				rfc6962.DefaultHasher.HashLeaf(body), ip.GetHashes(), ip.GetRootHash()); err != nil {
				t.Fatalf("inclusion proof of our body: %v", err)
			}
		})
	}
}
