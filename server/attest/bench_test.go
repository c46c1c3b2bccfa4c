package attest

import (
	"fmt"
	"net/http"
	"testing"
)

// BenchmarkSubmit measures validate + two bbolt commits over HTTP, with a
// log that answers at once.
func BenchmarkSubmit(b *testing.B) {
	e := newEnv(b)
	s := e.ca.issue(b, "alice@example.com", "https://accounts.example.com")
	reqs := make([]map[string]any, b.N)
	for i := range reqs {
		reqs[i] = map[string]any{"envelope": s.sign(b, InTotoPayloadType, statement(slsa, hexDigest(fmt.Sprint(i)))), "verifier": s.verifierJSON(b, "PKIX_ECDSA_P256_SHA_256")}
	}
	b.ResetTimer()
	for i := range b.N {
		if r := e.post(reqs[i]); r.status != http.StatusCreated {
			b.Fatalf("%d %s", r.status, r.body)
		}
	}
}

// BenchmarkQuery measures a digest query returning one page of 50 from a
// store of 1000 attestations about the same artifact.
func BenchmarkQuery(b *testing.B) {
	e := newEnv(b)
	s := e.ca.issue(b, "alice@example.com", "https://accounts.example.com")
	for i := range 1000 {
		r := e.post(map[string]any{"envelope": s.sign(b, InTotoPayloadType, statement(fmt.Sprintf("https://example.com/p/%d", i), hexDigest("same"))), "verifier": s.verifierJSON(b, "PKIX_ECDSA_P256_SHA_256")})
		if r.status != http.StatusCreated {
			b.Fatalf("%d %s", r.status, r.body)
		}
	}
	b.ResetTimer()
	for range b.N {
		if r := e.get("/api/v2/attestations?digest=sha256:" + hexDigest("same")); r.status != http.StatusOK {
			b.Fatal(r.status)
		}
	}
}
