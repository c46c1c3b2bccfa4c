package buildpack_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/signet-dev/signet/buildpack"
	"github.com/signet-dev/signet/core/oci"
)

// Fixtures written from the platform spec and what lifecycle v0.21.17
// writes: report.toml, analyzed.toml, group.toml in a layers directory, and
// an app image with the lifecycle's labels and SBOM layer, pushed to a
// loopback registry.

const (
	bpID       = "acme/node"
	bpEscaped  = "acme_node"
	bpVersion  = "1.2.3"
	bp2ID      = "acme/procfile"
	bp2Version = "5.0.0"
	lcVersion  = "0.21.17"
	// The layers directory as the build saw it: the SBOM layer's entries
	// carry it.
	buildLayers = "/layers"
)

var cdx = []byte(`{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[{"type":"library","name":"left-pad","version":"1.3.0"}]}`)
var spdx = []byte(`{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"app","dataLicense":"CC0-1.0","documentNamespace":"https://example.com/app","creationInfo":{"created":"1980-01-01T00:00:01Z","creators":["Tool: t"]}}`)
var syft = []byte(`{"artifacts":[{"id":"1","name":"left-pad","version":"1.3.0","type":"npm"}],"artifactRelationships":[],"source":{"type":"directory","target":"/workspace"},"distro":{},"descriptor":{"name":"t","version":"1"},"schema":{"version":"16.0.0","url":"https://raw.githubusercontent.com/anchore/syft/main/schema/json/schema-16.0.0.json"}}`)

// mediaTypes of an image: OCI, or Docker v2 schema 2 (what the lifecycle
// writes on a Docker run image).
type mediaTypes struct{ manifest, config, layer types.MediaType }

var (
	ociTypes    = mediaTypes{types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayer}
	dockerTypes = mediaTypes{types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer}
)

// tarLayer is a layer of files (path -> content), with their parent
// directories, as the lifecycle's DirLayer writes them.
func tarLayer(t testing.TB, files map[string][]byte, mt types.MediaType) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	dirs := map[string]bool{}
	for _, n := range names {
		for d := path.Dir(n); d != "/" && d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var ds []string
	for d := range dirs {
		ds = append(ds, d)
	}
	sort.Strings(ds)
	for _, d := range ds {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(files[n]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, tarball.WithMediaType(mt))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// appImage is a lifecycle export: a run image layer, an app layer and,
// when sboms is not nil, the SBOM layer (files below <layers>/sbom/launch/),
// with the labels of the given build.
func appImage(t testing.TB, mt mediaTypes, labels map[string]any, sboms map[string][]byte, platform *v1.Platform) (v1.Image, string) {
	t.Helper()
	img := mutate.MediaType(empty.Image, mt.manifest)
	img = mutate.ConfigMediaType(img, mt.config)
	layers := []v1.Layer{
		tarLayer(t, map[string][]byte{"/etc/os-release": []byte("ID=test\n")}, mt.layer),
		tarLayer(t, map[string][]byte{"/workspace/app.js": []byte("console.log(1)\n")}, mt.layer),
	}
	var sbomDiffID string
	if sboms != nil {
		files := map[string][]byte{}
		for rel, c := range sboms {
			files[buildLayers+"/sbom/launch/"+rel] = c
		}
		l := tarLayer(t, files, mt.layer)
		d, err := l.DiffID()
		if err != nil {
			t.Fatal(err)
		}
		sbomDiffID = d.String()
		layers = append(layers, l)
	}
	for _, l := range layers {
		var err error
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.Labels = map[string]string{}
	for k, v := range labels {
		if k == "io.buildpacks.lifecycle.metadata" && sbomDiffID != "" {
			m := v.(map[string]any)
			m["sbom"] = map[string]any{"sha": sbomDiffID}
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		cf.Config.Labels[k] = string(b)
	}
	if platform != nil {
		cf.OS, cf.Architecture, cf.Variant = platform.OS, platform.Architecture, platform.Variant
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img, sbomDiffID
}

// labels of a build at Platform API api: from 0.12 runImage.image is
// top-level, before only under stack.
func labels(runRef, runImage string, newAPI bool) map[string]any {
	ri := map[string]any{"topLayer": "sha256:" + hex64("1"), "reference": runRef}
	lm := map[string]any{
		"app":        []any{map[string]any{"sha": "sha256:" + hex64("2")}},
		"config":     map[string]any{"sha": "sha256:" + hex64("3")},
		"launcher":   map[string]any{"sha": "sha256:" + hex64("4")},
		"buildpacks": []any{map[string]any{"key": bpID, "version": bpVersion, "layers": map[string]any{}}},
		"runImage":   ri,
		"stack":      map[string]any{"runImage": map[string]any{"image": runImage}},
	}
	if newAPI {
		ri["image"] = runImage
	}
	return map[string]any{
		"io.buildpacks.lifecycle.metadata": lm,
		"io.buildpacks.build.metadata": map[string]any{
			"processes":  []any{map[string]any{"type": "web", "command": []any{"node"}, "args": []any{"app.js"}, "direct": true, "buildpackID": bpID}},
			"buildpacks": []any{map[string]any{"id": bpID, "version": bpVersion, "homepage": "https://acme.example/node"}, map[string]any{"id": bp2ID, "version": bp2Version}},
			"launcher":   map[string]any{"version": lcVersion, "source": map[string]any{"git": map[string]any{"repository": "github.com/buildpacks/lifecycle", "commit": "abc1234"}}},
		},
		"io.buildpacks.project.metadata": map[string]any{"source": map[string]any{
			"type":     "git",
			"version":  map[string]any{"commit": "63a73f1b0f2a4f6978c19184b0ea33ad3f092913"},
			"metadata": map[string]any{"repository": "https://github.com/acme/app.git", "refs": []any{"main"}},
		}},
	}
}

func hex64(c string) string {
	s := ""
	for len(s) < 64 {
		s += c
	}
	return s
}

func push(t testing.TB, ref string, img v1.Image) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// layersDir writes the lifecycle's files; "" content leaves a file out.
func layersDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for rel, c := range files {
		if c == "" {
			continue
		}
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func registry() buildpack.Registry {
	o := oci.Options{Keychain: authn.NewMultiKeychain()}
	return oci.New(o)
}

const groupTOML = `[[group]]
id = "acme/node"
version = "1.2.3"
api = "0.10"
homepage = "https://acme.example/node"

[[group]]
id = "acme/procfile"
version = "5.0.0"
api = "0.9"
`
