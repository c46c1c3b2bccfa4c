package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"strings"
	"testing"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"

	"github.com/signet-dev/signet/core/trust"
)

// The schemes a trusted key accepts besides the ones core/signer produces
// (which TestKeyBundles covers end to end): RSA-PSS and pure Ed25519, as
// other Sigstore clients sign.
func TestTrustedKeySchemes(t *testing.T) {
	msg := []byte("statement PAE")
	d256 := sha256.Sum256(msg)
	d512 := sha512.Sum512(msg)

	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pss, err := rsa.SignPSS(rand.Reader, rk, crypto.SHA256, d256[:], nil)
	if err != nil {
		t.Fatal(err)
	}
	pkcs, err := rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA256, d256[:])
	if err != nil {
		t.Fatal(err)
	}
	epub, epriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pure := ed25519.Sign(epriv, msg)
	ph, err := epriv.Sign(rand.Reader, d512[:], &ed25519.Options{Hash: crypto.SHA512})
	if err != nil {
		t.Fatal(err)
	}
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	esig, _ := ecdsa.SignASN1(rand.Reader, ek, d256[:])

	type call struct {
		sig, message []byte
		hash         crypto.Hash
		digest       []byte
	}
	for _, c := range []struct {
		name string
		key  signingKey
		call call
		ok   bool
		msg  string
	}{
		{"RSA PKCS#1 v1.5", trustedKey(&rk.PublicKey), call{pkcs, nil, crypto.SHA256, d256[:]}, true, ""},
		{"RSA PSS", trustedKey(&rk.PublicKey), call{pss, nil, crypto.SHA256, d256[:]}, true, ""},
		{"RSA PSS, other digest", trustedKey(&rk.PublicKey), call{pss, nil, crypto.SHA256, d512[:32]}, false, "PKCS#1 v1.5 or PSS"},
		{"RSA PSS from a certificate (keyless rules)", certKeyOf(&rk.PublicKey), call{pss, nil, crypto.SHA256, d256[:]}, false, "PKCS#1 v1.5"},
		{"Ed25519ph over the digest", trustedKey(epub), call{ph, nil, crypto.SHA512, d512[:]}, true, ""},
		{"pure Ed25519 over the message", trustedKey(epub), call{pure, msg, crypto.SHA512, d512[:]}, true, ""},
		{"pure Ed25519 without the message", trustedKey(epub), call{pure, nil, crypto.SHA512, d512[:]}, false, "does not verify"},
		{"Ed25519ph over a SHA-256 digest", trustedKey(epub), call{ph, nil, crypto.SHA256, d256[:]}, false, "SHA-512"},
		{"ECDSA", trustedKey(&ek.PublicKey), call{esig, nil, crypto.SHA256, d256[:]}, true, ""},
		{"ECDSA, other digest", trustedKey(&ek.PublicKey), call{esig, nil, crypto.SHA256, d512[:32]}, false, "given key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.key.verify(c.call.sig, c.call.message, c.call.hash, c.call.digest)
			if c.ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.msg)) {
				t.Errorf("verify: %v; want ok=%v (error mentioning %q)", err, c.ok, c.msg)
			}
		})
	}
	if h := trustedKey(epub).hash; h != crypto.SHA512 {
		t.Errorf("Ed25519 key hash %v, want SHA-512 (Ed25519ph)", h)
	}
}

func certKeyOf(pub crypto.PublicKey) signingKey {
	return signingKey{pub: pub, hash: keyHash(pub)}
}

// An entry with neither a proof nor a verified promise does not count,
// whatever else it carries. Bundle parsing refuses such entries first, so
// this is reached only through checkEntry itself.
func TestEntryWithoutProofDoesNotCount(t *testing.T) {
	e := &protorekor.TransparencyLogEntry{
		LogIndex: 999999, LogId: &protocommon.LogId{KeyId: []byte{1}},
		KindVersion:       &protorekor.KindVersion{Kind: "hashedrekord", Version: "0.0.2"},
		CanonicalizedBody: []byte(`{}`),
		InclusionPromise:  &protorekor.InclusionPromise{SignedEntryTimestamp: []byte("garbage")},
	}
	if _, err := (&Verifier{}).checkEntry(&trust.Log{}, e, expectedEntry{}, nil, false, nil); !errors.Is(err, errUnproven) {
		t.Fatalf("err %v, want the entry not counted", err)
	}
}
