//go:build !cgo

package keyref

import "crypto"

func openPKCS11(u *PKCS11URI, _ func(string) string) (crypto.Signer, error) {
	return nil, &Error{Ref: u.Raw, Cause: ErrNoPKCS11, Detail: "use a build made with CGO_ENABLED=1"}
}

// Algorithm of a key GeneratePKCS11 makes.
type Algorithm string

const (
	ECDSAP256 Algorithm = "ecdsa-p256"
	Ed25519   Algorithm = "ed25519"
)

// GeneratePKCS11 needs cgo.
func GeneratePKCS11(ref string, _ Algorithm, _ Options) (crypto.Signer, error) {
	u, err := ParsePKCS11(ref)
	if err != nil {
		return nil, err
	}
	return openPKCS11(u, nil)
}
