package tlog

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"
)

const testOrigin = "signet.test"

type testLog struct {
	*Log
	dir string
	key ed25519.PrivateKey
	srv *httptest.Server
	reg *prometheus.Registry
}

func openTestLog(t testing.TB, dir string, key ed25519.PrivateKey, tweak func(*Options)) *testLog {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if key == nil {
		_, key, _ = ed25519.GenerateKey(rand.Reader)
	}
	reg := prometheus.NewRegistry()
	opts := Options{Dir: dir, Signer: key, Origin: testOrigin, Metrics: reg}
	if tweak != nil {
		tweak(&opts)
	}
	l, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	mux := http.NewServeMux()
	l.Register(mux)
	srv := httptest.NewServer(mux)
	tl := &testLog{Log: l, dir: dir, key: key, srv: srv, reg: reg}
	t.Cleanup(func() {
		srv.Close()
		_ = l.Close(context.Background())
	})
	return tl
}

func (tl *testLog) close(t testing.TB) {
	t.Helper()
	tl.srv.Close()
	if err := tl.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// failer is the part of testing.TB the request helpers need, so the crash
// helper subprocess (which has no *testing.T) can use them too.
type failer interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// signer is a client key with, when it is not Ed25519, a self-signed
// certificate (the verifier a keyless client would send).
type signer struct {
	key     crypto.Signer
	cert    *x509.Certificate
	details commonv1.PublicKeyDetails
}

func newECDSASigner(t failer) *signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:   big.NewInt(1),
		Subject:        pkix.Name{CommonName: "signet test"},
		NotBefore:      time.Now().Add(-time.Hour),
		NotAfter:       time.Now().Add(time.Hour),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		EmailAddresses: []string{"alice@example.com"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{key: k, cert: cert, details: commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256}
}

func newEd25519Signer(t failer) *signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{key: k, details: commonv1.PublicKeyDetails_PKIX_ED25519_PH}
}

// request signs artifact and returns the hashedrekord request a client sends.
func (s *signer) request(t failer, artifact []byte) *rekorv2.HashedRekordRequestV002 {
	t.Helper()
	var digest, sig []byte
	var err error
	switch k := s.key.(type) {
	case *ecdsa.PrivateKey:
		d := sha256.Sum256(artifact)
		digest = d[:]
		sig, err = ecdsa.SignASN1(rand.Reader, k, digest)
	case ed25519.PrivateKey:
		d := sha512.Sum512(artifact)
		digest = d[:]
		sig, err = k.Sign(rand.Reader, digest, &ed25519.Options{Hash: crypto.SHA512})
	}
	if err != nil {
		t.Fatal(err)
	}
	v := &rekorv2.Verifier{KeyDetails: s.details}
	if s.cert != nil {
		v.Verifier = &rekorv2.Verifier_X509Certificate{X509Certificate: &commonv1.X509Certificate{RawBytes: s.cert.Raw}}
	} else {
		der, err := x509.MarshalPKIXPublicKey(s.key.Public())
		if err != nil {
			t.Fatal(err)
		}
		v.Verifier = &rekorv2.Verifier_PublicKey{PublicKey: &rekorv2.PublicKey{RawBytes: der}}
	}
	return &rekorv2.HashedRekordRequestV002{Digest: digest, Signature: &rekorv2.Signature{Content: sig, Verifier: v}}
}

func createEntryJSON(t testing.TB, hr *rekorv2.HashedRekordRequestV002) []byte {
	t.Helper()
	b, err := protojson.Marshal(&rekorv2.CreateEntryRequest{Spec: &rekorv2.CreateEntryRequest_HashedRekordRequestV002{HashedRekordRequestV002: hr}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post sends body to the create-entry endpoint and returns status and body.
func post(t testing.TB, c *http.Client, url string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := c.Post(url+"/api/v2/log/entries", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	return resp.StatusCode, out
}

func decodeTLE(t testing.TB, body []byte) *rekorv1.TransparencyLogEntry {
	t.Helper()
	var tle rekorv1.TransparencyLogEntry
	if err := protojson.Unmarshal(body, &tle); err != nil {
		t.Fatalf("response is not a TransparencyLogEntry: %v\n%s", err, body)
	}
	return &tle
}

func get(t testing.TB, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req) // no transparent gzip: we check encodings
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}
