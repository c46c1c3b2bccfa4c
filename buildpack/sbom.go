package buildpack

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/pipeline"
	"github.com/signet-dev/signet/core/sbom"
)

// SBOM scopes: launch SBOMs describe what is in the image (they are in its
// SBOM layer); build SBOMs describe what the build used and left out (they
// stay in <layers>/sbom/build).
const (
	ScopeLaunch = "launch"
	ScopeBuild  = "build"
)

// SBOM formats, by the file names the lifecycle gives them.
const (
	FormatCycloneDX = "cyclonedx"
	FormatSPDX      = "spdx"
	FormatSyft      = "syft"
)

// PredicateSyft is the predicate type of a Syft JSON SBOM: what syft's own
// `syft attest` used for its syft-json format (cmd/syft/cli/attest in
// anchore/syft, before it handed attesting to cosign, which has no Syft
// type). Verify with cosign verify-attestation --type https://syft.dev/bom.
const PredicateSyft = "https://syft.dev/bom"

// lifecycleID is the buildpack ID the lifecycle files its own SBOMs under.
const lifecycleID = "buildpacksio/lifecycle"

// maxSBOMSize keeps an SBOM's attestation within what a referrer may hold:
// its statement grows by a third in the envelope, plus the bundle's slack.
const maxSBOMSize = (oci.DefaultMaxBundleSize - 64<<10) * 3 / 4

// maxSBOMTotal bounds what one build's SBOMs may take in memory.
const maxSBOMTotal = 4 * oci.DefaultMaxBundleSize

// SBOM is one SBOM document a buildpack (or the lifecycle) produced.
type SBOM struct {
	// Scope is ScopeLaunch or ScopeBuild.
	Scope string
	// Buildpack is the ID of the buildpack that wrote it
	// ("buildpacksio/lifecycle" for the lifecycle's and launcher's own).
	Buildpack string
	// Layer is the buildpack layer it describes; "" for the buildpack's
	// launch.sbom.* or build.sbom.* document.
	Layer string
	// Name is its path below the layers directory,
	// sbom/<scope>/<buildpack ID with / as _>/[<layer>/]sbom.<ext>.json,
	// the same for both scopes.
	Name string
	// Path is where it was read: the entry in the image's SBOM layer, or
	// the file on disk.
	Path string
	// Format is FormatCycloneDX, FormatSPDX or FormatSyft.
	Format string
	// PredicateType is the in-toto predicate type it is attested with.
	PredicateType string
	// MediaType is the lifecycle's media type for the format.
	MediaType string
	Content   []byte
}

// sbomFile is what the lifecycle names an SBOM file, per format
// (lifecycle's buildpack/bomfile.go: sbom.<ext>.json for each media type).
var sbomFiles = map[string]struct{ format, predicateType, mediaType string }{
	"sbom.cdx.json":  {FormatCycloneDX, intoto.PredicateCycloneDX, "application/vnd.cyclonedx+json"},
	"sbom.spdx.json": {FormatSPDX, intoto.PredicateSPDX, "application/spdx+json"},
	"sbom.syft.json": {FormatSyft, PredicateSyft, "application/vnd.syft+json"},
}

// escapeID is how the lifecycle names a buildpack's directory.
func escapeID(id string) string { return strings.ReplaceAll(id, "/", "_") }

// sbomReader turns files found below sbom/<scope>/ into checked SBOMs.
type sbomReader struct {
	ids   map[string]string // escaped ID -> ID
	total int64
	out   []SBOM
}

func newSBOMReader(ids []string) *sbomReader {
	r := &sbomReader{ids: map[string]string{escapeID(lifecycleID): lifecycleID}}
	for _, id := range ids {
		r.ids[escapeID(id)] = id
	}
	return r
}

// add checks one file: rel is its path below sbom/<scope>/. Files that are
// not SBOMs of a known format are skipped, among them sbom.legacy.json,
// the legacy non-standard BOM.
func (r *sbomReader) add(scope, rel, where string, size int64, open func() (io.Reader, error)) error {
	parts := strings.Split(rel, "/")
	kind, ok := sbomFiles[parts[len(parts)-1]]
	if !ok || len(parts) < 2 || len(parts) > 3 {
		return nil
	}
	s := SBOM{Scope: scope, Name: path.Join("sbom", scope, rel), Path: where,
		Format: kind.format, PredicateType: kind.predicateType, MediaType: kind.mediaType}
	s.Buildpack = parts[0]
	if id, ok := r.ids[parts[0]]; ok {
		s.Buildpack = id
	}
	if len(parts) == 3 {
		s.Layer = parts[1]
	}
	fail := func(err error) error { return &SBOMError{Scope: scope, Buildpack: s.Buildpack, Path: where, Err: err} }
	if size > maxSBOMSize {
		return fail(fmt.Errorf("it is %d bytes; an SBOM attached to an image may be at most %d bytes", size, int64(maxSBOMSize)))
	}
	if r.total += size; r.total > maxSBOMTotal {
		return fail(fmt.Errorf("the build's SBOMs come to more than %d bytes", int64(maxSBOMTotal)))
	}
	rd, err := open()
	if err != nil {
		return fail(err)
	}
	if s.Content, err = io.ReadAll(io.LimitReader(rd, maxSBOMSize+1)); err != nil {
		return fail(err)
	}
	if err := checkSBOM(s.Format, s.PredicateType, s.Content); err != nil {
		return fail(err)
	}
	r.out = append(r.out, s)
	return nil
}

// checkSBOM checks a document is what its file name says, and whole: the
// image verbs' check (core/sbom) for SPDX and CycloneDX, then the
// predicate check every statement gets, which parses all of it.
func checkSBOM(format, predicateType string, content []byte) error {
	switch format {
	case FormatSyft:
		if err := checkSyft(content); err != nil {
			return err
		}
	default:
		info, err := sbom.Recognize(bytes.NewReader(content))
		if err != nil {
			return err
		}
		if info.PredicateType != predicateType {
			return fmt.Errorf("it is named as %s but is %s %s", format, info.Format, info.Version)
		}
	}
	return pipeline.CheckPredicate(predicateType, content)
}

// checkSyft recognises Syft JSON: an object with the artifacts list and
// the schema version every Syft JSON document carries.
func checkSyft(content []byte) error {
	var doc struct {
		Artifacts json.RawMessage `json:"artifacts"`
		Schema    struct {
			Version string `json:"version"`
		} `json:"schema"`
	}
	if err := json.Unmarshal(content, &doc); err != nil {
		return fmt.Errorf("not valid Syft JSON: %v", err)
	}
	if len(doc.Artifacts) == 0 || doc.Artifacts[0] != '[' || doc.Schema.Version == "" {
		return errors.New("not a Syft JSON document: an artifacts list and schema.version are missing")
	}
	return nil
}

// readLaunchSBOMs reads the SBOM layer the lifecycle metadata names by
// diffID. Its entries carry the layers directory's absolute path
// (<layers>/sbom/launch/...), whatever that was in the build.
func (r *sbomReader) readLaunchSBOMs(img v1.Image, diffID string) error {
	h, err := v1.NewHash(diffID)
	if err != nil {
		return &LabelError{Label: labelLifecycle, Err: fmt.Errorf("sbom.sha %q: %v", diffID, err)}
	}
	layer, err := img.LayerByDiffID(h)
	if err != nil {
		return &LabelError{Label: labelLifecycle, Err: fmt.Errorf("sbom.sha %s names no layer of the image: %v", diffID, err)}
	}
	rc, err := layer.Uncompressed()
	if err != nil {
		return fmt.Errorf("reading the SBOM layer %s: %w", diffID, err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the SBOM layer %s: %w", diffID, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		name := path.Clean("/" + hdr.Name)
		_, rel, ok := strings.Cut(name, "/sbom/launch/")
		if !ok {
			continue
		}
		if err := r.add(ScopeLaunch, rel, hdr.Name, hdr.Size, func() (io.Reader, error) { return tr, nil }); err != nil {
			return err
		}
	}
}

// readBuildSBOMs reads <layers>/sbom/build, where the lifecycle leaves
// build SBOMs (Platform API 0.8 and later); none there is no error.
func (r *sbomReader) readBuildSBOMs(layersDir string) error {
	root := filepath.Join(layersDir, "sbom", ScopeBuild)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var f *os.File
		defer func() {
			if f != nil {
				f.Close()
			}
		}()
		return r.add(ScopeBuild, filepath.ToSlash(rel), p, info.Size(), func() (io.Reader, error) {
			f, err = os.Open(p)
			return f, err
		})
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// sorted is the SBOMs launch first, each scope by name.
func (r *sbomReader) sorted() []SBOM {
	slices.SortFunc(r.out, func(a, b SBOM) int {
		if a.Scope != b.Scope {
			if a.Scope == ScopeLaunch {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return r.out
}
