package certext

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"
)

var (
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	// OIDOtherNameUsername is Fulcio's otherName SAN type for username
	// identities that are neither an email nor a URI.
	OIDOtherNameUsername = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 7}
)

// ErrNoSAN is returned for a certificate that names no signer.
var ErrNoSAN = errors.New("the certificate has no email, URI or username subject alternative name, so it names no signer")

// SubjectAltName returns the one identity a Fulcio certificate certifies:
// its single email, URI or username (otherName) SAN.
func SubjectAltName(cert *x509.Certificate) (string, error) {
	sans := append([]string(nil), cert.EmailAddresses...)
	for _, u := range cert.URIs {
		sans = append(sans, u.String())
	}
	others, err := usernameSANs(cert)
	if err != nil {
		return "", err
	}
	sans = append(sans, others...)
	switch len(sans) {
	case 0:
		return "", ErrNoSAN
	case 1:
		return sans[0], nil
	}
	return "", fmt.Errorf("the certificate has %d subject alternative names (%s); a Sigstore signing certificate names exactly one signer", len(sans), strings.Join(sans, ", "))
}

// usernameSANs extracts Fulcio username SANs (otherName, UTF8String), which
// crypto/x509 does not expose.
func usernameSANs(cert *x509.Certificate) ([]string, error) {
	var out []string
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		var seq asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &seq); err != nil || len(rest) > 0 {
			return nil, errors.New("the certificate's subject alternative name extension is not valid DER")
		}
		rest := seq.Bytes
		for len(rest) > 0 {
			var gn asn1.RawValue
			var err error
			if rest, err = asn1.Unmarshal(rest, &gn); err != nil {
				return nil, errors.New("the certificate's subject alternative name extension is not valid DER")
			}
			if gn.Class != asn1.ClassContextSpecific || gn.Tag != 0 {
				continue // not otherName
			}
			// otherName is [0] IMPLICIT SEQUENCE { type-id OID, value [0] EXPLICIT ANY }.
			var on struct {
				ID    asn1.ObjectIdentifier
				Value asn1.RawValue // the [0] EXPLICIT wrapper
			}
			if _, err := asn1.UnmarshalWithParams(gn.FullBytes, &on, "tag:0"); err != nil ||
				on.Value.Class != asn1.ClassContextSpecific || on.Value.Tag != 0 || !on.Value.IsCompound {
				return nil, errors.New("the certificate has a malformed otherName subject alternative name")
			}
			if !on.ID.Equal(OIDOtherNameUsername) {
				continue
			}
			var s string
			if rest, err := asn1.UnmarshalWithParams(on.Value.Bytes, &s, "utf8"); err != nil || len(rest) != 0 {
				return nil, errors.New("the certificate's username otherName is not a UTF8String")
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// Identity is who a signing certificate names, for reports: its subject
// alternative name and the OIDC issuer extension. Either is empty when the
// certificate does not say (reports show what there is; the verifier, not
// this, decides whether a certificate is acceptable).
func Identity(cert *x509.Certificate) (san, issuer string) {
	san, _ = SubjectAltName(cert)
	if ext, err := FromCertificate(cert); err == nil {
		issuer = ext.Issuer
	}
	return san, issuer
}
