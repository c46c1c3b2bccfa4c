// Package timelog is time transparency for RFC 3161 timestamps: a TSA that
// logs every token it issues in a transparency log, so that a back-dated or
// otherwise misissued timestamp is visible to anyone auditing the log, and
// hands the log entry back inside the token.
//
// What is logged: a hashedrekord v0.0.2 entry whose signature is the
// token's SignerInfo signature, whose verifier is the TSA's signing
// certificate and whose digest is the hash (the SignerInfo's digest
// algorithm) of the DER signed attributes, the very message the TSA signed.
// A Rekor v2 log checks that signature like any other, and the entry binds
// the whole token: the signed attributes carry the TSTInfo's message digest.
//
// Where the entry travels: in the TimeStampResp's statusString (RFC 3161
// PKIFreeText, a SEQUENCE of UTF8String that granted responses may carry),
// as one string: Prefix followed by the entry as Sigstore's
// TransparencyLogEntry JSON (inclusion proof and checkpoint included),
// base64. Sigstore clients keep the whole TimeStampResp in a bundle's
// rfc3161Timestamps, so the evidence reaches every verifier, and nothing
// signed changes: the TSA's token is untouched, and parsers that do not
// know the string read it as text. An unsigned attribute in the token would
// need an attribute type OID; signet has no OID arc of its own, and the
// UUID arc's 128-bit numbers are refused by encoding/asn1 (so by cosign
// and sigstore-go). The entry needs no TSA signature: the log's checkpoint
// proves it.
package timelog

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Prefix starts the statusString element that holds the log entry.
const Prefix = "signet.dev/time-transparency/v1 "

// Both are [0] constructed: the SignerInfo's signedAttrs and the
// ContentInfo's explicit content.
var (
	tagSignedAttrs = cbasn1.Tag(0).Constructed().ContextSpecific()
	tagExplicit0   = tagSignedAttrs
)

// ErrNotLogged: the response carries no log entry (or is a bare token).
var ErrNotLogged = errors.New("the timestamp carries no log entry")

// Signed is what a token's log entry records.
type Signed struct {
	// Digest is the hash of the DER signed attributes under Hash.
	Digest []byte
	Hash   crypto.Hash
	// Signature is the SignerInfo's signature over those attributes.
	Signature []byte
}

var digestOIDs = map[string]crypto.Hash{
	"\x60\x86\x48\x01\x65\x03\x04\x02\x01": crypto.SHA256,
	"\x60\x86\x48\x01\x65\x03\x04\x02\x02": crypto.SHA384,
	"\x60\x86\x48\x01\x65\x03\x04\x02\x03": crypto.SHA512,
}

// signerInfo holds the parts of the only SignerInfo of a token.
type signerInfo struct {
	digestAlg   []byte // OID contents
	signedAttrs []byte // contents of [0]
	signature   []byte
}

// findSignerInfo reads the only SignerInfo of a TimeStampResp or a bare
// token (ContentInfo). The strict DER checks are core/verify/tstoken's;
// this only finds the parts the log entry records.
func findSignerInfo(der []byte) (*signerInfo, error) {
	in := cryptobyte.String(der)
	var top, ci cryptobyte.String
	if !in.ReadASN1(&top, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, errors.New("not a DER TimeStampResp or timestamp token")
	}
	if top.PeekASN1Tag(cbasn1.SEQUENCE) {
		// TimeStampResp: PKIStatusInfo, then the token.
		if !top.SkipASN1(cbasn1.SEQUENCE) || !top.ReadASN1(&ci, cbasn1.SEQUENCE) {
			return nil, errors.New("TimeStampResp holds no token")
		}
	} else {
		ci = top
	}
	var explicit, sd cryptobyte.String
	if !ci.SkipASN1(cbasn1.OBJECT_IDENTIFIER) || !ci.ReadASN1(&explicit, tagExplicit0) || !explicit.ReadASN1(&sd, cbasn1.SEQUENCE) {
		return nil, errors.New("token is not a ContentInfo holding SignedData")
	}
	// version, digestAlgorithms, encapContentInfo, [0] certificates,
	// [1] crls; the signerInfos SET comes last.
	var last cryptobyte.String
	for !sd.Empty() {
		var tag cbasn1.Tag
		if !sd.ReadAnyASN1Element(&last, &tag) {
			return nil, errors.New("SignedData is malformed")
		}
	}
	var set, body cryptobyte.String
	if !last.ReadASN1(&set, cbasn1.SET) || !set.ReadASN1(&body, cbasn1.SEQUENCE) || !set.Empty() {
		return nil, errors.New("a timestamp token has exactly one SignerInfo, last in its SignedData")
	}
	out := &signerInfo{}
	var alg, algOID, sid, sa, sig cryptobyte.String
	var sidTag cbasn1.Tag
	if !body.SkipASN1(cbasn1.INTEGER) || !body.ReadAnyASN1Element(&sid, &sidTag) || // version, sid
		!body.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1(&algOID, cbasn1.OBJECT_IDENTIFIER) {
		return nil, errors.New("SignerInfo has no version, sid and digestAlgorithm")
	}
	if !body.ReadASN1(&sa, tagSignedAttrs) {
		return nil, errors.New("SignerInfo has no signedAttrs")
	}
	if !body.SkipASN1(cbasn1.SEQUENCE) || !body.ReadASN1(&sig, cbasn1.OCTET_STRING) {
		return nil, errors.New("SignerInfo has no signatureAlgorithm and signature")
	}
	out.digestAlg, out.signedAttrs, out.signature = algOID, sa, sig
	return out, nil
}

// SignedParts returns what the token's log entry must record.
func SignedParts(der []byte) (*Signed, error) {
	si, err := findSignerInfo(der)
	if err != nil {
		return nil, fmt.Errorf("timestamp: %w", err)
	}
	h, ok := digestOIDs[string(si.digestAlg)]
	if !ok {
		return nil, errors.New("timestamp: SignerInfo digest algorithm is not SHA-256, SHA-384 or SHA-512")
	}
	// The signature covers the attributes DER-encoded with the SET tag,
	// not the [0] IMPLICIT tag they carry in the SignerInfo (RFC 5652 5.4).
	var set cryptobyte.Builder
	set.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(si.signedAttrs) })
	msg, err := set.Bytes()
	if err != nil {
		return nil, err
	}
	hh := h.New()
	hh.Write(msg)
	return &Signed{Digest: hh.Sum(nil), Hash: h, Signature: bytes.Clone(si.signature)}, nil
}

// Embed returns resp (a DER TimeStampResp) with entry (a
// TransparencyLogEntry as protojson) in its statusString. A response with a
// statusString already is refused: the entry is its only text.
func Embed(resp, entry []byte) ([]byte, error) {
	in := cryptobyte.String(resp)
	var top, status, st, token cryptobyte.String
	if !in.ReadASN1(&top, cbasn1.SEQUENCE) || !in.Empty() || !top.ReadASN1(&status, cbasn1.SEQUENCE) ||
		!top.ReadASN1Element(&token, cbasn1.SEQUENCE) || !top.Empty() || !status.ReadASN1Element(&st, cbasn1.INTEGER) {
		return nil, errors.New("timestamp: not a DER TimeStampResp with a token")
	}
	if !status.Empty() {
		return nil, errors.New("timestamp: the response already has a statusString or failInfo")
	}
	text := Prefix + base64.StdEncoding.EncodeToString(entry)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(st)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(text)) })
			})
		})
		b.AddBytes(token)
	})
	return b.Bytes()
}

// Extract returns the log entry a TimeStampResp carries: ErrNotLogged when
// it carries none (or der is a bare token), an error when the string is
// there but malformed or there twice.
func Extract(der []byte) ([]byte, error) {
	in := cryptobyte.String(der)
	var top, status cryptobyte.String
	if !in.ReadASN1(&top, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, errors.New("timestamp: not a DER TimeStampResp or token")
	}
	if !top.PeekASN1Tag(cbasn1.SEQUENCE) {
		return nil, ErrNotLogged // a bare token (ContentInfo) has no status
	}
	if !top.ReadASN1(&status, cbasn1.SEQUENCE) || !status.SkipASN1(cbasn1.INTEGER) {
		return nil, errors.New("timestamp: TimeStampResp status is malformed")
	}
	if !status.PeekASN1Tag(cbasn1.SEQUENCE) {
		return nil, ErrNotLogged
	}
	var texts cryptobyte.String
	if !status.ReadASN1(&texts, cbasn1.SEQUENCE) {
		return nil, errors.New("timestamp: TimeStampResp statusString is malformed")
	}
	var entry []byte
	for !texts.Empty() {
		var t cryptobyte.String
		if !texts.ReadASN1(&t, cbasn1.UTF8String) {
			return nil, errors.New("timestamp: TimeStampResp statusString holds a non-UTF8String")
		}
		rest, ok := strings.CutPrefix(string(t), Prefix)
		if !ok {
			continue
		}
		if entry != nil {
			return nil, errors.New("timestamp: the response carries two log entries")
		}
		b, err := base64.StdEncoding.Strict().DecodeString(rest)
		if err != nil || base64.StdEncoding.EncodeToString(b) != rest {
			return nil, errors.New("timestamp: the log entry in the statusString is not canonical base64")
		}
		entry = b
	}
	if entry == nil {
		return nil, ErrNotLogged
	}
	return entry, nil
}
