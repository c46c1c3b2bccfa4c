package attest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/core/certext"
)

func certWithExtensions(t *testing.T, exts ...pkix.Extension) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), ExtraExtensions: exts}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// usernameSAN builds the otherName SAN Fulcio uses for username identities.
func usernameSAN(t *testing.T, name string) pkix.Extension {
	t.Helper()
	val, _ := asn1.MarshalWithParams(name, "utf8")
	on, err := asn1.MarshalWithParams(struct {
		TypeID asn1.ObjectIdentifier
		Value  asn1.RawValue
	}{certext.OIDOtherNameUsername, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: val}}, "tag:0")
	if err != nil {
		t.Fatal(err)
	}
	seq, err := asn1.Marshal([]asn1.RawValue{{FullBytes: on}})
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidSubjectAltName, Critical: true, Value: seq}
}

func TestSignerIdentity(t *testing.T) {
	issuer := func(oid asn1.ObjectIdentifier, v string, der bool) pkix.Extension {
		if der {
			b, _ := asn1.MarshalWithParams(v, "utf8")
			return pkix.Extension{Id: oid, Value: b}
		}
		return pkix.Extension{Id: oid, Value: []byte(v)}
	}
	cert := certWithExtensions(t, usernameSAN(t, "alice!example.com"), issuer(certext.OIDIssuerV2, "https://idp.example.com", true))
	id, iss, err := signerIdentity(cert)
	if err != nil || id != "alice!example.com" || iss != "https://idp.example.com" {
		t.Fatalf("username SAN: %q %q %v", id, iss, err)
	}
	// Older CAs write only the raw-string issuer extension.
	cert = certWithExtensions(t, usernameSAN(t, "bob"), issuer(certext.OIDIssuer, "https://old.example.com", false))
	if _, iss, err := signerIdentity(cert); err != nil || iss != "https://old.example.com" {
		t.Fatalf("legacy issuer: %q %v", iss, err)
	}
	// Two issuers that disagree must not be indexed under either.
	cert = certWithExtensions(t, usernameSAN(t, "bob"), issuer(certext.OIDIssuer, "https://a.example.com", false), issuer(certext.OIDIssuerV2, "https://b.example.com", true))
	if _, _, err := signerIdentity(cert); err == nil || !strings.Contains(err.Error(), "two different OIDC issuers") {
		t.Fatalf("conflicting issuers: %v", err)
	}
	// A malformed SAN is refused, not skipped.
	cert = certWithExtensions(t, pkix.Extension{Id: oidSubjectAltName, Value: []byte{0x30, 0x03, 0xa0, 0x01, 0x00}})
	if _, _, err := signerIdentity(cert); err == nil {
		t.Fatal("malformed otherName accepted")
	}
}
