package fulcio

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/signet-dev/signet/core/signer"
	"github.com/signet-dev/signet/core/token"
)

func mint(t *testing.T, claims map[string]any) string {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sig, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, nil)
	raw, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// fakeCA checks what a real Fulcio checks of the request (the proof of
// possession over the token's subject) and issues from a test CA.
type fakeCA struct {
	t       *testing.T
	caKey   *ecdsa.PrivateKey
	caCert  *x509.Certificate
	caPEM   string
	issueTo func(requested *ecdsa.PublicKey) *ecdsa.PublicKey
	auth    string
}

func newFakeCA(t *testing.T) *fakeCA {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	c, _ := x509.ParseCertificate(der)
	return &fakeCA{t: t, caKey: k, caCert: c, caPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

func (f *fakeCA) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/api/v2/signingCert" {
		http.Error(w, "wrong route", 404)
		return
	}
	f.auth = r.Header.Get("Authorization")
	var req createRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	claims, err := token.ParseClaims(req.Credentials.OIDCIdentityToken)
	if err != nil {
		w.WriteHeader(401)
		fmt.Fprintf(w, `{"code":16,"message":"Error parsing OIDC token: %v","details":[]}`, err)
		return
	}
	subject := claims.Subject
	if claims.Email != "" {
		subject = claims.Email
	}
	block, _ := pem.Decode([]byte(req.PublicKeyRequest.PublicKey.Content))
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil || req.PublicKeyRequest.PublicKey.Algorithm != "ECDSA" {
		http.Error(w, "bad key", 400)
		return
	}
	d := sha256.Sum256([]byte(subject))
	if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), d[:], req.PublicKeyRequest.ProofOfPossession) {
		w.WriteHeader(400)
		fmt.Fprint(w, `{"code":3,"message":"The signature supplied in the request could not be verified","details":[]}`)
		return
	}
	subjectKey := pub.(*ecdsa.PublicKey)
	if f.issueTo != nil {
		subjectKey = f.issueTo(subjectKey)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now(), NotAfter: time.Now().Add(10 * time.Minute),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, f.caCert, subjectKey, f.caKey)
	leaf := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	json.NewEncoder(w).Encode(map[string]any{"signedCertificateEmbeddedSct": map[string]any{"chain": map[string]any{"certificates": []string{leaf, f.caPEM}}}})
}

func TestCreateSigningCertificate(t *testing.T) {
	ca := newFakeCA(t)
	srv := httptest.NewServer(ca)
	defer srv.Close()
	c, err := New(srv.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, claims := range map[string]map[string]any{
		"CI subject": {"iss": "https://token.actions.example", "sub": "repo:acme/app:ref:refs/heads/main"},
		"email":      {"iss": "https://accounts.example", "sub": "1234", "email": "alice@example.com", "email_verified": true},
	} {
		t.Run(name, func(t *testing.T) {
			key, _ := signer.Ephemeral()
			tok := mint(t, claims)
			cert, err := c.CreateSigningCertificate(context.Background(), tok, key)
			if err != nil {
				t.Fatal(err)
			}
			if !cert.Leaf.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) || len(cert.Chain) != 1 || !cert.Chain[0].Equal(ca.caCert) {
				t.Fatalf("certificate %+v", cert)
			}
			if ca.auth != "Bearer "+tok {
				t.Fatalf("Authorization header %q", ca.auth)
			}
		})
	}
}

func TestServerErrorIsQuoted(t *testing.T) {
	srv := httptest.NewServer(newFakeCA(t))
	defer srv.Close()
	c, _ := New(srv.URL, nil)
	key, _ := signer.Ephemeral()
	// An unverified email is refused before anything is sent.
	_, err := c.CreateSigningCertificate(context.Background(), mint(t, map[string]any{"iss": "https://i", "sub": "s", "email": "a@b.c"}), key)
	if err == nil || !strings.Contains(err.Error(), "not verified") {
		t.Fatalf("unverified email: %v", err)
	}

	reject := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"code":16,"message":"The OIDC issuer https://i is not trusted; add it to the CA configuration","details":[]}`)
	}))
	defer reject.Close()
	c, _ = New(reject.URL, nil)
	_, err = c.CreateSigningCertificate(context.Background(), mint(t, map[string]any{"iss": "https://i", "sub": "s"}), key)
	want := "certificate authority (" + reject.URL + ") answered HTTP 401: The OIDC issuer https://i is not trusted; add it to the CA configuration"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}

func TestRejectsBadAnswers(t *testing.T) {
	ca := newFakeCA(t)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca.issueTo = func(*ecdsa.PublicKey) *ecdsa.PublicKey { return &other.PublicKey }
	srv := httptest.NewServer(ca)
	defer srv.Close()
	c, _ := New(srv.URL, nil)
	key, _ := signer.Ephemeral()
	tok := mint(t, map[string]any{"iss": "https://i", "sub": "s"})
	if _, err := c.CreateSigningCertificate(context.Background(), tok, key); err == nil || !strings.Contains(err.Error(), "different public key") {
		t.Fatalf("other key: %v", err)
	}
	for body, want := range map[string]string{
		`{}`: "no certificate chain",
		`{"signedCertificateDetachedSct":{"chain":{"certificates":["nope"]}}}`: "not a PEM certificate",
		`not json`: "not a SigningCertificate",
	} {
		bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) }))
		c, _ := New(bad.URL, nil)
		if _, err := c.CreateSigningCertificate(context.Background(), tok, key); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("answer %s: err = %v", body, err)
		}
		bad.Close()
	}
	if _, err := New("ftp://x", nil); err == nil {
		t.Error("ftp URL accepted")
	}
}
