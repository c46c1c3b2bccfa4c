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

var (
	tagSignedAttrs   = cbasn1.Tag(0).Constructed().ContextSpecific()
	tagUnsignedAttrs = cbasn1.Tag(1).Constructed().ContextSpecific()
	tagExplicit0     = cbasn1.Tag(0).Constructed().ContextSpecific()
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
	raw         []byte // the whole SignerInfo element
	digestAlg   []byte // OID contents
	signedAttrs []byte // contents of [0]
	signature   []byte
	unsigned    []byte // contents of [1], nil when absent
}

func parseSignerInfo(si []byte) (*signerInfo, error) {
	s := cryptobyte.String(si)
	var body cryptobyte.String
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, errors.New("SignerInfo is not a SEQUENCE")
	}
	out := &signerInfo{raw: si}
	var alg, algOID, sid cryptobyte.String
	var sidTag cbasn1.Tag
	if !body.SkipASN1(cbasn1.INTEGER) || !body.ReadAnyASN1Element(&sid, &sidTag) || // version, sid
		!body.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1(&algOID, cbasn1.OBJECT_IDENTIFIER) {
		return nil, errors.New("SignerInfo has no version, sid and digestAlgorithm")
	}
	out.digestAlg = algOID
	var sa cryptobyte.String
	if !body.ReadASN1(&sa, tagSignedAttrs) {
		return nil, errors.New("SignerInfo has no signedAttrs")
	}
	out.signedAttrs = sa
	var sig cryptobyte.String
	if !body.SkipASN1(cbasn1.SEQUENCE) || !body.ReadASN1(&sig, cbasn1.OCTET_STRING) {
		return nil, errors.New("SignerInfo has no signatureAlgorithm and signature")
	}
	out.signature = sig
	if body.PeekASN1Tag(tagUnsignedAttrs) {
		var ua cryptobyte.String
		if !body.ReadASN1(&ua, tagUnsignedAttrs) {
			return nil, errors.New("SignerInfo unsignedAttrs are malformed")
		}
		out.unsigned = ua
		if out.unsigned == nil {
			out.unsigned = []byte{}
		}
	}
	if !body.Empty() {
		return nil, errors.New("SignerInfo has trailing fields")
	}
	return out, nil
}

// rewrite applies f to the only SignerInfo of a TimeStampResp or bare
// token (ContentInfo) and re-encodes everything around it. With f nil it
// only finds the SignerInfo.
func rewrite(der []byte, f func(*signerInfo) ([]byte, error)) ([]byte, *signerInfo, error) {
	in := cryptobyte.String(der)
	var top cryptobyte.String
	if !in.ReadASN1(&top, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, nil, errors.New("not a DER TimeStampResp or timestamp token")
	}
	var found *signerInfo
	var b cryptobyte.Builder
	var err error
	contentInfo := func(b *cryptobyte.Builder, ci cryptobyte.String) {
		var oid, explicit, sd cryptobyte.String
		if !ci.ReadASN1Element(&oid, cbasn1.OBJECT_IDENTIFIER) || !ci.ReadASN1(&explicit, tagExplicit0) ||
			!explicit.ReadASN1(&sd, cbasn1.SEQUENCE) || !explicit.Empty() || !ci.Empty() {
			err = errors.New("token is not a ContentInfo holding SignedData")
			return
		}
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(oid)
			b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					// version, digestAlgorithms, encapContentInfo,
					// [0] certificates, [1] crls: copied; signerInfos last.
					for !sd.Empty() {
						var tag cbasn1.Tag
						var el, elBody cryptobyte.String
						if !sd.ReadAnyASN1Element(&el, &tag) {
							err = errors.New("SignedData is malformed")
							return
						}
						if !sd.Empty() {
							b.AddBytes(el)
							continue
						}
						if tag != cbasn1.SET || !el.ReadASN1(&elBody, cbasn1.SET) {
							err = errors.New("SignedData does not end with its signerInfos SET")
							return
						}
						var si cryptobyte.String
						if !elBody.ReadASN1Element(&si, cbasn1.SEQUENCE) || !elBody.Empty() {
							err = errors.New("a timestamp token has exactly one SignerInfo")
							return
						}
						if found, err = parseSignerInfo(si); err != nil {
							return
						}
						out := []byte(si)
						if f != nil {
							if out, err = f(found); err != nil {
								return
							}
						}
						b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(out) })
					}
				})
			})
		})
	}
	if top.PeekASN1Tag(cbasn1.SEQUENCE) {
		// TimeStampResp: PKIStatusInfo, then the token.
		var status, ci cryptobyte.String
		if !top.ReadASN1Element(&status, cbasn1.SEQUENCE) || !top.ReadASN1(&ci, cbasn1.SEQUENCE) || !top.Empty() {
			return nil, nil, errors.New("TimeStampResp holds no token")
		}
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(status)
			contentInfo(b, ci)
		})
	} else {
		contentInfo(&b, top) // a bare token (ContentInfo)
	}
	if err != nil {
		return nil, nil, err
	}
	out, err := b.Bytes()
	return out, found, err
}

// SignedParts returns what the token's log entry must record.
func SignedParts(der []byte) (*Signed, error) {
	_, si, err := rewrite(der, nil)
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
