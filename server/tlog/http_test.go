package tlog

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/client"
)

// appendN appends n entries concurrently and returns them by index.
func appendN(t *testing.T, tl *testLog, s *signer, n int) map[int64]*rekorv1.TransparencyLogEntry {
	t.Helper()
	var mu sync.Mutex
	out := map[int64]*rekorv1.TransparencyLogEntry{}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	reqs := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range reqs {
				tle, err := tl.AppendHashedRekord(context.Background(), s.request(t, []byte{byte(i), byte(i >> 8), 'x'}))
				if err != nil {
					errs <- err
					continue
				}
				mu.Lock()
				out[tle.GetLogIndex()] = tle
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		reqs <- i
	}
	close(reqs)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return out
}

// waitPublished waits until /checkpoint commits to at least size entries.
func waitPublished(t *testing.T, tl *testLog, f *client.HTTPFetcher, size uint64) []byte {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		raw, err := f.ReadCheckpoint(context.Background())
		if err == nil && openCheckpoint(t, tl, raw).Size >= size {
			return raw
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of size %d published (last: %q, %v)", size, raw, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTilesReadAPIAndConsistencyProof(t *testing.T) {
	tl := openTestLog(t, "", nil, nil)
	s := newECDSASigner(t)
	base, _ := url.Parse(tl.srv.URL + "/api/v2/")
	fetcher, err := client.NewHTTPFetcher(base, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	first := appendN(t, tl, s, 100)
	cpA := openCheckpoint(t, tl, waitPublished(t, tl, fetcher, 100))
	second := appendN(t, tl, s, 200)
	rawB := waitPublished(t, tl, fetcher, 300)
	cpB := openCheckpoint(t, tl, rawB)
	if cpA.Size != 100 || cpB.Size != 300 {
		t.Fatalf("checkpoint sizes %d, %d", cpA.Size, cpB.Size)
	}

	// Checkpoint resource: content type and short-lived caching.
	resp, body := get(t, tl.srv.URL+"/api/v2/checkpoint")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" ||
		resp.Header.Get("Cache-Control") != cacheCheckpoint || !bytes.Equal(body, rawB) {
		t.Fatalf("checkpoint: %d %v %q", resp.StatusCode, resp.Header, body)
	}

	// Consistency proof between the two checkpoints, built by tessera's
	// client from tiles fetched over HTTP.
	pb, err := client.NewProofBuilder(ctx, cpB.Size, fetcher.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := pb.ConsistencyProof(ctx, cpA.Size, cpB.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cpA.Size, cpB.Size, cons, cpA.Hash, cpB.Hash); err != nil {
		t.Fatalf("consistency proof %d -> %d: %v", cpA.Size, cpB.Size, err)
	}
	// A proof against a different old root must fail: the check has teeth.
	wrong := append([]byte(nil), cpA.Hash...)
	wrong[0] ^= 1
	if proof.VerifyConsistency(rfc6962.DefaultHasher, cpA.Size, cpB.Size, cons, wrong, cpB.Hash) == nil {
		t.Fatal("consistency proof verified against a wrong root")
	}

	// Inclusion proofs from tiles agree with what the log handed out, and the
	// entry bundles hold exactly the canonicalized bodies.
	all := map[int64]*rekorv1.TransparencyLogEntry{}
	for k, v := range first {
		all[k] = v
	}
	for k, v := range second {
		all[k] = v
	}
	if len(all) != 300 {
		t.Fatalf("%d distinct indices for 300 appends", len(all))
	}
	bundle0, err := client.GetEntryBundle(ctx, fetcher.ReadEntryBundle, 0, cpB.Size)
	if err != nil {
		t.Fatal(err)
	}
	bundle1, err := client.GetEntryBundle(ctx, fetcher.ReadEntryBundle, 1, cpB.Size)
	if err != nil {
		t.Fatal(err)
	}
	if len(bundle0.Entries) != 256 || len(bundle1.Entries) != 44 {
		t.Fatalf("bundle sizes %d, %d", len(bundle0.Entries), len(bundle1.Entries))
	}
	for _, i := range []int64{0, 7, 255, 256, 299} {
		tle := all[i]
		var got []byte
		if i < 256 {
			got = bundle0.Entries[i]
		} else {
			got = bundle1.Entries[i-256]
		}
		if !bytes.Equal(got, tle.GetCanonicalizedBody()) {
			t.Fatalf("bundle entry %d differs from the logged body", i)
		}
		p, err := pb.InclusionProof(ctx, uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(i), cpB.Size, rfc6962.DefaultHasher.HashLeaf(got), p, cpB.Hash); err != nil {
			t.Fatalf("tile-built inclusion proof for %d: %v", i, err)
		}
	}

	// Raw resources: types, caching, compression, refusals.
	for _, c := range []struct {
		path, cache string
		size        int
	}{
		{"tile/0/000", cacheImmutable, 256 * 32},
		{"tile/0/001.p/44", cachePartial, 44 * 32},
		{"tile/1/000.p/1", cachePartial, 32},
	} {
		resp, body := get(t, tl.srv.URL+"/api/v2/"+c.path)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/octet-stream" ||
			resp.Header.Get("Cache-Control") != c.cache || len(body) != c.size {
			t.Fatalf("%s: %d %v len %d", c.path, resp.StatusCode, resp.Header, len(body))
		}
		var ht api.HashTile
		if err := ht.UnmarshalText(body); err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
	}
	resp, body = get(t, tl.srv.URL+"/api/v2/tile/entries/000", "Accept-Encoding", "gzip")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Cache-Control") != cacheImmutable {
		t.Fatalf("entries/000: %d %v", resp.StatusCode, resp.Header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var eb api.EntryBundle
	if err := eb.UnmarshalText(plain); err != nil || len(eb.Entries) != 256 {
		t.Fatalf("gzipped bundle: %v, %d entries", err, len(eb.Entries))
	}
	resp, body = get(t, tl.srv.URL+"/api/v2/tile/entries/001.p/44")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" || resp.Header.Get("Cache-Control") != cachePartial {
		t.Fatalf("entries/001.p/44: %d %v", resp.StatusCode, resp.Header)
	}
	if err := eb.UnmarshalText(body); err != nil || len(eb.Entries) != 44 {
		t.Fatalf("partial bundle: %v, %d entries", err, len(eb.Entries))
	}
	for path, status := range map[string]int{
		"tile/0/0000":          400, // not three digits
		"tile/00/000":          400, // leading zero in level
		"tile/64/000":          400, // level out of range
		"tile/0/000.p/0":       400, // empty partial
		"tile/0/000.p/256":     400,
		"tile/0/1000":          400, // must be x001/000
		"tile/0/x001/000":      404, // well-formed, not in this log
		"tile/0/002":           404,
		"tile/entries/000.p/x": 400,
		"tile/entries/005":     404,
	} {
		resp, body := get(t, tl.srv.URL+"/api/v2/"+path)
		if resp.StatusCode != status {
			t.Errorf("%s: status %d, want %d: %s", path, resp.StatusCode, status, body)
		}
	}
}

// Keyless certificates are new at every signing: the per-identity limit
// keys them by identity, so two certificates of one identity share a
// bucket, and keys by their digest.
func TestIdentityKey(t *testing.T) {
	s1, s2 := newECDSASigner(t), newECDSASigner(t)
	r1, r2 := s1.request(t, []byte("a")), s2.request(t, []byte("b"))
	k1 := identityKey(&rekorv2.CreateEntryRequest{Spec: &rekorv2.CreateEntryRequest_HashedRekordRequestV002{HashedRekordRequestV002: r1}})
	k2 := identityKey(&rekorv2.CreateEntryRequest{Spec: &rekorv2.CreateEntryRequest_HashedRekordRequestV002{HashedRekordRequestV002: r2}})
	if !strings.HasPrefix(k1, "cert ") || k1 != k2 {
		t.Errorf("two certificates of one test identity: keys %q and %q, want one cert key", k1, k2)
	}
	e := newEd25519Signer(t)
	ke := identityKey(&rekorv2.CreateEntryRequest{Spec: &rekorv2.CreateEntryRequest_HashedRekordRequestV002{HashedRekordRequestV002: e.request(t, []byte("c"))}})
	if !strings.HasPrefix(ke, "key ") {
		t.Errorf("a public key verifier: key %q", ke)
	}
	if k := identityKey(&rekorv2.CreateEntryRequest{}); k != "" {
		t.Errorf("no verifier: key %q", k)
	}
}
