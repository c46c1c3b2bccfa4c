package pipeline

import (
	"context"
	"fmt"
	"sync"

	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/oci"
)

// Referrers attaches bundles about images to them as OCI 1.1 referrers, in
// cosign v3's layout (through the referrers API, or the referrers tag where
// a registry has none), and with LegacyTags also to cosign's older
// sha256-<hex>.sig/.att tags. Items about files or digests are not its.
type Referrers struct {
	Client     *oci.Client
	LegacyTags bool
	// BeforeAttach, if set, runs after a bundle is made and before it is
	// attached: the window in which a tag can move (tests use it).
	BeforeAttach func(*oci.Subject)

	// tags holds the referrers-tag updates until Finish, so the bundles a
	// run attaches to one image update its tag once.
	mu   sync.Mutex
	tags *oci.TagBatch
}

func (r *Referrers) batch() *oci.TagBatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tags == nil {
		r.tags = r.Client.NewTagBatch()
	}
	return r.tags
}

// Finish lists the run's bundles in the referrers tags of registries
// without the referrers API, one update per image.
func (r *Referrers) Finish(ctx context.Context) error {
	return r.batch().Flush(ctx)
}

// Name is "oci".
func (r *Referrers) Name() string { return "oci" }

// predicateSlack is what a bundle adds around its statement: certificate,
// timestamp, log entry. The statement grows by a third (base64).
const predicateSlack = 16 << 10

// BundleTooLargeError is a statement whose bundle would exceed what an
// image's referrer may hold.
type BundleTooLargeError struct {
	Item          *Item
	Size, Max     int64
	StatementSize int
}

func (e *BundleTooLargeError) Error() string {
	return fmt.Sprintf("the bundle of the %s would be about %d bytes (a %d-byte statement), over the %d-byte limit for a bundle attached to an image",
		e.Item.Describe(), e.Size, e.StatementSize, e.Max)
}

// Check refuses bundles too large to attach, before anything is signed.
func (r *Referrers) Check(_ context.Context, items []*Item) error {
	for _, it := range items {
		if !hasImage(it) {
			continue
		}
		if size := int64(len(it.Statement))*4/3 + predicateSlack; size > oci.DefaultMaxBundleSize {
			return &BundleTooLargeError{Item: it, Size: size, Max: oci.DefaultMaxBundleSize, StatementSize: len(it.Statement)}
		}
	}
	return nil
}

func hasImage(it *Item) bool {
	for _, s := range it.Subjects {
		if s.Image != nil {
			return true
		}
	}
	return false
}

// Put attaches the bundle to every image the item is about.
func (r *Referrers) Put(ctx context.Context, it *Item, b *Signed) ([]Placement, error) {
	kind := oci.KindAttestation
	if it.Kind == intoto.KindSignature {
		kind = oci.KindSignature
	}
	var out []Placement
	for _, s := range it.Subjects {
		img := s.Image
		if img == nil {
			continue
		}
		if r.BeforeAttach != nil {
			r.BeforeAttach(img)
		}
		ar, err := r.Client.Attach(ctx, img, oci.Attachment{Kind: kind, Bundle: b.JSON, PredicateType: it.PredicateType, Annotations: it.Annotations, Batch: r.batch()})
		if err != nil {
			return out, err
		}
		p := Placement{Destination: "oci", Location: ar.Referrer.String(), Subject: img.Digest.String(), Via: string(ar.Path)}
		if ar.FallbackTag != "" {
			p.Tag = img.Digest.Context().Tag(ar.FallbackTag).String()
		}
		out = append(out, p)
		if !r.LegacyTags {
			continue
		}
		lp, err := r.legacy(ctx, img, kind, b)
		if err != nil {
			return out, fmt.Errorf("the bundle is attached as %s, but writing the legacy tag failed: %w", ar.Referrer, err)
		}
		out = append(out, lp)
	}
	return out, nil
}

// legacy writes cosign's legacy tag. An attestation's DSSE bundle goes to
// .att as is; a legacy .sig holds a simple-signing payload, signed apart
// (cosign v3 signs images as DSSE, which .sig cannot carry).
func (r *Referrers) legacy(ctx context.Context, img *oci.Subject, kind oci.Kind, b *Signed) (Placement, error) {
	if kind == oci.KindAttestation {
		tag, err := r.Client.AttachLegacyAttestation(ctx, img, b.JSON)
		if err != nil {
			return Placement{}, err
		}
		return Placement{Destination: "oci", Location: tag.String(), Subject: img.Digest.String(), Via: "legacy tag", Tag: tag.String()}, nil
	}
	pl, err := payload.Cosign{Image: img.Digest}.MarshalJSON()
	if err != nil {
		return Placement{}, err
	}
	res, err := b.SignArtifact(ctx, pl)
	if err != nil {
		return Placement{}, fmt.Errorf("signing the simple-signing payload: %w", err)
	}
	tag, err := r.Client.AttachLegacySignature(ctx, img, pl, res.JSON)
	if err != nil {
		return Placement{}, err
	}
	return Placement{Destination: "oci", Location: tag.String(), Subject: img.Digest.String(), Via: "legacy tag", Tag: tag.String()}, nil
}
