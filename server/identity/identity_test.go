package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/coreos/go-oidc/v3/oidc/oidctest"
	"github.com/go-jose/go-jose/v4"
	"github.com/signet-dev/signet/core/certext"
)

// signer mints ES256 tokens for an issuer URL.
type signer struct {
	key *ecdsa.PrivateKey
	kid string
	iss string
}

func newSigner(t testing.TB, iss string) *signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{key: k, kid: "k1", iss: iss}
}

func (s *signer) keySet() oidc.KeySet {
	return &oidc.StaticKeySet{PublicKeys: []crypto.PublicKey{&s.key.PublicKey}}
}

// mint signs claims, filling iss, aud, iat and exp unless the caller set them
// (a nil value removes the claim).
func (s *signer) mint(t testing.TB, claims map[string]any) string {
	t.Helper()
	now := time.Now()
	c := map[string]any{"iss": s.iss, "aud": "sigstore", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return oidctest.SignIDToken(s.key, s.kid, "ES256", string(b))
}

func githubClaims() map[string]any {
	sha := strings.Repeat("a", 40)
	return map[string]any{
		"sub":                   "repo:acme/widget:ref:refs/heads/main",
		"job_workflow_ref":      "acme/widget/.github/workflows/release.yml@refs/heads/main",
		"job_workflow_sha":      sha,
		"event_name":            "push",
		"sha":                   sha,
		"workflow":              "release",
		"repository":            "acme/widget",
		"ref":                   "refs/heads/main",
		"repository_id":         "1",
		"repository_owner":      "acme",
		"repository_owner_id":   "2",
		"workflow_ref":          "acme/widget/.github/workflows/release.yml@refs/heads/main",
		"workflow_sha":          sha,
		"run_id":                "42",
		"run_attempt":           "1",
		"repository_visibility": "public",
		"runner_environment":    "github-hosted",
	}
}

func newVerifier(t testing.TB, cfgs ...IssuerConfig) *Verifier {
	t.Helper()
	v, err := NewVerifier(context.Background(), cfgs)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func wantRefusal(t *testing.T, err error, reason Reason, contains ...string) {
	t.Helper()
	var ie *Error
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v (%T), want an *identity.Error with reason %s", err, err, reason)
	}
	if ie.Reason != reason {
		t.Fatalf("reason = %s (%v), want %s", ie.Reason, err, reason)
	}
	for _, c := range contains {
		if !strings.Contains(err.Error(), c) {
			t.Fatalf("message %q does not mention %q", err, c)
		}
	}
}

// interopExtensions reads the extensions real Fulcio v1.8.8 wrote for the
// GitHub claims that githubClaims reproduces.
func interopExtensions(t *testing.T) certext.Extensions {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "interop", "cosign3-github.sigstore.json"))
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		VerificationMaterial struct {
			Certificate struct {
				RawBytes []byte `json:"rawBytes"`
			} `json:"certificate"`
		} `json:"verificationMaterial"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	cert, err := parseCert(b.VerificationMaterial.Certificate.RawBytes)
	if err != nil {
		t.Fatal(err)
	}
	e, err := certext.FromCertificate(cert)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// GitHub tokens verified through OIDC discovery map to exactly what Fulcio
// put in its certificate, and keys are fetched once for many tokens.
func TestGitHubThroughDiscoveryMatchesFulcio(t *testing.T) {
	var keyFetches atomic.Int32
	oidcSrv := &oidctest.Server{Algorithms: []string{"ES256"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/keys" {
			keyFetches.Add(1)
		}
		oidcSrv.ServeHTTP(w, r)
	}))
	defer srv.Close()
	oidcSrv.SetIssuer(srv.URL)
	s := newSigner(t, srv.URL)
	oidcSrv.PublicKeys = []oidctest.PublicKey{{PublicKey: &s.key.PublicKey, KeyID: s.kid, Algorithm: "ES256"}}

	v := newVerifier(t, IssuerConfig{URL: srv.URL, Type: TypeGitHubWorkflow})
	want := interopExtensions(t)
	want.Issuer = srv.URL
	for i := 0; i < 5; i++ {
		p, err := v.Verify(context.Background(), s.mint(t, githubClaims()))
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if p.Type != TypeGitHubWorkflow || p.Challenge != "repo:acme/widget:ref:refs/heads/main" || p.Email != "" {
			t.Fatalf("principal = %+v", p)
		}
		if got := p.SAN(); got != "https://github.com/acme/widget/.github/workflows/release.yml@refs/heads/main" {
			t.Fatalf("SAN = %s", got)
		}
		if p.Extensions != want {
			t.Fatalf("extensions differ from Fulcio's\n got %+v\nwant %+v", p.Extensions, want)
		}
	}
	if n := keyFetches.Load(); n != 1 {
		t.Fatalf("keys fetched %d times for 5 tokens, want 1", n)
	}
}

func TestEachIdentityType(t *testing.T) {
	const iss = "https://issuer.example"
	s := newSigner(t, iss)
	tests := []struct {
		name    string
		cfg     IssuerConfig
		claims  map[string]any
		typ     Type
		san     string
		chal    string
		checkEx func(t *testing.T, e certext.Extensions)
	}{
		{
			name: "gitlab", cfg: IssuerConfig{Type: TypeGitLabPipeline},
			claims: map[string]any{
				"sub": "project_path:grp/app:ref_type:branch:ref:main", "ci_config_ref_uri": "gitlab.com/grp/app//.gitlab-ci.yml@refs/heads/main",
				"ci_config_sha": "c0ffee", "runner_environment": "gitlab-hosted", "project_path": "grp/app", "sha": "abc",
				"ref_type": "branch", "ref": "main", "project_id": "77", "namespace_path": "grp", "namespace_id": "5",
				"pipeline_source": "push", "pipeline_id": "900", "job_id": "1234", "project_visibility": "private", "environment": "prod",
			},
			typ: TypeGitLabPipeline, san: "https://gitlab.com/grp/app//.gitlab-ci.yml@refs/heads/main", chal: "project_path:grp/app:ref_type:branch:ref:main",
			checkEx: func(t *testing.T, e certext.Extensions) {
				want := certext.Extensions{
					Issuer: iss, Subject: "project_path:grp/app:ref_type:branch:ref:main",
					BuildSignerURI: "https://gitlab.com/grp/app//.gitlab-ci.yml@refs/heads/main", BuildSignerDigest: "c0ffee",
					RunnerEnvironment: "gitlab-hosted", SourceRepositoryURI: "https://gitlab.com/grp/app", SourceRepositoryDigest: "abc",
					SourceRepositoryRef: "refs/heads/main", SourceRepositoryIdentifier: "77", SourceRepositoryOwnerURI: "https://gitlab.com/grp",
					SourceRepositoryOwnerIdentifier: "5", BuildConfigURI: "https://gitlab.com/grp/app//.gitlab-ci.yml@refs/heads/main",
					BuildConfigDigest: "c0ffee", BuildTrigger: "push", RunInvocationURI: "https://gitlab.com/grp/app/-/jobs/1234",
					SourceRepositoryVisibilityAtSigning: "private", DeploymentEnvironment: "prod",
				}
				if e != want {
					t.Fatalf("got %+v\nwant %+v", e, want)
				}
			},
		},
		{
			name: "buildkite with numeric build number", cfg: IssuerConfig{Type: TypeBuildkiteJob},
			claims: map[string]any{
				"sub": "organization:acme:pipeline:app:ref:refs/heads/main:commit:abc:step:build", "organization_slug": "acme", "pipeline_slug": "app",
				"build_number": 17, "job_id": "0190-uuid", "runner_environment": "buildkite-hosted", "build_commit": "abc", "build_source": "webhook",
			},
			typ: TypeBuildkiteJob, san: "https://buildkite.com/acme/app", chal: "organization:acme:pipeline:app:ref:refs/heads/main:commit:abc:step:build",
			checkEx: func(t *testing.T, e certext.Extensions) {
				if e.RunInvocationURI != "https://buildkite.com/acme/app/builds/17#0190-uuid" || e.SourceRepositoryDigest != "abc" || e.BuildTrigger != "webhook" || e.RunnerEnvironment != "buildkite-hosted" {
					t.Fatalf("got %+v", e)
				}
			},
		},
		{
			name: "circleci ssh rerun", cfg: IssuerConfig{Type: TypeCircleCI},
			claims: map[string]any{
				"sub": "org/o1/project/p1/user/u1", "oidc.circleci.com/project-id": "p1", "oidc.circleci.com/pipeline-definition-id": "d1",
				"oidc.circleci.com/pipeline-id": "pl1", "oidc.circleci.com/workflow-id": "w1", "oidc.circleci.com/job-id": "j1",
				"oidc.circleci.com/vcs-ref": "refs/heads/main", "oidc.circleci.com/vcs-origin": "github.com/acme/app", "oidc.circleci.com/ssh-rerun": true,
			},
			typ: TypeCircleCI, san: "https://circleci.com/api/v2/projects/p1/pipeline-definitions/d1", chal: "org/o1/project/p1/user/u1",
			checkEx: func(t *testing.T, e certext.Extensions) {
				if e.BuildConfigURI != "https://circleci.com/api/v2/pipeline/pl1/config" || e.RunInvocationURI != "https://app.circleci.com/workflow/w1/job/j1" ||
					e.RunnerEnvironment != "ssh-rerun" || e.SourceRepositoryURI != "github.com/acme/app" || e.SourceRepositoryRef != "refs/heads/main" ||
					e.BuildSignerURI != "https://circleci.com/api/v2/projects/p1/pipeline-definitions/d1" {
					t.Fatalf("got %+v", e)
				}
			},
		},
		{
			name: "kubernetes (tekton task)", cfg: IssuerConfig{Type: TypeKubernetes},
			claims: map[string]any{"sub": "system:serviceaccount:ci:tekton-build", "kubernetes.io": map[string]any{"namespace": "ci", "serviceaccount": map[string]any{"name": "tekton-build", "uid": "u"}}},
			typ:    TypeKubernetes, san: "https://kubernetes.io/namespaces/ci/serviceaccounts/tekton-build", chal: "system:serviceaccount:ci:tekton-build",
		},
		{
			name: "spiffe", cfg: IssuerConfig{Type: TypeSPIFFE, SPIFFETrustDomain: "example.org"},
			claims: map[string]any{"sub": "spiffe://example.org/ns/ci/sa/builder"},
			typ:    TypeSPIFFE, san: "spiffe://example.org/ns/ci/sa/builder", chal: "spiffe://example.org/ns/ci/sa/builder",
		},
		{
			name: "uri", cfg: IssuerConfig{Type: TypeURI, SubjectDomain: "https://ci.example.com"},
			claims: map[string]any{"sub": "https://ci.example.com/jobs/7"},
			typ:    TypeURI, san: "https://ci.example.com/jobs/7", chal: "https://ci.example.com/jobs/7",
		},
		{
			name: "email signs the address", cfg: IssuerConfig{Type: TypeEmail},
			claims: map[string]any{"sub": "10998", "email": "alice@example.com", "email_verified": true},
			typ:    TypeEmail, san: "alice@example.com", chal: "alice@example.com",
			checkEx: func(t *testing.T, e certext.Extensions) {
				if e != (certext.Extensions{Issuer: iss, Subject: "10998"}) {
					t.Fatalf("got %+v", e)
				}
			},
		},
		{
			name: "email_verified as string", cfg: IssuerConfig{Type: TypeEmail},
			claims: map[string]any{"sub": "x", "email": "bob@example.com", "email_verified": "true"},
			typ:    TypeEmail, san: "bob@example.com", chal: "bob@example.com",
		},
		{
			name: "github enterprise platform url", cfg: IssuerConfig{Type: TypeGitHubWorkflow, PlatformURL: "https://ghe.corp.example/"},
			claims: githubClaims(), typ: TypeGitHubWorkflow,
			san: "https://ghe.corp.example/acme/widget/.github/workflows/release.yml@refs/heads/main", chal: "repo:acme/widget:ref:refs/heads/main",
			checkEx: func(t *testing.T, e certext.Extensions) {
				if e.SourceRepositoryURI != "https://ghe.corp.example/acme/widget" || e.RunInvocationURI != "https://ghe.corp.example/acme/widget/actions/runs/42/attempts/1" {
					t.Fatalf("got %+v", e)
				}
			},
		},
		{
			name: "audience override", cfg: IssuerConfig{Type: TypeEmail, Audience: "signet"},
			claims: map[string]any{"sub": "x", "aud": []string{"other", "signet"}, "email": "a@example.com", "email_verified": true},
			typ:    TypeEmail, san: "a@example.com", chal: "a@example.com",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.URL, cfg.KeySet = iss, s.keySet()
			p, err := newVerifier(t, cfg).Verify(context.Background(), s.mint(t, tt.claims))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if p.Type != tt.typ || p.SAN() != tt.san || p.Challenge != tt.chal || p.Issuer != iss {
				t.Fatalf("principal = type %s san %s challenge %s issuer %s", p.Type, p.SAN(), p.Challenge, p.Issuer)
			}
			if (p.URI != nil) == (p.Email != "") {
				t.Fatalf("principal must have exactly one SAN: %+v", p)
			}
			if p.Extensions.Issuer != iss || p.Extensions.Subject != tt.claims["sub"] {
				t.Fatalf("issuer/subject extensions = %q/%q", p.Extensions.Issuer, p.Extensions.Subject)
			}
			if tt.checkEx != nil {
				tt.checkEx(t, p.Extensions)
			}
		})
	}
}

// One auto issuer (the dev issuer's mode) maps each token shape to its type.
func TestAutoPicksTypeFromClaims(t *testing.T) {
	const iss = "http://127.0.0.1:9/dev"
	s := newSigner(t, iss)
	v := newVerifier(t, IssuerConfig{URL: iss, Type: TypeAuto, KeySet: s.keySet(), SPIFFETrustDomain: "example.org"})
	cases := map[Type]map[string]any{
		TypeGitHubWorkflow: githubClaims(),
		TypeGitLabPipeline: {"sub": "s", "ci_config_ref_uri": "gitlab.com/g/a//.gitlab-ci.yml@refs/heads/main", "ci_config_sha": "1", "runner_environment": "self-hosted",
			"project_path": "g/a", "sha": "1", "ref_type": "tag", "ref": "v1", "project_id": 1, "namespace_path": "g", "namespace_id": 2, "pipeline_source": "push", "pipeline_id": 3, "job_id": 4, "project_visibility": "public"},
		TypeBuildkiteJob: {"sub": "s", "organization_slug": "o", "pipeline_slug": "p", "build_number": 1, "job_id": "j", "runner_environment": "self-hosted", "build_commit": "c", "build_source": "ui"},
		TypeCircleCI:     {"sub": "s", "oidc.circleci.com/project-id": "p", "oidc.circleci.com/pipeline-definition-id": "d", "oidc.circleci.com/pipeline-id": "x", "oidc.circleci.com/workflow-id": "w", "oidc.circleci.com/job-id": "j"},
		TypeKubernetes:   {"sub": "s", "kubernetes.io": map[string]any{"namespace": "n", "serviceaccount": map[string]any{"name": "a"}}},
		TypeEmail:        {"sub": "s", "email": "dev@example.com", "email_verified": true},
		TypeSPIFFE:       {"sub": "spiffe://example.org/w"},
	}
	for want, claims := range cases {
		p, err := v.Verify(context.Background(), s.mint(t, claims))
		if err != nil {
			t.Fatalf("%s: %v", want, err)
		}
		if p.Type != want {
			t.Fatalf("auto chose %s, want %s", p.Type, want)
		}
	}
	_, err := v.Verify(context.Background(), s.mint(t, map[string]any{"sub": "plain"}))
	wantRefusal(t, err, ReasonClaim, "cannot tell the identity type")
}

func TestRefusals(t *testing.T) {
	const iss = "https://issuer.example"
	s := newSigner(t, iss)
	other := newSigner(t, iss)
	v := newVerifier(t,
		IssuerConfig{URL: iss, Type: TypeAuto, KeySet: s.keySet()},
		IssuerConfig{URL: "https://spiffe.example", Type: TypeSPIFFE, SPIFFETrustDomain: "example.org", KeySet: s.keySet()},
		IssuerConfig{URL: "https://uri.example", Type: TypeURI, SubjectDomain: "https://ci.example.com", KeySet: s.keySet()},
		IssuerConfig{URL: "https://k8s.example", Type: TypeKubernetes, KeySet: s.keySet()},
		IssuerConfig{URL: "https://gh.example", Type: TypeGitHubWorkflow, KeySet: s.keySet()},
		IssuerConfig{URL: "https://gl.example", Type: TypeGitLabPipeline, KeySet: s.keySet()},
	)
	email := map[string]any{"sub": "s", "email": "a@example.com", "email_verified": true}
	with := func(base map[string]any, kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	gh := githubClaims()
	tests := []struct {
		name   string
		token  string
		reason Reason
		msg    []string
	}{
		{"empty", "", ReasonMalformed, []string{"empty"}},
		{"not a JWT", "abc.def", ReasonMalformed, []string{"not a JWT"}},
		{"payload not base64", "a.%%%.c", ReasonMalformed, []string{"base64url"}},
		{"payload not JSON", "a." + base64.RawURLEncoding.EncodeToString([]byte("nope")) + ".c", ReasonMalformed, []string{"JSON"}},
		{"no iss", s.mint(t, with(email, "iss", nil)), ReasonClaim, []string{"iss"}},
		{"issuer not configured", s.mint(t, with(email, "iss", "https://rogue.example")), ReasonIssuer, []string{"https://rogue.example", "oidcIssuers"}},
		{"wrong audience", s.mint(t, with(email, "aud", "fulcio")), ReasonAudience, []string{`"sigstore"`, `["fulcio"]`}},
		{"expired", s.mint(t, with(email, "exp", time.Now().Add(-time.Minute).Unix())), ReasonExpired, []string{"expired", "fresh token"}},
		{"no exp", s.mint(t, with(email, "exp", nil)), ReasonClaim, []string{"exp"}},
		{"not yet valid", s.mint(t, with(email, "nbf", time.Now().Add(time.Hour).Unix())), ReasonNotYetValid, []string{"not valid before"}},
		{"issued in the future", s.mint(t, with(email, "iat", time.Now().Add(time.Hour).Unix(), "exp", time.Now().Add(2*time.Hour).Unix())), ReasonNotYetValid, []string{"in the future", "clock skew"}},
		{"valid until 2200", s.mint(t, with(email, "iat", time.Now().Unix(), "exp", time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).Unix())), ReasonClaim, []string{"longer than the 24h0m0s", "ca.maxTokenLifetime"}},
		{"valid for 25 hours without iat", s.mint(t, with(email, "iat", nil, "exp", time.Now().Add(25*time.Hour).Unix())), ReasonClaim, []string{"longer than"}},
		{"signed by another key", other.mint(t, email), ReasonSignature, []string{"signature does not verify", iss}},
		{"email not verified", s.mint(t, with(email, "email_verified", false)), ReasonEmailUnverified, []string{"a@example.com", "not verified"}},
		{"email malformed", s.mint(t, with(email, "email", "Alice <a@example.com>")), ReasonClaim, []string{"plain email"}},
		{"github missing claims", s.mint(t, with(gh, "iss", "https://gh.example", "run_attempt", "", "workflow_sha", nil)), ReasonClaim, []string{"workflow_sha, run_attempt", "github-workflow"}},
		{"github without sub", s.mint(t, with(gh, "iss", "https://gh.example", "sub", nil)), ReasonClaim, []string{"no sub"}},
		{"gitlab bad ref_type", s.mint(t, map[string]any{"iss": "https://gl.example", "sub": "s", "ci_config_ref_uri": "gitlab.com/g/a//x.yml@refs/heads/main", "ci_config_sha": "1",
			"runner_environment": "x", "project_path": "g/a", "sha": "1", "ref_type": "weird", "ref": "v1", "project_id": 1, "namespace_path": "g", "namespace_id": 2,
			"pipeline_source": "push", "pipeline_id": 3, "job_id": 4, "project_visibility": "public"}), ReasonClaim, []string{"ref_type"}},
		{"spiffe other trust domain", s.mint(t, map[string]any{"iss": "https://spiffe.example", "sub": "spiffe://evil.org/w"}), ReasonClaim, []string{"evil.org", "example.org"}},
		{"spiffe not an id", s.mint(t, map[string]any{"iss": "https://spiffe.example", "sub": "https://example.org/w"}), ReasonClaim, []string{"not a SPIFFE ID"}},
		{"uri outside domain", s.mint(t, map[string]any{"iss": "https://uri.example", "sub": "https://evil.example.com/x"}), ReasonClaim, []string{"outside the subject domain"}},
		{"uri is an email", s.mint(t, map[string]any{"iss": "https://uri.example", "sub": "a@ci.example.com"}), ReasonClaim, []string{"email address"}},
		{"kubernetes path injection", s.mint(t, map[string]any{"iss": "https://k8s.example", "sub": "s", "kubernetes.io": map[string]any{"namespace": "ci/serviceaccounts/admin", "serviceaccount": map[string]any{"name": "x"}}}), ReasonClaim, []string{"not a valid Kubernetes name"}},
		{"kubernetes without claim", s.mint(t, map[string]any{"iss": "https://k8s.example", "sub": "s"}), ReasonClaim, []string{"kubernetes.io"}},
		{"HMAC-signed (algorithm confusion)", hmacToken(t, with(email)), ReasonMalformed, []string{"not a valid JWS"}},
		{"claim of wrong type", s.mint(t, with(email, "email_verified", "maybe")), ReasonClaim, []string{"unexpected shape"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), tt.token)
			if p != nil {
				t.Fatalf("token accepted: %+v", p)
			}
			wantRefusal(t, err, tt.reason, tt.msg...)
		})
	}
}

func TestMetaIssuer(t *testing.T) {
	s := newSigner(t, "")
	v := newVerifier(t, IssuerConfig{MetaIssuerURL: "https://oidc.eks.*.amazonaws.com/id/*", Type: TypeKubernetes, KeySet: s.keySet()})
	k8s := map[string]any{"sub": "system:serviceaccount:ci:builder", "kubernetes.io": map[string]any{"namespace": "ci", "serviceaccount": map[string]any{"name": "builder"}}}
	for _, iss := range []string{"https://oidc.eks.us-east-1.amazonaws.com/id/ABC123", "https://oidc.eks.eu-west-2.amazonaws.com/id/Z_9-x"} {
		k8s["iss"] = iss
		p, err := v.Verify(context.Background(), s.mint(t, k8s))
		if err != nil {
			t.Fatalf("%s: %v", iss, err)
		}
		if p.Issuer != iss || p.Extensions.Issuer != iss {
			t.Fatalf("issuer = %s", p.Issuer)
		}
	}
	for _, iss := range []string{
		"https://oidc.eks.us-east-1.evil.com/id/ABC",        // wrong domain
		"https://oidc.eks.a.b.amazonaws.com/id/ABC",         // '*' must not span dots
		"https://oidc.eks.us-east-1.amazonaws.com/id/A/B",   // nor slashes
		"https://oidc.eks.us-east-1.amazonaws.com/id/ABC?x", // nor other characters
	} {
		k8s["iss"] = iss
		_, err := v.Verify(context.Background(), s.mint(t, k8s))
		wantRefusal(t, err, ReasonIssuer, iss)
	}
}

func TestDiscoveryFailureIsUnavailableAndNotRetriedAtOnce(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	s := newSigner(t, srv.URL)
	v := newVerifier(t, IssuerConfig{URL: srv.URL, Type: TypeEmail})
	tok := s.mint(t, map[string]any{"sub": "s", "email": "a@example.com", "email_verified": true})
	for i := 0; i < 3; i++ {
		_, err := v.Verify(context.Background(), tok)
		wantRefusal(t, err, ReasonIssuerUnavailable, "cannot discover", ".well-known/openid-configuration")
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("issuer contacted %d times, want 1 within the retry interval", n)
	}
}

func TestJWKSFile(t *testing.T) {
	const iss = "https://static.example"
	s := newSigner(t, iss)
	dir := t.TempDir()
	write := func(name string, keys ...jose.JSONWebKey) string {
		b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pub := write("pub.json", jose.JSONWebKey{Key: &s.key.PublicKey, KeyID: s.kid, Algorithm: "ES256", Use: "sig"})
	v := newVerifier(t, IssuerConfig{URL: iss, Type: TypeEmail, JWKSFile: pub})
	if _, err := v.Verify(context.Background(), s.mint(t, map[string]any{"sub": "s", "email": "a@example.com", "email_verified": true})); err != nil {
		t.Fatalf("Verify with jwksFile: %v", err)
	}
	priv := write("priv.json", jose.JSONWebKey{Key: s.key, KeyID: "p"})
	if _, err := NewVerifier(context.Background(), []IssuerConfig{{URL: iss, Type: TypeEmail, JWKSFile: priv}}); err == nil || !strings.Contains(err.Error(), "private key") {
		t.Fatalf("private JWKS accepted: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	ks := newSigner(t, "x").keySet()
	tests := []struct {
		name string
		cfgs []IssuerConfig
		want string
	}{
		{"none", nil, "no OIDC issuers"},
		{"no url", []IssuerConfig{{Type: TypeEmail}}, "neither url nor metaIssuerURL"},
		{"both urls", []IssuerConfig{{URL: "https://a", MetaIssuerURL: "https://*.a", Type: TypeEmail}}, "both url and metaIssuerURL"},
		{"wildcard in url", []IssuerConfig{{URL: "https://*.a", Type: TypeEmail}}, "metaIssuerURL"},
		{"meta without wildcard", []IssuerConfig{{MetaIssuerURL: "https://a", Type: TypeEmail}}, "has no '*'"},
		{"relative url", []IssuerConfig{{URL: "issuer.example", Type: TypeEmail}}, "absolute http(s) URL"},
		{"unknown type", []IssuerConfig{{URL: "https://a", Type: "github"}}, `type "github" is not supported`},
		{"spiffe without domain", []IssuerConfig{{URL: "https://a", Type: TypeSPIFFE}}, "spiffeTrustDomain"},
		{"bad trust domain", []IssuerConfig{{URL: "https://a", Type: TypeSPIFFE, SPIFFETrustDomain: "Bad Domain"}}, "spiffeTrustDomain"},
		{"uri without domain", []IssuerConfig{{URL: "https://a", Type: TypeURI}}, "subjectDomain"},
		{"trust domain on email", []IssuerConfig{{URL: "https://a", Type: TypeEmail, SPIFFETrustDomain: "example.org"}}, "only meaningful"},
		{"platform url on kubernetes", []IssuerConfig{{URL: "https://a", Type: TypeKubernetes, PlatformURL: "https://x"}}, "platformURL"},
		{"duplicate", []IssuerConfig{{URL: "https://a", Type: TypeEmail}, {URL: "https://a", Type: TypeURI, SubjectDomain: "https://b"}}, "repeats https://a"},
		{"jwks and keyset", []IssuerConfig{{URL: "https://a", Type: TypeEmail, JWKSFile: "/x", KeySet: ks}}, "both jwksFile"},
		{"jwks missing", []IssuerConfig{{URL: "https://a", Type: TypeEmail, JWKSFile: filepath.Join(t.TempDir(), "none.json")}}, "jwksFile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(context.Background(), tt.cfgs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewVerifier = %v, %v; want error mentioning %q", v, err, tt.want)
			}
		})
	}
}

func TestIssuersDescribeConfiguration(t *testing.T) {
	ks := newSigner(t, "x").keySet()
	v := newVerifier(t,
		IssuerConfig{URL: "https://mail.example", Type: TypeEmail, KeySet: ks},
		IssuerConfig{MetaIssuerURL: "https://oidc.eks.*.amazonaws.com/id/*", Type: TypeKubernetes, Audience: "k8s"},
		IssuerConfig{URL: "https://spire.example", Type: TypeSPIFFE, SPIFFETrustDomain: "example.org"},
	)
	got := v.Issuers()
	want := []IssuerInfo{
		{URL: "https://mail.example", Type: TypeEmail, Audience: "sigstore", ChallengeClaim: "email"},
		{MetaIssuerURL: "https://oidc.eks.*.amazonaws.com/id/*", Type: TypeKubernetes, Audience: "k8s", ChallengeClaim: "sub"},
		{URL: "https://spire.example", Type: TypeSPIFFE, Audience: "sigstore", ChallengeClaim: "sub", SPIFFETrustDomain: "example.org"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d issuers", len(got))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("issuer %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func parseCert(der []byte) (*x509.Certificate, error) { return x509.ParseCertificate(der) }

// countingKeySet counts signature verifications.
type countingKeySet struct {
	oidc.KeySet
	n atomic.Int32
}

func (c *countingKeySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	c.n.Add(1)
	return c.KeySet.VerifySignature(ctx, jwt)
}

func TestVerifiedTokenCache(t *testing.T) {
	const iss = "https://cache.example"
	s := newSigner(t, iss)
	now := time.Now()
	clock := func() time.Time { return now }
	ks := &countingKeySet{KeySet: s.keySet()}
	v, err := NewVerifier(context.Background(), []IssuerConfig{{URL: iss, Type: TypeKubernetes, KeySet: ks}}, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	tok := s.mint(t, map[string]any{"sub": "system:serviceaccount:a:b", "exp": now.Add(time.Minute).Unix(),
		"kubernetes.io": map[string]any{"namespace": "a", "serviceaccount": map[string]any{"name": "b"}}})
	p1, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	p1.URI.Path = "/tampered" // callers own their copy
	p1.Challenge = "tampered"
	p2, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if ks.n.Load() != 1 {
		t.Fatalf("signature checked %d times for one token presented twice", ks.n.Load())
	}
	if p2.SAN() != "https://kubernetes.io/namespaces/a/serviceaccounts/b" || p2.Challenge != "system:serviceaccount:a:b" {
		t.Fatalf("cached principal was changed through a returned copy: %+v", p2)
	}
	// A different token (another signature) is verified on its own.
	// (A signature that already ends in "AA" gets "BB": the token must change.)
	altered := tok[:len(tok)-2] + "AA"
	if altered == tok {
		altered = tok[:len(tok)-2] + "BB"
	}
	if _, err := v.Verify(context.Background(), altered); err == nil {
		t.Fatal("token with a altered signature accepted")
	}
	now = now.Add(2 * time.Minute)
	_, err = v.Verify(context.Background(), tok)
	wantRefusal(t, err, ReasonExpired, "expired")

	off, err := NewVerifier(context.Background(), []IssuerConfig{{URL: iss, Type: TypeKubernetes, KeySet: ks}}, WithTokenCacheSize(0))
	if err != nil {
		t.Fatal(err)
	}
	ks.n.Store(0)
	tok = s.mint(t, map[string]any{"sub": "s", "kubernetes.io": map[string]any{"namespace": "a", "serviceaccount": map[string]any{"name": "b"}}})
	for i := 0; i < 2; i++ {
		if _, err := off.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if ks.n.Load() != 2 {
		t.Fatalf("with the cache off, signature checked %d times, want 2", ks.n.Load())
	}
}

// Buildkite and CircleCI extensions whose claims are absent are left out.
func TestOptionalCIClaims(t *testing.T) {
	const iss = "https://opt.example"
	s := newSigner(t, iss)
	v := newVerifier(t, IssuerConfig{URL: iss, Type: TypeAuto, KeySet: s.keySet()})
	p, err := v.Verify(context.Background(), s.mint(t, map[string]any{"sub": "s", "organization_slug": "o", "pipeline_slug": "p", "build_number": 3, "job_id": "j"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := (certext.Extensions{Issuer: iss, Subject: "s", RunInvocationURI: "https://buildkite.com/o/p/builds/3#j"}); p.Extensions != want {
		t.Fatalf("buildkite: %+v", p.Extensions)
	}
	p, err = v.Verify(context.Background(), s.mint(t, map[string]any{"sub": "s", "oidc.circleci.com/project-id": "p", "oidc.circleci.com/pipeline-definition-id": "d", "oidc.circleci.com/workflow-id": "w"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := (certext.Extensions{Issuer: iss, Subject: "s", BuildSignerURI: "https://circleci.com/api/v2/projects/p/pipeline-definitions/d"}); p.Extensions != want {
		t.Fatalf("circleci: %+v", p.Extensions)
	}
	_, err = v.Verify(context.Background(), s.mint(t, map[string]any{"sub": "s", "oidc.circleci.com/project-id": "p"}))
	wantRefusal(t, err, ReasonClaim, "oidc.circleci.com/pipeline-definition-id")
}

// hmacToken signs claims with HS256, which must never be accepted.
func hmacToken(t *testing.T, claims map[string]any) string {
	t.Helper()
	claims["iss"], claims["aud"], claims["exp"] = "https://issuer.example", "sigstore", time.Now().Add(time.Minute).Unix()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := sig.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
