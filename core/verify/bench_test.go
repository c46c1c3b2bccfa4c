package verify_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/core/verify"
)

// BenchmarkVerifyBlob measures what `signet verify-blob` does after startup:
// load the trusted root and the bundle from disk, then verify.
func BenchmarkVerifyBlob(b *testing.B) {
	f := loadFixture(b)
	c := interopCases[3]
	for b.Loop() {
		root, err := trust.ReadRootFile(filepath.Join(f.dir, "trusted_root.json"))
		if err != nil {
			b.Fatal(err)
		}
		bun, err := bundle.ReadFile(filepath.Join(f.dir, c.file))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := verify.New(root).VerifyArtifact(context.Background(), bun, bytes.NewReader(f.artifact), policyFor(c)); err != nil {
			b.Fatal(err)
		}
	}
}
