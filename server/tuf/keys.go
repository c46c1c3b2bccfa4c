package tuf

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/signet-dev/signet/core/keyref"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// A key reference names a signing key: a path to a PEM file (PKCS#8 or
// SEC 1 private keys, Ed25519 or ECDSA P-256, unencrypted or encrypted as
// cosign's and signet's "ENCRYPTED SIGSTORE PRIVATE KEY" or PKCS#8
// "ENCRYPTED PRIVATE KEY", or a PKIX public key where only the public half
// is needed), or a key URI ("pkcs11:…", a KMS URI) opened through
// core/keyref: the ceremony only ever asks for a signature.Signer, never
// for key bytes.

// ErrNeedPassphrase is a key file that is encrypted when no passphrase was
// given.
var ErrNeedPassphrase = errors.New("the key is encrypted and no passphrase was given")

// Passphrase returns the passphrase of an encrypted key; nil when none is
// available.
type Passphrase func() ([]byte, error)

// LoadSigner opens the private key ref names.
func LoadSigner(ref string, pass Passphrase) (signature.Signer, error) {
	if keyref.IsURI(ref) {
		k, err := keyref.Open(context.Background(), ref, keyref.Options{})
		if err != nil {
			return nil, err
		}
		switch p := k.Public().(type) {
		case ed25519.PublicKey:
		case *ecdsa.PublicKey:
			if p.Curve != elliptic.P256() {
				return nil, fmt.Errorf("key %s: ECDSA on %s; TUF keys here are Ed25519 or ECDSA P-256", keyref.Redact(ref), p.Curve.Params().Name)
			}
		default:
			return nil, fmt.Errorf("key %s: a %T public key; TUF keys here are Ed25519 or ECDSA P-256", keyref.Redact(ref), k.Public())
		}
		return tokenSigner{k}, nil
	}
	priv, err := loadPrivate(ref, pass)
	if err != nil {
		return nil, err
	}
	switch k := priv.(type) {
	case ed25519.PrivateKey:
		return signature.LoadED25519Signer(k)
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("key %s: ECDSA on %s; TUF keys here are Ed25519 or ECDSA P-256", ref, k.Curve.Params().Name)
		}
		return signature.LoadECDSASigner(k, crypto.SHA256)
	}
	return nil, fmt.Errorf("key %s: a %T; TUF keys here are Ed25519 or ECDSA P-256", ref, priv)
}

// tokenSigner is a signature.Signer over a key in a token or KMS.
type tokenSigner struct{ k crypto.Signer }

func (t tokenSigner) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return t.k.Public(), nil
}

func (t tokenSigner) SignMessage(message io.Reader, _ ...signature.SignOption) ([]byte, error) {
	msg, err := io.ReadAll(message)
	if err != nil {
		return nil, err
	}
	if _, ok := t.k.Public().(ed25519.PublicKey); ok {
		return t.k.Sign(nil, msg, crypto.Hash(0))
	}
	d := sha256.Sum256(msg)
	return t.k.Sign(rand.Reader, d[:], crypto.SHA256)
}

func loadPrivate(path string, pass Passphrase) (crypto.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("key %s: not a PEM file", path)
	}
	var pf cryptoutils.PassFunc
	if strings.Contains(blk.Type, "ENCRYPTED") || blk.Headers["Proc-Type"] != "" {
		var pw []byte
		if pass != nil {
			if pw, err = pass(); err != nil {
				return nil, fmt.Errorf("key %s: passphrase: %w", path, err)
			}
		}
		if pw == nil {
			return nil, fmt.Errorf("key %s: %w", path, ErrNeedPassphrase)
		}
		pf = func(bool) ([]byte, error) { return pw, nil }
	}
	if strings.Contains(blk.Type, "PUBLIC KEY") {
		return nil, fmt.Errorf("key %s is a public key; signing needs the private key file", path)
	}
	k, err := cryptoutils.UnmarshalPEMToPrivateKey(b, pf)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w (wrong passphrase?)", path, err)
	}
	return k, nil
}

// LoadPublicKey is the TUF key of ref: a public key file, or a private key
// file whose public half is taken (so a key holder can hand over either).
func LoadPublicKey(ref string, pass Passphrase) (*metadata.Key, error) {
	if keyref.IsURI(ref) {
		s, err := LoadSigner(ref, pass)
		if err != nil {
			return nil, err
		}
		pub, _ := s.PublicKey()
		return tufKey(keyref.Redact(ref), pub)
	}
	b, err := os.ReadFile(ref)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	if blk, _ := pem.Decode(b); blk != nil && strings.Contains(blk.Type, "PUBLIC KEY") {
		pub, err := cryptoutils.UnmarshalPEMToPublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", ref, err)
		}
		return tufKey(ref, pub)
	}
	s, err := LoadSigner(ref, pass)
	if err != nil {
		return nil, err
	}
	pub, err := s.PublicKey()
	if err != nil {
		return nil, err
	}
	return tufKey(ref, pub)
}

func tufKey(ref string, pub crypto.PublicKey) (*metadata.Key, error) {
	switch p := pub.(type) {
	case ed25519.PublicKey:
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return nil, fmt.Errorf("key %s: ECDSA on %s; TUF keys here are Ed25519 or ECDSA P-256", ref, p.Curve.Params().Name)
		}
	default:
		return nil, fmt.Errorf("key %s: a %T; TUF keys here are Ed25519 or ECDSA P-256", ref, pub)
	}
	k, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", ref, err)
	}
	return k, nil
}

// KeyID is the TUF key ID of a signer's key.
func KeyID(s signature.Signer) (string, error) {
	pub, err := s.PublicKey()
	if err != nil {
		return "", err
	}
	k, err := tufKey("", pub)
	if err != nil {
		return "", err
	}
	return k.ID()
}

// GenerateKey makes a key pair of kind "ed25519" or "ecdsa-p256": the
// private key as PEM, encrypted when passphrase is not empty, and the
// public key as PEM.
func GenerateKey(kind string, passphrase []byte) (privPEM, pubPEM []byte, err error) {
	var priv crypto.Signer
	switch kind {
	case "ed25519":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "ecdsa-p256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, nil, fmt.Errorf("key type %q: use ed25519 or ecdsa-p256", kind)
	}
	if err != nil {
		return nil, nil, err
	}
	if pubPEM, err = cryptoutils.MarshalPublicKeyToPEM(priv.Public()); err != nil {
		return nil, nil, err
	}
	der, err := cryptoutils.MarshalPrivateKeyToDER(priv)
	if err != nil {
		return nil, nil, err
	}
	if len(passphrase) == 0 {
		return cryptoutils.PEMEncode(cryptoutils.PrivateKeyPEMType, der), pubPEM, nil
	}
	enc, err := cryptoutils.MarshalPrivateKeyToEncryptedDER(priv, func(bool) ([]byte, error) { return passphrase, nil })
	if err != nil {
		return nil, nil, err
	}
	return cryptoutils.PEMEncode(cryptoutils.EncryptedSigstorePrivateKeyPEMType, enc), pubPEM, nil
}
