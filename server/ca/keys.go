package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// acceptedKeys is quoted in every key refusal so callers know what to send.
const acceptedKeys = "ECDSA P-256, P-384 or P-521; RSA of 2048 to 4096 bits (a multiple of 8, exponent 65537); Ed25519"

// parsePublicKey reads the publicKey.content of a request: a PEM "PUBLIC
// KEY" block or, as Fulcio also accepts, the DER SubjectPublicKeyInfo itself.
// It returns the key and its DER encoding.
func parsePublicKey(content string) (crypto.PublicKey, []byte, error) {
	if content == "" {
		return nil, nil, errors.New("publicKeyRequest.publicKey.content is empty; send the PEM-encoded public key")
	}
	der := []byte(content)
	if block, _ := pem.Decode(der); block != nil {
		if block.Type != "PUBLIC KEY" {
			return nil, nil, fmt.Errorf("public key PEM block is %q; send a \"PUBLIC KEY\" (SubjectPublicKeyInfo) block", block.Type)
		}
		der = block.Bytes
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, nil, fmt.Errorf("public key is not a PEM or DER SubjectPublicKeyInfo (%v); accepted keys: %s", err, acceptedKeys)
	}
	return pub, der, nil
}

// errUnsupportedKey marks refusals of well-formed keys of the wrong kind.
var errUnsupportedKey = errors.New("unsupported key")

// checkKey enforces the key types of Fulcio's certificate specification.
func checkKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("%w: ECDSA curve %s; accepted keys: %s", errUnsupportedKey, k.Curve.Params().Name, acceptedKeys)
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		switch {
		case bits < 2048 || bits > 4096 || bits%8 != 0:
			return fmt.Errorf("%w: %d-bit RSA key; accepted keys: %s", errUnsupportedKey, bits, acceptedKeys)
		case k.E != 65537:
			return fmt.Errorf("%w: RSA exponent %d; accepted keys: %s", errUnsupportedKey, k.E, acceptedKeys)
		case hasClosePrimes(k.N):
			return fmt.Errorf("%w: the RSA modulus factors easily (its primes are too close together, CVE-2022-26320); generate a new key with a sound library", errUnsupportedKey)
		}
		return nil
	case ed25519.PublicKey:
		return nil
	}
	return fmt.Errorf("%w: %T; accepted keys: %s", errUnsupportedKey, pub, acceptedKeys)
}

// fermatRounds is how many steps of Fermat's factorisation are tried, as in
// Let's Encrypt's key checks: enough to catch primes generated next to each
// other, cheap enough to run per request.
const fermatRounds = 100

// hasClosePrimes reports whether Fermat's method factors n quickly, i.e.
// n = a² − b² for an a within fermatRounds of ⌈√n⌉.
func hasClosePrimes(n *big.Int) bool {
	one := big.NewInt(1)
	a := new(big.Int).Sqrt(n)
	b2 := new(big.Int).Mul(a, a)
	if b2.Cmp(n) != 0 {
		a.Add(a, one)
		b2.Mul(a, a)
	}
	b2.Sub(b2, n) // a² − n
	b := new(big.Int)
	bb := new(big.Int)
	for i := 0; i < fermatRounds; i++ {
		b.Sqrt(b2)
		if bb.Mul(b, b).Cmp(b2) == 0 {
			return true
		}
		// (a+1)² − n = (a² − n) + 2a + 1
		b2.Add(b2, a)
		b2.Add(b2, a)
		b2.Add(b2, one)
		a.Add(a, one)
	}
	return false
}

// verifyProof checks the proof of possession: a signature over the challenge
// (the token's sub, or email) made with the key being certified, using the
// key's default Sigstore algorithm.
func verifyProof(pub crypto.PublicKey, challenge string, sig []byte) error {
	if len(sig) == 0 {
		return errors.New("publicKeyRequest.proofOfPossession is empty")
	}
	msg := []byte(challenge)
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		var digest []byte
		switch k.Curve {
		case elliptic.P384():
			h := sha512.Sum384(msg)
			digest = h[:]
		case elliptic.P521():
			h := sha512.Sum512(msg)
			digest = h[:]
		default:
			h := sha256.Sum256(msg)
			digest = h[:]
		}
		if ecdsa.VerifyASN1(k, digest, sig) {
			return nil
		}
	case *rsa.PublicKey:
		h := sha256.Sum256(msg)
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, h[:], sig) == nil || rsa.VerifyPSS(k, crypto.SHA256, h[:], sig, nil) == nil {
			return nil
		}
	case ed25519.PublicKey:
		if ed25519.Verify(k, msg, sig) {
			return nil
		}
	}
	return errors.New("signature does not verify")
}

// weakCSRAlgorithms are CSR signature algorithms too weak to prove anything.
var weakCSRAlgorithms = map[x509.SignatureAlgorithm]bool{
	x509.MD2WithRSA: true, x509.MD5WithRSA: true, x509.SHA1WithRSA: true,
	x509.ECDSAWithSHA1: true, x509.DSAWithSHA1: true, x509.DSAWithSHA256: true,
}

// parseCSR reads a PKCS#10 request (PEM, or DER as Fulcio also accepts) and
// checks its self-signature, which is the proof of possession. All fields
// other than the public key are ignored, as in Fulcio.
func parseCSR(raw []byte) (*x509.CertificateRequest, error) {
	der := raw
	if block, _ := pem.Decode(raw); block != nil {
		if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
			return nil, fmt.Errorf("PEM block is %q, want \"CERTIFICATE REQUEST\"", block.Type)
		}
		der = block.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, err
	}
	return csr, nil
}
