package attest

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/signet-dev/signet/core/certext"
)

var (
	// oidOtherNameUsername is the otherName SAN type Fulcio uses for
	// username identities that are neither an email nor a URI.
	oidOtherNameUsername = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 7}
	oidSubjectAltName    = asn1.ObjectIdentifier{2, 5, 29, 17}
)

// signerIdentity returns the certificate's identity (its single SAN) and the
// OIDC issuer that vouched for it (empty for a certificate without the
// Fulcio issuer extensions, e.g. from a self-managed CA).
func signerIdentity(cert *x509.Certificate) (identity, issuer string, err error) {
	var sans []string
	sans = append(sans, cert.EmailAddresses...)
	for _, u := range cert.URIs {
		sans = append(sans, u.String())
	}
	others, err := otherNameSANs(cert)
	if err != nil {
		return "", "", err
	}
	sans = append(sans, others...)
	switch len(sans) {
	case 0:
		return "", "", errors.New("the certificate has no email, URI or username subject alternative name, so it names no signer")
	case 1:
		identity = sans[0]
	default:
		return "", "", fmt.Errorf("the certificate has %d subject alternative names %q; a Sigstore signing certificate names exactly one signer", len(sans), sans)
	}
	ext, err := certext.FromCertificate(cert)
	if err != nil {
		return "", "", err
	}
	return identity, ext.Issuer, nil
}

// otherNameSANs returns the Fulcio username otherName SANs, which crypto/x509
// does not parse.
func otherNameSANs(cert *x509.Certificate) ([]string, error) {
	var out []string
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		var seq asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &seq); err != nil || len(rest) != 0 {
			return nil, errors.New("the certificate's subject alternative name extension is not valid DER")
		}
		rest := seq.Bytes
		for len(rest) > 0 {
			var gn asn1.RawValue
			var err error
			rest, err = asn1.Unmarshal(rest, &gn)
			if err != nil {
				return nil, errors.New("the certificate's subject alternative name extension is not valid DER")
			}
			// otherName is [0] IMPLICIT SEQUENCE { type-id OID, value [0] EXPLICIT ANY }.
			if gn.Class != asn1.ClassContextSpecific || gn.Tag != 0 {
				continue
			}
			var on struct {
				TypeID asn1.ObjectIdentifier
				Value  asn1.RawValue // the [0] EXPLICIT wrapper
			}
			if _, err := asn1.UnmarshalWithParams(gn.FullBytes, &on, "tag:0"); err != nil ||
				on.Value.Class != asn1.ClassContextSpecific || on.Value.Tag != 0 || !on.Value.IsCompound {
				return nil, errors.New("the certificate has a malformed otherName subject alternative name")
			}
			if !on.TypeID.Equal(oidOtherNameUsername) {
				continue
			}
			var name string
			if rest, err := asn1.UnmarshalWithParams(on.Value.Bytes, &name, "utf8"); err != nil || len(rest) != 0 {
				return nil, errors.New("the certificate's username otherName is not a UTF8String")
			}
			out = append(out, name)
		}
	}
	return out, nil
}
