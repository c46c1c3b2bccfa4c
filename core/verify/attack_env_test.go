package verify_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/digitorus/pkcs7"
	ct "github.com/google/certificate-transparency-go"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	sgroot "github.com/sigstore/sigstore-go/pkg/root"
	flog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/signet-dev/signet/core/certext"
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/rekor"
	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/sign/transport"
	"github.com/signet-dev/signet/core/signer"
	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/core/tsa"
	"github.com/signet-dev/signet/server/servertest"
)

// attackEnv is a running signet server plus what an attacker (or a test
// standing in for a misbehaving authority) can get: tokens, certificates,
// timestamps over anything, log entries for anything it can sign. The CA,
// TSA and log keys are read from the server's data directory only to craft
// what a trusted party would have to sign wrongly (a CA leaf with a bad
// profile, a TSA token with SHA-1, a log checkpoint under a shard origin).
type attackEnv struct {
	p        *servertest.Process
	trJSON   []byte
	root     *trust.Root
	sgRoot   *sgroot.TrustedRoot
	services *sign.Services
	logs     *rekor.Client
	tsa      *tsa.Client
	log      *trust.Log

	caKey    crypto.Signer
	caCert   *x509.Certificate
	caRoot   *x509.Certificate
	ctKey    crypto.Signer // the CT log's key, to forge SCTs only a broken log would sign
	tsaKey   crypto.Signer
	tsaChain []*x509.Certificate
	logKey   ed25519.PrivateKey

	san, issuer string
	token       string
	artifact    []byte
}

func newAttackEnv(t *testing.T) *attackEnv {
	t.Helper()
	ctx := context.Background()
	p := servertest.Start(t, t.TempDir(), "--dev-oidc")
	e := &attackEnv{p: p, artifact: []byte("release 4.2.0 of acme/app\n")}
	var err error
	if e.trJSON, err = p.Get("/trust/trusted_root.json"); err != nil {
		t.Fatal(err)
	}
	if e.root, err = trust.ParseRoot(e.trJSON); err != nil {
		t.Fatal(err)
	}
	if e.sgRoot, err = sgroot.NewTrustedRootFromJSON(e.trJSON); err != nil {
		t.Fatal(err)
	}
	if len(e.root.Logs) != 1 {
		t.Fatalf("trusted root lists %d logs, want 1", len(e.root.Logs))
	}
	for _, l := range e.root.Logs {
		e.log = l
	}
	if e.services, err = sign.FromServer(ctx, p.URL, transport.NewClient(transport.Options{}), time.Now()); err != nil {
		t.Fatal(err)
	}
	e.logs, e.tsa = e.services.Logs[0].(*rekor.Client), e.services.TSAs[0].(*tsa.Client)
	e.san = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
	e.issuer = p.URL + "/dev/oidc"
	if e.token, err = p.Token(ctx, url.Values{"kind": {"github"}, "repository": {"acme/app"}, "workflow": {".github/workflows/release.yml"}, "ref": {"refs/heads/main"}}); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(p.DataDir, "keys")
	e.caKey = readKey(t, filepath.Join(keys, "ca-intermediate.key")).(crypto.Signer)
	e.caCert = readCerts(t, filepath.Join(keys, "ca-intermediate.pem"))[0]
	e.caRoot = readCerts(t, filepath.Join(keys, "ca-root.pem"))[0]
	e.ctKey = readKey(t, filepath.Join(keys, "ctlog.key")).(crypto.Signer)
	e.tsaKey = readKey(t, filepath.Join(keys, "tsa.key")).(crypto.Signer)
	e.tsaChain = append(readCerts(t, filepath.Join(keys, "tsa.pem")), readCerts(t, filepath.Join(keys, "tsa-root.pem"))...)
	e.logKey = readKey(t, filepath.Join(keys, "log.key")).(ed25519.PrivateKey)
	return e
}

func readKey(t *testing.T, path string) any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		if k, err = x509.ParseECPrivateKey(blk.Bytes); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	return k
}

func readCerts(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			break
		}
		out = append(out, must(x509.ParseCertificate(blk.Bytes)))
	}
	return out
}

// keylessBundle signs the artifact through the real services, as a CI job would.
func (e *attackEnv) keylessBundle(t *testing.T, artifact []byte) *protobundle.Bundle {
	t.Helper()
	res, err := sign.ArtifactReader(context.Background(), sign.Options{Services: e.services, IdentityToken: e.token}, bytes.NewReader(artifact))
	if err != nil {
		t.Fatal(err)
	}
	return res.Bundle.Proto()
}

// attestationBundle signs an in-toto statement about artifact.
func (e *attackEnv) attestationBundle(t *testing.T, artifact []byte, predicateType string) *protobundle.Bundle {
	t.Helper()
	d := sha256.Sum256(artifact)
	st := must(intoto.NewStatement([]intoto.Subject{{Name: "app.tar.gz", Digest: map[string]string{"sha256": hex.EncodeToString(d[:])}}}, predicateType, []byte(`{"passed":true}`)))
	res, err := sign.AttestationBundle(context.Background(), sign.Options{Services: e.services, IdentityToken: e.token}, must(intoto.MarshalStatement(st)))
	if err != nil {
		t.Fatal(err)
	}
	return res.Bundle.Proto()
}

// leafTemplate is a Fulcio-shaped leaf for the test identity.
func (e *attackEnv) leafTemplate(t *testing.T) *x509.Certificate {
	t.Helper()
	u := must(url.Parse(e.san))
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: must(rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))),
		NotBefore:    now.Add(-time.Minute), NotAfter: now.Add(10 * time.Minute),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		URIs:            []*url.URL{u},
		ExtraExtensions: must(certext.Extensions{Issuer: e.issuer}.Render()),
	}
}

// issue makes a leaf for a fresh key, signed by parent/parentKey (the real
// CA when parent is nil); edit changes the template first. A leaf of the
// real CA is logged in the server's CT log first and carries its SCT, as
// the CA issues them.
func (e *attackEnv) issue(t *testing.T, edit func(*x509.Certificate), parent *x509.Certificate, parentKey crypto.Signer) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	if parent == nil {
		parent, parentKey = e.caCert, e.caKey
	}
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	tmpl := e.leafTemplate(t)
	if edit != nil {
		edit(tmpl)
	}
	if parent == tmpl { // self-signed
		parentKey = key
	}
	if parent == e.caCert {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, sctListExtension(t, e.logPrecert(t, tmpl, &key.PublicKey)))
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey))
	return key, must(x509.ParseCertificate(der))
}

var (
	oidCTPoison  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3}
	oidCTSCTList = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2}
)

// logPrecert submits the precertificate of tmpl (issued by the real CA) to
// the server's CT log over its add-pre-chain API and returns the SCT.
func (e *attackEnv) logPrecert(t *testing.T, tmpl *x509.Certificate, pub crypto.PublicKey) *ct.SignedCertificateTimestamp {
	t.Helper()
	pre := *tmpl
	pre.ExtraExtensions = append(slices.Clip(tmpl.ExtraExtensions), pkix.Extension{Id: oidCTPoison, Critical: true, Value: asn1.NullBytes})
	der := must(x509.CreateCertificate(rand.Reader, &pre, e.caCert, pub, e.caKey))
	body := must(json.Marshal(ct.AddChainRequest{Chain: [][]byte{der, e.caCert.Raw, e.caRoot.Raw}}))
	resp, err := http.Post(e.p.URL+"/ctlog/ct/v1/add-pre-chain", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("add-pre-chain: %s: %s", resp.Status, raw)
	}
	var acr ct.AddChainResponse
	if err := json.Unmarshal(raw, &acr); err != nil {
		t.Fatal(err)
	}
	return must(acr.ToSignedCertificateTimestamp())
}

// sctListExtension is the RFC 6962 §3.3 extension holding scts.
func sctListExtension(t *testing.T, scts ...*ct.SignedCertificateTimestamp) pkix.Extension {
	t.Helper()
	var list ctx509.SignedCertificateTimestampList
	for _, s := range scts {
		list.SCTList = append(list.SCTList, ctx509.SerializedSCT{Val: must(cttls.Marshal(*s))})
	}
	return pkix.Extension{Id: oidCTSCTList, Value: must(asn1.Marshal(must(cttls.Marshal(list))))}
}

// signSCT is an SCT over the precertificate of tmpl by key, dated at: what
// a CT log holding key would answer, logged or not.
func (e *attackEnv) signSCT(t *testing.T, key crypto.Signer, tmpl *x509.Certificate, pub crypto.PublicKey, at time.Time) *ct.SignedCertificateTimestamp {
	t.Helper()
	// The TBSCertificate the log signs is the certificate's without the SCT
	// list (RFC 6962 §3.2); build it by issuing tmpl as is.
	issuer := e.caCert
	tbsCert := must(x509.CreateCertificate(rand.Reader, tmpl, issuer, pub, e.caKey))
	parsed := must(x509.ParseCertificate(tbsCert))
	spki := must(x509.MarshalPKIXPublicKey(key.Public()))
	sct := &ct.SignedCertificateTimestamp{SCTVersion: ct.V1, LogID: ct.LogID{KeyID: sha256.Sum256(spki)}, Timestamp: uint64(at.UnixMilli())}
	input := must(ct.SerializeSCTSignatureInput(*sct, ct.LogEntry{Leaf: ct.MerkleTreeLeaf{
		Version: ct.V1, LeafType: ct.TimestampedEntryLeafType,
		TimestampedEntry: &ct.TimestampedEntry{Timestamp: sct.Timestamp, EntryType: ct.PrecertLogEntryType,
			PrecertEntry: &ct.PreCert{IssuerKeyHash: sha256.Sum256(issuer.RawSubjectPublicKeyInfo), TBSCertificate: parsed.RawTBSCertificate}},
	}}))
	digest := sha256.Sum256(input)
	sig := must(key.Sign(rand.Reader, digest[:], crypto.SHA256))
	sct.Signature = ct.DigitallySigned{Algorithm: cttls.SignatureAndHashAlgorithm{Hash: cttls.SHA256, Signature: cttls.ECDSA}, Signature: sig}
	return sct
}

// assemble signs the artifact's digest with key, timestamps the signature at
// the real TSA, logs it in the real log with cert as verifier, and returns a
// v0.3 bundle: everything genuine except what the caller chose (the
// certificate).
func (e *attackEnv) assemble(t *testing.T, key *ecdsa.PrivateKey, cert *x509.Certificate, artifact []byte) *protobundle.Bundle {
	t.Helper()
	d := sha256.Sum256(artifact)
	pb, sig := e.signAndLog(t, key, cert, d[:])
	pb.Content = &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
		MessageDigest: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: d[:]},
		Signature:     sig,
	}}
	return pb
}

// assembleDSSE is assemble for a DSSE envelope of any payload type, logged
// as cosign v3 logs one: a hashedrekord over the PAE.
func (e *attackEnv) assembleDSSE(t *testing.T, key *ecdsa.PrivateKey, cert *x509.Certificate, payloadType string, payload []byte) *protobundle.Bundle {
	t.Helper()
	d := sha256.Sum256(dsse.PAE(payloadType, payload))
	pb, sig := e.signAndLog(t, key, cert, d[:])
	pb.Content = &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
		Payload: payload, PayloadType: payloadType, Signatures: []*protodsse.Signature{{Sig: sig}},
	}}
	return pb
}

// signAndLog signs digest, timestamps and logs the signature, and returns a
// bundle with the verification material but no content yet.
func (e *attackEnv) signAndLog(t *testing.T, key *ecdsa.PrivateKey, cert *x509.Certificate, digest []byte) (*protobundle.Bundle, []byte) {
	t.Helper()
	ctx := context.Background()
	sig := must(ecdsa.SignASN1(rand.Reader, key, digest))
	ts := must(e.tsa.Timestamp(ctx, sig))
	entry := must(e.logs.CreateHashedRekord(ctx, digest, sig, rekor.Verifier(cert.Raw, nil, protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)))
	return &protobundle.Bundle{
		MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content:     &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: cert.Raw}},
			TlogEntries: []*protorekor.TransparencyLogEntry{entry},
			TimestampVerificationData: &protobundle.TimestampVerificationData{
				Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: ts.Response}},
			},
		},
	}, sig
}

// tsaToken has a TSA key sign a timestamp the real TSA would not issue:
// over hash h of sig, at time at. It is built by hand because the RFC 3161
// library refuses to issue SHA-1 imprints.
func tsaToken(t *testing.T, key crypto.Signer, chain []*x509.Certificate, h crypto.Hash, sig []byte, at time.Time) []byte {
	return tsaTokenEdited(t, key, chain, h, sig, at, nil)
}

// tsaTokenEdited is tsaToken with edit applied to the CMS structure after
// signing: a change to what the TSA's signature does not cover.
func tsaTokenEdited(t *testing.T, key crypto.Signer, chain []*x509.Certificate, h crypto.Hash, sig []byte, at time.Time, edit func(*pkcs7.SignedData)) []byte {
	t.Helper()
	hh := h.New()
	hh.Write(sig)
	oids := map[crypto.Hash]asn1.ObjectIdentifier{crypto.SHA1: {1, 3, 14, 3, 2, 26}, crypto.SHA256: {2, 16, 840, 1, 101, 3, 4, 2, 1}}
	type imprint struct {
		Alg    pkix.AlgorithmIdentifier
		Digest []byte
	}
	info := must(asn1.Marshal(struct {
		Version int
		Policy  asn1.ObjectIdentifier
		Imprint imprint
		Serial  *big.Int
		GenTime time.Time `asn1:"generalized"`
	}{1, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 2}, imprint{pkix.AlgorithmIdentifier{Algorithm: oids[h]}, hh.Sum(nil)}, big.NewInt(at.UnixNano()), at.UTC().Truncate(time.Second)}))
	sd := must(pkcs7.NewSignedData(info))
	sd.SetDigestAlgorithm(oids[crypto.SHA256])
	sd.SetContentType(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 4})
	sd.GetSignedData().Version = 3
	if err := sd.AddSigner(chain[0], key, pkcs7.SignerInfoConfig{}); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(sd)
	}
	token := must(sd.Finish())
	return must(asn1.Marshal(struct {
		Status struct{ Status int }
		Token  asn1.RawValue
	}{Token: asn1.RawValue{FullBytes: token}}))
}

// checkpointSigner signs notes as the log does: Ed25519 under the origin.
type checkpointSigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func (s checkpointSigner) Name() string                    { return s.name }
func (s checkpointSigner) KeyHash() uint32                 { return s.hash }
func (s checkpointSigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// logSigner is the trusted log's own checkpoint signer.
func (e *attackEnv) logSigner() checkpointSigner {
	return checkpointSigner{name: e.log.Origin, hash: e.log.CheckpointKeyID, key: e.logKey}
}

// resign replaces an entry's checkpoint with one whose body edit changed,
// signed by s.
func resign(t *testing.T, entry *protorekor.TransparencyLogEntry, s note.Signer, edit func(*flog.Checkpoint)) {
	t.Helper()
	env := entry.GetInclusionProof().GetCheckpoint().GetEnvelope()
	text, _, ok := strings.Cut(env, "\n\n")
	if !ok {
		t.Fatalf("checkpoint %q has no signatures", env)
	}
	var cp flog.Checkpoint
	if _, err := cp.Unmarshal([]byte(text + "\n")); err != nil {
		t.Fatal(err)
	}
	edit(&cp)
	entry.InclusionProof.Checkpoint.Envelope = string(must(note.Sign(&note.Note{Text: string(cp.Marshal())}, s)))
}

func clone(pb *protobundle.Bundle) *protobundle.Bundle { return proto.Clone(pb).(*protobundle.Bundle) }

// logSize is the log's current tree size from its published checkpoint.
func (e *attackEnv) logSize(t *testing.T) uint64 {
	t.Helper()
	cp, err := e.p.Get("/api/v2/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	var c flog.Checkpoint
	text, _, _ := strings.Cut(string(cp), "\n\n")
	if _, err := c.Unmarshal([]byte(text + "\n")); err != nil {
		t.Fatal(err)
	}
	return c.Size
}

// keylessAt signs artifact at another server p (another log, CA and TSA).
func keylessAt(t *testing.T, p *servertest.Process, artifact []byte) *protobundle.Bundle {
	t.Helper()
	ctx := context.Background()
	tok := must(p.Token(ctx, url.Values{"kind": {"github"}, "repository": {"acme/app"}, "workflow": {".github/workflows/release.yml"}, "ref": {"refs/heads/main"}}))
	svc := must(sign.FromServer(ctx, p.URL, transport.NewClient(transport.Options{}), time.Now()))
	res := must(sign.ArtifactReader(ctx, sign.Options{Services: svc, IdentityToken: tok}, bytes.NewReader(artifact)))
	return res.Bundle.Proto()
}

// keyBundle signs the artifact with a self-managed key through the real log and TSA.
func (e *attackEnv) keyBundle(t *testing.T, k crypto.Signer) *protobundle.Bundle {
	t.Helper()
	s := must(signer.New(k))
	res := must(sign.ArtifactReader(context.Background(), sign.Options{Services: e.services, Key: s}, bytes.NewReader(e.artifact)))
	return res.Bundle.Proto()
}

// assembleDSSEEntry is assembleDSSE with the envelope logged as a Rekor v2
// dsse v0.0.2 entry, as sigstore-js logs attestations.
func (e *attackEnv) assembleDSSEEntry(t *testing.T, key *ecdsa.PrivateKey, cert *x509.Certificate, payloadType string, payload []byte) *protobundle.Bundle {
	t.Helper()
	ctx := context.Background()
	d := sha256.Sum256(dsse.PAE(payloadType, payload))
	sig := must(ecdsa.SignASN1(rand.Reader, key, d[:]))
	ts := must(e.tsa.Timestamp(ctx, sig))
	env := &protodsse.Envelope{Payload: payload, PayloadType: payloadType, Signatures: []*protodsse.Signature{{Sig: sig}}}
	req := must(protojson.Marshal(&rekorv2.CreateEntryRequest{Spec: &rekorv2.CreateEntryRequest_DsseRequestV002{DsseRequestV002: &rekorv2.DSSERequestV002{
		Envelope:  env,
		Verifiers: []*rekorv2.Verifier{{KeyDetails: protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256, Verifier: &rekorv2.Verifier_X509Certificate{X509Certificate: &protocommon.X509Certificate{RawBytes: cert.Raw}}}},
	}}}))
	resp, err := http.Post(e.p.URL+"/api/v2/log/entries", "application/json", bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("logging a dsse entry: %s: %s", resp.Status, raw)
	}
	var entry protorekor.TransparencyLogEntry
	if err := protojson.Unmarshal(raw, &entry); err != nil {
		t.Fatal(err)
	}
	return &protobundle.Bundle{
		MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content:     &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: cert.Raw}},
			TlogEntries: []*protorekor.TransparencyLogEntry{&entry},
			TimestampVerificationData: &protobundle.TimestampVerificationData{
				Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: ts.Response}},
			},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: env},
	}
}
