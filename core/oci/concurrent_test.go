package oci_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/oci/ocitest"
)

func TestConcurrentFallbackAttach(t *testing.T) {
	ctx := context.Background()
	c := anonymous()
	s := freshImage(t, c)
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

// Bundles attached at once by one client share the referrers-tag updates
// (one read, write and read-back for all that queued meanwhile), and every
// one of them is listed.
func TestConcurrentAttachesShareTagUpdates(t *testing.T) {
	ctx := context.Background()
	ct := &countingTransport{base: http.DefaultTransport}
	c := oci.New(oci.Options{Keychain: authn.NewMultiKeychain(), Transport: ct})
	s := freshImage(t, c)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		b := dsseBundle(t, hexOf(s), fmt.Sprintf("https://example.com/predicate/%d", i))
		wg.Go(func() { _, errs[i] = c.Attach(ctx, s, oci.Attachment{Kind: oci.KindAttestation, Bundle: b}) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ct.mu.Lock()
	reads, writes := ct.kind["GET http referrers tag"], ct.kind["PUT http referrers tag"]
	ct.mu.Unlock()
	// Alone, each attach reads the tag twice and writes it once.
	if writes >= n || reads >= 2*n {
		t.Errorf("%d attaches read the referrers tag %d times and wrote it %d times; want shared updates", n, reads, writes)
	}
	l, err := c.List(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != n {
		t.Errorf("%d of %d concurrent attachments are listed", len(l.Items), n)
	}
}

// A process that makes a client per job pings a registry once a minute, not
// once per client and transport: the auth challenge is remembered, and so is
// a plain-HTTP registry's failed HTTPS handshake.
func TestPingsAreShared(t *testing.T) {
	ctx := context.Background()
	reg := ocitest.Start(t)
	pushImage(t, reg.Ref("app:v1"))
	ct := &countingTransport{base: http.DefaultTransport}
	for range 5 {
		c := oci.New(oci.Options{Keychain: authn.NewMultiKeychain(), Transport: ct})
		s, err := c.Resolve(ctx, reg.Ref("app:v1"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Attach(ctx, s, oci.Attachment{Kind: oci.KindSignature, Bundle: messageBundle(t, hexOf(s))}); err != nil {
			t.Fatal(err)
		}
	}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if https, plain := ct.kind["GET https ping"], ct.kind["GET http ping"]; https > 1 || plain > 1 {
		t.Errorf("5 clients pinged the registry %d times over HTTPS and %d over HTTP; want at most once each", https, plain)
	}
}

// An attachment's own annotations reach the referrer, but cannot replace
// what Attach derives from the bundle.
func TestAttachAnnotations(t *testing.T) {
	ctx := context.Background()
	c := anonymous()
	s := freshImage(t, c)
	b := dsseBundle(t, hexOf(s), "https://cyclonedx.org/bom")
	if _, err := c.Attach(ctx, s, oci.Attachment{Kind: oci.KindAttestation, Bundle: b, Annotations: map[string]string{"example.com/scope": "build", oci.AnnotationPredicateType: "https://example.com/forged"}}); err != nil {
		t.Fatal(err)
	}
	l, err := c.List(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != 1 || l.Items[0].Annotations["example.com/scope"] != "build" || l.Items[0].Annotations[oci.AnnotationPredicateType] != "https://cyclonedx.org/bom" {
		t.Errorf("listed %+v", l.Items)
	}
}

// freshImage pushes an image to a registry of its own and resolves it with c.
func freshImage(t *testing.T, c *oci.Client) *oci.Subject {
	t.Helper()
	reg := ocitest.Start(t)
	pushImage(t, reg.Ref("app:v1"))
	s, err := c.Resolve(context.Background(), reg.Ref("app:v1"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A TagBatch lists the bundles attached with it only at Flush, in one
// referrers-tag write for all of them, spread over attaches made one after
// another (the Tekton controller's signature and provenance finish apart).
func TestTagBatchWritesTheTagOnce(t *testing.T) {
	ctx := context.Background()
	ct := &countingTransport{base: http.DefaultTransport}
	c := oci.New(oci.Options{Keychain: authn.NewMultiKeychain(), Transport: ct})
	s := freshImage(t, c)
	batch := c.NewTagBatch()
	const n = 3
	for i := range n {
		b := dsseBundle(t, hexOf(s), fmt.Sprintf("https://example.com/predicate/%d", i))
		res, err := c.Attach(ctx, s, oci.Attachment{Kind: oci.KindAttestation, Bundle: b, Batch: batch})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Deferred || res.Path != oci.PathReferrersTag {
			t.Fatalf("attach %d: deferred %v via %s; want deferred via the referrers tag", i, res.Deferred, res.Path)
		}
	}
	if l, err := c.List(ctx, s); err != nil || len(l.Items) != 0 {
		t.Fatalf("before Flush: %v listed (err %v); want none", l, err)
	}
	ct.mu.Lock()
	clear(ct.kind)
	ct.mu.Unlock()
	if err := batch.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ct.mu.Lock()
	puts := ct.kind["PUT http referrers tag"]
	ct.mu.Unlock()
	if puts != 1 {
		t.Errorf("Flush wrote the referrers tag %d times for %d bundles; want once", puts, n)
	}
	l, err := c.List(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != n {
		t.Errorf("after Flush %d of %d bundles are listed", len(l.Items), n)
	}
	if err := batch.Flush(ctx); err != nil {
		t.Errorf("a second Flush, with nothing left: %v", err)
	}
}
