package verify

import (
	"crypto/x509"
	"time"

	"github.com/signet-dev/signet/core/trust"
)

// Hooks for the fuzz targets in verify_test: each input the verifier reads
// on its own, without a whole bundle around it.

// ParseBody reads a log entry body as checkBody does.
func ParseBody(body []byte) error {
	_, err := parseBody(body)
	return err
}

// TimestampToken verifies one RFC 3161 timestamp as the verifier does before
// binding it, and returns the token (CMS ContentInfo) it accepted.
func TimestampToken(root *trust.Root, der []byte) ([]byte, error) {
	st, err := verifyTimestampToken(root, der)
	if err != nil {
		return nil, err
	}
	return st.ts.RawToken, nil
}

// AcceptLeaf runs the keyless certificate checks in the verifier's order:
// chain at time at, leaf profile, identity.
func AcceptLeaf(root *trust.Root, der []byte, at time.Time) (Identity, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Identity{}, certError(err)
	}
	if _, err := verifyChain(root, cert, []time.Time{at}); err != nil {
		return Identity{}, err
	}
	if err := checkLeafProfile(cert); err != nil {
		return Identity{}, err
	}
	return identityOf(cert)
}
