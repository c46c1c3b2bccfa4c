// Package intoto builds in-toto Statement v1 attestations and signs them as
// DSSE envelopes, with the in-toto attestation Go types and the DSSE
// implementation of go-securesystemslib.
package intoto

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/signet-dev/signet/core/signer"
)

// PayloadType is the DSSE payload type of in-toto statements.
const PayloadType = "application/vnd.in-toto+json"

// Subject names an artifact and its digests (algorithm → lower-case hex).
type Subject struct {
	Name   string
	Digest map[string]string
}

// NewStatement builds and validates a Statement v1. The predicate must be a
// JSON object; SLSA provenance v1, SPDX and CycloneDX predicates are also
// checked to really be of that kind.
func NewStatement(subjects []Subject, predicateType string, predicate []byte) (*intoto.Statement, error) {
	if len(subjects) == 0 {
		return nil, errors.New("statement: at least one subject is required")
	}
	st := &intoto.Statement{Type: intoto.StatementTypeUri, PredicateType: predicateType}
	for i, s := range subjects {
		if len(s.Digest) == 0 {
			return nil, fmt.Errorf("statement: subject[%d] (%s) has no digest", i, s.Name)
		}
		for alg, v := range s.Digest {
			if n := intoto.HashAlgorithm(alg).HexLength(); n > 0 {
				if b, err := hex.DecodeString(v); err != nil || len(b) != n || strings.ToLower(v) != v {
					return nil, fmt.Errorf("statement: subject[%d] (%s): %s digest %q is not %d lower-case hex characters", i, s.Name, alg, v, 2*n)
				}
			}
		}
		st.Subject = append(st.Subject, &intoto.ResourceDescriptor{Name: s.Name, Digest: s.Digest})
	}
	pred, err := checkPredicate(predicateType, predicate)
	if err != nil {
		return nil, err
	}
	st.Predicate = pred
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("statement: %w", err)
	}
	return st, nil
}

func checkPredicate(predicateType string, predicate []byte) (*structpb.Struct, error) {
	trimmed := bytes.TrimSpace(predicate)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, fmt.Errorf("predicate for %s must be a JSON object", predicateType)
	}
	var pred structpb.Struct
	if err := protojson.Unmarshal(trimmed, &pred); err != nil {
		return nil, fmt.Errorf("predicate for %s is not valid JSON: %v", predicateType, err)
	}
	fields := pred.GetFields()
	str := func(k string) string { return fields[k].GetStringValue() }
	switch predicateType {
	case PredicateSLSAProvenanceV1:
		var p slsa.Provenance
		if err := protojson.Unmarshal(trimmed, &p); err != nil {
			return nil, fmt.Errorf("predicate is not SLSA provenance v1 (https://slsa.dev/provenance/v1): %v", err)
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("predicate is not valid SLSA provenance v1: %v", err)
		}
	case PredicateSPDX:
		if !strings.HasPrefix(str("spdxVersion"), "SPDX-") || str("SPDXID") == "" {
			if _, ok := fields["@context"]; ok {
				return nil, errors.New("predicate looks like SPDX 3 JSON-LD; spdxjson expects an SPDX 2.x JSON document (with spdxVersion and SPDXID)")
			}
			return nil, errors.New("predicate is not an SPDX JSON document: spdxVersion (\"SPDX-2.x\") and SPDXID are missing; produce the SBOM in SPDX JSON format (e.g. syft -o spdx-json)")
		}
	case PredicateCycloneDX:
		if str("bomFormat") != "CycloneDX" || str("specVersion") == "" {
			return nil, errors.New("predicate is not a CycloneDX JSON BOM: bomFormat \"CycloneDX\" and specVersion are missing; produce the SBOM in CycloneDX JSON format (e.g. syft -o cyclonedx-json)")
		}
	}
	return &pred, nil
}

// MarshalStatement is the statement's JSON, compact.
func MarshalStatement(st *intoto.Statement) ([]byte, error) {
	raw, err := protojson.Marshal(st)
	if err != nil {
		return nil, err
	}
	// protojson deliberately varies its whitespace; compact it so the signed
	// payload is stable and small.
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ParseStatement reads and validates an in-toto statement (v1, or v0.1 as
// older tools write it).
func ParseStatement(payload []byte) (*intoto.Statement, error) {
	var st intoto.Statement
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(payload, &st); err != nil {
		return nil, fmt.Errorf("not an in-toto statement: %v", err)
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("in-toto statement: %w", err)
	}
	return &st, nil
}

// dsseSigner adapts a signer.Signer to go-securesystemslib's dsse.Signer.
type dsseSigner struct{ s *signer.Signer }

func (d dsseSigner) Sign(_ context.Context, data []byte) ([]byte, error) {
	return d.s.SignMessage(data)
}

// KeyID is empty: in a Sigstore bundle the certificate or key hint names the key.
func (d dsseSigner) KeyID() (string, error) { return "", nil }

// SignEnvelope signs payload as a DSSE envelope of payloadType.
func SignEnvelope(ctx context.Context, s *signer.Signer, payloadType string, payload []byte) (*protodsse.Envelope, error) {
	es, err := dsse.NewEnvelopeSigner(dsseSigner{s})
	if err != nil {
		return nil, err
	}
	env, err := es.SignPayload(ctx, payloadType, payload)
	if err != nil {
		return nil, fmt.Errorf("DSSE: %w", err)
	}
	return ToProto(env)
}

// ToProto converts a DSSE envelope to the protobuf-specs type bundles hold.
func ToProto(env *dsse.Envelope) (*protodsse.Envelope, error) {
	payload, err := env.DecodeB64Payload()
	if err != nil {
		return nil, fmt.Errorf("DSSE payload: %v", err)
	}
	out := &protodsse.Envelope{Payload: payload, PayloadType: env.PayloadType}
	for i, s := range env.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil {
			return nil, fmt.Errorf("DSSE signatures[%d]: %v", i, err)
		}
		out.Signatures = append(out.Signatures, &protodsse.Signature{Sig: sig, Keyid: s.KeyID})
	}
	return out, nil
}

// PAE is the DSSE pre-authentication encoding of an envelope: what its
// signature covers, and what a hashedrekord log entry for it is over.
func PAE(env *protodsse.Envelope) []byte {
	return dsse.PAE(env.GetPayloadType(), env.GetPayload())
}
