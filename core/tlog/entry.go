package tlog

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/signet-dev/signet/core/certext"
)

// Entry is one log entry read from the entry bundles and proven included in
// the verified checkpoint.
type Entry struct {
	Index    uint64
	Body     []byte   // as logged: for Rekor v2, canonical JSON of a rekor Entry
	LeafHash []byte   // RFC 6962, of Body
	Proof    [][]byte // verified inclusion proof in Log.Checkpoint()
}

// Entry reads entry index and proves it is in the checkpoint's tree.
// Errors: ErrBeyondTree; *InclusionError when the entry bundle or the tiles
// do not match the checkpoint; otherwise they could not be read.
func (l *Log) Entry(ctx context.Context, index uint64) (*Entry, error) {
	if err := l.checkIndex(index); err != nil {
		return nil, err
	}
	const width = 256 // entries per bundle (C2SP tlog-tiles)
	eb, err := client.GetEntryBundle(ctx, l.fetcher.ReadEntryBundle, index/width, l.cp.Size)
	if err != nil {
		return nil, fmt.Errorf("log %s: %w", l.trusted.BaseURL, err)
	}
	if int(index%width) >= len(eb.Entries) {
		return nil, fmt.Errorf("log %s: entry bundle %d holds %d entries, not entry %d", l.trusted.BaseURL, index/width, len(eb.Entries), index)
	}
	body := eb.Entries[index%width]
	leaf := rfc6962.DefaultHasher.HashLeaf(body)
	hashes, err := l.InclusionProof(ctx, index, leaf)
	if err != nil {
		return nil, err
	}
	return &Entry{Index: index, Body: body, LeafHash: leaf, Proof: hashes}, nil
}

// Description is what a Rekor v2 entry body says was logged.
type Description struct {
	Kind       string // "hashedrekord" or "dsse"
	APIVersion string
	Digest     string // "<alg>:<hex>" of the artifact or DSSE payload
	KeyDetails string // the signing algorithm, as protobuf-specs names it
	// Identity and Issuer come from a logged certificate; PublicKeySHA256
	// (hex, of its DER) identifies a logged public key.
	Identity        string
	Issuer          string
	PublicKeySHA256 string
}

// Describe reads the entry's body as a Rekor v2 entry. It says what the
// log recorded, not that the signature in it is valid.
func (e *Entry) Describe() (*Description, error) {
	var ent rekorv2.Entry
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(e.Body, &ent); err != nil {
		return nil, fmt.Errorf("entry %d is not a Rekor v2 entry: %v", e.Index, err)
	}
	d := &Description{Kind: ent.GetKind(), APIVersion: ent.GetApiVersion()}
	var sig *rekorv2.Signature
	if hr := ent.GetSpec().GetHashedRekordV002(); hr != nil {
		d.Digest = digestString(hr.GetData())
		sig = hr.GetSignature()
	} else if ds := ent.GetSpec().GetDsseV002(); ds != nil {
		d.Digest = digestString(ds.GetPayloadHash())
		if len(ds.GetSignatures()) > 0 {
			sig = ds.GetSignatures()[0]
		}
	}
	v := sig.GetVerifier()
	d.KeyDetails = v.GetKeyDetails().String()
	if der := v.GetX509Certificate().GetRawBytes(); der != nil {
		// A certificate that does not parse, or names no single signer,
		// leaves the identity empty: the entry is still shown.
		if c, err := x509.ParseCertificate(der); err == nil {
			d.Identity, _ = certext.SubjectAltName(c)
			if ext, err := certext.FromCertificate(c); err == nil {
				d.Issuer = ext.Issuer
			}
		}
	} else if der := v.GetPublicKey().GetRawBytes(); der != nil {
		s := sha256.Sum256(der)
		d.PublicKeySHA256 = hex.EncodeToString(s[:])
	}
	return d, nil
}

// hashNames spell digest algorithms as in-toto and Rekor v1 do.
var hashNames = map[protocommon.HashAlgorithm]string{
	protocommon.HashAlgorithm_SHA2_256: "sha256", protocommon.HashAlgorithm_SHA2_384: "sha384", protocommon.HashAlgorithm_SHA2_512: "sha512",
}

func digestString(h *protocommon.HashOutput) string {
	name, ok := hashNames[h.GetAlgorithm()]
	if !ok {
		name = strings.ToLower(h.GetAlgorithm().String())
	}
	return name + ":" + hex.EncodeToString(h.GetDigest())
}
