package tlog

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"github.com/transparency-dev/tessera"

	"github.com/signet-dev/signet/server/storage"
)

// Errors an append can fail with; test with errors.Is.
var (
	// ErrInvalidEntry: the request is malformed or its signature does not
	// verify. The caller's fault (HTTP 400); nothing was appended.
	ErrInvalidEntry = errors.New("invalid log entry")
	// ErrOverloaded: the log is shedding load; retry later (HTTP 503).
	ErrOverloaded = errors.New("transparency log overloaded")
	// ErrClosed: the log is shutting down (HTTP 503).
	ErrClosed = errors.New("transparency log closed")
	// ErrStorageFull: the log's disk is full; nothing was acknowledged
	// (HTTP 507). Appends succeed again once there is room.
	ErrStorageFull = errors.New("transparency log storage is full")
)

// IsStorageFull reports whether err comes from a full disk or quota.
func IsStorageFull(err error) bool { return storage.IsFull(err) }

const (
	kindHashedRekord    = "hashedrekord"
	versionHashedRekord = "0.0.2"
)

// acceptedKeyDetails are the signing algorithms the log accepts, as
// rekor-tiles' default algorithm registry, minus pure Ed25519: a hashedrekord
// carries a digest, so Ed25519 must be the pre-hashed variant (PKIX_ED25519_PH).
var acceptedKeyDetails = []commonv1.PublicKeyDetails{
	commonv1.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256,
	commonv1.PublicKeyDetails_PKIX_RSA_PKCS1V15_3072_SHA256,
	commonv1.PublicKeyDetails_PKIX_RSA_PKCS1V15_4096_SHA256,
	commonv1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
	commonv1.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384,
	commonv1.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512,
	commonv1.PublicKeyDetails_PKIX_ED25519_PH,
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidEntry, fmt.Sprintf(format, args...))
}

func acceptedNames() string {
	names := make([]string, len(acceptedKeyDetails))
	for i, kd := range acceptedKeyDetails {
		names[i] = kd.String()
	}
	return strings.Join(names, ", ")
}

// canonicalHashedRekord validates req fully (fields, key and keyDetails,
// digest length, signature over the digest) and returns the log entry body
// exactly as rekor-tiles writes it (the Entry its hashedrekord.ToLogEntry
// builds, protojson-marshalled, then JCS-canonicalized).
func canonicalHashedRekord(req *rekorv2.HashedRekordRequestV002) ([]byte, error) {
	if req == nil {
		return nil, invalid("hashedRekordRequestV002 is missing")
	}
	sig := req.GetSignature()
	if len(sig.GetContent()) == 0 {
		return nil, invalid("signature.content is empty; send the signature over the digest")
	}
	v := sig.GetVerifier()
	if v == nil {
		return nil, invalid("signature.verifier is missing; send the signer's x509Certificate or publicKey with keyDetails")
	}
	pub, details, kd, err := parseVerifier(v, "signature.verifier")
	if err != nil {
		return nil, err
	}
	if want := details.GetHashType().Size(); len(req.GetDigest()) != want {
		return nil, invalid("digest is %d bytes but %s signs a %s digest of %d bytes", len(req.GetDigest()), kd, details.GetHashType(), want)
	}
	// The same signature check rekor-tiles' hashedrekord.ToLogEntry makes,
	// on the key parsed above rather than a second parse of the certificate.
	sv, err := signature.LoadVerifierWithOpts(pub, options.WithED25519ph())
	if err != nil {
		return nil, invalid("signature.verifier: %v", err)
	}
	if err := sv.VerifySignature(bytes.NewReader(sig.GetContent()), nil, options.WithDigest(req.GetDigest()), options.WithCryptoSignerOpts(details.GetHashType())); err != nil {
		return nil, invalid("verifying signature: %v; sign the digest with the key in signature.verifier", err)
	}
	body := encodeHashedRekordBody(details.GetProtoHashType(), req.GetDigest(), sig.GetContent(), v)
	if len(body) > maxEntryBytes {
		return nil, invalid("entry is %d bytes once canonicalized; the log's limit is %d (a certificate chain does not belong in the verifier: send the leaf certificate)", len(body), maxEntryBytes)
	}
	return body, nil
}

// parseVerifier checks a Rekor v2 Verifier (key or certificate, and the
// keyDetails naming its algorithm) and returns its key; where names the
// field in messages.
func parseVerifier(v *rekorv2.Verifier, where string) (crypto.PublicKey, signature.AlgorithmDetails, commonv1.PublicKeyDetails, error) {
	var none signature.AlgorithmDetails
	kd := v.GetKeyDetails()
	if kd == commonv1.PublicKeyDetails_PUBLIC_KEY_DETAILS_UNSPECIFIED {
		return nil, none, kd, invalid("%s.keyDetails is missing; set it to the signing algorithm, one of %s", where, acceptedNames())
	}
	details, err := signature.GetAlgorithmDetails(kd)
	if err != nil || !accepted(kd) {
		return nil, none, kd, invalid("%s.keyDetails %s is not accepted; use one of %s", where, kd, acceptedNames())
	}
	var pub crypto.PublicKey
	switch {
	case v.GetX509Certificate() != nil:
		cert, err := x509.ParseCertificate(v.GetX509Certificate().GetRawBytes())
		if err != nil {
			return nil, none, kd, invalid("%s.x509Certificate.rawBytes is not a DER X.509 certificate: %v", where, err)
		}
		pub = cert.PublicKey
	case v.GetPublicKey() != nil:
		pub, err = x509.ParsePKIXPublicKey(v.GetPublicKey().GetRawBytes())
		if err != nil {
			return nil, none, kd, invalid("%s.publicKey.rawBytes is not a DER PKIX public key: %v", where, err)
		}
	default:
		return nil, none, kd, invalid("%s has neither x509Certificate nor publicKey", where)
	}
	// rekor-tiles only checks that the key and the keyDetails' hash are allowed
	// somewhere in its registry; require the key to be the one keyDetails names.
	only, err := signature.NewAlgorithmRegistryConfig([]commonv1.PublicKeyDetails{kd})
	if err != nil {
		return nil, none, kd, invalid("%s.keyDetails %s: %v", where, kd, err)
	}
	if ok, err := only.IsAlgorithmPermitted(pub, details.GetHashType()); err != nil || !ok {
		return nil, none, kd, invalid("%s key is %s but keyDetails is %s; set keyDetails to the key's algorithm", where, describeKey(pub), kd)
	}
	return pub, details, kd, nil
}

func accepted(kd commonv1.PublicKeyDetails) bool {
	for _, a := range acceptedKeyDetails {
		if a == kd {
			return true
		}
	}
	return false
}

func describeKey(pub crypto.PublicKey) string {
	d, err := signature.GetDefaultPublicKeyDetails(pub)
	if err != nil {
		return fmt.Sprintf("%T", pub)
	}
	return "a " + strings.TrimPrefix(d.String(), "PKIX_") + " key"
}

// AppendHashedRekord validates req, appends it, and returns the Rekor v2
// TransparencyLogEntry with its inclusion proof and a signed checkpoint that
// covers it. It returns once the entry is durably in the log. Errors wrap
// ErrInvalidEntry (caller's fault, nothing appended), ErrOverloaded, ErrClosed,
// the context's error, or are internal.
//
// An entry identical to one appended recently (tessera's in-memory antispam)
// is not appended again: the existing entry is returned, with a proof.
func (l *Log) AppendHashedRekord(ctx context.Context, req *rekorv2.HashedRekordRequestV002) (*rekorv1.TransparencyLogEntry, error) {
	tle, _, err := l.appendHashedRekordDup(ctx, req)
	return tle, err
}

// appendHashedRekordDup is AppendHashedRekord that also says whether the
// entry was already in the log.
func (l *Log) appendHashedRekordDup(ctx context.Context, req *rekorv2.HashedRekordRequestV002) (*rekorv1.TransparencyLogEntry, bool, error) {
	body, err := canonicalHashedRekord(req)
	if err != nil {
		l.countRefusal(ctx, err)
		return nil, false, err
	}
	tle, dup, err := l.appendBody(ctx, body, kindHashedRekord, versionHashedRekord)
	if err != nil {
		l.countRefusal(ctx, err)
		return nil, false, err
	}
	l.countAppend(kindHashedRekord, dup)
	return tle, dup, nil
}

func (l *Log) countRefusal(ctx context.Context, err error) {
	reason := reasonFor(err)
	l.metrics.rejected.WithLabelValues(reason).Inc()
	if reason == reasonInvalid {
		l.logger.DebugContext(ctx, "log entry refused", "error", err)
	}
}

func (l *Log) countAppend(kind string, dup bool) {
	if dup {
		l.metrics.rejected.WithLabelValues(reasonDuplicate).Inc()
	} else {
		l.metrics.appended.WithLabelValues(kind).Inc()
	}
}

// appendBody appends a validated, canonical entry body and answers its
// entry with an inclusion proof under a checkpoint that covers it.
func (l *Log) appendBody(ctx context.Context, body []byte, kind, version string) (*rekorv1.TransparencyLogEntry, bool, error) {
	// Held for the whole append so Close waits for every append it let in.
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		return nil, false, ErrClosed
	}
	start := time.Now()
	e := tessera.NewEntry(body)
	future := l.add(ctx, e)
	var (
		th  *treeHead
		idx tessera.Index
		err error
	)
	if l.awaiter != nil {
		var cp []byte
		idx, cp, err = l.awaiter.Await(ctx, future)
		if err == nil {
			th, err = l.publishedHead(cp)
		}
	} else {
		idx, err = future()
		if err == nil && l.integrated != nil {
			err = l.integrated.wait(ctx, idx.Index)
		}
		if err == nil {
			th, err = l.coveringHead(ctx, idx.Index)
		}
		if err == nil && l.gw != nil {
			th, err = l.witnessed(ctx, idx.Index)
		}
	}
	if err != nil {
		err = l.appendError(err)
		l.health.record(err)
		return nil, false, err
	}
	l.health.ok()
	hashes, err := l.tiles.inclusionProof(ctx, th, idx.Index, e.LeafHash())
	if err != nil {
		l.logger.ErrorContext(ctx, "building inclusion proof", "index", idx.Index, "tree_size", th.size, "error", err)
		return nil, false, fmt.Errorf("building inclusion proof for entry %d: %w", idx.Index, err)
	}
	if idx.Index > math.MaxInt64 || th.size > math.MaxInt64 {
		return nil, false, fmt.Errorf("log index %d / tree size %d exceed int64", idx.Index, th.size)
	}
	l.metrics.latency.Observe(time.Since(start).Seconds())
	return &rekorv1.TransparencyLogEntry{
		LogIndex:          int64(idx.Index),
		LogId:             &commonv1.LogId{KeyId: l.LogID()},
		KindVersion:       &rekorv1.KindVersion{Kind: kind, Version: version},
		CanonicalizedBody: body,
		InclusionProof: &rekorv1.InclusionProof{
			LogIndex:   int64(idx.Index),
			RootHash:   th.root,
			TreeSize:   int64(th.size),
			Hashes:     hashes,
			Checkpoint: &rekorv1.Checkpoint{Envelope: string(th.checkpoint)},
		},
	}, idx.IsDup, nil
}

// witnessed waits, for at most awaitFor, for a cosigned checkpoint covering
// the entry: an unreachable quorum must not hold every client until its
// own timeout.
func (l *Log) witnessed(ctx context.Context, index uint64) (*treeHead, error) {
	wctx, cancel := context.WithTimeout(ctx, l.awaitFor)
	defer cancel()
	th, err := l.gw.cover(wctx, index)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		l.errLog.Error(l.logger, "no witnessed checkpoint covers an integrated entry; check the witnesses (signet_tlog_witness_requests_total)", "index", index, "waited", l.awaitFor, "error", err)
		return nil, fmt.Errorf("%w (entry %d is integrated; waited %v)", ErrNotWitnessed, index, l.awaitFor)
	}
	return th, err
}

// currentHead is the newest head the log signed for acknowledged entries.
func (l *Log) currentHead() *treeHead {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	return l.state
}

func (l *Log) appendError(err error) error {
	switch {
	case errors.Is(err, ErrNotWitnessed):
		return err
	case IsStorageFull(err):
		l.errLog.Error(l.logger, "appending entry: storage full", "error", err)
		return fmt.Errorf("%w: %v", ErrStorageFull, err)
	case errors.Is(err, tessera.ErrPushback):
		return fmt.Errorf("%w: %v", ErrOverloaded, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The entry may still be appended; the caller stopped waiting for it.
		return err
	case l.closed:
		return fmt.Errorf("%w: %v", ErrClosed, err)
	case errors.Is(err, ErrStorageUnavailable):
		l.errLog.Error(l.logger, "appending entry: storage unavailable", "error", err)
		return err
	case errors.Is(err, ErrForked):
		// Not an outage: the guard refuses, and keeps refusing.
	case l.objects != nil:
		// On a distributed log whatever else fails is the database or the
		// object store (tessera reports them as plain errors).
		l.errLog.Error(l.logger, "appending entry: storage unavailable", "error", err)
		return fmt.Errorf("%w: %v", ErrStorageUnavailable, err)
	}
	l.errLog.Error(l.logger, "appending entry", "error", err)
	return fmt.Errorf("appending entry: %w", err)
}

func reasonFor(err error) string {
	switch {
	case errors.Is(err, ErrInvalidEntry):
		return reasonInvalid
	case errors.Is(err, ErrOverloaded):
		return reasonOverloaded
	case errors.Is(err, ErrClosed):
		return reasonClosed
	case errors.Is(err, ErrNotWitnessed):
		return reasonUnwitnessed
	case errors.Is(err, ErrStorageUnavailable):
		return reasonUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return reasonCanceled
	}
	return reasonInternal
}

// encodeHashedRekordBody writes the canonicalized body of a hashedrekord
// v0.0.2 entry: what rekor-tiles gets from protojson followed by RFC 8785
// canonicalization. The shape is fixed (keys sorted, no whitespace, bytes
// as padded standard base64, enums by name, nothing that needs escaping), so
// it is written directly: the generic path cost a fifth of the log's CPU.
// TestCanonicalBodyMatchesRekorTiles holds it to rekor-tiles' bytes.
func encodeHashedRekordBody(alg commonv1.HashAlgorithm, digest, sig []byte, v *rekorv2.Verifier) []byte {
	b64 := base64.StdEncoding
	var key, raw []byte
	if c := v.GetX509Certificate(); c != nil {
		key, raw = []byte("x509Certificate"), c.GetRawBytes()
	} else {
		key, raw = []byte("publicKey"), v.GetPublicKey().GetRawBytes()
	}
	kd := v.GetKeyDetails().String()
	algName := alg.String()
	n := 200 + len(kd) + len(algName) + b64.EncodedLen(len(digest)) + b64.EncodedLen(len(sig)) + b64.EncodedLen(len(raw))
	out := make([]byte, 0, n)
	out = append(out, `{"apiVersion":"0.0.2","kind":"hashedrekord","spec":{"hashedRekordV002":{"data":{"algorithm":"`...)
	out = append(out, algName...)
	out = append(out, `","digest":"`...)
	out = b64.AppendEncode(out, digest)
	out = append(out, `"},"signature":{"content":"`...)
	out = b64.AppendEncode(out, sig)
	out = append(out, `","verifier":{"keyDetails":"`...)
	out = append(out, kd...)
	out = append(out, `","`...)
	out = append(out, key...)
	out = append(out, `":{"rawBytes":"`...)
	out = b64.AppendEncode(out, raw)
	out = append(out, `"}}}}}}`...)
	return out
}
