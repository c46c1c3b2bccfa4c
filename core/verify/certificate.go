package verify

import (
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/signet-dev/signet/core/certext"
	"github.com/signet-dev/signet/core/trust"
)

// verifyChain checks that cert chains to a CA of the trusted root at every
// time in times, and that the CA's validity window covers each time. It
// returns the CA that verified.
func verifyChain(root *trust.Root, cert *x509.Certificate, times []time.Time) (*trust.CA, error) {
	var errs []string
	for _, ca := range root.CAs {
		err := chainAt(ca, cert, times)
		if err == nil {
			return ca, nil
		}
		errs = append(errs, fmt.Sprintf("%s: %v", ca.URI, err))
	}
	return nil, fail(CheckCertificateChain, nil, "signing certificate (issuer %q, serial %x) does not chain to a trusted CA at the signing time: %s",
		cert.Issuer.String(), cert.SerialNumber, strings.Join(errs, "; "))
}

func chainAt(ca *trust.CA, cert *x509.Certificate, times []time.Time) error {
	for _, t := range times {
		if !ca.ValidFor.Contains(t) {
			return fmt.Errorf("signing time %s is outside the CA's validity %s", t.UTC().Format(time.RFC3339), ca.ValidFor)
		}
		_, err := cert.Verify(x509.VerifyOptions{
			Roots:         ca.Roots(),
			Intermediates: ca.IntermediatePool(),
			CurrentTime:   t,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// checkLeafProfile refuses leaves that a code-signing verifier must not
// accept even from a trusted CA, following Fulcio's certificate profile:
// not a CA, digitalSignature key usage, and an extended key usage that
// names codeSigning. Go's chain check alone lets through a leaf with no
// extended key usage (it reads that as any usage) and one that is a CA.
func checkLeafProfile(cert *x509.Certificate) error {
	serial := cert.SerialNumber.Text(16)
	if cert.BasicConstraintsValid && cert.IsCA {
		return fail(CheckCertificateProfile, nil, "signing certificate (serial %s) is a CA certificate (basicConstraints CA:TRUE); a signing leaf must not be able to issue certificates", serial)
	}
	if cert.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return fail(CheckCertificateProfile, nil, "signing certificate (serial %s) lacks the digitalSignature key usage", serial)
	}
	codeSigning := false
	for _, u := range cert.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageAny:
			return fail(CheckCertificateProfile, nil, "signing certificate (serial %s) has the anyExtendedKeyUsage extended key usage; it must name codeSigning only", serial)
		case x509.ExtKeyUsageCodeSigning:
			codeSigning = true
		}
	}
	if !codeSigning {
		return fail(CheckCertificateProfile, nil, "signing certificate (serial %s) has no codeSigning extended key usage (found %d other usages); Fulcio certificates carry codeSigning", serial, len(cert.ExtKeyUsage)+len(cert.UnknownExtKeyUsage))
	}
	return nil
}

// Identity is the signer as the certificate names it.
type Identity struct {
	// SAN is the subject alternative name: an email, URI or username.
	SAN        string
	Issuer     string
	Extensions certext.Extensions
}

func identityOf(cert *x509.Certificate) (Identity, error) {
	san, err := certext.SubjectAltName(cert)
	if err != nil {
		return Identity{}, fail(CheckIdentity, err, "cannot read the signer identity")
	}
	ext, err := certext.Parse(cert.Extensions)
	if err != nil {
		return Identity{}, fail(CheckIdentity, err, "certificate extensions do not parse")
	}
	if ext.Issuer == "" {
		return Identity{}, fail(CheckIdentity, nil, "certificate has no OIDC issuer extension (1.3.6.1.4.1.57264.1.8 or .1.1); it was not issued by a Fulcio-compatible CA")
	}
	return Identity{SAN: san, Issuer: ext.Issuer, Extensions: ext}, nil
}

func checkIdentity(p *Policy, id Identity) error {
	if !p.Identity.Match(id.SAN) {
		return mismatch(CheckIdentity, "certificate subject alternative name", p.Identity.String(), id.SAN)
	}
	if !p.Issuer.Match(id.Issuer) {
		return mismatch(CheckIdentity, "OIDC issuer", p.Issuer.String(), id.Issuer)
	}
	return matchExtensions(p.Extensions, id.Extensions)
}
