package verify

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/signet-dev/signet/core/certext"
	"github.com/signet-dev/signet/core/trust"
)

var (
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	// Fulcio's otherName SAN for usernames (1.3.6.1.4.1.57264.1.7).
	oidOtherNameUsername = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 7}
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

// Identity is the signer as the certificate names it.
type Identity struct {
	// SAN is the subject alternative name: an email, URI or username.
	SAN        string
	Issuer     string
	Extensions certext.Extensions
}

func identityOf(cert *x509.Certificate) (Identity, error) {
	san, err := subjectAltName(cert)
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

// subjectAltName returns the single identity a Fulcio certificate carries.
func subjectAltName(cert *x509.Certificate) (string, error) {
	var sans []string
	sans = append(sans, cert.EmailAddresses...)
	for _, u := range cert.URIs {
		sans = append(sans, u.String())
	}
	other, err := otherNameSANs(cert)
	if err != nil {
		return "", err
	}
	sans = append(sans, other...)
	switch len(sans) {
	case 0:
		return "", errNoSAN
	case 1:
		return sans[0], nil
	}
	return "", fmt.Errorf("certificate has %d subject alternative names (%s); Fulcio certificates carry exactly one", len(sans), strings.Join(sans, ", "))
}

// otherNameSANs extracts Fulcio username SANs (otherName, UTF8String), which
// crypto/x509 does not expose.
func otherNameSANs(cert *x509.Certificate) ([]string, error) {
	var out []string
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		var seq asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &seq); err != nil || len(rest) > 0 {
			return nil, errors.New("subject alternative name extension is malformed")
		}
		rest := seq.Bytes
		for len(rest) > 0 {
			var gn asn1.RawValue
			var err error
			if rest, err = asn1.Unmarshal(rest, &gn); err != nil {
				return nil, errors.New("subject alternative name extension is malformed")
			}
			if gn.Class != asn1.ClassContextSpecific || gn.Tag != 0 {
				continue // not otherName
			}
			var on struct {
				ID    asn1.ObjectIdentifier
				Value asn1.RawValue `asn1:"explicit,tag:0"`
			}
			if _, err := asn1.UnmarshalWithParams(gn.FullBytes, &on, "tag:0"); err != nil {
				return nil, errors.New("otherName subject alternative name is malformed")
			}
			if !on.ID.Equal(oidOtherNameUsername) {
				continue
			}
			var s string
			if _, err := asn1.UnmarshalWithParams(on.Value.FullBytes, &s, "utf8"); err != nil {
				return nil, errors.New("username subject alternative name is not a UTF8String")
			}
			out = append(out, s)
		}
	}
	return out, nil
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
