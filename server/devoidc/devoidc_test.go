package devoidc

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/signet-dev/signet/server/identity"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/signet-dev/signet/server/apierror"
)

type fixture struct {
	iss *Issuer
	srv *httptest.Server
	dir string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	iss, err := New(Options{IssuerURL: srv.URL + "/dev/oidc", DataDir: dir, Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	iss.Register(mux)
	return &fixture{iss: iss, srv: srv, dir: dir}
}

// fetch does what actions/toolkit's getIDToken does: GET the request URL
// with "&audience=" appended and a bearer request token.
func (f *fixture) fetch(t *testing.T, requestURL, auth string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, requestURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (f *fixture) token(t *testing.T, query string) string {
	t.Helper()
	status, body := f.fetch(t, f.iss.IssuerURL()+"/token?"+query, "Bearer "+f.iss.RequestToken())
	if status != http.StatusOK {
		t.Fatalf("token request %q: status %d: %s", query, status, body)
	}
	var tr struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.Value == "" {
		t.Fatalf("token response %s is not {\"value\": \"<JWT>\"}", body)
	}
	return tr.Value
}

func claimsOf(t *testing.T, tok *oidc.IDToken) map[string]any {
	t.Helper()
	var c map[string]any
	if err := tok.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestKindsVerifyWithDiscoveredProvider fetches tokens over HTTP the way CI
// clients do and verifies them with go-oidc's discovery and remote JWKS.
func TestKindsVerifyWithDiscoveredProvider(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, f.iss.IssuerURL())
	if err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}
	verifier := provider.Verifier(&oidc.Config{ClientID: DefaultAudience})
	sha := strings.Repeat("a1", 20)

	for _, tc := range []struct {
		name  string
		query string
		want  map[string]any
	}{
		{"github defaults", "kind=github", map[string]any{
			"sub":                   "repo:acme/widget:ref:refs/heads/main",
			"repository":            "acme/widget",
			"repository_owner":      "acme",
			"ref":                   "refs/heads/main",
			"ref_type":              "branch",
			"workflow":              ".github/workflows/release.yml",
			"workflow_ref":          "acme/widget/.github/workflows/release.yml@refs/heads/main",
			"job_workflow_ref":      "acme/widget/.github/workflows/release.yml@refs/heads/main",
			"event_name":            "push",
			"runner_environment":    "github-hosted",
			"repository_visibility": "public",
			"run_attempt":           "1",
		}},
		{"github chosen", "repository=octo/app&ref=refs/tags/v1.2.3&workflow=.github/workflows/build.yaml&workflow_name=Build&event=workflow_dispatch&sha=" + sha +
			"&actor=bob&run_id=42&runner_environment=self-hosted&repository_visibility=private&job_workflow_ref=octo/shared/.github/workflows/reuse.yml@refs/heads/v2", map[string]any{
			"sub":                   "repo:octo/app:ref:refs/tags/v1.2.3",
			"ref_type":              "tag",
			"workflow":              "Build",
			"workflow_ref":          "octo/app/.github/workflows/build.yaml@refs/tags/v1.2.3",
			"job_workflow_ref":      "octo/shared/.github/workflows/reuse.yml@refs/heads/v2",
			"sha":                   sha,
			"workflow_sha":          sha,
			"job_workflow_sha":      sha,
			"event_name":            "workflow_dispatch",
			"actor":                 "bob",
			"run_id":                "42",
			"runner_environment":    "self-hosted",
			"repository_visibility": "private",
			"repository_owner":      "octo",
		}},
		{"github environment", "kind=github&repository=octo/app&environment=prod", map[string]any{
			"sub": "repo:octo/app:environment:prod", "environment": "prod",
		}},
		{"github pull request", "kind=github&event=pull_request&ref=refs/pull/7/merge&head_ref=feature&base_ref=main", map[string]any{
			"sub": "repo:acme/widget:pull_request", "head_ref": "feature", "base_ref": "main", "ref_type": "",
		}},
		{"gitlab", "kind=gitlab&project_path=grp/sub/proj&ref=release&pipeline_id=99&host=gitlab.example.com", map[string]any{
			"sub":                "project_path:grp/sub/proj:ref_type:branch:ref:release",
			"namespace_path":     "grp/sub",
			"project_path":       "grp/sub/proj",
			"ref":                "release",
			"ref_path":           "refs/heads/release",
			"pipeline_id":        "99",
			"ci_config_ref_uri":  "gitlab.example.com/grp/sub/proj//.gitlab-ci.yml@refs/heads/release",
			"runner_environment": "gitlab-hosted",
			"runner_id":          float64(1),
		}},
		{"gitlab tag", "kind=gitlab&ref=v1&ref_type=tag", map[string]any{
			"sub": "project_path:acme/widget:ref_type:tag:ref:v1", "ref_path": "refs/tags/v1",
		}},
		{"kubernetes", "kind=kubernetes&namespace=build&serviceaccount=tekton-runner&pod=task-1-pod", map[string]any{
			"sub": "system:serviceaccount:build:tekton-runner",
			"aud": []any{DefaultAudience},
		}},
		{"buildkite", "kind=buildkite&organization_slug=acme-inc&pipeline_slug=app&build_number=17&build_commit=" + sha + "&step_key=build", map[string]any{
			"sub":               "organization:acme-inc:pipeline:app:ref:refs/heads/main:commit:" + sha + ":step:build",
			"organization_slug": "acme-inc",
			"build_number":      float64(17),
			"build_tag":         nil,
			"step_key":          "build",
		}},
		{"circleci", "kind=circleci&org_id=11111111-1111-4111-8111-111111111111&project_id=22222222-2222-4222-8222-222222222222&user_id=33333333-3333-4333-8333-333333333333&context_ids=44444444-4444-4444-8444-444444444444", map[string]any{
			"sub":                           "org/11111111-1111-4111-8111-111111111111/project/22222222-2222-4222-8222-222222222222/user/33333333-3333-4333-8333-333333333333",
			"oidc.circleci.com/project-id":  "22222222-2222-4222-8222-222222222222",
			"oidc.circleci.com/vcs-origin":  "github.com/acme/widget",
			"oidc.circleci.com/vcs-ref":     "refs/heads/main",
			"oidc.circleci.com/context-ids": []any{"44444444-4444-4444-8444-444444444444"},
			"oidc.circleci.com/ssh-rerun":   false,
		}},
		{"spiffe", "kind=spiffe&trust_domain=prod.example.com&path=/ns/ci/sa/builder", map[string]any{
			"sub": "spiffe://prod.example.com/ns/ci/sa/builder",
		}},
		{"email", "kind=email&email=bob@example.org", map[string]any{
			"sub": "bob@example.org", "email": "bob@example.org", "email_verified": true,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := f.token(t, tc.query)
			idt, err := verifier.Verify(ctx, raw)
			if err != nil {
				t.Fatalf("go-oidc rejects the token: %v", err)
			}
			if idt.Issuer != f.iss.IssuerURL() {
				t.Errorf("iss %q, want %q", idt.Issuer, f.iss.IssuerURL())
			}
			got := claimsOf(t, idt)
			for k, want := range tc.want {
				gj, _ := json.Marshal(got[k])
				wj, _ := json.Marshal(want)
				if _, present := got[k]; !present || !bytes.Equal(gj, wj) {
					t.Errorf("claim %s = %s, want %s", k, gj, wj)
				}
			}
			// The in-process key set the CA uses accepts the same token.
			if _, err := f.iss.Verifier(DefaultAudience).Verify(ctx, raw); err != nil {
				t.Errorf("in-process KeySet rejects the token: %v", err)
			}
		})
	}
}

func TestKubernetesClaimObject(t *testing.T) {
	f := newFixture(t)
	raw := f.token(t, "kind=kubernetes&namespace=build&serviceaccount=runner&pod=runner-abc&node=n1")
	idt, err := f.iss.Verifier(DefaultAudience).Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		K8s struct {
			Namespace      string `json:"namespace"`
			ServiceAccount struct{ Name, UID string }
			Pod            struct{ Name, UID string }
			Node           struct{ Name, UID string }
		} `json:"kubernetes.io"`
	}
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	k := c.K8s
	if k.Namespace != "build" || k.ServiceAccount.Name != "runner" || k.Pod.Name != "runner-abc" || k.Node.Name != "n1" {
		t.Errorf("kubernetes.io claim %+v", k)
	}
	if k.ServiceAccount.UID == "" || k.Pod.UID == "" || k.ServiceAccount.UID == k.Pod.UID {
		t.Errorf("uids missing or equal: %+v", k)
	}
}

func TestTimesAudienceAndJTI(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// actions/toolkit appends "&audience=" to ACTIONS_ID_TOKEN_REQUEST_URL.
	requestURL := f.iss.IssuerURL() + "/token?kind=email"
	status, body := f.fetch(t, requestURL+"&audience=custom-aud", "bearer "+f.iss.RequestToken())
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	var tr tokenResponse
	_ = json.Unmarshal(body, &tr)
	if _, err := f.iss.Verifier(DefaultAudience).Verify(ctx, tr.Value); err == nil {
		t.Error("token for audience custom-aud verified for audience sigstore")
	}
	idt, err := f.iss.Verifier("custom-aud").Verify(ctx, tr.Value)
	if err != nil {
		t.Fatalf("custom audience: %v", err)
	}
	c := claimsOf(t, idt)
	iat, nbf, exp := c["iat"].(float64), c["nbf"].(float64), c["exp"].(float64)
	if exp-iat != TokenLifetime.Seconds() || nbf != iat {
		t.Errorf("iat %v nbf %v exp %v; want nbf=iat and a %v lifetime", iat, nbf, exp, TokenLifetime)
	}
	if d := time.Since(time.Unix(int64(iat), 0)); d < -time.Minute || d > time.Minute {
		t.Errorf("iat %v is not now", iat)
	}
	other := claimsOf(t, mustVerify(t, f, f.token(t, "kind=email")))
	if c["jti"] == "" || c["jti"] == other["jti"] {
		t.Errorf("jti %v and %v must be present and distinct", c["jti"], other["jti"])
	}

	// Expiry is enforced: a verifier whose clock is past exp refuses it.
	late := oidc.NewVerifier(f.iss.IssuerURL(), f.iss.KeySet(), &oidc.Config{
		ClientID: "custom-aud", SupportedSigningAlgs: []string{SigningAlgorithm},
		Now: func() time.Time { return time.Now().Add(TokenLifetime + 10*time.Minute) },
	})
	if _, err := late.Verify(ctx, tr.Value); err == nil {
		t.Error("token still valid after its lifetime")
	}
}

func mustVerify(t *testing.T, f *fixture, raw string) *oidc.IDToken {
	t.Helper()
	idt, err := f.iss.Verifier(DefaultAudience).Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	return idt
}

func TestDiscoveryDocument(t *testing.T) {
	f := newFixture(t)
	status, body := f.fetch(t, f.iss.IssuerURL()+"/.well-known/openid-configuration", "")
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	var d map[string]any
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	if d["issuer"] != f.iss.IssuerURL() || d["jwks_uri"] != f.iss.IssuerURL()+"/jwks" {
		t.Errorf("issuer %v jwks_uri %v", d["issuer"], d["jwks_uri"])
	}
	if algs, _ := d["id_token_signing_alg_values_supported"].([]any); len(algs) != 1 || algs[0] != "RS256" {
		t.Errorf("algorithms %v, want [RS256]", algs)
	}
	status, body = f.fetch(t, f.iss.IssuerURL()+"/jwks", "")
	if status != http.StatusOK || !strings.Contains(string(body), `"kid":"`+f.iss.keyID+`"`) || strings.Contains(string(body), `"d":`) {
		t.Errorf("JWKS %d %s: want the public key with its kid and no private part", status, body)
	}
}

func TestRequestTokenRefusals(t *testing.T) {
	f := newFixture(t)
	u := f.iss.IssuerURL() + "/token?kind=email&audience=sigstore"
	for _, auth := range []string{"", "Bearer wrong", "Basic " + f.iss.RequestToken(), "Bearer", f.iss.RequestToken()} {
		status, body := f.fetch(t, u, auth)
		if status != http.StatusUnauthorized {
			t.Errorf("Authorization %q: status %d, want 401", auth, status)
			continue
		}
		var e apierror.Body
		_ = json.Unmarshal(body, &e)
		if !strings.Contains(e.Message, filepath.Join(f.dir, "dev-oidc", "request-token")) {
			t.Errorf("401 message %q does not say where the request token is", e.Message)
		}
		if strings.Contains(string(body), f.iss.RequestToken()) && !strings.Contains(auth, f.iss.RequestToken()) {
			t.Error("401 body leaks the request token")
		}
	}
}

func TestBadParameters(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ query, msg string }{
		{"kind=jenkins", `unknown kind "jenkins"; use one of buildkite, circleci, email, github, gitlab, kubernetes, spiffe`},
		{"kind=github&repo=acme/widget", `unknown parameter "repo" for kind=github; known: repository,`},
		{"kind=github&repository=widget", `parameter repository="widget": not owner/name`},
		{"kind=github&ref=main", `parameter ref="main": not a full git ref`},
		{"kind=github&sha=abc", "not a 40-character lowercase hex commit SHA"},
		{"kind=github&workflow=release.yml", "not a workflow file path"},
		{"kind=github&environment=a:b", "must not contain ':'"},
		{"kind=github&runner_environment=cloud", "must be one of github-hosted, self-hosted"},
		{"kind=github&actor=a&actor=b", `parameter "actor" given 2 times`},
		{"kind=email&kind=github", `"kind" given 2 times`},
		{"kind=gitlab&project_path=solo", "not group/project"},
		{"kind=gitlab&ref=refs/heads/main", "without refs/heads/"},
		{"kind=kubernetes&namespace=Build", "not a Kubernetes namespace name"},
		{"kind=buildkite&job_id=nope", "not a lowercase UUID"},
		{"kind=circleci&context_ids=x", `list entry "x"`},
		{"kind=spiffe&trust_domain=Bad_Domain", "trust_domain"},
		{"kind=spiffe&path=", "must name a workload"},
		{"kind=email&email=Alice <alice@example.com>", "not a bare email address"},
	} {
		q := tc.query
		if strings.Contains(q, " ") {
			q = strings.NewReplacer(" ", "%20", "<", "%3C", ">", "%3E").Replace(q)
		}
		status, body := f.fetch(t, f.iss.IssuerURL()+"/token?"+q, "Bearer "+f.iss.RequestToken())
		var e apierror.Body
		_ = json.Unmarshal(body, &e)
		if status != http.StatusBadRequest || !strings.Contains(e.Message, tc.msg) {
			t.Errorf("%s: status %d message %q, want 400 containing %q", tc.query, status, e.Message, tc.msg)
		}
	}
}

func TestMintInProcess(t *testing.T) {
	f := newFixture(t)
	raw, err := f.iss.Mint("github", url.Values{"repository": {"octo/lib"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if sub := mustVerify(t, f, raw).Subject; sub != "repo:octo/lib:ref:refs/heads/main" {
		t.Errorf("sub %q", sub)
	}
	if _, err := f.iss.Mint("github", url.Values{"audience": {"x"}}, ""); err == nil {
		t.Error("Mint accepted audience as an identity parameter")
	}
}

func TestRestartKeepsKeyAndRequestToken(t *testing.T) {
	dir := t.TempDir()
	opts := Options{IssuerURL: "http://127.0.0.1:1/dev/oidc", DataDir: dir}
	first, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := first.Mint("email", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	second, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if first.RequestToken() != second.RequestToken() || len(second.RequestToken()) != 64 {
		t.Errorf("request token changed across restart: %q -> %q", first.RequestToken(), second.RequestToken())
	}
	if _, err := second.Verifier(DefaultAudience).Verify(context.Background(), raw); err != nil {
		t.Errorf("token minted before restart does not verify after: %v", err)
	}
	for _, name := range []string{"signing-key.pem", "request-token"} {
		fi, err := os.Stat(filepath.Join(dir, "dev-oidc", name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %o, want 600", name, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "dev-oidc")); fi.Mode().Perm() != 0o700 {
		t.Errorf("dev-oidc directory mode %o, want 700", fi.Mode().Perm())
	}
	// Another data directory is another issuer identity.
	third, err := New(Options{IssuerURL: opts.IssuerURL, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if third.RequestToken() == first.RequestToken() {
		t.Error("two data directories share a request token")
	}
	if _, err := third.Verifier(DefaultAudience).Verify(context.Background(), raw); err == nil {
		t.Error("a fresh issuer key verified another issuer's token")
	}
}

func TestNewRefusals(t *testing.T) {
	t.Run("issuer URLs", func(t *testing.T) {
		for _, u := range []string{"", "127.0.0.1:8080/dev/oidc", "ftp://h/dev/oidc", "http://h/dev/oidc/", "http://h/dev/oidc?x=1", "http://h/dev/../oidc"} {
			if _, err := New(Options{IssuerURL: u, DataDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "issuer URL") {
				t.Errorf("issuer %q: err %v, want an issuer URL error", u, err)
			}
		}
	})
	t.Run("no data dir", func(t *testing.T) {
		if _, err := New(Options{IssuerURL: "http://h/dev/oidc"}); err == nil || !strings.Contains(err.Error(), "data directory") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("corrupt request token", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "dev-oidc", "request-token")
		_ = os.MkdirAll(filepath.Dir(p), 0o700)
		_ = os.WriteFile(p, []byte("not hex\n"), 0o600)
		if _, err := New(Options{IssuerURL: "http://h/dev/oidc", DataDir: dir}); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "delete it") {
			t.Errorf("err %v, want one naming %s and the fix", err, p)
		}
	})
	t.Run("corrupt key", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "dev-oidc", "signing-key.pem")
		_ = os.MkdirAll(filepath.Dir(p), 0o700)
		_ = os.WriteFile(p, []byte("garbage"), 0o600)
		if _, err := New(Options{IssuerURL: "http://h/dev/oidc", DataDir: dir}); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("err %v, want one naming %s", err, p)
		}
	})
	t.Run("world-readable token", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := New(Options{IssuerURL: "http://h/dev/oidc", DataDir: dir}); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "dev-oidc", "request-token")
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := New(Options{IssuerURL: "http://h/dev/oidc", DataDir: dir}); err == nil || !strings.Contains(err.Error(), "chmod 600 "+p) {
			t.Errorf("err %v, want a chmod hint for %s", err, p)
		}
	})
}

func TestLoudWarning(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	if _, err := New(Options{IssuerURL: "http://h/dev/oidc", DataDir: t.TempDir(), Logger: log}); err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("log %q: %v", buf.String(), err)
	}
	if rec["level"] != "WARN" || !strings.Contains(rec["msg"].(string), "ANY identity") || !strings.Contains(rec["msg"].(string), "never expose") {
		t.Errorf("warning %v", rec)
	}
}

func TestRootIssuerPath(t *testing.T) {
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	iss, err := New(Options{IssuerURL: srv.URL, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	iss.Register(mux)
	if _, err := oidc.NewProvider(context.Background(), srv.URL); err != nil {
		t.Fatalf("discovery at the server root: %v", err)
	}
}

func TestTokenURLWithoutQuestionMark(t *testing.T) {
	f := newFixture(t)
	status, body := f.fetch(t, f.iss.IssuerURL()+"/token&audience=sigstore", "Bearer "+f.iss.RequestToken())
	var e apierror.Body
	_ = json.Unmarshal(body, &e)
	if status != http.StatusNotFound || !strings.Contains(e.Message, "needs '?'") || !strings.Contains(e.Message, f.iss.IssuerURL()+"/token?kind=github") {
		t.Errorf("status %d message %q; want 404 explaining the missing '?'", status, e.Message)
	}
	status, body = f.fetch(t, f.iss.IssuerURL()+"/keys", "")
	_ = json.Unmarshal(body, &e)
	if status != http.StatusNotFound || !strings.Contains(e.Message, "/jwks") {
		t.Errorf("status %d message %q; want 404 listing the endpoints", status, e.Message)
	}
}

// The issuer refuses to mint a token the CA would refuse for its size.
func TestMintRefusesTokensTheCARefuses(t *testing.T) {
	f := newFixture(t)
	_, err := f.iss.Mint("github", url.Values{"repository": {"acme/" + strings.Repeat("a", identity.MaxTokenBytes)}}, "")
	if err == nil || !strings.Contains(err.Error(), "the CA accepts") {
		t.Fatalf("err %v, want the size refused", err)
	}
}
