package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Source says where an attached item was found.
type Source string

const (
	SourceReferrersAPI Source = "referrers API"
	SourceReferrersTag Source = "referrers tag"
	SourceLegacySig    Source = "legacy .sig tag"
	SourceLegacyAtt    Source = "legacy .att tag"
)

// Attached is one signature, attestation or other artifact attached to an image.
type Attached struct {
	Kind   Kind
	Source Source
	// Manifest is the referrer manifest (or, for legacy tags, the tag's
	// manifest, shared by all its layers).
	Manifest name.Digest
	// ArtifactType is the referrer's artifactType.
	ArtifactType string
	// Content is dev.sigstore.bundle.content: message-signature or dsse-envelope.
	Content string
	// PredicateType is the in-toto predicate type (CosignSignPredicateType
	// for signatures).
	PredicateType string
	// Created is org.opencontainers.image.created, when present and valid.
	Created time.Time
	// Annotations are the referrer manifest's (or legacy layer's) annotations.
	Annotations map[string]string
	// Bundle is the Sigstore bundle JSON (referrers only), for showing the
	// signer identity and log index.
	Bundle []byte
	// Legacy is the cosign legacy layer (legacy tags only).
	Legacy *LegacyLayer
}

// Listing is what List found.
type Listing struct {
	Subject *Subject
	// Path is how the registry answered for referrers.
	Path  Path
	Items []Attached
}

// Signatures returns the signature items.
func (l *Listing) Signatures() []Attached { return l.filter(KindSignature) }

// Attestations returns the attestation items (SBOM attestations included).
func (l *Listing) Attestations() []Attached { return l.filter(KindAttestation) }

func (l *Listing) filter(k Kind) []Attached {
	var out []Attached
	for _, a := range l.Items {
		if a.Kind == k {
			out = append(out, a)
		}
	}
	return out
}

// List returns what is attached to the subject: bundle referrers (from the
// referrers API or the referrers tag) with their bundle bytes, other
// referrers by artifact type, and legacy cosign .sig/.att tag layers.
func (c *Client) List(ctx context.Context, s *Subject) (*Listing, error) {
	path, descs, err := c.referrers(ctx, s.Digest)
	if err != nil {
		return nil, err
	}
	src := SourceReferrersAPI
	if path == PathReferrersTag {
		src = SourceReferrersTag
	}
	out := &Listing{Subject: s, Path: path}
	budget := &listBudget{left: c.maxList, limit: c.maxList, subject: s.String()}
	seen := map[v1.Hash]bool{}
	for _, d := range descs {
		if seen[d.Digest] {
			continue
		}
		seen[d.Digest] = true
		item, err := c.readReferrer(ctx, s, d, budget)
		if err != nil {
			return nil, err
		}
		item.Source = src
		out.Items = append(out.Items, *item)
	}
	legacy, err := c.listLegacy(ctx, s, budget)
	if err != nil {
		return nil, err
	}
	out.Items = append(out.Items, legacy...)
	return out, nil
}

// readReferrer reads a referrer manifest. The manifest, not the index
// descriptor, is authoritative: some registries' referrers indexes omit
// annotations or report the config media type as artifactType.
func (c *Client) readReferrer(ctx context.Context, s *Subject, d v1.Descriptor, budget *listBudget) (*Attached, error) {
	repo := s.Digest.Context()
	ref := repo.Digest(d.Digest.String())
	raw, err := c.getManifest(ctx, ref)
	if err != nil {
		return nil, err
	}
	var m referrerManifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("referrer %s of %s is not a manifest: %v", ref, s, err)
	}
	if m.Subject == nil || m.Subject.Digest != s.Descriptor.Digest {
		return nil, fmt.Errorf("referrer %s is listed for %s but its subject is another manifest; the referrers list is inconsistent", ref, s)
	}
	item := &Attached{Kind: KindOther, Manifest: ref, ArtifactType: m.ArtifactType, Annotations: m.Annotations}
	if item.ArtifactType == "" {
		item.ArtifactType = string(m.Config.MediaType)
	}
	if t, err := time.Parse(time.RFC3339, m.Annotations[AnnotationCreated]); err == nil {
		item.Created = t
	}
	if item.ArtifactType != BundleMediaType || len(m.Layers) != 1 || string(m.Layers[0].MediaType) != BundleMediaType {
		return item, nil
	}
	if err := budget.spend(m.Layers[0].Size); err != nil {
		return nil, err
	}
	b, err := c.readBlob(ctx, repo, m.Layers[0])
	if err != nil {
		return nil, err
	}
	item.Kind = kindOf(m.Annotations)
	item.Content = m.Annotations[AnnotationContent]
	item.PredicateType = m.Annotations[AnnotationPredicateType]
	item.Bundle = b
	return item, nil
}

func (c *Client) getManifest(ctx context.Context, ref name.Reference) ([]byte, error) {
	desc, err := remote.Get(ref, c.remoteOptions(ctx)...)
	if err != nil {
		return nil, classify(err, ref.String(), ref.Context(), false)
	}
	return desc.Manifest, nil
}

// listBudget is what one List may still read. Descriptor sizes are spent
// before reading; readBlob refuses a blob that is not its descriptor's size.
type listBudget struct {
	left, limit int64
	subject     string
}

func (b *listBudget) spend(n int64) error {
	if n < 0 || n > b.left {
		return &TooLargeError{What: "the bundles and legacy layers attached to " + b.subject, Size: b.limit - b.left + n, Limit: b.limit}
	}
	b.left -= n
	return nil
}

// readBlob reads a small blob, bounded by MaxBundleSize, and checks its digest.
func (c *Client) readBlob(ctx context.Context, repo name.Repository, d v1.Descriptor) ([]byte, error) {
	what := fmt.Sprintf("blob %s in %s", d.Digest, repo)
	if d.Size > c.maxBundle {
		return nil, &TooLargeError{What: what, Size: d.Size, Limit: c.maxBundle}
	}
	l, err := remote.Layer(repo.Digest(d.Digest.String()), c.remoteOptions(ctx)...)
	if err != nil {
		return nil, classify(err, what, repo, false)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, classify(err, what, repo, false)
	}
	defer rc.Close()
	// The reader verifies the digest at EOF; the limit stops a registry
	// that serves more than the descriptor said.
	b, err := io.ReadAll(io.LimitReader(rc, c.maxBundle+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if int64(len(b)) > c.maxBundle {
		return nil, &TooLargeError{What: what, Size: -1, Limit: c.maxBundle}
	}
	if int64(len(b)) != d.Size {
		return nil, fmt.Errorf("reading %s: got %d bytes, descriptor says %d", what, len(b), d.Size)
	}
	return b, nil
}
