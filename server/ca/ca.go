// Package ca is signet's certificate authority: it exchanges OIDC identity
// tokens for short-lived code-signing certificates over Fulcio's v2 HTTP API,
// so cosign, sigstore-go and sigstore-js work against it unchanged.
//
// With a certificate transparency log (Options.CT), every certificate is
// first made as a precertificate, logged, and issued with the log's SCT
// embedded, answered as signedCertificateEmbeddedSct, as Fulcio does; a CA
// that cannot get an SCT issues nothing. Without one, answers carry the chain
// in signedCertificateDetachedSct with no SCT, as Fulcio does when it runs
// without a CT log.
package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/url"
	"slices"
	"time"

	ct "github.com/google/certificate-transparency-go"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/signet-dev/signet/server/identity"
	"github.com/signet-dev/signet/server/precert"
	"github.com/signet-dev/signet/server/ratelimit"
)

// DefaultValidity is the lifetime of issued certificates, as Fulcio's.
const DefaultValidity = 10 * time.Minute

// Options configure a CA.
type Options struct {
	// Signer is the issuing certificate's private key.
	Signer crypto.Signer
	// Chain is the issuing certificate first, then its issuers up to the root.
	Chain []*x509.Certificate
	// Next are rotations: from each one's From on, the CA issues with its
	// key instead (From strictly increasing). The trust bundle lists every
	// chain, so clients can trust the next key before it is used.
	Next []Issuer
	// Identity verifies the OIDC tokens of requests.
	Identity *identity.Verifier
	// Validity of issued certificates; default 10 minutes.
	Validity time.Duration
	// MaxRequestBytes bounds a signing-certificate request body; default
	// DefaultMaxRequestBytes.
	MaxRequestBytes int64
	// CT logs every certificate before it is issued; nil issues
	// certificates without SCTs.
	CT SCTSource
	// BaseURL is the public URL this CA is served under (for logs).
	BaseURL string
	// PerIP and PerIdentity limit certificate requests per client address
	// and per identity (issuer and subject); nil limits nothing. ClientIP
	// says which address a request is from.
	PerIP, PerIdentity *ratelimit.Limiter
	ClientIP           ratelimit.ClientIP
	Logger             *slog.Logger
	Metrics            prometheus.Registerer
}

// Issuer is an issuing key and its chain, in use from From on.
type Issuer struct {
	From   time.Time
	Signer crypto.Signer
	Chain  []*x509.Certificate
}

// SCTSource logs precertificates (DER, signed by the issuing certificate)
// and answers their SCTs.
type SCTSource interface {
	SubmitPrecert(ctx context.Context, precert []byte, issuing *x509.Certificate) (*ct.SignedCertificateTimestamp, error)
}

// issuer is one issuing key in use from from on.
type issuer struct {
	from     time.Time
	signer   crypto.Signer
	issuing  *x509.Certificate
	chainPEM []string // issuing certificate up to the root
	p256     bool
}

// CA issues code-signing certificates.
type CA struct {
	issuers  []*issuer // by from, ascending; the first from the start
	ct       SCTSource
	identity *identity.Verifier
	validity time.Duration
	maxBody  int64
	log      *slog.Logger

	trustBundle   []byte // precomputed GET /api/v2/trustBundle answer
	configuration []byte // precomputed GET /api/v2/configuration answer

	issued  *prometheus.CounterVec
	refused *prometheus.CounterVec
	latency prometheus.Histogram

	perIP, perIdentity *ratelimit.Limiter
	clientIP           ratelimit.ClientIP
}

// New checks the options and returns a CA. The chain must be well formed: the
// signer's key certified by Chain[0], a CA certificate allowed to sign
// code-signing certificates, each certificate signed by the next.
func New(o Options) (*CA, error) {
	if o.Signer == nil {
		return nil, errors.New("ca: no signer; pass the issuing certificate's private key")
	}
	if len(o.Chain) == 0 {
		return nil, errors.New("ca: empty certificate chain; pass the issuing certificate first, then its issuers up to the root")
	}
	if o.Identity == nil {
		return nil, errors.New("ca: no identity verifier; the CA cannot authenticate requests without one")
	}
	if o.Validity < 0 {
		return nil, fmt.Errorf("ca: validity %s is negative", o.Validity)
	}
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if o.Validity == 0 {
		o.Validity = DefaultValidity
	}
	if o.BaseURL != "" {
		if u, err := url.Parse(o.BaseURL); err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("ca: base URL %q is not an absolute URL", o.BaseURL)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = prometheus.NewRegistry()
	}
	c := &CA{
		identity: o.Identity,
		validity: o.Validity,
		maxBody:  o.MaxRequestBytes,
		log:      o.Logger,
		ct:       o.CT,

		perIP:       o.PerIP,
		perIdentity: o.PerIdentity,
		clientIP:    o.ClientIP,
	}
	var chains []certificateChain
	for i, is := range append([]Issuer{{Signer: o.Signer, Chain: o.Chain}}, o.Next...) {
		if is.Signer == nil || len(is.Chain) == 0 {
			return nil, fmt.Errorf("ca: rotation %d has no signer or no chain", i)
		}
		if err := checkChain(is.Signer, is.Chain); err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		if i > 0 && !is.From.After(c.issuers[i-1].from) {
			return nil, fmt.Errorf("ca: rotation %d starts at %s, not after the key before it (%s); list rotations in order", i, is.From.UTC().Format(time.RFC3339), c.issuers[i-1].from.UTC().Format(time.RFC3339))
		}
		if i > 0 && is.From.Before(is.Chain[0].NotBefore) {
			return nil, fmt.Errorf("ca: the issuing certificate %q of the rotation at %s is not valid before %s", is.Chain[0].Subject, is.From.UTC().Format(time.RFC3339), is.Chain[0].NotBefore.UTC().Format(time.RFC3339))
		}
		it := &issuer{from: is.From, signer: is.Signer, issuing: is.Chain[0], p256: signsP256(is.Signer)}
		for _, cert := range is.Chain {
			it.chainPEM = append(it.chainPEM, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})))
		}
		c.issuers = append(c.issuers, it)
		chains = append(chains, certificateChain{Certificates: it.chainPEM})
	}
	issuing := c.at(time.Now()).issuing
	if now := time.Now(); now.Add(o.Validity).After(issuing.NotAfter) {
		return nil, fmt.Errorf("ca: issuing certificate %q expires at %s, before a certificate issued now would; rotate the CA certificate", issuing.Subject, issuing.NotAfter.UTC().Format(time.RFC3339))
	}
	var err error
	if c.trustBundle, err = json.Marshal(trustBundle{Chains: chains}); err != nil {
		return nil, fmt.Errorf("ca: encode trust bundle: %w", err)
	}
	if c.configuration, err = json.Marshal(newConfiguration(o.Identity.Issuers())); err != nil {
		return nil, fmt.Errorf("ca: encode configuration: %w", err)
	}

	c.issued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "signet_ca_certificates_issued_total",
		Help: "Code-signing certificates issued, by identity type.",
	}, []string{"identity_type"})
	c.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "signet_ca_requests_refused_total",
		Help: "Signing-certificate requests refused, by reason.",
	}, []string{"reason"})
	c.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "signet_ca_signing_cert_duration_seconds",
		Help:    "Time to answer a signing-certificate request, refusals included.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5, 1},
	})
	for _, col := range []prometheus.Collector{c.issued, c.refused, c.latency} {
		if err := o.Metrics.Register(col); err != nil {
			return nil, fmt.Errorf("ca: register metrics: %w", err)
		}
	}
	o.Logger.Info("certificate authority ready", "issuer", issuing.Subject.String(), "chain_length", len(o.Chain), "rotations", len(o.Next), "validity", o.Validity, "base_url", o.BaseURL, "oidc_issuers", len(o.Identity.Issuers()), "ct_log", o.CT != nil)
	return c, nil
}

// at is the issuer in use at t: the last one whose rotation has started.
func (c *CA) at(t time.Time) *issuer {
	it := c.issuers[0]
	for _, next := range c.issuers[1:] {
		if t.Before(next.from) {
			break
		}
		it = next
	}
	return it
}

// checkChain verifies that the chain can issue Fulcio-style certificates.
func checkChain(signer crypto.Signer, chain []*x509.Certificate) error {
	issuing := chain[0]
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := signer.Public().(equaler)
	if !ok || !pub.Equal(issuing.PublicKey) {
		return fmt.Errorf("the signer's public key is not the key of the issuing certificate %q; pass the issuing certificate first in the chain", issuing.Subject)
	}
	if !issuing.BasicConstraintsValid || !issuing.IsCA || issuing.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("issuing certificate %q is not a CA certificate with the certificate-signing key usage", issuing.Subject)
	}
	if len(issuing.ExtKeyUsage) > 0 && !hasCodeSigning(issuing.ExtKeyUsage) {
		return fmt.Errorf("issuing certificate %q restricts extended key usage and does not allow code signing", issuing.Subject)
	}
	if len(issuing.SubjectKeyId) == 0 {
		return fmt.Errorf("issuing certificate %q has no subject key identifier, which issued certificates reference as their authority key identifier", issuing.Subject)
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return fmt.Errorf("certificate %d (%q) is not signed by certificate %d (%q): %v", i, chain[i].Subject, i+1, chain[i+1].Subject, err)
		}
	}
	return nil
}

func hasCodeSigning(ekus []x509.ExtKeyUsage) bool {
	for _, e := range ekus {
		if e == x509.ExtKeyUsageCodeSigning || e == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

// SCTError is a CT log that gave no SCT: no certificate is issued.
type SCTError struct{ Err error }

func (e *SCTError) Error() string { return "certificate transparency log: " + e.Err.Error() }
func (e *SCTError) Unwrap() error { return e.Err }

// issue signs a certificate for the principal's identity and key. spki is the
// key's DER SubjectPublicKeyInfo. With a CT log, the precertificate is
// logged first and the certificate carries its SCT.
func (c *CA) issue(ctx context.Context, it *issuer, now time.Time, p *identity.Principal, pub crypto.PublicKey, spki []byte) (der []byte, serial *big.Int, err error) {
	exts, err := p.Extensions.Render()
	if err != nil {
		return nil, nil, err
	}
	skid, err := subjectKeyID(spki)
	if err != nil {
		return nil, nil, err
	}
	serial, err = randomSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		NotBefore:       now,
		NotAfter:        now.Add(c.validity),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		SubjectKeyId:    skid,
		ExtraExtensions: exts,
	}
	// With an empty subject, crypto/x509 marks the SAN extension critical,
	// as RFC 5280 and Fulcio's certificate specification require.
	if p.URI != nil {
		tmpl.URIs = []*url.URL{p.URI}
	} else {
		tmpl.EmailAddresses = []string{p.Email}
	}
	if c.ct != nil {
		pre, sctExt, err := c.logPrecert(ctx, it, tmpl, pub)
		if err != nil {
			return nil, nil, err
		}
		if it.p256 {
			der, err = certFromPrecert(pre, sctExt, it.signer)
			return der, serial, err
		}
		// The same template with the SCT list where the poison was (both
		// last): removing either leaves the same TBSCertificate, which is
		// how verifiers rebuild what the log signed.
		tmpl.ExtraExtensions = append(slices.Clip(exts), sctExt)
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, it.issuing, pub, it.signer)
	if err != nil {
		return nil, nil, err
	}
	return der, serial, nil
}

// logPrecert makes the precertificate of tmpl, logs it and returns it with
// the SCT list extension for the certificate.
func (c *CA) logPrecert(ctx context.Context, it *issuer, tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, pkix.Extension, error) {
	pre := *tmpl
	pre.ExtraExtensions = append(slices.Clip(tmpl.ExtraExtensions), pkix.Extension{Id: precert.OIDPoison, Critical: true, Value: asn1.NullBytes})
	preDER, err := x509.CreateCertificate(rand.Reader, &pre, it.issuing, pub, it.signer)
	if err != nil {
		return nil, pkix.Extension{}, err
	}
	sct, err := c.ct.SubmitPrecert(ctx, preDER, it.issuing)
	if err != nil {
		return nil, pkix.Extension{}, &SCTError{err}
	}
	raw, err := cttls.Marshal(*sct)
	if err != nil {
		return nil, pkix.Extension{}, fmt.Errorf("encoding the SCT: %w", err)
	}
	list, err := cttls.Marshal(ctx509.SignedCertificateTimestampList{SCTList: []ctx509.SerializedSCT{{Val: raw}}})
	if err != nil {
		return nil, pkix.Extension{}, fmt.Errorf("encoding the SCT list: %w", err)
	}
	val, err := asn1.Marshal(list) // an OCTET STRING holding the TLS-encoded list
	if err != nil {
		return nil, pkix.Extension{}, err
	}
	return preDER, pkix.Extension{Id: precert.OIDSCTList, Value: val}, nil
}

// randomSerial returns a positive serial of 159 random bits, which encodes
// in at most 20 octets as RFC 5280 requires.
func randomSerial() (*big.Int, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	b[0] &= 0x7f
	b[0] |= 0x40 // keep the full 20 octets so serials have a fixed width
	return new(big.Int).SetBytes(b), nil
}

// subjectKeyID is RFC 7093 method 1: the leftmost 160 bits of the SHA-256
// of the subjectPublicKey bits.
func subjectKeyID(spki []byte) ([]byte, error) {
	var info struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if rest, err := asn1.Unmarshal(spki, &info); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("public key is not a DER SubjectPublicKeyInfo")
	}
	sum := sha256.Sum256(info.PublicKey.Bytes)
	return bytes.Clone(sum[:20]), nil
}
