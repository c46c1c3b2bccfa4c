package attest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	jsoncanonicalizer "github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"
	commonpb "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/signet-dev/signet/core/certext"
)

// fakeLog stands in for server/tlog: it records what it was asked to append
// and answers with an entry built from the request, the way the log would.
type fakeLog struct {
	mu     sync.Mutex
	calls  []*rekorv2.HashedRekordRequestV002
	err    error
	answer func(*rekorv2.HashedRekordRequestV002) *rekorv1.TransparencyLogEntry
	next   int64
	// entered, when set, is signalled as an append starts, which then waits
	// for release: a log slow to integrate.
	entered, release chan struct{}
}

func (f *fakeLog) AppendHashedRekord(_ context.Context, req *rekorv2.HashedRekordRequestV002) (*rekorv1.TransparencyLogEntry, error) {
	if f.entered != nil {
		f.entered <- struct{}{}
		<-f.release
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, proto.Clone(req).(*rekorv2.HashedRekordRequestV002))
	if f.err != nil {
		return nil, f.err
	}
	if f.answer != nil {
		return f.answer(req), nil
	}
	idx := f.next
	f.next++
	return fakeEntry(idx, req), nil
}

func (f *fakeLog) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func fakeEntry(idx int64, req *rekorv2.HashedRekordRequestV002) *rekorv1.TransparencyLogEntry {
	body, err := protojson.Marshal(&rekorv2.Entry{
		Kind:       "hashedrekord",
		ApiVersion: "0.0.2",
		Spec: &rekorv2.Spec{Spec: &rekorv2.Spec_HashedRekordV002{HashedRekordV002: &rekorv2.HashedRekordLogEntryV002{
			Data:      &commonpb.HashOutput{Algorithm: commonpb.HashAlgorithm_SHA2_256, Digest: req.GetDigest()},
			Signature: req.GetSignature(),
		}}},
	})
	if err != nil {
		panic(err)
	}
	body, err = jsoncanonicalizer.Transform(body)
	if err != nil {
		panic(err)
	}
	root := sha256.Sum256(body)
	return &rekorv1.TransparencyLogEntry{
		LogIndex:    idx,
		LogId:       &commonpb.LogId{KeyId: []byte("fake-log")},
		KindVersion: &rekorv1.KindVersion{Kind: "hashedrekord", Version: "0.0.2"},
		InclusionProof: &rekorv1.InclusionProof{
			LogIndex: idx, RootHash: root[:], TreeSize: idx + 1,
			Checkpoint: &rekorv1.Checkpoint{Envelope: fmt.Sprintf("fake\n%d\n%s\n\n— fake sig\n", idx+1, base64.StdEncoding.EncodeToString(root[:]))},
		},
		CanonicalizedBody: body,
	}
}

// testCA issues Fulcio-like signing certificates.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test-root"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

type signer struct {
	key  crypto.Signer
	cert []byte // DER; nil for a bare key
}

// issue makes a certificate for san (email or URI) with issuer in the
// Fulcio v2 issuer extension.
func (ca *testCA) issue(t testing.TB, san, issuer string, extraSANs ...string) *signer {
	t.Helper()
	return ca.issueValid(t, time.Now().Add(-time.Minute), time.Now().Add(10*time.Minute), san, issuer, extraSANs...)
}

// issueValid is issue with the certificate valid from notBefore to notAfter.
func (ca *testCA) issueValid(t testing.TB, notBefore, notAfter time.Time, san, issuer string, extraSANs ...string) *signer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	for _, s := range append([]string{san}, extraSANs...) {
		if s == "" {
			continue
		}
		if u, err := url.Parse(s); err == nil && u.Scheme != "" {
			tmpl.URIs = append(tmpl.URIs, u)
		} else {
			tmpl.EmailAddresses = append(tmpl.EmailAddresses, s)
		}
	}
	if issuer != "" {
		v, _ := asn1.MarshalWithParams(issuer, "utf8")
		tmpl.ExtraExtensions = []pkix.Extension{{Id: certext.OIDIssuerV2, Value: v}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{key: key, cert: der}
}

func newKeySigner(t testing.TB) *signer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{key: key}
}

func (s *signer) verifierJSON(t testing.TB, details string) map[string]any {
	t.Helper()
	if s.cert != nil {
		return map[string]any{"x509Certificate": map[string]any{"rawBytes": s.cert}, "keyDetails": details}
	}
	der, err := x509.MarshalPKIXPublicKey(s.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"publicKey": map[string]any{"rawBytes": der}, "keyDetails": details}
}

// sign makes a DSSE envelope (bundle JSON form) over payload.
func (s *signer) sign(t testing.TB, payloadType string, payload []byte) map[string]any {
	t.Helper()
	d := sha256.Sum256(ssldsse.PAE(payloadType, payload))
	sig, err := s.key.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"payload": payload, "payloadType": payloadType, "signatures": []any{map[string]any{"sig": sig, "keyid": ""}}}
}

func statement(predicateType string, digests ...string) []byte {
	var subj []map[string]any
	for i, d := range digests {
		subj = append(subj, map[string]any{"name": fmt.Sprintf("artifact-%d", i), "digest": map[string]string{"sha256": d}})
	}
	b, _ := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       subj,
		"predicateType": predicateType,
		"predicate":     map[string]any{"builder": map[string]any{"id": "test"}},
	})
	return b
}

func hexDigest(s string) string {
	d := sha256.Sum256([]byte(s))
	return fmt.Sprintf("%x", d)
}

// env is one store behind an HTTP server, with a fake log.
type env struct {
	t     testing.TB
	path  string // the bbolt file, or
	dsn   string // the MySQL database
	log   *fakeLog
	store *Store
	srv   *httptest.Server
	reg   *prometheus.Registry
	ca    *testCA
}

// envMaker opens an env: newEnv on a bbolt file, or mysqlEnvs on a new
// MySQL database. Tests of the store's behaviour take one, so that one
// body runs on both backends.
type envMaker func(t testing.TB, mutate ...func(*Options)) *env

// newEnv opens a store on a new bbolt file.
func newEnv(t testing.TB, mutate ...func(*Options)) *env {
	t.Helper()
	return startEnv(t, &env{path: filepath.Join(t.TempDir(), "attestations.db")}, mutate...)
}

func startEnv(t testing.TB, e *env, mutate ...func(*Options)) *env {
	t.Helper()
	e.t = t
	if e.log == nil {
		e.log = &fakeLog{}
	}
	if e.ca == nil {
		e.ca = newTestCA(t)
	}
	e.open(mutate...)
	t.Cleanup(func() {
		e.srv.Close()
		_ = e.store.Close()
	})
	return e
}

func (e *env) open(mutate ...func(*Options)) {
	e.t.Helper()
	e.reg = prometheus.NewRegistry()
	opts := Options{Path: e.path, DSN: e.dsn, Log: e.log, Metrics: e.reg, Roots: e.ca.pool}
	for _, m := range mutate {
		m(&opts)
	}
	s, err := New(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.store = s
	mux := http.NewServeMux()
	s.Register(mux)
	e.srv = httptest.NewServer(mux)
}

// reopen closes the store and opens a new one on the same database file.
func (e *env) reopen(mutate ...func(*Options)) {
	e.t.Helper()
	e.srv.Close()
	if err := e.store.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open(mutate...)
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, r.body)
	}
	return m
}

func (e *env) do(method, path string, body io.Reader) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func (e *env) post(v any) response {
	e.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.do(http.MethodPost, "/api/v2/attestations", bytes.NewReader(b))
}

func (e *env) get(path string) response {
	e.t.Helper()
	return e.do(http.MethodGet, path, nil)
}

// counts reports how many records, pending markers and index entries the
// database holds.
func (e *env) counts() (records, pending, index int) {
	e.t.Helper()
	var err error
	switch b := e.store.recs.(type) {
	case *boltRecords:
		err = b.db.View(func(tx *bolt.Tx) error {
			records = tx.Bucket(bucketRecords).Stats().KeyN
			pending = tx.Bucket(bucketPending).Stats().KeyN
			for _, b := range [][]byte{bucketSubject, bucketPredicate, bucketIdentity, bucketIssuer} {
				index += tx.Bucket(b).Stats().KeyN
			}
			return nil
		})
	case *sqlRecords:
		err = b.db.QueryRow(`SELECT (SELECT COUNT(*) FROM SignetAttestationRecords), (SELECT COUNT(*) FROM SignetAttestationPending),
			(SELECT COUNT(*) FROM SignetAttestationIndex)`).Scan(&records, &pending, &index)
	default:
		e.t.Fatalf("no counts for %T", b)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return
}

// rawRecord is the stored form of record id.
func (e *env) rawRecord(id string) []byte {
	e.t.Helper()
	var raw []byte
	var err error
	switch b := e.store.recs.(type) {
	case *boltRecords:
		err = b.db.View(func(tx *bolt.Tx) error {
			raw = bytes.Clone(tx.Bucket(bucketRecords).Get([]byte(id)))
			return nil
		})
	case *sqlRecords:
		err = b.db.QueryRow("SELECT record FROM SignetAttestationRecords WHERE id = ?", id).Scan(&raw)
	}
	if err != nil || raw == nil {
		e.t.Fatalf("record %s: %v", id, err)
	}
	return raw
}

func readInterop(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "interop", name))
	if err != nil {
		t.Fatalf("interop material: %v", err)
	}
	return b
}

// metricValue reads a counter or gauge.
func metricValue(t testing.TB, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	switch {
	case out.Counter != nil:
		return out.Counter.GetValue()
	case out.Gauge != nil:
		return out.Gauge.GetValue()
	}
	t.Fatalf("metric %v is neither a counter nor a gauge", m.Desc())
	return 0
}
