package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// signsP256 says the CA's key is ECDSA P-256, for which crypto/x509 signs
// with ecdsa-with-SHA256: the algorithm certFromPrecert re-signs with.
func signsP256(s crypto.Signer) bool {
	pub, ok := s.Public().(*ecdsa.PublicKey)
	return ok && pub.Curve == elliptic.P256()
}

// certFromPrecert makes the certificate of a precertificate: its
// TBSCertificate with the poison extension replaced by sctList, in the same
// place, signed by signer with the precertificate's algorithm
// (ecdsa-with-SHA256). crypto/x509 would build the same TBSCertificate from
// the template, but encodes it by reflection and verifies its own signature
// again; for the CA that is a quarter of the CPU of each certificate, and
// the precertificate was already made and checked that way with the same
// template and key (TestCertFromPrecertMatchesCreateCertificate).
func certFromPrecert(pre []byte, sctList pkix.Extension, signer crypto.Signer) ([]byte, error) {
	in := cryptobyte.String(pre)
	var cert, tbs, sigAlg cryptobyte.String
	if !in.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.ReadASN1(&tbs, cbasn1.SEQUENCE) || !cert.ReadASN1Element(&sigAlg, cbasn1.SEQUENCE) {
		return nil, errors.New("precertificate: not a DER certificate")
	}
	extTag := cbasn1.Tag(3).Constructed().ContextSpecific()
	replaced := 0
	var tb cryptobyte.Builder
	tb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for !tbs.Empty() {
			var el cryptobyte.String
			var tag cbasn1.Tag
			if !tbs.ReadAnyASN1Element(&el, &tag) {
				b.SetError(errors.New("precertificate: malformed TBSCertificate"))
				return
			}
			if tag != extTag {
				b.AddBytes(el)
				continue
			}
			var wrapped, exts cryptobyte.String
			if !el.ReadASN1(&wrapped, extTag) || !wrapped.ReadASN1(&exts, cbasn1.SEQUENCE) {
				b.SetError(errors.New("precertificate: malformed extensions"))
				return
			}
			b.AddASN1(extTag, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for !exts.Empty() {
						var ext cryptobyte.String
						if !exts.ReadASN1Element(&ext, cbasn1.SEQUENCE) {
							b.SetError(errors.New("precertificate: malformed extension"))
							return
						}
						body := ext
						var oid asn1.ObjectIdentifier
						if !body.ReadASN1(&body, cbasn1.SEQUENCE) || !body.ReadASN1ObjectIdentifier(&oid) {
							b.SetError(errors.New("precertificate: malformed extension"))
							return
						}
						if !oid.Equal(oidCTPoison) {
							b.AddBytes(ext)
							continue
						}
						replaced++
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1ObjectIdentifier(sctList.Id)
							if sctList.Critical {
								b.AddASN1Boolean(true)
							}
							b.AddASN1OctetString(sctList.Value)
						})
					}
				})
			})
		}
	})
	newTBS, err := tb.Bytes()
	if err != nil {
		return nil, err
	}
	if replaced != 1 {
		return nil, errors.New("precertificate: no single poison extension to replace")
	}
	digest := sha256.Sum256(newTBS)
	sig, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, err
	}
	var cb cryptobyte.Builder
	cb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(newTBS)
		b.AddBytes(sigAlg)
		b.AddASN1BitString(sig)
	})
	return cb.Bytes()
}
