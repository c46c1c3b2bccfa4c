package sign

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/signet-dev/signet/core/fulcio"
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/rekor"
	"github.com/signet-dev/signet/core/signer"
	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/core/tsa"
)

// fakeSigstore serves a CA, any number of logs (/log<N>/...) and a TSA from
// one httptest server. Logs listed in failing answer 500.
type fakeSigstore struct {
	*httptest.Server
	caKey   *ecdsa.PrivateKey
	caCert  *x509.Certificate
	mu      sync.Mutex
	logged  map[string]*rekorv2.HashedRekordRequestV002 // by log name
	failing map[string]bool
	logHits atomic.Int32
	// certHits counts certificate requests; certLife is a certificate's
	// validity (default 10 minutes); certFail refuses the next request.
	certHits atomic.Int32
	certLife time.Duration
	certFail atomic.Bool
}

func newFake(t *testing.T) *fakeSigstore {
	f := &fakeSigstore{logged: map[string]*rekorv2.HashedRekordRequestV002{}, failing: map[string]bool{}}
	f.caKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fake CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &f.caKey.PublicKey, f.caKey)
	f.caCert, _ = x509.ParseCertificate(der)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v2/signingCert", f.signingCert)
	mux.HandleFunc("POST /{log}/api/v2/log/entries", f.entries)
	mux.HandleFunc("POST /api/v1/timestamp", f.timestamp)
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

func (f *fakeSigstore) signingCert(w http.ResponseWriter, r *http.Request) {
	f.certHits.Add(1)
	if f.certFail.CompareAndSwap(true, false) {
		http.Error(w, "refused by the test", http.StatusBadRequest)
		return
	}
	life := f.certLife
	if life == 0 {
		life = 10 * time.Minute
	}
	var req struct {
		PublicKeyRequest struct {
			PublicKey struct{ Content string } `json:"publicKey"`
		} `json:"publicKeyRequest"`
	}
	json.NewDecoder(r.Body).Decode(&req)
	block, _ := pem.Decode([]byte(req.PublicKeyRequest.PublicKey.Content))
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now(), NotAfter: time.Now().Add(life),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}, EmailAddresses: []string{"alice@example.com"}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, f.caCert, pub, f.caKey)
	leaf := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	json.NewEncoder(w).Encode(map[string]any{"signedCertificateEmbeddedSct": map[string]any{"chain": map[string]any{"certificates": []string{string(leaf)}}}})
}

func (f *fakeSigstore) entries(w http.ResponseWriter, r *http.Request) {
	f.logHits.Add(1)
	name := r.PathValue("log")
	f.mu.Lock()
	failing := f.failing[name]
	f.mu.Unlock()
	if failing {
		w.WriteHeader(http.StatusBadRequest) // not retried: keeps the test fast
		fmt.Fprintf(w, `{"code":3,"message":"%s refuses"}`, name)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var req rekorv2.CreateEntryRequest
	if err := protojson.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	f.mu.Lock()
	f.logged[name] = req.GetHashedRekordRequestV002()
	f.mu.Unlock()
	tle := &protorekor.TransparencyLogEntry{
		LogIndex: 1, LogId: &protocommon.LogId{KeyId: []byte(name)},
		KindVersion:       &protorekor.KindVersion{Kind: "hashedrekord", Version: "0.0.2"},
		CanonicalizedBody: []byte(`{}`),
		InclusionProof: &protorekor.InclusionProof{LogIndex: 1, TreeSize: 2, RootHash: make([]byte, 32), Hashes: [][]byte{make([]byte, 32)},
			Checkpoint: &protorekor.Checkpoint{Envelope: name + "\n2\nAAAA\n\n— " + name + " x\n"}},
	}
	out, _ := protojson.Marshal(tle)
	w.WriteHeader(201)
	w.Write(out)
}

func (f *fakeSigstore) timestamp(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req, err := timestamp.ParseRequest(body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, f.caCert, &f.caKey.PublicKey, f.caKey)
	cert, _ := x509.ParseCertificate(der)
	ts := &timestamp.Timestamp{HashAlgorithm: req.HashAlgorithm, HashedMessage: req.HashedMessage, Nonce: req.Nonce, Time: time.Now(), Policy: asn1.ObjectIdentifier{1, 2, 3}}
	resp, err := ts.CreateResponse(cert, f.caKey)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.Write(resp)
}

// services builds Services for the fake with the named logs, of which need
// must succeed.
func (f *fakeSigstore) services(t *testing.T, need int, logs ...string) *Services {
	hc := f.Client()
	ca, _ := fulcio.New(f.URL, hc)
	ts, _ := tsa.New(f.URL+"/api/v1/timestamp", hc)
	s := &Services{CA: ca, TSAs: []TimestampAuthority{ts}, TSAsNeeded: 1, LogsNeeded: need}
	for _, l := range logs {
		c, _ := rekor.New(f.URL+"/"+l, hc)
		s.Logs = append(s.Logs, c)
	}
	return s
}

func testToken(t testing.TB) string {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sig, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, nil)
	raw, err := jwt.Signed(sig).Claims(map[string]any{"iss": "https://issuer.example", "sub": "alice", "email": "alice@example.com", "email_verified": true}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestArtifactKeyless(t *testing.T) {
	f := newFake(t)
	content := bytes.Repeat([]byte("signet "), 100000)
	path := filepath.Join(t.TempDir(), "artifact.bin")
	os.WriteFile(path, content, 0o644)
	out := filepath.Join(t.TempDir(), "artifact.sigstore.json")
	var steps []Step
	res, err := Artifact(context.Background(), Options{Services: f.services(t, 1, "log1"), IdentityToken: testToken(t),
		Progress: func(e Event) { steps = append(steps, e.Step) }}, path, out)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(content)
	if !bytes.Equal(res.Digest, want[:]) || res.DigestAlgorithm != protocommon.HashAlgorithm_SHA2_256 {
		t.Fatalf("digest %x", res.Digest)
	}
	written, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(written, res.JSON) {
		t.Fatalf("bundle file: %v", err)
	}
	b := res.Bundle
	cert, err := b.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(cert.PublicKey.(*ecdsa.PublicKey), want[:], b.Signature()) {
		t.Fatal("bundle signature does not verify with the certificate key")
	}
	if n := len(b.RFC3161Timestamps()); n != 1 {
		t.Fatalf("%d timestamps", n)
	}
	logged := f.logged["log1"]
	if !bytes.Equal(logged.GetDigest(), want[:]) || !bytes.Equal(logged.GetSignature().GetContent(), b.Signature()) ||
		!bytes.Equal(logged.GetSignature().GetVerifier().GetX509Certificate().GetRawBytes(), cert.Raw) {
		t.Fatal("the log entry is not over the artifact digest, signature and certificate")
	}
	seen := map[Step]bool{}
	for _, s := range steps {
		seen[s] = true
	}
	for _, s := range []Step{StepKey, StepDigest, StepSignature, StepCertificate, StepTimestamp, StepLog, StepBundle} {
		if !seen[s] {
			t.Errorf("no progress event for %s (got %v)", s, steps)
		}
	}
	if steps[len(steps)-1] != StepBundle {
		t.Errorf("last step %s", steps[len(steps)-1])
	}
	var mt struct{ MediaType string }
	json.Unmarshal(written, &mt)
	if mt.MediaType != "application/vnd.dev.sigstore.bundle.v0.3+json" {
		t.Errorf("media type %q", mt.MediaType)
	}
}

func TestNoBundleOnFailure(t *testing.T) {
	f := newFake(t)
	f.failing["log1"] = true
	dir := t.TempDir()
	path := filepath.Join(dir, "a.txt")
	os.WriteFile(path, []byte("x"), 0o644)
	out := filepath.Join(dir, "a.sigstore.json")
	_, err := Artifact(context.Background(), Options{Services: f.services(t, 1, "log1"), IdentityToken: testToken(t)}, path, out)
	if err == nil || !strings.Contains(err.Error(), "log1 refuses") {
		t.Fatalf("err = %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d files after a failure; want only the artifact", len(entries))
	}
	// An earlier bundle is left as it was.
	os.WriteFile(out, []byte("old"), 0o644)
	Artifact(context.Background(), Options{Services: f.services(t, 1, "log1"), IdentityToken: testToken(t)}, path, out)
	if b, _ := os.ReadFile(out); string(b) != "old" {
		t.Fatalf("earlier bundle changed to %q", b)
	}
}

func TestLogSelectors(t *testing.T) {
	f := newFake(t)
	tok := testToken(t)
	// ALL of two.
	res, err := ArtifactReader(context.Background(), Options{Services: f.services(t, 2, "a", "b"), IdentityToken: tok}, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != 2 || string(res.Entries[0].GetLogId().GetKeyId()) != "a" || string(res.Entries[1].GetLogId().GetKeyId()) != "b" {
		t.Fatalf("entries %v", res.Entries)
	}
	// ANY: the first fails, the second is used.
	f.failing["c"] = true
	res, err = ArtifactReader(context.Background(), Options{Services: f.services(t, 1, "c", "d"), IdentityToken: tok}, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != 1 || string(res.Entries[0].GetLogId().GetKeyId()) != "d" {
		t.Fatalf("entries %v", res.Entries)
	}
	// EXACT 2 of three with one failing still succeeds; with two failing it does not.
	if _, err := ArtifactReader(context.Background(), Options{Services: f.services(t, 2, "c", "e", "g"), IdentityToken: tok}, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	f.failing["e"] = true
	_, err = ArtifactReader(context.Background(), Options{Services: f.services(t, 2, "c", "e", "g"), IdentityToken: tok}, strings.NewReader("x"))
	if err == nil || !strings.Contains(err.Error(), "1 of the 2 required transparency logs answered") {
		t.Fatalf("err = %v", err)
	}
}

func TestKeyBased(t *testing.T) {
	f := newFake(t)
	key, _ := signer.Ephemeral()
	s := f.services(t, 1, "log1")
	s.CA = nil
	res, err := ArtifactReader(context.Background(), Options{Services: s, Key: key}, strings.NewReader("content"))
	if err != nil {
		t.Fatal(err)
	}
	hint, _ := key.KeyHint()
	if res.Certificate != nil || res.Bundle.Proto().GetVerificationMaterial().GetPublicKey().GetHint() != hint {
		t.Fatalf("verification material %v", res.Bundle.Proto().GetVerificationMaterial())
	}
	der, _ := key.PublicKeyDER()
	if !bytes.Equal(f.logged["log1"].GetSignature().GetVerifier().GetPublicKey().GetRawBytes(), der) {
		t.Fatal("log verifier is not the public key")
	}
}

func TestAttestation(t *testing.T) {
	f := newFake(t)
	st, err := intoto.NewStatement([]intoto.Subject{{Name: "app", Digest: map[string]string{"sha256": strings.Repeat("0", 64)}}},
		intoto.PredicateSPDX, []byte(`{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT"}`))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := intoto.MarshalStatement(st)
	out := filepath.Join(t.TempDir(), "att.sigstore.json")
	res, err := Attestation(context.Background(), Options{Services: f.services(t, 1, "log1"), IdentityToken: testToken(t)}, payload, out)
	if err != nil {
		t.Fatal(err)
	}
	env := res.Bundle.DSSEEnvelope()
	if env == nil || !bytes.Equal(env.GetPayload(), payload) {
		t.Fatal("bundle has no DSSE envelope with the statement")
	}
	pae := sha256.Sum256(intoto.PAE(env))
	if !bytes.Equal(f.logged["log1"].GetDigest(), pae[:]) {
		t.Fatal("log entry is not over the SHA-256 of the DSSE PAE")
	}
	if !ecdsa.VerifyASN1(res.Certificate.PublicKey.(*ecdsa.PublicKey), pae[:], env.GetSignatures()[0].GetSig()) {
		t.Fatal("DSSE signature does not verify over the PAE")
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
	if _, err := AttestationBundle(context.Background(), Options{Services: f.services(t, 1, "log1"), IdentityToken: testToken(t)}, []byte(`{"not":"a statement"}`)); err == nil || !strings.Contains(err.Error(), "attestation") {
		t.Fatalf("bad statement: %v", err)
	}
}

func TestOptionErrorsChangeNothing(t *testing.T) {
	f := newFake(t)
	noTSA := f.services(t, 1, "log1")
	noTSA.TSAs = nil
	noCA := f.services(t, 1, "log1")
	noCA.CA = nil
	noLog := f.services(t, 0)
	cases := map[string]struct {
		o    Options
		want error
	}{
		"no services": {Options{IdentityToken: "x"}, ErrNoServices},
		"no token":    {Options{Services: f.services(t, 1, "log1")}, ErrNoIdentityToken},
		"no TSA":      {Options{Services: noTSA, IdentityToken: "x"}, ErrNoTSA},
		"no CA":       {Options{Services: noCA, IdentityToken: "x"}, ErrNoCA},
		"no log":      {Options{Services: noLog, IdentityToken: "x"}, ErrNoTransparencyLog},
		"store, blob": {Options{Services: f.services(t, 1, "log1"), IdentityToken: "x", ViaAttestationStore: true}, ErrNotDSSE},
		"no store":    {Options{Services: f.services(t, 1, "log1"), IdentityToken: "x", ViaAttestationStore: true}, ErrNoAttestationStore},
	}
	for name, c := range cases {
		var err error
		if c.want == ErrNoAttestationStore {
			_, err = AttestationBundle(context.Background(), c.o, []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"`+strings.Repeat("0", 64)+`"}}],"predicateType":"https://example.com/x","predicate":{}}`))
		} else {
			_, err = ArtifactReader(context.Background(), c.o, strings.NewReader("x"))
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", name, err, c.want)
		}
		if strings.Contains(fmt.Sprint(err), "--") {
			t.Errorf("%s: core names a CLI flag: %v", name, err)
		}
	}
	if f.logHits.Load() != 0 {
		t.Fatalf("rejected options still reached the log %d times", f.logHits.Load())
	}
}

func TestFromSigningConfig(t *testing.T) {
	sc, err := trust.ReadSigningConfigFile("../../../shared/interop/signing_config.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := FromSigningConfig(sc, nil, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if s.CA.URL() != "http://127.0.0.1:5555" || len(s.Logs) != 1 || s.Logs[0].URL() != "http://127.0.0.1:3003" || s.LogsNeeded != 1 ||
		len(s.TSAs) != 1 || s.TSAs[0].URL() != "http://127.0.0.1:3004/api/v1/timestamp" {
		t.Fatalf("services %+v", s)
	}
	// Before the services' validity windows start, nothing is usable.
	if _, err := FromSigningConfig(sc, nil, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)); err == nil || !strings.Contains(err.Error(), "no service is valid now") {
		t.Fatalf("err = %v", err)
	}
	v1, err := trust.ParseSigningConfig([]byte(`{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json",
		"rekorTlogUrls":[{"url":"https://rekor.example","majorApiVersion":1,"validFor":{"start":"2020-01-01T00:00:00Z"}}],
		"rekorTlogConfig":{"selector":"ANY"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FromSigningConfig(v1, nil, time.Now()); err == nil || !strings.Contains(err.Error(), "Rekor v2") {
		t.Fatalf("v1 log: %v", err)
	}
	exact, _ := trust.ParseSigningConfig([]byte(`{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json",
		"tsaUrls":[{"url":"https://tsa.example/api/v1/timestamp","majorApiVersion":1,"validFor":{"start":"2020-01-01T00:00:00Z"}}],
		"tsaConfig":{"selector":"EXACT","count":2}}`))
	if _, err := FromSigningConfig(exact, nil, time.Now()); err == nil || !strings.Contains(err.Error(), "EXACT 2") {
		t.Fatalf("exact: %v", err)
	}
}

func TestFromServer(t *testing.T) {
	sc, _ := os.ReadFile("../../../shared/interop/signing_config.json")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == SigningConfigPath {
			w.Write(sc)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	s, err := FromServer(context.Background(), srv.URL, nil, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if s.Attestations == nil || s.Attestations.URL() != srv.URL || s.CA == nil {
		t.Fatalf("services %+v", s)
	}
	if _, err := FetchTrustFile(context.Background(), srv.URL, "/trust/missing.json", nil); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Fatalf("err = %v", err)
	}
}

func TestWriteBundleIntoMissingDirectory(t *testing.T) {
	err := WriteBundle(filepath.Join(t.TempDir(), "no", "such", "dir", "b.json"), []byte("{}"))
	if err == nil || !strings.Contains(err.Error(), "writing bundle") {
		t.Fatalf("err = %v", err)
	}
}

// A shared Credential costs one certificate for several signatures, made at
// once; every bundle carries it. One that failed, or that is too close to
// its expiry, is requested again.
func TestCredentialShared(t *testing.T) {
	f := newFake(t)
	svc := f.services(t, 1, "log1")
	cred := &Credential{}
	o := Options{Services: svc, IdentityToken: testToken(t), Credential: cred}
	const n = 5
	certs := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := ArtifactReader(context.Background(), o, strings.NewReader(fmt.Sprint("artifact ", i)))
			if err != nil {
				t.Error(err)
				return
			}
			certs[i] = res.Certificate.Raw
		})
	}
	wg.Wait()
	if got := f.certHits.Load(); got != 1 {
		t.Fatalf("%d certificate requests for %d signatures with one Credential; want 1", got, n)
	}
	for i := range certs {
		if !bytes.Equal(certs[i], certs[0]) {
			t.Fatalf("bundle %d carries another certificate", i)
		}
	}
	// Without a Credential, one certificate each.
	if _, err := ArtifactReader(context.Background(), Options{Services: svc, IdentityToken: testToken(t)}, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if got := f.certHits.Load(); got != 2 {
		t.Fatalf("%d certificate requests after an unshared signature; want 2", got)
	}

	// A failed request fails the signature waiting on it, and the next
	// signature asks again.
	cred = &Credential{}
	o.Credential = cred
	f.certFail.Store(true)
	if _, err := ArtifactReader(context.Background(), o, strings.NewReader("y")); err == nil {
		t.Fatal("signed although the CA refused the certificate")
	}
	if _, err := ArtifactReader(context.Background(), o, strings.NewReader("y")); err != nil {
		t.Fatalf("after a refused request, the next signature: %v", err)
	}
	if got := f.certHits.Load(); got != 4 {
		t.Fatalf("%d certificate requests; want 4 (the refused one asked again)", got)
	}

	// A certificate with less than CredentialRenewal left is not reused.
	f.certLife = CredentialRenewal / 2
	cred = &Credential{}
	o.Credential = cred
	for range 2 {
		if _, err := ArtifactReader(context.Background(), o, strings.NewReader("z")); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.certHits.Load(); got != 6 {
		t.Fatalf("%d certificate requests; want 6 (a short-lived certificate is requested afresh)", got)
	}
}
