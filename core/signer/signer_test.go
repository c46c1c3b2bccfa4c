package signer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/youmark/pkcs8"
)

// verify checks sig over msg with the signer's public key and algorithm.
func verify(t *testing.T, s *Signer, msg, sig []byte) {
	t.Helper()
	d := s.Digest(msg)
	var ok bool
	switch k := s.Public().(type) {
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(k, d, sig)
	case *rsa.PublicKey:
		ok = rsa.VerifyPKCS1v15(k, crypto.SHA256, d, sig) == nil
	case ed25519.PublicKey:
		ok = ed25519.VerifyWithOptions(k, d, sig, &ed25519.Options{Hash: crypto.SHA512}) == nil
	}
	if !ok {
		t.Fatalf("%s signature does not verify", s.KeyDetails())
	}
}

func TestEphemeral(t *testing.T) {
	s, err := Ephemeral()
	if err != nil {
		t.Fatal(err)
	}
	if s.KeyDetails() != protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256 || s.HashAlgorithm() != protocommon.HashAlgorithm_SHA2_256 {
		t.Fatalf("details %s hash %s", s.KeyDetails(), s.HashAlgorithm())
	}
	sig, err := s.SignMessage([]byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	verify(t, s, []byte("hello"), sig)
	if _, err := s.SignDigest([]byte("short")); err == nil || !strings.Contains(err.Error(), "digest is 5 bytes") {
		t.Fatalf("short digest: %v", err)
	}
	der, _ := s.PublicKeyDER()
	sum := sha256.Sum256(der)
	if hint, _ := s.KeyHint(); hint != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("hint %q is not base64(SHA-256(PKIX DER))", hint)
	}
}

func writePEM(t *testing.T, typ string, der []byte, headers map[string]string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der, Headers: headers}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadKeyFormats(t *testing.T) {
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ec384)
	edPKCS8, _ := x509.MarshalPKCS8PrivateKey(edKey)
	rsaPKCS8, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	cases := []struct {
		name, typ string
		der       []byte
		want      protocommon.PublicKeyDetails
	}{
		{"SEC1 P-384", "EC PRIVATE KEY", ecDER, protocommon.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384},
		{"PKCS#1 RSA", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey), protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256},
		{"PKCS#8 RSA", "PRIVATE KEY", rsaPKCS8, protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256},
		{"PKCS#8 Ed25519", "PRIVATE KEY", edPKCS8, protocommon.PublicKeyDetails_PKIX_ED25519_PH},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := LoadKeyFile(writePEM(t, c.typ, c.der, nil), LoadOptions{Getenv: func(string) string { return "" }})
			if err != nil {
				t.Fatal(err)
			}
			if s.KeyDetails() != c.want {
				t.Fatalf("details %s, want %s", s.KeyDetails(), c.want)
			}
			sig, err := s.SignMessage([]byte("artifact"))
			if err != nil {
				t.Fatal(err)
			}
			verify(t, s, []byte("artifact"), sig)
		})
	}
}

func TestEncryptedKeys(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	encPKCS8, err := pkcs8.MarshalPrivateKey(key, []byte("s3cret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := x509.MarshalPKCS8PrivateKey(key)
	cosign, err := encrypted.Encrypt(plain, []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		typ string
		der []byte
	}{
		{"ENCRYPTED PRIVATE KEY", encPKCS8},
		{"ENCRYPTED SIGSTORE PRIVATE KEY", cosign},
	} {
		t.Run(c.typ, func(t *testing.T) {
			path := writePEM(t, c.typ, c.der, nil)
			s, err := LoadKeyFile(path, LoadOptions{Getenv: func(k string) string {
				if k == "SIGNET_PASSWORD" {
					return "s3cret"
				}
				return ""
			}})
			if err != nil {
				t.Fatal(err)
			}
			if !s.Public().(*ecdsa.PublicKey).Equal(&key.PublicKey) {
				t.Fatal("decrypted a different key")
			}
			_, err = LoadKeyFile(path, LoadOptions{Getenv: func(string) string { return "" }})
			if err == nil || !strings.Contains(err.Error(), "set SIGNET_PASSWORD") {
				t.Fatalf("no password: %v", err)
			}
			_, err = LoadKeyFile(path, LoadOptions{Password: []byte("wrong")})
			if err == nil || !strings.Contains(err.Error(), "wrong SIGNET_PASSWORD") {
				t.Fatalf("wrong password: %v", err)
			}
		})
	}
}

func TestRejectedKeys(t *testing.T) {
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ec)
	cases := map[string]struct {
		path string
		want string
	}{
		"weak RSA":         {writePEM(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(weak), nil), "too weak"},
		"legacy encrypted": {writePEM(t, "EC PRIVATE KEY", ecDER, map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00"}), "openssl pkcs8 -topk8"},
		"public key only":  {writePEM(t, "PUBLIC KEY", []byte{1, 2}, nil), "no PEM private key block"},
		"garbage PKCS#8":   {writePEM(t, "PRIVATE KEY", []byte{1, 2, 3}, nil), "PRIVATE KEY block"},
		"unknown type":     {writePEM(t, "OPENSSH PRIVATE KEY", []byte{1}, nil), "not a supported private key"},
	}
	for name, c := range cases {
		if _, err := LoadKeyFile(c.path, LoadOptions{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", name, err, c.want)
		}
	}
	if _, err := LoadKeyFile(filepath.Join(t.TempDir(), "none.pem"), LoadOptions{}); err == nil {
		t.Error("missing file accepted")
	}
}

func TestFulcioAlgorithm(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	s, _ := New(ed)
	if _, err := s.FulcioAlgorithm(); err == nil {
		t.Fatal("Ed25519 accepted for Fulcio")
	}
	e, _ := Ephemeral()
	if alg, err := e.FulcioAlgorithm(); err != nil || alg != "ECDSA" {
		t.Fatalf("%q %v", alg, err)
	}
}
