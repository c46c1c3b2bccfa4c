// Package trust loads Sigstore trust material — trusted_root.json and
// signing_config.json (protobuf-specs trustroot.v1, protojson) — into Go
// values ready for verification: parsed certificates, log keys by log ID,
// and validity windows.
package trust

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
	"net/url"
	"os"
	"time"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	prototrust "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// Trusted root media types understood by ParseRoot.
const (
	RootMediaTypeV01 = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
	RootMediaTypeV02 = "application/vnd.dev.sigstore.trustedroot.v0.2+json"
)

// TimeRange is a validity window. A zero End means open-ended.
type TimeRange struct {
	Start, End time.Time
}

// Contains reports whether t lies within the window (inclusive).
func (r TimeRange) Contains(t time.Time) bool {
	if t.Before(r.Start) {
		return false
	}
	return r.End.IsZero() || !t.After(r.End)
}

func (r TimeRange) String() string {
	end := "open-ended"
	if !r.End.IsZero() {
		end = r.End.UTC().Format(time.RFC3339)
	}
	return r.Start.UTC().Format(time.RFC3339) + " to " + end
}

// CA is a certificate authority (Fulcio) or timestamp authority (TSA).
type CA struct {
	URI     string
	Subject string
	// Leaf is the TSA signing certificate when the trusted root pins one
	// (the first chain entry is not a CA); nil for Fulcio CAs.
	Leaf          *x509.Certificate
	Intermediates []*x509.Certificate
	Root          *x509.Certificate
	ValidFor      TimeRange

	roots, intermediates *x509.CertPool
}

// Roots returns a pool holding the CA's root certificate.
func (c *CA) Roots() *x509.CertPool { return c.roots }

// IntermediatePool returns a pool of the CA's intermediate certificates.
func (c *CA) IntermediatePool() *x509.CertPool { return c.intermediates }

// Log is a transparency log instance (Rekor or CT).
type Log struct {
	BaseURL string
	// Origin is the checkpoint origin (signed-note key name): the host of
	// BaseURL, as rekor-tiles and sigstore-go use it.
	Origin string
	// ID is the log ID as in the trusted root and in bundles' tlog entries.
	ID []byte
	// CheckpointKeyID is the 4-byte signed-note key hash of the log key under
	// Origin (C2SP signed-note), computed from the key.
	CheckpointKeyID uint32
	HashAlgorithm   crypto.Hash
	PublicKey       crypto.PublicKey
	KeyDetails      protocommon.PublicKeyDetails
	ValidFor        TimeRange
	Operator        string
}

// Root is a loaded trusted_root.json.
type Root struct {
	MediaType string
	CAs       []*CA
	TSAs      []*CA
	// Logs and CTLogs are keyed by string(log ID bytes).
	Logs   map[string]*Log
	CTLogs map[string]*Log
}

// Log returns the Rekor log with the given log ID.
func (r *Root) Log(id []byte) (*Log, bool) {
	l, ok := r.Logs[string(id)]
	return l, ok
}

// ReadRootFile reads and parses a trusted_root.json file.
func ReadRootFile(path string) (*Root, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trusted root: %w", err)
	}
	r, err := ParseRoot(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// ParseRoot parses trusted_root.json content.
func ParseRoot(data []byte) (*Root, error) {
	var pb prototrust.TrustedRoot
	if err := protojson.Unmarshal(data, &pb); err != nil {
		return nil, fmt.Errorf("trusted root: not a trusted_root.json document: %v", err)
	}
	return FromProto(&pb)
}

// FromProto converts a protobuf TrustedRoot, checking every entry.
func FromProto(pb *prototrust.TrustedRoot) (*Root, error) {
	switch pb.GetMediaType() {
	case RootMediaTypeV01, RootMediaTypeV02:
	default:
		return nil, fmt.Errorf("trusted root: unsupported mediaType %q; expected %s or %s", pb.GetMediaType(), RootMediaTypeV01, RootMediaTypeV02)
	}
	r := &Root{MediaType: pb.GetMediaType(), Logs: map[string]*Log{}, CTLogs: map[string]*Log{}}
	for i, ca := range pb.GetCertificateAuthorities() {
		c, err := parseCA(ca, false)
		if err != nil {
			return nil, fmt.Errorf("trusted root: certificateAuthorities[%d] (%s): %w", i, ca.GetUri(), err)
		}
		r.CAs = append(r.CAs, c)
	}
	for i, ca := range pb.GetTimestampAuthorities() {
		c, err := parseCA(ca, true)
		if err != nil {
			return nil, fmt.Errorf("trusted root: timestampAuthorities[%d] (%s): %w", i, ca.GetUri(), err)
		}
		r.TSAs = append(r.TSAs, c)
	}
	for i, tl := range pb.GetTlogs() {
		l, err := parseLog(tl)
		if err != nil {
			return nil, fmt.Errorf("trusted root: tlogs[%d] (%s): %w", i, tl.GetBaseUrl(), err)
		}
		if _, dup := r.Logs[string(l.ID)]; dup {
			return nil, fmt.Errorf("trusted root: tlogs[%d]: duplicate logId %s", i, hex.EncodeToString(l.ID))
		}
		r.Logs[string(l.ID)] = l
	}
	for i, tl := range pb.GetCtlogs() {
		l, err := parseLog(tl)
		if err != nil {
			return nil, fmt.Errorf("trusted root: ctlogs[%d] (%s): %w", i, tl.GetBaseUrl(), err)
		}
		r.CTLogs[string(l.ID)] = l
	}
	if len(r.CAs) == 0 {
		return nil, errors.New("trusted root: no certificateAuthorities; keyless verification needs at least one Fulcio CA")
	}
	return r, nil
}

func timeRange(tr *protocommon.TimeRange) (TimeRange, error) {
	if tr == nil || tr.GetStart() == nil {
		return TimeRange{}, errors.New("validFor.start is missing")
	}
	r := TimeRange{Start: tr.GetStart().AsTime()}
	if tr.GetEnd() != nil {
		r.End = tr.GetEnd().AsTime()
		if r.End.Before(r.Start) {
			return TimeRange{}, fmt.Errorf("validFor.end %s is before validFor.start %s", r.End.Format(time.RFC3339), r.Start.Format(time.RFC3339))
		}
	}
	return r, nil
}

func parseCA(pb *prototrust.CertificateAuthority, tsa bool) (*CA, error) {
	raw := pb.GetCertChain().GetCertificates()
	if len(raw) == 0 {
		return nil, errors.New("certChain is empty")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, c := range raw {
		cert, err := x509.ParseCertificate(c.GetRawBytes())
		if err != nil {
			return nil, fmt.Errorf("certChain.certificates[%d] does not parse: %v", i, err)
		}
		certs[i] = cert
	}
	// The chain runs leaf-most first; each certificate must be issued by the next.
	for i := 0; i+1 < len(certs); i++ {
		if err := certs[i].CheckSignatureFrom(certs[i+1]); err != nil {
			return nil, fmt.Errorf("certChain.certificates[%d] (%s) is not signed by certificates[%d] (%s): %v", i, certs[i].Subject, i+1, certs[i+1].Subject, err)
		}
	}
	vf, err := timeRange(pb.GetValidFor())
	if err != nil {
		return nil, err
	}
	c := &CA{URI: pb.GetUri(), ValidFor: vf, Root: certs[len(certs)-1], roots: x509.NewCertPool(), intermediates: x509.NewCertPool()}
	if s := pb.GetSubject(); s != nil {
		c.Subject = fmt.Sprintf("O=%s, CN=%s", s.GetOrganization(), s.GetCommonName())
	}
	rest := certs[:len(certs)-1]
	if tsa && len(certs) > 1 && !certs[0].IsCA {
		c.Leaf, rest = certs[0], rest[1:]
	}
	c.Intermediates = rest
	c.roots.AddCert(c.Root)
	for _, ic := range rest {
		c.intermediates.AddCert(ic)
	}
	return c, nil
}

func parseLog(pb *prototrust.TransparencyLogInstance) (*Log, error) {
	id := pb.GetLogId().GetKeyId()
	if len(id) == 0 {
		return nil, errors.New("logId.keyId is missing")
	}
	pk := pb.GetPublicKey()
	if pk == nil || len(pk.GetRawBytes()) == 0 {
		return nil, errors.New("publicKey.rawBytes is missing")
	}
	key, err := x509.ParsePKIXPublicKey(pk.GetRawBytes())
	if err != nil {
		return nil, fmt.Errorf("publicKey.rawBytes is not a PKIX public key: %v", err)
	}
	if err := keyMatchesDetails(key, pk.GetKeyDetails()); err != nil {
		return nil, fmt.Errorf("publicKey: %w", err)
	}
	vf, err := timeRange(pk.GetValidFor())
	if err != nil {
		return nil, fmt.Errorf("publicKey: %w", err)
	}
	var hash crypto.Hash
	switch pb.GetHashAlgorithm() {
	case protocommon.HashAlgorithm_SHA2_256:
		hash = crypto.SHA256
	case protocommon.HashAlgorithm_SHA2_384:
		hash = crypto.SHA384
	case protocommon.HashAlgorithm_SHA2_512:
		hash = crypto.SHA512
	default:
		return nil, fmt.Errorf("unsupported hashAlgorithm %s; expected SHA2_256, SHA2_384 or SHA2_512", pb.GetHashAlgorithm())
	}
	u, err := url.Parse(pb.GetBaseUrl())
	if err != nil || u.Hostname() == "" {
		return nil, fmt.Errorf("baseUrl %q is not an absolute URL; the checkpoint origin is derived from its host", pb.GetBaseUrl())
	}
	l := &Log{
		BaseURL: pb.GetBaseUrl(), Origin: u.Hostname(), ID: id, HashAlgorithm: hash,
		PublicKey: key, KeyDetails: pk.GetKeyDetails(), ValidFor: vf, Operator: pb.GetOperator(),
	}
	l.CheckpointKeyID, err = NoteKeyHash(l.Origin, key)
	if err != nil {
		return nil, err
	}
	if ck := pb.GetCheckpointKeyId().GetKeyId(); len(ck) > 0 {
		if len(ck) < 4 || binary.BigEndian.Uint32(ck) != l.CheckpointKeyID {
			return nil, fmt.Errorf("checkpointKeyId %x does not match the key hash %08x computed from the public key and origin %q", ck, l.CheckpointKeyID, l.Origin)
		}
	}
	return l, nil
}

// NoteKeyHash computes the C2SP signed-note key hash for a log key under the
// given key name (checkpoint origin): SHA-256(name || "\n" || 0x01 || key)[:4]
// for Ed25519, SHA-256(PKIX DER)[:4] for ECDSA (the form rekor-tiles and
// protobuf-specs define for ECDSA), and the 0xff "PKIX-RSA-PKCS#1v1.5"
// type for RSA.
func NoteKeyHash(name string, key crypto.PublicKey) (uint32, error) {
	h := sha256.New()
	switch k := key.(type) {
	case ed25519.PublicKey:
		h.Write([]byte(name + "\n"))
		h.Write([]byte{0x01})
		h.Write(k)
	case *ecdsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return 0, err
		}
		h.Write(der)
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return 0, err
		}
		h.Write([]byte(name + "\n"))
		h.Write([]byte{0xff})
		h.Write([]byte("PKIX-RSA-PKCS#1v1.5"))
		h.Write(der)
	default:
		return 0, fmt.Errorf("unsupported log key type %T", key)
	}
	return binary.BigEndian.Uint32(h.Sum(nil)), nil
}

// keyMatchesDetails rejects a trusted root whose keyDetails contradict the key.
func keyMatchesDetails(key crypto.PublicKey, d protocommon.PublicKeyDetails) error {
	ok := false
	switch k := key.(type) {
	case ed25519.PublicKey:
		ok = d == protocommon.PublicKeyDetails_PKIX_ED25519 || d == protocommon.PublicKeyDetails_PKIX_ED25519_PH
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			ok = d == protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256
		case elliptic.P384():
			ok = d == protocommon.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384 || d == protocommon.PublicKeyDetails_PKIX_ECDSA_P384_SHA_256
		case elliptic.P521():
			ok = d == protocommon.PublicKeyDetails_PKIX_ECDSA_P521_SHA_512 || d == protocommon.PublicKeyDetails_PKIX_ECDSA_P521_SHA_256
		}
	case *rsa.PublicKey:
		switch d {
		case protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256, protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_3072_SHA256,
			protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V15_4096_SHA256, protocommon.PublicKeyDetails_PKIX_RSA_PKCS1V5:
			ok = true
		}
	}
	// Older trusted roots leave keyDetails unspecified; the key type decides.
	if !ok && d != protocommon.PublicKeyDetails_PUBLIC_KEY_DETAILS_UNSPECIFIED {
		return fmt.Errorf("keyDetails %s does not match the %T key", d, key)
	}
	return nil
}
