package attest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dssepb "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	bolt "go.etcd.io/bbolt"
)

func testRecord(i int, payloadBytes int, issuer string) *Record {
	return &Record{
		ID:            fmt.Sprintf("%064x", i),
		Envelope:      &dssepb.Envelope{Payload: []byte(strings.Repeat("x", payloadBytes)), PayloadType: "application/vnd.in-toto+json"},
		Entry:         &rekorv1.TransparencyLogEntry{LogIndex: int64(i)},
		PredicateType: spdx,
		Subjects:      []Subject{{Name: "app", Digest: map[string]string{"sha256": strings.Repeat("ab", 32)}}},
		Identity:      "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main",
		Issuer:        issuer,
		StoredTime:    time.Now(),
	}
}

// A page stops before it would hold more than maxPageBytes of records, and
// the cursor picks up where it stopped; every record is returned once.
func TestPagesAreBoundedInBytes(t *testing.T) { testPagesAreBoundedInBytes(t, newEnv) }

func testPagesAreBoundedInBytes(t *testing.T, newEnv envMaker) {
	ctx := context.Background()
	s := newEnv(t).store
	for i := range 5 {
		if err := s.recs.put(ctx, testRecord(i, 6<<20, "https://issuer.example")); err != nil {
			t.Fatal(err)
		}
	}
	q := query{digestAlg: "sha256", digestValue: strings.Repeat("ab", 32), pageSize: 100}
	seen := 0
	for pages := 0; ; pages++ {
		recs, next, err := s.find(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 || len(recs) > 2 {
			t.Fatalf("page %d holds %d records of ~8 MB stored each, want 1 or 2 under %d bytes", pages, len(recs), maxPageBytes)
		}
		seen += len(recs)
		if next == 0 {
			break
		}
		q.before = next
	}
	if seen != 5 {
		t.Fatalf("paged through %d records, want 5", seen)
	}
}

// Every filter is an index: a query whose filters match nothing together
// reads no record, and the issuer index is built for stores made before it.
func TestIssuerIndexAndBackfill(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a.db")
	s, err := New(Options{Path: path, Log: &fakeLog{}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		iss := "https://a.example"
		if i%2 == 1 {
			iss = "https://b.example"
		}
		if err := s.recs.put(ctx, testRecord(i, 100, iss)); err != nil {
			t.Fatal(err)
		}
	}
	count := func(s *Store, issuer string) int {
		recs, _, err := s.find(ctx, query{predicateType: spdx, issuer: issuer, pageSize: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Issuer != issuer {
				t.Fatalf("issuer %q in answer for %q", r.Issuer, issuer)
			}
		}
		return len(recs)
	}
	if a, b, none := count(s, "https://a.example"), count(s, "https://b.example"), count(s, "https://c.example"); a != 3 || b != 3 || none != 0 {
		t.Fatalf("by issuer: a %d b %d c %d", a, b, none)
	}
	// A store from before the issuer index: drop it, reopen, and query.
	if err := s.recs.(*boltRecords).db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketIssuer) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = New(Options{Path: path, Log: &fakeLog{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if a := count(s, "https://a.example"); a != 3 {
		t.Fatalf("after backfill: %d", a)
	}
}
