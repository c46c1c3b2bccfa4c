package verify

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/digitorus/pkcs7"
	"github.com/digitorus/timestamp"

	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/core/verify/tstoken"
)

// signedTime is an RFC 3161 timestamp whose token verified against a TSA of
// the trusted root. It is bound to the bundle only once its message imprint
// matches the signature (see bindTimestamp).
type signedTime struct {
	ts     *timestamp.Timestamp
	tsa    *trust.CA
	resp   []byte            // as the bundle holds it: a TimeStampResp or a bare token
	token  []byte            // the strict-DER token
	signer *x509.Certificate // the TSA certificate that verified it
}

// verifyTimestampToken checks the TSA's signature and chain for one RFC 3161
// timestamp (a TimeStampResp as Sigstore stores it, or a bare token).
func verifyTimestampToken(root *trust.Root, der []byte) (*signedTime, error) {
	// Strict DER first: the parsers below accept BER and unsigned fields
	// that say anything, so two spellings of one token would both verify.
	// Some clients store the TimeStampToken rather than the full response;
	// Check takes either and returns the token.
	token, err := tstoken.Check(der)
	if err != nil {
		return nil, err
	}
	ts, err := timestamp.Parse(token)
	if err != nil {
		return nil, fmt.Errorf("not an RFC 3161 timestamp token: %v", err)
	}
	if len(root.TSAs) == 0 {
		return nil, errors.New("the trusted root lists no timestamp authorities")
	}
	var errs []string
	for _, tsa := range root.TSAs {
		signer, err := verifyTokenWith(tsa, ts)
		if err == nil {
			return &signedTime{ts: ts, tsa: tsa, resp: der, token: token, signer: signer}, nil
		}
		errs = append(errs, fmt.Sprintf("%s: %v", tsa.URI, err))
	}
	return nil, fmt.Errorf("no trusted TSA verifies it: %s", strings.Join(errs, "; "))
}

func verifyTokenWith(tsa *trust.CA, ts *timestamp.Timestamp) (*x509.Certificate, error) {
	if !tsa.ValidFor.Contains(ts.Time) {
		return nil, fmt.Errorf("time %s is outside the TSA's validity %s", ts.Time.UTC().Format(time.RFC3339), tsa.ValidFor)
	}
	p7, err := pkcs7.Parse(ts.RawToken)
	if err != nil {
		return nil, fmt.Errorf("token: %v", err)
	}
	// The token usually omits the TSA certificate; supply the pinned leaf and
	// intermediates from the trusted root so the signer can be found. What a
	// token embeds is unsigned, so it may hold only certificates of the
	// trusted chain (or, when the root pins no leaf, the signer itself).
	embedded := p7.Certificates
	if tsa.Leaf != nil {
		p7.Certificates = append(p7.Certificates, tsa.Leaf)
	}
	p7.Certificates = append(p7.Certificates, tsa.Intermediates...)
	signer := p7.GetOnlySigner()
	if signer == nil {
		return nil, errors.New("token has no single identifiable signer certificate")
	}
	if tsa.Leaf != nil && !bytes.Equal(signer.Raw, tsa.Leaf.Raw) {
		return nil, fmt.Errorf("signed by %q, not by the TSA certificate pinned in the trusted root", signer.Subject)
	}
	for _, c := range embedded {
		if !inChain(tsa, c) && (tsa.Leaf != nil || c != signer) {
			return nil, fmt.Errorf("token embeds certificate %q (serial %x), which is not part of the TSA's trusted chain", c.Subject, c.SerialNumber)
		}
	}
	if !hasEKU(signer, x509.ExtKeyUsageTimeStamping) {
		return nil, fmt.Errorf("signer %q lacks the timeStamping extended key usage", signer.Subject)
	}
	err = p7.VerifyWithOpts(x509.VerifyOptions{
		Roots:         tsa.Roots(),
		Intermediates: tsa.IntermediatePool(),
		CurrentTime:   ts.Time,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping},
	})
	if err != nil {
		return nil, fmt.Errorf("token signature or chain: %v", err)
	}
	return signer, nil
}

// bindTimestamp checks that the timestamp covers sig: the message imprint
// must be the hash of the signature bytes, as Sigstore clients request it.
func bindTimestamp(st *signedTime, sig []byte) error {
	// sigstore-go's rule: SHA-1 imprints are collidable, so a timestamp over
	// one proves nothing about which signature existed.
	switch st.ts.HashAlgorithm {
	case crypto.SHA256, crypto.SHA384, crypto.SHA512:
	default:
		return &Error{Check: CheckTimestamp, Msg: fmt.Sprintf("message imprint uses %v; only SHA-256, SHA-384 and SHA-512 imprints are accepted (request the timestamp with one of those)", st.ts.HashAlgorithm)}
	}
	h := st.ts.HashAlgorithm.New()
	h.Write(sig)
	if sum := h.Sum(nil); !bytes.Equal(sum, st.ts.HashedMessage) {
		return &Error{Check: CheckTimestamp, Msg: "message imprint is not the hash of the bundle's signature",
			Expected: fmt.Sprintf("%x", sum), Found: fmt.Sprintf("%x", st.ts.HashedMessage)}
	}
	return nil
}

func inChain(tsa *trust.CA, c *x509.Certificate) bool {
	if tsa.Leaf != nil && bytes.Equal(c.Raw, tsa.Leaf.Raw) || bytes.Equal(c.Raw, tsa.Root.Raw) {
		return true
	}
	for _, ic := range tsa.Intermediates {
		if bytes.Equal(c.Raw, ic.Raw) {
			return true
		}
	}
	return false
}

func hasEKU(c *x509.Certificate, want x509.ExtKeyUsage) bool {
	for _, u := range c.ExtKeyUsage {
		if u == want {
			return true
		}
	}
	return false
}
