package signer

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"github.com/youmark/pkcs8"

	"github.com/signet-dev/signet/core/keyref"
)

// PasswordEnv is the environment variable holding the password of an
// encrypted key file.
const PasswordEnv = "SIGNET_PASSWORD"

// LoadOptions configure LoadKeyFile.
type LoadOptions struct {
	// Password decrypts an encrypted key; when nil, $SIGNET_PASSWORD is used.
	Password []byte
	// Getenv defaults to os.Getenv.
	Getenv func(string) string
}

// LoadKeyFile reads a PEM private key file: PKCS#8 ("PRIVATE KEY"), SEC 1
// ("EC PRIVATE KEY"), PKCS#1 ("RSA PRIVATE KEY"), encrypted PKCS#8
// ("ENCRYPTED PRIVATE KEY", e.g. openssl pkcs8 -topk8 -v2 aes256), or a
// cosign key ("ENCRYPTED SIGSTORE/COSIGN PRIVATE KEY").
func LoadKeyFile(path string, o LoadOptions) (*Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	s, err := ParseKeyPEM(data, o)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return s, nil
}

// Open opens the key ref names: a PEM file as LoadKeyFile reads it, or a
// key URI (pkcs11:…, awskms://, gcpkms://, azurekms://, hashivault://)
// through core/keyref, as cosign's --key takes them.
func Open(ctx context.Context, ref string, o LoadOptions) (*Signer, error) {
	if !keyref.IsURI(ref) {
		return LoadKeyFile(ref, o)
	}
	k, err := keyref.Open(ctx, ref, keyref.Options{Getenv: o.Getenv})
	if err != nil {
		return nil, err
	}
	return New(k)
}

// ParseKeyPEM parses PEM key data as LoadKeyFile does.
func ParseKeyPEM(data []byte, o LoadOptions) (*Signer, error) {
	block, rest := pem.Decode(data)
	for block != nil && !strings.Contains(block.Type, "PRIVATE KEY") {
		block, rest = pem.Decode(rest)
	}
	if block == nil {
		return nil, errors.New("no PEM private key block found; give a PEM file with a PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY block")
	}
	password := func() ([]byte, error) {
		if o.Password != nil {
			return o.Password, nil
		}
		getenv := o.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		if p := getenv(PasswordEnv); p != "" {
			return []byte(p), nil
		}
		return nil, fmt.Errorf("the key is encrypted; set %s to its password", PasswordEnv)
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		if _, legacy := block.Headers["DEK-Info"]; legacy {
			return nil, errors.New("legacy OpenSSL-encrypted PEM (Proc-Type/DEK-Info) is not supported: its encryption is weak; convert it with `openssl pkcs8 -topk8 -v2 aes256 -in old.pem -out key.pem`")
		}
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		if _, legacy := block.Headers["DEK-Info"]; legacy {
			return nil, errors.New("legacy OpenSSL-encrypted PEM (Proc-Type/DEK-Info) is not supported: its encryption is weak; convert it with `openssl pkcs8 -topk8 -v2 aes256 -in old.pem -out key.pem`")
		}
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		var pw []byte
		if pw, err = password(); err != nil {
			return nil, err
		}
		key, err = pkcs8.ParsePKCS8PrivateKey(block.Bytes, pw)
		if err != nil {
			err = fmt.Errorf("decrypting the PKCS#8 key failed (wrong %s?): %v", PasswordEnv, err)
		}
	case "ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY":
		var pw []byte
		if pw, err = password(); err != nil {
			return nil, err
		}
		var der []byte
		if der, err = encrypted.Decrypt(block.Bytes, pw); err != nil {
			return nil, fmt.Errorf("decrypting the cosign key failed (wrong %s?): %v", PasswordEnv, err)
		}
		key, err = x509.ParsePKCS8PrivateKey(der)
	default:
		return nil, fmt.Errorf("PEM block %q is not a supported private key; use PRIVATE KEY (PKCS#8), EC PRIVATE KEY, RSA PRIVATE KEY or ENCRYPTED PRIVATE KEY", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s block: %v", block.Type, err)
	}
	cs, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key type %T cannot sign", key)
	}
	return New(cs)
}
