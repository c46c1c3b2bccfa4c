package keyref

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	awskms "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	"github.com/sigstore/sigstore/pkg/signature/options"

	// The KMS providers sigstore/sigstore ships, registered by import as
	// cosign registers them.
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
	if strings.HasPrefix(ref, "awskms://") {
		if err := awsPreflight(octx, red); err != nil {
			return nil, err
		}
	}
	var sv kms.SignerVerifier
	var err error
	if strings.HasPrefix(ref, "awskms://") {
		sv, err = awskms.LoadSignerVerifier(octx, ref, awsconfig.WithRetryer(awsRetryer))
	} else {
		sv, err = kms.Get(octx, ref, crypto.SHA256)
	}
	if err != nil {
		var notFound *kms.ProviderNotFoundError
		if errors.As(err, &notFound) {
			return nil, &Error{Ref: red, Cause: ErrUnsupportedScheme, Err: err}
		}
		return nil, kmsError(red, "", err)
	}
	// Fetching the public key proves the key exists and the KMS answers,
	// so a bad URI stops the caller now, not at its first signature.
	pub, err := sv.PublicKey(options.WithContext(octx))
	if err != nil {
		return nil, kmsError(red, "fetching the public key", err)
	}
	k := &kmsSigner{ref: red, sv: sv, pub: pub}
	if err := k.probe(octx); err != nil {
		return nil, err
	}
	return k, nil
}

// awsPreflight finds the region and credentials the awskms provider will
// use, as the AWS SDK does, so that their absence is reported as such
// rather than as the SDK's failure deep inside the first request.
func awsPreflight(ctx context.Context, ref string) error {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return &Error{Ref: ref, Cause: ErrKMS, Detail: "the AWS SDK's configuration does not load; check the AWS_* variables (AWS_PROFILE, AWS_CA_BUNDLE, …) and the files they name", Err: err}
	}
	if cfg.Region == "" {
		return &Error{Ref: ref, Cause: ErrKMS, Detail: "no AWS region is configured; set AWS_REGION (or region in the AWS profile) to the key's region"}
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return &Error{Ref: ref, Cause: ErrKMSCredentials, Detail: "no AWS credentials were found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an instance, task or web-identity role", Err: err}
	}
	return nil
}

// awsRetryer is the SDK's standard retryer with two changes. An untrusted
// TLS certificate is not retried: it will not change, and the SDK's retries
// would run into the caller's deadline, which then hides the cause. And the
// backoff is capped at a second (the SDK's default is 20s): a signing
// request that waits longer has failed for its client anyway, and three
// attempts stay well inside KMSTimeout, so a closed port is reported as
// such rather than as a timeout.
func awsRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxBackoff = time.Second
		o.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			if untrustedCertificate(err) {
				return aws.FalseTernary
			}
			return aws.UnknownTernary
		})}, o.Retryables...)
	})
}

func untrustedCertificate(err error) bool {
	var tlsErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	return errors.As(err, &tlsErr) || errors.As(err, &unknownCA)
}

// apiError is what the AWS SDK's service errors (smithy-go) answer with;
// matched by method so keyref depends on no one provider's error types.
type apiError interface {
	ErrorCode() string
}

// kmsError names the cause of a failed KMS call and what to do about it.
func kmsError(ref, doing string, err error) error {
	e := &Error{Ref: ref, Cause: ErrKMS, Err: err}
	var api apiError
	var opErr *net.OpError
	switch {
	case errors.As(err, &api):
		switch code := api.ErrorCode(); code {
		case "NotFoundException":
			e.Cause, e.Detail = ErrKeyNotFound, "the KMS holds no key of that ID, ARN or alias; correct the URI (and region), or create the key"
		case "UnrecognizedClientException", "InvalidSignatureException", "IncompleteSignature",
			"InvalidClientTokenId", "ExpiredTokenException", "AccessDeniedException":
			e.Cause, e.Detail = ErrKMSCredentials, fmt.Sprintf("the KMS refused the credentials (%s); check the access key, its session token and the key policy (kms:GetPublicKey, kms:DescribeKey, kms:Sign)", code)
		case "DisabledException", "KMSInvalidStateException":
			e.Detail = fmt.Sprintf("the key is not usable (%s): enable it, or cancel its deletion", code)
		}
	case untrustedCertificate(err):
		e.Detail = "the KMS endpoint's TLS certificate is not trusted; for a private endpoint give its CA in AWS_CA_BUNDLE (awskms) or the system's trust store"
	case errors.Is(err, context.DeadlineExceeded):
		e.Detail = fmt.Sprintf("no answer within %v; check that the endpoint is reachable from here", KMSTimeout)
	case errors.As(err, &opErr) && opErr.Op == "dial":
		e.Detail = fmt.Sprintf("cannot connect to %s; check the host and port of the URI (or the provider's endpoint setting) and that the KMS is reachable from here", opErr.Addr)
	}
	if e.Detail == "" {
		e.Detail = "check the URI, the provider's credentials and that its endpoint is reachable"
	}
	if doing != "" {
		e.Detail = doing + ": " + e.Detail
	}
	return e
}

// probe signs once, as signet will sign with the key, and checks the
// signature locally: it proves the credentials may sign (not only read the
// public key) and that the KMS signs the way signet asks. sigstore/sigstore's
// providers sign with the key's own algorithm whatever the caller asks for,
// and an AWS RSA key's first algorithm is RSASSA-PSS, where signet's CA and
// TSA (as x509 and RFC 3161 do by default) sign PKCS#1 v1.5.
func (k *kmsSigner) probe(ctx context.Context) error {
	var h crypto.Hash
	switch p := k.pub.(type) {
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			h = crypto.SHA256
		case elliptic.P384():
			h = crypto.SHA384
		case elliptic.P521():
			h = crypto.SHA512
		default:
			return &Error{Ref: k.ref, Cause: ErrKeyType, Detail: fmt.Sprintf("ECDSA on %s; use a NIST P-256 key", p.Curve.Params().Name)}
		}
	case *rsa.PublicKey:
		h = crypto.SHA256
	default:
		return &Error{Ref: k.ref, Cause: ErrKeyType, Detail: fmt.Sprintf("a %T public key; KMS keys sign here as ECDSA or RSA keys", k.pub)}
	}
	hh := h.New()
	hh.Write([]byte("signet: proving the KMS key signs"))
	_, err := k.sign(ctx, hh.Sum(nil), h)
	if errors.Is(err, errWrongSignature) {
		detail := "the KMS signs this key with another algorithm than signet asks for"
		if _, ok := k.pub.(*rsa.PublicKey); ok {
			detail = "the KMS signs this RSA key with RSASSA-PSS (its first signing algorithm), but signet signs RSA keys with PKCS#1 v1.5; use an ECDSA P-256 key (AWS: ECC_NIST_P256)"
		}
		return &Error{Ref: k.ref, Cause: ErrKeyType, Detail: detail}
	}
	if err != nil {
		return kmsError(k.ref, "signing a test digest", errors.Unwrap(err))
	}
	return nil
}

func (k *kmsSigner) Public() crypto.PublicKey { return k.pub }

// Sign asks the KMS to sign a digest, each call bounded by KMSTimeout.
func (k *kmsSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), KMSTimeout)
	defer cancel()
	return k.sign(ctx, digest, opts)
}

// errWrongSignature: the KMS answered with a signature that does not verify
// as the caller asked for it.
var errWrongSignature = errors.New("the KMS's signature does not verify with the key's public key as requested")

func (k *kmsSigner) sign(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil {
		opts = crypto.SHA256
	}
	sig, err := k.sv.SignMessage(nil, options.WithContext(ctx), options.WithDigest(digest), options.WithCryptoSignerOpts(opts.HashFunc()))
	if err != nil {
		return nil, fmt.Errorf("KMS %s: %w", k.ref, err)
	}
	// The providers choose the algorithm themselves (see probe): a
	// signature that would not verify is refused here, not sent on.
	if !verifies(k.pub, digest, sig, opts) {
		return nil, fmt.Errorf("KMS %s: %w", k.ref, errWrongSignature)
	}
	return sig, nil
}

func verifies(pub crypto.PublicKey, digest, sig []byte, opts crypto.SignerOpts) bool {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(p, digest, sig)
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			return rsa.VerifyPSS(p, opts.HashFunc(), digest, sig, pss) == nil
		}
		return rsa.VerifyPKCS1v15(p, opts.HashFunc(), digest, sig) == nil
	}
	return false
}

// GenerateKMS makes a key in the KMS under the alias ref names (an
// awskms://[ENDPOINT]/alias/NAME URI) and opens it. Only awskms creates
// keys here: the other providers' keys are made with their own tools,
// where their algorithm and protection level are chosen.
func GenerateKMS(ctx context.Context, ref string, alg Algorithm) (crypto.Signer, error) {
	red := Redact(ref)
	if !strings.HasPrefix(ref, "awskms://") {
		return nil, &Error{Ref: red, Cause: ErrKeyNotFound, Detail: "signet creates KMS keys only in AWS KMS; create this one with the provider's own tools (gcloud kms keys create, az keyvault key create, vault write transit/keys/NAME)"}
	}
	if !strings.Contains(ref, "/alias/") {
		return nil, &Error{Ref: red, Cause: ErrBadURI, Detail: "a key is created under an alias: name it awskms://[HOST:PORT]/alias/NAME"}
	}
	if alg != ECDSAP256 {
		return nil, &Error{Ref: red, Cause: ErrKeyType, Detail: fmt.Sprintf("cannot create %q in AWS KMS through sigstore/sigstore's provider, which signs ECDSA and RSA only; make the key %s (the log's Ed25519 key must be a PEM file or a PKCS#11 key)", alg, ECDSAP256)}
	}
	octx, cancel := context.WithTimeout(ctx, KMSTimeout)
	defer cancel()
	if err := awsPreflight(octx, red); err != nil {
		return nil, err
	}
	var sv kms.SignerVerifier
	var err error
	if strings.HasPrefix(ref, "awskms://") {
		sv, err = awskms.LoadSignerVerifier(octx, ref, awsconfig.WithRetryer(awsRetryer))
	} else {
		sv, err = kms.Get(octx, ref, crypto.SHA256)
	}
	if err != nil {
		return nil, kmsError(red, "", err)
	}
	// The provider's CreateKey returns the key an existing alias names
	// instead of failing, so an existing key is refused here.
	if _, err := sv.PublicKey(options.WithContext(octx)); err == nil {
		return nil, &Error{Ref: red, Cause: ErrBadURI, Detail: "the KMS already holds a key under that alias; name a new one, or use it as it is"}
	} else if !errors.Is(kmsError(red, "", err), ErrKeyNotFound) {
		return nil, kmsError(red, "looking up the alias", err)
	}
	if _, err := sv.CreateKey(octx, "ECC_NIST_P256"); err != nil {
		return nil, kmsError(red, "creating the key", err)
	}
	return openKMS(ctx, ref)
}
