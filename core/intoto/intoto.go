// Package intoto builds in-toto Statement v1 attestations and signs them as
// DSSE envelopes, with the in-toto attestation Go types and the DSSE
// implementation of go-securesystemslib.
package intoto

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
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
	raw, err := Statement(subjects, predicateType, predicate)
	if err != nil {
		return nil, err
	}
	return ParseStatement(raw)
}

// Statement is the compact JSON of the Statement v1 NewStatement builds,
// checked as it checks it. The predicate is embedded as the caller's bytes,
// compacted, not re-encoded through a protobuf Struct: a 1 MB SBOM costs a
// few milliseconds instead of 65.
func Statement(subjects []Subject, predicateType string, predicate []byte) ([]byte, error) {
	if len(subjects) == 0 {
		return nil, errors.New("statement: at least one subject is required")
	}
	st := &intoto.Statement{Type: intoto.StatementTypeUri, PredicateType: predicateType, Predicate: &structpb.Struct{}}
	type subjectJSON struct {
		Name   string            `json:"name,omitempty"`
		Digest map[string]string `json:"digest"`
	}
	subs := make([]subjectJSON, 0, len(subjects))
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
		subs = append(subs, subjectJSON{Name: s.Name, Digest: s.Digest})
	}
	pred, err := checkPredicate(predicateType, predicate)
	if err != nil {
		return nil, err
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("statement: %w", err)
	}
	// Field order as protojson writes a Statement; map keys sorted. The
	// predicate is appended as it is: json.Marshal would scan it again.
	head, err := json.Marshal(struct {
		Type          string        `json:"_type"`
		Subject       []subjectJSON `json:"subject"`
		PredicateType string        `json:"predicateType"`
	}{intoto.StatementTypeUri, subs, predicateType})
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(head)+len(pred)+16)
	out = append(out, head[:len(head)-1]...)
	out = append(out, `,"predicate":`...)
	out = append(out, pred...)
	return append(out, '}'), nil
}

// checkPredicate returns the predicate compacted after checking that it is
// one JSON object by RFC 7493 (valid UTF-8, no duplicate names: a parser
// that keeps the first of two values and one that keeps the last would read
// different statements) and, for the kinds core knows, of that kind. One
// pass reads the object and the top-level names the checks need.
func checkPredicate(predicateType string, predicate []byte) (json.RawMessage, error) {
	trimmed := bytes.TrimSpace(predicate)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, fmt.Errorf("predicate for %s must be a JSON object", predicateType)
	}
	top, err := readObject(trimmed, "spdxVersion", "SPDXID", "@context", "bomFormat", "specVersion")
	if err != nil {
		return nil, fmt.Errorf("predicate for %s is not valid JSON: %v", predicateType, err)
	}
	v := jsontext.Value(bytes.Clone(trimmed))
	if err := v.Compact(); err != nil {
		return nil, fmt.Errorf("predicate for %s is not valid JSON: %v", predicateType, err)
	}
	switch predicateType {
	case PredicateSLSAProvenanceV1:
		var p slsa.Provenance
		if err := protojson.Unmarshal(v, &p); err != nil {
			return nil, fmt.Errorf("predicate is not SLSA provenance v1 (https://slsa.dev/provenance/v1): %v", err)
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("predicate is not valid SLSA provenance v1: %v", err)
		}
	case PredicateSPDX:
		if !strings.HasPrefix(top["spdxVersion"], "SPDX-") || top["SPDXID"] == "" {
			if _, ok := top["@context"]; ok {
				return nil, errors.New("predicate looks like SPDX 3 JSON-LD; spdxjson expects an SPDX 2.x JSON document (with spdxVersion and SPDXID)")
			}
			return nil, errors.New("predicate is not an SPDX JSON document: spdxVersion (\"SPDX-2.x\") and SPDXID are missing; produce the SBOM in SPDX JSON format (e.g. syft -o spdx-json)")
		}
	case PredicateCycloneDX:
		if top["bomFormat"] != "CycloneDX" || top["specVersion"] == "" {
			return nil, errors.New("predicate is not a CycloneDX JSON BOM: bomFormat \"CycloneDX\" and specVersion are missing; produce the SBOM in CycloneDX JSON format (e.g. syft -o cyclonedx-json)")
		}
	}
	return json.RawMessage(v), nil
}

// readObject validates raw as exactly one JSON object and returns the
// top-level members named (a string's value; "" for other kinds).
func readObject(raw []byte, names ...string) (map[string]string, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.ReadToken(); err != nil {
		return nil, err
	}
	found := map[string]string{}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return nil, err
		}
		k := name.String()
		if slices.Contains(names, k) && dec.PeekKind() == '"' {
			val, err := dec.ReadToken()
			if err != nil {
				return nil, err
			}
			found[k] = val.String()
			continue
		}
		if slices.Contains(names, k) {
			found[k] = ""
		}
		if err := dec.SkipValue(); err != nil {
			return nil, err
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, err
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		if err == nil {
			err = errors.New("more than one JSON value")
		}
		return nil, err
	}
	return found, nil
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

// ParseStatementHeader is ParseStatement for callers that need the subjects
// and predicate type, not the predicate: the statement is checked alike but
// its predicate only for being one well-formed JSON object, and the
// statement returned has an empty predicate. A statement carrying a 1 MB
// SBOM is read in a few milliseconds instead of the 60 a protobuf Struct of
// it costs.
func ParseStatementHeader(payload []byte) (*intoto.Statement, error) {
	st, err := DecodeStatementHeader(payload)
	if err != nil {
		return nil, err
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("in-toto statement: %w", err)
	}
	return st, nil
}

// DecodeStatementHeader decodes a statement as ParseStatementHeader does,
// without validating it, for callers with rules of their own (the
// attestation store accepts a statement without a predicate).
func DecodeStatementHeader(payload []byte) (*intoto.Statement, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(payload))
	header := []byte{'{'}
	fail := func(err error) (*intoto.Statement, error) {
		return nil, fmt.Errorf("not an in-toto statement: %v", err)
	}
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return fail(cmp.Or(err, errors.New("not a JSON object")))
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return fail(err)
		}
		if len(header) > 1 {
			header = append(header, ',')
		}
		header, _ = jsontext.AppendQuote(header, name.String())
		header = append(header, ':')
		if name.String() == "predicate" {
			if dec.PeekKind() != '{' {
				return fail(errors.New("predicate is not a JSON object"))
			}
			if err := dec.SkipValue(); err != nil {
				return fail(err)
			}
			header = append(header, "{}"...)
			continue
		}
		v, err := dec.ReadValue()
		if err != nil {
			return fail(err)
		}
		header = append(header, v...)
	}
	if _, err := dec.ReadToken(); err != nil {
		return fail(err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return fail(cmp.Or(err, errors.New("more than one JSON value")))
	}
	var st intoto.Statement
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(append(header, '}'), &st); err != nil {
		return fail(err)
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
