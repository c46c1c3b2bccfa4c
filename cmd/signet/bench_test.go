package main

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkSignBlobBinary is the wall time of one `signet sign-blob` run of
// the real binary against a server on loopback: process start, token,
// certificate, signature, timestamp, log entry with inclusion proof, bundle
// on disk. Target: ≤ 200 ms.
func BenchmarkSignBlobBinary(b *testing.B) {
	e, art := benchEnv(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		runSignet(b, e.serverEnv, "sign-blob", art, "--identity-token", e.token).want(b, 0)
	}
}

// BenchmarkVerifyBlobBinary is the wall time of one offline `signet
// verify-blob` run of the real binary. Target: ≤ 20 ms.
func BenchmarkVerifyBlobBinary(b *testing.B) {
	e, art := benchEnv(b)
	runSignet(b, e.serverEnv, "sign-blob", art, "--identity-token", e.token).want(b, 0)
	args := append([]string{"verify-blob", art}, e.policy()...)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		runSignet(b, nil, args...).want(b, 0)
	}
}

// benchEnv is newCLIEnv for benchmarks, with a 1 MiB artifact.
func benchEnv(b *testing.B) (*cliEnv, string) {
	e := newCLIEnv(b)
	data := make([]byte, 1<<20)
	rand.Read(data)
	art := filepath.Join(e.dir, "artifact.bin")
	if err := os.WriteFile(art, data, 0o644); err != nil {
		b.Fatal(err)
	}
	return e, art
}
