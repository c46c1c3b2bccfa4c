package devoidc

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/signet-dev/signet/server/apierror"
)

// Register adds the issuer's routes under the path of its issuer URL.
func (i *Issuer) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+i.basePath+"/.well-known/openid-configuration", i.handleDiscovery)
	mux.HandleFunc("GET "+i.basePath+"/jwks", i.handleJWKS)
	mux.HandleFunc("GET "+i.basePath+"/token", i.handleToken)
	if i.basePath != "" {
		// Only under a path of its own: at the server root this would answer
		// every other service's unknown URLs.
		mux.HandleFunc("GET "+i.basePath+"/{rest...}", i.handleUnknown)
	}
}

// handleUnknown explains the likeliest mistake: a request URL without '?',
// to which clients append "&audience=...", yielding the path "token&audience=...".
func (i *Issuer) handleUnknown(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.PathValue("rest"), "token&") {
		apierror.Write(w, http.StatusNotFound,
			"the token URL needs '?' before its parameters because clients append \"&audience=...\"; use %s/token?kind=github (or any kind)", i.issuer)
		return
	}
	apierror.Write(w, http.StatusNotFound,
		"no such development OIDC endpoint; this issuer serves %[1]s/.well-known/openid-configuration, %[1]s/jwks and %[1]s/token", i.issuer)
}

// discovery is the OpenID Provider Metadata, shaped like GitHub Actions'
// (no authorization or token endpoint: tokens are not issued by OAuth flows).
type discovery struct {
	Issuer          string   `json:"issuer"`
	JWKSURI         string   `json:"jwks_uri"`
	ResponseTypes   []string `json:"response_types_supported"`
	SubjectTypes    []string `json:"subject_types_supported"`
	SigningAlgs     []string `json:"id_token_signing_alg_values_supported"`
	Scopes          []string `json:"scopes_supported"`
	ClaimsSupported []string `json:"claims_supported"`
}

func (i *Issuer) handleDiscovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, discovery{
		Issuer:          i.issuer,
		JWKSURI:         i.issuer + "/jwks",
		ResponseTypes:   []string{"id_token"},
		SubjectTypes:    []string{"public"},
		SigningAlgs:     []string{SigningAlgorithm},
		Scopes:          []string{"openid"},
		ClaimsSupported: claimsSupported(),
	})
}

func (i *Issuer) handleJWKS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key:       &i.key.PublicKey,
		KeyID:     i.keyID,
		Algorithm: SigningAlgorithm,
		Use:       "sig",
	}}})
}

// tokenResponse is what actions/toolkit's getIDToken reads.
type tokenResponse struct {
	Value string `json:"value"`
}

func (i *Issuer) handleToken(w http.ResponseWriter, r *http.Request) {
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "bearer") ||
		subtle.ConstantTimeCompare([]byte(strings.TrimSpace(cred)), []byte(i.requestToken)) != 1 {
		i.metrics.refused.WithLabelValues("unauthorized").Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="signet development OIDC issuer"`)
		apierror.Write(w, http.StatusUnauthorized,
			"missing or wrong request token; send \"Authorization: Bearer <token>\" with the token in %s (printed when the server starts)", i.tokenPath)
		return
	}
	q := r.URL.Query()
	for _, reserved := range []string{"kind", "audience"} {
		if len(q[reserved]) > 1 {
			i.metrics.refused.WithLabelValues("bad_request").Inc()
			apierror.Write(w, http.StatusBadRequest, "query parameter %q given %d times; give it once", reserved, len(q[reserved]))
			return
		}
	}
	kind := q.Get("kind")
	if kind == "" {
		kind = "github" // the endpoint speaks the GitHub Actions protocol
	}
	audience := q.Get("audience")
	q.Del("kind")
	q.Del("audience")
	tok, err := i.Mint(kind, q, audience)
	if err != nil {
		i.metrics.refused.WithLabelValues("bad_request").Inc()
		apierror.Write(w, http.StatusBadRequest, "%v", err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, tokenResponse{Value: tok})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

type metrics struct {
	minted  *prometheus.CounterVec
	refused *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		minted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signet", Subsystem: "devoidc", Name: "tokens_minted_total",
			Help: "Development ID tokens minted, by kind.",
		}, []string{"kind"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signet", Subsystem: "devoidc", Name: "token_requests_refused_total",
			Help: "Token requests refused, by reason (unauthorized, bad_request).",
		}, []string{"reason"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.minted, m.refused} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
