package attest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
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
	for i := range n {
		if err := s.recs.put(context.Background(), testRecord(i, 4096, "https://token.actions.githubusercontent.com")); err != nil {
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
				recs, _, err := s.find(context.Background(), q)
				if err != nil || len(recs) != 0 {
					b.Fatal(len(recs), err)
				}
			}
		})
	}
}
