package tlog_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/signet-dev/signet/core/certext"
	"github.com/signet-dev/signet/core/rekor"
	"github.com/signet-dev/signet/core/tlog"
	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/core/verify"
	servertlog "github.com/signet-dev/signet/server/tlog"
)

// origin is what a signet server on loopback signs its checkpoints under:
// the host of its base URL, as the trusted root's origin is derived.
const origin = "127.0.0.1"

// testLog is a real signet log (server/tlog) in a temporary directory,
// served over HTTP, with a hook to damage what it serves.
type testLog struct {
	url string
	log *servertlog.Log
	key ed25519.PrivateKey

	mu     sync.Mutex
	tamper func(path string, body []byte) []byte
}

func startLog(t *testing.T, key ed25519.PrivateKey) *testLog {
	t.Helper()
	if key == nil {
		_, key, _ = ed25519.GenerateKey(rand.Reader)
	}
	// AwaitPublication: an append returns once the served checkpoint covers it.
	l, err := servertlog.Open(context.Background(), servertlog.Options{Dir: t.TempDir(), Signer: key, Origin: origin, AwaitPublication: true})
	if err != nil {
		t.Fatal(err)
	}
	tl := &testLog{log: l, key: key}
	mux := http.NewServeMux()
	l.Register(mux)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tl.mu.Lock()
		tamper := tl.tamper
		tl.mu.Unlock()
		if tamper == nil {
			mux.ServeHTTP(w, r)
			return
		}
		r.Header.Del("Accept-Encoding") // damage the bytes, not a gzip stream
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, r)
		body := tamper(r.URL.Path, bytes.Clone(rec.Body.Bytes()))
		for k, v := range rec.Header() {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	}))
	tl.url = srv.URL
	t.Cleanup(func() {
		srv.Close()
		_ = l.Close(context.Background())
	})
	return tl
}

func (tl *testLog) setTamper(f func(path string, body []byte) []byte) {
	tl.mu.Lock()
	tl.tamper = f
	tl.mu.Unlock()
}

// flipByte damages byte at (from the end when negative) of every resource
// whose path starts with prefix.
func flipByte(prefix string, at int) func(string, []byte) []byte {
	return func(path string, body []byte) []byte {
		i := at
		if i < 0 {
			i += len(body)
		}
		if strings.HasPrefix(path, prefix) && i >= 0 && i < len(body) {
			body[i] ^= 0x01
		}
		return body
	}
}

// logOf is the trusted root's record of a log at url signed by pub, as
// trust.ParseRoot builds it from a trusted_root.json.
func logOf(t *testing.T, url string, pub ed25519.PublicKey) *trust.Log {
	t.Helper()
	kid, err := trust.NoteKeyHash(origin, pub)
	if err != nil {
		t.Fatal(err)
	}
	id := sha256.Sum256(pub)
	return &trust.Log{BaseURL: url, Origin: origin, ID: id[:], CheckpointKeyID: kid, HashAlgorithm: crypto.SHA256,
		PublicKey: pub, KeyDetails: protocommon.PublicKeyDetails_PKIX_ED25519}
}

func rootOf(logs ...*trust.Log) *trust.Root {
	r := &trust.Root{Logs: map[string]*trust.Log{}}
	for _, l := range logs {
		r.Logs[string(l.ID)] = l
	}
	return r
}

func (tl *testLog) root(t *testing.T) *trust.Root {
	return rootOf(logOf(t, tl.url, tl.key.Public().(ed25519.PublicKey)))
}

func (tl *testLog) open(t *testing.T) *tlog.Log {
	t.Helper()
	l, err := tlog.Open(context.Background(), tl.root(t), tl.url, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

// signer signs hashedrekord entries as a keyless client does: an ECDSA key
// with a certificate naming an email and an OIDC issuer.
type signer struct {
	key  *ecdsa.PrivateKey
	cert []byte
}

const (
	email  = "alice@example.com"
	issuer = "https://issuer.example.com"
)

func newSigner(t *testing.T) *signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	exts, err := certext.Extensions{Issuer: issuer}.Render()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		EmailAddresses: []string{email}, ExtraExtensions: exts}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{key: k, cert: der}
}

// appendAll logs one entry per artifact, concurrently (one checkpoint
// covers them all), and returns the bodies by log index.
func (tl *testLog) appendAll(t *testing.T, s *signer, artifacts ...string) map[uint64][]byte {
	t.Helper()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		bodies = map[uint64][]byte{}
	)
	for _, a := range artifacts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := sha256.Sum256([]byte(a))
			sig, err := ecdsa.SignASN1(rand.Reader, s.key, d[:])
			if err != nil {
				t.Error(err)
				return
			}
			req := &rekorv2.HashedRekordRequestV002{Digest: d[:], Signature: &rekorv2.Signature{Content: sig,
				Verifier: rekor.Verifier(s.cert, nil, protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256)}}
			tle, err := tl.log.AppendHashedRekord(context.Background(), req)
			if err != nil {
				t.Errorf("append %q: %v", a, err)
				return
			}
			mu.Lock()
			bodies[uint64(tle.GetLogIndex())] = tle.GetCanonicalizedBody()
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return bodies
}

// appendEd25519 logs an artifact signed with a bare Ed25519ph public key.
func (tl *testLog) appendEd25519(t *testing.T, artifact string) (uint64, []byte) {
	t.Helper()
	pub, k, _ := ed25519.GenerateKey(rand.Reader)
	d := sha512.Sum512([]byte(artifact))
	sig, err := k.Sign(rand.Reader, d[:], &ed25519.Options{Hash: crypto.SHA512})
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	req := &rekorv2.HashedRekordRequestV002{Digest: d[:], Signature: &rekorv2.Signature{Content: sig,
		Verifier: rekor.Verifier(nil, der, protocommon.PublicKeyDetails_PKIX_ED25519_PH)}}
	tle, err := tl.log.AppendHashedRekord(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(tle.GetLogIndex()), der
}

func TestEntriesAreReadAndProven(t *testing.T) {
	tl := startLog(t, nil)
	artifacts := []string{"a", "b", "c", "d", "e"}
	bodies := tl.appendAll(t, newSigner(t), artifacts...)
	edIndex, edKey := tl.appendEd25519(t, "f")
	l := tl.open(t)
	cp := l.Checkpoint()
	if cp.Size != 6 || cp.Origin != origin || !strings.HasPrefix(string(cp.Note), origin+"\n6\n") || l.Trusted().BaseURL != tl.url {
		t.Fatalf("checkpoint %+v of %s", cp, l.Trusted().BaseURL)
	}

	// Every entry, concurrently: one Log serves many callers.
	var wg sync.WaitGroup
	for i, want := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := l.Entry(context.Background(), i)
			if err != nil {
				t.Errorf("entry %d: %v", i, err)
				return
			}
			if !bytes.Equal(e.Body, want) || !bytes.Equal(e.LeafHash, rfc6962.DefaultHasher.HashLeaf(want)) {
				t.Errorf("entry %d: body or leaf hash is not what the log appended", i)
			}
			// The proof stands on its own against the signed root.
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, cp.Size, e.LeafHash, e.Proof, cp.Hash); err != nil {
				t.Errorf("entry %d: proof handed out does not verify: %v", i, err)
			}
		}()
	}
	wg.Wait()

	e, err := l.Entry(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Describe()
	if err != nil {
		t.Fatal(err)
	}
	var digests []string
	for _, a := range artifacts {
		s := sha256.Sum256([]byte(a))
		digests = append(digests, "sha256:"+hex.EncodeToString(s[:]))
	}
	if d.Kind != "hashedrekord" || d.APIVersion != "0.0.2" || !strings.Contains(strings.Join(digests, " "), d.Digest) ||
		d.KeyDetails != "PKIX_ECDSA_P256_SHA_256" || d.Identity != email || d.Issuer != issuer || d.PublicKeySHA256 != "" {
		t.Errorf("certificate entry described as %+v", d)
	}
	e, err = l.Entry(context.Background(), edIndex)
	if err != nil {
		t.Fatal(err)
	}
	d, err = e.Describe()
	fp := sha256.Sum256(edKey)
	f := sha512.Sum512([]byte("f"))
	if err != nil || d.PublicKeySHA256 != hex.EncodeToString(fp[:]) || d.Identity != "" || d.Digest != "sha512:"+hex.EncodeToString(f[:]) || d.KeyDetails != "PKIX_ED25519_PH" {
		t.Errorf("public key entry described as %+v (%v)", d, err)
	}
	if _, err := (&tlog.Entry{Index: 9, Body: []byte("not json")}).Describe(); err == nil || !strings.Contains(err.Error(), "entry 9 is not a Rekor v2 entry") {
		t.Errorf("a body that is no Rekor entry: %v", err)
	}
}

func TestIndexBeyondTree(t *testing.T) {
	tl := startLog(t, nil)
	tl.appendAll(t, newSigner(t), "a", "b")
	l := tl.open(t)
	for _, i := range []uint64{2, 1 << 40} {
		if _, err := l.Entry(context.Background(), i); !errors.Is(err, tlog.ErrBeyondTree) {
			t.Errorf("Entry(%d) of a tree of 2: %v", i, err)
		}
		if _, err := l.InclusionProof(context.Background(), i, make([]byte, 32)); !errors.Is(err, tlog.ErrBeyondTree) {
			t.Errorf("InclusionProof(%d) of a tree of 2: %v", i, err)
		}
	}
}

func TestLogChoice(t *testing.T) {
	_, k1, _ := ed25519.GenerateKey(rand.Reader)
	_, k2, _ := ed25519.GenerateKey(rand.Reader)
	a := logOf(t, "https://a.example.com", k1.Public().(ed25519.PublicKey))
	b := logOf(t, "https://b.example.com/", k2.Public().(ed25519.PublicKey))
	two := rootOf(b, a)
	ctx := context.Background()

	var ce *tlog.LogChoiceError
	_, err := tlog.Open(ctx, two, "", nil)
	if !errors.Is(err, tlog.ErrNoDefaultLog) || !errors.As(err, &ce) || strings.Join(ce.Known, " ") != "https://a.example.com https://b.example.com/" {
		t.Errorf("no log named of two: %v", err)
	}
	_, err = tlog.Open(ctx, two, "https://c.example.com//", nil)
	if !errors.Is(err, tlog.ErrLogNotInRoot) || !errors.As(err, &ce) || ce.Want != "https://c.example.com" || len(ce.Known) != 2 {
		t.Errorf("a log the root does not list: %v", err)
	}
	if _, err = tlog.Open(ctx, rootOf(), "", nil); !errors.Is(err, tlog.ErrNoDefaultLog) {
		t.Errorf("a root without logs: %v", err)
	}

	// Trailing slashes do not count, and the root's only log is the default.
	tl := startLog(t, nil)
	tl.appendAll(t, newSigner(t), "a")
	for _, url := range []string{tl.url + "/", ""} {
		l, err := tlog.Open(ctx, tl.root(t), url, nil)
		if err != nil || l.Trusted().BaseURL != tl.url || l.Checkpoint().Size != 1 {
			t.Errorf("Open(%q): %v", url, err)
		}
	}
}

func TestCheckpointOfAnotherKey(t *testing.T) {
	tl := startLog(t, nil)
	tl.appendAll(t, newSigner(t), "a")
	// The root pins another key for this log's URL and origin.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	_, err := tlog.Open(context.Background(), rootOf(logOf(t, tl.url, other.Public().(ed25519.PublicKey))), tl.url, nil)
	var ce *tlog.CheckpointError
	if !errors.As(err, &ce) || !ce.Served || ce.LogURL != tl.url || verify.CheckOf(err) != verify.CheckCheckpoint {
		t.Fatalf("a checkpoint by a key the root does not pin: %v", err)
	}
	if !strings.Contains(err.Error(), "serves a checkpoint that does not verify against the trusted root") {
		t.Errorf("message: %v", err)
	}

	// A saved checkpoint by another key is refused before any proof.
	stranger := startLog(t, other)
	stranger.appendAll(t, newSigner(t), "a")
	note := stranger.open(t).Checkpoint().Note
	_, err = tl.open(t).ConsistencyFrom(context.Background(), note)
	if !errors.As(err, &ce) || ce.Served || verify.CheckOf(err) != verify.CheckCheckpoint {
		t.Errorf("a saved checkpoint by another key: %v", err)
	}
	// A forged root under the right signature is refused too.
	forged := bytes.Replace(note, []byte("\n1\n"), []byte("\n2\n"), 1)
	if _, err = stranger.open(t).ConsistencyFrom(context.Background(), forged); !errors.As(err, &ce) || ce.Served {
		t.Errorf("an altered checkpoint: %v", err)
	}
}

func TestDamagedTiles(t *testing.T) {
	tl := startLog(t, nil)
	bodies := tl.appendAll(t, newSigner(t), "a", "b", "c", "d", "e")
	ctx := context.Background()

	// Leaf 0's hash is the sibling in entry 1's proof.
	tl.setTamper(flipByte("/api/v2/tile/0/", 0))
	l := tl.open(t)
	_, err := l.Entry(ctx, 1)
	var ie *tlog.InclusionError
	var rm proof.RootMismatchError
	if !errors.As(err, &ie) || ie.Index != 1 || ie.Size != 5 || !errors.As(err, &rm) || !bytes.Equal(rm.ExpectedRoot, l.Checkpoint().Hash) {
		t.Fatalf("entry 1 with a damaged tile: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "entry 1 is not included in the verified checkpoint (tree size 5)") || !strings.Contains(msg, "the proof computes root") {
		t.Errorf("message: %s", msg)
	}
	// The root of size 1 is leaf 0's damaged hash: no longer a prefix.
	var ce *tlog.ConsistencyError
	if _, err := l.ConsistencyProof(ctx, 1, nil); !errors.As(err, &ce) || ce.OldSize != 1 || !errors.As(err, &rm) {
		t.Errorf("consistency from tiles with a damaged leaf: %v", err)
	}

	// A damaged entry bundle (the last byte of the last entry): the body no
	// longer hashes to the logged leaf.
	tl.setTamper(flipByte("/api/v2/tile/entries/", -1))
	l = tl.open(t)
	if _, err := l.Entry(ctx, 4); !errors.As(err, &ie) || ie.Index != 4 || bytes.Equal(ie.LeafHash, rfc6962.DefaultHasher.HashLeaf(bodies[4])) {
		t.Errorf("entry 4 from a damaged bundle: %v", err)
	}

	tl.setTamper(nil)
	if _, err := tl.open(t).Entry(ctx, 1); err != nil {
		t.Errorf("undamaged again: %v", err)
	}
}

func TestConsistency(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	tl := startLog(t, key)
	s := newSigner(t)
	bodies := tl.appendAll(t, s, "a", "b")
	ctx := context.Background()
	saved := tl.open(t).Checkpoint()
	later := tl.appendAll(t, s, "c", "d", "e")
	l := tl.open(t)
	size := l.Checkpoint().Size

	c, err := l.ConsistencyFrom(ctx, saved.Note)
	if err != nil || !c.OldSigned || c.OldSize != 2 || !bytes.Equal(c.OldRoot, saved.Hash) || len(c.Hashes) == 0 {
		t.Fatalf("from the saved checkpoint: %+v, %v", c, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 2, size, c.Hashes, saved.Hash, l.Checkpoint().Hash); err != nil {
		t.Errorf("proof handed out does not verify: %v", err)
	}
	// From a size, the old root comes from the tiles: size 1's is leaf 0.
	c, err = l.ConsistencyProof(ctx, 1, nil)
	if err != nil || c.OldSigned || !bytes.Equal(c.OldRoot, rfc6962.DefaultHasher.HashLeaf(bodies[0])) {
		t.Errorf("from size 1: %+v, %v", c, err)
	}
	// The log never had 3 entries (it grew 2 → 5), so no tile of size 3 was
	// ever written: its root comes from the current tiles.
	c, err = l.ConsistencyProof(ctx, 3, nil)
	h := rfc6962.DefaultHasher
	root3 := h.HashChildren(h.HashChildren(h.HashLeaf(bodies[0]), h.HashLeaf(bodies[1])), h.HashLeaf(later[2]))
	if err != nil || !bytes.Equal(c.OldRoot, root3) {
		t.Errorf("from size 3: %+v, %v", c, err)
	}
	c, err = l.ConsistencyProof(ctx, 0, nil)
	if err != nil || !bytes.Equal(c.OldRoot, rfc6962.DefaultHasher.EmptyRoot()) || len(c.Hashes) != 0 {
		t.Errorf("from the empty tree: %+v, %v", c, err)
	}
	if c, err = l.ConsistencyProof(ctx, size, l.Checkpoint().Hash); err != nil || len(c.Hashes) != 0 {
		t.Errorf("to itself: %+v, %v", c, err)
	}

	var ce *tlog.ConsistencyError
	var rm proof.RootMismatchError
	t.Run("forked root", func(t *testing.T) {
		forked := bytes.Clone(saved.Hash)
		forked[0] ^= 1
		for _, old := range []uint64{2, size} {
			_, err := l.ConsistencyProof(ctx, old, forked)
			if !errors.As(err, &ce) || ce.OldSize != old || !bytes.Equal(ce.OldRoot, forked) || !errors.As(err, &rm) {
				t.Errorf("old size %d with a forked root: %v", old, err)
			} else if want := map[bool]string{true: "SPLIT VIEW", false: "is NOT consistent with the old tree"}[old == size]; !strings.Contains(err.Error(), want) || ce.SplitView() != (old == size) {
				// The same size with another root is two trees under one key.
				t.Errorf("message: %v, want %q (split view %v)", err, want, ce.SplitView())
			}
		}
	})
	t.Run("forked log under the same key", func(t *testing.T) {
		// The key signed two trees that share no history: a split view.
		fork := startLog(t, key)
		fork.appendAll(t, newSigner(t), "x", "y")
		note := fork.open(t).Checkpoint().Note
		_, err := l.ConsistencyFrom(ctx, note)
		if !errors.As(err, &ce) || ce.OldSize != 2 || !errors.As(err, &rm) {
			t.Errorf("a checkpoint of a fork: %v", err)
		}
	})
	t.Run("old tree larger", func(t *testing.T) {
		_, err := l.ConsistencyProof(ctx, size+1, nil)
		if !errors.As(err, &ce) || ce.OldSize != size+1 || ce.Size != size || !strings.Contains(err.Error(), "truncated or forked") {
			t.Errorf("an old tree larger than the log: %v", err)
		}
	})
}
