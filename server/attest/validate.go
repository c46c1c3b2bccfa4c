package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	intoto "github.com/in-toto/attestation/go/v1"
	commonpb "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	dssepb "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"

	sintoto "github.com/signet-dev/signet/core/intoto"
)

// InTotoPayloadType is the only DSSE payload type the store accepts.
const InTotoPayloadType = sintoto.PayloadType

// Subject is one artifact an attestation is about.
type Subject struct {
	Name   string            `json:"name,omitempty"`
	Digest map[string]string `json:"digest"`
}

// submission is a validated attestation, ready to be logged.
type submission struct {
	id            string
	envelope      *dssepb.Envelope
	verifier      *rekorv2.Verifier
	cert          *x509.Certificate // the verifier's certificate; nil for a key
	request       *rekorv2.HashedRekordRequestV002
	statementType string
	predicateType string
	subjects      []Subject
	identity      string
	issuer        string
}

// keyScheme is what a Rekor v2 keyDetails value means for hashedrekord: the
// hash the digest is computed with and the key the verifier must hold.
type keyScheme struct {
	hash  crypto.Hash
	check func(crypto.PublicKey) error
}

func ecdsaKey(curve elliptic.Curve) func(crypto.PublicKey) error {
	return func(pub crypto.PublicKey) error {
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || k.Curve != curve {
			return fmt.Errorf("the key is %s, not an ECDSA %s key", describeKey(pub), curve.Params().Name)
		}
		return nil
	}
}

func rsaKey(bits int) func(crypto.PublicKey) error {
	return func(pub crypto.PublicKey) error {
		k, ok := pub.(*rsa.PublicKey)
		if !ok || k.N.BitLen() != bits {
			return fmt.Errorf("the key is %s, not an RSA-%d key", describeKey(pub), bits)
		}
		return nil
	}
}

// keySchemes lists the keyDetails whose signatures can be checked from the
// digest alone, which is all hashedrekord carries (so not pure Ed25519).
var keySchemes = map[commonpb.PublicKeyDetails]keyScheme{
	commonpb.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256:       {crypto.SHA256, ecdsaKey(elliptic.P256())},
	commonpb.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384:       {crypto.SHA384, ecdsaKey(elliptic.P384())},
	commonpb.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512:       {crypto.SHA512, ecdsaKey(elliptic.P521())},
	commonpb.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256: {crypto.SHA256, rsaKey(2048)},
	commonpb.PublicKeyDetails_PKIX_RSA_PKCS1V15_3072_SHA256: {crypto.SHA256, rsaKey(3072)},
	commonpb.PublicKeyDetails_PKIX_RSA_PKCS1V15_4096_SHA256: {crypto.SHA256, rsaKey(4096)},
	commonpb.PublicKeyDetails_PKIX_ED25519_PH: {crypto.SHA512, func(pub crypto.PublicKey) error {
		if _, ok := pub.(ed25519.PublicKey); !ok {
			return fmt.Errorf("the key is %s, not an Ed25519 key", describeKey(pub))
		}
		return nil
	}},
}

func supportedKeyDetails() string {
	var names []string
	for d := range keySchemes {
		names = append(names, d.String())
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func describeKey(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	default:
		return fmt.Sprintf("%T", pub)
	}
}

// verifySignature checks sig over a digest made with scheme.hash.
func verifySignature(pub crypto.PublicKey, h crypto.Hash, digest, sig []byte) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return errors.New("invalid ECDSA signature")
		}
		return nil
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, h, digest, sig)
	case ed25519.PublicKey:
		return ed25519.VerifyWithOptions(k, digest, sig, &ed25519.Options{Hash: crypto.SHA512})
	}
	return fmt.Errorf("unsupported key type %T", pub)
}

// validator holds what validation needs from the store's options.
type validator struct {
	roots         *x509.CertPool
	intermediates *x509.CertPool
}

// validate checks everything about a submission that can be checked without
// the log, and builds the hashedrekord request that will be logged. Its
// errors are the caller's fault and name what to fix.
func (v validator) validate(env *dssepb.Envelope, ver *rekorv2.Verifier) (*submission, error) {
	if env == nil {
		return nil, errors.New(`the request has no "envelope"; send the DSSE envelope as it appears in a Sigstore bundle's dsseEnvelope`)
	}
	if ver == nil {
		return nil, errors.New(`the request has no "verifier"; send {"x509Certificate":{"rawBytes":...}} or {"publicKey":{"rawBytes":...}} with "keyDetails"`)
	}
	if env.GetPayloadType() != InTotoPayloadType {
		return nil, fmt.Errorf("envelope payloadType is %q; the attestation store takes in-toto statements, payloadType %q", env.GetPayloadType(), InTotoPayloadType)
	}
	if n := len(env.GetSignatures()); n != 1 {
		return nil, fmt.Errorf("envelope has %d signatures; send exactly one, made by the key of the verifier, as the log entry records a single signature", n)
	}
	sig := env.GetSignatures()[0].GetSig()
	if len(sig) == 0 {
		return nil, errors.New("envelope signature 0 has an empty sig")
	}

	pub, cert, err := verifierKey(ver)
	if err != nil {
		return nil, err
	}
	details := ver.GetKeyDetails()
	if details == commonpb.PublicKeyDetails_PUBLIC_KEY_DETAILS_UNSPECIFIED {
		return nil, fmt.Errorf("verifier.keyDetails is missing; name the signing algorithm, one of %s", supportedKeyDetails())
	}
	scheme, ok := keySchemes[details]
	if !ok {
		return nil, fmt.Errorf("verifier.keyDetails %s cannot be logged as a hashedrekord over the DSSE PAE; use one of %s", details, supportedKeyDetails())
	}
	if err := scheme.check(pub); err != nil {
		return nil, fmt.Errorf("verifier.keyDetails is %s but %v; send the keyDetails matching the signing key", details, err)
	}

	// cosign v3 and sigstore-js log DSSE as hashedrekord over the PAE; the
	// log verifies the signature over this digest, so we must too. The PAE
	// is hashed as it is written, not built: the payload may be tens of MB.
	h := scheme.hash.New()
	fmt.Fprintf(h, "DSSEv1 %d %s %d ", len(env.GetPayloadType()), env.GetPayloadType(), len(env.GetPayload()))
	h.Write(env.GetPayload())
	digest := h.Sum(nil)
	if err := verifySignature(pub, scheme.hash, digest, sig); err != nil {
		return nil, fmt.Errorf("envelope signature does not verify over the DSSE pre-authentication encoding with the verifier's key (%v); sign PAE(payloadType, payload) with the key of the certificate you send", err)
	}
	var identity, issuer string
	if cert != nil {
		if err := v.checkChain(cert); err != nil {
			return nil, err
		}
		if identity, issuer, err = signerIdentity(cert); err != nil {
			return nil, fmt.Errorf("verifier certificate: %v", err)
		}
	}
	// Only a signed envelope from a vouched-for signer is parsed: the
	// statement's predicate is the large part, and decoding it is the
	// costly step an anonymous client must not be able to trigger.
	st, err := parseStatement(env.GetPayload())
	if err != nil {
		return nil, err
	}

	s := &submission{
		identity:      identity,
		issuer:        issuer,
		envelope:      env,
		verifier:      ver,
		cert:          cert,
		statementType: st.GetType(),
		predicateType: st.GetPredicateType(),
		subjects:      subjects(st),
		request: &rekorv2.HashedRekordRequestV002{
			Digest:    digest,
			Signature: &rekorv2.Signature{Content: sig, Verifier: ver},
		},
	}
	s.id = attestationID(details, digest, sig, ver)
	return s, nil
}

func (v validator) checkChain(cert *x509.Certificate) error {
	if v.roots == nil {
		return nil
	}
	// Fulcio certificates live minutes; what matters here is who issued it,
	// so check the chain at its issuance. The signing time is bound by the
	// log entry and timestamps, which verifiers check.
	_, err := cert.Verify(x509.VerifyOptions{
		Roots:         v.roots,
		Intermediates: v.intermediates,
		CurrentTime:   cert.NotBefore.Add(time.Second),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	})
	if err != nil {
		return fmt.Errorf("verifier certificate was not issued by this server's certificate authority (%v); get a signing certificate from this signet server's /api/v2/signingCert", err)
	}
	return nil
}

func verifierKey(ver *rekorv2.Verifier) (crypto.PublicKey, *x509.Certificate, error) {
	switch {
	case ver.GetX509Certificate() != nil:
		raw := ver.GetX509Certificate().GetRawBytes()
		if len(raw) == 0 {
			return nil, nil, errors.New("verifier.x509Certificate.rawBytes is empty; send the base64 DER signing certificate")
		}
		cert, err := x509.ParseCertificate(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("verifier.x509Certificate.rawBytes is not a DER X.509 certificate (%v); send the base64 DER signing certificate, not PEM", err)
		}
		return cert.PublicKey, cert, nil
	case ver.GetPublicKey() != nil:
		raw := ver.GetPublicKey().GetRawBytes()
		if len(raw) == 0 {
			return nil, nil, errors.New("verifier.publicKey.rawBytes is empty; send the base64 DER SubjectPublicKeyInfo")
		}
		pub, err := x509.ParsePKIXPublicKey(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("verifier.publicKey.rawBytes is not a DER PKIX public key (%v); send the base64 DER SubjectPublicKeyInfo, not PEM", err)
		}
		return pub, nil, nil
	}
	return nil, nil, errors.New(`verifier has neither "x509Certificate" nor "publicKey"; send the signer's certificate or public key`)
}

func parseStatement(payload []byte) (*intoto.Statement, error) {
	if len(payload) == 0 {
		return nil, errors.New("envelope payload is empty; it must be a base64 in-toto statement")
	}
	// The in-toto spec says consumers ignore fields they do not know. The
	// predicate is checked for being one JSON object, not decoded: only the
	// subjects and types are indexed, and a protobuf Struct of a 1 MB SBOM
	// costs 60 ms.
	st, err := sintoto.DecodeStatementHeader(payload)
	if err != nil {
		return nil, fmt.Errorf("envelope payload is not an in-toto statement (%v); send a JSON statement with _type, subject, predicateType and predicate", err)
	}
	err = st.Validate()
	switch {
	case err == nil, errors.Is(err, intoto.ErrPredicateRequired):
		// The predicate is optional in the in-toto spec; only its type is
		// needed to index the statement.
	case errors.Is(err, intoto.ErrInvalidStatementType):
		return nil, fmt.Errorf("in-toto statement _type is %q; use %q (or the older https://in-toto.io/Statement/v0.1)", st.GetType(), intoto.StatementTypeUri)
	case errors.Is(err, intoto.ErrSubjectRequired):
		return nil, errors.New("in-toto statement has no subject; list the artifacts it is about with their digests")
	case errors.Is(err, intoto.ErrDigestRequired), errors.Is(err, intoto.ErrRDRequiredField):
		return nil, errors.New("an in-toto statement subject has no digest; give every subject a digest such as {\"sha256\": \"<hex>\"}")
	case errors.Is(err, intoto.ErrPredicateTypeRequired):
		return nil, errors.New("in-toto statement has no predicateType; name the predicate, e.g. https://slsa.dev/provenance/v1")
	default:
		return nil, fmt.Errorf("in-toto statement subject: %v", err)
	}
	return st, nil
}

func subjects(st *intoto.Statement) []Subject {
	out := make([]Subject, 0, len(st.GetSubject()))
	for _, rd := range st.GetSubject() {
		d := make(map[string]string, len(rd.GetDigest()))
		for alg, v := range rd.GetDigest() {
			d[alg] = normalizeDigestValue(alg, v)
		}
		out = append(out, Subject{Name: rd.GetName(), Digest: d})
	}
	return out
}

// normalizeDigestValue lower-cases hex digests of the algorithms in-toto
// defines as hex, so queries match whatever case the producer used.
func normalizeDigestValue(alg, v string) string {
	if intoto.HashAlgorithm(alg).HexLength() > 0 {
		return strings.ToLower(v)
	}
	return v
}

// attestationID names an attestation by what its log entry contains, so the
// same signed envelope always has the same id. Fields are length-prefixed
// so no two inputs share an encoding.
func attestationID(details commonpb.PublicKeyDetails, digest, sig []byte, ver *rekorv2.Verifier) string {
	var key []byte
	switch {
	case ver.GetX509Certificate() != nil:
		key = append([]byte("x509:"), ver.GetX509Certificate().GetRawBytes()...)
	default:
		key = append([]byte("pkix:"), ver.GetPublicKey().GetRawBytes()...)
	}
	h := sha256.New()
	h.Write([]byte("signet attestation v1\n"))
	for _, part := range [][]byte{[]byte(details.String()), digest, sig, key} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil))
}
