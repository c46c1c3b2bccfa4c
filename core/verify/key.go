package verify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"reflect"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/keyref"
)

// Self-managed keys. With Policy.Key set, the caller's public key is the
// trust anchor, as with `cosign verify-blob --key`: the bundle's signature
// must verify with that key, and its log entries must record that key. A
// bundle carrying a certificate is accepted when the certificate holds the
// same key; the certificate is then only a container for the key, so its
// chain, validity and identity are not checked (the key is trusted
// directly). Timestamps and log entries are verified as for keyless bundles.

// LoadPublicKeyFile reads a PEM "PUBLIC KEY" (PKIX) file, as `openssl pkey
// -pubout` and `cosign generate-key-pair` write it.
func LoadPublicKeyFile(path string) (crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParsePublicKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// OpenPublicKey is the public key ref names: a PEM file as
// LoadPublicKeyFile reads it, or the public half of a key URI (pkcs11:…,
// a KMS URI), as cosign's verify --key takes them.
func OpenPublicKey(ctx context.Context, ref string) (crypto.PublicKey, error) {
	if !keyref.IsURI(ref) {
		return LoadPublicKeyFile(ref)
	}
	k, err := keyref.Open(ctx, ref, keyref.Options{})
	if err != nil {
		return nil, err
	}
	return k.Public(), nil
}

// ParsePublicKeyPEM parses the single PEM "PUBLIC KEY" block in data. Other
// key material (private keys, certificates) is refused with what to do
// instead, so that a mix-up fails loudly rather than trusting the wrong thing.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	var found []byte
	var other []string
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "PUBLIC KEY" {
			other = append(other, b.Type)
			continue
		}
		if found != nil {
			return nil, errors.New("more than one PUBLIC KEY block; give a file with exactly one public key")
		}
		found = b.Bytes
	}
	if found == nil {
		return nil, noPublicKeyError(other)
	}
	k, err := x509.ParsePKIXPublicKey(found)
	if err != nil {
		return nil, fmt.Errorf("PUBLIC KEY block: %v", err)
	}
	if err := checkKeyType(k); err != nil {
		return nil, err
	}
	return k, nil
}

func noPublicKeyError(types []string) error {
	for _, t := range types {
		switch {
		case bytes.Contains([]byte(t), []byte("PRIVATE KEY")):
			return fmt.Errorf("this is a private key (PEM %q), not a public key; verify with the public key only, e.g. `openssl pkey -in key.pem -pubout -out key.pub` (cosign keys: `cosign public-key --key cosign.key`)", t)
		case t == "CERTIFICATE":
			return errors.New("this is a certificate, not a public key; to trust a certificate's signer, verify keyless with an identity and issuer policy, or extract its key with `openssl x509 -in cert.pem -pubkey -noout`")
		case t == "RSA PUBLIC KEY":
			return errors.New(`this is a PKCS#1 "RSA PUBLIC KEY"; convert it to PKIX with ` + "`openssl rsa -RSAPublicKey_in -in key.pub -pubout`")
		}
	}
	if len(types) > 0 {
		return fmt.Errorf("no PEM PUBLIC KEY block (found %v); give a PKIX public key file", types)
	}
	return errors.New(`no PEM "PUBLIC KEY" block; give a PKIX public key file (-----BEGIN PUBLIC KEY-----)`)
}

// checkKeyType accepts the key types signet signs with (see core/signer).
func checkKeyType(k crypto.PublicKey) error {
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("ECDSA curve %s is not supported; Sigstore uses P-256, P-384 or P-521", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < 2048 {
			return fmt.Errorf("RSA key of %d bits is too weak to trust; Sigstore requires at least 2048 bits", bits)
		}
		return nil
	case ed25519.PublicKey:
		return nil
	}
	return fmt.Errorf("public key type %T is not supported; use ECDSA, RSA or Ed25519", k)
}

// KeyFingerprint names a public key: "sha256:" and the hex SHA-256 of its
// PKIX DER encoding (what `openssl pkey -pubin -outform DER | sha256sum`
// prints). The hint sigstore-go and signet write in key bundles is the same
// hash, base64-encoded.
func KeyFingerprint(k crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// fingerprint is KeyFingerprint for keys already checked to marshal.
func fingerprint(k crypto.PublicKey) string {
	fp, err := KeyFingerprint(k)
	if err != nil {
		return fmt.Sprintf("(%T key that cannot be encoded: %v)", k, err)
	}
	return fp
}

// validateKeyPolicy checks a policy that trusts a key.
func (p *Policy) validateKeyPolicy() error {
	if !p.Identity.IsZero() || !p.Issuer.IsZero() || !reflect.ValueOf(p.Extensions).IsZero() {
		return fail(CheckPolicy, nil, "a trusted key and a certificate identity policy exclude each other: with a key, the key is the signer; give one or the other")
	}
	if err := checkKeyType(p.Key); err != nil {
		return fail(CheckPolicy, err, "trusted key")
	}
	if _, err := KeyFingerprint(p.Key); err != nil {
		return fail(CheckPolicy, err, "trusted key")
	}
	return nil
}

// signingKey is the key a bundle's signature must verify with: a
// certificate's key (keyless) or the key the policy trusts.
type signingKey struct {
	pub crypto.PublicKey
	// hash is the digest algorithm paired with the key: used for the DSSE
	// PAE and for message signatures whose bundle names no digest.
	hash crypto.Hash
	// trusted is set when the key came from Policy.Key.
	trusted bool
}

func certKey(cert *x509.Certificate) signingKey {
	return signingKey{pub: cert.PublicKey, hash: keyHash(cert.PublicKey)}
}

func trustedKey(pub crypto.PublicKey) signingKey {
	h := keyHash(pub)
	if _, ok := pub.(ed25519.PublicKey); ok {
		// signet (core/signer) and Rekor v2 hashedrekord use Ed25519ph,
		// which signs a SHA-512 digest.
		h = crypto.SHA512
	}
	return signingKey{pub: pub, hash: h, trusted: true}
}

// signingMaterial returns the bundle's certificate (nil for a public key
// bundle) and the key its signature must verify with, per the policy.
func signingMaterial(b *bundle.Bundle, p *Policy) (*x509.Certificate, signingKey, error) {
	der := b.CertificateDER()
	if p.Key == nil {
		if der == nil {
			e := fail(CheckKey, nil, "bundle is signed with a self-managed key (public key hint %q), not a certificate; verify it with the signer's public key instead of an identity policy", b.Proto().GetVerificationMaterial().GetPublicKey().GetHint())
			e.Remedy = RemedyUseKey
			return nil, signingKey{}, e
		}
		cert, err := b.Certificate()
		if err != nil {
			return nil, signingKey{}, certError(err)
		}
		return cert, certKey(cert), nil
	}
	key := trustedKey(p.Key)
	if der == nil {
		return nil, key, nil
	}
	cert, err := b.Certificate()
	if err != nil {
		return nil, signingKey{}, fail(CheckBundle, err, "bundle carries a certificate that does not parse")
	}
	if !publicKeysEqual(cert.PublicKey, p.Key) {
		return nil, signingKey{}, mismatch(CheckKey, "certificate's public key", fingerprint(p.Key)+" (given key)", fingerprint(cert.PublicKey)+" (the bundle's certificate, serial "+cert.SerialNumber.Text(16)+")")
	}
	return cert, key, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}

// hintMismatch explains a failed signature when the bundle's public key
// hint names another key. The hint is unauthenticated, so it only sharpens
// the error; it never makes a bundle verify.
func hintMismatch(b *bundle.Bundle, key signingKey) error {
	hint := b.Proto().GetVerificationMaterial().GetPublicKey().GetHint()
	raw, err := base64.StdEncoding.DecodeString(hint)
	if !key.trusted || err != nil || len(raw) != sha256.Size {
		return nil // not a SHA-256 hint (the format is free); say nothing
	}
	given := fingerprint(key.pub)
	if named := "sha256:" + hex.EncodeToString(raw); named != given {
		e := mismatch(CheckKey, "signing key named by the bundle's public key hint", given+" (given key)", named)
		e.Msg += "; the bundle was signed with another key"
		return e
	}
	return nil
}

// loggedKeyMatches reports whether a public key recorded in a log entry
// (PKIX DER) is key. Parsing rather than comparing bytes accepts any valid
// encoding of the same key.
func loggedKeyMatches(der []byte, key crypto.PublicKey) (bool, string) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return false, fmt.Sprintf("unparsable key (%v)", err)
	}
	return publicKeysEqual(k, key), fingerprint(k)
}

// verify checks sig with the key. A certificate's key keeps the keyless
// rules (verifySignature). A trusted key also accepts the other schemes
// Sigstore clients sign with that key type: RSA-PSS beside PKCS#1 v1.5, and
// Ed25519ph over a SHA-512 digest beside pure Ed25519 (which needs message).
func (k signingKey) verify(sig, message []byte, hash crypto.Hash, digest []byte) error {
	if !k.trusted {
		return verifySignature(k.pub, sig, message, hash, digest)
	}
	switch pub := k.pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			return fmt.Errorf("ECDSA signature over the %s digest does not verify with the given key", hashName(hash))
		}
	case *rsa.PublicKey:
		if rsa.VerifyPKCS1v15(pub, hash, digest, sig) != nil &&
			rsa.VerifyPSS(pub, hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) != nil {
			return fmt.Errorf("RSA signature (PKCS#1 v1.5 or PSS, %s) does not verify with the given key", hashName(hash))
		}
	case ed25519.PublicKey:
		if hash == crypto.SHA512 && ed25519.VerifyWithOptions(pub, digest, sig, &ed25519.Options{Hash: crypto.SHA512}) == nil {
			return nil
		}
		if message != nil && ed25519.Verify(pub, message, sig) {
			return nil
		}
		if message == nil && hash != crypto.SHA512 {
			return fmt.Errorf("Ed25519ph signatures cover a SHA-512 digest, but the bundle's digest is %s", hashName(hash))
		}
		return errors.New("Ed25519 signature does not verify with the given key")
	default:
		return fmt.Errorf("unsupported key type %T", pub)
	}
	return nil
}
