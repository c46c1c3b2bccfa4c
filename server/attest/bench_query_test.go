package attest

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dssepb "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
)

// queryStore is a store of n attestations about one artifact digest, each
// with a 4 KiB payload, all by one identity and predicate type: the worst
// case for a query whose second filter matches none of them.
func queryStore(b *testing.B, n int) *Store {
	b.Helper()
	s, err := New(Options{Path: filepath.Join(b.TempDir(), "a.db"), Log: &fakeLog{}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	payload := []byte(strings.Repeat("x", 4096))
	for i := range n {
		rec := &Record{
			ID:            fmt.Sprintf("%064x", i),
			Envelope:      &dssepb.Envelope{Payload: payload, PayloadType: "application/vnd.in-toto+json"},
			Entry:         &rekorv1.TransparencyLogEntry{LogIndex: int64(i)},
			PredicateType: spdx,
			Subjects:      []Subject{{Name: "app", Digest: map[string]string{"sha256": strings.Repeat("ab", 32)}}},
			Identity:      "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main",
			Issuer:        "https://token.actions.githubusercontent.com",
			StoredTime:    time.Now(),
		}
		if err := s.put(rec); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkQueryNoSecondaryMatch: digest matches every record, the
// predicate type none. Run with -benchtime 10x; building the store dominates.
func BenchmarkQueryNoSecondaryMatch(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s := queryStore(b, n)
			q := query{digestAlg: "sha256", digestValue: strings.Repeat("ab", 32), predicateType: "https://example.com/none/v1", pageSize: 100}
			b.ResetTimer()
			for b.Loop() {
				recs, _, err := s.find(q)
				if err != nil || len(recs) != 0 {
					b.Fatal(len(recs), err)
				}
			}
		})
	}
}
