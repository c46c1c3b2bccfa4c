package buildpack_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signet-dev/signet/buildpack"
	"github.com/signet-dev/signet/core/oci/ocitest"
)

// fixture is one export: the image pushed under its tags, and the layers
// directory the lifecycle left.
type fixture struct {
	api    string
	mt     mediaTypes
	launch map[string][]byte // the SBOM layer's files below sbom/launch; nil: no SBOM layer
	build  map[string][]byte // files below <layers>/sbom/build
	repo   string            // default "app"
}

type exported struct {
	dir, digest, tag, runRef, buildImageRef string
}

// newAPI reports whether a Platform API is at least 0.minor.
func atLeast(api string, minor int) bool {
	var n int
	fmt.Sscanf(api, "0.%d", &n)
	return n >= minor
}

func (f fixture) export(t *testing.T, reg *ocitest.Registry) exported {
	t.Helper()
	repo := f.repo
	if repo == "" {
		repo = "app"
	}
	e := exported{
		tag:           reg.Ref(repo + ":1.0"),
		runRef:        reg.Ref("run@sha256:" + hex64("a")),
		buildImageRef: reg.Ref("build@sha256:" + hex64("b")),
	}
	img, _ := appImage(t, f.mt, labels(e.runRef, reg.Ref("run:jammy"), atLeast(f.api, 12)), f.launch, nil)
	e.digest = push(t, e.tag, img)
	push(t, reg.Ref(repo+":latest"), img)

	analyzed := fmt.Sprintf("[image]\n  reference = %q\n\n[run-image]\n  reference = %q\n", reg.Ref(repo+"@sha256:"+hex64("c")), e.runRef)
	if atLeast(f.api, 12) {
		analyzed += fmt.Sprintf("  image = %q\n  [run-image.target]\n    os = \"linux\"\n    arch = \"amd64\"\n    [run-image.target.distro]\n      name = \"ubuntu\"\n      version = \"22.04\"\n", reg.Ref("run:jammy"))
	}
	if atLeast(f.api, 10) {
		analyzed += fmt.Sprintf("\n[build-image]\n  reference = %q\n", e.buildImageRef)
	}
	files := map[string]string{
		"report.toml": fmt.Sprintf("[image]\n  tags = [%q, %q]\n  digest = %q\n  manifest-size = 1234\n", e.tag, reg.Ref(repo+":latest"), e.digest),
		// The lifecycle writes analyzed.toml and group.toml first.
		"analyzed.toml": analyzed,
		"group.toml":    groupTOML,
	}
	for rel, c := range f.build {
		files["sbom/build/"+rel] = string(c)
	}
	e.dir = layersDir(t, files)
	return e
}

func (e exported) options(api string) buildpack.Options {
	return buildpack.Options{LayersDir: e.dir, PlatformAPI: api, Client: registry(), Platform: "pack"}
}

var launchSBOMs = map[string][]byte{
	bpEscaped + "/sbom.cdx.json":                    cdx,
	bpEscaped + "/modules/sbom.spdx.json":           spdx,
	bpEscaped + "/sbom.syft.json":                   syft,
	"buildpacksio_lifecycle/launcher/sbom.cdx.json": cdx,
	"sbom.legacy.json":                              []byte(`[]`),
}

var buildSBOMs = map[string][]byte{
	bpEscaped + "/sbom.spdx.json":           spdx,
	"acme_procfile/tools/sbom.cdx.json":     cdx,
	"buildpacksio_lifecycle/sbom.syft.json": syft,
	"sbom.legacy.json":                      []byte(`[]`),
	bpEscaped + "/notes.txt":                []byte("not an SBOM"),
}

type sbomWant struct{ scope, buildpack, layer, name, format, predicateType string }

func sbomsOf(b *buildpack.Build) []sbomWant {
	var out []sbomWant
	for _, s := range b.SBOMs {
		out = append(out, sbomWant{s.Scope, s.Buildpack, s.Layer, s.Name, s.Format, s.PredicateType})
	}
	return out
}

// TestReadAcrossPlatformAPIs reads exports as each Platform API shapes
// them: 0.7 has no SBOM layer; from 0.8 SBOMs are in the image and the
// layers directory; 0.10 adds analyzed.toml's build-image; 0.12 moves
// runImage.image out of the deprecated stack key and adds the run image's
// target. Docker v2 schema 2 and OCI manifests both.
func TestReadAcrossPlatformAPIs(t *testing.T) {
	reg := ocitest.Start(t)
	wantLaunch := []sbomWant{
		{"launch", bpID, "modules", "sbom/launch/acme_node/modules/sbom.spdx.json", "spdx", "https://spdx.dev/Document"},
		{"launch", bpID, "", "sbom/launch/acme_node/sbom.cdx.json", "cyclonedx", "https://cyclonedx.org/bom"},
		{"launch", bpID, "", "sbom/launch/acme_node/sbom.syft.json", "syft", "https://syft.dev/bom"},
		{"launch", "buildpacksio/lifecycle", "launcher", "sbom/launch/buildpacksio_lifecycle/launcher/sbom.cdx.json", "cyclonedx", "https://cyclonedx.org/bom"},
	}
	wantBuild := []sbomWant{
		{"build", bpID, "", "sbom/build/acme_node/sbom.spdx.json", "spdx", "https://spdx.dev/Document"},
		{"build", bp2ID, "tools", "sbom/build/acme_procfile/tools/sbom.cdx.json", "cyclonedx", "https://cyclonedx.org/bom"},
		{"build", "buildpacksio/lifecycle", "", "sbom/build/buildpacksio_lifecycle/sbom.syft.json", "syft", "https://syft.dev/bom"},
	}
	for i, tc := range []struct {
		api string
		mt  mediaTypes
	}{{"0.7", dockerTypes}, {"0.8", ociTypes}, {"0.9", dockerTypes}, {"0.11", ociTypes}, {"0.12", dockerTypes}, {"0.15", ociTypes}} {
		t.Run(tc.api+"/"+string(tc.mt.manifest), func(t *testing.T) {
			f := fixture{api: tc.api, mt: tc.mt, repo: fmt.Sprintf("app%d", i)}
			if atLeast(tc.api, 8) {
				f.launch, f.build = launchSBOMs, buildSBOMs
			}
			e := f.export(t, reg)
			b, err := buildpack.Read(context.Background(), e.options(tc.api))
			if err != nil {
				t.Fatal(err)
			}
			if b.Image.Digest.String() != e.tag[:strings.LastIndex(e.tag, ":")]+"@"+e.digest || b.Image.Reference.String() != e.tag {
				t.Errorf("image %s (reference %s), want %s@%s", b.Image.Digest, b.Image.Reference, e.tag, e.digest)
			}
			if b.Image.Descriptor.MediaType != tc.mt.manifest || b.Exported != b.Image || b.Platforms != nil {
				t.Errorf("subject %+v, exported %v, platforms %v", b.Image.Descriptor, b.Exported, b.Platforms)
			}
			if want := []string{e.tag, reg.Ref(f.repo + ":latest")}; !reflect.DeepEqual(b.Tags, want) {
				t.Errorf("tags %v, want %v", b.Tags, want)
			}
			if want := (buildpack.Image{Reference: reg.Ref("run:jammy"), Digest: e.runRef}); b.RunImage != want {
				t.Errorf("run image %+v, want %+v", b.RunImage, want)
			}
			wantBuilder := buildpack.Image{}
			if atLeast(tc.api, 10) {
				wantBuilder = buildpack.Image{Reference: e.buildImageRef, Digest: e.buildImageRef}
			}
			if b.Builder != wantBuilder {
				t.Errorf("builder %+v, want %+v", b.Builder, wantBuilder)
			}
			if b.Lifecycle != lcVersion || b.PlatformAPI != tc.api || b.Platform != "pack" {
				t.Errorf("lifecycle %q, platform API %q, platform %q", b.Lifecycle, b.PlatformAPI, b.Platform)
			}
			wantBPs := []buildpack.Buildpack{
				{ID: bpID, Version: bpVersion, API: "0.10", Homepage: "https://acme.example/node"},
				{ID: bp2ID, Version: bp2Version, API: "0.9"},
			}
			if !reflect.DeepEqual(b.Buildpacks, wantBPs) {
				t.Errorf("buildpacks %+v, want %+v", b.Buildpacks, wantBPs)
			}
			wantSrc := buildpack.Source{Type: "git", URI: "git+https://github.com/acme/app.git", Digest: map[string]string{"gitCommit": "63a73f1b0f2a4f6978c19184b0ea33ad3f092913"}}
			if !reflect.DeepEqual(b.Source, wantSrc) {
				t.Errorf("source %+v, want %+v", b.Source, wantSrc)
			}
			var want []sbomWant
			if atLeast(tc.api, 8) {
				want = append(append(want, wantLaunch...), wantBuild...)
			}
			if got := sbomsOf(b); !reflect.DeepEqual(got, want) {
				t.Errorf("SBOMs\n got %v\nwant %v", got, want)
			}
			for _, s := range b.SBOMs {
				src := launchSBOMs
				if s.Scope == "build" {
					src = buildSBOMs
				}
				if rel := strings.TrimPrefix(s.Name, "sbom/"+s.Scope+"/"); string(src[rel]) != string(s.Content) {
					t.Errorf("%s: content %q, want %q", s.Name, s.Content, src[rel])
				}
				if s.Scope == "launch" && s.Path != buildLayers+"/"+s.Name {
					t.Errorf("launch SBOM path %q, want the SBOM layer's entry", s.Path)
				}
				if s.Scope == "build" && s.Path != filepath.Join(e.dir, s.Name) {
					t.Errorf("build SBOM path %q, want the file in the layers directory", s.Path)
				}
			}
			plan, err := b.Plan(nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(plan.Subjects) != 1 || !plan.Sign || !plan.PerSubject || len(plan.Attestations) != len(want)+1 || plan.AttestSubjects != nil {
				t.Fatalf("plan %+v", plan)
			}
			if s := plan.Subjects[0]; s.Image != b.Image || s.SHA256 != strings.TrimPrefix(e.digest, "sha256:") {
				t.Errorf("subject %+v", s)
			}
		})
	}
}

// TestReadOptions: flags override what the files say; without them the
// files' times bound the build.
func TestReadOptions(t *testing.T) {
	reg := ocitest.Start(t)
	e := fixture{api: "0.13", mt: ociTypes}.export(t, reg)
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, f := range []string{"analyzed.toml", "group.toml"} {
		if err := os.Chtimes(filepath.Join(e.dir, f), start, start.Add(time.Duration(len(f))*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	end := start.Add(time.Minute)
	if err := os.Chtimes(filepath.Join(e.dir, "report.toml"), end, end); err != nil {
		t.Fatal(err)
	}
	b, err := buildpack.Read(context.Background(), e.options("0.13"))
	if err != nil {
		t.Fatal(err)
	}
	// group.toml's mtime is start+10s, analyzed.toml's start+13s.
	if !b.StartedOn.Equal(start.Add(10*time.Second)) || !b.FinishedOn.Equal(end) {
		t.Errorf("times %v .. %v, want %v .. %v", b.StartedOn, b.FinishedOn, start.Add(10*time.Second), end)
	}
	if b.BuilderID != "https://signet.dev/buildpack/v1/platform/pack" {
		t.Errorf("builder ID %q", b.BuilderID)
	}

	builder := push(t, reg.Ref("builder:jammy"), mustImage(t))
	o := e.options("0.13")
	o.BuilderImage = reg.Ref("builder:jammy")
	o.Source = buildpack.Source{URI: "https://example.com/src.tgz", Digest: map[string]string{"sha256": hex64("d")}}
	o.StartedOn, o.FinishedOn = start.Add(-time.Hour), end.Add(time.Hour)
	o.BuilderID = "https://github.com/acme/app/.github/workflows/build.yml@refs/heads/main"
	b, err = buildpack.Read(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if want := (buildpack.Image{Reference: reg.Ref("builder:jammy"), Digest: reg.Ref("builder@" + builder)}); b.Builder != want {
		t.Errorf("builder %+v, want %+v", b.Builder, want)
	}
	if !reflect.DeepEqual(b.Source, o.Source) {
		t.Errorf("source %+v, want the flags' %+v", b.Source, o.Source)
	}
	if !b.StartedOn.Equal(o.StartedOn) || !b.FinishedOn.Equal(o.FinishedOn) || b.BuilderID != o.BuilderID {
		t.Errorf("times %v .. %v, builder ID %q", b.StartedOn, b.FinishedOn, b.BuilderID)
	}
}

func mustImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, tarLayer(t, map[string][]byte{"/cnb/lifecycle/lifecycle": []byte("x")}, ociTypes.layer))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestReadIndex: an index is signed with every platform manifest; the
// build's metadata is read from the manifest for the run image's target.
func TestReadIndex(t *testing.T) {
	reg := ocitest.Start(t)
	runRef := reg.Ref("run@sha256:" + hex64("a"))
	var idx v1.ImageIndex = empty.Index
	digests := map[string]string{}
	for _, arch := range []string{"amd64", "arm64"} {
		p := &v1.Platform{OS: "linux", Architecture: arch}
		img, _ := appImage(t, ociTypes, labels(runRef, reg.Ref("run:jammy"), true), map[string][]byte{bpEscaped + "/sbom.cdx.json": []byte(strings.Replace(string(cdx), "left-pad", "left-pad-"+arch, 1))}, p)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
		d, _ := img.Digest()
		digests[arch] = d.String()
	}
	tag := reg.Ref("multi:1.0")
	pushIndex(t, tag, idx)
	d, _ := idx.Digest()
	dir := layersDir(t, map[string]string{
		"report.toml":   fmt.Sprintf("[image]\ntags = [%q]\ndigest = %q\n", tag, d),
		"analyzed.toml": fmt.Sprintf("[run-image]\nreference = %q\nimage = \"run\"\n[run-image.target]\nos = \"linux\"\narch = \"arm64\"\n", runRef),
		"group.toml":    groupTOML,
	})
	b, err := buildpack.Read(context.Background(), buildpack.Options{LayersDir: dir, PlatformAPI: "0.12", Client: registry()})
	if err != nil {
		t.Fatal(err)
	}
	if !b.Image.IsIndex() || len(b.Platforms) != 2 || b.Exported.Descriptor.Digest.String() != digests["arm64"] {
		t.Fatalf("image %v platforms %v exported %v, want the arm64 manifest %s", b.Image, b.Platforms, b.Exported, digests["arm64"])
	}
	if len(b.SBOMs) != 1 || !strings.Contains(string(b.SBOMs[0].Content), "left-pad-arm64") {
		t.Errorf("SBOMs %+v, want the arm64 image's", b.SBOMs)
	}
	plan, err := b.Plan(nil)
	if err != nil {
		t.Fatal(err)
	}
	var signed, attested []string
	for _, s := range plan.Subjects {
		signed = append(signed, "sha256:"+s.SHA256)
	}
	for _, s := range plan.AttestSubjects {
		attested = append(attested, "sha256:"+s.SHA256)
	}
	if want := []string{d.String(), digests["amd64"], digests["arm64"]}; !reflect.DeepEqual(signed, want) || !plan.Sign {
		t.Errorf("signed %v, want %v", signed, want)
	}
	if want := []string{d.String(), digests["arm64"]}; !reflect.DeepEqual(attested, want) || len(plan.Attestations) != 2 || !plan.PerSubject {
		t.Errorf("attested %v, want %v", attested, want)
	}

	// Without a target, two platform images cannot be told apart.
	if err := os.WriteFile(filepath.Join(dir, "analyzed.toml"), []byte(fmt.Sprintf("[run-image]\nreference = %q\n", runRef)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := buildpack.Read(context.Background(), buildpack.Options{LayersDir: dir, Client: registry()}); err == nil || !strings.Contains(err.Error(), "2 platform images") {
		t.Errorf("err = %v, want the index's platforms named", err)
	}
}

func pushIndex(t *testing.T, ref string, idx v1.ImageIndex) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
}

func TestReadErrors(t *testing.T) {
	reg := ocitest.Start(t)
	ctx := context.Background()
	n := 0
	export := func(t *testing.T, f fixture) exported {
		n++
		f.repo = fmt.Sprintf("err%d", n)
		if f.mt.manifest == "" {
			f.mt = ociTypes
		}
		return f.export(t, reg)
	}

	t.Run("report missing", func(t *testing.T) {
		dir := t.TempDir()
		_, err := buildpack.Read(ctx, buildpack.Options{LayersDir: dir, Client: registry()})
		var e *buildpack.ReportNotFoundError
		if !errors.As(err, &e) || e.Path != filepath.Join(dir, "report.toml") || !strings.Contains(err.Error(), e.Path) {
			t.Errorf("err = %v, want ReportNotFoundError naming %s", err, filepath.Join(dir, "report.toml"))
		}
		other := filepath.Join(dir, "elsewhere.toml")
		_, err = buildpack.Read(ctx, buildpack.Options{LayersDir: dir, ReportPath: other, Client: registry()})
		if !errors.As(err, &e) || e.Path != other {
			t.Errorf("err = %v, want ReportNotFoundError naming %s", err, other)
		}
	})

	t.Run("exported to a daemon", func(t *testing.T) {
		dir := layersDir(t, map[string]string{"report.toml": "[image]\ntags = [\"app:latest\"]\nimage-id = \"" + hex64("e") + "\"\n"})
		_, err := buildpack.Read(ctx, buildpack.Options{LayersDir: dir, Client: registry()})
		var e *buildpack.DaemonExportError
		if !errors.As(err, &e) || e.ImageID != hex64("e") || !strings.Contains(err.Error(), "Docker daemon") {
			t.Errorf("err = %v, want DaemonExportError", err)
		}
	})

	t.Run("tag moved", func(t *testing.T) {
		e := export(t, fixture{api: "0.14"})
		moved := push(t, e.tag, mustImage(t))
		_, err := buildpack.Read(ctx, e.options("0.14"))
		var de *buildpack.DigestMismatchError
		if !errors.As(err, &de) || de.Tag != e.tag || de.Report != e.digest || de.Registry != moved ||
			!strings.Contains(err.Error(), e.digest) || !strings.Contains(err.Error(), moved) {
			t.Errorf("err = %v, want DigestMismatchError naming %s and %s", err, e.digest, moved)
		}
	})

	t.Run("tag gone", func(t *testing.T) {
		e := export(t, fixture{api: "0.14"})
		report := fmt.Sprintf("[image]\ntags = [%q]\ndigest = %q\n", reg.Ref("never:pushed"), e.digest)
		if err := os.WriteFile(filepath.Join(e.dir, "report.toml"), []byte(report), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := buildpack.Read(ctx, e.options("0.14"))
		var de *buildpack.DigestMismatchError
		if !errors.As(err, &de) || de.Registry != "" || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("err = %v, want DigestMismatchError for a missing tag", err)
		}
	})

	for _, tc := range []struct {
		name       string
		launch     map[string][]byte
		build      map[string][]byte
		scope, bp  string
		path, want string
	}{
		{"truncated CycloneDX", map[string][]byte{bpEscaped + "/sbom.cdx.json": cdx[:len(cdx)*2/3]}, nil,
			"launch", bpID, "/layers/sbom/launch/acme_node/sbom.cdx.json", "not valid JSON"},
		{"SPDX named as CycloneDX", map[string][]byte{bpEscaped + "/sbom.cdx.json": spdx}, nil,
			"launch", bpID, "/layers/sbom/launch/acme_node/sbom.cdx.json", "named as cyclonedx but is spdx-json SPDX-2.3"},
		{"not Syft", map[string][]byte{bpEscaped + "/layer/sbom.syft.json": cdx}, nil,
			"launch", bpID, "/layers/sbom/launch/acme_node/layer/sbom.syft.json", "not a Syft JSON document"},
		{"SPDX 3 build SBOM", nil, map[string][]byte{"acme_procfile/sbom.spdx.json": []byte(`{"@context":"https://spdx.org/rdf/3.0.1/spdx-context.jsonld","@graph":[]}`)},
			"build", bp2ID, "sbom/build/acme_procfile/sbom.spdx.json", "SPDX 3"},
		{"XML build SBOM", nil, map[string][]byte{"acme_node/tools/sbom.cdx.json": []byte(`<bom xmlns="http://cyclonedx.org/schema/bom/1.5"/>`)},
			"build", bpID, "sbom/build/acme_node/tools/sbom.cdx.json", "XML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := export(t, fixture{api: "0.15", launch: tc.launch, build: tc.build})
			_, err := buildpack.Read(ctx, e.options("0.15"))
			var se *buildpack.SBOMError
			path := tc.path
			if tc.scope == "build" {
				path = filepath.Join(e.dir, tc.path)
			}
			if !errors.As(err, &se) || se.Scope != tc.scope || se.Buildpack != tc.bp || se.Path != path ||
				!strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.bp) {
				t.Errorf("err = %v, want SBOMError for %s of %s saying %q", err, path, tc.bp, tc.want)
			}
		})
	}

	t.Run("SBOM too large to attach", func(t *testing.T) {
		e := export(t, fixture{api: "0.15", build: map[string][]byte{"acme_node/sbom.cdx.json": cdx}})
		// A sparse file: its size is what is checked, before it is read.
		if err := os.Truncate(filepath.Join(e.dir, "sbom/build/acme_node/sbom.cdx.json"), 60<<20); err != nil {
			t.Fatal(err)
		}
		_, err := buildpack.Read(ctx, e.options("0.15"))
		var se *buildpack.SBOMError
		if !errors.As(err, &se) || se.Buildpack != bpID || !strings.Contains(err.Error(), "an SBOM attached to an image may be at most") {
			t.Errorf("err = %v, want SBOMError for its size", err)
		}
	})

	t.Run("group.toml of another build", func(t *testing.T) {
		e := export(t, fixture{api: "0.13"})
		other := strings.Replace(groupTOML, `version = "5.0.0"`, `version = "6.0.0"`, 1)
		if err := os.WriteFile(filepath.Join(e.dir, "group.toml"), []byte(other), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := buildpack.Read(ctx, e.options("0.13"))
		var me *buildpack.MismatchError
		if !errors.As(err, &me) || !strings.Contains(err.Error(), "acme/procfile@6.0.0") {
			t.Errorf("err = %v, want MismatchError", err)
		}
	})

	t.Run("not a lifecycle export", func(t *testing.T) {
		e := export(t, fixture{api: "0.13"})
		d := push(t, e.tag, mustImage(t))
		report := fmt.Sprintf("[image]\ntags = [%q]\ndigest = %q\n", e.tag, d)
		if err := os.WriteFile(filepath.Join(e.dir, "report.toml"), []byte(report), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := buildpack.Read(ctx, e.options("0.13"))
		var le *buildpack.LabelError
		if !errors.As(err, &le) || le.Label != "io.buildpacks.lifecycle.metadata" || !strings.Contains(err.Error(), d) {
			t.Errorf("err = %v, want LabelError", err)
		}
	})

	t.Run("malformed report", func(t *testing.T) {
		dir := layersDir(t, map[string]string{"report.toml": "[image]\ntags = [\"a:b\"]\ndigest = \"md5:abc\"\n"})
		_, err := buildpack.Read(ctx, buildpack.Options{LayersDir: dir, Client: registry()})
		var fe *buildpack.FileError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "md5:abc") {
			t.Errorf("err = %v, want FileError", err)
		}
	})

	t.Run("Platform API out of range", func(t *testing.T) {
		for _, api := range []string{"0.6", "0.16", "1.0", "x"} {
			_, err := buildpack.Read(ctx, buildpack.Options{LayersDir: t.TempDir(), PlatformAPI: api, Client: registry()})
			if err == nil || !strings.Contains(err.Error(), "0.7 to 0.15") {
				t.Errorf("Platform API %s: err = %v", api, err)
			}
		}
	})
}

// TestReportManifestSizeQuoted: the spec's example quotes manifest-size;
// the lifecycle writes a number. Both read.
func TestReportManifestSizeQuoted(t *testing.T) {
	reg := ocitest.Start(t)
	e := fixture{api: "0.7", mt: dockerTypes}.export(t, reg)
	report := fmt.Sprintf("[image]\ntags = [%q]\ndigest = %q\nmanifest-size = \"1234\"\n\n[build]\n[[build.bom]]\nname = \"node\"\n[build.bom.metadata]\nversion = \"20\"\n[build.bom.buildpack]\nid = %q\nversion = %q\n", e.tag, e.digest, bpID, bpVersion)
	if err := os.WriteFile(filepath.Join(e.dir, "report.toml"), []byte(report), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := buildpack.Read(context.Background(), e.options("0.7")); err != nil {
		t.Fatal(err)
	}
}
