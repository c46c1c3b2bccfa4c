package attest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	dssepb "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Record is one stored attestation: the whole envelope and the log entry
// that makes it transparent, plus what it is indexed by.
type Record struct {
	ID       string
	Envelope *dssepb.Envelope
	Verifier *rekorv2.Verifier
	// Entry is the hashedrekord v0.0.2 entry over the envelope's PAE, with
	// its inclusion proof and checkpoint, as it goes into a Sigstore bundle.
	Entry         *rekorv1.TransparencyLogEntry
	StatementType string
	PredicateType string
	Subjects      []Subject
	// Identity and Issuer are the certificate's SAN and OIDC issuer; empty
	// for a public-key verifier.
	Identity   string
	Issuer     string
	StoredTime time.Time
	// SignedTimestamp is the DER RFC 3161 TimeStampResp the server's TSA
	// issued over the envelope's signature when the record was stored, as a
	// bundle's rfc3161Timestamps[].signedTimestamp holds it. Nil for records
	// stored before the store kept timestamps, by a store without a TSA, or
	// after the signing certificate had expired (see Store.submit).
	SignedTimestamp []byte
}

// recordJSON is the wire and storage form of a Record; the protobuf parts use
// protojson so they read exactly as in a Sigstore bundle.
type recordJSON struct {
	ID       string          `json:"attestationId"`
	Envelope json.RawMessage `json:"envelope"`
	recordTail
}

// recordTail is what follows the envelope, marshalled apart from it.
type recordTail struct {
	Verifier      json.RawMessage `json:"verifier"`
	Entry         json.RawMessage `json:"transparencyLogEntry"`
	StatementType string          `json:"statementType"`
	PredicateType string          `json:"predicateType"`
	Subjects      []Subject       `json:"subjects"`
	Identity      string          `json:"identity,omitempty"`
	Issuer        string          `json:"issuer,omitempty"`
	StoredTime    time.Time       `json:"storedTime"`
	// Standard base64, as in a bundle; absent from records stored without.
	SignedTimestamp []byte `json:"signedTimestamp,omitempty"`
}

// answerJSON writes every field, whatever its value: a client must not
// have to know that a missing logIndex means entry 0.
var answerJSON = protojson.MarshalOptions{EmitUnpopulated: true}

// MarshalJSON renders the record as the API returns it.
func (r *Record) MarshalJSON() ([]byte, error) {
	w := recordTail{
		StatementType:   r.StatementType,
		PredicateType:   r.PredicateType,
		Subjects:        r.Subjects,
		Identity:        r.Identity,
		Issuer:          r.Issuer,
		StoredTime:      r.StoredTime.UTC(),
		SignedTimestamp: r.SignedTimestamp,
	}
	env, err := answerJSON.Marshal(r.Envelope)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	if w.Verifier, err = answerJSON.Marshal(r.Verifier); err != nil {
		return nil, fmt.Errorf("verifier: %w", err)
	}
	if w.Entry, err = answerJSON.Marshal(r.Entry); err != nil {
		return nil, fmt.Errorf("transparency log entry: %w", err)
	}
	// The envelope (megabytes for an SBOM) is spliced in after the ID, where
	// recordJSON puts it, rather than handed to json.Marshal, which would
	// scan protojson's output again.
	rest, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	id, err := json.Marshal(r.ID)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(rest)+len(env)+len(id)+32)
	out = append(out, `{"attestationId":`...)
	out = append(out, id...)
	out = append(out, `,"envelope":`...)
	out = append(out, bytes.TrimSpace(env)...)
	out = append(out, ',')
	return append(out, rest[1:]...), nil
}

// UnmarshalJSON reads a record in the form MarshalJSON writes.
func (r *Record) UnmarshalJSON(b []byte) error {
	var w recordJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	out := Record{
		ID:              w.ID,
		Envelope:        &dssepb.Envelope{},
		Verifier:        &rekorv2.Verifier{},
		Entry:           &rekorv1.TransparencyLogEntry{},
		StatementType:   w.StatementType,
		PredicateType:   w.PredicateType,
		Subjects:        w.Subjects,
		Identity:        w.Identity,
		Issuer:          w.Issuer,
		StoredTime:      w.StoredTime,
		SignedTimestamp: w.SignedTimestamp,
	}
	for name, part := range map[string]struct {
		raw json.RawMessage
		msg proto.Message
	}{
		"envelope":             {w.Envelope, out.Envelope},
		"verifier":             {w.Verifier, out.Verifier},
		"transparencyLogEntry": {w.Entry, out.Entry},
	} {
		if err := protojson.Unmarshal(part.raw, part.msg); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	*r = out
	return nil
}
