package verify_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	prototrust "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/certext"
	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/core/verify"
)

// ecdsaNoteSigner signs checkpoints the way Rekor v1 does: ECDSA P-256 over
// SHA-256, key hash SHA-256(PKIX)[:4].
type ecdsaNoteSigner struct {
	name string
	key  *ecdsa.PrivateKey
}

func (s ecdsaNoteSigner) Name() string { return s.name }
func (s ecdsaNoteSigner) KeyHash() uint32 {
	der, _ := x509.MarshalPKIXPublicKey(&s.key.PublicKey)
	sum := sha256.Sum256(der)
	return binary.BigEndian.Uint32(sum[:])
}
func (s ecdsaNoteSigner) Sign(msg []byte) ([]byte, error) {
	d := sha256.Sum256(msg)
	return ecdsa.SignASN1(rand.Reader, s.key, d[:])
}

type v1World struct {
	root     *trust.Root
	pb       *protobundle.Bundle
	artifact []byte
	logKey   *ecdsa.PrivateKey
	signedAt time.Time
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// newV1World builds a private Sigstore in memory — CA, Rekor v1 log with
// ECDSA key — and a v0.2 bundle whose only time source is the signed entry
// timestamp, logged as hashedrekord 0.0.1.
func newV1World(t *testing.T) *v1World {
	t.Helper()
	now := time.Now().Truncate(time.Second)
	caKey := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-fulcio-root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	caCert := must(x509.ParseCertificate(must(x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey))))

	leafKey := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	exts := must(certext.Extensions{Issuer: "https://issuer.example"}.Render())
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), NotBefore: now.Add(-time.Minute), NotAfter: now.Add(9 * time.Minute),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		EmailAddresses: []string{"bob@example.com"}, ExtraExtensions: exts,
	}
	leafDER := must(x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey))

	artifact := []byte("rekor v1 artifact\n")
	digest := sha256.Sum256(artifact)
	sig := must(ecdsa.SignASN1(rand.Reader, leafKey, digest[:]))

	body := must(json.Marshal(map[string]any{
		"apiVersion": "0.0.1", "kind": "hashedrekord",
		"spec": map[string]any{
			"data":      map[string]any{"hash": map[string]any{"algorithm": "sha256", "value": hex.EncodeToString(digest[:])}},
			"signature": map[string]any{"content": sig, "publicKey": map[string]any{"content": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})}},
		},
	}))
	body = must(jsoncanonicalizer.Transform(body))

	logKey := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	logPKIX := must(x509.MarshalPKIXPublicKey(&logKey.PublicKey))
	logID := sha256.Sum256(logPKIX)
	const logIndex = 7
	set := signSET(t, logKey, body, now.Unix(), logID[:], logIndex)

	leaf := rfc6962.DefaultHasher.HashLeaf(body)
	cpText := flog.Checkpoint{Origin: "rekor.example.dev - 42", Size: 8, Hash: nil}
	// A tree of 8 leaves where our entry is index 7: build sibling hashes.
	leaves := make([][]byte, 8)
	for i := range leaves {
		leaves[i] = rfc6962.DefaultHasher.HashLeaf([]byte(fmt.Sprint("leaf ", i)))
	}
	leaves[logIndex] = leaf
	h := rfc6962.DefaultHasher.HashChildren
	l01, l23, l45 := h(leaves[0], leaves[1]), h(leaves[2], leaves[3]), h(leaves[4], leaves[5])
	l0123 := h(l01, l23)
	l4567 := h(l45, h(leaves[6], leaves[7]))
	rootHash := h(l0123, l4567)
	hashes := [][]byte{leaves[6], l45, l0123}
	cpText.Hash = rootHash
	signed := must(note.Sign(&note.Note{Text: string(cpText.Marshal())}, ecdsaNoteSigner{name: "rekor.example.dev", key: logKey}))

	pb := &protobundle.Bundle{
		MediaType: bundle.MediaTypeV02,
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_X509CertificateChain{X509CertificateChain: &protocommon.X509CertificateChain{
				Certificates: []*protocommon.X509Certificate{{RawBytes: leafDER}},
			}},
			TlogEntries: []*protorekor.TransparencyLogEntry{{
				LogIndex: logIndex, LogId: &protocommon.LogId{KeyId: logID[:]},
				KindVersion:       &protorekor.KindVersion{Kind: "hashedrekord", Version: "0.0.1"},
				IntegratedTime:    now.Unix(),
				InclusionPromise:  &protorekor.InclusionPromise{SignedEntryTimestamp: set},
				InclusionProof:    &protorekor.InclusionProof{LogIndex: logIndex, RootHash: rootHash, TreeSize: 8, Hashes: hashes, Checkpoint: &protorekor.Checkpoint{Envelope: string(signed)}},
				CanonicalizedBody: body,
			}},
		},
		Content: &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
			MessageDigest: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: digest[:]},
			Signature:     sig,
		}},
	}
	tr := &prototrust.TrustedRoot{
		MediaType: trust.RootMediaTypeV01,
		CertificateAuthorities: []*prototrust.CertificateAuthority{{
			Uri:       "https://fulcio.example.dev",
			CertChain: &protocommon.X509CertificateChain{Certificates: []*protocommon.X509Certificate{{RawBytes: caCert.Raw}}},
			ValidFor:  &protocommon.TimeRange{Start: timestamppb.New(now.Add(-time.Hour))},
		}},
		Tlogs: []*prototrust.TransparencyLogInstance{{
			BaseUrl: "https://rekor.example.dev", HashAlgorithm: protocommon.HashAlgorithm_SHA2_256,
			PublicKey: &protocommon.PublicKey{RawBytes: logPKIX, KeyDetails: protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
				ValidFor: &protocommon.TimeRange{Start: timestamppb.New(now.Add(-time.Hour))}},
			LogId: &protocommon.LogId{KeyId: logID[:]},
		}},
	}
	root, err := trust.FromProto(tr)
	if err != nil {
		t.Fatal(err)
	}
	return &v1World{root: root, pb: pb, artifact: artifact, logKey: logKey, signedAt: now}
}

func signSET(t *testing.T, key *ecdsa.PrivateKey, body []byte, integrated int64, logID []byte, index int64) []byte {
	t.Helper()
	payload := must(json.Marshal(map[string]any{
		"body": base64.StdEncoding.EncodeToString(body), "integratedTime": integrated,
		"logID": hex.EncodeToString(logID), "logIndex": index,
	}))
	payload = must(jsoncanonicalizer.Transform(payload))
	d := sha256.Sum256(payload)
	return must(ecdsa.SignASN1(rand.Reader, key, d[:]))
}

func (w *v1World) verify(pb *protobundle.Bundle) (*verify.Result, error) {
	b, err := bundle.FromProto(pb)
	if err != nil {
		return nil, err
	}
	p := verify.Policy{Identity: verify.Exact("bob@example.com"), Issuer: verify.Exact("https://issuer.example")}
	return verify.New(w.root).VerifyArtifact(context.Background(), b, bytes.NewReader(w.artifact), p)
}

func TestRekorV1EntryWithSignedEntryTimestamp(t *testing.T) {
	w := newV1World(t)
	res, err := w.verify(w.pb)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if len(res.Times) != 1 || res.Times[0].Source != "tlog https://rekor.example.dev" || !res.Times[0].Time.Equal(w.signedAt) {
		t.Fatalf("times %+v, want the integrated time from the SET", res.Times)
	}
	if e := res.Entries[0]; e.Kind != "hashedrekord" || e.Version != "0.0.1" || e.LogIndex != 7 || e.TreeSize != 8 || !e.IntegratedTime.Equal(w.signedAt) {
		t.Fatalf("entry %+v", e)
	}

	otherLogKey := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	for _, tc := range []struct {
		name   string
		mutate func(e *protorekor.TransparencyLogEntry)
		want   verify.Check
	}{
		{"integrated time moved", func(e *protorekor.TransparencyLogEntry) { e.IntegratedTime += 3600 }, verify.CheckInclusionPromise},
		{"SET byte", func(e *protorekor.TransparencyLogEntry) { e.InclusionPromise.SignedEntryTimestamp[10] ^= 1 }, verify.CheckInclusionPromise},
		{"SET by another key", func(e *protorekor.TransparencyLogEntry) {
			e.InclusionPromise.SignedEntryTimestamp = signSET(t, otherLogKey, e.CanonicalizedBody, e.IntegratedTime, e.LogId.KeyId, e.LogIndex)
		}, verify.CheckInclusionPromise},
		{"checkpoint by another key", func(e *protorekor.TransparencyLogEntry) {
			n := must(note.Open([]byte(e.InclusionProof.Checkpoint.Envelope), note.VerifierList(noteVerifierFor(w.logKey))))
			e.InclusionProof.Checkpoint.Envelope = string(must(note.Sign(&note.Note{Text: n.Text}, ecdsaNoteSigner{name: "rekor.example.dev", key: otherLogKey})))
		}, verify.CheckCheckpoint},
		{"proof sibling", func(e *protorekor.TransparencyLogEntry) { e.InclusionProof.Hashes[1][0] ^= 1 }, verify.CheckInclusionProof},
		{"kindVersion", func(e *protorekor.TransparencyLogEntry) { e.KindVersion.Version = "0.0.2" }, verify.CheckTlogBody},
		// An entry from a log the root does not list proves nothing, not even its time.
		{"log not trusted", func(e *protorekor.TransparencyLogEntry) { e.LogId.KeyId = make([]byte, 32) }, verify.CheckTimeSource},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pb := proto.Clone(w.pb).(*protobundle.Bundle)
			tc.mutate(pb.VerificationMaterial.TlogEntries[0])
			_, err := w.verify(pb)
			if got := verify.CheckOf(err); got != tc.want {
				t.Fatalf("failed check %q, want %q (err: %v)", got, tc.want, err)
			}
		})
	}
}

// A bundle with no timestamp and no SET has no trustworthy signing time.
func TestNoTimeSource(t *testing.T) {
	w := newV1World(t)
	pb := proto.Clone(w.pb).(*protobundle.Bundle)
	pb.VerificationMaterial.TlogEntries[0].InclusionPromise = nil
	// An integrated time with no promise over it is an unsigned claim.
	if _, err := w.verify(pb); verify.CheckOf(err) != verify.CheckInclusionPromise {
		t.Fatalf("err %v, want the unsigned integrated time refused", err)
	}
	pb.VerificationMaterial.TlogEntries[0].IntegratedTime = 0
	_, err := w.verify(pb)
	if verify.CheckOf(err) != verify.CheckTimeSource {
		t.Fatalf("err %v, want a time source failure", err)
	}
}

func noteVerifierFor(key *ecdsa.PrivateKey) note.Verifier {
	s := ecdsaNoteSigner{name: "rekor.example.dev", key: key}
	return verifierFunc{s.Name(), s.KeyHash(), func(msg, sig []byte) bool {
		d := sha256.Sum256(msg)
		return ecdsa.VerifyASN1(&key.PublicKey, d[:], sig)
	}}
}

type verifierFunc struct {
	name string
	hash uint32
	f    func(msg, sig []byte) bool
}

func (v verifierFunc) Name() string                { return v.name }
func (v verifierFunc) KeyHash() uint32             { return v.hash }
func (v verifierFunc) Verify(msg, sig []byte) bool { return v.f(msg, sig) }

// A Rekor v1 body must be the canonical JSON the log wrote, even when the
// log's promise covers it: a v0.1 bundle whose SET was made over a body with
// a duplicate or case-folded key fails only the body check.
func TestRekorV1BodyMustBeCanonical(t *testing.T) {
	w := newV1World(t)
	body := w.pb.VerificationMaterial.TlogEntries[0].CanonicalizedBody
	i := bytes.Index(body, []byte(`,"spec":`))
	for _, tc := range []struct {
		name string
		body []byte
		want verify.Check
	}{
		{"as logged", body, ""},
		{"spec twice", append(append(append([]byte{}, body[:len(body)-1]...), body[i:len(body)-1]...), '}'), verify.CheckTlogBody},
		{"case-folded key", bytes.Replace(body, []byte(`"spec"`), []byte(`"Spec"`), 1), verify.CheckTlogBody},
		{"keys out of order", bytes.Replace(body, []byte(`{"apiVersion":"0.0.1","kind":"hashedrekord"`), []byte(`{"kind":"hashedrekord","apiVersion":"0.0.1"`), 1), verify.CheckTlogBody},
		{"whitespace", bytes.Replace(body, []byte(`,"kind"`), []byte(`, "kind"`), 1), verify.CheckTlogBody},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pb := proto.Clone(w.pb).(*protobundle.Bundle)
			pb.MediaType = bundle.MediaTypeV01
			e := pb.VerificationMaterial.TlogEntries[0]
			e.InclusionProof = nil
			e.CanonicalizedBody = tc.body
			e.InclusionPromise.SignedEntryTimestamp = signSET(t, w.logKey, tc.body, e.IntegratedTime, e.LogId.KeyId, e.LogIndex)
			_, err := w.verify(pb)
			if got := verify.CheckOf(err); got != tc.want {
				t.Fatalf("failed check %q, want %q (err: %v)", got, tc.want, err)
			}
		})
	}
}

// Rekor v1 shards share a key and tell their trees apart by origin suffix:
// "<host> - <decimal tree ID>" and nothing looser.
func TestRekorV1ShardOrigins(t *testing.T) {
	w := newV1World(t)
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"rekor.example.dev - 42", true},
		{"rekor.example.dev", true},
		{"rekor.example.dev - 1193050959916656506", true},
		{"rekor.example.dev - ", false},
		{"rekor.example.dev - 42x", false},
		{"rekor.example.dev - 042", false},
		{"rekor.example.dev -42", false},
		{"rekor.example.dev.evil - 42", false},
		{"other.example.dev - 42", false},
	} {
		t.Run(tc.origin, func(t *testing.T) {
			pb := proto.Clone(w.pb).(*protobundle.Bundle)
			e := pb.VerificationMaterial.TlogEntries[0]
			n := must(note.Open([]byte(e.InclusionProof.Checkpoint.Envelope), note.VerifierList(noteVerifierFor(w.logKey))))
			var cp flog.Checkpoint
			must(cp.Unmarshal([]byte(n.Text)))
			cp.Origin = tc.origin
			e.InclusionProof.Checkpoint.Envelope = string(must(note.Sign(&note.Note{Text: string(cp.Marshal())}, ecdsaNoteSigner{name: "rekor.example.dev", key: w.logKey})))
			_, err := w.verify(pb)
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && verify.CheckOf(err) != verify.CheckCheckpoint {
				t.Fatalf("err %v, want a checkpoint origin failure", err)
			}
		})
	}
}
