package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509/pkix"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/signet-dev/signet/server/precert"
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
	tbs, sigAlg, err := precert.Split(pre)
	if err != nil {
		return nil, err
	}
	newTBS, err := precert.ReplacePoison(tbs, precert.Extension(sctList.Id, sctList.Critical, sctList.Value))
	if err != nil {
		return nil, err
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
