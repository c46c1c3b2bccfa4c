package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/signet-dev/signet/server/precert"
)

// certFromPrecert builds, byte for byte, the TBSCertificate crypto/x509
// builds from the template with the SCT list in the poison's place, and a
// signature that verifies under the issuing certificate.
func TestCertFromPrecertMatchesCreateCertificate(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, SubjectKeyId: []byte{1, 2, 3}}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	issuer, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse("https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main")
	other := pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}, Value: []byte{0x0c, 1, 'x'}}
	sct := pkix.Extension{Id: precert.OIDSCTList, Value: []byte{0x04, 3, 0, 1, 2}}
	for _, critical := range []bool{false, true} {
		sct.Critical = critical
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), NotBefore: time.Now(), NotAfter: time.Now().Add(10 * time.Minute),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}, URIs: []*url.URL{u}, SubjectKeyId: []byte{9}}
		tmpl.ExtraExtensions = []pkix.Extension{other, {Id: precert.OIDPoison, Critical: true, Value: asn1.NullBytes}}
		pre, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		got, err := certFromPrecert(pre, sct, caKey)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.ExtraExtensions = []pkix.Extension{other, sct}
		wantDER, _ := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, caKey)
		gotCert, err := x509.ParseCertificate(got)
		if err != nil {
			t.Fatalf("the certificate does not parse: %v", err)
		}
		want, _ := x509.ParseCertificate(wantDER)
		if !bytes.Equal(gotCert.RawTBSCertificate, want.RawTBSCertificate) {
			t.Errorf("critical=%v: TBSCertificate differs from crypto/x509's", critical)
		}
		if err := gotCert.CheckSignatureFrom(issuer); err != nil {
			t.Errorf("signature: %v", err)
		}
	}
	if _, err := certFromPrecert(caDER, sct, caKey); err == nil {
		t.Error("a certificate without poison was turned into a certificate")
	}
}
