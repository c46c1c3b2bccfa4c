// Package devoidc is signet's development OIDC issuer: it mints ID tokens
// shaped like those of GitHub Actions, GitLab CI, Kubernetes, Buildkite,
// CircleCI, SPIFFE and email providers, for quickstarts and tests.
//
// Anyone holding the request token can mint a token for any identity, so it
// must never be reachable from an untrusted network.
//
// Routes, under the path of the issuer URL:
//
//	GET <issuer>/.well-known/openid-configuration  discovery
//	GET <issuer>/jwks                               the public signing key
//	GET <issuer>/token?kind=github&audience=A&...   {"value": "<JWT>"}, the
//	    GitHub Actions id-token request, authorised by
//	    "Authorization: Bearer <request token>"
//
// A CI-less client can reuse its GitHub Actions code path by setting
// ACTIONS_ID_TOKEN_REQUEST_URL=<issuer>/token?kind=... and
// ACTIONS_ID_TOKEN_REQUEST_TOKEN=<request token>; clients append &audience=.
package devoidc

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/signet-dev/signet/server/identity"
)

const (
	// SigningAlgorithm is the JWS algorithm of every token: RS256 with a
	// 2048-bit key, as GitHub Actions and most CI issuers sign, so the CA's
	// work per token matches what production tokens cost.
	SigningAlgorithm = "RS256"
	// DefaultAudience is the audience when a request names none; it is the
	// one Sigstore clients ask for.
	DefaultAudience = "sigstore"
	// TokenLifetime is how long a minted token is valid.
	TokenLifetime = 10 * time.Minute

	keyFileName   = "signing-key.pem"
	tokenFileName = "request-token"
	dirName       = "dev-oidc"
)

// Options configure an Issuer.
type Options struct {
	// IssuerURL is the exact iss of minted tokens, e.g. http://127.0.0.1:8080/dev/oidc.
	// Its path is where the routes are registered.
	IssuerURL string
	// DataDir holds <DataDir>/dev-oidc/, which keeps the signing key and the
	// request token across restarts.
	DataDir string
	Logger  *slog.Logger
	// Metrics receives the issuer's collectors; nil registers nothing.
	Metrics prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Issuer is the development OIDC issuer. It is safe for concurrent use.
type Issuer struct {
	issuer       string
	basePath     string
	key          *rsa.PrivateKey
	keyID        string
	signer       jose.Signer
	requestToken string
	tokenPath    string
	log          *slog.Logger
	now          func() time.Time
	metrics      *metrics
}

// New loads (or creates on first start) the signing key and request token
// under DataDir and returns the issuer.
func New(opts Options) (*Issuer, error) {
	base, err := checkIssuerURL(opts.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("devoidc: issuer URL %q: %w", opts.IssuerURL, err)
	}
	if opts.DataDir == "" {
		return nil, errors.New("devoidc: no data directory; the signing key and request token must persist across restarts")
	}
	dir := filepath.Join(opts.DataDir, dirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("devoidc: creating %s: %w", dir, err)
	}
	key, err := loadOrCreateKey(filepath.Join(dir, keyFileName))
	if err != nil {
		return nil, fmt.Errorf("devoidc: %w", err)
	}
	tokenPath := filepath.Join(dir, tokenFileName)
	reqToken, err := loadOrCreateRequestToken(tokenPath)
	if err != nil {
		return nil, fmt.Errorf("devoidc: %w", err)
	}
	jwk := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: SigningAlgorithm, Use: "sig"}
	thumb, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("devoidc: key thumbprint: %w", err)
	}
	// RFC 7638 thumbprint as kid: stable across restarts, derived from the key.
	keyID := base64.RawURLEncoding.EncodeToString(thumb)
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: keyID}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return nil, fmt.Errorf("devoidc: creating signer: %w", err)
	}
	m, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, fmt.Errorf("devoidc: registering metrics: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log.Warn("DEVELOPMENT OIDC ISSUER ENABLED: anyone with the request token can mint a token for ANY identity and get it certified; never expose this server to an untrusted network",
		"issuer", opts.IssuerURL, "request_token_file", tokenPath)
	return &Issuer{
		issuer:       opts.IssuerURL,
		basePath:     base,
		key:          key,
		keyID:        keyID,
		signer:       signer,
		requestToken: reqToken,
		tokenPath:    tokenPath,
		log:          log,
		now:          now,
		metrics:      m,
	}, nil
}

// IssuerURL is the iss of every token, exactly as configured.
func (i *Issuer) IssuerURL() string { return i.issuer }

// RequestToken is the bearer secret the token endpoint demands.
func (i *Issuer) RequestToken() string { return i.requestToken }

// RequestTokenPath is the file holding the request token.
func (i *Issuer) RequestTokenPath() string { return i.tokenPath }

// KeySet verifies the issuer's tokens in process, without fetching the JWKS.
func (i *Issuer) KeySet() oidc.KeySet {
	return &oidc.StaticKeySet{PublicKeys: []crypto.PublicKey{&i.key.PublicKey}}
}

// Verifier returns a go-oidc verifier for tokens minted for audience.
func (i *Issuer) Verifier(audience string) *oidc.IDTokenVerifier {
	return oidc.NewVerifier(i.issuer, i.KeySet(), &oidc.Config{
		ClientID:             audience,
		SupportedSigningAlgs: []string{SigningAlgorithm},
		Now:                  i.now,
	})
}

// Mint signs a token of the given kind (github, gitlab, kubernetes, buildkite,
// circleci, spiffe, email) whose identity params describe; audience ""
// means DefaultAudience. Unknown or invalid params are refused.
func (i *Issuer) Mint(kind string, params url.Values, audience string) (string, error) {
	if audience == "" {
		audience = DefaultAudience
	}
	k, ok := kinds[kind]
	if !ok {
		return "", fmt.Errorf("unknown kind %q; use one of %s", kind, strings.Join(kindNames(), ", "))
	}
	vals, err := k.resolve(kind, params)
	if err != nil {
		return "", err
	}
	claims, err := k.build(vals)
	if err != nil {
		return "", fmt.Errorf("kind=%s: %w", kind, err)
	}
	jti, err := uuid.NewRandom()
	if err != nil {
		return "", err
	}
	now := i.now().Unix()
	claims["iss"] = i.issuer
	claims["iat"] = now
	claims["nbf"] = now
	claims["exp"] = now + int64(TokenLifetime/time.Second)
	claims["jti"] = jti.String()
	if k.audienceList {
		claims["aud"] = []string{audience}
	} else {
		claims["aud"] = audience
	}
	tok, err := jwt.Signed(i.signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("signing token: %w", err)
	}
	// A token the CA would refuse is no use to anyone: refuse it here.
	if len(tok) > identity.MaxTokenBytes {
		return "", fmt.Errorf("the token would be %d bytes, more than the %d the CA accepts; shorten the identity parameters", len(tok), identity.MaxTokenBytes)
	}
	i.metrics.minted.WithLabelValues(kind).Inc()
	i.log.Info("minted development token", "kind", kind, "sub", claims["sub"], "aud", audience)
	return tok, nil
}

// checkIssuerURL returns the path under which the routes live.
func checkIssuerURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("must be an absolute http(s) URL such as http://127.0.0.1:8080/dev/oidc")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", errors.New("must not carry a query, fragment or user info")
	}
	if strings.HasSuffix(s, "/") {
		return "", errors.New("must not end in '/': tokens carry it verbatim as iss and verifiers compare it exactly")
	}
	if u.Path != "" && path.Clean(u.Path) != u.Path {
		return "", errors.New("path is not clean; remove '.', '..' and repeated '/'")
	}
	if strings.ContainsAny(u.Path, "{}") {
		return "", errors.New("path must not contain '{' or '}'")
	}
	return u.Path, nil
}

func loadOrCreateKey(p string) (*rsa.PrivateKey, error) {
	b, err := readSecretFile(p)
	if errors.Is(err, os.ErrNotExist) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("generating signing key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := writeSecretFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
			return nil, err
		}
		return key, nil
	}
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s is not a PEM \"PRIVATE KEY\"; delete it to generate a new key (tokens minted before become unverifiable)", p)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %v; delete it to generate a new key", p, err)
	}
	key, ok := parsed.(*rsa.PrivateKey)
	if !ok || key.N.BitLen() < 2048 {
		return nil, fmt.Errorf("%s holds a %T, not an RSA key of at least 2048 bits; delete it to generate a new key", p, parsed)
	}
	return key, nil
}

func loadOrCreateRequestToken(p string) (string, error) {
	b, err := readSecretFile(p)
	if errors.Is(err, os.ErrNotExist) {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return "", err
		}
		tok := hex.EncodeToString(raw)
		if err := writeSecretFile(p, []byte(tok+"\n")); err != nil {
			return "", err
		}
		return tok, nil
	}
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if raw, err := hex.DecodeString(tok); err != nil || len(raw) != 32 {
		return "", fmt.Errorf("%s does not hold 64 hex characters; delete it to generate a new request token", p)
	}
	return tok, nil
}

// readSecretFile refuses a secret others can read: a leaked request token
// lets anyone on the machine mint any identity.
func readSecretFile(p string) ([]byte, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %o, readable by others; run `chmod 600 %s`", p, fi.Mode().Perm(), p)
	}
	return os.ReadFile(p)
}

// writeSecretFile writes atomically with mode 0600, so a crash never leaves a
// half-written key that would be loaded on the next start.
func writeSecretFile(p string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}
