// Package signer holds the keys signet signs with: an ephemeral ECDSA P-256
// key for keyless signing, or a self-managed key loaded from a PEM file.
// A Signer hashes with the algorithm its key calls for, so callers can sign
// either a whole message or a digest they streamed themselves.
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
	"errors"
	"fmt"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
)

// Signer signs with one private key.
type Signer struct {
	key     crypto.Signer
	hash    crypto.Hash
	details protocommon.PublicKeyDetails
}

// Ephemeral generates a fresh ECDSA P-256 key, the key type Fulcio and
// every Sigstore verifier accept. It lives only in memory.
func Ephemeral() (*Signer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating an ephemeral P-256 key: %w", err)
	}
	return New(k)
}

// New wraps a private key. Supported: ECDSA P-256/P-384/P-521, RSA of at
// least 2048 bits, and Ed25519 (used as Ed25519ph, since Rekor v2's
// hashedrekord entries log a digest, not the message).
func New(key crypto.Signer) (*Signer, error) {
	s := &Signer{key: key}
	switch k := key.Public().(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			s.hash, s.details = crypto.SHA256, protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256
		case elliptic.P384():
			s.hash, s.details = crypto.SHA384, protocommon.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384
		case elliptic.P521():
			s.hash, s.details = crypto.SHA512, protocommon.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512
		default:
			return nil, fmt.Errorf("ECDSA curve %s is not supported; use P-256, P-384 or P-521", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		s.hash = crypto.SHA256
		switch bits := k.N.BitLen(); {
		case bits < 2048:
			return nil, fmt.Errorf("RSA key of %d bits is too weak; use at least 2048 bits", bits)
		case bits <= 2048:
			s.details = protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256
		case bits <= 3072:
			s.details = protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_3072_SHA256
		default:
			s.details = protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_4096_SHA256
		}
	case ed25519.PublicKey:
		s.hash, s.details = crypto.SHA512, protocommon.PublicKeyDetails_PKIX_ED25519_PH
	default:
		return nil, fmt.Errorf("key type %T is not supported; use ECDSA, RSA or Ed25519", k)
	}
	return s, nil
}

// Public returns the public key.
func (s *Signer) Public() crypto.PublicKey { return s.key.Public() }

// Hash is the digest algorithm signatures are made over.
func (s *Signer) Hash() crypto.Hash { return s.hash }

// HashAlgorithm is Hash as a protobuf-specs enum, for bundles.
func (s *Signer) HashAlgorithm() protocommon.HashAlgorithm {
	switch s.hash {
	case crypto.SHA384:
		return protocommon.HashAlgorithm_SHA2_384
	case crypto.SHA512:
		return protocommon.HashAlgorithm_SHA2_512
	}
	return protocommon.HashAlgorithm_SHA2_256
}

// KeyDetails is the signature algorithm as protobuf-specs names it.
func (s *Signer) KeyDetails() protocommon.PublicKeyDetails { return s.details }

// Digest hashes msg with the signer's hash.
func (s *Signer) Digest(msg []byte) []byte {
	h := s.hash.New()
	h.Write(msg)
	return h.Sum(nil)
}

// SignMessage hashes msg and signs the digest.
func (s *Signer) SignMessage(msg []byte) ([]byte, error) {
	return s.SignDigest(s.Digest(msg))
}

// SignDigest signs a digest made with Hash.
func (s *Signer) SignDigest(digest []byte) ([]byte, error) {
	if len(digest) != s.hash.Size() {
		return nil, fmt.Errorf("digest is %d bytes, but this %s key signs %s digests of %d bytes", len(digest), s.details, s.hash, s.hash.Size())
	}
	var opts crypto.SignerOpts = s.hash
	if _, ok := s.key.Public().(ed25519.PublicKey); ok {
		opts = &ed25519.Options{Hash: crypto.SHA512}
	}
	sig, err := s.key.Sign(rand.Reader, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return sig, nil
}

// PublicKeyDER is the PKIX DER encoding of the public key.
func (s *Signer) PublicKeyDER() ([]byte, error) {
	return x509.MarshalPKIXPublicKey(s.key.Public())
}

// PublicKeyPEM is the public key as a "PUBLIC KEY" PEM block.
func (s *Signer) PublicKeyPEM() ([]byte, error) {
	der, err := s.PublicKeyDER()
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// KeyHint identifies the public key in a key-based bundle: base64 of the
// SHA-256 of its PKIX DER, the hint sigstore-go writes.
func (s *Signer) KeyHint() (string, error) {
	der, err := s.PublicKeyDER()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}

// FulcioAlgorithm is the algorithm name Fulcio's publicKeyRequest expects.
func (s *Signer) FulcioAlgorithm() (string, error) {
	switch s.key.Public().(type) {
	case *ecdsa.PublicKey:
		return "ECDSA", nil
	case *rsa.PublicKey:
		return "RSA", nil
	}
	// Fulcio cannot check an Ed25519ph proof of possession.
	return "", errors.New("Ed25519 keys cannot be certified by Fulcio; use an ECDSA or RSA key, or sign keyless with an ephemeral key")
}
