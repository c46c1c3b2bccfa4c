package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/signet-dev/signet/buildpack"
	"github.com/signet-dev/signet/core/oci/ocitest"
	"github.com/signet-dev/signet/internal/cnbtest"
)

// buildpackArgs are signet buildpack's flags for a cnbtest build.
func buildpackArgs(b *cnbtest.Build, extra ...string) []string {
	return append([]string{"buildpack", "--layers", b.LayersDir, "--report", b.ReportPath, "--platform-api", b.PlatformAPI,
		"--builder", b.BuilderImage, "--platform", "cnbtest"}, extra...)
}

// cosignStatements verifies IMAGE's attestations of typ with cosign v3 and
// returns the in-toto statements it printed.
func (e *cliEnv) cosignStatements(t *testing.T, image, typ string) []map[string]any {
	t.Helper()
	out := mustCosign(t, append(append([]string{"verify-attestation", "--type", typ}, e.cosignVerifyFlags()...), image)...)
	var sts []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var env struct{ Payload string }
		if json.Unmarshal(sc.Bytes(), &env) != nil || env.Payload == "" {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(env.Payload)
		if err != nil {
			t.Fatal(err)
		}
		var st map[string]any
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatal(err)
		}
		sts = append(sts, st)
	}
	return sts
}

// A real lifecycle build (launch CycloneDX and SPDX, a build Syft SBOM),
// then signet buildpack on its layers: the exported digest is signed, each
// SBOM and the provenance attested, and signet and cosign v3 verify them all
// under the workflow's identity; another identity or image fails.
func TestBuildpackRealLifecycle(t *testing.T) {
	cosignBinary(t)
	e := newImageEnv(t)
	reg := ocitest.Start(t)
	b := cnbtest.Run(t, cnbtest.Options{
		Registry: reg.Host, Repository: "acme/app", Tag: "v1",
		SBOMs: []cnbtest.SBOM{
			{Scope: cnbtest.ScopeLaunch, Format: cnbtest.CycloneDX},
			{Scope: cnbtest.ScopeLaunch, Format: cnbtest.SPDX},
			{Scope: cnbtest.ScopeBuild, Format: cnbtest.Syft},
		},
		Source: &cnbtest.Source{Repository: "https://github.com/acme/app", Commit: "4f1e0c6a6e6f8a1d2b3c4d5e6f708192a3b4c5d6"},
	})
	image := b.Ref()
	summary := filepath.Join(t.TempDir(), "signet.json")

	var res buildpackResult
	r := e.sign(t, nil, buildpackArgs(b, "-o", "json", "--summary", summary)...).want(t, 0)
	r.decode(t, &res)
	if res.Image != image || !slices.Contains(res.Tags, reg.Ref("acme/app:v1")) || res.Lifecycle != b.LifecycleVersion || res.PlatformAPI != b.PlatformAPI ||
		res.Builder != b.BuilderImage || res.RunImage != b.RunImage || !slices.Equal(res.Buildpacks, []string{b.Buildpack}) {
		t.Errorf("result %+v\nwant image %s, lifecycle %s, builder %s, run image %s, buildpack %s", res, image, b.LifecycleVersion, b.BuilderImage, b.RunImage, b.Buildpack)
	}
	var kinds []string
	for _, s := range res.Signed {
		if s.Digest != image || s.Identity != e.identity || len(s.LogEntries) != 1 {
			t.Errorf("signed %+v, want %s by %s, logged", s, image, e.identity)
		}
		kinds = append(kinds, s.Kind+" "+s.PredicateType)
	}
	want := []string{"signature https://sigstore.dev/cosign/sign/v1", "attestation https://cyclonedx.org/bom", "attestation https://spdx.dev/Document", "attestation https://syft.dev/bom", "attestation https://slsa.dev/provenance/v1"}
	slices.Sort(kinds)
	slices.Sort(want)
	if !slices.Equal(kinds, want) {
		t.Errorf("made %v, want %v", kinds, want)
	}
	scopes := map[string]string{}
	for _, s := range res.SBOMs {
		scopes[s.PredicateType] = s.Scope
	}
	if scopes["https://cyclonedx.org/bom"] != "launch" || scopes["https://spdx.dev/Document"] != "launch" || scopes["https://syft.dev/bom"] != "build" {
		t.Errorf("SBOMs %+v", res.SBOMs)
	}
	// Each SBOM's referrer says its scope, unsigned, and signet tree shows it.
	var tree treeResult
	runSignet(t, nil, "tree", image, "-o", "json").want(t, 0).decode(t, &tree)
	listed := map[string]string{}
	for _, s := range tree.Subjects {
		for _, it := range s.Items {
			if sc := it.Annotations[buildpack.AnnotationSBOMScope]; sc != "" {
				listed[it.PredicateType] = sc + " " + it.Annotations[buildpack.AnnotationSBOMBuildpack]
			}
		}
	}
	bpID, _, _ := strings.Cut(b.Buildpack, "@")
	if listed["https://cyclonedx.org/bom"] != "launch "+bpID || listed["https://spdx.dev/Document"] != "launch "+bpID || listed["https://syft.dev/bom"] != "build "+bpID {
		t.Errorf("SBOM referrers' annotations in signet tree: %v", listed)
	}
	if text := runSignet(t, nil, "tree", image).want(t, 0).stdout; !strings.Contains(text, buildpack.AnnotationSBOMScope+"=build") {
		t.Errorf("signet tree does not show the build SBOM's scope:\n%s", text)
	}
	// The summary is the result, for later steps.
	raw, err := os.ReadFile(summary)
	if err != nil || string(raw) != r.stdout {
		t.Errorf("summary %s (%v) is not stdout's result:\n%s", raw, err, r.stdout)
	}

	// signet verifies each, by tag and by digest.
	for _, ref := range []string{image, reg.Ref("acme/app:v1")} {
		runSignet(t, nil, append([]string{"verify", ref}, e.policy()...)...).want(t, 0)
		for _, typ := range []string{"cyclonedx", "spdxjson", "https://syft.dev/bom", "slsaprovenance1"} {
			runSignet(t, nil, append([]string{"verify-attestation", ref, "--type", typ}, e.policy()...)...).want(t, 0)
		}
	}
	// Another identity, or an image this build did not make, fails.
	other := []string{"--trusted-root", e.root, "--certificate-identity", "https://github.com/acme/other/.github/workflows/release.yml@refs/heads/main", "--certificate-oidc-issuer", e.issuer}
	runSignet(t, nil, append([]string{"verify", image}, other...)...).want(t, 1)
	runSignet(t, nil, append([]string{"verify-attestation", image, "--type", "slsaprovenance1"}, other...)...).want(t, 1)
	unsigned := reg.Ref("acme/app@" + pushImage(t, reg.Ref("acme/app:unsigned")))
	runSignet(t, nil, append([]string{"verify", unsigned}, e.policy()...)...).want(t, 1)
	runSignet(t, nil, append([]string{"verify-attestation", unsigned, "--type", "cyclonedx"}, e.policy()...)...).want(t, 1)

	// cosign v3 verifies the signature and each attestation with its own types.
	mustCosign(t, append(append([]string{"verify"}, e.cosignVerifyFlags()...), image)...)
	if _, _, err := cosignRun(t, "verify", "--trusted-root", e.root, "--certificate-identity", "https://github.com/acme/other/.github/workflows/release.yml@refs/heads/main", "--certificate-oidc-issuer", e.issuer, image); err == nil {
		t.Error("cosign verified the signature under another identity")
	}
	if _, _, err := cosignRun(t, append(append([]string{"verify-attestation", "--type", "cyclonedx"}, e.cosignVerifyFlags()...), unsigned)...); err == nil {
		t.Error("cosign verified an SBOM attestation on an image the build did not make")
	}
	for typ, bom := range map[string]string{"cyclonedx": "CycloneDX", "spdxjson": "SPDX-2.3"} {
		sts := e.cosignStatements(t, image, typ)
		if len(sts) != 1 || !strings.Contains(mustJSONString(t, sts[0]["predicate"]), bom) {
			t.Errorf("cosign --type %s: %d statements, want the one %s SBOM", typ, len(sts), bom)
		}
	}
	sts := e.cosignStatements(t, image, "slsaprovenance1")
	if len(sts) != 1 {
		t.Fatalf("cosign --type slsaprovenance1: %d statements", len(sts))
	}
	prov := mustJSONString(t, sts[0]["predicate"])
	for _, want := range []string{
		`"buildType":"` + buildpack.BuildType + `"`,
		strings.TrimPrefix(b.BuilderImage[strings.Index(b.BuilderImage, "@"):], "@sha256:"),
		strings.TrimPrefix(b.RunImage[strings.Index(b.RunImage, "@"):], "@sha256:"),
		b.LifecycleVersion,
		b.Buildpack,
		"4f1e0c6a6e6f8a1d2b3c4d5e6f708192a3b4c5d6",
		"sbom/launch/", "sbom/build/",
	} {
		if !strings.Contains(prov, want) {
			t.Errorf("provenance lacks %q:\n%s", want, prov)
		}
	}
}

func mustJSONString(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// A rebuild exports the same digest; signing it again adds a second
// signature that verifies as the first. A Docker v2 schema 2 export (from a
// Docker run image) is signed and verified the same way, by cosign too.
func TestBuildpackRebuildAndDockerManifest(t *testing.T) {
	cosignBinary(t)
	e := newImageEnv(t)
	reg := ocitest.Start(t)
	first := cnbtest.Run(t, cnbtest.Options{Registry: reg.Host, Repository: "acme/app", Tag: "v1"})
	e.sign(t, nil, buildpackArgs(first)...).want(t, 0)
	again := cnbtest.Run(t, cnbtest.Options{Registry: reg.Host, Repository: "acme/app", Tag: "v1", LayersDir: first.LayersDir})
	if again.Digest != first.Digest {
		t.Fatalf("rebuild exported %s, first build %s", again.Digest, first.Digest)
	}
	var res buildpackResult
	e.sign(t, nil, buildpackArgs(again, "-o", "json")...).want(t, 0).decode(t, &res)
	var v imageVerifyResult
	runSignet(t, nil, append([]string{"verify", again.Ref(), "-o", "json"}, e.policy()...)...).want(t, 0).decode(t, &v)
	if n := len(v.Subjects[0].Attachments); n != 2 {
		t.Errorf("%d signatures verified after the rebuild, want 2", n)
	}

	docker := cnbtest.Run(t, cnbtest.Options{Registry: reg.Host, Repository: "acme/docker", Tag: "v1", DockerMediaTypes: true})
	if docker.MediaType != "application/vnd.docker.distribution.manifest.v2+json" {
		t.Fatalf("export media type %s", docker.MediaType)
	}
	e.sign(t, nil, buildpackArgs(docker)...).want(t, 0)
	runSignet(t, nil, append([]string{"verify-attestation", docker.Ref(), "--type", "cyclonedx"}, e.policy()...)...).want(t, 0)
	mustCosign(t, append(append([]string{"verify"}, e.cosignVerifyFlags()...), docker.Ref())...)
	mustCosign(t, append(append([]string{"verify-attestation", "--type", "cyclonedx"}, e.cosignVerifyFlags()...), docker.Ref())...)
}

// Each refusal says what is wrong and what to do, exits 1 (2 for bad
// flags), and signs, logs and attaches nothing.
func TestBuildpackRefusals(t *testing.T) {
	e := newImageEnv(t)
	reg := ocitest.Start(t)
	good := cnbtest.Run(t, cnbtest.Options{Registry: reg.Host, Repository: "acme/app", Tag: "v1"})

	daemon := filepath.Join(t.TempDir(), "report.toml")
	report, err := os.ReadFile(good.ReportPath)
	if err != nil {
		t.Fatal(err)
	}
	noDigest := regexp.MustCompile(`(?m)^\s*digest\s*=.*$`).ReplaceAllString(string(report), `image-id = "sha256:`+strings.Repeat("ab", 32)+`"`)
	if err := os.WriteFile(daemon, []byte(noDigest), 0o644); err != nil {
		t.Fatal(err)
	}
	moved := cnbtest.Run(t, cnbtest.Options{Registry: reg.Host, Repository: "acme/moved", Tag: "v1"})
	pushImage(t, reg.Ref("acme/moved:v1"))
	broken := cnbtest.Run(t, cnbtest.Options{Registry: reg.Host, Repository: "acme/broken", Tag: "v1",
		SBOMs: []cnbtest.SBOM{{Scope: cnbtest.ScopeLaunch, Format: cnbtest.CycloneDX}, {Scope: cnbtest.ScopeBuild, Format: cnbtest.SPDX, Broken: true}}})
	summary := filepath.Join(t.TempDir(), "signet.json")

	before := e.logSize(t)
	cases := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no report.toml", buildpackArgs(good, "--report", filepath.Join(t.TempDir(), "report.toml")), 1, []string{"no report.toml at", "--layers"}},
		{"wrong layers", []string{"buildpack", "--layers", t.TempDir()}, 1, []string{"no report.toml at", "--report"}},
		{"exported to a daemon", buildpackArgs(good, "--report", daemon), 1, []string{"exported to a Docker daemon", "pack build --publish"}},
		{"tag moved", buildpackArgs(moved), 1, []string{"the tag moved after the export", moved.Digest}},
		{"malformed SBOM", buildpackArgs(broken, "--summary", summary), 1, []string{"build SBOM", "nothing was signed"}},
		{"bad --source-digest", buildpackArgs(good, "--source-digest", "4f1e"), 2, []string{"--source-digest", "ALG:VALUE"}},
		{"bad --started-on", buildpackArgs(good, "--started-on", "yesterday"), 2, []string{"--started-on", "RFC 3339"}},
		{"unwritable --summary", buildpackArgs(good, "--summary", filepath.Join(t.TempDir(), "missing", "signet.json")), 2, []string{"--summary"}},
		{"Platform API out of range", buildpackArgs(good, "--platform-api", "0.6"), 1, []string{"Platform API", "0.7", "0.15"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.sign(t, nil, c.args...).want(t, c.code)
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
		})
	}
	if after := e.logSize(t); after != before {
		t.Errorf("the log grew from %d to %d entries over refused runs", before, after)
	}
	if _, err := os.Stat(summary); !os.IsNotExist(err) {
		t.Errorf("a refused run wrote its summary: %v", err)
	}
	for _, ref := range []string{good.Ref(), moved.Ref(), broken.Ref()} {
		var v imageVerifyResult
		runSignet(t, nil, append([]string{"verify", ref, "-o", "json"}, e.policy()...)...).want(t, 1).decode(t, &v)
		if len(v.Subjects) == 1 && len(v.Subjects[0].Attachments) != 0 {
			t.Errorf("%s: %d bundles attached by refused runs", ref, len(v.Subjects[0].Attachments))
		}
	}
}

// pack build --publish runs the lifecycle in a container and leaves no
// layers directory; --report-output-dir and --sbom-output-dir copy out
// report.toml and the SBOMs. signet buildpack --layers on that directory
// (no analyzed.toml, no group.toml) signs and attests as from the layers.
func TestBuildpackPackOutputDirs(t *testing.T) {
	e := newImageEnv(t)
	reg := ocitest.Start(t)
	b := cnbtest.Run(t, cnbtest.Options{Registry: reg.Host, Repository: "acme/app", Tag: "v1",
		SBOMs: []cnbtest.SBOM{{Scope: cnbtest.ScopeLaunch, Format: cnbtest.CycloneDX}, {Scope: cnbtest.ScopeBuild, Format: cnbtest.SPDX}}})
	out := t.TempDir()
	copyTree(t, b.ReportPath, filepath.Join(out, "report.toml"))
	copyTree(t, filepath.Join(b.LayersDir, "sbom"), filepath.Join(out, "sbom"))
	var res buildpackResult
	e.sign(t, nil, "buildpack", "--layers", out, "--platform", "pack", "-o", "json").want(t, 0).decode(t, &res)
	if res.Image != b.Ref() || len(res.SBOMs) != 2 || len(res.Signed) != 4 || !slices.Equal(res.Buildpacks, []string{b.Buildpack}) {
		t.Errorf("result %+v; want the signature, both SBOMs and the provenance of %s", res, b.Ref())
	}
	runSignet(t, nil, append([]string{"verify-attestation", b.Ref(), "--type", "spdxjson"}, e.policy()...)...).want(t, 0)
}

// copyTree copies a file or a directory tree.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, raw, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Where no report.toml is left (kpack's build pod is gone when its Build
// succeeds), --image names the exported image: its launch SBOMs and the
// provenance come from the image itself.
func TestBuildpackImageOnly(t *testing.T) {
	e := newImageEnv(t)
	reg := ocitest.Start(t)
	b := cnbtest.Run(t, cnbtest.Options{Registry: reg.Host, Repository: "acme/app", Tag: "v1",
		SBOMs: []cnbtest.SBOM{{Scope: cnbtest.ScopeLaunch, Format: cnbtest.CycloneDX}, {Scope: cnbtest.ScopeBuild, Format: cnbtest.SPDX}}})
	var res buildpackResult
	e.sign(t, nil, "buildpack", "--image", b.Ref(), "--layers", "", "--platform", "kpack", "-o", "json").want(t, 0).decode(t, &res)
	if res.Image != b.Ref() || len(res.SBOMs) != 1 || res.SBOMs[0].Scope != "launch" || len(res.Signed) != 3 {
		t.Errorf("result %+v; want the signature, the launch SBOM and the provenance of %s", res, b.Ref())
	}
	runSignet(t, nil, append([]string{"verify-attestation", b.Ref(), "--type", "slsaprovenance1"}, e.policy()...)...).want(t, 0)
	r := e.sign(t, nil, "buildpack", "--image", b.Ref(), "--report", b.ReportPath).want(t, 2)
	if !strings.Contains(r.stderr, "--image and --report exclude each other") {
		t.Errorf("stderr: %s", r.stderr)
	}
}
