// Package pki makes the certificates of the server's own keys: the root CA,
// the issuing (intermediate) CA certificate the server signs with, and the
// timestamping certificate of its TSA. The keys may be files, PKCS#11 or KMS
// keys (core/keyref): everything here takes a crypto.Signer, so a root can
// sign on an offline machine's token and only certificates travel.
package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Kind is what an issued certificate is for.
type Kind int

const (
	// Intermediate is an issuing CA for Fulcio-style code-signing
	// certificates: CA:TRUE, path length 0, code signing only.
	Intermediate Kind = iota
	// Timestamping is an RFC 3161 TSA certificate: not a CA, the
	// timeStamping extended key usage, critical (RFC 3161 §2.3).
	Timestamping
)

func (k Kind) String() string {
	if k == Timestamping {
		return "timestamping"
	}
	return "intermediate CA"
}

var (
	oidExtKeyUsage   = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidTimeStamping  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}
	errNotSelfSigned = errors.New("not a self-signed CA certificate")
)

// Root makes a self-signed root CA certificate. Its path length allows one
// intermediate below it, as Fulcio's roots do.
func Root(signer crypto.Signer, subject pkix.Name, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{
		Subject:               subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	return create(tmpl, tmpl, signer.Public(), signer)
}

// Issue signs a certificate of kind for pub with the parent's key. The
// validity is cut to the parent's: a child outliving its issuer would fail
// verification after the parent expires anyway.
func Issue(parent crypto.Signer, parentCert *x509.Certificate, pub crypto.PublicKey, subject pkix.Name, kind Kind, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	if !parentCert.IsCA || parentCert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("pki: %q is not a CA certificate that may sign certificates", parentCert.Subject)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if p, ok := parent.Public().(equaler); !ok || !p.Equal(parentCert.PublicKey) {
		return nil, fmt.Errorf("pki: the signing key is not the key of %q", parentCert.Subject)
	}
	if notAfter.After(parentCert.NotAfter) {
		notAfter = parentCert.NotAfter
	}
	if notBefore.Before(parentCert.NotBefore) {
		notBefore = parentCert.NotBefore
	}
	tmpl := &x509.Certificate{Subject: subject, NotBefore: notBefore, NotAfter: notAfter}
	switch kind {
	case Intermediate:
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
		tmpl.BasicConstraintsValid, tmpl.IsCA, tmpl.MaxPathLenZero = true, true, true
	case Timestamping:
		eku, err := asn1.Marshal([]asn1.ObjectIdentifier{oidTimeStamping})
		if err != nil {
			return nil, err
		}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtraExtensions = []pkix.Extension{{Id: oidExtKeyUsage, Critical: true, Value: eku}}
		tmpl.BasicConstraintsValid = true
	default:
		return nil, fmt.Errorf("pki: unknown certificate kind %d", kind)
	}
	return create(tmpl, parentCert, pub, parent)
}

func create(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, error) {
	var err error
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 159)); err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("pki: signing the %q certificate: %w", tmpl.Subject, err)
	}
	return x509.ParseCertificate(der)
}

// CSR is a PEM certificate request for signer's key, which an offline root
// turns into a certificate with Issue (signet ca issue-intermediate).
func CSR(signer crypto.Signer, subject pkix.Name) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject}, signer)
	if err != nil {
		return nil, fmt.Errorf("pki: making the certificate request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// ParseCSR reads a PEM certificate request and checks its signature: the
// requester holds the key it asks a certificate for.
func ParseCSR(b []byte) (*x509.CertificateRequest, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("not a PEM CERTIFICATE REQUEST (make one with signet ca csr)")
	}
	req, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return nil, err
	}
	if err := req.CheckSignature(); err != nil {
		return nil, fmt.Errorf("the request's signature does not verify, so its sender may not hold the key: %w", err)
	}
	return req, nil
}

// CheckRoot tells whether c can be the last certificate of a chain.
func CheckRoot(c *x509.Certificate) error {
	if !c.IsCA || c.CheckSignatureFrom(c) != nil {
		return fmt.Errorf("%q: %w", c.Subject, errNotSelfSigned)
	}
	return nil
}

// PEM encodes certificates one after another, as chain files hold them.
func PEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// CheckValid refuses a certificate outside its validity at now, naming
// what to do; the server checks its chains at start with it.
func CheckValid(what string, c *x509.Certificate, now time.Time) error {
	switch {
	case now.After(c.NotAfter):
		return fmt.Errorf("%s %q expired on %s: issue a new one (signet ca issue-intermediate) and configure its chain", what, c.Subject, c.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.NotBefore):
		return fmt.Errorf("%s %q is not valid before %s: check the machine's clock, or wait", what, c.Subject, c.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}
