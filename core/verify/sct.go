package verify

import (
	"crypto/x509"
	"fmt"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/ctutil"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"

	"github.com/signet-dev/signet/core/trust"
)

// checkSCTs requires SCTs embedded in the signing certificate from at least
// threshold distinct CT logs of the trusted root, each signed by its log over
// the certificate's precertificate and dated inside the log's validity, as
// cosign and sigstore-go require by default. issuer is the certificate that
// signed cert (RFC 6962 §3.2: the precertificate entry names its key).
func checkSCTs(root *trust.Root, cert, issuer *x509.Certificate, threshold int) error {
	serial := cert.SerialNumber.Text(16)
	leaf, err := ctx509.ParseCertificate(cert.Raw)
	if err != nil {
		return fail(CheckSCT, err, "signing certificate (serial %s) cannot be read for its SCTs", serial)
	}
	if len(leaf.SCTList.SCTList) == 0 {
		e := fail(CheckSCT, nil, "signing certificate (serial %s) carries no SCT, but the trusted root names %d CT log(s): the certificate was not logged in certificate transparency", serial, len(root.CTLogs))
		e.Remedy = RemedyIgnoreSCT
		return e
	}
	parent, err := ctx509.ParseCertificate(issuer.Raw)
	if err != nil {
		return fail(CheckSCT, err, "the issuing certificate %q cannot be read", issuer.Subject)
	}
	chain := []*ctx509.Certificate{leaf, parent}
	verified := map[string]bool{}
	var first error
	note := func(err error) {
		if first == nil {
			first = err
		}
	}
	for i, raw := range leaf.SCTList.SCTList {
		var sct ct.SignedCertificateTimestamp
		if rest, err := cttls.Unmarshal(raw.Val, &sct); err != nil || len(rest) > 0 {
			note(fail(CheckSCT, err, "SCT %d of the signing certificate is malformed", i))
			continue
		}
		id := string(sct.LogID.KeyID[:])
		log, ok := root.CTLogs[id]
		if !ok {
			note(fail(CheckSCT, nil, "SCT %d is from CT log %x, which the trusted root does not name", i, sct.LogID.KeyID[:]))
			continue
		}
		if verified[id] {
			continue
		}
		at := ct.TimestampToTime(sct.Timestamp)
		if !log.ValidFor.Contains(at) {
			note(fail(CheckSCT, nil, "SCT %d from CT log %s is dated %s, outside the log key's validity in the trusted root (%s)", i, log.BaseURL, at.UTC().Format("2006-01-02T15:04:05Z"), log.ValidFor))
			continue
		}
		if err := ctutil.VerifySCT(log.PublicKey, chain, &sct, true); err != nil {
			note(fail(CheckSCT, err, "SCT %d from CT log %s does not verify over the certificate", i, log.BaseURL))
			continue
		}
		verified[id] = true
	}
	if len(verified) >= threshold {
		return nil
	}
	if first != nil && threshold == 1 {
		return first
	}
	return fail(CheckSCT, first, "%d verified SCT(s) from distinct CT logs; the policy requires %d", len(verified), threshold)
}

// issuerOf returns the certificate among ca's that signed cert.
func issuerOf(ca *trust.CA, cert *x509.Certificate) (*x509.Certificate, error) {
	for _, c := range append(append([]*x509.Certificate(nil), ca.Intermediates...), ca.Root) {
		if c != nil && cert.CheckSignatureFrom(c) == nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("no certificate of CA %s signed it", ca.URI)
}
