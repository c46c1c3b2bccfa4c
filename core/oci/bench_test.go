package oci_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"

	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/oci/ocitest"
	"github.com/signet-dev/signet/internal/proccpu"
)

// countingTransport counts the registry requests an attach costs: on a
// registry without the referrers API most of an attach's time is round
// trips, so the count is the figure optimisations move.
type countingTransport struct {
	n    atomic.Int64
	base http.RoundTripper
	mu   sync.Mutex
	kind map[string]int
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	k := req.Method + " " + req.URL.Scheme + " " + kindOf(req.URL.Path)
	c.mu.Lock()
	if c.kind == nil {
		c.kind = map[string]int{}
	}
	c.kind[k]++
	c.mu.Unlock()
	return c.base.RoundTrip(req)
}

func kindOf(p string) string {
	switch {
	case p == "/v2/":
		return "ping"
	case strings.Contains(p, "/blobs/uploads/"):
		return "upload"
	case strings.Contains(p, "/blobs/"):
		return "blob"
	case strings.Contains(p, "/manifests/sha256-"):
		return "referrers tag"
	case strings.Contains(p, "/manifests/"):
		return "manifest"
	case strings.Contains(p, "/referrers/"):
		return "referrers API"
	}
	return p
}

// BenchmarkAttachRun attaches what the Tekton controller attaches for one
// run (an image signature and a provenance attestation, concurrently, by a
// client of the run's own) to an image of its own, 32 runs at a time,
// against distribution (no referrers API: every bundle also goes into the
// image's referrers tag). Reports registry requests per run.
func BenchmarkAttachRun(b *testing.B) {
	reg := ocitest.Start(b)
	ctx := context.Background()
	images := make([]string, b.N)
	var push errgroup.Group
	push.SetLimit(8)
	for i := range images {
		push.Go(func() error {
			ref := fmt.Sprintf("%s/bench/app%d:v1", reg.Host, i)
			images[i] = reg.Host + fmt.Sprintf("/bench/app%d@", i) + ocitest.PushImage(b, ref)
			return nil
		})
	}
	_ = push.Wait()
	// Bundles are made before the clock starts: only the registry is measured.
	type pair struct{ sig, att []byte }
	bundles := make([]pair, b.N)
	for i, ref := range images {
		hex := ref[len(ref)-64:]
		bundles[i] = pair{messageBundle(b, hex), dsseBundle(b, hex, "https://slsa.dev/provenance/v1")}
	}
	ct := &countingTransport{base: remote.DefaultTransport}
	cpu := proccpu.ByCommand()
	var next atomic.Int64
	b.SetParallelism(16) // 32 goroutines on 2 cores: the controller's default workers
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			c := oci.New(oci.Options{Keychain: authn.NewMultiKeychain(), Transport: ct})
			s, err := c.Resolve(ctx, images[i])
			if err != nil {
				b.Error(err)
				return
			}
			var wg sync.WaitGroup
			for _, a := range []oci.Attachment{{Kind: oci.KindSignature, Bundle: bundles[i].sig}, {Kind: oci.KindAttestation, Bundle: bundles[i].att}} {
				wg.Go(func() {
					if _, err := c.Attach(ctx, s, a); err != nil {
						b.Error(err)
					}
				})
			}
			wg.Wait()
		}
	})
	b.StopTimer()
	// The registry's own CPU per run: what bounds the Tekton controller on
	// two shared cores (docs/benchmarks.md).
	b.ReportMetric(proccpu.Since(cpu, 0)["registry"]*1000/float64(b.N), "ms-registry-cpu/run")
	b.ReportMetric(float64(ct.n.Load())/float64(b.N), "requests/run")
	if testing.Verbose() {
		for k, n := range ct.kind {
			b.Logf("%-40s %6.2f/run", k, float64(n)/float64(b.N))
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
}
