package identity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	lru "github.com/hashicorp/golang-lru/v2"
)

const (
	// MaxTokenBytes bounds the work spent on a token before its signature is
	// checked; real CI tokens are a few kilobytes.
	MaxTokenBytes = 64 << 10
	// nbfLeeway matches go-oidc's allowance for clock skew on nbf.
	nbfLeeway = 5 * time.Minute
	// DefaultMaxTokenLifetime is the longest exp - iat accepted: a day
	// covers every CI platform's default (GitHub and Buildkite minutes,
	// GitLab's job timeout, Kubernetes' hour); a token valid for years is a
	// credential, not a job's identity.
	DefaultMaxTokenLifetime = 24 * time.Hour
	// DefaultMaxClockSkew is how far in the future iat may be.
	DefaultMaxClockSkew = 2 * time.Minute
	// discoveryRetry is how long a failed discovery is remembered, so a
	// flood of tokens for an unreachable issuer does not become a flood of
	// requests to it.
	discoveryRetry = 10 * time.Second
	// DefaultTokenCacheSize is how many verified tokens are remembered.
	DefaultTokenCacheSize = 4096
	// maxMetaIssuers caps how many distinct issuers one meta-issuer pattern
	// may bring in, bounding the memory a stream of made-up issuers can take.
	maxMetaIssuers = 1024
)

// signingAlgs are the JWS algorithms accepted on identity tokens: every
// asymmetric algorithm go-jose verifies, never HMAC or "none".
var signingAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512,
	oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.EdDSA,
}

// Verifier checks identity tokens against the configured issuers and maps
// them to principals. It is safe for concurrent use. Issuer keys are fetched
// once (on the first token from that issuer) and cached by go-oidc, which
// refetches only when a token names a key it has not seen.
type Verifier struct {
	exact   map[string]*issuer
	meta    []*metaIssuer
	configs []*compiled
	client  *http.Client
	logger  *slog.Logger
	now     func() time.Time
	baseCtx context.Context

	maxLifetime, maxSkew time.Duration

	cacheSize int
	// verified remembers principals of tokens already verified, keyed by the
	// SHA-256 of the exact token bytes: a CI job presenting the same token
	// for several certificates pays for one signature check.
	verified *lru.Cache[[sha256.Size]byte, cachedPrincipal]
}

type cachedPrincipal struct {
	p   *Principal
	exp time.Time
}

// Option adjusts a Verifier.
type Option func(*Verifier)

// WithHTTPClient sets the client used for OIDC discovery and key fetches.
func WithHTTPClient(c *http.Client) Option { return func(v *Verifier) { v.client = c } }

// WithLogger sets where discovery successes and failures are logged.
func WithLogger(l *slog.Logger) Option { return func(v *Verifier) { v.logger = l } }

// WithTokenCacheSize sets how many verified tokens are remembered until they
// expire (default DefaultTokenCacheSize); 0 turns the cache off.
func WithTokenCacheSize(n int) Option { return func(v *Verifier) { v.cacheSize = n } }

// WithTokenLimits bounds token lifetimes (exp - iat, or exp - now without
// iat) and how far in the future iat may be; zero keeps each default.
func WithTokenLimits(maxLifetime, maxSkew time.Duration) Option {
	return func(v *Verifier) {
		if maxLifetime > 0 {
			v.maxLifetime = maxLifetime
		}
		if maxSkew > 0 {
			v.maxSkew = maxSkew
		}
	}
}

// WithClock replaces time.Now for expiry checks.
func WithClock(now func() time.Time) Option { return func(v *Verifier) { v.now = now } }

// NewVerifier validates the issuer configuration. It contacts no issuer:
// discovery happens on the first token from each issuer, so the server can
// start while an issuer (or an in-process issuer served by this very server)
// is not reachable yet. ctx supplies values for those later fetches; its
// cancellation is ignored, since the fetches outlive this call.
func NewVerifier(ctx context.Context, configs []IssuerConfig, opts ...Option) (*Verifier, error) {
	v := &Verifier{
		exact:       make(map[string]*issuer, len(configs)),
		client:      &http.Client{Timeout: 10 * time.Second},
		logger:      slog.New(slog.DiscardHandler),
		now:         time.Now,
		maxLifetime: DefaultMaxTokenLifetime,
		maxSkew:     DefaultMaxClockSkew,
		baseCtx:     context.WithoutCancel(ctx),
		cacheSize:   DefaultTokenCacheSize,
	}
	for _, o := range opts {
		o(v)
	}
	if v.cacheSize > 0 {
		c, err := lru.New[[sha256.Size]byte, cachedPrincipal](v.cacheSize)
		if err != nil {
			return nil, fmt.Errorf("identity: token cache: %w", err)
		}
		v.verified = c
	}
	if len(configs) == 0 {
		return nil, errors.New("identity: no OIDC issuers configured; add at least one issuer (url and type) so the CA can authenticate signers")
	}
	seen := make(map[string]int, len(configs))
	for i, c := range configs {
		cc, err := c.compile()
		if err != nil {
			return nil, fmt.Errorf("identity: issuer %d (%s): %w", i+1, c.name(), err)
		}
		if j, dup := seen[c.name()]; dup {
			return nil, fmt.Errorf("identity: issuer %d repeats %s, already configured as issuer %d; keep one entry per issuer", i+1, c.name(), j+1)
		}
		seen[c.name()] = i
		v.configs = append(v.configs, cc)
		if cc.pattern != nil {
			v.meta = append(v.meta, &metaIssuer{cfg: cc, issuers: map[string]*issuer{}})
			continue
		}
		v.exact[cc.URL] = v.newIssuer(cc, cc.URL)
	}
	return v, nil
}

// issuer is one concrete issuer URL and its (lazily built) token verifier.
type issuer struct {
	cfg *compiled
	url string
	v   atomic.Pointer[oidc.IDTokenVerifier]

	mu       sync.Mutex // serialises discovery
	failedAt time.Time
	failErr  error
}

type metaIssuer struct {
	cfg     *compiled
	mu      sync.RWMutex
	issuers map[string]*issuer
}

func (v *Verifier) newIssuer(cc *compiled, url string) *issuer {
	is := &issuer{cfg: cc, url: url}
	if cc.keySet != nil {
		is.v.Store(oidc.NewVerifier(url, cc.keySet, v.oidcConfig(cc)))
	}
	return is
}

func (v *Verifier) oidcConfig(cc *compiled) *oidc.Config {
	return &oidc.Config{ClientID: cc.Audience, SupportedSigningAlgs: signingAlgs, Now: v.now}
}

// lookup finds the configuration for a token's issuer.
func (v *Verifier) lookup(iss string) (*issuer, error) {
	if is, ok := v.exact[iss]; ok {
		return is, nil
	}
	for _, m := range v.meta {
		if !m.cfg.pattern.MatchString(iss) {
			continue
		}
		m.mu.RLock()
		is, ok := m.issuers[iss]
		m.mu.RUnlock()
		if ok {
			return is, nil
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if is, ok := m.issuers[iss]; ok {
			return is, nil
		}
		if len(m.issuers) >= maxMetaIssuers {
			return nil, refuse(ReasonIssuerUnavailable, "issuer %q matches metaIssuerURL %s, but %d issuers already matched it; configure this issuer with its own url", iss, m.cfg.MetaIssuerURL, maxMetaIssuers)
		}
		is = v.newIssuer(m.cfg, iss)
		m.issuers[iss] = is
		return is, nil
	}
	return nil, refuse(ReasonIssuer, "token issuer %q is not configured on this server; to accept its tokens, add {url: %q, type: <one of %s>} to oidcIssuers in the server configuration", iss, iss, typeList())
}

// verifier returns the issuer's token verifier, running OIDC discovery the
// first time.
func (v *Verifier) verifier(is *issuer) (*oidc.IDTokenVerifier, error) {
	if idv := is.v.Load(); idv != nil {
		return idv, nil
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	if idv := is.v.Load(); idv != nil {
		return idv, nil
	}
	if !is.failedAt.IsZero() && v.now().Sub(is.failedAt) < discoveryRetry {
		return nil, is.failErr
	}
	ctx := oidc.ClientContext(v.baseCtx, v.client)
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(dctx, is.url)
	if err != nil {
		is.failedAt = v.now()
		is.failErr = refuse(ReasonIssuerUnavailable, "cannot discover OIDC issuer %s: %v; the server must be able to fetch %s/.well-known/openid-configuration (or configure jwksFile for it)", is.url, err, strings.TrimSuffix(is.url, "/"))
		v.logger.Warn("OIDC discovery failed", "issuer", is.url, "error", err)
		return nil, is.failErr
	}
	idv := p.VerifierContext(ctx, v.oidcConfig(is.cfg))
	is.v.Store(idv)
	v.logger.Info("OIDC issuer discovered", "issuer", is.url)
	return idv, nil
}

// Verify checks a raw identity token — signature, issuer, audience, expiry —
// and maps its claims to a Principal. A refused token yields an *Error.
//
// Identical token bytes verified before are answered from a cache until the
// token's exp; each call returns its own copy of the Principal.
func (v *Verifier) Verify(ctx context.Context, rawToken string) (*Principal, error) {
	var key [sha256.Size]byte
	if v.verified != nil && len(rawToken) <= MaxTokenBytes {
		key = sha256.Sum256([]byte(rawToken))
		if c, ok := v.verified.Get(key); ok {
			if v.now().Before(c.exp) {
				return c.p.clone(), nil
			}
			v.verified.Remove(key)
		}
	}
	p, exp, err := v.verify(ctx, rawToken)
	if err != nil {
		return nil, err
	}
	if v.verified != nil {
		v.verified.Add(key, cachedPrincipal{p: p.clone(), exp: exp})
	}
	return p, nil
}

func (v *Verifier) verify(ctx context.Context, rawToken string) (*Principal, time.Time, error) {
	pre, err := peek(rawToken)
	if err != nil {
		return nil, time.Time{}, err
	}
	is, err := v.lookup(pre.Issuer)
	if err != nil {
		return nil, time.Time{}, err
	}
	// Cheap checks on the still-unverified claims first: they cost no
	// signature verification and give precise messages. go-oidc repeats
	// them on the verified token, so nothing is trusted from this pass.
	if !pre.Audience.contains(is.cfg.Audience) {
		return nil, time.Time{}, refuse(ReasonAudience, "token audience %s does not include %q, the audience this server expects for issuer %s; request the token with audience %q", pre.Audience, is.cfg.Audience, pre.Issuer, is.cfg.Audience)
	}
	now := v.now()
	if pre.Expiry == nil {
		return nil, time.Time{}, refuse(ReasonClaim, "token has no exp (expiry) claim; identity tokens must expire")
	}
	if exp := pre.Expiry.time(); exp.Before(now) {
		return nil, time.Time{}, refuse(ReasonExpired, "identity token expired at %s (%s ago); request a fresh token", exp.UTC().Format(time.RFC3339), now.Sub(exp).Round(time.Second))
	}
	from := now
	if pre.IssuedAt != nil {
		if iat := pre.IssuedAt.time(); iat.After(now.Add(v.maxSkew)) {
			return nil, time.Time{}, refuse(ReasonNotYetValid, "identity token was issued at %s, %s in the future (more than the %s clock skew allowed); check the clocks of the token issuer and this server", iat.UTC().Format(time.RFC3339), iat.Sub(now).Round(time.Second), v.maxSkew)
		} else {
			from = iat
		}
	}
	if life := pre.Expiry.time().Sub(from); life > v.maxLifetime {
		return nil, time.Time{}, refuse(ReasonClaim, "identity token is valid for %s, longer than the %s this server accepts (ca.maxTokenLifetime); CI identity tokens are short-lived: request one with a shorter lifetime", life.Round(time.Second), v.maxLifetime)
	}
	if pre.NotBefore != nil {
		if nbf := pre.NotBefore.time(); now.Add(nbfLeeway).Before(nbf) {
			return nil, time.Time{}, refuse(ReasonNotYetValid, "identity token is not valid before %s; check the clocks of the token issuer and this server", nbf.UTC().Format(time.RFC3339))
		}
	}
	idv, err := v.verifier(is)
	if err != nil {
		return nil, time.Time{}, err
	}
	tok, err := idv.Verify(ctx, rawToken)
	if err != nil {
		var expired *oidc.TokenExpiredError
		switch {
		case errors.As(err, &expired):
			return nil, time.Time{}, refuse(ReasonExpired, "identity token expired at %s; request a fresh token", expired.Expiry.UTC().Format(time.RFC3339))
		case strings.Contains(err.Error(), "fetching keys"):
			return nil, time.Time{}, refuse(ReasonIssuerUnavailable, "cannot fetch the signing keys of issuer %s: %v", pre.Issuer, err)
		case strings.Contains(err.Error(), "malformed jwt"):
			return nil, time.Time{}, refuse(ReasonMalformed, "identity token is not a valid JWS: %v", err)
		default:
			return nil, time.Time{}, refuse(ReasonSignature, "identity token signature does not verify with the keys of issuer %s (%v); the token must be signed by that issuer with one of %s", pre.Issuer, err, strings.Join(signingAlgs, ", "))
		}
	}
	var c claims
	if err := tok.Claims(&c); err != nil {
		return nil, time.Time{}, refuse(ReasonClaim, "identity token claims have an unexpected shape: %v", err)
	}
	p, err := is.cfg.principal(tok.Issuer, &c)
	if err != nil {
		return nil, time.Time{}, err
	}
	return p, tok.Expiry, nil
}

// preClaims are the claims read before the signature is checked.
type preClaims struct {
	Issuer    string       `json:"iss"`
	Audience  audience     `json:"aud"`
	Expiry    *numericDate `json:"exp"`
	NotBefore *numericDate `json:"nbf"`
	IssuedAt  *numericDate `json:"iat"`
}

// peek decodes a compact JWS's payload without verifying it.
func peek(raw string) (*preClaims, error) {
	if raw == "" {
		return nil, refuse(ReasonMalformed, "identity token is empty")
	}
	if len(raw) > MaxTokenBytes {
		return nil, refuse(ReasonMalformed, "identity token is %d bytes, more than the %d this server accepts", len(raw), MaxTokenBytes)
	}
	first := strings.IndexByte(raw, '.')
	last := strings.LastIndexByte(raw, '.')
	if first < 0 || first == last || strings.Count(raw, ".") != 2 {
		return nil, refuse(ReasonMalformed, "identity token is not a JWT: expected three base64url parts separated by dots")
	}
	payload, err := base64.RawURLEncoding.DecodeString(raw[first+1 : last])
	if err != nil {
		return nil, refuse(ReasonMalformed, "identity token payload is not base64url: %v", err)
	}
	var pc preClaims
	if err := json.Unmarshal(payload, &pc); err != nil {
		return nil, refuse(ReasonMalformed, "identity token payload is not a JSON claims object: %v", err)
	}
	if pc.Issuer == "" {
		return nil, refuse(ReasonClaim, "identity token has no iss (issuer) claim")
	}
	return &pc, nil
}

// audience is the aud claim, a string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = audience{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("aud must be a string or an array of strings")
	}
	*a = l
	return nil
}

func (a audience) contains(s string) bool {
	for _, x := range a {
		if x == s {
			return true
		}
	}
	return false
}

func (a audience) String() string {
	if len(a) == 0 {
		return "(none)"
	}
	b, _ := json.Marshal([]string(a))
	return string(b)
}

// numericDate is a JWT NumericDate: seconds since the epoch, possibly fractional.
type numericDate float64

func (d *numericDate) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(bytes.TrimSpace(b), &f); err != nil {
		return fmt.Errorf("date claims must be numbers of seconds since the epoch")
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("date claim is not finite")
	}
	*d = numericDate(f)
	return nil
}

func (d numericDate) time() time.Time {
	sec, frac := math.Modf(float64(d))
	return time.Unix(int64(sec), int64(frac*1e9))
}

// IssuerInfo describes one configured issuer, for the CA's configuration
// endpoint.
type IssuerInfo struct {
	URL               string // set for exact issuers
	MetaIssuerURL     string // set for wildcard issuers
	Type              Type
	Audience          string
	ChallengeClaim    string // the claim the proof of possession signs
	SPIFFETrustDomain string
}

// Issuers lists the configured issuers in configuration order.
func (v *Verifier) Issuers() []IssuerInfo {
	out := make([]IssuerInfo, len(v.configs))
	for i, c := range v.configs {
		challenge := "sub"
		if c.Type == TypeEmail {
			challenge = "email"
		}
		out[i] = IssuerInfo{
			URL:               c.URL,
			MetaIssuerURL:     c.MetaIssuerURL,
			Type:              c.Type,
			Audience:          c.Audience,
			ChallengeClaim:    challenge,
			SPIFFETrustDomain: c.SPIFFETrustDomain,
		}
	}
	return out
}
