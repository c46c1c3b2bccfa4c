package attest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	sgroot "github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/signet-dev/signet/core/bundle"
	coretrust "github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/core/verify"
	"github.com/signet-dev/signet/server/storage"
	"github.com/signet-dev/signet/server/tlog"
	"github.com/signet-dev/signet/server/trust"
	"github.com/signet-dev/signet/server/tsa"
)

const (
	bundleIdentity = "https://github.com/acme/widget/.github/workflows/release.yml@refs/heads/main"
	bundleIssuer   = "https://token.actions.githubusercontent.com"
)

// stack is a store on signet's real log and TSA, with the key set a new
// server generates, and the trusted root the server would publish for them.
type stack struct {
	*env
	tsa         *tsa.TSA
	trustedRoot []byte
}

// testKeys is the key set a new server generates.
func testKeys(t *testing.T) (*storage.Dir, *storage.Keys) {
	t.Helper()
	dir, err := storage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dir.Close() })
	keys, err := dir.Keys(storage.KeyFiles{}, "signet test")
	if err != nil {
		t.Fatal(err)
	}
	return dir, keys
}

func testTSA(t *testing.T, keys *storage.Keys) *tsa.TSA {
	t.Helper()
	if keys == nil {
		_, keys = testKeys(t)
	}
	stamper, err := tsa.New(tsa.Options{Signer: keys.TSA, Chain: keys.TSAChain, Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return stamper
}

func newStack(t *testing.T) *stack {
	t.Helper()
	dir, keys := testKeys(t)
	l, err := tlog.Open(context.Background(), tlog.Options{
		Dir: dir.LogDir(), Signer: keys.Log, Origin: "signet.test",
		CheckpointInterval: 100 * time.Millisecond, BatchMaxAge: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	stamper := testTSA(t, keys)
	files, err := trust.Build(trust.Inputs{
		BaseURL: "https://signet.test", CAChain: keys.CAChain,
		LogPublicKey: l.PublicKey(), LogID: l.LogID(), LogValidFrom: keys.LogCreated,
		TSAChain: keys.TSAChain,
	})
	if err != nil {
		t.Fatal(err)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(keys.CAChain[len(keys.CAChain)-1])
	for _, c := range keys.CAChain[:len(keys.CAChain)-1] {
		inters.AddCert(c)
	}
	e := newEnv(t)
	e.ca = &testCA{cert: keys.CAChain[0], key: keys.CA, pool: roots}
	e.reopen(func(o *Options) {
		o.Log, o.Roots, o.Intermediates, o.Timestamp = l, roots, inters, stamper.Timestamp
	})
	return &stack{env: e, tsa: stamper, trustedRoot: files.TrustedRoot}
}

// issue makes a signing certificate valid from the CA's start, which is
// now: the CA of a new key set is no older than its certificates may be.
func (st *stack) issue(t *testing.T, san, issuer string) *signer {
	t.Helper()
	return st.ca.issueValid(t, st.ca.cert.NotBefore, time.Now().Add(10*time.Minute), san, issuer)
}

// submit stores an attestation about subject signed by s and returns its id.
func (e *env) submit(s *signer, subject string) string {
	e.t.Helper()
	resp := e.post(map[string]any{"envelope": s.sign(e.t, InTotoPayloadType, statement(slsa, hexDigest(subject))), "verifier": s.verifierJSON(e.t, "PKIX_ECDSA_P256_SHA_256")})
	if resp.status != http.StatusCreated {
		e.t.Fatalf("submit: %d %s", resp.status, resp.body)
	}
	return resp.json(e.t)["attestationId"].(string)
}

// bundle fetches the bundle of attestation id, which must parse.
func (st *stack) bundle(id string) (*bundle.Bundle, []byte) {
	st.t.Helper()
	got := st.get("/api/v2/attestations/" + id + "/bundle")
	if got.status != http.StatusOK {
		st.t.Fatalf("bundle: %d %s", got.status, got.body)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		st.t.Errorf("bundle Content-Type %q", ct)
	}
	b, err := bundle.Parse(got.body)
	if err != nil {
		st.t.Fatalf("core/bundle refuses the answer: %v\n%s", err, got.body)
	}
	return b, got.body
}

// verifier is signet's verifier for the stack's trusted root.
func (st *stack) verifier() *verify.Verifier {
	st.t.Helper()
	root, err := coretrust.ParseRoot(st.trustedRoot)
	if err != nil {
		st.t.Fatal(err)
	}
	return verify.New(root)
}

// sigstoreGo is sigstore-go's verifier for the stack's trusted root and any
// extra trusted material (a key), requiring a timestamp and a log entry,
// and the bundle as it reads it.
func (st *stack) sigstoreGo(raw []byte, extra ...sgroot.TrustedMaterial) (*sgverify.Verifier, *sgbundle.Bundle) {
	st.t.Helper()
	tr, err := sgroot.NewTrustedRootFromJSON(st.trustedRoot)
	if err != nil {
		st.t.Fatal(err)
	}
	v, err := sgverify.NewVerifier(append(sgroot.TrustedMaterialCollection{tr}, extra...), sgverify.WithSignedTimestamps(1), sgverify.WithTransparencyLog(1))
	if err != nil {
		st.t.Fatal(err)
	}
	var b sgbundle.Bundle
	if err := b.UnmarshalJSON(raw); err != nil {
		st.t.Fatal(err)
	}
	return v, &b
}

func subjectDigest(subject string) verify.Digest {
	d := sha256.Sum256([]byte(subject))
	return verify.Digest{Algorithm: crypto.SHA256, Value: d[:]}
}

// The bundle the store serves for a digest's attestation verifies offline
// against the trusted root, with signet's verifier and with sigstore-go,
// for the signer and the subject it names and no other.
func TestBundleVerifies(t *testing.T) {
	st := newStack(t)
	alice := st.issue(t, bundleIdentity, bundleIssuer)
	id := st.submit(alice, "widget-1.0.tar.gz")

	b, raw := st.bundle(id)
	if b.MediaType() != bundle.MediaTypeV03 || !bytes.Equal(b.CertificateDER(), alice.cert) || len(b.TlogEntries()) != 1 || len(b.RFC3161Timestamps()) != 1 {
		t.Fatalf("bundle %s", raw)
	}
	rec, err := st.store.get(context.Background(), id)
	if err != nil || rec == nil || !bytes.Equal(b.RFC3161Timestamps()[0], rec.SignedTimestamp) {
		t.Fatalf("the bundle's timestamp is not the stored one (%v)", err)
	}
	// The attestation as GET and queries answer it carries the timestamp.
	var answered Record
	if err := answered.UnmarshalJSON(st.get("/api/v2/attestations/" + id).body); err != nil || !bytes.Equal(answered.SignedTimestamp, rec.SignedTimestamp) {
		t.Fatalf("GET answers signedTimestamp %x (%v), stored %x", answered.SignedTimestamp, err, rec.SignedTimestamp)
	}

	v := st.verifier()
	policy := verify.Policy{Identity: verify.Exact(bundleIdentity), Issuer: verify.Exact(bundleIssuer)}
	res, err := v.VerifyAttestation(context.Background(), b, subjectDigest("widget-1.0.tar.gz"), policy, slsa)
	if err != nil {
		t.Fatalf("core/verify rejects the served bundle: %v", err)
	}
	if len(res.Times) != 1 || !strings.HasPrefix(res.Times[0].Source, "rfc3161") || len(res.Entries) != 1 || res.Entries[0].LogIndex != rec.Entry.GetLogIndex() {
		t.Errorf("verified times %+v entries %+v", res.Times, res.Entries)
	}
	if _, err := v.VerifyAttestation(context.Background(), b, subjectDigest("other"), policy, slsa); err == nil {
		t.Error("core/verify accepted the bundle for a subject it does not name")
	}
	other := verify.Policy{Identity: verify.Exact("https://github.com/evil/widget/.github/workflows/release.yml@refs/heads/main"), Issuer: verify.Exact(bundleIssuer)}
	if _, err := v.VerifyAttestation(context.Background(), b, subjectDigest("widget-1.0.tar.gz"), other, slsa); err == nil {
		t.Error("core/verify accepted the bundle for another signer")
	}

	sv, sb := st.sigstoreGo(raw)
	ident, err := sgverify.NewShortCertificateIdentity(bundleIssuer, "", bundleIdentity, "")
	if err != nil {
		t.Fatal(err)
	}
	d := subjectDigest("widget-1.0.tar.gz").Value
	if _, err := sv.Verify(sb, sgverify.NewPolicy(sgverify.WithArtifactDigest("sha256", d), sgverify.WithCertificateIdentity(ident))); err != nil {
		t.Fatalf("sigstore-go rejects the served bundle: %v", err)
	}
	// Without the timestamp, nothing proves when the short-lived
	// certificate signed: the one the store kept is what makes it verify.
	sb.VerificationMaterial.TimestampVerificationData = nil
	if _, err := sv.Verify(sb, sgverify.NewPolicy(sgverify.WithArtifactDigest("sha256", d), sgverify.WithCertificateIdentity(ident))); err == nil {
		t.Fatal("sigstore-go accepted the bundle without its timestamp")
	}
}

// A key-signed attestation's bundle names the key by the hint signet's
// signer writes, and verifies with that key trusted.
func TestBundleOfKeySignedAttestation(t *testing.T) {
	st := newStack(t)
	key := newKeySigner(t)
	id := st.submit(key, "lib.so")
	b, raw := st.bundle(id)
	der, _ := x509.MarshalPKIXPublicKey(key.key.Public())
	sum := sha256.Sum256(der)
	hint := b.Proto().GetVerificationMaterial().GetPublicKey().GetHint()
	if b.CertificateDER() != nil || hint != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("verification material %v, want the public key hint %s", b.Proto().GetVerificationMaterial(), base64.StdEncoding.EncodeToString(sum[:]))
	}
	if _, err := st.verifier().VerifyAttestation(context.Background(), b, subjectDigest("lib.so"), verify.Policy{Key: key.key.Public()}, slsa); err != nil {
		t.Fatalf("core/verify rejects the key-signed bundle: %v", err)
	}

	kv, err := signature.LoadVerifier(key.key.Public(), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	keys := sgroot.NewTrustedPublicKeyMaterialFromMapping(map[string]*sgroot.ExpiringKey{hint: sgroot.NewExpiringKey(kv, time.Time{}, time.Time{})})
	sv, sb := st.sigstoreGo(raw, keys)
	if _, err := sv.Verify(sb, sgverify.NewPolicy(sgverify.WithArtifactDigest("sha256", subjectDigest("lib.so").Value), sgverify.WithKey())); err != nil {
		t.Fatalf("sigstore-go rejects the key-signed bundle: %v", err)
	}
}

// A TSA that fails refuses the submission with 503 before anything is
// logged: no log entry, no record, no pending marker.
func TestTimestampFailureStoresNothing(t *testing.T) { testTimestampFailureStoresNothing(t, newEnv) }

func testTimestampFailureStoresNothing(t *testing.T, newEnv envMaker) {
	stamper := testTSA(t, nil)
	for name, stamp := range map[string]func(context.Context, []byte) ([]byte, error){
		"error": func(context.Context, []byte) ([]byte, error) {
			return nil, errors.New("the TSA signing certificate is valid from ... to ..., not now")
		},
		"not a timestamp": func(context.Context, []byte) ([]byte, error) { return []byte("garbage"), nil },
		"over another signature": func(ctx context.Context, _ []byte) ([]byte, error) {
			return stamper.Timestamp(ctx, []byte("some other signature"))
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.Timestamp = stamp })
			s := e.ca.issue(t, "alice@example.com", "https://accounts.example.com")
			resp := e.post(map[string]any{"envelope": s.sign(t, InTotoPayloadType, statement(slsa, hexDigest("a"))), "verifier": s.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")})
			if resp.status != http.StatusServiceUnavailable || !strings.Contains(string(resp.body), "timestamp authority could not timestamp") {
				t.Fatalf("status %d: %s", resp.status, resp.body)
			}
			if strings.Contains(string(resp.body), "valid from") {
				t.Errorf("the answer gives away the TSA's error: %s", resp.body)
			}
			if n := e.log.count(); n != 0 {
				t.Errorf("the log was asked to append %d entries", n)
			}
			if records, pending, index := e.counts(); records != 0 || pending != 0 || index != 0 {
				t.Errorf("records %d pending %d index %d, want none", records, pending, index)
			}
			if v := metricValue(t, e.store.metrics.submissions.WithLabelValues("timestamp_unavailable")); v != 1 {
				t.Errorf("timestamp_unavailable submissions %v", v)
			}
			if v := metricValue(t, e.store.metrics.pending); v != 0 {
				t.Errorf("pending gauge %v", v)
			}
		})
	}
}

// A marker an earlier, interrupted attempt left stays when a retry fails at
// the TSA: that attempt may have been appended.
func TestTimestampFailureKeepsEarlierMarker(t *testing.T) {
	testTimestampFailureKeepsEarlierMarker(t, newEnv)
}

func testTimestampFailureKeepsEarlierMarker(t *testing.T, newEnv envMaker) {
	stamper := testTSA(t, nil)
	e := newEnv(t, func(o *Options) { o.Timestamp = stamper.Timestamp })
	e.log.err = errors.New("connection reset") // appended or not: unknown
	s := e.ca.issue(t, "alice@example.com", "https://accounts.example.com")
	body := map[string]any{"envelope": s.sign(t, InTotoPayloadType, statement(slsa, hexDigest("a"))), "verifier": s.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")}
	if resp := e.post(body); resp.status != http.StatusServiceUnavailable || !strings.Contains(string(resp.body), "transparency log") {
		t.Fatalf("log down: %d %s", resp.status, resp.body)
	}
	e.reopen(func(o *Options) {
		o.Timestamp = func(context.Context, []byte) ([]byte, error) { return nil, errors.New("down") }
	})
	e.log.err = nil
	if resp := e.post(body); resp.status != http.StatusServiceUnavailable || !strings.Contains(string(resp.body), "timestamp authority") {
		t.Fatalf("TSA down: %d %s", resp.status, resp.body)
	}
	if records, pending, _ := e.counts(); records != 0 || pending != 1 {
		t.Fatalf("records %d pending %d, want the earlier attempt's marker kept", records, pending)
	}
	if e.log.count() != 1 {
		t.Fatalf("the log was asked %d times, want once (the first attempt)", e.log.count())
	}
	// With the TSA back, resubmitting completes it.
	e.reopen(func(o *Options) { o.Timestamp = stamper.Timestamp })
	if resp := e.post(body); resp.status != http.StatusCreated {
		t.Fatalf("TSA back: %d %s", resp.status, resp.body)
	}
	if records, pending, _ := e.counts(); records != 1 || pending != 0 {
		t.Fatalf("records %d pending %d", records, pending)
	}
}

// An attestation submitted after its certificate expired is stored, as
// before, but without a timestamp: one taken now would not fall within the
// certificate's validity, so no verifier would accept it.
func TestExpiredCertificateStoredWithoutTimestamp(t *testing.T) {
	testExpiredCertificateStoredWithoutTimestamp(t, newEnv)
}

func testExpiredCertificateStoredWithoutTimestamp(t *testing.T, newEnv envMaker) {
	stamper := testTSA(t, nil)
	e := newEnv(t, func(o *Options) { o.Timestamp = stamper.Timestamp })
	s := e.ca.issueValid(t, time.Now().Add(-30*time.Minute), time.Now().Add(-20*time.Minute), "alice@example.com", "https://accounts.example.com")
	id := e.submit(s, "a")
	rec, err := e.store.get(context.Background(), id)
	if err != nil || rec == nil || rec.SignedTimestamp != nil {
		t.Fatalf("record %v (%v), want it stored without a timestamp", rec, err)
	}
	got := e.get("/api/v2/attestations/" + id + "/bundle")
	if got.status != http.StatusNotFound || !strings.Contains(string(got.body), "outside its signing certificate's validity") || !strings.Contains(string(got.body), "the one the signer wrote") {
		t.Fatalf("bundle: %d %s", got.status, got.body)
	}
}

// The bundle route takes ids as GET /api/v2/attestations/{id} does.
func TestBundleIDs(t *testing.T) { testBundleIDs(t, newEnv) }

func testBundleIDs(t *testing.T, newEnv envMaker) {
	e := newEnv(t, func(o *Options) { o.Timestamp = testTSA(t, nil).Timestamp })
	for path, want := range map[string]int{
		"/api/v2/attestations/" + strings.Repeat("a", 64) + "/bundle":    http.StatusNotFound,
		"/api/v2/attestations/" + strings.Repeat("A", 64) + "/bundle":    http.StatusBadRequest,
		"/api/v2/attestations/" + strings.Repeat("a", 63) + "/bundle":    http.StatusBadRequest,
		"/api/v2/attestations/" + strings.Repeat("a", 1<<12) + "/bundle": http.StatusBadRequest,
	} {
		got := e.get(path)
		if got.status != want || !strings.Contains(string(got.body), `"message"`) {
			t.Errorf("%s: %d %s, want %d", path[:min(len(path), 100)], got.status, got.body, want)
		}
	}
	if got := e.do(http.MethodPost, "/api/v2/attestations/"+strings.Repeat("a", 64)+"/bundle", nil); got.status != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", got.status)
	}
}

// Records stored without a timestamp (by an older server, or a store with
// no TSA) still load, and their bundle is refused with the reason.
func TestBundleOfRecordWithoutTimestamp(t *testing.T) { testBundleOfRecordWithoutTimestamp(t, newEnv) }

func testBundleOfRecordWithoutTimestamp(t *testing.T, newEnv envMaker) {
	e := newEnv(t) // no TSA, as every store was before timestamps
	s := e.ca.issue(t, "alice@example.com", "https://accounts.example.com")
	id := e.submit(s, "a")
	raw := e.rawRecord(id)
	if bytes.Contains(raw, []byte("signedTimestamp")) {
		t.Fatalf("a record without a timestamp is stored as %s, not in the older form", raw)
	}
	got := e.get("/api/v2/attestations/" + id + "/bundle")
	if got.status != http.StatusNotFound || !strings.Contains(string(got.body), "keeps none") || !strings.Contains(string(got.body), "the one the signer wrote") {
		t.Fatalf("no TSA: %d %s", got.status, got.body)
	}

	// The server now keeps timestamps; the old record is still there.
	e.reopen(func(o *Options) { o.Timestamp = testTSA(t, nil).Timestamp })
	if g := e.get("/api/v2/attestations/" + id); g.status != http.StatusOK {
		t.Fatalf("the old record does not load: %d %s", g.status, g.body)
	}
	got = e.get("/api/v2/attestations/" + id + "/bundle")
	if got.status != http.StatusNotFound || !strings.Contains(string(got.body), "stored before this server kept timestamps") || !strings.Contains(string(got.body), "the one the signer wrote") {
		t.Fatalf("old record: %d %s", got.status, got.body)
	}
}
