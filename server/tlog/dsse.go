package tlog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"

	jcs "github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"google.golang.org/protobuf/encoding/protojson"
)

const (
	kindDSSE    = "dsse"
	versionDSSE = "0.0.2"
	// maxDSSESignatures bounds the signatures of one envelope (each costs a
	// verification per verifier).
	maxDSSESignatures = 8
)

// PAE is the DSSE v1 pre-authentication encoding the signatures sign.
func PAE(payloadType string, payload []byte) []byte {
	return fmt.Appendf(nil, "DSSEv1 %d %s %d %s", len(payloadType), payloadType, len(payload), payload)
}

// DSSEEntry is a validated dsse v0.0.2 request: the envelope and, per
// envelope signature in order, the verifier that verified it.
type DSSEEntry struct {
	Envelope  *protodsse.Envelope
	Verifiers []*rekorv2.Verifier
	body      []byte
}

// canonicalDSSE validates a dsseRequestV002 (each envelope signature must
// verify over the PAE with one of the verifiers, and each verifier must
// verify one) and returns the entry with its log body: rekor-tiles' dsse
// v0.0.2 Entry (the SHA-256 of the payload and each signature with its
// verifier), protojson then RFC 8785, as rekor-tiles v2.0 wrote it.
func canonicalDSSE(req *rekorv2.DSSERequestV002) (*DSSEEntry, error) {
	env := req.GetEnvelope()
	switch {
	case env == nil:
		return nil, invalid("dsseRequestV002.envelope is missing")
	case env.GetPayloadType() == "":
		return nil, invalid("envelope.payloadType is empty")
	case len(env.GetSignatures()) == 0:
		return nil, invalid("envelope has no signatures")
	case len(env.GetSignatures()) > maxDSSESignatures:
		return nil, invalid("envelope has %d signatures; the log takes at most %d", len(env.GetSignatures()), maxDSSESignatures)
	case len(req.GetVerifiers()) == 0:
		return nil, invalid("dsseRequestV002.verifiers is empty; send the signer's x509Certificate or publicKey with keyDetails")
	case len(req.GetVerifiers()) > maxDSSESignatures:
		return nil, invalid("%d verifiers; the log takes at most %d", len(req.GetVerifiers()), maxDSSESignatures)
	}
	type key struct {
		v  *rekorv2.Verifier
		sv signature.Verifier
		h  signature.AlgorithmDetails
	}
	keys := make([]key, len(req.GetVerifiers()))
	for i, v := range req.GetVerifiers() {
		pub, details, _, err := parseVerifier(v, fmt.Sprintf("verifiers[%d]", i))
		if err != nil {
			return nil, err
		}
		sv, err := signature.LoadVerifierWithOpts(pub, options.WithHash(details.GetHashType()), options.WithED25519ph())
		if err != nil {
			return nil, invalid("verifiers[%d]: %v", i, err)
		}
		keys[i] = key{v, sv, details}
	}
	pae := PAE(env.GetPayloadType(), env.GetPayload())
	used := make([]bool, len(keys))
	e := &DSSEEntry{Envelope: env}
	sigs := make([]*rekorv2.Signature, 0, len(env.GetSignatures()))
	for i, s := range env.GetSignatures() {
		if len(s.GetSig()) == 0 {
			return nil, invalid("envelope.signatures[%d].sig is empty", i)
		}
		var by *rekorv2.Verifier
		for j, k := range keys {
			if k.sv.VerifySignature(bytes.NewReader(s.GetSig()), bytes.NewReader(pae)) == nil {
				by, used[j] = k.v, true
				break
			}
		}
		if by == nil {
			return nil, invalid("envelope.signatures[%d] does not verify over the DSSE PAE with any of the verifiers; send the key or certificate that signed it", i)
		}
		sigs = append(sigs, &rekorv2.Signature{Content: s.GetSig(), Verifier: by})
		e.Verifiers = append(e.Verifiers, by)
	}
	for j, u := range used {
		if !u {
			return nil, invalid("verifiers[%d] verifies none of the envelope's signatures; send only the signers' keys", j)
		}
	}
	sum := sha256.Sum256(env.GetPayload())
	entry := &rekorv2.Entry{Kind: kindDSSE, ApiVersion: versionDSSE, Spec: &rekorv2.Spec{Spec: &rekorv2.Spec_DsseV002{DsseV002: &rekorv2.DSSELogEntryV002{
		PayloadHash: &commonv1.HashOutput{Algorithm: commonv1.HashAlgorithm_SHA2_256, Digest: sum[:]},
		Signatures:  sigs,
	}}}}
	raw, err := protojson.Marshal(entry)
	if err != nil {
		return nil, fmt.Errorf("encoding the dsse entry: %w", err)
	}
	body, err := jcs.Transform(raw)
	if err != nil {
		return nil, fmt.Errorf("canonicalizing the dsse entry: %w", err)
	}
	if len(body) > maxEntryBytes {
		return nil, invalid("entry is %d bytes once canonicalized; the log's limit is %d (send the leaf certificate only)", len(body), maxEntryBytes)
	}
	e.body = body
	return e, nil
}

// AppendDSSE logs a dsseRequestV002 entry, as rekor-tiles v2.0 did (v2.3
// dropped the kind; sigstore-js 5 still sends it for attestations). It
// reports whether the entry was already in the log.
func (l *Log) AppendDSSE(ctx context.Context, req *rekorv2.DSSERequestV002) (*rekorv1.TransparencyLogEntry, *DSSEEntry, bool, error) {
	e, err := canonicalDSSE(req)
	if err == nil {
		var tle *rekorv1.TransparencyLogEntry
		var dup bool
		tle, dup, err = l.appendBody(ctx, e.body, kindDSSE, versionDSSE)
		if err == nil {
			l.countAppend(kindDSSE, dup)
			return tle, e, dup, nil
		}
	}
	l.countRefusal(ctx, err)
	return nil, nil, false, err
}
