package keyref

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sigstore/sigstore/pkg/signature/kms"
	"github.com/sigstore/sigstore/pkg/signature/options"

	// The KMS providers sigstore/sigstore ships, registered by import as
	// cosign registers them.
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/azure"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
)

// KMSTimeout bounds each call to a KMS: opening the key and every signature.
var KMSTimeout = 30 * time.Second

type kmsSigner struct {
	ref string
	sv  kms.SignerVerifier
	pub crypto.PublicKey
}

func openKMS(ctx context.Context, ref string) (crypto.Signer, error) {
	octx, cancel := context.WithTimeout(ctx, KMSTimeout)
	defer cancel()
	red := Redact(ref)
	sv, err := kms.Get(octx, ref, crypto.SHA256)
	if err != nil {
		var notFound *kms.ProviderNotFoundError
		if errors.As(err, &notFound) {
			return nil, &Error{Ref: red, Cause: ErrUnsupportedScheme, Err: err}
		}
		return nil, &Error{Ref: red, Cause: ErrKMS, Detail: "check the URI, the provider's credentials and that its endpoint is reachable", Err: err}
	}
	// Fetching the public key proves the key exists and the KMS answers,
	// so a bad URI stops the caller now, not at its first signature.
	pub, err := sv.PublicKey(options.WithContext(octx))
	if err != nil {
		return nil, &Error{Ref: red, Cause: ErrKMS, Detail: "fetching the public key; check the URI, the provider's credentials and that its endpoint is reachable", Err: err}
	}
	return &kmsSigner{ref: red, sv: sv, pub: pub}, nil
}

func (k *kmsSigner) Public() crypto.PublicKey { return k.pub }

// Sign asks the KMS to sign a digest, each call bounded by KMSTimeout.
func (k *kmsSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), KMSTimeout)
	defer cancel()
	h := crypto.SHA256
	if opts != nil {
		h = opts.HashFunc()
	}
	sig, err := k.sv.SignMessage(nil, options.WithContext(ctx), options.WithDigest(digest), options.WithCryptoSignerOpts(h))
	if err != nil {
		return nil, fmt.Errorf("KMS %s: %w", k.ref, err)
	}
	return sig, nil
}
