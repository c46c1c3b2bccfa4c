package tlog

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
)

func (s *signer) dsseRequest(t *testing.T, payload []byte) *rekorv2.DSSERequestV002 {
	t.Helper()
	const typ = "application/vnd.in-toto+json"
	d := sha256.Sum256(PAE(typ, payload))
	sig, err := ecdsa.SignASN1(rand.Reader, s.key.(*ecdsa.PrivateKey), d[:])
	if err != nil {
		t.Fatal(err)
	}
	hr := s.request(t, payload) // for its verifier
	return &rekorv2.DSSERequestV002{
		Envelope:  &protodsse.Envelope{PayloadType: typ, Payload: payload, Signatures: []*protodsse.Signature{{Sig: sig}}},
		Verifiers: []*rekorv2.Verifier{hr.Signature.Verifier},
	}
}

// A dsse v0.0.2 entry is logged with the payload's hash and the signature
// with its verifier, in the canonical form; what does not verify, or
// verifies nothing, is refused before anything is logged.
func TestDSSEEntries(t *testing.T) {
	tl := openTestLog(t, "", nil, nil)
	s := newECDSASigner(t)
	payload := []byte(`{"_type":"https://in-toto.io/Statement/v1"}`)
	tle, e, dup, err := tl.AppendDSSE(context.Background(), s.dsseRequest(t, payload))
	if err != nil || dup {
		t.Fatalf("append: %v (dup %v)", err, dup)
	}
	sum := sha256.Sum256(payload)
	body := string(tle.GetCanonicalizedBody())
	if kv := tle.GetKindVersion(); kv.GetKind() != "dsse" || kv.GetVersion() != "0.0.2" ||
		!strings.HasPrefix(body, `{"apiVersion":"0.0.2","kind":"dsse","spec":{"dsseV002":{"payloadHash":{"algorithm":"SHA2_256","digest":"`) ||
		!strings.Contains(body, b64(sum[:])) || len(e.Verifiers) != 1 || tle.GetInclusionProof() == nil {
		t.Fatalf("entry %v: %s", kv, body)
	}
	if _, _, dup, err := tl.AppendDSSE(context.Background(), s.dsseRequest(t, payload)); err != nil || dup {
		// ECDSA signatures differ each time: a new entry.
		t.Errorf("second signing: %v, dup %v", err, dup)
	}

	other := newECDSASigner(t)
	cases := map[string]struct {
		edit func(*rekorv2.DSSERequestV002)
		want string
	}{
		"payload changed": {func(r *rekorv2.DSSERequestV002) { r.Envelope.Payload = []byte("{}") }, "does not verify over the DSSE PAE"},
		"another key only": {func(r *rekorv2.DSSERequestV002) {
			r.Verifiers = []*rekorv2.Verifier{other.request(t, nil).Signature.Verifier}
		}, "does not verify over the DSSE PAE"},
		"an unused verifier": {func(r *rekorv2.DSSERequestV002) {
			r.Verifiers = append(r.Verifiers, other.request(t, nil).Signature.Verifier)
		}, "verifies none of the envelope's signatures"},
		"no signatures": {func(r *rekorv2.DSSERequestV002) { r.Envelope.Signatures = nil }, "envelope has no signatures"},
		"no verifiers":  {func(r *rekorv2.DSSERequestV002) { r.Verifiers = nil }, "verifiers is empty"},
		"no type":       {func(r *rekorv2.DSSERequestV002) { r.Envelope.PayloadType = "" }, "payloadType is empty"},
		"empty sig":     {func(r *rekorv2.DSSERequestV002) { r.Envelope.Signatures[0].Sig = nil }, "sig is empty"},
		"bad keyDetails": {func(r *rekorv2.DSSERequestV002) {
			r.Verifiers[0].KeyDetails = commonv1.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384
		}, "keyDetails is PKIX_ECDSA_P384_SHA_384"},
	}
	for name, c := range cases {
		r := s.dsseRequest(t, payload)
		c.edit(r)
		before := tl.size(t)
		if _, _, _, err := tl.AppendDSSE(context.Background(), r); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a refusal saying %q", name, err, c.want)
		}
		if after := tl.size(t); after != before {
			t.Errorf("%s: the log grew from %d to %d", name, before, after)
		}
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// size is the number of entries sequenced, integrated or not.
func (tl *testLog) size(t *testing.T) uint64 {
	t.Helper()
	n, err := tl.reader.NextIndex(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}
