package ca

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/signet-dev/signet/server/apierror"
	"github.com/signet-dev/signet/server/identity"
	"github.com/signet-dev/signet/server/ratelimit"
)

// DefaultMaxRequestBytes bounds a signing request: a token of up to 64 KiB
// plus a key or CSR of a few kilobytes, base64 included.
const DefaultMaxRequestBytes = 128 << 10

// Register adds the Fulcio v2 routes.
func (c *CA) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v2/signingCert", c.handleSigningCert)
	mux.HandleFunc("GET /api/v2/trustBundle", c.handleTrustBundle)
	mux.HandleFunc("GET /api/v2/configuration", c.handleConfiguration)
}

// JSON mapping of Fulcio's CreateSigningCertificateRequest (fulcio.proto,
// dev.sigstore.fulcio.v2). protojson accepts both the lowerCamelCase JSON
// names and the proto field names, so both are read here too.
type createSigningCertificateRequest struct {
	Credentials *struct {
		OIDCIdentityToken      string `json:"oidcIdentityToken"`
		OIDCIdentityTokenProto string `json:"oidc_identity_token"`
	} `json:"credentials"`
	PublicKeyRequest               *publicKeyRequest `json:"publicKeyRequest"`
	PublicKeyRequestProto          *publicKeyRequest `json:"public_key_request"`
	CertificateSigningRequest      *string           `json:"certificateSigningRequest"`
	CertificateSigningRequestProto *string           `json:"certificate_signing_request"`
}

type publicKeyRequest struct {
	PublicKey *struct {
		// Algorithm is ignored, as Fulcio ignores it: the key itself says
		// what it is, and clients send values outside the proto enum
		// (sigstore-go sends "RSA").
		Algorithm any    `json:"algorithm"`
		Content   string `json:"content"`
	} `json:"publicKey"`
	PublicKeyProto *struct {
		Algorithm any    `json:"algorithm"`
		Content   string `json:"content"`
	} `json:"public_key"`
	ProofOfPossession      *string `json:"proofOfPossession"`
	ProofOfPossessionProto *string `json:"proof_of_possession"`
}

type signingCertificate struct {
	SignedCertificateDetachedSct *signingCertificateChain `json:"signedCertificateDetachedSct,omitempty"`
	SignedCertificateEmbeddedSct *signingCertificateChain `json:"signedCertificateEmbeddedSct,omitempty"`
}

// signingCertificateChain is Fulcio's SigningCertificateDetachedSCT (with no
// SCT: signet never detaches one) and SigningCertificateEmbeddedSCT.
type signingCertificateChain struct {
	Chain certificateChain `json:"chain"`
}

type certificateChain struct {
	Certificates []string `json:"certificates"`
}

type trustBundle struct {
	Chains []certificateChain `json:"chains"`
}

type configuration struct {
	Issuers []oidcIssuer `json:"issuers"`
}

// oidcIssuer is Fulcio's OIDCIssuer message.
type oidcIssuer struct {
	IssuerURL         string `json:"issuerUrl,omitempty"`
	WildcardIssuerURL string `json:"wildcardIssuerUrl,omitempty"`
	Audience          string `json:"audience"`
	ChallengeClaim    string `json:"challengeClaim"`
	SPIFFETrustDomain string `json:"spiffeTrustDomain,omitempty"`
}

func newConfiguration(issuers []identity.IssuerInfo) configuration {
	out := configuration{Issuers: make([]oidcIssuer, 0, len(issuers))}
	for _, is := range issuers {
		out.Issuers = append(out.Issuers, oidcIssuer{
			IssuerURL:         is.URL,
			WildcardIssuerURL: is.MetaIssuerURL,
			Audience:          is.Audience,
			ChallengeClaim:    is.ChallengeClaim,
			SPIFFETrustDomain: is.SPIFFETrustDomain,
		})
	}
	return out
}

// refusal is a request the CA turns down: HTTP status, metrics reason, message.
type refusal struct {
	status     int
	reason     string
	msg        string
	retryAfter string
}

func refuse(status int, reason, format string, args ...any) *refusal {
	return &refusal{status: status, reason: reason, msg: fmt.Sprintf(format, args...)}
}

func (c *CA) handleSigningCert(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { c.latency.Observe(time.Since(start).Seconds()) }()
	var (
		body []byte
		ref  *refusal
	)
	// The address is checked before any work; the identity once the token
	// is verified (signingCert).
	if ok, wait := c.allowAddress(r, start); !ok {
		ref = refuse(http.StatusTooManyRequests, "rate_limited_ip", "too many certificate requests from this address; retry after %s", ratelimit.RetryAfter(wait)+"s")
		ref.retryAfter = ratelimit.RetryAfter(wait)
	} else {
		body, ref = c.signingCert(r)
	}
	if ref != nil {
		c.refused.WithLabelValues(ref.reason).Inc()
		c.log.InfoContext(r.Context(), "signing certificate refused", "reason", ref.reason, "status", ref.status, "error", ref.msg, "remote", r.RemoteAddr)
		if ref.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		}
		if ref.retryAfter != "" {
			w.Header().Set("Retry-After", ref.retryAfter)
		}
		apierror.Write(w, ref.status, "%s", ref.msg)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK) // sigstore-go accepts exactly 200, as grpc-gateway answers
	_, _ = w.Write(body)
}

// signingCert runs one CreateSigningCertificate request and returns the JSON
// answer or the refusal.
func (c *CA) signingCert(r *http.Request) ([]byte, *refusal) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, refuse(http.StatusUnsupportedMediaType, "content_type", "Content-Type is %q; send the CreateSigningCertificateRequest as application/json", r.Header.Get("Content-Type"))
	}
	var req createSigningCertificateRequest
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, c.maxBody))
	// As grpc-gateway does for Fulcio: a misspelt field must not be dropped.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, refuse(http.StatusRequestEntityTooLarge, "too_large", "request body exceeds %d bytes (ca.maxRequestBytes); a request carries one identity token and one public key or CSR", c.maxBody)
		}
		return nil, refuse(http.StatusBadRequest, "malformed_request", "request body is not a JSON CreateSigningCertificateRequest: %v", err)
	}

	token := bearerToken(r)
	if req.Credentials != nil {
		if t := first(req.Credentials.OIDCIdentityToken, req.Credentials.OIDCIdentityTokenProto); t != "" {
			token = t
		}
	}
	if token == "" {
		return nil, refuse(http.StatusUnauthorized, "missing_token", "no OIDC identity token: send it in credentials.oidcIdentityToken or an Authorization: Bearer header")
	}

	pkr := req.PublicKeyRequest
	if pkr == nil {
		pkr = req.PublicKeyRequestProto
	}
	csrField := req.CertificateSigningRequest
	if csrField == nil {
		csrField = req.CertificateSigningRequestProto
	}
	switch {
	case pkr != nil && csrField != nil:
		return nil, refuse(http.StatusBadRequest, "ambiguous_key", "request has both publicKeyRequest and certificateSigningRequest; send exactly one")
	case pkr == nil && csrField == nil:
		return nil, refuse(http.StatusBadRequest, "missing_key", "request has no key: send publicKeyRequest (publicKey.content in PEM and proofOfPossession, a signature over the token's subject) or certificateSigningRequest (a PEM PKCS#10 request, base64-encoded)")
	}

	// Parse the key material before spending a signature verification on
	// the token.
	var (
		spki  []byte
		proof []byte
		key   any
	)
	if pkr != nil {
		pk := pkr.PublicKey
		if pk == nil {
			pk = pkr.PublicKeyProto
		}
		if pk == nil {
			return nil, refuse(http.StatusBadRequest, "malformed_public_key", "publicKeyRequest has no publicKey; send publicKey.content with the PEM-encoded public key")
		}
		pub, der, err := parsePublicKey(pk.Content)
		if err != nil {
			return nil, refuse(http.StatusBadRequest, "malformed_public_key", "%v", err)
		}
		if err := checkKey(pub); err != nil {
			return nil, refuse(http.StatusBadRequest, "unsupported_key", "%v", err)
		}
		pop := pkr.ProofOfPossession
		if pop == nil {
			pop = pkr.ProofOfPossessionProto
		}
		if pop == nil || *pop == "" {
			return nil, refuse(http.StatusBadRequest, "missing_proof_of_possession", "publicKeyRequest.proofOfPossession is empty; sign the token's subject (sub, or email for email identities) with the private key and send the signature base64-encoded")
		}
		if proof, err = decodeBytes(*pop); err != nil {
			return nil, refuse(http.StatusBadRequest, "malformed_proof_of_possession", "publicKeyRequest.proofOfPossession is not base64: %v", err)
		}
		key, spki = pub, der
	} else {
		raw, err := decodeBytes(*csrField)
		if err != nil {
			return nil, refuse(http.StatusBadRequest, "malformed_csr", "certificateSigningRequest is not base64 (JSON carries the PEM bytes base64-encoded): %v", err)
		}
		csr, err := parseCSR(raw)
		if err != nil {
			return nil, refuse(http.StatusBadRequest, "malformed_csr", "certificate signing request: %v; send a PEM PKCS#10 CSR signed by the key being certified", err)
		}
		if err := checkKey(csr.PublicKey); err != nil {
			return nil, refuse(http.StatusBadRequest, "unsupported_key", "certificate signing request: %v", err)
		}
		if weakCSRAlgorithms[csr.SignatureAlgorithm] {
			return nil, refuse(http.StatusBadRequest, "bad_csr_signature", "certificate signing request is signed with %s, which is too weak to prove possession of the key; sign it with SHA-256 or stronger", csr.SignatureAlgorithm)
		}
		if err := csr.CheckSignature(); err != nil {
			return nil, refuse(http.StatusBadRequest, "bad_csr_signature", "certificate signing request signature does not verify with its own public key (%v); sign the CSR with the key being certified", err)
		}
		key, spki = csr.PublicKey, csr.RawSubjectPublicKeyInfo
	}

	principal, err := c.identity.Verify(r.Context(), token)
	if err != nil {
		var ie *identity.Error
		if !errors.As(err, &ie) {
			return nil, refuse(http.StatusInternalServerError, "internal", "verifying the identity token failed: %v", err)
		}
		status := http.StatusUnauthorized
		if ie.Reason == identity.ReasonIssuerUnavailable {
			status = http.StatusServiceUnavailable
		}
		return nil, refuse(status, string(ie.Reason), "identity token refused: %v", err)
	}

	if ok, wait := c.perIdentity.Allow(principal.Issuer+" "+principal.SAN(), time.Now()); !ok {
		ref := refuse(http.StatusTooManyRequests, "rate_limited_identity", "too many certificate requests for %s; retry after %ss", principal.SAN(), ratelimit.RetryAfter(wait))
		ref.retryAfter = ratelimit.RetryAfter(wait)
		return nil, ref
	}

	if proof != nil {
		err := verifyProof(key, principal.Challenge, proof)
		if err != nil && principal.Email != "" && principal.Subject != "" {
			// sigstore-js signs the sub claim for every issuer but Google's
			// and Sigstore's own, even for email identities; a signature
			// over sub proves possession of the key just as well.
			err = verifyProof(key, principal.Subject, proof)
		}
		if err != nil {
			claim := "sub"
			if principal.Email != "" {
				claim = "email"
			}
			return nil, refuse(http.StatusBadRequest, "bad_proof_of_possession", "proof of possession does not verify: %v; it must be a signature by the private key over the token's %s claim %q", err, claim, principal.Challenge)
		}
	}

	now := time.Now()
	it := c.at(now)
	if now.Add(c.validity).After(it.issuing.NotAfter) {
		return nil, refuse(http.StatusServiceUnavailable, "ca_expiring", "the CA's issuing certificate expires at %s, before a new certificate would; the operator must rotate it", it.issuing.NotAfter.UTC().Format(time.RFC3339))
	}
	der, serial, err := c.issue(r.Context(), it, now, principal, key, spki)
	var (
		sctErr *SCTError
		full   interface{ StorageFull() bool }
	)
	if errors.As(err, &sctErr) {
		c.log.ErrorContext(r.Context(), "no SCT for a certificate; nothing issued", "error", err, "san", principal.SAN())
		if errors.As(err, &full) && full.StorageFull() {
			ref := refuse(http.StatusInsufficientStorage, "storage_full", "the server's storage is full; no certificate was issued (the certificate transparency log could not log it); retry later (the operator must free space)")
			ref.retryAfter = "30"
			return nil, ref
		}
		ref := refuse(http.StatusServiceUnavailable, "ct_unavailable", "no certificate issued: the certificate transparency log did not log it; retry later, and if it persists the operator should check the server log")
		ref.retryAfter = "5"
		return nil, ref
	}
	if err != nil {
		c.log.ErrorContext(r.Context(), "certificate issuance failed", "error", err, "san", principal.SAN())
		return nil, refuse(http.StatusInternalServerError, "internal", "the CA could not sign the certificate; the operator should check the server log")
	}
	leaf := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	chain := &signingCertificateChain{Chain: certificateChain{Certificates: append([]string{leaf}, it.chainPEM...)}}
	resp := signingCertificate{SignedCertificateDetachedSct: chain}
	if c.ct != nil {
		resp = signingCertificate{SignedCertificateEmbeddedSct: chain}
	}
	body, err := json.Marshal(resp)
	if err != nil {
		return nil, refuse(http.StatusInternalServerError, "internal", "encoding the answer failed: %v", err)
	}
	c.issued.WithLabelValues(string(principal.Type)).Inc()
	c.log.InfoContext(r.Context(), "issued signing certificate", "serial", serial.Text(16), "san", principal.SAN(), "oidc_issuer", principal.Issuer, "identity_type", principal.Type)
	return body, nil
}

func (c *CA) handleTrustBundle(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, c.trustBundle)
}

func (c *CA) handleConfiguration(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, c.configuration)
}

func writeJSON(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(body)
}

// bearerToken returns the token of an "Authorization: Bearer" header, which
// Fulcio accepts in place of credentials in the body (sigstore-go sends only
// the header).
func bearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// decodeBytes decodes a protojson bytes field, which may be standard or
// URL-safe base64, padded or not.
func decodeBytes(s string) ([]byte, error) {
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if !strings.HasSuffix(s, "=") && len(s)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	return enc.DecodeString(s)
}

// allowAddress applies the per-address limit (no work when there is none).
func (c *CA) allowAddress(r *http.Request, now time.Time) (bool, time.Duration) {
	if c.perIP == nil {
		return true, 0
	}
	return c.perIP.Allow(c.clientIP.Of(r), now)
}
