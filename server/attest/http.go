package attest

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	intoto "github.com/in-toto/attestation/go/v1"
	dssepb "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/signet-dev/signet/server/apierror"
)

// verifierSlack is room in the request body beyond the envelope for the
// verifier (a certificate is a few KiB) and the JSON around them.
const verifierSlack = 256 << 10

// inflightWait is how long a submission waits for room among the bodies
// being read before it is told to retry.
const inflightWait = 2 * time.Second

const (
	defaultPageSize = 50
	maxPageSize     = 500
)

// Register adds the attestation routes to mux.
func (s *Store) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v2/attestations", s.handleSubmit)
	mux.HandleFunc("GET /api/v2/attestations", s.handleQuery)
	mux.HandleFunc("GET /api/v2/attestations/{id}", s.handleGet)
	mux.HandleFunc("GET /api/v2/attestations/{id}/bundle", s.handleBundle)
}

// submitRequest is the POST body. The parts are decoded with protojson so
// they take exactly the JSON of a Sigstore bundle's dsseEnvelope and of a
// Rekor v2 Verifier.
type submitRequest struct {
	Envelope, Verifier bodyPart
}

// bodyPart is a part of the request body, kept as a slice of it rather than
// copied as json.RawMessage would: the body buffer is ours and never reused,
// and the envelope may be most of 32 MiB.
type bodyPart []byte

func (b *bodyPart) UnmarshalJSON(data []byte) error {
	*b = data
	return nil
}

func (s *Store) tooLarge(w http.ResponseWriter) {
	s.metrics.submissions.WithLabelValues("too_large").Inc()
	apierror.Write(w, http.StatusRequestEntityTooLarge,
		"the attestation envelope is larger than the limit of %d bytes; send a smaller attestation or raise attestations.maxEnvelopeBytes in the server configuration", s.maxBytes)
}

func (s *Store) invalid(w http.ResponseWriter, format string, args ...any) {
	s.metrics.submissions.WithLabelValues("invalid").Inc()
	msg := fmt.Sprintf(format, args...)
	s.logger.Debug("attestation refused", "reason", msg)
	apierror.Write(w, http.StatusBadRequest, "%s", msg)
}

func (s *Store) handleSubmit(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if !apierror.JSONBody(w, r) {
		s.metrics.submissions.WithLabelValues("invalid").Inc()
		return
	}
	// Reserve the body's weight before reading it: the declared length, or
	// the most a body may be when it declares none (or too much; the limit
	// below refuses that one).
	weight := s.maxBytes + verifierSlack
	if r.ContentLength >= 0 && r.ContentLength < weight {
		weight = max(r.ContentLength, 1)
	}
	wctx, cancel := context.WithTimeout(r.Context(), inflightWait)
	err := s.inflight.Acquire(wctx, weight)
	cancel()
	if err != nil {
		s.metrics.submissions.WithLabelValues("busy").Inc()
		w.Header().Set("Retry-After", "2")
		apierror.Write(w, http.StatusServiceUnavailable, "the attestation store is reading %d bytes of other submissions, its limit (attestations.maxInflightBytes); retry in a moment", s.inflightMax)
		return
	}
	defer s.inflight.Release(weight)
	// Read into one buffer of the declared size (a growing buffer would
	// double it), then decode in place.
	limit := s.maxBytes + verifierSlack
	buf := bytes.NewBuffer(make([]byte, 0, min(max(r.ContentLength, 0), limit)+bytes.MinRead))
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.tooLarge(w)
			return
		}
		s.invalid(w, "reading the request body: %v", err)
		return
	}
	// json.Unmarshal hands bodyPart slices of buf itself (a Decoder would
	// copy the body into its own buffer first).
	var parts map[string]bodyPart
	if err := json.Unmarshal(buf.Bytes(), &parts); err != nil {
		s.invalid(w, `request body is not a JSON object {"envelope": ..., "verifier": ...} (%v)`, err)
		return
	}
	var req submitRequest
	for k, v := range parts {
		switch k {
		case "envelope":
			req.Envelope = v
		case "verifier":
			req.Verifier = v
		default:
			s.invalid(w, `request body has an unknown field %q; send {"envelope": ..., "verifier": ...}`, k)
			return
		}
	}
	if len(req.Envelope) > int(s.maxBytes) {
		s.tooLarge(w)
		return
	}
	var env *dssepb.Envelope
	if len(req.Envelope) > 0 && !bytes.Equal(req.Envelope, []byte("null")) {
		env = &dssepb.Envelope{}
		if err := protojson.Unmarshal(req.Envelope, env); err != nil {
			s.invalid(w, "envelope: %v; send the DSSE envelope as in a Sigstore bundle: {\"payload\": base64, \"payloadType\": ..., \"signatures\": [{\"sig\": base64, \"keyid\": ...}]}", err)
			return
		}
	}
	var ver *rekorv2.Verifier
	if len(req.Verifier) > 0 && !bytes.Equal(req.Verifier, []byte("null")) {
		ver = &rekorv2.Verifier{}
		if err := protojson.Unmarshal(req.Verifier, ver); err != nil {
			s.invalid(w, "verifier: %v; send a Rekor v2 verifier: {\"x509Certificate\": {\"rawBytes\": base64 DER}, \"keyDetails\": \"PKIX_ECDSA_P256_SHA_256\"}", err)
			return
		}
	}
	// The decoded envelope holds what is needed; let the body go.
	parts, req, buf = nil, submitRequest{}, nil
	sub, err := s.validator.validate(env, ver)
	if err != nil {
		s.invalid(w, "%s", err.Error())
		return
	}

	rec, err := s.submit(r.Context(), sub)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = s.storageFailure("store the attestation", err)
		}
		s.metrics.submissions.WithLabelValues(ae.reason).Inc()
		if ae.reason == "log_rejected" {
			s.logger.WarnContext(r.Context(), "transparency log refused an attestation that passed validation", "attestation_id", sub.id, "reason", ae.msg)
		}
		if ae.location != "" {
			w.Header().Set("Location", ae.location)
		}
		apierror.Write(w, ae.status, "%s", ae.msg)
		return
	}
	s.metrics.submissions.WithLabelValues("created").Inc()
	s.metrics.submitSeconds.Observe(time.Since(start).Seconds())
	s.logger.InfoContext(r.Context(), "attestation stored", "attestation_id", rec.ID, "predicate_type", rec.PredicateType,
		"identity", rec.Identity, "issuer", rec.Issuer, "log_index", rec.Entry.GetLogIndex())

	entry, err := answerJSON.Marshal(rec.Entry)
	if err != nil {
		// The record is stored; only this answer failed.
		apierror.Write(w, http.StatusInternalServerError, "attestation %s was stored but its log entry could not be encoded (%v); fetch it with GET /api/v2/attestations/%s", rec.ID, err, rec.ID)
		return
	}
	w.Header().Set("Location", "/api/v2/attestations/"+rec.ID)
	writeJSON(w, http.StatusCreated, struct {
		ID    string          `json:"attestationId"`
		Entry json.RawMessage `json:"transparencyLogEntry"`
	}{rec.ID, entry})
}

// lookup reads the record GET /api/v2/attestations/{id}[/bundle] names,
// answering the request itself when there is none to return.
func (s *Store) lookup(w http.ResponseWriter, r *http.Request) *Record {
	id := r.PathValue("id")
	if b, err := hex.DecodeString(id); err != nil || len(b) != 32 || strings.ToLower(id) != id {
		s.metrics.queries.WithLabelValues("invalid").Inc()
		apierror.Write(w, http.StatusBadRequest, "attestation id %q is not 64 lower-case hex characters; use the attestationId returned when it was stored or by a query", id)
		return nil
	}
	rec, err := s.get(r.Context(), id)
	if err != nil {
		s.readFailure(w, r, err, "attestation_id", id)
		return nil
	}
	if rec == nil {
		s.metrics.queries.WithLabelValues("not_found").Inc()
		apierror.Write(w, http.StatusNotFound, "no attestation %s is stored here", id)
		return nil
	}
	return rec
}

func (s *Store) handleGet(w http.ResponseWriter, r *http.Request) {
	rec := s.lookup(w, r)
	if rec == nil {
		return
	}
	s.metrics.queries.WithLabelValues("ok").Inc()
	writeJSON(w, http.StatusOK, rec)
}

// handleBundle answers the attestation as a Sigstore bundle v0.3 that
// verifies offline against this server's trusted root.
func (s *Store) handleBundle(w http.ResponseWriter, r *http.Request) {
	rec := s.lookup(w, r)
	if rec == nil {
		return
	}
	if len(rec.SignedTimestamp) == 0 {
		s.metrics.queries.WithLabelValues("not_found").Inc()
		apierror.Write(w, http.StatusNotFound, "%s", s.noBundle(rec))
		return
	}
	b, err := rec.bundle()
	if err != nil {
		s.metrics.queries.WithLabelValues("storage_error").Inc()
		s.logger.ErrorContext(r.Context(), "stored attestation does not make a bundle", "attestation_id", rec.ID, "error", err)
		apierror.Write(w, http.StatusInternalServerError, "attestation %s is stored but does not make a valid bundle; ask the operator to check the server log", rec.ID)
		return
	}
	s.metrics.queries.WithLabelValues("ok").Inc()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// noBundle says why a record has no timestamp, and so no bundle here.
func (s *Store) noBundle(rec *Record) string {
	const signers = "its bundle is the one the signer wrote when signing it"
	if s.timestamp == nil {
		return fmt.Sprintf("attestation %s has no timestamp: this server keeps none (its attestation store has no timestamp authority), so it serves no bundles; %s", rec.ID, signers)
	}
	if _, cert, err := verifierKey(rec.Verifier); err == nil && cert != nil && (rec.StoredTime.Before(cert.NotBefore) || rec.StoredTime.After(cert.NotAfter)) {
		return fmt.Sprintf("attestation %s was stored outside its signing certificate's validity (%s to %s), so no timestamp the server takes can show it was signed while the certificate was valid; %s",
			rec.ID, cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339), signers)
	}
	return fmt.Sprintf("attestation %s was stored before this server kept timestamps with attestations, so the server cannot build its bundle; %s", rec.ID, signers)
}

var queryParams = map[string]bool{"digest": true, "predicateType": true, "identity": true, "issuer": true, "pageSize": true, "pageToken": true}

func parseQuery(r *http.Request) (query, error) {
	vals := r.URL.Query()
	for k, v := range vals {
		if !queryParams[k] {
			return query{}, fmt.Errorf("unknown query parameter %q; use digest, predicateType, identity, issuer, pageSize and pageToken", k)
		}
		if len(v) > 1 {
			return query{}, fmt.Errorf("query parameter %q is given %d times; give it once", k, len(v))
		}
	}
	q := query{predicateType: vals.Get("predicateType"), identity: vals.Get("identity"), issuer: vals.Get("issuer"), pageSize: defaultPageSize}
	if d := vals.Get("digest"); d != "" {
		alg, v, ok := strings.Cut(d, ":")
		if !ok || alg == "" || v == "" {
			return q, fmt.Errorf("digest %q is not <algorithm>:<value>; use e.g. sha256:<64 hex characters>", d)
		}
		if n := intoto.HashAlgorithm(alg).HexLength(); n > 0 {
			if b, err := hex.DecodeString(v); err != nil || len(b) != n {
				return q, fmt.Errorf("digest %q: a %s value is %d hex characters", d, alg, 2*n)
			}
		}
		q.digestAlg, q.digestValue = alg, normalizeDigestValue(alg, v)
	}
	if q.digestAlg == "" && q.predicateType == "" && q.identity == "" {
		return q, errors.New("give at least one of digest (e.g. sha256:<hex>), predicateType or identity; listing every attestation is not supported")
	}
	if p := vals.Get("pageSize"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > maxPageSize {
			return q, fmt.Errorf("pageSize %q must be a number from 1 to %d", p, maxPageSize)
		}
		q.pageSize = n
	}
	if t := vals.Get("pageToken"); t != "" {
		before, err := decodePageToken(t)
		if err != nil {
			return q, fmt.Errorf("pageToken %q was not returned by this server; pass the nextPageToken of the previous page unchanged", t)
		}
		q.before = before
	}
	return q, nil
}

func (s *Store) handleQuery(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r)
	if err != nil {
		s.metrics.queries.WithLabelValues("invalid").Inc()
		apierror.Write(w, http.StatusBadRequest, "%s", err.Error())
		return
	}
	recs, next, err := s.find(r.Context(), q)
	if err != nil {
		s.readFailure(w, r, err)
		return
	}
	s.metrics.queries.WithLabelValues("ok").Inc()
	// Written record by record: a page holds up to maxPageBytes of
	// envelopes, and one encoded copy of each at a time is enough.
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, `{"attestations":[`)
	for i, rec := range recs {
		b, err := json.Marshal(rec)
		if err != nil {
			// The status is sent; end the document so the client sees it
			// cut short rather than a shorter page that looks whole.
			s.logger.ErrorContext(r.Context(), "encoding an attestation for a query answer", "attestation_id", rec.ID, "error", err)
			return
		}
		if i > 0 {
			_, _ = io.WriteString(w, ",")
		}
		_, _ = w.Write(b)
	}
	_, _ = io.WriteString(w, "]")
	if next != 0 {
		_, _ = io.WriteString(w, `,"nextPageToken":"`+encodePageToken(next)+`"`)
	}
	_, _ = io.WriteString(w, "}")
}

// readFailure answers a lookup or query the database failed: 503 when it
// is unavailable (retry), 500 otherwise.
func (s *Store) readFailure(w http.ResponseWriter, r *http.Request, err error, attrs ...any) {
	if r.Context().Err() != nil {
		return // the client left, which cancelled the read; no one to answer
	}
	if errors.Is(err, errUnavailable) {
		s.metrics.queries.WithLabelValues("storage_unavailable").Inc()
		s.errLog.Error(s.logger, "attestation database unavailable", append(attrs, "error", err)...)
		apierror.Write(w, http.StatusServiceUnavailable, "the attestation database is unavailable; retry the same request later")
		return
	}
	s.metrics.queries.WithLabelValues("storage_error").Inc()
	s.logger.ErrorContext(r.Context(), "attestation database read failed", append(attrs, "error", err)...)
	apierror.Write(w, http.StatusInternalServerError, "the attestation database could not be read; retry later or ask the operator to check the server log")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		apierror.Write(w, http.StatusInternalServerError, "encoding the answer failed: %v", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
