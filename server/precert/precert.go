// Package precert rewrites RFC 6962 precertificates: a precertificate and
// its certificate differ only in one extension (the poison, or the SCT
// list), so the CA and the CT log both work on the DER TBSCertificate
// directly, without encoding or parsing whole certificates again.
package precert

import (
	"encoding/asn1"
	"errors"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// RFC 6962 §3.1 and §3.3.
var (
	OIDPoison  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3}
	OIDSCTList = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2}
)

// Split returns the TBSCertificate and the signatureAlgorithm (both DER
// elements) of a DER certificate.
func Split(cert []byte) (tbs, sigAlg []byte, err error) {
	in := cryptobyte.String(cert)
	var c, t, a cryptobyte.String
	if !in.ReadASN1(&c, cbasn1.SEQUENCE) || !in.Empty() || !c.ReadASN1Element(&t, cbasn1.SEQUENCE) || !c.ReadASN1Element(&a, cbasn1.SEQUENCE) {
		return nil, nil, errors.New("not a DER certificate")
	}
	return t, a, nil
}

// ReplacePoison returns the TBSCertificate tbs (a DER element) with its one
// poison extension replaced, in place, by the DER Extension ext, or removed
// when ext is nil. Any other number of poison extensions is an error.
func ReplacePoison(tbs, ext []byte) ([]byte, error) {
	in := cryptobyte.String(tbs)
	var body cryptobyte.String
	if !in.ReadASN1(&body, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, errors.New("malformed TBSCertificate")
	}
	extTag := cbasn1.Tag(3).Constructed().ContextSpecific()
	poisoned := 0
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for !body.Empty() {
			var el cryptobyte.String
			var tag cbasn1.Tag
			if !body.ReadAnyASN1Element(&el, &tag) {
				b.SetError(errors.New("malformed TBSCertificate"))
				return
			}
			if tag != extTag {
				b.AddBytes(el)
				continue
			}
			var wrapped, exts cryptobyte.String
			if !el.ReadASN1(&wrapped, extTag) || !wrapped.ReadASN1(&exts, cbasn1.SEQUENCE) {
				b.SetError(errors.New("malformed extensions"))
				return
			}
			b.AddASN1(extTag, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for !exts.Empty() {
						var e cryptobyte.String
						if !exts.ReadASN1Element(&e, cbasn1.SEQUENCE) {
							b.SetError(errors.New("malformed extension"))
							return
						}
						inner := e
						var oid asn1.ObjectIdentifier
						if !inner.ReadASN1(&inner, cbasn1.SEQUENCE) || !inner.ReadASN1ObjectIdentifier(&oid) {
							b.SetError(errors.New("malformed extension"))
							return
						}
						if !oid.Equal(OIDPoison) {
							b.AddBytes(e)
							continue
						}
						poisoned++
						if ext != nil {
							b.AddBytes(ext)
						}
					}
				})
			})
		}
	})
	out, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	if poisoned != 1 {
		return nil, errors.New("not exactly one CT poison extension (RFC 6962 §3.1)")
	}
	return out, nil
}

// Extension is the DER of an X.509 Extension.
func Extension(id asn1.ObjectIdentifier, critical bool, value []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(id)
		if critical {
			b.AddASN1Boolean(true)
		}
		b.AddASN1OctetString(value)
	})
	return b.BytesOrPanic()
}
