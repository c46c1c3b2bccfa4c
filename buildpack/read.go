// Package buildpack translates what a Cloud Native Buildpacks export left
// (report.toml, analyzed.toml, group.toml, the exported image's labels and
// SBOM layer, the build SBOMs in the layers directory) into what core signs:
// the exported image by digest, one attestation per SBOM, and SLSA v1
// provenance of the build. It reads Platform API 0.7 to 0.15 as the
// platform spec and lifecycle v0.21.17 write them; docs/buildpack.md says
// what differs between them.
package buildpack

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/signet-dev/signet/core/oci"
)

// Options says where the lifecycle's output is; cmd/signet resolves the
// environment (CNB_LAYERS_DIR, CNB_REPORT_PATH, CNB_PLATFORM_API, ...) and
// flags into it.
type Options struct {
	LayersDir string
	// Image, for platforms that leave no report.toml where signet runs
	// (kpack: its Build's status.latestImage), is the exported image;
	// report.toml is then not read, and LayersDir may be empty (no build
	// SBOMs, analyzed.toml or group.toml).
	Image string
	// ReportPath, AnalyzedPath and GroupPath default to report.toml,
	// analyzed.toml and group.toml in LayersDir, as for every Platform API
	// from 0.7 to 0.15.
	ReportPath   string
	AnalyzedPath string
	GroupPath    string
	// PlatformAPI is the build's CNB_PLATFORM_API; "" if unknown (then
	// what the files hold is read as it is).
	PlatformAPI string
	// Client reads the registry: an *oci.Client.
	Client Registry
	// BuilderImage is the builder image the platform ran, from a flag or
	// the environment; it is resolved to a digest. Without it, the build
	// image analyzed.toml records (Platform API 0.10+, with extensions).
	BuilderImage string
	// Source, if it has a URI or digest, replaces what the image's project
	// metadata label says about the source (--source-uri, --source-digest).
	Source Source
	// Platform names who ran the build ("pack", "kpack", "tekton", ...).
	Platform string
	// BuilderID is the provenance's runDetails.builder.id; default
	// DefaultBuilderID(Platform).
	BuilderID string
	// StartedOn and FinishedOn, if known; else the files' times tell.
	StartedOn, FinishedOn time.Time
}

// Source is the application source the build was given.
type Source struct {
	// Type is project metadata's source.type ("git", "image", "blob", ...).
	Type string
	// URI is where it is: git+<repository URL>, the image repository, the
	// blob URL.
	URI string
	// Digest is algorithm -> value: gitCommit for a git commit, sha256.
	Digest map[string]string
}

func (s Source) empty() bool { return s.URI == "" && len(s.Digest) == 0 }

// Image is a base image of the build.
type Image struct {
	// Reference is the image as the platform or metadata names it.
	Reference string
	// Digest is repository@sha256:<hex>; "" if only a daemon image ID is known.
	Digest string
}

// Buildpack is a buildpack (or image extension) of the detected group.
type Buildpack struct {
	ID, Version, API, Homepage string
}

// Build is what one lifecycle export produced and how.
type Build struct {
	// Image is the exported manifest by digest, in the first tag's
	// repository (its Reference is that tag, which must still name it when
	// bundles are attached).
	Image *oci.Subject
	// Platforms are, when Image is an index, its platform manifests.
	Platforms []*oci.Subject
	// Exported is the manifest the labels and SBOM layer were read from:
	// Image, or for an index the platform manifest this build made.
	Exported *oci.Subject
	Tags     []string
	RunImage Image
	Builder  Image
	// Lifecycle is the exporting lifecycle's version (the build metadata
	// label's launcher.version, which the exporter stamps with its own).
	Lifecycle   string
	PlatformAPI string
	Platform    string
	BuilderID   string
	Buildpacks  []Buildpack // in group order
	Extensions  []Buildpack
	Source      Source
	SBOMs       []SBOM // launch first
	StartedOn   time.Time
	FinishedOn  time.Time
}

// Supported Platform API versions.
const (
	MinPlatformAPI = "0.7"
	MaxPlatformAPI = "0.15"
)

// Read reads the lifecycle's output and the exported image, and checks
// everything that will be signed: the report's digest against the registry,
// every SBOM. An error means nothing should be signed.
func Read(ctx context.Context, o Options) (*Build, error) {
	if o.Client == nil {
		return nil, errors.New("buildpack: no registry client")
	}
	if err := checkPlatformAPI(o.PlatformAPI); err != nil {
		return nil, err
	}
	if o.LayersDir == "" && o.Image == "" {
		return nil, errors.New("buildpack: no layers directory")
	}
	def := func(p, file string) string {
		if p == "" && o.LayersDir != "" {
			return filepath.Join(o.LayersDir, file)
		}
		return p
	}
	o.ReportPath, o.AnalyzedPath, o.GroupPath = def(o.ReportPath, "report.toml"), def(o.AnalyzedPath, "analyzed.toml"), def(o.GroupPath, "group.toml")

	var rep reportFile
	if o.Image != "" {
		// No report: the image named is what was exported.
		s, err := o.Client.Resolve(ctx, o.Image)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", o.Image, err)
		}
		rep.Image.Digest = s.Descriptor.Digest.String()
		rep.Image.Tags = []string{o.Image}
	} else if absent, err := decodeTOML(o.ReportPath, &rep); absent {
		return nil, &ReportNotFoundError{Path: o.ReportPath}
	} else if err != nil {
		return nil, err
	}
	var analyzed analyzedFile
	if absent, err := decodeTOML(o.AnalyzedPath, &analyzed); err != nil && !absent {
		return nil, err
	}
	var group groupFile
	groupFound := true
	if absent, err := decodeTOML(o.GroupPath, &group); absent {
		groupFound = false
	} else if err != nil {
		return nil, err
	}

	b := &Build{Tags: rep.Image.Tags, PlatformAPI: o.PlatformAPI, Platform: o.Platform}
	if err := b.resolve(ctx, o, &rep, &analyzed); err != nil {
		return nil, err
	}
	img, err := o.Client.Image(ctx, b.Exported)
	if err != nil {
		return nil, fmt.Errorf("reading the exported image %s: %w", b.Exported, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the config of %s: %w", b.Exported, err)
	}
	labels := cfg.Config.Labels
	var lm lifecycleMetadata
	if ok, err := decodeLabel(labels, labelLifecycle, &lm); err != nil {
		return nil, labelOf(err, b.Exported)
	} else if !ok {
		return nil, &LabelError{Image: b.Exported.String(), Label: labelLifecycle, Err: errors.New("missing: the image was not exported by a CNB lifecycle")}
	}
	var bm buildMetadata
	if _, err := decodeLabel(labels, labelBuild, &bm); err != nil {
		return nil, labelOf(err, b.Exported)
	}
	var pm projectMetadata
	if _, err := decodeLabel(labels, labelProject, &pm); err != nil {
		return nil, labelOf(err, b.Exported)
	}

	if err := b.readGroup(bm, group, groupFound, o.GroupPath); err != nil {
		return nil, err
	}
	b.Lifecycle = bm.Launcher.Version
	b.RunImage = runImage(lm, analyzed)
	if err := b.readBuilder(ctx, o, analyzed); err != nil {
		return nil, err
	}
	b.Source = o.Source
	if b.Source.empty() {
		b.Source = projectSource(pm)
	}

	var ids []string
	for _, bp := range append(slices.Clone(b.Buildpacks), b.Extensions...) {
		ids = append(ids, bp.ID)
	}
	sr := newSBOMReader(ids)
	if lm.SBOM != nil && lm.SBOM.SHA != "" {
		if err := sr.readLaunchSBOMs(img, lm.SBOM.SHA); err != nil {
			return nil, labelOf(err, b.Exported)
		}
	}
	if o.LayersDir != "" {
		if err := sr.readBuildSBOMs(o.LayersDir); err != nil {
			return nil, err
		}
	}
	b.SBOMs = sr.sorted()

	b.BuilderID = cmp.Or(o.BuilderID, DefaultBuilderID(o.Platform))
	b.StartedOn, b.FinishedOn = o.StartedOn, o.FinishedOn
	if b.StartedOn.IsZero() {
		b.StartedOn = earliestModTime(o.AnalyzedPath, o.GroupPath)
	}
	if b.FinishedOn.IsZero() {
		b.FinishedOn = earliestModTime(o.ReportPath)
	}
	if !b.StartedOn.IsZero() && b.FinishedOn.Before(b.StartedOn) {
		b.StartedOn = time.Time{} // the files' times contradict each other
	}
	return b, nil
}

func labelOf(err error, s *oci.Subject) error {
	var le *LabelError
	if errors.As(err, &le) && le.Image == "" {
		le.Image = s.String()
	}
	return err
}

func checkPlatformAPI(v string) error {
	if v == "" {
		return nil
	}
	minor, ok := strings.CutPrefix(v, "0.")
	n, err := strconv.Atoi(minor)
	if !ok || err != nil || n < 7 || n > 15 {
		return fmt.Errorf("Platform API %q: signet reads the lifecycle's output for Platform API %s to %s", v, MinPlatformAPI, MaxPlatformAPI)
	}
	return nil
}

// resolve checks report.toml against the registry: every tag must still
// name the exported digest. For an index it finds the platform manifest the
// build exported.
func (b *Build) resolve(ctx context.Context, o Options, rep *reportFile, analyzed *analyzedFile) error {
	if len(rep.Image.Tags) == 0 {
		return &FileError{Path: o.ReportPath, Err: errors.New("[image] tags is empty: the export wrote no image")}
	}
	if rep.Image.Digest == "" {
		return &DaemonExportError{Path: o.ReportPath, ImageID: rep.Image.ImageID, Tags: rep.Image.Tags}
	}
	want, err := v1.NewHash(rep.Image.Digest)
	if err != nil || want.Algorithm != "sha256" {
		return &FileError{Path: o.ReportPath, Err: fmt.Errorf("[image] digest %q is not a sha256:<hex> digest", rep.Image.Digest)}
	}
	for _, tag := range rep.Image.Tags {
		s, err := o.Client.Resolve(ctx, tag)
		var nf *oci.NotFoundError
		if errors.As(err, &nf) {
			return &DigestMismatchError{Tag: tag, Report: want.String()}
		}
		if err != nil {
			return fmt.Errorf("report.toml tag %s: %w", tag, err)
		}
		if s.Descriptor.Digest != want {
			return &DigestMismatchError{Tag: tag, Report: want.String(), Registry: s.Descriptor.Digest.String()}
		}
		if b.Image == nil {
			b.Image = s
		}
	}
	b.Exported = b.Image
	if !b.Image.IsIndex() {
		return nil
	}
	ps, err := o.Client.Platforms(ctx, b.Image)
	if err != nil {
		return err
	}
	b.Platforms = ps
	b.Exported, err = exportedPlatform(b.Image, ps, analyzed)
	return err
}

// exportedPlatform picks, in an index, the manifest of this build: the one
// for the run image's target (analyzed.toml, Platform API 0.12+), or the
// only one.
func exportedPlatform(idx *oci.Subject, ps []*oci.Subject, a *analyzedFile) (*oci.Subject, error) {
	var images []*oci.Subject
	for _, p := range ps {
		if p.Descriptor.MediaType.IsImage() {
			images = append(images, p)
		}
	}
	if len(images) == 1 {
		return images[0], nil
	}
	if a.RunImage != nil && a.RunImage.Target != nil && a.RunImage.Target.OS != "" {
		t := a.RunImage.Target
		variant := cmp.Or(t.ArchVariant, t.Variant)
		for _, p := range images {
			if p.Platform != nil && p.Platform.OS == t.OS && p.Platform.Architecture == t.Arch && p.Platform.Variant == variant {
				return p, nil
			}
		}
		target := t.OS + "/" + t.Arch
		if variant != "" {
			target += "/" + variant
		}
		return nil, fmt.Errorf("the exported index %s has no manifest for the run image's target %s (analyzed.toml)", idx, target)
	}
	return nil, fmt.Errorf("the exported index %s has %d platform images and analyzed.toml names no run image target to tell which this build made", idx, len(images))
}

// readGroup takes the group from the build metadata label (the image's own
// record), with each buildpack's API from group.toml, which must name the
// same buildpacks when present.
func (b *Build) readGroup(bm buildMetadata, g groupFile, found bool, groupPath string) error {
	conv := func(es []labelElement) []Buildpack {
		var out []Buildpack
		for _, e := range es {
			out = append(out, Buildpack{ID: e.ID, Version: e.Version, API: e.API, Homepage: e.Homepage})
		}
		return out
	}
	b.Buildpacks, b.Extensions = conv(bm.Buildpacks), conv(bm.Extensions)
	if !found {
		return nil
	}
	merge := func(kind string, bps []Buildpack, es []groupEntry) ([]Buildpack, error) {
		if len(bps) == 0 {
			// No build metadata label (or an empty group in it): group.toml.
			for _, e := range es {
				bps = append(bps, Buildpack{ID: e.ID, Version: e.Version, API: e.API, Homepage: e.Homepage})
			}
			return bps, nil
		}
		if len(bps) != len(es) {
			return nil, &MismatchError{What: fmt.Sprintf("%s lists %d %s, the image's %s label %d", groupPath, len(es), kind, labelBuild, len(bps))}
		}
		for i, e := range es {
			if e.ID != bps[i].ID || e.Version != bps[i].Version {
				return nil, &MismatchError{What: fmt.Sprintf("%s names %s@%s where the image's %s label names %s@%s", groupPath, e.ID, e.Version, labelBuild, bps[i].ID, bps[i].Version)}
			}
			bps[i].API = cmp.Or(bps[i].API, e.API)
			bps[i].Homepage = cmp.Or(bps[i].Homepage, e.Homepage)
		}
		return bps, nil
	}
	var err error
	if b.Buildpacks, err = merge("buildpacks", b.Buildpacks, g.Group); err != nil {
		return err
	}
	b.Extensions, err = merge("extensions", b.Extensions, g.GroupExtensions)
	return err
}

// runImage is the run image as the lifecycle metadata label records it
// (reference: the digest reference the app image was based on), else as
// analyzed.toml does.
func runImage(lm lifecycleMetadata, a analyzedFile) Image {
	ref := lm.RunImage.Reference
	image := lm.RunImage.Image
	if image == "" && lm.Stack != nil {
		image = lm.Stack.RunImage.Image
	}
	if a.RunImage != nil {
		ref = cmp.Or(ref, a.RunImage.Reference)
		image = cmp.Or(image, a.RunImage.Image)
	}
	out := Image{Reference: cmp.Or(image, ref)}
	if d, err := name.NewDigest(ref); err == nil {
		out.Digest = d.String()
	}
	return out
}

// readBuilder resolves the builder image the platform named; without one,
// the build image analyzed.toml records, a digest reference.
func (b *Build) readBuilder(ctx context.Context, o Options, a analyzedFile) error {
	if o.BuilderImage != "" {
		s, err := o.Client.Resolve(ctx, o.BuilderImage)
		if err != nil {
			return fmt.Errorf("builder image %s: %w", o.BuilderImage, err)
		}
		b.Builder = Image{Reference: o.BuilderImage, Digest: s.Digest.String()}
		return nil
	}
	if a.BuildImage == nil || a.BuildImage.Reference == "" {
		return nil
	}
	b.Builder = Image{Reference: a.BuildImage.Reference}
	if d, err := name.NewDigest(a.BuildImage.Reference); err == nil {
		b.Builder.Digest = d.String()
	}
	return nil
}

// projectSource reads the project metadata label by the source conventions
// of buildpacks.io (git: version.commit, metadata.repository; image:
// version.digest, metadata.repository; kpack's blob: version.sha256,
// metadata.url; project.toml's: metadata.url).
func projectSource(pm projectMetadata) Source {
	src := pm.Source
	if src == nil {
		return Source{}
	}
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	s := Source{Type: src.Type, Digest: map[string]string{}}
	switch src.Type {
	case "git":
		if repo := str(src.Metadata, "repository"); repo != "" {
			s.URI = repo
			if !strings.HasPrefix(repo, "git+") {
				s.URI = "git+" + repo
			}
		}
		if c := str(src.Version, "commit"); c != "" {
			s.Digest["gitCommit"] = c
		}
	case "image":
		s.URI = str(src.Metadata, "repository")
		if d := str(src.Version, "digest"); d != "" {
			s.Digest["sha256"] = strings.TrimPrefix(d, "sha256:")
		}
	default:
		s.URI = str(src.Metadata, "url")
		if d := str(src.Version, "sha256"); d != "" {
			s.Digest["sha256"] = d
		}
	}
	if len(s.Digest) == 0 {
		s.Digest = nil
	}
	return s
}

// earliestModTime is the earliest modification time of the files that
// exist: the analyzer and detector write analyzed.toml and group.toml as a
// build starts; the exporter writes report.toml as it ends.
func earliestModTime(paths ...string) time.Time {
	var t time.Time
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			continue // absent: the Platform API or the platform left it out
		}
		if t.IsZero() || st.ModTime().Before(t) {
			t = st.ModTime()
		}
	}
	return t
}
