package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/signet-dev/signet/core/oci/ocitest"
	"github.com/signet-dev/signet/internal/cnbtest"
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

// BenchmarkBuildpackHook is the wall time `signet buildpack` adds to a
// Cloud Native Buildpacks build (the real binary, after a real lifecycle
// export to a loopback registry) for an image with three SBOMs of 1 MB each
// (two launch, one build): read the export, sign the image, attest the three
// SBOMs and the provenance (five certificates, timestamps and log entries),
// attach five referrers, keep four attestations in the store. The
// lifecycle's own export time is reported beside it. Target: ≤ 300 ms.
func BenchmarkBuildpackHook(b *testing.B) {
	e := newCLIEnv(b)
	reg := ocitest.Start(b)
	const mb = 1 << 20
	sboms := []cnbtest.SBOM{
		{Scope: cnbtest.ScopeLaunch, Format: cnbtest.CycloneDX, Size: mb},
		{Scope: cnbtest.ScopeLaunch, Format: cnbtest.SPDX, Size: mb},
		{Scope: cnbtest.ScopeBuild, Format: cnbtest.Syft, Size: mb},
	}
	var export, creator time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// A build of its own each time: signing one image again and again
		// would grow its referrers list and measure that instead.
		build := cnbtest.Run(b, cnbtest.Options{Registry: reg.Host, Repository: fmt.Sprintf("bench/app%d", i), SBOMs: sboms})
		export += build.Export
		creator += build.Wall
		b.StartTimer()
		runSignet(b, e.serverEnv, append(buildpackArgs(build), "--identity-token", e.token)...).want(b, 0)
	}
	b.StopTimer()
	b.ReportMetric(float64(export.Milliseconds())/float64(b.N), "export-ms")
	b.ReportMetric(float64(creator.Milliseconds())/float64(b.N), "creator-ms")
}
