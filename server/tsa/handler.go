package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/digitorus/timestamp"

	"github.com/signet-dev/signet/core/timelog"
	"github.com/signet-dev/signet/server/apierror"
)

const (
	contentTypeQuery = "application/timestamp-query"
	contentTypeReply = "application/timestamp-reply"
	contentTypeJSON  = "application/json"
	contentTypeChain = "application/pem-certificate-chain"
)

// Register adds the TSA routes to mux.
func (t *TSA) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/timestamp", t.handleTimestamp)
	mux.HandleFunc("GET /api/v1/timestamp/certchain", t.handleCertChain)
}

func (t *TSA) handleCertChain(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", contentTypeChain)
	_, _ = w.Write(t.at(t.now()).chainPEM)
}

// refusal is a request the TSA will not stamp: an HTTP status, a metric
// reason and a message that says what to change.
type refusal struct {
	status int
	reason string
	msg    string
}

func (r *refusal) Error() string { return r.msg }

func refuse(status int, reason, format string, args ...any) *refusal {
	return &refusal{status: status, reason: reason, msg: fmt.Sprintf(format, args...)}
}

func (t *TSA) handleTimestamp(w http.ResponseWriter, r *http.Request) {
	req, ref := t.readRequest(w, r)
	if ref == nil {
		ref = t.checkRequest(req)
	}
	if ref != nil {
		t.metrics.requests.WithLabelValues(ref.reason).Inc()
		t.log.InfoContext(r.Context(), "timestamp request refused", "reason", ref.reason, "error", ref.msg)
		apierror.Write(w, ref.status, "%s", ref.msg)
		return
	}

	resp, ref := t.issue(r.Context(), req)
	if ref != nil {
		apierror.Write(w, ref.status, "%s", ref.msg)
		return
	}
	w.Header().Set("Content-Type", contentTypeReply)
	w.Header().Set("Content-Length", strconv.Itoa(len(resp)))
	_, _ = w.Write(resp)
}

// issue signs the timestamp token for an accepted request and returns the
// DER TimeStampResp; a refusal is a fault of the TSA, not of the request.
func (t *TSA) issue(ctx context.Context, req *timestamp.Request) ([]byte, *refusal) {
	now := t.now().UTC()
	k := t.at(now)
	if now.After(k.leaf.NotAfter) || now.Before(k.leaf.NotBefore) {
		t.metrics.requests.WithLabelValues("certificate_not_valid").Inc()
		t.log.ErrorContext(ctx, "TSA signing certificate is not valid now; rotate it", "not_before", k.leaf.NotBefore, "not_after", k.leaf.NotAfter)
		return nil, refuse(http.StatusServiceUnavailable, "certificate_not_valid", "the TSA signing certificate is valid from %s to %s, not now; the operator must issue a new one",
			k.leaf.NotBefore.UTC().Format(time.RFC3339), k.leaf.NotAfter.UTC().Format(time.RFC3339))
	}

	ts := timestamp.Timestamp{
		HashAlgorithm: req.HashAlgorithm,
		HashedMessage: req.HashedMessage,
		// RFC 5280 wants GeneralizedTime in UTC; encoding/asn1 would keep a zone.
		Time:     now,
		Accuracy: Accuracy,
		Nonce:    req.Nonce,
		Policy:   t.policy,
		// RFC 3161 2.4.1: with certReq the signing certificate MUST be
		// included; the intermediates let a verifier that only has the root
		// build the path.
		AddTSACertificate: req.Certificates,
	}
	if req.Certificates {
		ts.Certificates = k.intermediates
	}
	start := time.Now()
	resp, err := ts.CreateResponseWithOpts(k.leaf, k.signer, k.signHash)
	t.metrics.signing.Observe(time.Since(start).Seconds())
	if err != nil {
		t.metrics.requests.WithLabelValues("signing_failed").Inc()
		t.log.ErrorContext(ctx, "signing timestamp failed", "error", err)
		return nil, refuse(http.StatusInternalServerError, "signing_failed", "signing the timestamp failed: %v", err)
	}
	if t.record != nil {
		start := time.Now()
		entry, err := t.record(ctx, resp, k.leaf, now)
		if err == nil {
			resp, err = timelog.Embed(resp, entry)
		}
		t.metrics.logging.Observe(time.Since(start).Seconds())
		if err != nil {
			t.metrics.requests.WithLabelValues("not_logged").Inc()
			t.log.ErrorContext(ctx, "logging timestamp failed; no timestamp issued", "error", err)
			why := ""
			var re *RecordError
			if errors.As(err, &re) {
				why = " (" + re.Why + ")"
			}
			return nil, refuse(http.StatusServiceUnavailable, "not_logged", "the timestamp could not be recorded in the transparency log%s, so none was issued; retry later", why)
		}
	}
	t.metrics.requests.WithLabelValues("issued").Inc()
	t.log.DebugContext(ctx, "timestamp issued", "hash", req.HashAlgorithm.String(), "nonce", req.Nonce != nil, "cert_req", req.Certificates)
	return resp, nil
}

// Timestamp stamps a signature in process, for services of the same server
// that keep a signature's timestamp (the attestation store). It answers
// what POST /api/v1/timestamp answers the request a Sigstore client sends
// for that signature (core/tsa): a DER TimeStampResp over the SHA-256 of
// the signature bytes, with the TSA certificate (certReq), which is what a
// bundle's rfc3161Timestamps[].signedTimestamp holds. There is no nonce: it
// guards a network exchange against replay, and there is none here.
func (t *TSA) Timestamp(ctx context.Context, signature []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(signature) == 0 {
		return nil, errors.New("tsa: no signature to timestamp")
	}
	digest := sha256.Sum256(signature)
	resp, ref := t.issue(ctx, &timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: digest[:], Certificates: true})
	if ref != nil {
		return nil, ref
	}
	return resp, nil
}

// readRequest reads and decodes the body as the Content-Type says.
func (t *TSA) readRequest(w http.ResponseWriter, r *http.Request) (*timestamp.Request, *refusal) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil, refuse(http.StatusUnsupportedMediaType, "content_type",
			"missing Content-Type; send a DER TimeStampReq as %s or a JSON request as %s", contentTypeQuery, contentTypeJSON)
	}
	mediaType, _, err := mime.ParseMediaType(ct)
	if err != nil || (mediaType != contentTypeQuery && mediaType != contentTypeJSON) {
		return nil, refuse(http.StatusUnsupportedMediaType, "content_type",
			"unsupported Content-Type %q; send a DER TimeStampReq as %s or a JSON request as %s", ct, contentTypeQuery, contentTypeJSON)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, t.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, refuse(http.StatusRequestEntityTooLarge, "too_large",
				"timestamp request is larger than %d bytes; send only the message imprint (the hash), not the artifact", t.maxBody)
		}
		return nil, refuse(http.StatusBadRequest, "malformed", "reading the timestamp request: %v", err)
	}
	if len(body) == 0 {
		return nil, refuse(http.StatusBadRequest, "malformed", "empty timestamp request body; send a DER TimeStampReq (RFC 3161 2.4.1)")
	}
	if mediaType == contentTypeJSON {
		return parseJSONRequest(body)
	}
	req, err := timestamp.ParseRequest(body)
	if err != nil {
		// digitorus/timestamp reports an unrecognised imprint OID (e.g. MD5) only as this ParseError.
		if errors.Is(err, timestamp.ParseError("Time-Stamp request uses unknown hash function")) {
			return nil, refuse(http.StatusBadRequest, "hash_algorithm",
				"the message imprint uses a hash algorithm this TSA does not support; use SHA-256, SHA-384 or SHA-512")
		}
		return nil, refuse(http.StatusBadRequest, "malformed",
			"body is not a DER TimeStampReq (RFC 3161 2.4.1): %v; create one with e.g. `openssl ts -query -sha256 -cert`", err)
	}
	return req, nil
}

// jsonRequest is the JSON request of sigstore/timestamp-authority, which
// sigstore-js sends.
type jsonRequest struct {
	ArtifactHash  string   `json:"artifactHash"`
	HashAlgorithm string   `json:"hashAlgorithm"`
	Nonce         *big.Int `json:"nonce"`
	Certificates  bool     `json:"certificates"`
	TSAPolicyOID  string   `json:"tsaPolicyOID"`
}

func parseJSONRequest(body []byte) (*timestamp.Request, *refusal) {
	var jr jsonRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&jr); err != nil {
		return nil, refuse(http.StatusBadRequest, "malformed",
			`body is not a JSON timestamp request: %v; send {"artifactHash": "<base64 digest>", "hashAlgorithm": "sha256"}`, err)
	}
	if jr.ArtifactHash == "" {
		return nil, refuse(http.StatusBadRequest, "malformed", `JSON timestamp request has no "artifactHash"; set it to the base64 digest to timestamp`)
	}
	digest, err := base64.StdEncoding.DecodeString(jr.ArtifactHash)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "malformed", `"artifactHash" is not standard base64: %v`, err)
	}
	var h crypto.Hash
	switch strings.ToLower(jr.HashAlgorithm) {
	case "sha256":
		h = crypto.SHA256
	case "sha384":
		h = crypto.SHA384
	case "sha512":
		h = crypto.SHA512
	case "sha1":
		h = crypto.SHA1 // refused below with the weak-hash message
	default:
		return nil, refuse(http.StatusBadRequest, "hash_algorithm",
			`unsupported "hashAlgorithm" %q; use "sha256", "sha384" or "sha512"`, jr.HashAlgorithm)
	}
	var policy asn1.ObjectIdentifier
	if jr.TSAPolicyOID != "" {
		if policy, err = parseOID(jr.TSAPolicyOID); err != nil {
			return nil, refuse(http.StatusBadRequest, "policy", `"tsaPolicyOID" %q: %v`, jr.TSAPolicyOID, err)
		}
	}
	return &timestamp.Request{
		HashAlgorithm: h,
		HashedMessage: digest,
		Nonce:         jr.Nonce,
		Certificates:  jr.Certificates,
		TSAPolicyOID:  policy,
	}, nil
}

func parseOID(s string) (asn1.ObjectIdentifier, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return nil, errors.New("not a dotted object identifier such as 1.3.6.1.4.1.57264.2")
	}
	oid := make(asn1.ObjectIdentifier, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, errors.New("not a dotted object identifier such as 1.3.6.1.4.1.57264.2")
		}
		oid[i] = n
	}
	return oid, nil
}

// checkRequest applies the TSA's policy to a decoded request.
func (t *TSA) checkRequest(req *timestamp.Request) *refusal {
	switch req.HashAlgorithm {
	case crypto.SHA256, crypto.SHA384, crypto.SHA512:
	case crypto.SHA1:
		return refuse(http.StatusBadRequest, "hash_algorithm",
			"the message imprint uses SHA-1, which is too weak to timestamp; use SHA-256, SHA-384 or SHA-512")
	default:
		return refuse(http.StatusBadRequest, "hash_algorithm",
			"the message imprint uses %s, which this TSA does not support; use SHA-256, SHA-384 or SHA-512", req.HashAlgorithm)
	}
	if got, want := len(req.HashedMessage), req.HashAlgorithm.Size(); got != want {
		return refuse(http.StatusBadRequest, "digest_length",
			"the message imprint is %d bytes but a %s digest is %d bytes; send the digest itself, not the data or its hex", got, req.HashAlgorithm, want)
	}
	if len(req.TSAPolicyOID) > 0 && !req.TSAPolicyOID.Equal(t.policy) {
		return refuse(http.StatusBadRequest, "policy",
			"this TSA issues timestamps only under policy %s, not %s; omit the requested policy or ask for %s", t.policy, req.TSAPolicyOID, t.policy)
	}
	// RFC 3161 2.4.2: a TSA that does not understand a requested extension
	// answers unacceptedExtension. None are defined that this TSA implements;
	// non-critical ones may be ignored.
	for _, ext := range req.Extensions {
		if ext.Critical {
			return refuse(http.StatusBadRequest, "extension",
				"the request carries critical extension %s, which this TSA does not implement; remove it", ext.Id)
		}
	}
	return nil
}
