package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"strings"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
)

// Digest is a hash of an artifact.
type Digest struct {
	Algorithm crypto.Hash
	Value     []byte
}

func (d Digest) String() string {
	return fmt.Sprintf("%s:%x", hashName(d.Algorithm), d.Value)
}

// DigestOf hashes r with alg.
func DigestOf(alg crypto.Hash, r io.Reader) (Digest, error) {
	if !alg.Available() {
		return Digest{}, fmt.Errorf("hash %v is not available", alg)
	}
	h := alg.New()
	if _, err := io.Copy(h, r); err != nil {
		return Digest{}, fmt.Errorf("reading artifact: %w", err)
	}
	return Digest{Algorithm: alg, Value: h.Sum(nil)}, nil
}

// hashName is the in-toto / Rekor v1 spelling of a hash algorithm.
func hashName(h crypto.Hash) string {
	switch h {
	case crypto.SHA256:
		return "sha256"
	case crypto.SHA384:
		return "sha384"
	case crypto.SHA512:
		return "sha512"
	}
	return strings.ToLower(h.String())
}

func hashFromProto(a protocommon.HashAlgorithm) (crypto.Hash, error) {
	switch a {
	case protocommon.HashAlgorithm_SHA2_256:
		return crypto.SHA256, nil
	case protocommon.HashAlgorithm_SHA2_384:
		return crypto.SHA384, nil
	case protocommon.HashAlgorithm_SHA2_512:
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("unsupported digest algorithm %s; expected SHA2_256, SHA2_384 or SHA2_512", a)
}

func hashFromName(s string) (crypto.Hash, error) {
	switch s {
	case "SHA2_256", "sha256":
		return crypto.SHA256, nil
	case "SHA2_384", "sha384":
		return crypto.SHA384, nil
	case "SHA2_512", "sha512":
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("unsupported digest algorithm %q", s)
}

// keyHash is the hash Sigstore clients pair with a signing key.
func keyHash(pub crypto.PublicKey) crypto.Hash {
	if k, ok := pub.(*ecdsa.PublicKey); ok {
		switch k.Curve {
		case elliptic.P384():
			return crypto.SHA384
		case elliptic.P521():
			return crypto.SHA512
		}
	}
	return crypto.SHA256
}

var errNeedMessage = errors.New("ed25519 signatures cover the whole message; pass the artifact itself, not only its digest")

// verifySignature checks sig by pub. ECDSA and RSA verify over digest (made
// with hash); Ed25519 (pure, as Sigstore uses it) needs message.
func verifySignature(pub crypto.PublicKey, sig []byte, message []byte, hash crypto.Hash, digest []byte) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return errors.New("ECDSA signature does not verify with the certificate's key")
		}
	case *rsa.PublicKey:
		if err := rsa.VerifyPKCS1v15(k, hash, digest, sig); err != nil {
			return errors.New("RSA PKCS#1 v1.5 signature does not verify with the certificate's key")
		}
	case ed25519.PublicKey:
		if message == nil {
			return errNeedMessage
		}
		if !ed25519.Verify(k, message, sig) {
			return errors.New("Ed25519 signature does not verify with the certificate's key")
		}
	default:
		return fmt.Errorf("unsupported key type %T", pub)
	}
	return nil
}
