package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

var testKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

// mint makes a signed JWT with the given claims.
func mint(t testing.TB, claims map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: testKey}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func ciToken(t testing.TB, sub string) string {
	return mint(t, map[string]any{"iss": "https://issuer.example", "sub": sub, "aud": "sigstore", "exp": time.Now().Add(5 * time.Minute).Unix()})
}

// env returns a Getenv over a map, so no test reads the real environment.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func noFiles(string) ([]byte, error) { return nil, fs.ErrNotExist }

func baseOptions(vars map[string]string) Options {
	return Options{
		Getenv:   env(vars),
		ReadFile: noFiles,
		RunCommand: func(context.Context, string, ...string) ([]byte, error) {
			return nil, errors.New("no commands in this test")
		},
		FetchSPIFFE: func(context.Context, string, string) (string, error) {
			return "", errors.New("no SPIFFE in this test")
		},
	}
}

func TestExplicitJWTAndFile(t *testing.T) {
	tok := ciToken(t, "explicit-user")
	o := baseOptions(map[string]string{"SIGSTORE_ID_TOKEN": ciToken(t, "env-user")})
	o.Explicit = tok
	got, err := Detect(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got.Source != SourceExplicit || got.Raw != tok || got.Claims.Subject != "explicit-user" {
		t.Fatalf("got %+v", got)
	}

	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o.Explicit = path
	o.ReadFile = os.ReadFile
	got, err = Detect(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got.Raw != tok {
		t.Fatalf("token from file = %q", got.Raw)
	}

	o.Explicit = filepath.Join(t.TempDir(), "missing")
	if _, err := Detect(context.Background(), o); err == nil || !strings.Contains(err.Error(), "neither a JWT nor a readable file") {
		t.Fatalf("missing file: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("hello"), 0o600)
	o.Explicit = bad
	if _, err := Detect(context.Background(), o); err == nil || !strings.Contains(err.Error(), "does not hold a JWT") {
		t.Fatalf("bad file: %v", err)
	}
}

func TestEnvTokenWinsOverCI(t *testing.T) {
	tok := ciToken(t, "project_path:acme/app:ref_type:branch:ref:main")
	o := baseOptions(map[string]string{"SIGSTORE_ID_TOKEN": tok, "GITLAB_CI": "true", "GITHUB_ACTIONS": "true"})
	got, err := Detect(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got.Source != SourceEnv || got.Raw != tok {
		t.Fatalf("got %+v", got)
	}
}

func TestGitLabWithoutIDTokens(t *testing.T) {
	_, err := Detect(context.Background(), baseOptions(map[string]string{"GITLAB_CI": "true"}))
	if !errors.Is(err, ErrNoToken) || !strings.Contains(err.Error(), "id_tokens:\n    SIGSTORE_ID_TOKEN:\n      aud: sigstore") {
		t.Fatalf("err = %v", err)
	}
}

func TestGitHubActions(t *testing.T) {
	tok := ciToken(t, "repo:acme/app:ref:refs/heads/main")
	var gotAuth, gotAudience, gotOther string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		gotAudience = r.URL.Query().Get("audience")
		gotOther = r.URL.Query().Get("api-version")
		fmt.Fprintf(w, `{"count":1,"value":%q}`, tok)
	}))
	defer srv.Close()
	o := baseOptions(map[string]string{
		"GITHUB_ACTIONS":                 "true",
		"ACTIONS_ID_TOKEN_REQUEST_URL":   srv.URL + "/token?api-version=2.0",
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-secret",
	})
	o.Audience = "my-fulcio"
	got, err := Detect(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got.Source != SourceGitHubActions || got.Raw != tok {
		t.Fatalf("got %+v", got)
	}
	if gotAuth != "Bearer request-secret" || gotAudience != "my-fulcio" || gotOther != "2.0" {
		t.Fatalf("request: auth %q audience %q api-version %q", gotAuth, gotAudience, gotOther)
	}
}

func TestGitHubActionsEndpointError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"message":"Unable to get ACTIONS_ID_TOKEN_REQUEST_URL env variable"}`, http.StatusForbidden)
	}))
	defer srv.Close()
	o := baseOptions(map[string]string{"ACTIONS_ID_TOKEN_REQUEST_URL": srv.URL, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "x"})
	_, err := Detect(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "HTTP 403") || !strings.Contains(err.Error(), "Unable to get") {
		t.Fatalf("err = %v", err)
	}
}

func TestGitHubActionsMissingPermission(t *testing.T) {
	_, err := Detect(context.Background(), baseOptions(map[string]string{"GITHUB_ACTIONS": "true"}))
	if !errors.Is(err, ErrNoToken) || !strings.Contains(err.Error(), "add `permissions: id-token: write` to the workflow or job") {
		t.Fatalf("err = %v", err)
	}
}

func TestBuildkite(t *testing.T) {
	tok := ciToken(t, "organization:acme:pipeline:app")
	o := baseOptions(map[string]string{"BUILDKITE": "true"})
	var ran string
	o.RunCommand = func(_ context.Context, name string, args ...string) ([]byte, error) {
		ran = name + " " + strings.Join(args, " ")
		return []byte(tok + "\n"), nil
	}
	got, err := Detect(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got.Source != SourceBuildkite || got.Raw != tok || ran != "buildkite-agent oidc request-token --audience sigstore" {
		t.Fatalf("got %+v after running %q", got, ran)
	}

	o.RunCommand = func(context.Context, string, ...string) ([]byte, error) {
		return nil, errors.New(`exec: "buildkite-agent": executable file not found in $PATH`)
	}
	if _, err := Detect(context.Background(), o); err == nil || !strings.Contains(err.Error(), "buildkite-agent oidc request-token --audience sigstore` failed") {
		t.Fatalf("err = %v", err)
	}
}

func TestCircleCI(t *testing.T) {
	tok := ciToken(t, "org/o/project/p/user/u/vcs-origin/github.com/acme/app/vcs-ref/refs/heads/main")
	got, err := Detect(context.Background(), baseOptions(map[string]string{"CIRCLECI": "true", "CIRCLE_OIDC_TOKEN_V2": tok}))
	if err != nil {
		t.Fatal(err)
	}
	if got.Source != SourceCircleCI || got.Raw != tok {
		t.Fatalf("got %+v", got)
	}
	_, err = Detect(context.Background(), baseOptions(map[string]string{"CIRCLECI": "true"}))
	if !errors.Is(err, ErrNoToken) || !strings.Contains(err.Error(), "context") {
		t.Fatalf("err = %v", err)
	}
}

func TestKubernetesFile(t *testing.T) {
	tok := ciToken(t, "system:serviceaccount:build:chains")
	dir := t.TempDir()
	path := filepath.Join(dir, "oidc-token")
	os.WriteFile(path, []byte(tok), 0o600)
	o := baseOptions(nil)
	o.ReadFile = os.ReadFile
	o.KubernetesTokenPath = path
	got, err := Detect(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got.Source != SourceKubernetes || got.Raw != tok {
		t.Fatalf("got %+v", got)
	}
	// The default path is the one Tekton Chains and cosign use.
	var asked string
	o = baseOptions(nil)
	o.ReadFile = func(p string) ([]byte, error) { asked = p; return []byte(tok), nil }
	if got, err := Detect(context.Background(), o); err != nil || got.Source != SourceKubernetes || asked != "/var/run/sigstore/cosign/oidc-token" {
		t.Fatalf("default path: asked %q, got %v, %v", asked, got, err)
	}
	os.WriteFile(path, nil, 0o600)
	o = baseOptions(nil)
	o.ReadFile = os.ReadFile
	o.KubernetesTokenPath = path
	if _, err := Detect(context.Background(), o); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("empty file: %v", err)
	}
}

// fakeWorkloadAPI is a SPIFFE workload API serving one JWT-SVID.
type fakeWorkloadAPI struct {
	workload.UnimplementedSpiffeWorkloadAPIServer
	svid, audience, header string
}

func (f *fakeWorkloadAPI) FetchJWTSVID(ctx context.Context, req *workload.JWTSVIDRequest) (*workload.JWTSVIDResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("workload.spiffe.io"); len(v) > 0 {
		f.header = v[0]
	}
	f.audience = strings.Join(req.GetAudience(), ",")
	return &workload.JWTSVIDResponse{Svids: []*workload.JWTSVID{{SpiffeId: "spiffe://example.org/ci/builder", Svid: f.svid}}}, nil
}

func TestSPIFFEWorkloadAPI(t *testing.T) {
	svid := mint(t, map[string]any{"iss": "https://oidc.example.org", "sub": "spiffe://example.org/ci/builder", "aud": []string{"sigstore"}, "exp": time.Now().Add(5 * time.Minute).Unix()})
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeWorkloadAPI{svid: svid}
	gs := grpc.NewServer()
	workload.RegisterSpiffeWorkloadAPIServer(gs, fake)
	go gs.Serve(l)
	defer gs.Stop()

	o := baseOptions(map[string]string{"SPIFFE_ENDPOINT_SOCKET": "unix://" + sock})
	o.FetchSPIFFE = nil // the real go-spiffe client
	got, err := Detect(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got.Source != SourceSPIFFE || got.Raw != svid || got.Claims.Subject != "spiffe://example.org/ci/builder" {
		t.Fatalf("got %+v", got)
	}
	if fake.audience != "sigstore" || fake.header != "true" {
		t.Fatalf("workload API saw audience %q, security header %q", fake.audience, fake.header)
	}

	o = baseOptions(map[string]string{"SPIFFE_ENDPOINT_SOCKET": "unix://" + sock})
	o.FetchSPIFFE = func(context.Context, string, string) (string, error) { return "", errors.New("permission denied") }
	if _, err := Detect(context.Background(), o); err == nil || !strings.Contains(err.Error(), "SPIFFE_ENDPOINT_SOCKET") || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("err = %v", err)
	}
}

func TestNoSource(t *testing.T) {
	_, err := Detect(context.Background(), baseOptions(nil))
	if !errors.Is(err, ErrNoToken) || !strings.Contains(err.Error(), "SIGSTORE_ID_TOKEN") || strings.Contains(err.Error(), "--") {
		t.Fatalf("err = %v", err)
	}
}

func TestExpiredToken(t *testing.T) {
	tok := mint(t, map[string]any{"iss": "https://issuer.example", "sub": "x", "exp": time.Now().Add(-time.Minute).Unix()})
	_, err := Detect(context.Background(), baseOptions(map[string]string{"SIGSTORE_ID_TOKEN": tok}))
	if err == nil || !strings.Contains(err.Error(), "expired") || !strings.Contains(err.Error(), "SIGSTORE_ID_TOKEN") {
		t.Fatalf("err = %v", err)
	}
}

func TestClaimsAndProofSubject(t *testing.T) {
	c, err := ParseClaims(mint(t, map[string]any{"iss": "https://accounts.example", "sub": "12345", "email": "alice@example.com", "email_verified": true}))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := c.ProofSubject(); err != nil || s != "alice@example.com" {
		t.Fatalf("email token: %q, %v", s, err)
	}
	c, _ = ParseClaims(mint(t, map[string]any{"iss": "https://accounts.example", "sub": "12345", "email": "alice@example.com", "email_verified": "false"}))
	if _, err := c.ProofSubject(); err == nil || !strings.Contains(err.Error(), "not verified") {
		t.Fatalf("unverified email: %v", err)
	}
	c, _ = ParseClaims(ciToken(t, "repo:acme/app:ref:refs/heads/main"))
	if s, err := c.ProofSubject(); err != nil || s != "repo:acme/app:ref:refs/heads/main" {
		t.Fatalf("subject token: %q, %v", s, err)
	}
	for name, raw := range map[string]string{
		"not a JWT": "abc.def.ghi",
		"no issuer": mint(t, map[string]any{"sub": "x"}),
		"no sub":    mint(t, map[string]any{"iss": "https://i"}),
	} {
		if _, err := ParseClaims(raw); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
