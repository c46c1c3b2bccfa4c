package oci

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Subject is an image (or index) resolved to the digest that gets signed.
type Subject struct {
	// Reference is what the user named: a tag or a digest.
	Reference name.Reference
	// Digest is the manifest the reference resolved to.
	Digest name.Digest
	// Descriptor is the manifest's media type, digest and size: the
	// subject of every referrer attached to it.
	Descriptor v1.Descriptor
	// Platform is set for a platform manifest reached through an index.
	Platform *v1.Platform
}

// IsIndex reports whether the subject is a multi-platform index.
func (s *Subject) IsIndex() bool { return s.Descriptor.MediaType.IsIndex() }

// String is the repository@digest form.
func (s *Subject) String() string { return s.Digest.String() }

// Resolve resolves a reference (tag or digest) to its manifest digest once;
// that digest is what gets signed and what bundles are attached to.
func (c *Client) Resolve(ctx context.Context, reference string) (*Subject, error) {
	ref, err := c.ParseReference(reference)
	if err != nil {
		return nil, err
	}
	return c.resolveRef(ctx, ref)
}

func (c *Client) resolveRef(ctx context.Context, ref name.Reference) (*Subject, error) {
	desc, err := remote.Head(ref, c.remoteOptions(ctx)...)
	if err != nil {
		return nil, classify(err, ref.String(), ref.Context(), false)
	}
	if d, ok := ref.(name.Digest); ok && d.DigestStr() != desc.Digest.String() {
		return nil, fmt.Errorf("registry %s answered %s for %s; the registry is serving the wrong content", ref.Context().RegistryStr(), desc.Digest, ref)
	}
	return &Subject{
		Reference:  ref,
		Digest:     ref.Context().Digest(desc.Digest.String()),
		Descriptor: *desc,
	}, nil
}

// Platforms lists the platform manifests of a multi-platform index, each as
// a Subject of its own, for signing every platform (--recursive) and not only
// the index. It returns nil for a single-platform image. Entries that are
// not images (attestation manifests buildkit puts in indexes, with platform
// unknown/unknown) are left out: they are not what runs.
func (c *Client) Platforms(ctx context.Context, s *Subject) ([]*Subject, error) {
	if !s.IsIndex() {
		return nil, nil
	}
	idx, err := remote.Index(s.Digest, c.remoteOptions(ctx)...)
	if err != nil {
		return nil, classify(err, s.Digest.String(), s.Digest.Context(), false)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading index %s: %w", s.Digest, err)
	}
	var out []*Subject
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.OS == "unknown" && d.Platform.Architecture == "unknown" {
			continue
		}
		if !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
			continue
		}
		out = append(out, &Subject{
			Reference:  s.Digest.Context().Digest(d.Digest.String()),
			Digest:     s.Digest.Context().Digest(d.Digest.String()),
			Descriptor: v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size},
			Platform:   d.Platform,
		})
	}
	return out, nil
}

// checkUnchanged confirms, just before attaching, that the reference still
// names the digest that was signed. A tag that moved means the bundle would
// describe an image the tag no longer serves.
func (c *Client) checkUnchanged(ctx context.Context, s *Subject) error {
	if d, ok := s.Reference.(name.Digest); ok && d.DigestStr() == s.Descriptor.Digest.String() {
		return nil // a digest names the same manifest for ever
	}
	desc, err := remote.Head(s.Reference, c.remoteOptions(ctx)...)
	if err != nil {
		err = classify(err, s.Reference.String(), s.Reference.Context(), false)
		if _, gone := err.(*NotFoundError); gone {
			return &ImageChangedError{Reference: s.Reference.String(), Resolved: s.Descriptor.Digest.String()}
		}
		return err
	}
	if desc.Digest != s.Descriptor.Digest {
		return &ImageChangedError{Reference: s.Reference.String(), Resolved: s.Descriptor.Digest.String(), Current: desc.Digest.String()}
	}
	return nil
}

// Image reads the image manifest s names; its config and layers are fetched
// when asked for, under the same credentials and context. For plugins that
// read what a build put in the image (labels, an SBOM layer).
func (c *Client) Image(ctx context.Context, s *Subject) (v1.Image, error) {
	img, err := remote.Image(s.Digest, c.remoteOptions(ctx)...)
	if err != nil {
		return nil, classify(err, s.Digest.String(), s.Digest.Context(), false)
	}
	return img, nil
}
