package oci_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/oci/ocitest"
)

func TestConcurrentFallbackAttach(t *testing.T) {
	ctx := context.Background()
	reg := ocitest.Start(t)
	pushImage(t, reg.Ref("app:v1"))
	c := anonymous()
	s, err := c.Resolve(ctx, reg.Ref("app:v1"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := dsseBundle(t, hexOf(s), fmt.Sprintf("https://example.com/predicate/%d", i))
			_, errs[i] = c.Attach(ctx, s, oci.Attachment{Kind: oci.KindAttestation, Bundle: b})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	l, err := c.List(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != n {
		t.Errorf("%d of %d concurrent attachments are listed", len(l.Items), n)
	}
}
