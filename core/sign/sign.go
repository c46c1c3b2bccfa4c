// Package sign orchestrates signing: content (an artifact's digest, or a
// DSSE-signed in-toto statement) → signature → certificate → RFC 3161
// timestamp → transparency log entry → Sigstore bundle v0.3 on disk.
//
// Independent steps run in parallel: the artifact is hashed while the
// certificate is requested, and the timestamp and log entry are requested
// together. The bundle file appears only when every step succeeded.
package sign

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/rekor"
	"github.com/signet-dev/signet/core/signer"
	"github.com/signet-dev/signet/core/tsa"
)

// Step names a stage of the flow, for progress output.
type Step string

// The steps, in the order they complete in a keyless flow.
const (
	StepKey         Step = "key"
	StepDigest      Step = "digest"
	StepCertificate Step = "certificate"
	StepSignature   Step = "signature"
	StepTimestamp   Step = "timestamp"
	StepLog         Step = "log"
	StepBundle      Step = "bundle"
)

// Event reports a completed step.
type Event struct {
	Step Step
	// Detail is a one-line description, e.g. the certificate identity or
	// the log index.
	Detail string
	// Elapsed is the time since the flow started.
	Elapsed time.Duration
}

// Options configure a signature.
type Options struct {
	Services *Services
	// IdentityToken is the OIDC token for keyless signing (see core/token).
	IdentityToken string
	// Key is a self-managed key. When set the bundle carries a public key
	// hint instead of a certificate and IdentityToken is not used.
	Key *signer.Signer
	// Credential, when keyless, shares one key and certificate among the
	// signatures made with these Options; nil means one each.
	Credential *Credential
	// ViaAttestationStore logs attestations through the signet server's
	// attestation store (which keeps the envelope) instead of Services.Logs.
	ViaAttestationStore bool
	// Progress, if set, is called after each step, from one goroutine at a time.
	Progress func(Event)
}

// Result is a finished signature.
type Result struct {
	Bundle *bundle.Bundle
	// JSON is the bundle as written.
	JSON []byte
	// Certificate is the signing certificate; nil for a self-managed key.
	Certificate *x509.Certificate
	// Digest is the artifact's digest (or the DSSE PAE's) with its algorithm.
	Digest          []byte
	DigestAlgorithm protocommon.HashAlgorithm
	Hash            crypto.Hash // DigestAlgorithm as a crypto.Hash
	Entries         []*protorekor.TransparencyLogEntry
	// AttestationID is set when the attestation store kept the envelope.
	AttestationID string
}

type run struct {
	o     Options
	start time.Time
	mu    sync.Mutex
}

func (r *run) progress(step Step, format string, args ...any) {
	if r.o.Progress == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.o.Progress(Event{Step: step, Detail: fmt.Sprintf(format, args...), Elapsed: time.Since(r.start)})
}

// Why Options cannot sign; callers add the remedy in their own terms (a
// flag, an action input).
var (
	ErrNoServices         = errors.New("sign: no signing services were given")
	ErrNoCA               = errors.New("sign: keyless signing needs a certificate authority, and the signing config lists none (caUrls)")
	ErrNoIdentityToken    = errors.New("sign: keyless signing needs an identity token")
	ErrNoTSA              = errors.New("sign: keyless signing needs a timestamp authority (Rekor v2 logs do not record the signing time), and the signing config lists none (tsaUrls)")
	ErrNotDSSE            = errors.New("sign: the attestation store keeps DSSE attestations only; sign artifacts to a transparency log")
	ErrNoAttestationStore = errors.New("sign: the attestation store is only available from a signet server")
	ErrNoTransparencyLog  = errors.New("sign: the signing config lists no Rekor v2 transparency log (rekorTlogUrls)")
)

func (o *Options) check(dsse bool) error {
	s := o.Services
	if s == nil {
		return ErrNoServices
	}
	if o.Key == nil {
		if s.CA == nil {
			return ErrNoCA
		}
		if o.IdentityToken == "" {
			return ErrNoIdentityToken
		}
		// Rekor v2 entries carry no integrated time: the timestamp is the
		// only proof the signature was made while the certificate was valid.
		if len(s.TSAs) == 0 || s.TSAsNeeded == 0 {
			return ErrNoTSA
		}
	}
	if o.ViaAttestationStore {
		if !dsse {
			return ErrNotDSSE
		}
		if s.Attestations == nil {
			return ErrNoAttestationStore
		}
	} else if len(s.Logs) == 0 || s.LogsNeeded == 0 {
		return ErrNoTransparencyLog
	}
	return nil
}

// keyAndCertificate prepares the signing key and, when keyless, requests its
// certificate in the background: the returned wait blocks until it arrives.
// With a Credential, the key and certificate are the ones it shares.
func (r *run) keyAndCertificate(ctx context.Context) (*signer.Signer, func() (*x509.Certificate, error), error) {
	if r.o.Key != nil {
		return r.o.Key, func() (*x509.Certificate, error) { return nil, nil }, nil
	}
	if c := r.o.Credential; c != nil {
		return c.get(ctx, r)
	}
	q, err := r.requestCertificate(ctx)
	if err != nil {
		return nil, nil, err
	}
	return q.key, q.wait, nil
}

// certRequest is one ephemeral key and the request for its certificate.
type certRequest struct {
	key  *signer.Signer
	done chan struct{}
	cert *x509.Certificate
	err  error
}

func (q *certRequest) wait() (*x509.Certificate, error) { <-q.done; return q.cert, q.err }

func (r *run) requestCertificate(ctx context.Context) (*certRequest, error) {
	key, err := signer.Ephemeral()
	if err != nil {
		return nil, err
	}
	r.progress(StepKey, "ephemeral ECDSA P-256 key")
	q := &certRequest{key: key, done: make(chan struct{})}
	go func() {
		defer close(q.done)
		c, err := r.o.Services.CA.CreateSigningCertificate(ctx, r.o.IdentityToken, key)
		if err != nil {
			q.err = fmt.Errorf("certificate: %w", err)
			return
		}
		q.cert = c.Leaf
		r.progress(StepCertificate, "issued by %s, valid until %s", r.o.Services.CA.URL(), q.cert.NotAfter.UTC().Format(time.RFC3339))
	}()
	return q, nil
}

// Credential is one ephemeral key and its certificate, shared by every
// signature made with the Options that carry it, as cosign signs several
// images with one certificate: a pipeline run costs the CA (and its CT log)
// one certificate rather than one per bundle, and every bundle of the run
// names the same signer. The certificate is requested when first needed,
// and again once less than CredentialRenewal of its validity is left or the
// request failed. The zero value is ready to use; it must not be copied.
type Credential struct {
	mu  sync.Mutex
	req *certRequest
}

// CredentialRenewal is how much validity a shared certificate must have
// left to sign with: enough for the timestamp and the log entry that follow
// the signature.
const CredentialRenewal = time.Minute

// credentialTimeout bounds a shared certificate request, which outlives the
// signature that started it (others wait on it).
const credentialTimeout = 2 * time.Minute

func (c *Credential) get(ctx context.Context, r *run) (*signer.Signer, func() (*x509.Certificate, error), error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if q := c.req; q != nil && !q.stale() {
		r.progress(StepKey, "ephemeral ECDSA P-256 key, shared with the other signatures of this run")
		var once sync.Once
		return q.key, func() (*x509.Certificate, error) {
			cert, err := q.wait()
			if err == nil {
				once.Do(func() {
					r.progress(StepCertificate, "shared, issued by %s, valid until %s", r.o.Services.CA.URL(), cert.NotAfter.UTC().Format(time.RFC3339))
				})
			}
			return cert, err
		}, nil
	}
	// Not the signature's own context: the others waiting on this request
	// must not fail because the first one ended.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), credentialTimeout)
	q, err := r.requestCertificate(rctx)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	go func() { <-q.done; cancel() }()
	c.req = q
	return q.key, q.wait, nil
}

// stale: the request failed, or its certificate is about to expire. A
// request still under way is not stale.
func (q *certRequest) stale() bool {
	select {
	case <-q.done:
		return q.err != nil || time.Until(q.cert.NotAfter) < CredentialRenewal
	default:
		return false
	}
}

// Artifact signs the file at path (streamed, never loaded whole) and writes
// the bundle to bundlePath.
func Artifact(ctx context.Context, o Options, path, bundlePath string) (*Result, error) {
	res, err := ArtifactFile(ctx, o, path)
	if err != nil {
		return nil, err
	}
	if err := WriteBundle(bundlePath, res.JSON); err != nil {
		return nil, err
	}
	return res, nil
}

// ArtifactFile signs the file at path and returns the bundle without
// writing it.
func ArtifactFile(ctx context.Context, o Options, path string) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("artifact: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, fmt.Errorf("artifact %s is a directory; sign a file (e.g. an archive of the directory)", path)
	}
	return ArtifactReader(ctx, o, f)
}

// ArtifactReader signs the content read from r and returns the bundle
// without writing it.
func ArtifactReader(ctx context.Context, o Options, content io.Reader) (*Result, error) {
	if err := o.check(false); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &run{o: o, start: time.Now()}
	key, waitCert, err := r.keyAndCertificate(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	// On an early failure, stop the certificate request and let it finish,
	// so no progress event arrives after we return.
	defer func() { cancel(); waitCert() }()
	h := key.Hash().New()
	n, err := io.Copy(h, content)
	if err != nil {
		return nil, fmt.Errorf("artifact: reading: %w", err)
	}
	digest := h.Sum(nil)
	r.progress(StepDigest, "%s over %d bytes", key.Hash(), n)
	sig, err := key.SignDigest(digest)
	if err != nil {
		return nil, err
	}
	r.progress(StepSignature, "%s", key.KeyDetails())
	cert, err := waitCert()
	if err != nil {
		return nil, err
	}
	res := &Result{Certificate: cert, Digest: digest, DigestAlgorithm: key.HashAlgorithm(), Hash: key.Hash()}
	pb := &protobundle.Bundle{
		Content: &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
			MessageDigest: &protocommon.HashOutput{Algorithm: key.HashAlgorithm(), Digest: digest},
			Signature:     sig,
		}},
	}
	if err := r.timestampAndLog(ctx, key, cert, sig, digest, nil, res, pb); err != nil {
		return nil, err
	}
	return res, nil
}

// Attestation signs an in-toto statement (JSON) as a DSSE envelope and
// writes the bundle to bundlePath.
func Attestation(ctx context.Context, o Options, statement []byte, bundlePath string) (*Result, error) {
	res, err := AttestationBundle(ctx, o, statement)
	if err != nil {
		return nil, err
	}
	if err := WriteBundle(bundlePath, res.JSON); err != nil {
		return nil, err
	}
	return res, nil
}

// AttestationBundle signs an in-toto statement and returns the bundle
// without writing it.
func AttestationBundle(ctx context.Context, o Options, statement []byte) (*Result, error) {
	if err := o.check(true); err != nil {
		return nil, err
	}
	if _, err := intoto.ParseStatementHeader(statement); err != nil {
		return nil, fmt.Errorf("attestation: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &run{o: o, start: time.Now()}
	key, waitCert, err := r.keyAndCertificate(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	// On an early failure, stop the certificate request and let it finish,
	// so no progress event arrives after we return.
	defer func() { cancel(); waitCert() }()
	env, err := intoto.SignEnvelope(ctx, key, intoto.PayloadType, statement)
	if err != nil {
		return nil, err
	}
	sig := env.GetSignatures()[0].GetSig()
	r.progress(StepSignature, "DSSE envelope (%s), %s", intoto.PayloadType, key.KeyDetails())
	cert, err := waitCert()
	if err != nil {
		return nil, err
	}
	// Rekor v2 logs a DSSE envelope as a hashedrekord over its PAE, as cosign
	// v3 and sigstore-js do.
	digest := key.Digest(intoto.PAE(env))
	res := &Result{Certificate: cert, Digest: digest, DigestAlgorithm: key.HashAlgorithm(), Hash: key.Hash()}
	pb := &protobundle.Bundle{Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: env}}
	if err := r.timestampAndLog(ctx, key, cert, sig, digest, env, res, pb); err != nil {
		return nil, err
	}
	return res, nil
}

// timestampAndLog requests the timestamps and log entries in parallel and
// completes the bundle.
func (r *run) timestampAndLog(ctx context.Context, key *signer.Signer, cert *x509.Certificate, sig, digest []byte, env *protodsse.Envelope, res *Result, pb *protobundle.Bundle) error {
	s := r.o.Services
	vm := &protobundle.VerificationMaterial{}
	var verifier *rekorv2.Verifier
	if cert != nil {
		vm.Content = &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: cert.Raw}}
		verifier = rekor.Verifier(cert.Raw, nil, key.KeyDetails())
	} else {
		hint, err := key.KeyHint()
		if err != nil {
			return err
		}
		der, err := key.PublicKeyDER()
		if err != nil {
			return err
		}
		vm.Content = &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: hint}}
		verifier = rekor.Verifier(nil, der, key.KeyDetails())
	}

	var (
		wg              sync.WaitGroup
		stamps          []*tsa.Timestamp
		entries         []*protorekor.TransparencyLogEntry
		tsErr, logErr   error
		attestationID   string
		ctxTS, cancelTS = context.WithCancel(ctx)
	)
	defer cancelTS()
	wg.Add(2)
	go func() {
		defer wg.Done()
		stamps, tsErr = gather(ctxTS, len(s.TSAs), s.TSAsNeeded, "timestamp authorities", func(ctx context.Context, i int) (*tsa.Timestamp, error) {
			t, err := s.TSAs[i].Timestamp(ctx, sig)
			if err == nil {
				r.progress(StepTimestamp, "%s from %s", t.Time.UTC().Format(time.RFC3339), s.TSAs[i].URL())
			}
			return t, err
		})
		if tsErr != nil {
			cancelTS()
		}
	}()
	go func() {
		defer wg.Done()
		if r.o.ViaAttestationStore {
			id, tle, err := s.Attestations.Submit(ctxTS, env, verifier)
			if err != nil {
				logErr = fmt.Errorf("attestation store: %w", err)
				cancelTS()
				return
			}
			attestationID, entries = id, []*protorekor.TransparencyLogEntry{tle}
			r.progress(StepLog, "attestation %s, log index %d at %s", id, tle.GetLogIndex(), s.Attestations.URL())
			return
		}
		entries, logErr = gather(ctxTS, len(s.Logs), s.LogsNeeded, "transparency logs", func(ctx context.Context, i int) (*protorekor.TransparencyLogEntry, error) {
			tle, err := s.Logs[i].CreateHashedRekord(ctx, digest, sig, verifier)
			if err == nil {
				r.progress(StepLog, "log index %d at %s", tle.GetLogIndex(), s.Logs[i].URL())
			}
			return tle, err
		})
		if logErr != nil {
			cancelTS()
		}
	}()
	wg.Wait()
	// Report the error that caused the other side's cancellation.
	if logErr != nil && (tsErr == nil || errors.Is(tsErr, context.Canceled)) {
		return logErr
	}
	if tsErr != nil {
		return tsErr
	}
	if logErr != nil {
		return logErr
	}

	vm.TlogEntries = entries
	if len(stamps) > 0 {
		vm.TimestampVerificationData = &protobundle.TimestampVerificationData{}
		for _, t := range stamps {
			vm.TimestampVerificationData.Rfc3161Timestamps = append(vm.TimestampVerificationData.Rfc3161Timestamps,
				&protocommon.RFC3161SignedTimestamp{SignedTimestamp: t.Response})
		}
	}
	pb.MediaType = bundle.MediaTypeV03
	pb.VerificationMaterial = vm
	b, err := bundle.FromProto(pb)
	if err != nil {
		return fmt.Errorf("assembling the bundle: %w", err)
	}
	out, err := b.Marshal()
	if err != nil {
		return fmt.Errorf("encoding the bundle: %w", err)
	}
	res.Bundle, res.JSON, res.Entries, res.AttestationID = b, out, entries, attestationID
	r.progress(StepBundle, "%d bytes", len(out))
	return nil
}

// gather calls fn for candidates 0..n-1 until need of them succeed: the
// first need run in parallel, and each failure starts the next candidate.
// Results keep candidate order.
func gather[T any](ctx context.Context, n, need int, what string, fn func(context.Context, int) (T, error)) ([]T, error) {
	if need <= 0 {
		return nil, nil
	}
	type result struct {
		i   int
		v   T
		err error
	}
	ch := make(chan result, n)
	next, running := 0, 0
	launch := func() {
		i := next
		next++
		running++
		go func() {
			v, err := fn(ctx, i)
			ch <- result{i, v, err}
		}()
	}
	for next < n && running < need {
		launch()
	}
	got := map[int]T{}
	var errs []error
	for running > 0 {
		res := <-ch
		running--
		if res.err != nil {
			errs = append(errs, res.err)
			if next < n && len(got)+running < need {
				launch()
			}
			continue
		}
		got[res.i] = res.v
	}
	if len(got) < need {
		return nil, fmt.Errorf("%d of the %d required %s answered (%w)", len(got), need, what, errors.Join(errs...))
	}
	out := make([]T, 0, len(got))
	for i := 0; i < n; i++ {
		if v, ok := got[i]; ok {
			out = append(out, v)
		}
	}
	return out, nil
}
