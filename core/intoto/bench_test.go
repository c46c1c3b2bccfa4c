package intoto_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/signet-dev/signet/core/intoto"
)

// cyclonedx is a CycloneDX BOM of about n bytes.
func cyclonedx(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[`)
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"library","name":"pkg-%d","version":"1.%d.0","purl":"pkg:npm/pkg-%d@1.%d.0","hashes":[{"alg":"SHA-256","content":"%064d"}]}`, i, i, i, i, i)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// BenchmarkStatement builds and serialises the statement of a 1 MB SBOM,
// as every attestation of one does before it is signed.
func BenchmarkStatement(b *testing.B) {
	pred := cyclonedx(1 << 20)
	subj := []intoto.Subject{{Name: "registry.example/app", Digest: map[string]string{"sha256": strings.Repeat("ab", 32)}}}
	b.SetBytes(int64(len(pred)))
	for b.Loop() {
		if _, err := intoto.Statement(subj, intoto.PredicateCycloneDX, pred); err != nil {
			b.Fatal(err)
		}
	}
}
