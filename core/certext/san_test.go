package certext

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"
)

func certWith(t *testing.T, tmpl *x509.Certificate) *x509.Certificate {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl.SerialNumber = big.NewInt(1)
	tmpl.NotBefore, tmpl.NotAfter = time.Now(), time.Now().Add(time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// usernameSAN is the otherName SAN Fulcio writes for username identities.
func usernameSAN(t *testing.T, name string) pkix.Extension {
	val, _ := asn1.MarshalWithParams(name, "utf8")
	on, err := asn1.MarshalWithParams(struct {
		ID    asn1.ObjectIdentifier
		Value asn1.RawValue
	}{OIDOtherNameUsername, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: val}}, "tag:0")
	if err != nil {
		t.Fatal(err)
	}
	seq, _ := asn1.Marshal([]asn1.RawValue{{FullBytes: on}})
	return pkix.Extension{Id: oidSubjectAltName, Critical: true, Value: seq}
}

func TestSubjectAltName(t *testing.T) {
	u, _ := url.Parse("https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main")
	cases := []struct {
		name string
		tmpl *x509.Certificate
		want string
		err  string
	}{
		{"email", &x509.Certificate{EmailAddresses: []string{"alice@example.com"}}, "alice@example.com", ""},
		{"uri", &x509.Certificate{URIs: []*url.URL{u}}, u.String(), ""},
		{"username", &x509.Certificate{ExtraExtensions: []pkix.Extension{usernameSAN(t, "alice!example.com")}}, "alice!example.com", ""},
		{"two", &x509.Certificate{EmailAddresses: []string{"a@example.com"}, URIs: []*url.URL{u}}, "", "2 subject alternative names"},
		{"none", &x509.Certificate{Subject: pkix.Name{CommonName: "x"}}, "", "names no signer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SubjectAltName(certWith(t, tc.tmpl))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("want error %q, got %q, %v", tc.err, got, err)
				}
				if tc.name == "none" && !errors.Is(err, ErrNoSAN) {
					t.Fatalf("want ErrNoSAN, got %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
