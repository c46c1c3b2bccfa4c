package attest

import (
	"crypto/x509"

	"github.com/signet-dev/signet/core/certext"
)

// signerIdentity returns the certificate's identity (its single SAN) and the
// OIDC issuer that vouched for it (empty for a certificate without the
// Fulcio issuer extensions, e.g. from a self-managed CA).
func signerIdentity(cert *x509.Certificate) (identity, issuer string, err error) {
	if identity, err = certext.SubjectAltName(cert); err != nil {
		return "", "", err
	}
	ext, err := certext.FromCertificate(cert)
	if err != nil {
		return "", "", err
	}
	return identity, ext.Issuer, nil
}
