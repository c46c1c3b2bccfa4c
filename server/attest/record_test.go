package attest

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	dssepb "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/proto"
)

// A record is written as one JSON object, fields in recordJSON's order
// (the envelope spliced in after the ID), and reads back as it was.
func TestRecordJSON(t *testing.T) {
	r := &Record{
		ID:            "abc",
		Envelope:      &dssepb.Envelope{Payload: []byte(`{"_type":"x"}`), PayloadType: "application/vnd.in-toto+json", Signatures: []*dssepb.Signature{{Sig: []byte{1, 2}}}},
		Verifier:      &rekorv2.Verifier{},
		Entry:         &rekorv1.TransparencyLogEntry{LogIndex: 7},
		StatementType: "https://in-toto.io/Statement/v1", PredicateType: "https://cyclonedx.org/bom",
		Subjects: []Subject{{Name: "app", Digest: map[string]string{"sha256": "00"}}},
		Identity: "id", Issuer: "iss", StoredTime: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), SignedTimestamp: []byte{3},
	}
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(raw) {
		t.Fatalf("not JSON: %s", raw)
	}
	var keys []string
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.Token()
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var skip json.RawMessage
		dec.Decode(&skip)
	}
	want := []string{"attestationId", "envelope", "verifier", "transparencyLogEntry", "statementType", "predicateType", "subjects", "identity", "issuer", "storedTime", "signedTimestamp"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys %v, want %v", keys, want)
	}
	var back Record
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(back.Envelope, r.Envelope) || !proto.Equal(back.Entry, r.Entry) || back.ID != r.ID || !reflect.DeepEqual(back.Subjects, r.Subjects) || !back.StoredTime.Equal(r.StoredTime) || back.PredicateType != r.PredicateType {
		t.Errorf("read back %+v", back)
	}
}
