package ca

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/signet-dev/signet/server/identity"
)

// BenchmarkSigningCert measures one POST /api/v2/signingCert through the
// HTTP handler with pre-built requests: token check (ES256), proof of
// possession (P-256), key checks and certificate signing (P-256).
//
// "repeated-token" sends the same token each time, as a CI job signing
// several artifacts does (the verified token is cached); "fresh-token"
// turns the cache off, so every request pays a full token verification.
func BenchmarkSigningCert(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []identity.Option
	}{
		{"repeated-token", nil},
		{"fresh-token", []identity.Option{identity.WithTokenCacheSize(0)}},
	} {
		f := newFixture(b, bc.opts...)
		key := p256(b)
		body := keyRequest(b, f.tk.mint(b, githubClaims()), key.Public(), prove(b, key, "repo:acme/widget:ref:refs/tags/v1"))
		b.Run(bc.name+"/serial", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				serve(b, f, body)
			}
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					serve(b, f, body)
				}
			})
		})
	}
}

func serve(b *testing.B, f *fixture, body []byte) {
	req := httptest.NewRequest(http.MethodPost, "/api/v2/signingCert", bytes.NewReader(body))
	rec := httptest.NewRecorder()
	f.mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
}
