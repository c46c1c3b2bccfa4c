package attest_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	sgroot "github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/fulcio"
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/rekor"
	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/sign/transport"
	"github.com/signet-dev/signet/core/signer"
	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/core/verify"
	"github.com/signet-dev/signet/server/servertest"
)

// tsaLifetime is how long the TSA certificate of TestAttestationBundleEndToEnd
// lives: long enough to start the server and sign once, after which the
// TSA fails as an expired one does.
const tsaLifetime = 5 * time.Second

// shortLivedTSA writes a TSA key and chain (leaf, root) that expire at the
// returned time, and a server configuration that uses them.
func shortLivedTSA(t *testing.T) (config string, expires time.Time) {
	t.Helper()
	dir := t.TempDir()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now().Truncate(time.Second)
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "short-lived TSA root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	eku, _ := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}})
	expires = now.Add(tsaLifetime)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "short-lived TSA"},
		NotBefore: now.Add(-time.Minute), NotAfter: expires, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: eku}},
	}, root, leafKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(leafKey)
	keyPath, chainPath := filepath.Join(dir, "tsa.key"), filepath.Join(dir, "tsa-chain.pem")
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER})...)
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(chainPath, chain, 0o600); err != nil {
		t.Fatal(err)
	}
	config = filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(config, []byte("devOIDC: true\nkeys:\n  tsaKey: "+keyPath+"\n  tsaChain: "+chainPath+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return config, expires
}

const testPredicate = "https://example.com/release/v1"

func provenance(t *testing.T, subject string) (payload []byte, digest []byte) {
	t.Helper()
	d := sha256.Sum256([]byte(subject))
	st, err := intoto.NewStatement([]intoto.Subject{{Name: subject, Digest: map[string]string{"sha256": hex.EncodeToString(d[:])}}}, testPredicate, []byte(`{"builder":"ci"}`))
	if err != nil {
		t.Fatal(err)
	}
	payload, err = intoto.MarshalStatement(st)
	if err != nil {
		t.Fatal(err)
	}
	return payload, d[:]
}

func logSize(t *testing.T, p *servertest.Process) uint64 {
	t.Helper()
	c, err := rekor.New(p.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := c.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cp.Size
}

// Through the real server: an attestation signed with signet and kept by
// the attestation store is found by its subject digest alone, and the
// bundle the server builds for it verifies offline against the server's
// trusted root, with signet's verifier and with sigstore-go. Then the TSA
// fails (its certificate expires): a submission is refused with 503 and
// leaves no log entry and no attestation behind.
func TestAttestationBundleEndToEnd(t *testing.T) {
	servertest.Binary(t) // build first: the TSA's clock starts below
	ctx := context.Background()
	config, tsaExpires := shortLivedTSA(t)
	p := servertest.Start(t, t.TempDir(), "--config", config)
	tok, err := p.Token(ctx, url.Values{"kind": {"github"}, "repository": {"acme/app"}, "workflow": {".github/workflows/release.yml"}, "ref": {"refs/heads/main"}})
	if err != nil {
		t.Fatal(err)
	}
	services, err := sign.FromServer(ctx, p.URL, transport.NewClient(transport.Options{}), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	payload, digest := provenance(t, "app.tar.gz")
	res, err := sign.AttestationBundle(ctx, sign.Options{Services: services, IdentityToken: tok, ViaAttestationStore: true}, payload)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("signed with %v of the TSA certificate left", time.Until(tsaExpires).Round(time.Millisecond))
	if time.Now().After(tsaExpires) {
		t.Fatalf("signing took longer than the TSA certificate's %v lifetime; the machine is too slow for this test", tsaLifetime)
	}

	// A user who has only the digest.
	store, err := rekor.NewAttestationStore(p.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	found, _, err := store.Search(ctx, rekor.Query{Digest: "sha256:" + hex.EncodeToString(digest)})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].ID != res.AttestationID || len(found[0].SignedTimestamp) == 0 {
		t.Fatalf("search found %d attestations (want %s with a timestamp)", len(found), res.AttestationID)
	}
	raw, err := store.Bundle(ctx, found[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(p.URL + "/api/v2/attestations/" + found[0].ID + "/bundle")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET bundle: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	b, err := bundle.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	// The server's bundle holds what the signer's does, but its own
	// timestamp.
	if !bytes.Equal(b.Signature(), res.Bundle.Signature()) || !bytes.Equal(b.CertificateDER(), res.Bundle.CertificateDER()) ||
		len(b.TlogEntries()) != 1 || b.TlogEntries()[0].GetLogIndex() != res.Entries[0].GetLogIndex() || len(b.RFC3161Timestamps()) != 1 {
		t.Fatalf("served bundle %s\nsigner's %s", raw, res.JSON)
	}

	trJSON, err := p.Get("/trust/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	root, err := trust.ParseRoot(trJSON)
	if err != nil {
		t.Fatal(err)
	}
	identity := "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
	policy := verify.Policy{Identity: verify.Exact(identity), Issuer: verify.Exact(p.URL + "/dev/oidc")}
	if _, err := verify.New(root).VerifyAttestation(ctx, b, verify.Digest{Algorithm: crypto.SHA256, Value: digest}, policy, testPredicate); err != nil {
		t.Fatalf("core/verify rejects the server's bundle: %v", err)
	}
	other := sha256.Sum256([]byte("other"))
	if _, err := verify.New(root).VerifyAttestation(ctx, b, verify.Digest{Algorithm: crypto.SHA256, Value: other[:]}, policy, ""); err == nil {
		t.Fatal("core/verify accepted the bundle for another subject")
	}
	sgRoot, err := sgroot.NewTrustedRootFromJSON(trJSON)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := sgverify.NewVerifier(sgRoot, sgverify.WithSignedTimestamps(1), sgverify.WithTransparencyLog(1))
	if err != nil {
		t.Fatal(err)
	}
	ident, err := sgverify.NewShortCertificateIdentity(p.URL+"/dev/oidc", "", identity, "")
	if err != nil {
		t.Fatal(err)
	}
	var sb sgbundle.Bundle
	if err := sb.UnmarshalJSON(raw); err != nil {
		t.Fatal(err)
	}
	if _, err := sv.Verify(&sb, sgverify.NewPolicy(sgverify.WithArtifactDigest("sha256", digest), sgverify.WithCertificateIdentity(ident))); err != nil {
		t.Fatalf("sigstore-go rejects the server's bundle: %v", err)
	}

	// The TSA certificate expires: the TSA now refuses to stamp.
	key, err := signer.Ephemeral()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := fulcio.New(p.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.CreateSigningCertificate(ctx, tok, key)
	if err != nil {
		t.Fatal(err)
	}
	payload, digest = provenance(t, "late.tar.gz")
	env, err := intoto.SignEnvelope(ctx, key, intoto.PayloadType, payload)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(tsaExpires) + 1500*time.Millisecond)
	before := logSize(t, p)
	_, _, err = store.Submit(ctx, env, rekor.Verifier(cert.Leaf.Raw, nil, key.KeyDetails()))
	var se *transport.ServerError
	if !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable || !strings.Contains(se.Message, "timestamp authority") {
		t.Fatalf("submission with the TSA down: %v, want 503 naming the timestamp authority", err)
	}
	time.Sleep(300 * time.Millisecond) // more than a checkpoint interval
	if after := logSize(t, p); after != before {
		t.Errorf("the log grew from %d to %d entries on a refused submission", before, after)
	}
	if found, _, err := store.Search(ctx, rekor.Query{Digest: "sha256:" + hex.EncodeToString(digest)}); err != nil || len(found) != 0 {
		t.Errorf("search after the refused submission: %d attestations (%v)", len(found), err)
	}
}
