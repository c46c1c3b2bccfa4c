package attest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"
	dssepb "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

const slsa = "https://slsa.dev/provenance/v1"

func TestSubmitAndGet(t *testing.T) { testSubmitAndGet(t, newEnv) }

func testSubmitAndGet(t *testing.T, newEnv envMaker) {
	e := newEnv(t)
	s := e.ca.issue(t, "https://github.com/acme/widget/.github/workflows/release.yml@refs/heads/main", "https://token.actions.githubusercontent.com")
	payload := statement(slsa, hexDigest("a"))
	envelope := s.sign(t, InTotoPayloadType, payload)

	resp := e.post(map[string]any{"envelope": envelope, "verifier": s.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")})
	if resp.status != http.StatusCreated {
		t.Fatalf("status %d: %s", resp.status, resp.body)
	}
	body := resp.json(t)
	id, _ := body["attestationId"].(string)
	if len(id) != 64 || resp.header.Get("Location") != "/api/v2/attestations/"+id {
		t.Fatalf("id %q location %q", id, resp.header.Get("Location"))
	}
	var entry rekorv1.TransparencyLogEntry
	raw, _ := json.Marshal(body["transparencyLogEntry"])
	if err := protojson.Unmarshal(raw, &entry); err != nil || entry.GetInclusionProof() == nil {
		t.Fatalf("transparencyLogEntry: %v %s", err, raw)
	}

	// The log was asked for a hashedrekord over the PAE, with the DSSE signature.
	if e.log.count() != 1 {
		t.Fatalf("log appended %d times", e.log.count())
	}
	req := e.log.calls[0]
	pae := sha256.Sum256(ssldsse.PAE(InTotoPayloadType, payload))
	sig := envelope["signatures"].([]any)[0].(map[string]any)["sig"].([]byte)
	if !bytes.Equal(req.GetDigest(), pae[:]) || !bytes.Equal(req.GetSignature().GetContent(), sig) ||
		!bytes.Equal(req.GetSignature().GetVerifier().GetX509Certificate().GetRawBytes(), s.cert) {
		t.Fatalf("logged request %v", req)
	}

	got := e.get("/api/v2/attestations/" + id)
	if got.status != http.StatusOK {
		t.Fatalf("get: %d %s", got.status, got.body)
	}
	var rec Record
	if err := json.Unmarshal(got.body, &rec); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rec.Envelope.GetPayload(), payload) || rec.Envelope.GetPayloadType() != InTotoPayloadType ||
		!bytes.Equal(rec.Envelope.GetSignatures()[0].GetSig(), sig) {
		t.Errorf("stored envelope differs: %v", rec.Envelope)
	}
	if rec.Identity != "https://github.com/acme/widget/.github/workflows/release.yml@refs/heads/main" || rec.Issuer != "https://token.actions.githubusercontent.com" {
		t.Errorf("identity %q issuer %q", rec.Identity, rec.Issuer)
	}
	if rec.PredicateType != slsa || rec.Subjects[0].Digest["sha256"] != hexDigest("a") || rec.Entry.GetLogIndex() != entry.GetLogIndex() {
		t.Errorf("record %+v", rec)
	}
	if records, pending, _ := e.counts(); records != 1 || pending != 0 {
		t.Errorf("records %d pending %d", records, pending)
	}
	// The bound a database's packet size is checked against holds.
	if n, bound := len(e.rawRecord(id)), recordBound(validated(t, e, map[string]any{"envelope": envelope, "verifier": s.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")})); int64(n) > bound {
		t.Errorf("stored record of %d bytes, over its bound %d", n, bound)
	}
	if v := metricValue(t, e.store.metrics.submissions.WithLabelValues("created")); v != 1 {
		t.Errorf("created counter %v", v)
	}
	if v := metricValue(t, e.store.metrics.records); v != 1 {
		t.Errorf("stored gauge %v", v)
	}
}

// Rekor answers a duplicate with 409 and where the existing entry is; so
// does the store, without logging the attestation again.
func TestDuplicate(t *testing.T) { testDuplicate(t, newEnv) }

func testDuplicate(t *testing.T, newEnv envMaker) {
	e := newEnv(t)
	s := e.ca.issue(t, "alice@example.com", "https://accounts.example.com")
	req := map[string]any{"envelope": s.sign(t, InTotoPayloadType, statement(slsa, hexDigest("a"))), "verifier": s.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")}
	first := e.post(req)
	if first.status != http.StatusCreated {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	second := e.post(req)
	if second.status != http.StatusConflict || second.header.Get("Location") != first.header.Get("Location") {
		t.Fatalf("second: %d %q %s", second.status, second.header.Get("Location"), second.body)
	}
	if msg := second.json(t)["message"].(string); !strings.Contains(msg, "already stored as "+first.json(t)["attestationId"].(string)) {
		t.Errorf("message %q", msg)
	}
	if e.log.count() != 1 {
		t.Errorf("log appended %d times", e.log.count())
	}
}

// The same envelope sent twice at once is logged once: the second request
// is told the first is in flight and where the attestation will be.
func TestConcurrentDuplicate(t *testing.T) { testConcurrentDuplicate(t, newEnv) }

func testConcurrentDuplicate(t *testing.T, newEnv envMaker) {
	e := newEnv(t)
	e.log.entered, e.log.release = make(chan struct{}), make(chan struct{})
	s := e.ca.issue(t, "alice@example.com", "https://accounts.example.com")
	req := map[string]any{"envelope": s.sign(t, InTotoPayloadType, statement(slsa, hexDigest("a"))), "verifier": s.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")}
	first := make(chan response, 1)
	go func() { first <- e.post(req) }()
	// Fail, not hang, if the first request never reaches the log.
	select {
	case <-e.log.entered:
	case r := <-first:
		t.Fatalf("first request ended before reaching the log: %d %s", r.status, r.body)
	case <-time.After(10 * time.Second):
		t.Fatal("first request did not reach the log within 10s")
	}
	second := e.post(req)
	close(e.log.release)
	if r := <-first; r.status != http.StatusCreated {
		t.Fatalf("first: %d %s", r.status, r.body)
	}
	if second.status != http.StatusConflict || !strings.Contains(second.json(t)["message"].(string), "being logged by another request") || second.header.Get("Location") == "" {
		t.Fatalf("second: %d %s", second.status, second.body)
	}
	if e.log.count() != 1 {
		t.Fatalf("log appended %d times", e.log.count())
	}
}

func TestPublicKeyVerifier(t *testing.T) { testPublicKeyVerifier(t, newEnv) }

func testPublicKeyVerifier(t *testing.T, newEnv envMaker) {
	e := newEnv(t)
	s := newKeySigner(t)
	resp := e.post(map[string]any{"envelope": s.sign(t, InTotoPayloadType, statement(slsa, hexDigest("k"))), "verifier": s.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")})
	if resp.status != http.StatusCreated {
		t.Fatalf("status %d: %s", resp.status, resp.body)
	}
	rec := e.get("/api/v2/attestations?digest=sha256:" + hexDigest("k")).json(t)["attestations"].([]any)[0].(map[string]any)
	if _, has := rec["identity"]; has {
		t.Errorf("a bare key has no identity, got %v", rec["identity"])
	}
	if rec["verifier"].(map[string]any)["publicKey"] == nil {
		t.Errorf("verifier %v", rec["verifier"])
	}
}

// Every refusal answers with a message naming the problem, and leaves no log
// entry, no record and no index entry behind.
func TestRefusals(t *testing.T) { testRefusals(t, newEnv) }

func testRefusals(t *testing.T, newEnv envMaker) {
	e := newEnv(t, func(o *Options) { o.MaxEnvelopeBytes = 64 << 10 })
	good := e.ca.issue(t, "alice@example.com", "https://accounts.example.com")
	other := e.ca.issue(t, "bob@example.com", "https://accounts.example.com")
	foreign := newTestCA(t).issue(t, "mallory@example.com", "https://accounts.example.com")
	twoSANs := e.ca.issue(t, "alice@example.com", "https://accounts.example.com", "https://example.com/ci")
	noSAN := e.ca.issue(t, "", "https://accounts.example.com")
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384Signer := &signer{key: p384}
	stmt := statement(slsa, hexDigest("a"))
	vgood := good.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")
	envGood := good.sign(t, InTotoPayloadType, stmt)

	withVerifier := func(details string) map[string]any { return good.verifierJSON(t, details) }
	payloadEnv := func(v any) map[string]any {
		b, _ := json.Marshal(v)
		return good.sign(t, InTotoPayloadType, b)
	}
	twoSigs := good.sign(t, InTotoPayloadType, stmt)
	twoSigs["signatures"] = append(twoSigs["signatures"].([]any), other.sign(t, InTotoPayloadType, stmt)["signatures"].([]any)[0])
	noSigs := good.sign(t, InTotoPayloadType, stmt)
	noSigs["signatures"] = []any{}
	emptySig := good.sign(t, InTotoPayloadType, stmt)
	emptySig["signatures"] = []any{map[string]any{"keyid": ""}}
	tampered := good.sign(t, InTotoPayloadType, stmt)
	tampered["payload"] = statement(slsa, hexDigest("b"))
	big := good.sign(t, InTotoPayloadType, statement(slsa+strings.Repeat("x", 70<<10), hexDigest("a")))
	huge := good.sign(t, InTotoPayloadType, statement(slsa+strings.Repeat("x", 400<<10), hexDigest("a")))

	cases := []struct {
		name   string
		body   any // marshalled to JSON unless a string
		status int
		want   string
	}{
		{"not JSON", "{envelope", 400, "request body is not a JSON object"},
		{"unknown field", map[string]any{"envelope": envGood, "verifier": vgood, "bundle": 1}, 400, `unknown field "bundle"`},
		{"no envelope", map[string]any{"verifier": vgood}, 400, `no "envelope"`},
		{"no verifier", map[string]any{"envelope": envGood}, 400, `no "verifier"`},
		{"envelope not DSSE", map[string]any{"envelope": map[string]any{"payload": 7}, "verifier": vgood}, 400, "envelope: "},
		{"verifier not Rekor v2", map[string]any{"envelope": envGood, "verifier": map[string]any{"x509Certificate": "abc"}}, 400, "verifier: "},
		{"payloadType", map[string]any{"envelope": good.sign(t, "text/plain", stmt), "verifier": vgood}, 400, `payloadType is "text/plain"`},
		{"no signature", map[string]any{"envelope": noSigs, "verifier": vgood}, 400, "envelope has 0 signatures"},
		{"two signatures", map[string]any{"envelope": twoSigs, "verifier": vgood}, 400, "envelope has 2 signatures"},
		{"empty signature", map[string]any{"envelope": emptySig, "verifier": vgood}, 400, "empty sig"},
		{"payload not JSON", map[string]any{"envelope": good.sign(t, InTotoPayloadType, []byte("hello")), "verifier": vgood}, 400, "payload is not an in-toto statement"},
		{"statement type", map[string]any{"envelope": payloadEnv(map[string]any{"_type": "https://example.com/v9", "subject": []any{map[string]any{"digest": map[string]any{"sha256": hexDigest("a")}}}, "predicateType": slsa}), "verifier": vgood}, 400, `_type is "https://example.com/v9"`},
		{"no subject", map[string]any{"envelope": payloadEnv(map[string]any{"_type": "https://in-toto.io/Statement/v1", "predicateType": slsa, "predicate": map[string]any{}}), "verifier": vgood}, 400, "has no subject"},
		{"subject without digest", map[string]any{"envelope": payloadEnv(map[string]any{"_type": "https://in-toto.io/Statement/v1", "subject": []any{map[string]any{"name": "x"}}, "predicateType": slsa, "predicate": map[string]any{}}), "verifier": vgood}, 400, "subject has no digest"},
		{"bad digest", map[string]any{"envelope": payloadEnv(map[string]any{"_type": "https://in-toto.io/Statement/v1", "subject": []any{map[string]any{"digest": map[string]any{"sha256": "zz"}}}, "predicateType": slsa, "predicate": map[string]any{}}), "verifier": vgood}, 400, "not valid hex"},
		{"no predicateType", map[string]any{"envelope": payloadEnv(map[string]any{"_type": "https://in-toto.io/Statement/v1", "subject": []any{map[string]any{"digest": map[string]any{"sha256": hexDigest("a")}}}, "predicate": map[string]any{}}), "verifier": vgood}, 400, "no predicateType"},
		{"verifier without key", map[string]any{"envelope": envGood, "verifier": map[string]any{"keyDetails": "PKIX_ECDSA_P256_SHA_256"}}, 400, `neither "x509Certificate" nor "publicKey"`},
		{"certificate not DER", map[string]any{"envelope": envGood, "verifier": map[string]any{"x509Certificate": map[string]any{"rawBytes": []byte("-----BEGIN")}, "keyDetails": "PKIX_ECDSA_P256_SHA_256"}}, 400, "not a DER X.509 certificate"},
		{"public key not DER", map[string]any{"envelope": envGood, "verifier": map[string]any{"publicKey": map[string]any{"rawBytes": []byte("nope")}, "keyDetails": "PKIX_ECDSA_P256_SHA_256"}}, 400, "not a DER PKIX public key"},
		{"no keyDetails", map[string]any{"envelope": envGood, "verifier": map[string]any{"x509Certificate": map[string]any{"rawBytes": good.cert}}}, 400, "keyDetails is missing"},
		{"keyDetails without prehash", map[string]any{"envelope": envGood, "verifier": withVerifier("PKIX_ED25519")}, 400, "PKIX_ED25519 cannot be logged as a hashedrekord"},
		{"keyDetails for another key", map[string]any{"envelope": envGood, "verifier": withVerifier("PKIX_ECDSA_P384_SHA_384")}, 400, "not an ECDSA P-384 key"},
		{"key details for RSA", map[string]any{"envelope": envGood, "verifier": withVerifier("PKIX_RSA_PKCS1V15_2048_SHA256")}, 400, "not an RSA-2048 key"},
		{"signature by another key", map[string]any{"envelope": other.sign(t, InTotoPayloadType, stmt), "verifier": vgood}, 400, "does not verify over the DSSE pre-authentication encoding"},
		{"payload changed after signing", map[string]any{"envelope": tampered, "verifier": vgood}, 400, "does not verify"},
		{"P-384 key signing a SHA-256 digest", map[string]any{"envelope": p384Signer.sign(t, InTotoPayloadType, stmt), "verifier": p384Signer.verifierJSON(t, "PKIX_ECDSA_P384_SHA_384")}, 400, "does not verify"},
		{"certificate from another CA", map[string]any{"envelope": foreign.sign(t, InTotoPayloadType, stmt), "verifier": foreign.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")}, 400, "not issued by this server's certificate authority"},
		{"certificate with two SANs", map[string]any{"envelope": twoSANs.sign(t, InTotoPayloadType, stmt), "verifier": twoSANs.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")}, 400, "has 2 subject alternative names"},
		{"certificate without SAN", map[string]any{"envelope": noSAN.sign(t, InTotoPayloadType, stmt), "verifier": noSAN.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")}, 400, "names no signer"},
		{"too large", map[string]any{"envelope": big, "verifier": vgood}, 413, "attestations.maxEnvelopeBytes"},
		{"body beyond the limit", map[string]any{"envelope": huge, "verifier": vgood}, 413, "limit of 65536 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var resp response
			if s, ok := c.body.(string); ok {
				resp = e.do(http.MethodPost, "/api/v2/attestations", strings.NewReader(s))
			} else {
				resp = e.post(c.body)
			}
			if resp.status != c.status {
				t.Fatalf("status %d, want %d: %s", resp.status, c.status, resp.body)
			}
			msg, _ := resp.json(t)["message"].(string)
			if !strings.Contains(msg, c.want) {
				t.Fatalf("message %q does not contain %q", msg, c.want)
			}
			if e.log.count() != 0 {
				t.Fatalf("the log was asked to append %d entries", e.log.count())
			}
			if r, p, i := e.counts(); r+p+i != 0 {
				t.Fatalf("database changed: %d records, %d pending, %d index keys", r, p, i)
			}
		})
	}
	if v := metricValue(t, e.store.metrics.submissions.WithLabelValues("invalid")); v != float64(len(cases)-2) {
		t.Errorf("invalid counter %v, want %d", v, len(cases)-2)
	}
	if v := metricValue(t, e.store.metrics.submissions.WithLabelValues("too_large")); v != 2 {
		t.Errorf("too_large counter %v", v)
	}
}

var errInvalidEntry = errors.New("invalid entry")

// The log refusing the entry is the caller's fault: 400, nothing kept.
func TestLogRejects(t *testing.T) { testLogRejects(t, newEnv) }

func testLogRejects(t *testing.T, newEnv envMaker) {
	e := newEnv(t, func(o *Options) { o.LogRejects = func(err error) bool { return errors.Is(err, errInvalidEntry) } })
	e.log.err = errInvalidEntry
	s := e.ca.issue(t, "alice@example.com", "https://accounts.example.com")
	resp := e.post(map[string]any{"envelope": s.sign(t, InTotoPayloadType, statement(slsa, hexDigest("a"))), "verifier": s.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")})
	if resp.status != http.StatusBadRequest || !strings.Contains(resp.json(t)["message"].(string), "transparency log refused the entry: invalid entry") {
		t.Fatalf("%d %s", resp.status, resp.body)
	}
	if r, p, i := e.counts(); r+p+i != 0 {
		t.Fatalf("database changed: %d records, %d pending, %d index keys", r, p, i)
	}
}

// A log failure leaves it unknown whether the entry was appended: no record,
// but a pending marker that survives restarts, is reported, and is
// completed by resubmitting.
func TestLogFailureAndResubmit(t *testing.T) { testLogFailureAndResubmit(t, newEnv) }

func testLogFailureAndResubmit(t *testing.T, newEnv envMaker) {
	e := newEnv(t)
	e.log.err = errors.New("disk on fire")
	s := e.ca.issue(t, "alice@example.com", "https://accounts.example.com")
	req := map[string]any{"envelope": s.sign(t, InTotoPayloadType, statement(slsa, hexDigest("a"))), "verifier": s.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")}
	resp := e.post(req)
	if resp.status != http.StatusServiceUnavailable || !strings.Contains(resp.json(t)["message"].(string), "retry the same request") {
		t.Fatalf("%d %s", resp.status, resp.body)
	}
	if r, p, i := e.counts(); r != 0 || p != 1 || i != 0 {
		t.Fatalf("%d records, %d pending, %d index keys", r, p, i)
	}

	e.reopen()
	if v := metricValue(t, e.store.metrics.pending); v != 1 {
		t.Fatalf("pending gauge after restart %v", v)
	}
	e.log.err = nil
	if resp := e.post(req); resp.status != http.StatusCreated {
		t.Fatalf("resubmit: %d %s", resp.status, resp.body)
	}
	if r, p, _ := e.counts(); r != 1 || p != 0 {
		t.Fatalf("%d records, %d pending", r, p)
	}
	if v := metricValue(t, e.store.metrics.pending); v != 0 {
		t.Fatalf("pending gauge %v", v)
	}
}

// An entry that is not the one requested is never linked to the envelope.
func TestLogReturnsWrongEntry(t *testing.T) { testLogReturnsWrongEntry(t, newEnv) }

func testLogReturnsWrongEntry(t *testing.T, newEnv envMaker) {
	e := newEnv(t)
	s := e.ca.issue(t, "alice@example.com", "https://accounts.example.com")
	cases := map[string]func(*rekorv2.HashedRekordRequestV002) *rekorv1.TransparencyLogEntry{
		"other digest": func(req *rekorv2.HashedRekordRequestV002) *rekorv1.TransparencyLogEntry {
			other := sha256.Sum256([]byte("other"))
			return fakeEntry(0, &rekorv2.HashedRekordRequestV002{Digest: other[:], Signature: req.GetSignature()})
		},
		"no proof": func(req *rekorv2.HashedRekordRequestV002) *rekorv1.TransparencyLogEntry {
			te := fakeEntry(0, req)
			te.InclusionProof = nil
			return te
		},
		"dsse kind": func(req *rekorv2.HashedRekordRequestV002) *rekorv1.TransparencyLogEntry {
			te := fakeEntry(0, req)
			te.KindVersion.Kind = "dsse"
			return te
		},
	}
	for name, answer := range cases {
		t.Run(name, func(t *testing.T) {
			e.log.answer = answer
			resp := e.post(map[string]any{"envelope": s.sign(t, InTotoPayloadType, statement(slsa, hexDigest(name))), "verifier": s.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")})
			if resp.status != http.StatusServiceUnavailable {
				t.Fatalf("%d %s", resp.status, resp.body)
			}
			if r, _, i := e.counts(); r+i != 0 {
				t.Fatalf("stored %d records, %d index keys", r, i)
			}
		})
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	dir := t.TempDir()
	// Port 1 answers nothing: every refusal below comes before connecting.
	const dsn = "signet:pw@tcp(127.0.0.1:1)/attestations"
	for name, c := range map[string]struct {
		opts Options
		want string
	}{
		"no path":              {Options{Log: &fakeLog{}}, "no database; set Options.Path"},
		"path and DSN":         {Options{Path: dir + "/a.db", DSN: dsn, Log: &fakeLog{}}, "both a database file (Options.Path) and a MySQL database (Options.DSN) are set"},
		"no log":               {Options{Path: dir + "/a.db"}, "no transparency log"},
		"negative max size":    {Options{Path: dir + "/a.db", Log: &fakeLog{}, MaxEnvelopeBytes: -1}, "maxEnvelopeBytes is -1"},
		"path is a dir":        {Options{Path: dir, Log: &fakeLog{}}, dir},
		"DSN does not parse":   {Options{DSN: "signet:pw@tcp(127.0.0.1:1", Log: &fakeLog{}}, "the database DSN does not parse"},
		"DSN without database": {Options{DSN: "signet:pw@tcp(127.0.0.1:1)/", Log: &fakeLog{}}, "names no database"},
	} {
		s, err := New(c.opts)
		if err == nil {
			s.Close()
			t.Errorf("%s: accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to say %q", name, err, c.want)
		}
	}
}

func TestDatabaseLocked(t *testing.T) {
	defer func(d time.Duration) { lockTimeout = d }(lockTimeout)
	lockTimeout = 50 * time.Millisecond
	e := newEnv(t)
	_, err := New(Options{Path: e.path, Log: e.log})
	if err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second open: %v", err)
	}
}

// An attestation a client logged itself as a dsse entry is kept once and
// found like a submitted one.
func TestKeepLogged(t *testing.T) { testKeepLogged(t, newEnv) }

func testKeepLogged(t *testing.T, newEnv envMaker) {
	e := newEnv(t)
	s := e.ca.issue(t, "alice@example.com", "https://accounts.example.com")
	var env dssepb.Envelope
	var ver rekorv2.Verifier
	for _, c := range []struct {
		v   any
		msg proto.Message
	}{{s.sign(t, InTotoPayloadType, statement(slsa, hexDigest("kept"))), &env}, {s.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256"), &ver}} {
		b, _ := json.Marshal(c.v)
		if err := protojson.Unmarshal(b, c.msg); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := e.store.validator.validate(&env, &ver)
	if err != nil {
		t.Fatal(err)
	}
	entry := fakeEntry(41, sub.request)
	for range 2 {
		e.store.KeepLogged(context.Background(), &env, &ver, entry)
	}
	p := e.query(t, url.Values{"digest": {"sha256:" + hexDigest("kept")}})
	if got := ids(p); len(got) != 1 || got[0] != sub.id || p.Attestations[0].Entry.GetLogIndex() != 41 {
		t.Fatalf("kept: %v", got)
	}
	if r, pending, _ := e.counts(); r != 1 || pending != 0 {
		t.Fatalf("%d records, %d pending", r, pending)
	}
	if e.log.count() != 0 {
		t.Fatalf("the log was asked to append %d entries", e.log.count())
	}
	// Submitting it as well is a duplicate, and logs nothing.
	if resp := e.post(map[string]any{"envelope": json.RawMessage(must(protojson.Marshal(&env))), "verifier": json.RawMessage(must(protojson.Marshal(&ver)))}); resp.status != http.StatusConflict {
		t.Fatalf("submitting a kept attestation: %d %s", resp.status, resp.body)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
