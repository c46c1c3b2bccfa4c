package tlog

import (
	"log"

	"github.com/go-sql-driver/mysql"

	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	commonv1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgtlog "github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
	f_log "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/proto"
	"k8s.io/klog/v2"
)

func TestMain(m *testing.M) {
	// tessera logs through klog; keep test output readable.
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	klog.SetOutput(io.Discard)
	_ = mysql.SetLogger(log.New(io.Discard, "", 0)) // the outage tests' dropped connections
	if spec := os.Getenv(crashHelperEnv); spec != "" {
		crashHelper(spec)
		return
	}
	os.Exit(m.Run())
}

// trustedRoot is the trusted root a verifier would hold for tl.
func (tl *testLog) trustedRoot(t *testing.T) *root.TrustedRoot {
	t.Helper()
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, nil, nil, nil, map[string]*root.TransparencyLog{
		hex.EncodeToString(tl.LogID()): {
			BaseURL:             "https://" + testOrigin,
			ID:                  tl.LogID(),
			ValidityPeriodStart: time.Now().Add(-time.Hour),
			HashFunc:            0, // SHA-256 Merkle tree
			PublicKey:           tl.PublicKey(),
			SignatureHashFunc:   0, // Ed25519
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// verifyWithSigstoreGo checks tle the way sigstore-go verifies a Rekor v2
// entry in a bundle: it rebuilds the entry from the bundle's signature,
// digest and certificate, hashes it, and checks the proof and checkpoint.
func verifyWithSigstoreGo(t *testing.T, tl *testLog, s *signer, req *rekorv2.HashedRekordRequestV002, tle *rekorv1.TransparencyLogEntry) error {
	t.Helper()
	pb := &protobundle.Bundle{
		MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content:     &protobundle.VerificationMaterial_Certificate{Certificate: &commonv1.X509Certificate{RawBytes: s.cert.Raw}},
			TlogEntries: []*rekorv1.TransparencyLogEntry{tle},
		},
		Content: &protobundle.Bundle_MessageSignature{MessageSignature: &commonv1.MessageSignature{
			MessageDigest: &commonv1.HashOutput{Algorithm: commonv1.HashAlgorithm_SHA2_256, Digest: req.GetDigest()},
			Signature:     req.GetSignature().GetContent(),
		}},
	}
	b, err := bundle.NewBundle(pb)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	_, err = verify.VerifyTlogEntry(b, tl.trustedRoot(t), 1, false)
	return err
}

func TestAppendOverHTTPVerifiesWithSigstoreGo(t *testing.T) {
	tl := openTestLog(t, "", nil, nil)
	s := newECDSASigner(t)
	var last *rekorv1.TransparencyLogEntry
	for i := range 3 {
		req := s.request(t, []byte(fmt.Sprintf("artifact %d", i)))
		status, body := post(t, http.DefaultClient, tl.srv.URL, createEntryJSON(t, req))
		if status != http.StatusCreated {
			t.Fatalf("status %d: %s", status, body)
		}
		tle := decodeTLE(t, body)
		if tle.GetLogIndex() != int64(i) || tle.GetInclusionProof().GetLogIndex() != int64(i) {
			t.Fatalf("entry %d got logIndex %d", i, tle.GetLogIndex())
		}
		if kv := tle.GetKindVersion(); kv.GetKind() != "hashedrekord" || kv.GetVersion() != "0.0.2" {
			t.Fatalf("kindVersion %v", kv)
		}
		if !bytes.Equal(tle.GetLogId().GetKeyId(), tl.LogID()) {
			t.Fatal("logId.keyId is not the log ID")
		}
		if err := verifyWithSigstoreGo(t, tl, s, req, tle); err != nil {
			t.Fatalf("sigstore-go rejects entry %d: %v", i, err)
		}
		last = tle
		// The entry must be readable back through sigstore-go's own parser too.
		e, err := sgtlog.ParseTransparencyLogEntry(tle)
		if err != nil {
			t.Fatal(err)
		}
		v, err := signature.LoadVerifier(tl.PublicKey(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := sgtlog.VerifyCheckpointAndInclusion(e, v, testOrigin); err != nil {
			t.Fatalf("VerifyCheckpointAndInclusion: %v", err)
		}
	}

	// Tampering must be caught by the same verifier, so the check above is not vacuous.
	bad := proto.Clone(last).(*rekorv1.TransparencyLogEntry)
	bad.InclusionProof.RootHash[0] ^= 1
	req := s.request(t, []byte("artifact 2"))
	if err := verifyWithSigstoreGo(t, tl, s, req, bad); err == nil {
		t.Fatal("sigstore-go accepted a changed root hash")
	}
	other := s.request(t, []byte("another artifact"))
	if err := verifyWithSigstoreGo(t, tl, s, other, last); err == nil {
		t.Fatal("sigstore-go accepted the entry for another artifact")
	}

	if got := counterValue(t, tl.metrics.appended.WithLabelValues("hashedrekord")); got != 3 {
		t.Fatalf("appended metric %v, want 3", got)
	}
}

func TestAppendEd25519PublicKey(t *testing.T) {
	tl := openTestLog(t, "", nil, nil)
	s := newEd25519Signer(t)
	req := s.request(t, []byte("ed25519 artifact"))
	tle, err := tl.AppendHashedRekord(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	e, err := sgtlog.ParseTransparencyLogEntry(tle)
	if err != nil {
		t.Fatal(err)
	}
	v, err := signature.LoadVerifier(tl.PublicKey(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := sgtlog.VerifyCheckpointAndInclusion(e, v, testOrigin); err != nil {
		t.Fatalf("VerifyCheckpointAndInclusion: %v", err)
	}
	var body map[string]any
	if err := json.Unmarshal(tle.GetCanonicalizedBody(), &body); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(tle.GetCanonicalizedBody()), `"algorithm":"SHA2_512"`) ||
		!strings.Contains(string(tle.GetCanonicalizedBody()), `"keyDetails":"PKIX_ED25519_PH"`) {
		t.Fatalf("body %s", tle.GetCanonicalizedBody())
	}
}

func TestRefusals(t *testing.T) {
	tl := openTestLog(t, "", nil, func(o *Options) { o.MaxRequestBytes = 16 << 10 })
	s := newECDSASigner(t)
	good := func() *rekorv2.HashedRekordRequestV002 { return s.request(t, []byte("artifact")) }
	edit := func(f func(*rekorv2.HashedRekordRequestV002)) []byte {
		r := good()
		f(r)
		return createEntryJSON(t, r)
	}
	rsaDetails := commonv1.PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256

	cases := []struct {
		name   string
		body   []byte
		status int
		msg    string
	}{
		{"not JSON", []byte("hello"), 400, "not a JSON CreateEntryRequest"},
		{"unknown field", []byte(`{"hashedRekordRequestV002":{},"extra":1}`), 400, "not a JSON CreateEntryRequest"},
		{"no entry", []byte(`{}`), 400, "request has no entry"},
		{"dsse without an envelope", []byte(`{"dsseRequestV002":{}}`), 400, "dsseRequestV002.envelope is missing"},
		{"empty hashedrekord", []byte(`{"hashedRekordRequestV002":{}}`), 400, "signature.content is empty"},
		{"digest too short", edit(func(r *rekorv2.HashedRekordRequestV002) { r.Digest = r.Digest[:20] }), 400, "digest is 20 bytes"},
		{"digest missing", edit(func(r *rekorv2.HashedRekordRequestV002) { r.Digest = nil }), 400, "digest is 0 bytes"},
		{"signature does not verify", edit(func(r *rekorv2.HashedRekordRequestV002) { r.Digest[0] ^= 1 }), 400, "verifying signature"},
		{"signature garbage", edit(func(r *rekorv2.HashedRekordRequestV002) { r.Signature.Content = []byte("nope") }), 400, "verifying signature"},
		{"keyDetails other curve", edit(func(r *rekorv2.HashedRekordRequestV002) {
			r.Signature.Verifier.KeyDetails = commonv1.PublicKeyDetails_PKIX_ECDSA_P384_SHA_384
		}), 400, "key is a ECDSA_P256_SHA_256 key but keyDetails is PKIX_ECDSA_P384_SHA_384"},
		{"keyDetails other type", edit(func(r *rekorv2.HashedRekordRequestV002) { r.Signature.Verifier.KeyDetails = rsaDetails }), 400, "but keyDetails is PKIX_RSA_PKCS1V15_2048_SHA256"},
		{"keyDetails missing", edit(func(r *rekorv2.HashedRekordRequestV002) { r.Signature.Verifier.KeyDetails = 0 }), 400, "keyDetails is missing"},
		{"pure ed25519", edit(func(r *rekorv2.HashedRekordRequestV002) {
			r.Signature.Verifier.KeyDetails = commonv1.PublicKeyDetails_PKIX_ED25519
		}), 400, "PKIX_ED25519 is not accepted"},
		{"certificate garbage", edit(func(r *rekorv2.HashedRekordRequestV002) {
			r.Signature.Verifier.GetX509Certificate().RawBytes = []byte("not a cert")
		}), 400, "not a DER X.509 certificate"},
		{"no verifier key", edit(func(r *rekorv2.HashedRekordRequestV002) { r.Signature.Verifier.Verifier = nil }), 400, "neither x509Certificate nor publicKey"},
		{"no verifier", edit(func(r *rekorv2.HashedRekordRequestV002) { r.Signature.Verifier = nil }), 400, "signature.verifier is missing"},
		{"oversize body", append(createEntryJSON(t, good())[:0:0], bytes.Repeat([]byte(" "), 17<<10)...), 413, "exceeds 16384 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := post(t, http.DefaultClient, tl.srv.URL, c.body)
			if status != c.status {
				t.Fatalf("status %d, want %d: %s", status, c.status, body)
			}
			var e struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("error body is not JSON: %s", body)
			}
			if !strings.Contains(e.Message, c.msg) {
				t.Fatalf("message %q does not say %q", e.Message, c.msg)
			}
		})
	}
	// The Go API classifies the same failures as the caller's.
	bad := good()
	bad.Digest[0] ^= 1
	if _, err := tl.AppendHashedRekord(context.Background(), bad); !errors.Is(err, ErrInvalidEntry) {
		t.Fatalf("AppendHashedRekord error %v is not ErrInvalidEntry", err)
	}
	// Nothing was appended by any of them: a valid entry lands at index 0.
	size, err := tl.reader.IntegratedSize(context.Background())
	if err != nil || size != 0 {
		t.Fatalf("tree size %d after refusals (%v)", size, err)
	}
	tle, err := tl.AppendHashedRekord(context.Background(), good())
	if err != nil || tle.GetLogIndex() != 0 {
		t.Fatalf("first valid entry: index %d, %v", tle.GetLogIndex(), err)
	}
	if got := counterValue(t, tl.metrics.rejected.WithLabelValues(reasonInvalid)); got < 12 {
		t.Fatalf("invalid-entry rejections counted %v", got)
	}
	if got := counterValue(t, tl.metrics.rejected.WithLabelValues(reasonTooLarge)); got != 1 {
		t.Fatalf("too-large rejections counted %v", got)
	}
}

func TestAppendAfterCloseRefused(t *testing.T) {
	tl := openTestLog(t, "", nil, nil)
	tl.close(t)
	_, err := tl.AppendHashedRekord(context.Background(), newECDSASigner(t).request(t, []byte("x")))
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("append after Close: %v", err)
	}
}

func TestOpenRefusesBadOptions(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]Options{
		"no dir":     {Signer: key, Origin: "x"},
		"no key":     {Dir: t.TempDir(), Origin: "x"},
		"ecdsa key":  {Dir: t.TempDir(), Signer: ecKey, Origin: "x"},
		"bad origin": {Dir: t.TempDir(), Signer: key, Origin: "has space"},
		"plus":       {Dir: t.TempDir(), Signer: key, Origin: "a+b"},
		"interval":   {Dir: t.TempDir(), Signer: key, Origin: "x", CheckpointInterval: time.Millisecond},
	} {
		if _, err := Open(context.Background(), o); err == nil {
			t.Errorf("%s: Open accepted %+v", name, o)
		}
	}
}

func TestRestartKeepsEntriesAndTree(t *testing.T) {
	dir := t.TempDir()
	tl := openTestLog(t, dir, nil, nil)
	s := newECDSASigner(t)
	var before []*rekorv1.TransparencyLogEntry
	for i := range 5 {
		tle, err := tl.AppendHashedRekord(context.Background(), s.request(t, []byte{byte(i)}))
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, tle)
	}
	oldRoot := before[4].GetInclusionProof().GetRootHash()
	tl.close(t)

	tl2 := openTestLog(t, dir, tl.key, nil)
	size, err := tl2.reader.IntegratedSize(context.Background())
	if err != nil || size != 5 {
		t.Fatalf("reopened tree size %d (%v), want 5", size, err)
	}
	// Close published a checkpoint for everything appended.
	_, cpBody := get(t, tl2.srv.URL+"/api/v2/checkpoint")
	cp := openCheckpoint(t, tl2, cpBody)
	if cp.Size != 5 || !bytes.Equal(cp.Hash, oldRoot) {
		t.Fatalf("published checkpoint after restart: size %d root %x, want 5 %x", cp.Size, cp.Hash, oldRoot)
	}
	tle, err := tl2.AppendHashedRekord(context.Background(), s.request(t, []byte("after restart")))
	if err != nil {
		t.Fatal(err)
	}
	if tle.GetLogIndex() != 5 || tle.GetInclusionProof().GetTreeSize() != 6 {
		t.Fatalf("after restart: index %d tree %d", tle.GetLogIndex(), tle.GetInclusionProof().GetTreeSize())
	}
	// Earlier entries are still provable in the grown tree.
	th := &treeHead{size: 6, root: tle.GetInclusionProof().GetRootHash()}
	for i, old := range before {
		leaf := sha256.Sum256(append([]byte{0}, old.GetCanonicalizedBody()...))
		if _, err := tl2.tiles.inclusionProof(context.Background(), th, uint64(i), leaf[:]); err != nil {
			t.Fatalf("entry %d after restart: %v", i, err)
		}
	}
}

func TestAwaitPublicationMode(t *testing.T) {
	tl := openTestLog(t, "", nil, func(o *Options) { o.AwaitPublication = true })
	s := newECDSASigner(t)
	req := s.request(t, []byte("published"))
	tle, err := tl.AppendHashedRekord(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	// The checkpoint handed out is one tessera published, at /checkpoint now or before.
	_, published := get(t, tl.srv.URL+"/api/v2/checkpoint")
	got := openCheckpoint(t, tl, []byte(tle.GetInclusionProof().GetCheckpoint().GetEnvelope()))
	now := openCheckpoint(t, tl, published)
	if got.Size < 1 || got.Size > now.Size {
		t.Fatalf("entry checkpoint size %d, published %d", got.Size, now.Size)
	}
	if err := verifyWithSigstoreGo(t, tl, s, req, tle); err != nil {
		t.Fatal(err)
	}
}

func openCheckpoint(t testing.TB, tl *testLog, raw []byte) f_log.Checkpoint {
	t.Helper()
	n, err := note.Open(raw, note.VerifierList(tl.verifier))
	if err != nil {
		t.Fatalf("checkpoint %q does not verify: %v", raw, err)
	}
	var cp f_log.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		t.Fatal(err)
	}
	if cp.Origin != testOrigin {
		t.Fatalf("origin %q", cp.Origin)
	}
	return cp
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// kill -9 after tessera integrated a batch but before the guard signed it
// leaves the tree state ahead of the signed-head record. The start checks
// must prove the stored tree extends the record (and not crash doing it).
func TestRestartWithStateAheadOfSignedHead(t *testing.T) {
	dir := t.TempDir()
	tl := openTestLog(t, dir, nil, nil)
	s := newECDSASigner(t)
	for i := range 3 {
		if _, err := tl.AppendHashedRekord(context.Background(), s.request(t, []byte{byte(i)})); err != nil {
			t.Fatal(err)
		}
	}
	tl.close(t)
	head := filepath.Clean(dir) + ".signed-head"
	small, err := os.ReadFile(head)
	if err != nil {
		t.Fatal(err)
	}
	tl = openTestLog(t, dir, tl.key, nil)
	for i := range 70 { // crosses into a second tile row's worth of nodes
		if _, err := tl.AppendHashedRekord(context.Background(), s.request(t, []byte{byte(i), 'b'})); err != nil {
			t.Fatal(err)
		}
	}
	tl.close(t)
	if err := os.WriteFile(head, small, 0o600); err != nil {
		t.Fatal(err)
	}

	tl = openTestLog(t, dir, tl.key, nil)
	tle, err := tl.AppendHashedRekord(context.Background(), s.request(t, []byte("after")))
	if err != nil {
		t.Fatal(err)
	}
	if tle.GetLogIndex() != 73 {
		t.Fatalf("after restart the next entry is %d, want 73", tle.GetLogIndex())
	}
	tl.close(t)

	// The same record over a tree that does not extend it is refused.
	other := t.TempDir()
	tl = openTestLog(t, other, tl.key, nil)
	for i := range 5 {
		if _, err := tl.AppendHashedRekord(context.Background(), s.request(t, []byte{byte(i), 'o'})); err != nil {
			t.Fatal(err)
		}
	}
	tl.close(t)
	if err := os.WriteFile(filepath.Clean(other)+".signed-head", small, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), Options{Dir: other, Signer: tl.key, Origin: testOrigin, Metrics: prometheus.NewRegistry()})
	if !errors.Is(err, ErrForked) {
		t.Fatalf("Open over a tree that does not extend the signed head: %v, want ErrForked", err)
	}
}
