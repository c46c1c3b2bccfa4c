package rekor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/sign/transport"
)

// AttestationStore is a client for a signet server's attestation store
// (/api/v2/attestations): it keeps DSSE envelopes and logs each as a
// hashedrekord entry over its PAE, like a plain Rekor v2 submission.
type AttestationStore struct {
	base    string
	http    *http.Client
	service string
}

// NewAttestationStore returns a client for the signet server at baseURL.
func NewAttestationStore(baseURL string, hc *http.Client) (*AttestationStore, error) {
	base, err := checkURL("attestation store", baseURL)
	if err != nil {
		return nil, err
	}
	if hc == nil {
		hc = transport.NewClient(transport.Options{})
	}
	return &AttestationStore{base: base, http: hc, service: "attestation store (" + base + ")"}, nil
}

// URL is the server's base URL.
func (s *AttestationStore) URL() string { return s.base }

// Subject is a statement subject as the store indexes it.
type Subject struct {
	Name   string            `json:"name,omitempty"`
	Digest map[string]string `json:"digest"`
}

// Attestation is one stored attestation.
type Attestation struct {
	ID            string
	Envelope      *protodsse.Envelope
	Verifier      *rekorv2.Verifier
	Entry         *protorekor.TransparencyLogEntry
	StatementType string
	PredicateType string
	Subjects      []Subject
	Identity      string
	Issuer        string
	StoredTime    time.Time
	// SignedTimestamp is the DER RFC 3161 timestamp the server took over the
	// envelope's signature when it stored it; nil if it kept none (an older
	// server, or one storing it after the certificate expired). When it is
	// set, Bundle(ctx, ID) returns the whole bundle.
	SignedTimestamp []byte
}

type attestationJSON struct {
	ID            string          `json:"attestationId"`
	Envelope      json.RawMessage `json:"envelope"`
	Verifier      json.RawMessage `json:"verifier"`
	Entry         json.RawMessage `json:"transparencyLogEntry"`
	StatementType string          `json:"statementType"`
	PredicateType string          `json:"predicateType"`
	Subjects      []Subject       `json:"subjects"`
	Identity      string          `json:"identity"`
	Issuer        string          `json:"issuer"`
	StoredTime    time.Time       `json:"storedTime"`

	SignedTimestamp []byte `json:"signedTimestamp"`
}

// Submit stores env, whose signature verifier checks, and returns the
// attestation ID and the log entry.
func (s *AttestationStore) Submit(ctx context.Context, env *protodsse.Envelope, verifier *rekorv2.Verifier) (string, *protorekor.TransparencyLogEntry, error) {
	envJSON, err := protojson.Marshal(env)
	if err != nil {
		return "", nil, err
	}
	verJSON, err := protojson.Marshal(verifier)
	if err != nil {
		return "", nil, err
	}
	body, err := json.Marshal(struct {
		Envelope json.RawMessage `json:"envelope"`
		Verifier json.RawMessage `json:"verifier"`
	}{envJSON, verJSON})
	if err != nil {
		return "", nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/api/v2/attestations", bytes.NewReader(body))
	if err != nil {
		return "", nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", s.service, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", nil, transport.ErrorFrom(s.service, resp)
	}
	raw, err := transport.ReadBody(s.service, resp, maxAnswer)
	if err != nil {
		return "", nil, err
	}
	var answer struct {
		ID    string          `json:"attestationId"`
		Entry json.RawMessage `json:"transparencyLogEntry"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil || answer.ID == "" || len(answer.Entry) == 0 {
		return "", nil, fmt.Errorf(`%s: the answer is not {"attestationId": ..., "transparencyLogEntry": ...}`, s.service)
	}
	tle, err := parseEntry(s.service, answer.Entry)
	if err != nil {
		return "", nil, err
	}
	return answer.ID, tle, nil
}

// Query selects attestations; at least one of Digest, PredicateType and
// Identity must be set.
type Query struct {
	// Digest is "<algorithm>:<hex>", e.g. "sha256:ab12…".
	Digest        string
	PredicateType string
	Identity      string
	Issuer        string
	PageSize      int
	// PageToken continues a previous search (its NextPageToken).
	PageToken string
}

// Search returns one page of attestations matching q and the token of the
// next page ("" on the last page).
func (s *AttestationStore) Search(ctx context.Context, q Query) ([]*Attestation, string, error) {
	if q.Digest == "" && q.PredicateType == "" && q.Identity == "" {
		return nil, "", errors.New("attestation search: give a digest, a predicate type or an identity")
	}
	v := url.Values{}
	for k, val := range map[string]string{"digest": q.Digest, "predicateType": q.PredicateType, "identity": q.Identity, "issuer": q.Issuer, "pageToken": q.PageToken} {
		if val != "" {
			v.Set(k, val)
		}
	}
	if q.PageSize > 0 {
		v.Set("pageSize", strconv.Itoa(q.PageSize))
	}
	// A page holds up to 500 envelopes; allow for large ones.
	raw, err := s.get(ctx, "/api/v2/attestations?"+v.Encode(), 256<<20)
	if err != nil {
		return nil, "", err
	}
	var page struct {
		Attestations  []attestationJSON `json:"attestations"`
		NextPageToken string            `json:"nextPageToken"`
	}
	if err := json.Unmarshal(raw, &page); err != nil {
		return nil, "", fmt.Errorf(`%s: the answer is not {"attestations": [...]}: %v`, s.service, err)
	}
	out := make([]*Attestation, 0, len(page.Attestations))
	for i, a := range page.Attestations {
		att, err := a.decode()
		if err != nil {
			return nil, "", fmt.Errorf("%s: attestations[%d]: %w", s.service, i, err)
		}
		out = append(out, att)
	}
	return out, page.NextPageToken, nil
}

// maxBundleAnswer bounds a bundle: the envelope (the server's limit is 32
// MiB by default), its certificate, log entry and timestamp.
const maxBundleAnswer = 64 << 20

// Bundle fetches the Sigstore bundle (v0.3 JSON) of the attestation id (an
// ID from Submit or Search), which the server builds from what it stored:
// the envelope, the signer's certificate or key hint, the log entry with its
// inclusion proof and the server's RFC 3161 timestamp. It is checked to be
// a structurally valid bundle, not verified: verify it offline against the
// server's trusted root, like the bundle the signer wrote. An
// attestation stored without a timestamp has none (404, see
// Attestation.SignedTimestamp).
func (s *AttestationStore) Bundle(ctx context.Context, id string) ([]byte, error) {
	raw, err := s.get(ctx, "/api/v2/attestations/"+url.PathEscape(id)+"/bundle", maxBundleAnswer)
	if err != nil {
		return nil, err
	}
	if _, err := bundle.Parse(raw); err != nil {
		return nil, fmt.Errorf("%s: the answer for attestation %s is not a Sigstore bundle: %v", s.service, id, err)
	}
	return raw, nil
}

// get reads the JSON answer of GET path, at most limit bytes of it; an
// answer other than 200 is the server's error.
func (s *AttestationStore) get(ctx context.Context, path string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.service, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, transport.ErrorFrom(s.service, resp)
	}
	return transport.ReadBody(s.service, resp, limit)
}

func (a attestationJSON) decode() (*Attestation, error) {
	out := &Attestation{
		ID: a.ID, StatementType: a.StatementType, PredicateType: a.PredicateType, Subjects: a.Subjects,
		Identity: a.Identity, Issuer: a.Issuer, StoredTime: a.StoredTime, SignedTimestamp: a.SignedTimestamp,
		Envelope: &protodsse.Envelope{}, Verifier: &rekorv2.Verifier{}, Entry: &protorekor.TransparencyLogEntry{},
	}
	if err := answerJSON.Unmarshal(a.Envelope, out.Envelope); err != nil {
		return nil, fmt.Errorf("envelope: %v", err)
	}
	if err := answerJSON.Unmarshal(a.Verifier, out.Verifier); err != nil {
		return nil, fmt.Errorf("verifier: %v", err)
	}
	if err := answerJSON.Unmarshal(a.Entry, out.Entry); err != nil {
		return nil, fmt.Errorf("transparencyLogEntry: %v", err)
	}
	return out, nil
}
