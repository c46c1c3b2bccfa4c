package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/coreos/go-oidc/v3/oidc/oidctest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/signet-dev/signet/core/certext"
	"github.com/signet-dev/signet/server/identity"
)

const (
	autoIssuer   = "https://ci.issuer.test"
	spiffeIssuer = "https://spire.issuer.test"
	uriIssuer    = "https://uri.issuer.test"
)

// pki is a root and an intermediate, the CA signing with the intermediate.
type pki struct {
	root, inter *x509.Certificate
	interKey    crypto.Signer
}

func newPKI(t testing.TB, interLifetime time.Duration) *pki {
	t.Helper()
	rootKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"signet test"}, CommonName: "test root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	interTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{Organization: []string{"signet test"}, CommonName: "test intermediate"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(interLifetime),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	interDER, err := x509.CreateCertificate(rand.Reader, interTmpl, root, &interKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	inter, _ := x509.ParseCertificate(interDER)
	return &pki{root: root, inter: inter, interKey: interKey}
}

// tokens mints identity tokens signed by one test key for any issuer.
type tokens struct{ key *ecdsa.PrivateKey }

func (tk *tokens) keySet() oidc.KeySet {
	return &oidc.StaticKeySet{PublicKeys: []crypto.PublicKey{&tk.key.PublicKey}}
}

func (tk *tokens) mint(t testing.TB, claims map[string]any) string {
	t.Helper()
	now := time.Now()
	c := map[string]any{"iss": autoIssuer, "aud": "sigstore", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
	for k, v := range claims {
		c[k] = v
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return oidctest.SignIDToken(tk.key, "test", "ES256", string(b))
}

type fixture struct {
	pki *pki
	tk  *tokens
	ca  *CA
	mux *http.ServeMux
	reg *prometheus.Registry
}

func newFixture(t testing.TB, opts ...identity.Option) *fixture {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tk := &tokens{key: k}
	v, err := identity.NewVerifier(context.Background(), []identity.IssuerConfig{
		{URL: autoIssuer, Type: identity.TypeAuto, KeySet: tk.keySet()},
		{URL: spiffeIssuer, Type: identity.TypeSPIFFE, SPIFFETrustDomain: "example.org", KeySet: tk.keySet()},
		{URL: uriIssuer, Type: identity.TypeURI, SubjectDomain: "https://builds.example.com", KeySet: tk.keySet()},
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	p := newPKI(t, 24*time.Hour)
	reg := prometheus.NewRegistry()
	c, err := New(Options{Signer: p.interKey, Chain: []*x509.Certificate{p.inter, p.root}, Identity: v, BaseURL: "https://signet.test", Metrics: reg})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	mux := http.NewServeMux()
	c.Register(mux)
	return &fixture{pki: p, tk: tk, ca: c, mux: mux, reg: reg}
}

func (f *fixture) do(t testing.TB, body []byte, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/api/v2/signingCert", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range header {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	f.mux.ServeHTTP(rec, req)
	return rec
}

// metric returns a counter's value for one label value.
func (f *fixture) metric(t testing.TB, name, label string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func (f *fixture) totalIssued(t testing.TB) float64 {
	var sum float64
	for _, ty := range []identity.Type{identity.TypeGitHubWorkflow, identity.TypeGitLabPipeline, identity.TypeBuildkiteJob, identity.TypeCircleCI, identity.TypeKubernetes, identity.TypeSPIFFE, identity.TypeEmail, identity.TypeURI} {
		sum += f.metric(t, "signet_ca_certificates_issued_total", string(ty))
	}
	return sum
}

func pemPublicKey(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// prove signs the challenge the way Sigstore clients do for each key type.
func prove(t testing.TB, key crypto.Signer, challenge string) []byte {
	t.Helper()
	msg := []byte(challenge)
	var sig []byte
	var err error
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		var d []byte
		switch k.Curve {
		case elliptic.P384():
			h := sha512.Sum384(msg)
			d = h[:]
		case elliptic.P521():
			h := sha512.Sum512(msg)
			d = h[:]
		default:
			h := sha256.Sum256(msg)
			d = h[:]
		}
		sig, err = ecdsa.SignASN1(rand.Reader, k, d)
	case *rsa.PrivateKey:
		h := sha256.Sum256(msg)
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, h[:])
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, msg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func keyRequest(t testing.TB, token string, pub crypto.PublicKey, proof []byte) []byte {
	t.Helper()
	req := map[string]any{
		"publicKeyRequest": map[string]any{
			"publicKey":         map[string]any{"algorithm": "ECDSA", "content": pemPublicKey(t, pub)},
			"proofOfPossession": base64.StdEncoding.EncodeToString(proof),
		},
	}
	if token != "" {
		req["credentials"] = map[string]any{"oidcIdentityToken": token}
	}
	b, _ := json.Marshal(req)
	return b
}

func p256(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// leafOf decodes a successful answer and checks everything Fulcio's
// certificate specification requires of an issued certificate.
func (f *fixture) leafOf(t *testing.T, rec *httptest.ResponseRecorder, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var resp struct {
		SignedCertificateDetachedSct *struct {
			Chain struct {
				Certificates []string `json:"certificates"`
			} `json:"chain"`
			SignedCertificateTimestamp *string `json:"signedCertificateTimestamp"`
		} `json:"signedCertificateDetachedSct"`
		SignedCertificateEmbeddedSct any `json:"signedCertificateEmbeddedSct"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatalf("answer: %v", err)
	}
	d := resp.SignedCertificateDetachedSct
	if d == nil || resp.SignedCertificateEmbeddedSct != nil || d.SignedCertificateTimestamp != nil {
		t.Fatalf("answer must be a detached-SCT chain without an SCT: %s", rec.Body)
	}
	if len(d.Chain.Certificates) != 3 {
		t.Fatalf("chain has %d certificates, want leaf, intermediate, root", len(d.Chain.Certificates))
	}
	var certs []*x509.Certificate
	for i, p := range d.Chain.Certificates {
		block, rest := pem.Decode([]byte(p))
		if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
			t.Fatalf("chain[%d] is not one PEM certificate", i)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("chain[%d]: %v", i, err)
		}
		certs = append(certs, c)
	}
	if !certs[1].Equal(f.pki.inter) || !certs[2].Equal(f.pki.root) {
		t.Fatal("chain after the leaf is not intermediate then root")
	}
	leaf := certs[0]
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(f.pki.root)
	inters.AddCert(f.pki.inter)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}, CurrentTime: leaf.NotBefore.Add(time.Second)}); err != nil {
		t.Fatalf("leaf does not chain to the root for code signing: %v", err)
	}
	type eq interface{ Equal(crypto.PublicKey) bool }
	if !pub.(eq).Equal(leaf.PublicKey) {
		t.Fatal("leaf certifies a different key than requested")
	}
	if len(leaf.Subject.Names) != 0 || len(leaf.RawSubject) != 2 {
		t.Fatalf("subject must be empty, got %q", leaf.Subject)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature || len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageCodeSigning || len(leaf.UnknownExtKeyUsage) != 0 {
		t.Fatalf("key usage %v / %v, want digitalSignature / codeSigning only", leaf.KeyUsage, leaf.ExtKeyUsage)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got != DefaultValidity {
		t.Fatalf("validity %s, want %s", got, DefaultValidity)
	}
	if d := time.Since(leaf.NotBefore); d < -time.Second || d > time.Minute {
		t.Fatalf("NotBefore %s is not now", leaf.NotBefore)
	}
	if leaf.SerialNumber.Sign() <= 0 || len(leaf.SerialNumber.Bytes()) != 20 {
		t.Fatalf("serial %x is not a positive 20-octet number", leaf.SerialNumber)
	}
	if len(leaf.SubjectKeyId) != 20 || !bytes.Equal(leaf.AuthorityKeyId, f.pki.inter.SubjectKeyId) {
		t.Fatalf("SKID %x / AKID %x (issuer SKID %x)", leaf.SubjectKeyId, leaf.AuthorityKeyId, f.pki.inter.SubjectKeyId)
	}
	if n := len(leaf.EmailAddresses) + len(leaf.URIs) + len(leaf.DNSNames) + len(leaf.IPAddresses); n != 1 {
		t.Fatalf("leaf has %d SANs, want exactly one", n)
	}
	for _, e := range leaf.Extensions {
		if e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 17}) && !e.Critical {
			t.Fatal("SAN extension is not critical")
		}
	}
	return leaf
}

func san(c *x509.Certificate) string {
	if len(c.URIs) == 1 {
		return c.URIs[0].String()
	}
	return c.EmailAddresses[0]
}

func githubClaims() map[string]any {
	sha := strings.Repeat("b", 40)
	return map[string]any{
		"sub": "repo:acme/widget:ref:refs/tags/v1", "job_workflow_ref": "acme/widget/.github/workflows/release.yml@refs/tags/v1",
		"job_workflow_sha": sha, "event_name": "push", "sha": sha, "workflow": "release", "repository": "acme/widget",
		"ref": "refs/tags/v1", "repository_id": "1", "repository_owner": "acme", "repository_owner_id": "2",
		"workflow_ref": "acme/widget/.github/workflows/release.yml@refs/tags/v1", "workflow_sha": sha,
		"run_id": "42", "run_attempt": "3", "repository_visibility": "private", "runner_environment": "self-hosted", "environment": "prod",
	}
}

// One successful issuance per identity type, with the SAN and extensions
// each type defines.
func TestIssuesEachIdentityType(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		claims map[string]any
		san    string
		check  func(t *testing.T, e certext.Extensions)
	}{
		{"github", githubClaims(), "https://github.com/acme/widget/.github/workflows/release.yml@refs/tags/v1", func(t *testing.T, e certext.Extensions) {
			if e.GithubWorkflowRef != "refs/tags/v1" || e.RunInvocationURI != "https://github.com/acme/widget/actions/runs/42/attempts/3" ||
				e.DeploymentEnvironment != "prod" || e.RunnerEnvironment != "self-hosted" || e.Subject != "repo:acme/widget:ref:refs/tags/v1" {
				t.Fatalf("extensions %+v", e)
			}
		}},
		{"gitlab", map[string]any{"sub": "project_path:g/app:ref_type:tag:ref:v2", "ci_config_ref_uri": "gitlab.com/g/app//.gitlab-ci.yml@refs/tags/v2", "ci_config_sha": "c1",
			"runner_environment": "gitlab-hosted", "project_path": "g/app", "sha": "s1", "ref_type": "tag", "ref": "v2", "project_id": 10, "namespace_path": "g",
			"namespace_id": 11, "pipeline_source": "push", "pipeline_id": 12, "job_id": 13, "project_visibility": "internal"},
			"https://gitlab.com/g/app//.gitlab-ci.yml@refs/tags/v2", func(t *testing.T, e certext.Extensions) {
				if e.SourceRepositoryRef != "refs/tags/v2" || e.RunInvocationURI != "https://gitlab.com/g/app/-/jobs/13" || e.SourceRepositoryIdentifier != "10" {
					t.Fatalf("extensions %+v", e)
				}
			}},
		{"buildkite", map[string]any{"sub": "organization:o:pipeline:p", "organization_slug": "o", "pipeline_slug": "p", "build_number": 5, "job_id": "j-1",
			"runner_environment": "buildkite-hosted", "build_commit": "c", "build_source": "ui"},
			"https://buildkite.com/o/p", func(t *testing.T, e certext.Extensions) {
				if e.RunInvocationURI != "https://buildkite.com/o/p/builds/5#j-1" {
					t.Fatalf("extensions %+v", e)
				}
			}},
		{"circleci", map[string]any{"sub": "org/o/project/p/user/u", "oidc.circleci.com/project-id": "p", "oidc.circleci.com/pipeline-definition-id": "d",
			"oidc.circleci.com/pipeline-id": "pl", "oidc.circleci.com/workflow-id": "w", "oidc.circleci.com/job-id": "j"},
			"https://circleci.com/api/v2/projects/p/pipeline-definitions/d", func(t *testing.T, e certext.Extensions) {
				if e.BuildConfigURI != "https://circleci.com/api/v2/pipeline/pl/config" || e.RunnerEnvironment != "" {
					t.Fatalf("extensions %+v", e)
				}
			}},
		{"kubernetes (tekton)", map[string]any{"sub": "system:serviceaccount:tekton-pipelines:build-bot", "kubernetes.io": map[string]any{"namespace": "tekton-pipelines", "serviceaccount": map[string]any{"name": "build-bot"}}},
			"https://kubernetes.io/namespaces/tekton-pipelines/serviceaccounts/build-bot", nil},
		{"email", map[string]any{"sub": "u-1", "email": "alice@example.com", "email_verified": true}, "alice@example.com", nil},
		{"spiffe", map[string]any{"iss": spiffeIssuer, "sub": "spiffe://example.org/ci/builder"}, "spiffe://example.org/ci/builder", nil},
		{"uri", map[string]any{"iss": uriIssuer, "sub": "https://builds.example.com/run/9"}, "https://builds.example.com/run/9", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := p256(t)
			challenge := tt.claims["sub"].(string)
			if e, ok := tt.claims["email"].(string); ok {
				challenge = e
			}
			rec := f.do(t, keyRequest(t, f.tk.mint(t, tt.claims), key.Public(), prove(t, key, challenge)), nil)
			leaf := f.leafOf(t, rec, key.Public())
			if got := san(leaf); got != tt.san {
				t.Fatalf("SAN %s, want %s", got, tt.san)
			}
			ext, err := certext.FromCertificate(leaf)
			if err != nil {
				t.Fatal(err)
			}
			wantIss := autoIssuer
			if iss, ok := tt.claims["iss"].(string); ok {
				wantIss = iss
			}
			if ext.Issuer != wantIss || ext.Subject != tt.claims["sub"] {
				t.Fatalf("issuer/subject extensions %q/%q", ext.Issuer, ext.Subject)
			}
			if tt.check != nil {
				tt.check(t, ext)
			}
		})
	}
	if got := f.totalIssued(t); got != float64(len(tests)) {
		t.Fatalf("issued counter %v, want %d", got, len(tests))
	}
}

func TestKeyTypes(t *testing.T) {
	f := newFixture(t)
	gen := map[string]func() (crypto.Signer, error){
		"P-256":   func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
		"P-384":   func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) },
		"P-521":   func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P521(), rand.Reader) },
		"Ed25519": func() (crypto.Signer, error) { _, k, err := ed25519.GenerateKey(rand.Reader); return k, err },
		"RSA2048": func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) },
	}
	claims := map[string]any{"sub": "u", "email": "k@example.com", "email_verified": true}
	for name, g := range gen {
		t.Run(name, func(t *testing.T) {
			key, err := g()
			if err != nil {
				t.Fatal(err)
			}
			rec := f.do(t, keyRequest(t, f.tk.mint(t, claims), key.Public(), prove(t, key, "k@example.com")), nil)
			f.leafOf(t, rec, key.Public())
		})
	}
}

// sigstore-js proves possession over sub even for email identities.
func TestEmailProofOverSubject(t *testing.T) {
	f := newFixture(t)
	key := p256(t)
	tok := f.tk.mint(t, map[string]any{"sub": "10042", "email": "js@example.com", "email_verified": true})
	f.leafOf(t, f.do(t, keyRequest(t, tok, key.Public(), prove(t, key, "10042")), nil), key.Public())
}

// sigstore-go sends the token only in the Authorization header.
func TestTokenInAuthorizationHeader(t *testing.T) {
	f := newFixture(t)
	key := p256(t)
	tok := f.tk.mint(t, map[string]any{"sub": "u", "email": "h@example.com", "email_verified": true})
	rec := f.do(t, keyRequest(t, "", key.Public(), prove(t, key, "h@example.com")), http.Header{"Authorization": {"Bearer " + tok}})
	f.leafOf(t, rec, key.Public())
}

func csrRequest(t testing.TB, token string, key crypto.Signer, sigAlg x509.SignatureAlgorithm) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}, SignatureAlgorithm: sigAlg}, key)
	if err != nil {
		t.Fatal(err)
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	b, _ := json.Marshal(map[string]any{"credentials": map[string]any{"oidcIdentityToken": token}, "certificateSigningRequest": base64.StdEncoding.EncodeToString(p)})
	return b
}

func TestCSR(t *testing.T) {
	f := newFixture(t)
	key := p256(t)
	rec := f.do(t, csrRequest(t, f.tk.mint(t, githubClaims()), key, 0), nil)
	leaf := f.leafOf(t, rec, key.Public())
	if leaf.Subject.CommonName != "" {
		t.Fatal("CSR subject leaked into the certificate")
	}
	// protojson also accepts the proto field name and unpadded base64.
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	body, _ := json.Marshal(map[string]any{"credentials": map[string]any{"oidc_identity_token": f.tk.mint(t, githubClaims())},
		"certificate_signing_request": base64.RawURLEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))})
	f.leafOf(t, f.do(t, body, nil), key.Public())
}

// closePrimeKey builds an RSA modulus from two adjacent primes, which
// Fermat's method factors at once.
func closePrimeKey(t testing.TB) *rsa.PublicKey {
	t.Helper()
	p, err := rand.Prime(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	q := new(big.Int).Add(p, big.NewInt(2))
	for !q.ProbablyPrime(20) {
		q.Add(q, big.NewInt(2))
	}
	return &rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 65537}
}

func TestRefusals(t *testing.T) {
	f := newFixture(t)
	key := p256(t)
	email := map[string]any{"sub": "u", "email": "r@example.com", "email_verified": true}
	good := f.tk.mint(t, email)
	goodProof := prove(t, key, "r@example.com")
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range email {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	e3 := &rsa.PublicKey{N: rsa2048.N, E: 3}
	otherKey := p256(t)
	badCSR := func() []byte {
		der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		der[len(der)-5] ^= 0xff // corrupt the signature
		b, _ := json.Marshal(map[string]any{"credentials": map[string]any{"oidcIdentityToken": good}, "certificateSigningRequest": base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))})
		return b
	}()
	sha1CSR := csrRequest(t, good, rsa2048, x509.SHA1WithRSA)
	raw := func(s string) []byte { return []byte(s) }
	tests := []struct {
		name   string
		body   []byte
		status int
		reason string
		msg    []string
	}{
		{"expired token", keyRequest(t, f.tk.mint(t, with("exp", time.Now().Add(-time.Minute).Unix())), key.Public(), goodProof), 401, "expired_token", []string{"expired"}},
		{"wrong audience", keyRequest(t, f.tk.mint(t, with("aud", "other")), key.Public(), goodProof), 401, "wrong_audience", []string{`"sigstore"`}},
		{"issuer not configured", keyRequest(t, f.tk.mint(t, with("iss", "https://rogue.test")), key.Public(), goodProof), 401, "issuer_not_configured", []string{"https://rogue.test"}},
		{"unverified email", keyRequest(t, f.tk.mint(t, with("email_verified", false)), key.Public(), goodProof), 401, "email_not_verified", []string{"not verified"}},
		{"missing token", keyRequest(t, "", key.Public(), goodProof), 401, "missing_token", []string{"Authorization: Bearer"}},
		{"garbage token", keyRequest(t, "not-a-jwt", key.Public(), goodProof), 401, "malformed_token", []string{"not a JWT"}},
		{"proof by another key", keyRequest(t, good, key.Public(), prove(t, otherKey, "r@example.com")), 400, "bad_proof_of_possession", []string{"proof of possession does not verify", `"r@example.com"`}},
		{"proof over the wrong value", keyRequest(t, good, key.Public(), prove(t, key, "r@example.org")), 400, "bad_proof_of_possession", []string{"email claim"}},
		{"proof missing", raw(`{"credentials":{"oidcIdentityToken":"` + good + `"},"publicKeyRequest":{"publicKey":{"content":` + jsonString(pemPublicKey(t, key.Public())) + `}}}`), 400, "missing_proof_of_possession", []string{"proofOfPossession"}},
		{"proof not base64", raw(`{"credentials":{"oidcIdentityToken":"` + good + `"},"publicKeyRequest":{"publicKey":{"content":` + jsonString(pemPublicKey(t, key.Public())) + `},"proofOfPossession":"***"}}`), 400, "malformed_proof_of_possession", []string{"base64"}},
		{"P-224 key", keyRequest(t, good, p224.Public(), goodProof), 400, "unsupported_key", []string{"P-224", "Ed25519"}},
		{"RSA-1024 key", keyRequest(t, good, rsa1024.Public(), goodProof), 400, "unsupported_key", []string{"1024-bit"}},
		{"RSA exponent 3", keyRequest(t, good, e3, goodProof), 400, "unsupported_key", []string{"exponent 3"}},
		{"RSA close primes", keyRequest(t, good, closePrimeKey(t), goodProof), 400, "unsupported_key", []string{"CVE-2022-26320"}},
		{"public key not PEM", raw(`{"credentials":{"oidcIdentityToken":"` + good + `"},"publicKeyRequest":{"publicKey":{"content":"hello"},"proofOfPossession":"AAAA"}}`), 400, "malformed_public_key", []string{"SubjectPublicKeyInfo"}},
		{"public key wrong PEM type", raw(`{"credentials":{"oidcIdentityToken":"` + good + `"},"publicKeyRequest":{"publicKey":{"content":` + jsonString(string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}}))) + `},"proofOfPossession":"AAAA"}}`), 400, "malformed_public_key", []string{"EC PRIVATE KEY"}},
		{"no public key", raw(`{"credentials":{"oidcIdentityToken":"` + good + `"},"publicKeyRequest":{"proofOfPossession":"AAAA"}}`), 400, "malformed_public_key", []string{"publicKey"}},
		{"no key at all", raw(`{"credentials":{"oidcIdentityToken":"` + good + `"}}`), 400, "missing_key", []string{"certificateSigningRequest"}},
		{"both key forms", raw(`{"credentials":{"oidcIdentityToken":"` + good + `"},"publicKeyRequest":{},"certificateSigningRequest":"AAAA"}`), 400, "ambiguous_key", []string{"exactly one"}},
		{"CSR not base64", raw(`{"credentials":{"oidcIdentityToken":"` + good + `"},"certificateSigningRequest":"%%%"}`), 400, "malformed_csr", []string{"base64"}},
		{"CSR garbage", raw(`{"credentials":{"oidcIdentityToken":"` + good + `"},"certificateSigningRequest":"` + base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")) + `"}`), 400, "malformed_csr", []string{"PKCS#10"}},
		{"CSR bad signature", badCSR, 400, "bad_csr_signature", []string{"does not verify"}},
		{"CSR signed with SHA-1", sha1CSR, 400, "bad_csr_signature", []string{"SHA1"}},
		{"not JSON", raw(`credentials=x`), 400, "malformed_request", []string{"not a JSON"}},
		{"too large", raw(`{"credentials":{"oidcIdentityToken":"` + strings.Repeat("a", DefaultMaxRequestBytes) + `"}}`), 413, "too_large", []string{"exceeds"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.metric(t, "signet_ca_requests_refused_total", tt.reason)
			rec := f.do(t, tt.body, nil)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			var body struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Code == 0 {
				t.Fatalf("error body is not a google.rpc.Status: %s", rec.Body)
			}
			for _, m := range tt.msg {
				if !strings.Contains(body.Message, m) {
					t.Fatalf("message %q does not mention %q", body.Message, m)
				}
			}
			if got := f.metric(t, "signet_ca_requests_refused_total", tt.reason); got != before+1 {
				t.Fatalf("refusal counter for %s went %v -> %v", tt.reason, before, got)
			}
		})
	}
	if got := f.totalIssued(t); got != 0 {
		t.Fatalf("%v certificates issued during refusals", got)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestTrustBundleAndConfiguration(t *testing.T) {
	f := newFixture(t)
	get := func(path string) []byte {
		rec := httptest.NewRecorder()
		f.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
		return rec.Body.Bytes()
	}
	var tb struct {
		Chains []struct {
			Certificates []string `json:"certificates"`
		} `json:"chains"`
	}
	if err := json.Unmarshal(get("/api/v2/trustBundle"), &tb); err != nil {
		t.Fatal(err)
	}
	if len(tb.Chains) != 1 || len(tb.Chains[0].Certificates) != 2 {
		t.Fatalf("trust bundle %+v", tb)
	}
	for i, want := range []*x509.Certificate{f.pki.inter, f.pki.root} {
		block, _ := pem.Decode([]byte(tb.Chains[0].Certificates[i]))
		if block == nil || !bytes.Equal(block.Bytes, want.Raw) {
			t.Fatalf("trust bundle certificate %d is not %s", i, want.Subject)
		}
	}
	want := `{"issuers":[{"issuerUrl":"https://ci.issuer.test","audience":"sigstore","challengeClaim":"sub"},` +
		`{"issuerUrl":"https://spire.issuer.test","audience":"sigstore","challengeClaim":"sub","spiffeTrustDomain":"example.org"},` +
		`{"issuerUrl":"https://uri.issuer.test","audience":"sigstore","challengeClaim":"sub"}]}`
	if got := string(get("/api/v2/configuration")); got != want {
		t.Fatalf("configuration\n got %s\nwant %s", got, want)
	}
	rec := httptest.NewRecorder()
	f.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v2/signingCert", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET signingCert: %d", rec.Code)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	p := newPKI(t, 24*time.Hour)
	v, err := identity.NewVerifier(context.Background(), []identity.IssuerConfig{{URL: autoIssuer, Type: identity.TypeEmail, KeySet: (&tokens{key: p256(t)}).keySet()}})
	if err != nil {
		t.Fatal(err)
	}
	short := newPKI(t, 5*time.Minute)
	other := newPKI(t, 24*time.Hour)
	chain := []*x509.Certificate{p.inter, p.root}
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"no signer", Options{Chain: chain, Identity: v}, "no signer"},
		{"no chain", Options{Signer: p.interKey, Identity: v}, "empty certificate chain"},
		{"no identity", Options{Signer: p.interKey, Chain: chain}, "no identity verifier"},
		{"key mismatch", Options{Signer: p256(t), Chain: chain, Identity: v}, "not the key of the issuing certificate"},
		{"root first", Options{Signer: p.interKey, Chain: []*x509.Certificate{p.root}, Identity: v}, "not the key"},
		{"broken chain", Options{Signer: p.interKey, Chain: []*x509.Certificate{p.inter, other.root}, Identity: v}, "is not signed by"},
		{"expires too soon", Options{Signer: short.interKey, Chain: []*x509.Certificate{short.inter, short.root}, Identity: v}, "rotate"},
		{"negative validity", Options{Signer: p.interKey, Chain: chain, Identity: v, Validity: -time.Minute}, "negative"},
		{"bad base URL", Options{Signer: p.interKey, Chain: chain, Identity: v, BaseURL: "signet"}, "base URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want error mentioning %q", err, tt.want)
			}
		})
	}
	// A leaf-only "CA" certificate cannot issue.
	leafKey := p256(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), SubjectKeyId: []byte{1}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, p.inter, &leafKey.PublicKey, p.interKey)
	notCA, _ := x509.ParseCertificate(der)
	if _, err := New(Options{Signer: leafKey, Chain: []*x509.Certificate{notCA, p.inter, p.root}, Identity: v}); err == nil || !strings.Contains(err.Error(), "not a CA certificate") {
		t.Fatalf("non-CA issuing certificate accepted: %v", err)
	}
}
