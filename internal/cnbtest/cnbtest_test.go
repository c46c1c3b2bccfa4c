package cnbtest

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/signet-dev/signet/core/oci/ocitest"
	"github.com/signet-dev/signet/core/sbom"
)

// lifecycleMD is the part of io.buildpacks.lifecycle.metadata the tests read.
type lifecycleMD struct {
	SBOM *struct {
		SHA string `json:"sha"`
	} `json:"sbom"`
	RunImage struct {
		TopLayer  string `json:"topLayer"`
		Reference string `json:"reference"`
		Image     string `json:"image"`
	} `json:"runImage"`
	Buildpacks []struct {
		Key     string                     `json:"key"`
		Version string                     `json:"version"`
		Layers  map[string]json.RawMessage `json:"layers"`
	} `json:"buildpacks"`
}

type buildMD struct {
	Buildpacks []struct {
		ID      string `json:"id"`
		Version string `json:"version"`
	} `json:"buildpacks"`
	Launcher struct {
		Version string `json:"version"`
		Source  struct {
			Git struct {
				Repository string `json:"repository"`
				Commit     string `json:"commit"`
			} `json:"git"`
		} `json:"source"`
	} `json:"launcher"`
}

// exported is the image the registry serves for b's tag, checked to be the
// digest report.toml names.
func exported(t *testing.T, b *Build) v1.Image {
	t.Helper()
	ref, err := name.ParseReference(b.Image, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatalf("the registry does not serve %s: %v", b.Image, err)
	}
	if got := desc.Digest.String(); got != b.Digest {
		t.Fatalf("registry serves %s as %s; report.toml says %s", b.Image, got, b.Digest)
	}
	if desc.Size != b.ManifestSize {
		t.Errorf("manifest is %d bytes; report.toml says %d", desc.Size, b.ManifestSize)
	}
	img, err := desc.Image()
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func labels(t *testing.T, img v1.Image) (map[string]string, lifecycleMD, buildMD) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	l := cf.Config.Labels
	var lmd lifecycleMD
	var bmd buildMD
	for key, v := range map[string]any{"io.buildpacks.lifecycle.metadata": &lmd, "io.buildpacks.build.metadata": &bmd} {
		raw, ok := l[key]
		if !ok {
			t.Fatalf("the image has no %s label; labels: %v", key, l)
		}
		if err := json.Unmarshal([]byte(raw), v); err != nil {
			t.Fatalf("label %s: %v\n%s", key, err, raw)
		}
	}
	return l, lmd, bmd
}

// layerFiles reads the files of the layer with diffID (the SBOM layer's
// entries are absolute paths of the layers directory).
func layerFiles(t *testing.T, img v1.Image, diffID string) map[string][]byte {
	t.Helper()
	h, err := v1.NewHash(diffID)
	if err != nil {
		t.Fatalf("diffID %q: %v", diffID, err)
	}
	layer, err := img.LayerByDiffID(h)
	if err != nil {
		t.Fatalf("no layer with diffID %s: %v", diffID, err)
	}
	rc, err := layer.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files["/"+strings.TrimPrefix(hdr.Name, "/")] = data
		}
	}
}

// A build with two launch SBOMs and a build SBOM at the newest Platform API
// gives what the hook reads: report.toml naming the digest the registry
// serves, the lifecycle and build labels, the launch SBOMs in the SBOM layer
// and the build SBOM on disk.
func TestBuild(t *testing.T) {
	reg := ocitest.Start(t)
	b := Run(t, Options{
		Registry: reg.Host, Repository: "team/app", Tag: "v1", Tags: []string{"extra"},
		SBOMs: []SBOM{
			{Scope: ScopeLaunch, Format: CycloneDX},
			{Scope: ScopeLaunch, Format: SPDX},
			{Scope: ScopeBuild, Format: Syft},
			{Scope: ScopeLaunch, Format: CycloneDX}, // the second: launch.sbom.cdx.json
			{Scope: ScopeLaunch, Format: CycloneDX}, // the third: a launch layer of its own
			{Scope: ScopeBuild, Format: Syft},       // the second: a build layer
		},
		Source: &Source{Repository: "https://github.com/example/app", Commit: "0123456789abcdef0123456789abcdef01234567", Refs: []string{"main"}},
	})
	if b.PlatformAPI != "0.15" || b.LifecycleVersion != "0.21.17" {
		t.Errorf("Platform API %s, lifecycle %s; want the newest API 0.15 of lifecycle 0.21.17", b.PlatformAPI, b.LifecycleVersion)
	}
	if b.ReportPath != filepath.Join(b.LayersDir, "report.toml") {
		t.Errorf("ReportPath = %s, want the lifecycle's default in the layers directory", b.ReportPath)
	}
	if _, err := os.Stat(b.ReportPath); err != nil {
		t.Errorf("report.toml: %v", err)
	}
	if want := []string{b.Image, reg.Host + "/team/app:extra"}; !slices.Equal(b.Tags, want) {
		t.Errorf("report.toml tags = %v, want %v", b.Tags, want)
	}
	img := exported(t, b)
	if want := reg.Host + "/team/app@" + b.Digest; b.Ref() != want {
		t.Errorf("Ref() = %s, want %s", b.Ref(), want)
	}
	if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("export is %s; an OCI run image should give an OCI manifest", mt)
	}
	l, lmd, bmd := labels(t, img)
	if lmd.RunImage.Reference != b.RunImage || lmd.RunImage.Image != b.RunImageTag {
		t.Errorf("runImage = %+v, want reference %s and image %s", lmd.RunImage, b.RunImage, b.RunImageTag)
	}
	if len(lmd.Buildpacks) != 1 || lmd.Buildpacks[0].Key != BuildpackID || lmd.Buildpacks[0].Layers["runtime"] == nil {
		t.Errorf("lifecycle metadata buildpacks = %+v, want %s with its runtime layer", lmd.Buildpacks, BuildpackID)
	}
	if len(bmd.Buildpacks) != 1 || bmd.Buildpacks[0].ID+"@"+bmd.Buildpacks[0].Version != b.Buildpack {
		t.Errorf("build metadata buildpacks = %+v, want %s", bmd.Buildpacks, b.Buildpack)
	}
	if bmd.Launcher.Version != "0.21.17" || bmd.Launcher.Source.Git.Commit != "ba8eca5" {
		t.Errorf("launcher = %+v; the lifecycle should report the version and commit toolcache stamped", bmd.Launcher)
	}
	if pmd := l["io.buildpacks.project.metadata"]; !strings.Contains(pmd, `"commit":"0123456789abcdef0123456789abcdef01234567"`) || !strings.Contains(pmd, "github.com/example/app") {
		t.Errorf("io.buildpacks.project.metadata = %s, want the Source", pmd)
	}

	if lmd.SBOM == nil {
		t.Fatal("no sbom in io.buildpacks.lifecycle.metadata")
	}
	inImage := layerFiles(t, img, lmd.SBOM.SHA)
	wantPaths := []string{
		"sbom/launch/signet-dev_cnbtest/runtime/sbom.cdx.json",
		"sbom/launch/signet-dev_cnbtest/runtime/sbom.spdx.json",
		"sbom/build/signet-dev_cnbtest/sbom.syft.json",
		"sbom/launch/signet-dev_cnbtest/sbom.cdx.json",
		"sbom/launch/signet-dev_cnbtest/runtime-2/sbom.cdx.json",
		"sbom/build/signet-dev_cnbtest/tools-1/sbom.syft.json",
	}
	if len(b.SBOMs) != len(wantPaths) {
		t.Fatalf("%d SBOMs, want %d", len(b.SBOMs), len(wantPaths))
	}
	for i, f := range b.SBOMs {
		if want := filepath.Join(b.LayersDir, wantPaths[i]); f.Path != want {
			t.Errorf("SBOM %d at %s, want %s", i, f.Path, want)
		}
		onDisk, err := os.ReadFile(f.Path)
		if err != nil || !bytes.Equal(onDisk, f.Data) {
			t.Errorf("SBOM %d on disk at %s: %v, same bytes: %t", i, f.Path, err, bytes.Equal(onDisk, f.Data))
		}
		data, ok := inImage[f.Path]
		switch {
		case f.Scope == ScopeLaunch && !bytes.Equal(data, f.Data):
			t.Errorf("launch SBOM %d: the SBOM layer has %s: %t, same bytes: %t", i, f.Path, ok, bytes.Equal(data, f.Data))
		case f.Scope == ScopeBuild && ok:
			t.Errorf("build SBOM %d is in the image's SBOM layer", i)
		}
	}
	if _, ok := inImage[filepath.Join(b.LayersDir, "sbom/launch/sbom.legacy.json")]; !ok {
		t.Errorf("the SBOM layer lacks the legacy BOM file; it has %v", keys(inImage))
	}
	for _, f := range b.SBOMs[:2] {
		if info, err := sbom.RecognizeFile(f.Path); err != nil || f.Digest != "sha256:"+info.SHA256 {
			t.Errorf("%s: signet does not recognise it as an SBOM with digest %s: %v", f.Path, f.Digest, err)
		}
	}

	builder := remoteImage(t, b.BuilderImage)
	bcf, err := builder.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var bm BuilderMetadata
	if err := json.Unmarshal([]byte(bcf.Config.Labels["io.buildpacks.builder.metadata"]), &bm); err != nil {
		t.Fatalf("builder metadata label: %v", err)
	}
	if bm.Lifecycle.Version != "0.21.17" || len(bm.Buildpacks) != 1 || bm.Buildpacks[0].ID != BuildpackID || bm.Stack.RunImage.Image != b.RunImageTag {
		t.Errorf("builder metadata = %+v", bm)
	}
	if b.Export <= 0 || b.Export >= b.Wall {
		t.Errorf("export took %v of the creator's %v; want the lifecycle's timer, within the run", b.Export, b.Wall)
	}
	t.Logf("creator %v, of which export %v", b.Wall, b.Export)
}

func remoteImage(t *testing.T, ref string) v1.Image {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	return img
}

func keys(m map[string][]byte) []string {
	var k []string
	for p := range m {
		k = append(k, p)
	}
	slices.Sort(k)
	return k
}

// A rebuild from the same directories exports the same digest, reusing the
// previous image's layers; a change to an SBOM changes it.
func TestRebuild(t *testing.T) {
	reg := ocitest.Start(t)
	sboms := []SBOM{{Scope: ScopeLaunch, Format: CycloneDX}, {Scope: ScopeLaunch, Format: SPDX}, {Scope: ScopeBuild, Format: Syft}}
	first := Run(t, Options{Registry: reg.Host, SBOMs: sboms})
	again := Run(t, Options{Registry: reg.Host, SBOMs: sboms, LayersDir: first.LayersDir})
	if again.Digest != first.Digest {
		t.Fatalf("rebuild exported %s, first build %s", again.Digest, first.Digest)
	}
	if !strings.Contains(again.Log, "Reusing layers from image") {
		t.Errorf("the rebuild did not analyze the previous image:\n%s", again.Log)
	}
	exported(t, again)

	changed := Run(t, Options{Registry: reg.Host, SBOMs: append(sboms[:1:1], SBOM{Scope: ScopeLaunch, Format: SPDX, Size: 4096}), LayersDir: first.LayersDir})
	if changed.Digest == first.Digest {
		t.Errorf("a rebuild with another launch SBOM exported the same digest %s", first.Digest)
	}
	if _, err := os.Stat(first.SBOMs[2].Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the first build's build SBOM %s is left after a rebuild without it: %v", first.SBOMs[2].Path, err)
	}
}

// A run image in Docker media types gives a Docker v2 schema 2 export.
func TestDockerMediaTypes(t *testing.T) {
	reg := ocitest.Start(t)
	b := Run(t, Options{Registry: reg.Host, DockerMediaTypes: true, ReportPath: "out/report.toml"})
	if b.ReportPath != filepath.Join(b.WorkDir, "out/report.toml") {
		t.Errorf("ReportPath = %s, want it in the work directory", b.ReportPath)
	}
	if _, err := os.Stat(filepath.Join(b.LayersDir, "report.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a report in the layers directory too (%v): -report was not passed", err)
	}
	img := exported(t, b)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.DockerManifestSchema2 || m.Config.MediaType != types.DockerConfigJSON {
		t.Errorf("manifest %s with config %s, want Docker v2 schema 2", m.MediaType, m.Config.MediaType)
	}
	for _, l := range m.Layers {
		if l.MediaType != types.DockerLayer {
			t.Errorf("layer %s is %s", l.Digest, l.MediaType)
		}
	}
	if b.MediaType != string(types.DockerManifestSchema2) {
		t.Errorf("Build.MediaType = %s", b.MediaType)
	}
}

// Every supported Platform API builds; the SBOM layout differs as the
// package comment says: none at 0.7, the legacy BOM file from 0.9.
func TestPlatformAPIs(t *testing.T) {
	reg := ocitest.Start(t)
	for _, api := range PlatformAPIs {
		t.Run(api, func(t *testing.T) {
			b := Run(t, Options{Registry: reg.Host, Repository: "api-" + api, PlatformAPI: api,
				SBOMs: []SBOM{{Scope: ScopeLaunch, Format: CycloneDX}, {Scope: ScopeBuild, Format: SPDX}}})
			_, lmd, _ := labels(t, exported(t, b))
			if lmd.RunImage.Reference != b.RunImage {
				t.Errorf("runImage.reference = %s, want %s", lmd.RunImage.Reference, b.RunImage)
			}
			_, statErr := os.Stat(filepath.Join(b.LayersDir, "sbom"))
			if api == "0.7" {
				if lmd.SBOM != nil || !errors.Is(statErr, os.ErrNotExist) {
					t.Errorf("at 0.7 there should be no SBOM layer (%+v) and no <layers>/sbom (%v)", lmd.SBOM, statErr)
				}
				for _, f := range b.SBOMs {
					if f.Path != "" {
						t.Errorf("SBOM path %s at 0.7", f.Path)
					}
				}
				return
			}
			if lmd.SBOM == nil {
				t.Fatal("no SBOM layer")
			}
			files := layerFiles(t, exported(t, b), lmd.SBOM.SHA)
			if data := files[b.SBOMs[0].Path]; !bytes.Equal(data, b.SBOMs[0].Data) {
				t.Errorf("launch SBOM %s not in the SBOM layer: %v", b.SBOMs[0].Path, keys(files))
			}
			if data, err := os.ReadFile(b.SBOMs[1].Path); err != nil || !bytes.Equal(data, b.SBOMs[1].Data) {
				t.Errorf("build SBOM %s: %v", b.SBOMs[1].Path, err)
			}
			_, legacy := files[filepath.Join(b.LayersDir, "sbom/launch/sbom.legacy.json")]
			if want := api != "0.8"; legacy != want {
				t.Errorf("legacy BOM file in the SBOM layer: %t, want %t", legacy, want)
			}
		})
	}
}

// The lifecycle refuses the Platform APIs just outside PlatformAPIs, so the
// list is its whole range.
func TestPlatformAPIBounds(t *testing.T) {
	reg := ocitest.Start(t)
	for _, api := range []string{"0.6", "0.16"} {
		_, err := run(t, Options{Registry: reg.Host, PlatformAPI: api})
		if err == nil || !strings.Contains(err.Error(), "incompatible") {
			t.Errorf("Platform API %s: err = %v, want the lifecycle to refuse it", api, err)
		}
	}
}

// The documents are the formats signet recognises, deterministic, padded
// to the size asked, and broken when asked.
func TestDocuments(t *testing.T) {
	for _, format := range []string{CycloneDX, SPDX, Syft} {
		s := SBOM{Scope: ScopeLaunch, Format: format}
		small := document(s, "x")
		if !json.Valid(small) || !bytes.Equal(small, document(s, "x")) || bytes.Equal(small, document(s, "y")) {
			t.Errorf("%s: want valid JSON, the same for a name, another for another name: %s", format, small)
		}
		s.Size = 1 << 20
		big := document(s, "x")
		if len(big) < 1<<20 || len(big) > 1<<20+1<<10 || !json.Valid(big) {
			t.Errorf("%s: padded to %d bytes (valid %t), want about 1 MiB", format, len(big), json.Valid(big))
		}
		s.Broken = true
		if json.Valid(document(s, "x")) {
			t.Errorf("%s: a broken document is valid JSON", format)
		}
		info, err := sbom.Recognize(bytes.NewReader(small))
		switch format {
		case CycloneDX:
			if err != nil || info.Format != sbom.CycloneDXJSON {
				t.Errorf("cdx recognised as %+v, %v", info, err)
			}
		case SPDX:
			if err != nil || info.Format != sbom.SPDXJSON {
				t.Errorf("spdx recognised as %+v, %v", info, err)
			}
		}
	}
}

// Any number of SBOMs of one scope and format get places of their own.
func TestPlacement(t *testing.T) {
	var sboms []SBOM
	for range 3 {
		sboms = append(sboms, SBOM{Scope: ScopeLaunch, Format: CycloneDX}, SBOM{Scope: ScopeBuild, Format: CycloneDX})
	}
	names, layers, err := placement(sboms)
	if err != nil {
		t.Fatal(err)
	}
	wantNames := []string{"runtime.sbom.cdx.json", "build.sbom.cdx.json", "launch.sbom.cdx.json", "tools-1.sbom.cdx.json", "runtime-2.sbom.cdx.json", "tools-2.sbom.cdx.json"}
	wantLayers := []string{"runtime", "", "", "tools-1", "runtime-2", "tools-2"}
	if !slices.Equal(names, wantNames) || !slices.Equal(layers, wantLayers) {
		t.Errorf("placement = %v %v, want %v %v", names, layers, wantNames, wantLayers)
	}
	if _, _, err := placement([]SBOM{{Scope: "run", Format: CycloneDX}}); err == nil {
		t.Error("scope run accepted")
	}
	if _, _, err := placement([]SBOM{{Scope: ScopeBuild, Format: "xml"}}); err == nil {
		t.Error("format xml accepted")
	}
}
