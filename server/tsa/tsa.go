// Package tsa is signet's RFC 3161 time-stamping authority.
//
// It speaks the HTTP API of sigstore/timestamp-authority so that cosign,
// sigstore-go and sigstore-js can use it unchanged:
//
//	POST /api/v1/timestamp            application/timestamp-query (DER TimeStampReq)
//	                                  or application/json ({"artifactHash": ..., "hashAlgorithm": ...})
//	                                  -> application/timestamp-reply (DER TimeStampResp)
//	GET  /api/v1/timestamp/certchain  -> application/pem-certificate-chain
package tsa

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultPolicyOID is the TSA policy stamped into every token when
// Options.PolicyOID is empty. It is the policy sigstore/timestamp-authority
// issues under by default, so verifiers configured for a Sigstore TSA accept
// signet's tokens without extra configuration.
var DefaultPolicyOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 2}

// Accuracy is the accuracy claimed in every token. One second is what
// sigstore/timestamp-authority claims; the clock is the host's.
const Accuracy = time.Second

// DefaultMaxRequestBytes caps a timestamp request body. A DER TimeStampReq
// with a SHA-512 imprint, a nonce and a policy is well under 200 bytes; the
// JSON form a little more. Anything near the cap is not a real request.
const DefaultMaxRequestBytes = 8 << 10

var oidExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}

// Options configure a TSA.
type Options struct {
	// Signer holds the private key of Chain[0].
	Signer crypto.Signer
	// Chain is the TSA signing certificate first, then any intermediates,
	// then the root.
	Chain []*x509.Certificate
	// Next are rotations: from each one's From on, timestamps are signed
	// with its key (From strictly increasing).
	Next []Issuer
	// PolicyOID is the TSA policy stamped into tokens; DefaultPolicyOID when empty.
	PolicyOID asn1.ObjectIdentifier
	Logger    *slog.Logger
	// Metrics receives the TSA's collectors; nil registers nothing.
	Metrics prometheus.Registerer
	// Now is the clock; time.Now when nil. Tests set it.
	Now func() time.Time
	// Record, when set, logs every token before it is answered (time
	// transparency, core/timelog) and returns the log entry (Sigstore
	// TransparencyLogEntry JSON) the token then carries. A token it cannot
	// record is not issued.
	// leaf is the certificate of the key that signed resp, at the
	// token's time (the log shard whose period holds it records it).
	Record func(ctx context.Context, resp []byte, leaf *x509.Certificate, at time.Time) ([]byte, error)
	// MaxRequestBytes caps a request body; default DefaultMaxRequestBytes.
	MaxRequestBytes int64
}

// Issuer is a TSA key and its chain, in use from From on.
type Issuer struct {
	From   time.Time
	Signer crypto.Signer
	Chain  []*x509.Certificate
}

// key is one signing key of the TSA, in use from from on.
type key struct {
	from          time.Time
	signer        crypto.Signer
	signHash      crypto.Hash
	leaf          *x509.Certificate
	intermediates []*x509.Certificate
	chainPEM      []byte
}

// RecordError is a failure of Options.Record whose cause may be told to
// the client (Why); other errors are only logged.
type RecordError struct {
	Why string
	Err error
}

func (e *RecordError) Error() string { return e.Why + ": " + e.Err.Error() }
func (e *RecordError) Unwrap() error { return e.Err }

// TSA issues RFC 3161 timestamps. It is safe for concurrent use.
type TSA struct {
	keys    []*key // by from, ascending; the first from the start
	policy  asn1.ObjectIdentifier
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics
	record  func(ctx context.Context, resp []byte, leaf *x509.Certificate, at time.Time) ([]byte, error)
	maxBody int64
}

// New checks that opts describe a usable RFC 3161 signing identity and
// returns a TSA. Every check here is one that sigstore verifiers apply to each
// timestamp, so a chain that passes New produces timestamps they accept.
func New(opts Options) (*TSA, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	var keys []*key
	for i, is := range append([]Issuer{{Signer: opts.Signer, Chain: opts.Chain}}, opts.Next...) {
		k, err := newKey(is, now())
		if err != nil {
			if i > 0 {
				return nil, fmt.Errorf("tsa: rotation %d: %w", i, err)
			}
			return nil, fmt.Errorf("tsa: %w", err)
		}
		if i > 0 && !k.from.After(keys[i-1].from) {
			return nil, fmt.Errorf("tsa: rotation %d starts at %s, not after the key before it; list rotations in order", i, k.from.UTC().Format(time.RFC3339))
		}
		keys = append(keys, k)
	}
	policy := DefaultPolicyOID
	if len(opts.PolicyOID) > 0 {
		policy = slices.Clone(opts.PolicyOID)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, fmt.Errorf("tsa: registering metrics: %w", err)
	}
	return &TSA{
		keys:    keys,
		policy:  policy,
		log:     log,
		now:     now,
		metrics: m,
		record:  opts.Record,
		maxBody: cmp.Or(max(opts.MaxRequestBytes, 0), DefaultMaxRequestBytes),
	}, nil
}

// newKey checks one issuer: the chain as RFC 3161 and Sigstore want it,
// valid when the key starts signing (now, or a rotation's From).
func newKey(is Issuer, now time.Time) (*key, error) {
	if is.Signer == nil {
		return nil, errors.New("no signer; pass the private key of the TSA signing certificate")
	}
	if len(is.Chain) < 2 {
		return nil, fmt.Errorf("certificate chain has %d certificate(s); pass the TSA signing certificate, any intermediates, and the root", len(is.Chain))
	}
	for i, c := range is.Chain {
		if c == nil {
			return nil, fmt.Errorf("certificate chain entry %d is nil", i)
		}
	}
	if is.From.After(now) {
		now = is.From
	}
	leaf := is.Chain[0]
	if err := checkChain(is.Chain, now); err != nil {
		return nil, err
	}
	if !publicKeysEqual(leaf.PublicKey, is.Signer.Public()) {
		return nil, fmt.Errorf("the signer's public key is not the key of the TSA signing certificate %q; pass the matching key and certificate", leaf.Subject)
	}
	signHash, err := signatureHash(is.Signer.Public())
	if err != nil {
		return nil, err
	}
	var chainPEM bytes.Buffer
	for _, c := range is.Chain {
		_ = pem.Encode(&chainPEM, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return &key{from: is.From, signer: is.Signer, signHash: signHash, leaf: leaf,
		intermediates: slices.Clone(is.Chain[1 : len(is.Chain)-1]), chainPEM: chainPEM.Bytes()}, nil
}

// at is the key in use at t: the last one whose rotation has started.
func (t *TSA) at(tm time.Time) *key {
	k := t.keys[0]
	for _, next := range t.keys[1:] {
		if tm.Before(next.from) {
			break
		}
		k = next
	}
	return k
}

// ChainPEM returns the PEM certificate chain served at
// /api/v1/timestamp/certchain: signing certificate, intermediates, root.
// It is the chain of the key in use now.
func (t *TSA) ChainPEM() []byte { return slices.Clone(t.at(t.now()).chainPEM) }

// checkChain applies RFC 3161 section 2.3 and Sigstore's "EKU chaining" rule.
func checkChain(chain []*x509.Certificate, now time.Time) error {
	leaf := chain[0]
	root := chain[len(chain)-1]
	if leaf.IsCA {
		return fmt.Errorf("TSA signing certificate %q is a CA certificate; RFC 3161 requires an end-entity certificate", leaf.Subject)
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageTimeStamping || len(leaf.UnknownExtKeyUsage) != 0 {
		return fmt.Errorf("TSA signing certificate %q must have exactly one extended key usage, timeStamping (RFC 3161 2.3); reissue it with only that EKU", leaf.Subject)
	}
	critical := false
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(oidExtKeyUsage) {
			critical = ext.Critical
		}
	}
	if !critical {
		return fmt.Errorf("TSA signing certificate %q has a non-critical extended key usage; RFC 3161 2.3 requires it to be critical, reissue it", leaf.Subject)
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return fmt.Errorf("TSA signing certificate %q is valid from %s to %s, not now (%s); issue a current one", leaf.Subject, leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	for _, c := range chain[1:] {
		if !c.IsCA {
			return fmt.Errorf("certificate %q follows the signing certificate but is not a CA; the chain must be signing certificate, intermediates, root", c.Subject)
		}
	}
	// sigstore verifiers require every intermediate to carry timeStamping as
	// its only EKU; a chain without it would yield timestamps nobody accepts.
	for _, c := range chain[1 : len(chain)-1] {
		if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageTimeStamping {
			return fmt.Errorf("intermediate certificate %q must have timeStamping as its only extended key usage (Sigstore verifiers enforce EKU chaining); reissue it", c.Subject)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	for _, c := range chain[1 : len(chain)-1] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping},
	}); err != nil {
		return fmt.Errorf("TSA certificate chain does not verify to its last certificate %q: %v", root.Subject, err)
	}
	return nil
}

type equaler interface {
	Equal(crypto.PublicKey) bool
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// signatureHash picks the CMS digest for the signing key, matching the
// strength of the curve as sigstore/timestamp-authority does.
func signatureHash(pub crypto.PublicKey) (crypto.Hash, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return crypto.SHA256, nil
		case elliptic.P384():
			return crypto.SHA384, nil
		case elliptic.P521():
			return crypto.SHA512, nil
		}
		return 0, fmt.Errorf("unsupported ECDSA curve %s for the TSA key; use P-256, P-384 or P-521", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return 0, fmt.Errorf("TSA RSA key has %d bits; use at least 2048", k.N.BitLen())
		}
		return crypto.SHA256, nil
	}
	return 0, fmt.Errorf("unsupported TSA key type %T; CMS signing supports ECDSA and RSA keys", pub)
}
