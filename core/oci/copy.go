package oci

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// CopyResult says what Copy wrote.
type CopyResult struct {
	// Destination is the copied image at the destination (same digest).
	Destination name.Digest
	// Tag is the destination tag, when one was written.
	Tag *name.Tag
	// Referrers are the referrer manifests copied, by destination digest.
	Referrers []name.Digest
	// LegacyTags are the legacy .sig/.att tags copied.
	LegacyTags []name.Tag
	// Path is how the destination registry keeps referrers (empty if none
	// were copied).
	Path Path
}

// maxReferrerDepth bounds referrers-of-referrers (a signature on an SBOM
// artifact is depth 2); it stops a cyclic or hostile graph.
const maxReferrerDepth = 4

// Copy copies the subject (an image, or an index with all its manifests) to
// dst — a repository, or repository:tag — with everything attached to it and
// to each platform manifest: referrers (rewritten at the destination through
// its referrers API or referrers tag, annotations intact) and legacy
// .sig/.att tags. Digests are preserved, so bundles stay valid.
func (c *Client) Copy(ctx context.Context, src *Subject, dst string) (*CopyResult, error) {
	repo, tag, err := c.parseDestination(dst)
	if err != nil {
		return nil, err
	}
	res := &CopyResult{Destination: repo.Digest(src.Descriptor.Digest.String()), Tag: tag}
	target := name.Reference(res.Destination)
	if tag != nil {
		target = *tag
	}
	desc, err := remote.Get(src.Digest, c.remoteOptions(ctx)...)
	if err != nil {
		return nil, classify(err, src.Digest.String(), src.Digest.Context(), false)
	}
	subjects := []name.Digest{src.Digest}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, err
		}
		if err := remote.WriteIndex(target, idx, c.remoteOptions(ctx)...); err != nil {
			return nil, classify(err, target.String(), repo, true)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, err
		}
		for _, m := range im.Manifests {
			subjects = append(subjects, src.Digest.Context().Digest(m.Digest.String()))
		}
	} else {
		img, err := desc.Image()
		if err != nil {
			return nil, err
		}
		if err := remote.Write(target, img, c.remoteOptions(ctx)...); err != nil {
			return nil, classify(err, target.String(), repo, true)
		}
	}
	for _, s := range subjects {
		if err := c.copyReferrers(ctx, s, repo, res, 0); err != nil {
			return nil, err
		}
		if err := c.copyLegacy(ctx, s, repo, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func (c *Client) parseDestination(dst string) (name.Repository, *name.Tag, error) {
	opts := []name.Option{name.StrictValidation}
	if t, err := name.NewTag(dst, opts...); err == nil {
		if c.allowInsecure || IsLoopback(t.RegistryStr()) {
			t, _ = name.NewTag(dst, append(opts, name.Insecure)...)
		}
		return t.Context(), &t, nil
	}
	repo, err := c.parseRepository(dst)
	if err != nil {
		return name.Repository{}, nil, fmt.Errorf("copy destination %q: write it as registry/repository or registry/repository:tag", dst)
	}
	return repo, nil, nil
}

// copyReferrers copies every referrer of subject (and, to a bounded depth,
// their referrers) into repo, keeping manifest bytes and so digests.
func (c *Client) copyReferrers(ctx context.Context, subject name.Digest, repo name.Repository, res *CopyResult, depth int) error {
	if depth >= maxReferrerDepth {
		return nil
	}
	_, descs, err := c.referrers(ctx, subject)
	if err != nil {
		return err
	}
	for _, d := range descs {
		srcRef := subject.Context().Digest(d.Digest.String())
		raw, err := c.getManifest(ctx, srcRef)
		if err != nil {
			return err
		}
		var m referrerManifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return fmt.Errorf("referrer %s is not a manifest: %v", srcRef, err)
		}
		if m.Subject == nil || m.Subject.Digest.String() != subject.DigestStr() {
			return fmt.Errorf("referrer %s is listed for %s but names another subject; not copying an inconsistent referrers list", srcRef, subject)
		}
		for _, b := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			if err := c.copyBlob(ctx, subject.Context(), repo, b); err != nil {
				return err
			}
		}
		artifactType := m.ArtifactType
		if artifactType == "" {
			artifactType = string(m.Config.MediaType)
		}
		r, err := c.putReferrer(ctx, repo.Digest(subject.DigestStr()), raw, artifactType, m.Annotations, nil)
		if err != nil {
			return err
		}
		res.Referrers = append(res.Referrers, r.Referrer)
		res.Path = r.Path
		if err := c.copyReferrers(ctx, srcRef, repo, res, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (c *Client) copyBlob(ctx context.Context, from, to name.Repository, d v1.Descriptor) error {
	l, err := remote.Layer(from.Digest(d.Digest.String()), c.remoteOptions(ctx)...)
	if err != nil {
		return classify(err, from.Digest(d.Digest.String()).String(), from, false)
	}
	if err := remote.WriteLayer(to, l, c.remoteOptions(ctx)...); err != nil {
		return classify(err, to.Digest(d.Digest.String()).String(), to, true)
	}
	return nil
}

func (c *Client) copyLegacy(ctx context.Context, subject name.Digest, repo name.Repository, res *CopyResult) error {
	for _, suffix := range []string{".sig", ".att"} {
		t := subject.Context().Tag(fallbackTag(subject) + suffix)
		img, err := remote.Image(t, c.remoteOptions(ctx)...)
		if err != nil {
			if _, missing := classify(err, t.String(), t.Context(), false).(*NotFoundError); missing {
				continue
			}
			return classify(err, t.String(), t.Context(), false)
		}
		dt := repo.Tag(t.TagStr())
		if err := remote.Write(dt, img, c.remoteOptions(ctx)...); err != nil {
			return classify(err, dt.String(), repo, true)
		}
		res.LegacyTags = append(res.LegacyTags, dt)
	}
	return nil
}
