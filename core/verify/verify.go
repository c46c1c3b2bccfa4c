// Package verify is signet's offline verifier for Sigstore bundles: RFC 3161
// timestamps, the Fulcio certificate chain at the signing time, the signer
// identity policy, the artifact signature (message signature or DSSE
// in-toto attestation), and the transparency log entry with its inclusion
// proof and signed checkpoint. It needs only a trusted root; no network.
package verify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	attestation "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/signet-dev/signet/core/bundle"
	sintoto "github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/trust"
)

// InTotoPayloadType is the DSSE payload type of in-toto statements.
const InTotoPayloadType = sintoto.PayloadType

// Verifier verifies bundles against one trusted root. It is safe for
// concurrent use.
type Verifier struct {
	root *trust.Root
}

// New returns a verifier for the given trusted root.
func New(root *trust.Root) *Verifier { return &Verifier{root: root} }

// VerifiedTime is a signing time proven by a trusted source.
type VerifiedTime struct {
	Time time.Time
	// Source is "rfc3161 <TSA URI>" or "tlog <log base URL>".
	Source string
}

// LogEntry describes a verified transparency log entry.
type LogEntry struct {
	LogID          []byte
	BaseURL        string
	LogIndex       int64
	Kind, Version  string
	IntegratedTime time.Time // zero for Rekor v2 entries
	TreeSize       uint64
	RootHash       []byte
	// Witnesses are the policy's witnesses whose cosignature on the
	// checkpoint verified (only with Policy.Witnesses).
	Witnesses []string
}

// Result describes a bundle that passed verification.
type Result struct {
	BundleVersion string
	// Signer is the certificate's identity; empty when Policy.Key was the
	// trust anchor.
	Signer Identity
	// KeyFingerprint names the trusted key (see KeyFingerprint) when
	// Policy.Key was the trust anchor; empty for keyless verification.
	KeyFingerprint string
	// Certificate is the bundle's certificate; nil for a public key bundle.
	Certificate *x509.Certificate
	// CA is the URI of the trusted CA that issued the certificate.
	CA      string
	Times   []VerifiedTime
	Entries []LogEntry
	// TimestampEntries are the log entries of timestamps that carry one
	// (time transparency), each proven included.
	TimestampEntries []LogEntry
	// Digest is the artifact digest (message signatures) or the matched
	// statement subject digest (attestations).
	Digest Digest
	// Statement is the verified in-toto statement of a DSSE bundle.
	Statement *attestation.Statement
}

// VerifyArtifact verifies b over the artifact read from r. For a DSSE bundle
// it verifies the attestation with the artifact's SHA-256 as subject and any
// predicate type.
func (v *Verifier) VerifyArtifact(ctx context.Context, b *bundle.Bundle, r io.Reader, p Policy) (*Result, error) {
	if b.DSSEEnvelope() != nil {
		d, err := DigestOf(crypto.SHA256, r)
		if err != nil {
			return nil, fail(CheckArtifact, err, "cannot hash the artifact")
		}
		return v.VerifyAttestation(ctx, b, d, p, "")
	}
	// The policy first, so that a bad policy is reported as such whatever
	// the bundle holds.
	if err := p.validate(); err != nil {
		return nil, err
	}
	_, key, err := signingMaterial(b, &p)
	if err != nil {
		return nil, err
	}
	alg, err := messageDigestAlg(b, key.hash)
	if err != nil {
		return nil, err
	}
	var msg []byte
	if _, ok := key.pub.(ed25519.PublicKey); ok && !key.trusted {
		// Pure Ed25519 (keyless) signs the message itself, so keep it. A
		// trusted Ed25519 key signs as Ed25519ph, over the digest.
		if msg, err = io.ReadAll(r); err != nil {
			return nil, fail(CheckArtifact, err, "cannot read the artifact")
		}
		r = bytes.NewReader(msg)
	}
	d, err := DigestOf(alg, r)
	if err != nil {
		return nil, fail(CheckArtifact, err, "cannot hash the artifact")
	}
	return v.verify(ctx, b, p, &content{digest: d, message: msg})
}

// VerifyDigest verifies a message-signature bundle given only the artifact
// digest. Ed25519-signed bundles need the artifact; use VerifyArtifact.
func (v *Verifier) VerifyDigest(ctx context.Context, b *bundle.Bundle, d Digest, p Policy) (*Result, error) {
	if b.DSSEEnvelope() != nil {
		return nil, fail(CheckBundle, nil, "bundle holds a DSSE attestation; verify it with VerifyAttestation")
	}
	return v.verify(ctx, b, p, &content{digest: d})
}

// VerifyAttestation verifies a DSSE bundle whose in-toto statement must list
// subject among its subjects and, if wantPredicateType is not empty, have
// that predicate type.
func (v *Verifier) VerifyAttestation(ctx context.Context, b *bundle.Bundle, subject Digest, p Policy, wantPredicateType string) (*Result, error) {
	if b.DSSEEnvelope() == nil {
		return nil, fail(CheckBundle, nil, "bundle holds a message signature, not a DSSE attestation; verify it with VerifyArtifact")
	}
	return v.verify(ctx, b, p, &content{digest: subject, attestation: true, predicateType: wantPredicateType})
}

// content is what the caller expects the bundle to sign.
type content struct {
	digest        Digest
	message       []byte // the artifact, when available (needed for Ed25519)
	attestation   bool
	predicateType string
}

func certError(err error) error {
	return fail(CheckCertificateChain, err, "no usable signing certificate")
}

func messageDigestAlg(b *bundle.Bundle, keyHash crypto.Hash) (crypto.Hash, error) {
	md := b.MessageSignature().GetMessageDigest()
	if md == nil {
		return keyHash, nil
	}
	alg, err := hashFromProto(md.GetAlgorithm())
	if err != nil {
		return 0, fail(CheckBundle, err, "messageSignature.messageDigest")
	}
	return alg, nil
}

// verify runs every check. The order makes each kind of damage surface as
// the check it concerns: times and the certificate chain first (so a broken
// certificate is a chain failure), then identity, then the signature, and
// only then the bindings of timestamps and log entries to that signature.
func (v *Verifier) verify(ctx context.Context, b *bundle.Bundle, p Policy, c *content) (*Result, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cert, key, err := signingMaterial(b, &p)
	if err != nil {
		return nil, err
	}
	sig := b.Signature()
	res := &Result{BundleVersion: b.Version(), Certificate: cert}

	// 1. Time evidence: TSA-signed timestamps and Rekor v1 signed entry
	// timestamps. Both are signed by trusted parties over data in the bundle.
	var stamps []*signedTime
	var times []time.Time
	for i, der := range b.RFC3161Timestamps() {
		st, err := verifyTimestampToken(v.root, der)
		if err != nil {
			return nil, fail(CheckTimestamp, err, "rfc3161Timestamps[%d]", i)
		}
		stamps = append(stamps, st)
		times = append(times, st.ts.Time)
	}
	// A promise is checked whenever it is present, whatever integratedTime
	// says: a promise that fails is tampering, not a missing feature. An
	// integratedTime no promise covers is an unsigned claim; refuse it rather
	// than carry a time nobody vouched for.
	promised := map[int]time.Time{}
	for i, e := range b.TlogEntries() {
		log, ok := v.root.Log(e.GetLogId().GetKeyId())
		if !ok {
			continue
		}
		if e.GetInclusionPromise() == nil {
			if e.GetIntegratedTime() != 0 {
				return nil, fail(CheckInclusionPromise, nil, "tlogEntries[%d] (log %s index %d) claims integratedTime %d but carries no signed entry timestamp; an unsigned time proves nothing", i, log.BaseURL, e.GetLogIndex(), e.GetIntegratedTime())
			}
			continue
		}
		t, err := checkPromise(log, e)
		if err != nil {
			return nil, err
		}
		promised[i] = t
		times = append(times, t)
	}
	if len(times) == 0 {
		what := "the short-lived certificate"
		if key.trusted {
			what = "the log key's validity"
		}
		return nil, fail(CheckTimeSource, nil, "bundle has no verifiable signing time (no RFC 3161 timestamp, no Rekor v1 signed entry timestamp); %s cannot be checked", what)
	}

	// 2. Certificate chain at every signing time, then the identity policy.
	// A trusted key replaces both: it is the signer's identity.
	want := expectedEntry{sig: sig}
	if key.trusted {
		res.KeyFingerprint = fingerprint(key.pub)
		want.key = key.pub
		if cert != nil {
			want.certDER = cert.Raw
		}
	} else {
		ca, err := verifyChain(v.root, cert, times)
		if err != nil {
			return nil, err
		}
		res.CA = ca.URI
		if err := checkLeafProfile(cert); err != nil {
			return nil, err
		}
		if len(v.root.CTLogs) > 0 && !p.IgnoreSCT {
			issuer, err := issuerOf(ca, cert)
			if err != nil {
				return nil, fail(CheckSCT, err, "cannot find the certificate's issuer for its SCT")
			}
			if err := checkSCTs(v.root, cert, issuer, max(p.SCTThreshold, 1)); err != nil {
				return nil, err
			}
		}
		id, err := identityOf(cert)
		if err != nil {
			return nil, err
		}
		if err := checkIdentity(&p, id); err != nil {
			return nil, err
		}
		res.Signer = id
		want.certDER = cert.Raw
	}

	// 3. The signature over the artifact or the DSSE envelope.
	if c.attestation {
		err = v.checkEnvelope(b, key, c, res, &want)
	} else {
		err = checkMessage(b, key, c)
		res.Digest = c.digest
		want.digest = &c.digest
	}
	if err != nil {
		if CheckOf(err) == CheckSignature {
			if herr := hintMismatch(b, key); herr != nil {
				return nil, herr
			}
		}
		return nil, err
	}

	// 4. Bind the timestamps to this signature.
	seenTSA := map[*trust.CA]bool{}
	for i, st := range stamps {
		if err := bindTimestamp(st, sig); err != nil {
			var e *Error
			if errors.As(err, &e) {
				e.Msg = fmt.Sprintf("rfc3161Timestamps[%d]: %s", i, e.Msg)
				return nil, e
			}
			return nil, fail(CheckTimestamp, err, "rfc3161Timestamps[%d]", i)
		}
		// One TSA counts once, however many timestamps it issued.
		if !seenTSA[st.tsa] {
			seenTSA[st.tsa] = true
			res.Times = append(res.Times, VerifiedTime{Time: st.ts.Time.UTC(), Source: "rfc3161 " + st.tsa.URI})
		}
	}

	// 5. Log entries: body, inclusion proof, checkpoint, key validity.
	verifiedLogs := map[string]bool{}
	seenEntry := map[string]bool{}
	var skipped []string
	for i, e := range b.TlogEntries() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		log, ok := v.root.Log(e.GetLogId().GetKeyId())
		if !ok {
			skipped = append(skipped, fmt.Sprintf("tlogEntries[%d] is from log %s, which the trusted root does not list", i, hex.EncodeToString(e.GetLogId().GetKeyId())))
			continue
		}
		key := fmt.Sprintf("%x/%d", log.ID, e.GetLogIndex())
		if seenEntry[key] {
			return nil, fail(CheckTlog, nil, "tlogEntries[%d] duplicates another entry (log %s index %d)", i, log.BaseURL, e.GetLogIndex())
		}
		seenEntry[key] = true
		t, hasPromise := promised[i]
		entry, err := v.checkEntry(log, e, want, times, hasPromise, p.Witnesses)
		if errors.Is(err, errUnproven) {
			skipped = append(skipped, fmt.Sprintf("tlogEntries[%d] (log %s index %d) has neither an inclusion proof nor a signed entry timestamp, so nothing shows it was logged", i, log.BaseURL, e.GetLogIndex()))
			continue
		}
		if err != nil {
			return nil, err
		}
		if hasPromise {
			entry.IntegratedTime = t
			if !verifiedLogs[string(log.ID)] {
				res.Times = append(res.Times, VerifiedTime{Time: t, Source: "tlog " + log.BaseURL})
			}
		}
		verifiedLogs[string(log.ID)] = true
		res.Entries = append(res.Entries, *entry)
	}
	if n := len(verifiedLogs); n < p.tlogThreshold() {
		msg := fmt.Sprintf("%d verified transparency log entries from distinct trusted logs, policy requires %d", n, p.tlogThreshold())
		if len(skipped) > 0 {
			msg += " (" + fmt.Sprint(skipped) + ")"
		}
		return nil, fail(CheckTlog, nil, "%s", msg)
	}
	if n := len(res.Times); n < p.timestampThreshold() {
		return nil, fail(CheckTimeSource, nil, "%d verified signing time sources, policy requires %d", n, p.timestampThreshold())
	}
	// 6. Time transparency: a timestamp that says it was logged must be.
	for i, st := range stamps {
		entry, err := v.checkTimestampLog(st, i, p.Witnesses)
		if err != nil {
			return nil, err
		}
		if entry != nil {
			res.TimestampEntries = append(res.TimestampEntries, *entry)
		}
	}
	return res, nil
}

// errUnproven marks an entry that proves nothing: it does not count.
var errUnproven = errors.New("entry carries no proof of inclusion")

// checkEntry verifies one entry of a trusted log. The entry counts only if
// something the log signed proves it: an inclusion proof up to a checkpoint
// signed by the log key, or a verified signed entry timestamp (promised).
// Fields alone (log ID, index, body) prove nothing: anyone can write them.
func (v *Verifier) checkEntry(log *trust.Log, e *protorekor.TransparencyLogEntry, want expectedEntry, times []time.Time, promised bool, witnesses *WitnessPolicy) (*LogEntry, error) {
	// Bundle parsing already demands a proof or a promise, and a promise that
	// fails is an error; this keeps the rule where it is stated.
	if e.GetInclusionProof() == nil && !promised {
		return nil, errUnproven
	}
	for _, t := range times {
		if !log.ValidFor.Contains(t) {
			return nil, fail(CheckTlog, nil, "key of log %s is valid %s, not at signing time %s", log.BaseURL, log.ValidFor, t.UTC().Format(time.RFC3339))
		}
	}
	if err := checkBody(e, want); err != nil {
		return nil, err
	}
	entry := &LogEntry{LogID: log.ID, BaseURL: log.BaseURL, LogIndex: e.GetLogIndex(), Kind: e.GetKindVersion().GetKind(), Version: e.GetKindVersion().GetVersion()}
	if e.GetInclusionProof() == nil {
		// Only v0.1 bundles get here; their verified signed entry timestamp
		// is the log's promise of inclusion.
		if witnesses != nil {
			return nil, fail(CheckWitness, nil, "log entry %d of %s has no inclusion proof, so no checkpoint a witness could have cosigned", e.GetLogIndex(), log.BaseURL)
		}
		return entry, nil
	}
	cp, err := checkInclusion(log, e)
	if err != nil {
		return nil, err
	}
	entry.TreeSize, entry.RootHash = cp.Size, cp.Hash
	if witnesses != nil {
		if entry.Witnesses, err = witnesses.check(e.GetInclusionProof().GetCheckpoint().GetEnvelope()); err != nil {
			return nil, err
		}
	}
	return entry, nil
}

func checkMessage(b *bundle.Bundle, key signingKey, c *content) error {
	ms := b.MessageSignature()
	if md := ms.GetMessageDigest(); md != nil {
		alg, err := hashFromProto(md.GetAlgorithm())
		if err != nil {
			return fail(CheckBundle, err, "messageSignature.messageDigest")
		}
		if alg != c.digest.Algorithm || !bytes.Equal(md.GetDigest(), c.digest.Value) {
			return mismatch(CheckArtifact, "artifact digest", fmt.Sprintf("%s:%x (signed)", hashName(alg), md.GetDigest()), c.digest.String()+" (given artifact)")
		}
	}
	if err := key.verify(ms.GetSignature(), c.message, c.digest.Algorithm, c.digest.Value); err != nil {
		return fail(CheckSignature, err, "messageSignature over %s", c.digest)
	}
	return nil
}

func (v *Verifier) checkEnvelope(b *bundle.Bundle, key signingKey, c *content, res *Result, want *expectedEntry) error {
	env := b.DSSEEnvelope()
	pae := dsse.PAE(env.GetPayloadType(), env.GetPayload())
	hh := key.hash.New()
	hh.Write(pae)
	if err := key.verify(b.Signature(), pae, key.hash, hh.Sum(nil)); err != nil {
		return fail(CheckSignature, err, "DSSE envelope signature")
	}
	want.pae, want.payload = pae, env.GetPayload()

	if env.GetPayloadType() != InTotoPayloadType {
		return mismatch(CheckStatement, "DSSE payloadType", InTotoPayloadType, env.GetPayloadType())
	}
	var st attestation.Statement
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(env.GetPayload(), &st); err != nil {
		return fail(CheckStatement, err, "DSSE payload is not an in-toto statement")
	}
	if err := st.Validate(); err != nil {
		return fail(CheckStatement, err, "invalid in-toto statement")
	}
	if c.predicateType != "" && st.GetPredicateType() != c.predicateType {
		return mismatch(CheckStatement, "predicate type", c.predicateType, st.GetPredicateType())
	}
	name, wantHex := hashName(c.digest.Algorithm), hex.EncodeToString(c.digest.Value)
	var listed []string
	for _, s := range st.GetSubject() {
		got := s.GetDigest()[name]
		if got == wantHex {
			res.Statement, res.Digest = &st, c.digest
			return nil
		}
		listed = append(listed, fmt.Sprintf("%s %s:%s", s.GetName(), name, got))
	}
	return mismatch(CheckArtifact, "statement subject digest", c.digest.String(), fmt.Sprint(listed))
}
