// Package identity verifies CI and workload OIDC identity tokens and maps
// them to the identity a code-signing certificate certifies: the subject
// alternative name, the proof-of-possession challenge, and the Fulcio
// certificate extensions, following Fulcio's per-provider rules.
package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Type selects how a token's claims become a certificate identity.
type Type string

// Identity types. The names of the CI types follow Fulcio's ci-provider names.
const (
	TypeGitHubWorkflow Type = "github-workflow" // GitHub Actions
	TypeGitLabPipeline Type = "gitlab-pipeline" // GitLab CI
	TypeBuildkiteJob   Type = "buildkite-job"   // Buildkite
	TypeCircleCI       Type = "circleci"        // CircleCI
	TypeKubernetes     Type = "kubernetes"      // service-account tokens (Tekton tasks, pods)
	TypeSPIFFE         Type = "spiffe"          // JWT-SVIDs
	TypeEmail          Type = "email"           // verified email address
	TypeURI            Type = "uri"             // sub is a URI under a configured domain
	// TypeAuto picks one of the types above from the shape of each token's
	// claims; meant for development issuers that mint tokens of every shape.
	TypeAuto Type = "auto"
)

var knownTypes = []Type{TypeGitHubWorkflow, TypeGitLabPipeline, TypeBuildkiteJob, TypeCircleCI, TypeKubernetes, TypeSPIFFE, TypeEmail, TypeURI, TypeAuto}

// DefaultAudience is the audience Sigstore clients request tokens for.
const DefaultAudience = "sigstore"

// IssuerConfig is one trusted OIDC issuer, as an operator writes it in the
// server's YAML configuration.
type IssuerConfig struct {
	// URL is the exact issuer (iss) of the tokens. Exactly one of
	// URL and MetaIssuerURL is set.
	URL string `yaml:"url,omitempty"`
	// MetaIssuerURL is an issuer URL pattern in which each '*' stands for one
	// URL component made of letters, digits, '-' and '_', e.g.
	// https://oidc.eks.*.amazonaws.com/id/* for every EKS cluster. Each
	// matching issuer is discovered on first use.
	MetaIssuerURL string `yaml:"metaIssuerURL,omitempty"`
	// Type is how claims map to an identity.
	Type Type `yaml:"type"`
	// Audience is the client ID the tokens must be issued to; default "sigstore".
	Audience string `yaml:"audience,omitempty"`
	// SubjectDomain is required for type uri: the scheme and host that every
	// sub URI must have, e.g. https://ci.example.com.
	SubjectDomain string `yaml:"subjectDomain,omitempty"`
	// SPIFFETrustDomain is required for type spiffe: the trust domain every
	// SPIFFE ID (sub) must belong to.
	SPIFFETrustDomain string `yaml:"spiffeTrustDomain,omitempty"`
	// PlatformURL is the web address of the CI platform, used to build the
	// URIs in certificates (GitHub Enterprise Server, self-managed GitLab,
	// ...). Defaults to the public service of the type.
	PlatformURL string `yaml:"platformURL,omitempty"`
	// JWKSFile, if set, is a JSON Web Key Set file holding the issuer's public
	// keys; the issuer is then never contacted (no discovery, no key fetch).
	JWKSFile string `yaml:"jwksFile,omitempty"`
	// KeySet, set in code, supplies the verification keys directly: for
	// in-process issuers such as the development issuer.
	KeySet oidc.KeySet `yaml:"-"`
}

// metaComponent is what a '*' in a meta-issuer URL matches: the same
// character class Fulcio uses, which cannot span '.' or '/'.
const metaComponent = `[-_a-zA-Z0-9]+`

// compiled is a validated IssuerConfig with its derived values.
type compiled struct {
	IssuerConfig
	pattern     *regexp.Regexp // meta issuers only
	keySet      oidc.KeySet    // static keys, or nil for discovery
	trustDomain spiffeid.TrustDomain
	subjectURL  *url.URL
}

func (c IssuerConfig) name() string {
	if c.URL != "" {
		return c.URL
	}
	return c.MetaIssuerURL
}

// compile checks one configuration entry and fills its defaults. Errors name
// the field at fault and what a valid value looks like.
func (c IssuerConfig) compile() (*compiled, error) {
	out := &compiled{IssuerConfig: c}
	if out.Audience == "" {
		out.Audience = DefaultAudience
	}
	switch {
	case c.URL == "" && c.MetaIssuerURL == "":
		return nil, errors.New("neither url nor metaIssuerURL is set; set url to the token issuer (iss), e.g. https://token.actions.githubusercontent.com")
	case c.URL != "" && c.MetaIssuerURL != "":
		return nil, errors.New("both url and metaIssuerURL are set; set exactly one")
	case c.URL != "":
		if strings.Contains(c.URL, "*") {
			return nil, fmt.Errorf("url %q contains '*'; put wildcard issuers in metaIssuerURL", c.URL)
		}
		if err := checkIssuerURL(c.URL); err != nil {
			return nil, fmt.Errorf("url: %w", err)
		}
	default:
		if !strings.Contains(c.MetaIssuerURL, "*") {
			return nil, fmt.Errorf("metaIssuerURL %q has no '*'; use url for a single issuer", c.MetaIssuerURL)
		}
		if err := checkIssuerURL(strings.ReplaceAll(c.MetaIssuerURL, "*", "x")); err != nil {
			return nil, fmt.Errorf("metaIssuerURL: %w", err)
		}
		quoted := strings.ReplaceAll(regexp.QuoteMeta(c.MetaIssuerURL), `\*`, metaComponent)
		out.pattern = regexp.MustCompile("^" + quoted + "$")
	}
	if !isKnownType(c.Type) {
		return nil, fmt.Errorf("type %q is not supported; use one of %s", c.Type, typeList())
	}
	if c.PlatformURL != "" {
		switch c.Type {
		case TypeGitHubWorkflow, TypeGitLabPipeline, TypeBuildkiteJob, TypeAuto:
		default:
			return nil, fmt.Errorf("platformURL is only used by types %s, %s, %s and auto, not %s", TypeGitHubWorkflow, TypeGitLabPipeline, TypeBuildkiteJob, c.Type)
		}
		if _, err := parseHTTPURL(c.PlatformURL); err != nil {
			return nil, fmt.Errorf("platformURL: %w", err)
		}
		out.PlatformURL = strings.TrimRight(c.PlatformURL, "/")
	}
	if c.Type == TypeSPIFFE || (c.Type == TypeAuto && c.SPIFFETrustDomain != "") {
		if c.SPIFFETrustDomain == "" {
			return nil, errors.New("type spiffe needs spiffeTrustDomain, the trust domain its SPIFFE IDs belong to (e.g. example.org)")
		}
		td, err := spiffeid.TrustDomainFromString(c.SPIFFETrustDomain)
		if err != nil {
			return nil, fmt.Errorf("spiffeTrustDomain %q: %v", c.SPIFFETrustDomain, err)
		}
		out.trustDomain = td
	} else if c.SPIFFETrustDomain != "" {
		return nil, fmt.Errorf("spiffeTrustDomain is only meaningful for type spiffe or auto, not %s", c.Type)
	}
	if c.Type == TypeURI || (c.Type == TypeAuto && c.SubjectDomain != "") {
		if c.SubjectDomain == "" {
			return nil, errors.New("type uri needs subjectDomain, the scheme and host every subject URI must have (e.g. https://ci.example.com)")
		}
		u, err := parseHTTPURL(c.SubjectDomain)
		if err != nil {
			return nil, fmt.Errorf("subjectDomain: %w", err)
		}
		out.subjectURL = u
	} else if c.SubjectDomain != "" {
		return nil, fmt.Errorf("subjectDomain is only meaningful for type uri or auto, not %s", c.Type)
	}
	switch {
	case c.KeySet != nil && c.JWKSFile != "":
		return nil, errors.New("both jwksFile and an in-code key set are set; use one")
	case c.KeySet != nil:
		out.keySet = c.KeySet
	case c.JWKSFile != "":
		ks, err := loadJWKS(c.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("jwksFile: %w", err)
		}
		out.keySet = ks
	}
	return out, nil
}

func checkIssuerURL(s string) error {
	u, err := parseHTTPURL(s)
	if err != nil {
		return err
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q has a query or fragment; an OIDC issuer is a plain https URL", s)
	}
	return nil
}

func parseHTTPURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %v", s, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return u, nil
}

func isKnownType(t Type) bool {
	for _, k := range knownTypes {
		if t == k {
			return true
		}
	}
	return false
}

func typeList() string {
	names := make([]string, len(knownTypes))
	for i, t := range knownTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// loadJWKS reads a JSON Web Key Set of public keys.
func loadJWKS(path string) (oidc.KeySet, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("%s is not a JSON Web Key Set: %v", path, err)
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("%s holds no keys", path)
	}
	keys := make([]crypto.PublicKey, 0, len(set.Keys))
	for i, k := range set.Keys {
		if !k.IsPublic() {
			return nil, fmt.Errorf("%s: key %d (kid %q) is a private key; publish only the public half", path, i, k.KeyID)
		}
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			return nil, fmt.Errorf("%s: key %d (kid %q) is a %T; use RSA, ECDSA or Ed25519 signing keys", path, i, k.KeyID, k.Key)
		}
		keys = append(keys, k.Key)
	}
	return &oidc.StaticKeySet{PublicKeys: keys}, nil
}
