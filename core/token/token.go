// Package token finds the OIDC identity token signet exchanges for a signing
// certificate. Sources are tried in a fixed, documented order (see Detect);
// the first that applies wins, and the result says which one it was.
//
// A CI platform that is detected but does not hand out a token is an error,
// not a reason to fall through to a later source: signing with a different
// identity than the one the user set up would surprise them. The error says
// exactly what to add to the pipeline.
package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/signet-dev/signet/core/sign/transport"
)

// Source names where a token came from.
type Source string

// The sources, in detection order.
const (
	SourceExplicit      Source = "given explicitly"
	SourceEnv           Source = "SIGSTORE_ID_TOKEN"
	SourceGitHubActions Source = "GitHub Actions"
	SourceBuildkite     Source = "Buildkite"
	SourceCircleCI      Source = "CircleCI"
	SourceKubernetes    Source = "Kubernetes projected token"
	SourceSPIFFE        Source = "SPIFFE workload API"
)

// DefaultAudience is the audience Sigstore CAs accept.
const DefaultAudience = "sigstore"

// DefaultKubernetesTokenPath is where Tekton Chains and cosign mount a
// projected service account token with audience sigstore.
const DefaultKubernetesTokenPath = "/var/run/sigstore/cosign/oidc-token"

// Token is an identity token and what it says about itself. The claims are
// read without verification: the CA verifies the token; signet only uses
// them to make the proof of possession and to report the identity.
type Token struct {
	Raw    string
	Source Source
	Claims Claims
}

// Claims are the token claims signet uses.
type Claims struct {
	Issuer        string
	Subject       string
	Audience      []string
	Expiry        time.Time
	Email         string
	EmailVerified bool
}

// Options configure Detect. Everything the outside world provides is
// injectable so each source can be tested.
type Options struct {
	// Explicit is --identity-token: a JWT, or the path of a file holding one.
	Explicit string
	// Audience requested from token endpoints. Default "sigstore".
	Audience string
	// KubernetesTokenPath defaults to DefaultKubernetesTokenPath.
	KubernetesTokenPath string

	// Getenv defaults to os.Getenv.
	Getenv func(string) string
	// ReadFile defaults to os.ReadFile.
	ReadFile func(string) ([]byte, error)
	// HTTPClient is used for the GitHub Actions token endpoint.
	HTTPClient *http.Client
	// RunCommand runs an external program and returns its standard output;
	// used for buildkite-agent. Default: os/exec.
	RunCommand func(ctx context.Context, name string, args ...string) ([]byte, error)
	// FetchSPIFFE fetches a JWT-SVID from the workload API at socket.
	// Default: go-spiffe's workloadapi.FetchJWTSVID.
	FetchSPIFFE func(ctx context.Context, socket, audience string) (string, error)
	// Now defaults to time.Now; used for the expiry check.
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Audience == "" {
		o.Audience = DefaultAudience
	}
	if o.KubernetesTokenPath == "" {
		o.KubernetesTokenPath = DefaultKubernetesTokenPath
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.ReadFile == nil {
		o.ReadFile = os.ReadFile
	}
	if o.HTTPClient == nil {
		o.HTTPClient = transport.NewClient(transport.Options{Timeout: 30 * time.Second})
	}
	if o.RunCommand == nil {
		o.RunCommand = runCommand
	}
	if o.FetchSPIFFE == nil {
		o.FetchSPIFFE = fetchSPIFFE
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// ErrNoToken is returned (wrapped) when no source applies.
var ErrNoToken = errors.New("no identity token found")

// ErrBadExplicitToken is returned (wrapped) when Options.Explicit is neither
// a JWT nor a readable file holding one.
var ErrBadExplicitToken = errors.New("the identity token given is not usable")

// Detect finds an identity token, trying in order:
//
//  1. Options.Explicit (--identity-token): a JWT or a file holding one;
//  2. $SIGSTORE_ID_TOKEN (also how GitLab CI `id_tokens:` pass theirs);
//  3. GitHub Actions: $ACTIONS_ID_TOKEN_REQUEST_URL with
//     $ACTIONS_ID_TOKEN_REQUEST_TOKEN;
//  4. Buildkite (BUILDKITE=true): `buildkite-agent oidc request-token`;
//  5. CircleCI: $CIRCLE_OIDC_TOKEN_V2;
//  6. a Kubernetes projected token file (Options.KubernetesTokenPath);
//  7. the SPIFFE workload API at $SPIFFE_ENDPOINT_SOCKET (JWT-SVID).
func Detect(ctx context.Context, o Options) (*Token, error) {
	o.defaults()
	raw, src, err := find(ctx, &o)
	if err != nil {
		return nil, err
	}
	claims, err := ParseClaims(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.token(), err)
	}
	if now := o.Now(); !claims.Expiry.IsZero() && !now.Before(claims.Expiry) {
		return nil, fmt.Errorf("%s expired at %s (%s ago); obtain a fresh one: CI tokens live minutes, so request it right before signing",
			src.token(), claims.Expiry.UTC().Format(time.RFC3339), now.Sub(claims.Expiry).Round(time.Second))
	}
	return &Token{Raw: raw, Source: src, Claims: claims}, nil
}

// token names the token of a source in messages.
func (s Source) token() string {
	if s == SourceExplicit {
		return "the identity token given"
	}
	return "the identity token from " + string(s)
}

func find(ctx context.Context, o *Options) (string, Source, error) {
	env := o.Getenv
	if o.Explicit != "" {
		raw, err := explicit(o)
		return raw, SourceExplicit, err
	}
	if t := strings.TrimSpace(env("SIGSTORE_ID_TOKEN")); t != "" {
		return t, SourceEnv, nil
	}
	if env("GITLAB_CI") == "true" {
		return "", "", fmt.Errorf("%w: GitLab CI detected but SIGSTORE_ID_TOKEN is not set; add to the job:\n\n  id_tokens:\n    SIGSTORE_ID_TOKEN:\n      aud: %s\n", ErrNoToken, o.Audience)
	}
	if reqURL := env("ACTIONS_ID_TOKEN_REQUEST_URL"); reqURL != "" || env("GITHUB_ACTIONS") == "true" {
		reqToken := env("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
		if reqURL == "" || reqToken == "" {
			return "", "", fmt.Errorf("%w: GitHub Actions detected but the job cannot request an OIDC token (ACTIONS_ID_TOKEN_REQUEST_URL/ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set); add `permissions: id-token: write` to the workflow or job (for pull requests from forks GitHub never grants it)", ErrNoToken)
		}
		raw, err := gitHubActions(ctx, o, reqURL, reqToken)
		return raw, SourceGitHubActions, err
	}
	if env("BUILDKITE") == "true" {
		raw, err := buildkite(ctx, o)
		return raw, SourceBuildkite, err
	}
	if t := strings.TrimSpace(env("CIRCLE_OIDC_TOKEN_V2")); t != "" {
		return t, SourceCircleCI, nil
	}
	if env("CIRCLECI") == "true" {
		return "", "", fmt.Errorf("%w: CircleCI detected but CIRCLE_OIDC_TOKEN_V2 is not set; CircleCI issues OIDC tokens only to jobs that use a context: add `context: [<context-name>]` to the job in the workflow (fork builds also need \"Pass secrets to builds from forked pull requests\")", ErrNoToken)
	}
	if data, err := o.ReadFile(o.KubernetesTokenPath); err == nil {
		t := strings.TrimSpace(string(data))
		if t == "" {
			return "", "", fmt.Errorf("Kubernetes token file %s is empty; check the projected volume (serviceAccountToken with audience %s)", o.KubernetesTokenPath, o.Audience)
		}
		return t, SourceKubernetes, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("Kubernetes token file %s: %v", o.KubernetesTokenPath, err)
	}
	if socket := env("SPIFFE_ENDPOINT_SOCKET"); socket != "" {
		raw, err := o.FetchSPIFFE(ctx, socket, o.Audience)
		if err != nil {
			return "", "", fmt.Errorf("SPIFFE workload API at %s (SPIFFE_ENDPOINT_SOCKET): fetching a JWT-SVID with audience %q: %v; check the workload is registered with the SPIRE agent", socket, o.Audience, err)
		}
		return raw, SourceSPIFFE, nil
	}
	return "", "", fmt.Errorf("%w: give one explicitly (a JWT or a file holding one) or set SIGSTORE_ID_TOKEN; in CI, signet reads the token of GitHub Actions (needs `permissions: id-token: write`), GitLab (`id_tokens: SIGSTORE_ID_TOKEN`), Buildkite, CircleCI (job with a context), a Kubernetes projected token at %s, or SPIFFE (SPIFFE_ENDPOINT_SOCKET)", ErrNoToken, o.KubernetesTokenPath)
}

func explicit(o *Options) (string, error) {
	v := strings.TrimSpace(o.Explicit)
	if _, err := ParseClaims(v); err == nil {
		return v, nil
	}
	data, err := o.ReadFile(v)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || strings.Count(v, ".") == 2 {
			return "", fmt.Errorf("%w: it is neither a JWT nor a readable file (%v); give the token itself or the path of a file holding it", ErrBadExplicitToken, err)
		}
		return "", fmt.Errorf("%w: reading the token file: %v", ErrBadExplicitToken, err)
	}
	t := strings.TrimSpace(string(data))
	if _, err := ParseClaims(t); err != nil {
		return "", fmt.Errorf("%w: the file %s does not hold a JWT: %v", ErrBadExplicitToken, v, err)
	}
	return t, nil
}

// maxTokenAnswer bounds the token endpoint's answer; a JWT is a few KiB.
const maxTokenAnswer = 64 << 10

func gitHubActions(ctx context.Context, o *Options, reqURL, reqToken string) (string, error) {
	u, err := url.Parse(reqURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("ACTIONS_ID_TOKEN_REQUEST_URL %q is not a URL", reqURL)
	}
	q := u.Query()
	q.Set("audience", o.Audience)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+reqToken)
	req.Header.Set("Accept", "application/json")
	const service = "GitHub Actions OIDC token endpoint"
	resp, err := o.HTTPClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s: %w", service, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", transport.ErrorFrom(service, resp)
	}
	body, err := transport.ReadBody(service, resp, maxTokenAnswer)
	if err != nil {
		return "", err
	}
	var answer struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &answer); err != nil || answer.Value == "" {
		return "", fmt.Errorf(`%s: answer is not {"value": "<token>"}`, service)
	}
	return answer.Value, nil
}

func buildkite(ctx context.Context, o *Options) (string, error) {
	out, err := o.RunCommand(ctx, "buildkite-agent", "oidc", "request-token", "--audience", o.Audience)
	if err != nil {
		return "", fmt.Errorf("Buildkite detected (BUILDKITE=true) but `buildkite-agent oidc request-token --audience %s` failed: %v; run signet inside a Buildkite job step where buildkite-agent is on PATH", o.Audience, err)
	}
	t := strings.TrimSpace(string(out))
	if t == "" {
		return "", errors.New("`buildkite-agent oidc request-token` printed no token")
	}
	return t, nil
}

func runCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && stderr.Len() > 0 {
		return nil, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out, err
}

func fetchSPIFFE(ctx context.Context, socket, audience string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	svid, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: audience}, workloadapi.WithAddr(socket))
	if err != nil {
		return "", err
	}
	return svid.Marshal(), nil
}

// Signature algorithms accepted when reading a token's claims. The
// signature is not checked here, but the header must name a real algorithm.
var tokenAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// ParseClaims reads a JWT's claims without verifying its signature.
func ParseClaims(raw string) (Claims, error) {
	tok, err := jwt.ParseSigned(raw, tokenAlgorithms)
	if err != nil {
		return Claims{}, fmt.Errorf("not a signed JWT: %v", err)
	}
	var std jwt.Claims
	var extra struct {
		Email         string `json:"email"`
		EmailVerified any    `json:"email_verified"`
	}
	if err := tok.UnsafeClaimsWithoutVerification(&std, &extra); err != nil {
		return Claims{}, fmt.Errorf("JWT claims: %v", err)
	}
	c := Claims{Issuer: std.Issuer, Subject: std.Subject, Audience: std.Audience, Email: extra.Email}
	if std.Expiry != nil {
		c.Expiry = std.Expiry.Time()
	}
	// Some issuers send email_verified as a string.
	switch v := extra.EmailVerified.(type) {
	case bool:
		c.EmailVerified = v
	case string:
		c.EmailVerified = v == "true"
	}
	if c.Issuer == "" {
		return Claims{}, errors.New("JWT has no iss claim")
	}
	if c.Subject == "" && c.Email == "" {
		return Claims{}, errors.New("JWT has neither a sub nor an email claim")
	}
	return c, nil
}

// ProofSubject is what a Fulcio proof of possession signs: the email for a
// token with an email claim (which must be verified), else the subject —
// the rule Fulcio and the Sigstore clients share.
func (c Claims) ProofSubject() (string, error) {
	if c.Email != "" {
		if !c.EmailVerified {
			return "", fmt.Errorf("the token's email %s is not verified by the identity provider (email_verified is not true); the CA will refuse it", c.Email)
		}
		return c.Email, nil
	}
	if c.Subject == "" {
		return "", errors.New("the token has no sub claim")
	}
	return c.Subject, nil
}

// Identity is a short description for progress output: the email or subject
// and the issuer.
func (c Claims) Identity() string {
	who := c.Subject
	if c.Email != "" {
		who = c.Email
	}
	return who + " (issuer " + c.Issuer + ")"
}
