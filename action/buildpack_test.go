package action_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signet-dev/signet/action"
	"github.com/signet-dev/signet/buildpack"
	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/certext"
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/oci/ocitest"
	"github.com/signet-dev/signet/core/pipeline"
	"github.com/signet-dev/signet/core/verify"
	"github.com/signet-dev/signet/internal/cnbtest"
)

// packOutput lays out what `pack build --publish --report-output-dir DIR
// --sbom-output-dir DIR/sbom` leaves on the runner for build b: pack runs
// the lifecycle in a container and copies out report.toml and <layers>/sbom
// only (no analyzed.toml or group.toml).
func packOutput(t *testing.T, b *cnbtest.Build) string {
	t.Helper()
	dir := t.TempDir()
	copyTree(t, b.ReportPath, filepath.Join(dir, "report.toml"))
	copyTree(t, filepath.Join(b.LayersDir, "sbom"), filepath.Join(dir, "sbom"))
	return dir
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
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, raw, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// verifyAttached verifies what is attached to ref in the registry against
// signer, as a consumer would.
func verifyAttached(t *testing.T, s *server, ref string, want pipeline.Want, signer string) *pipeline.VerifyReport {
	t.Helper()
	ctx := context.Background()
	c := oci.New(oci.Options{})
	subj, err := c.Resolve(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	is, err := pipeline.ImageSubject(subj)
	if err != nil {
		t.Fatal(err)
	}
	vr, err := pipeline.Verify(ctx, verify.New(s.Root), pipeline.VerifyPlan{
		Subjects: []pipeline.Subject{is}, Registry: c, Want: want,
		Policy: verify.Policy{Identity: verify.Exact(signer), Issuer: verify.Exact(s.Issuer)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return vr
}

// attachedCount is how many bundles are attached to ref.
func attachedCount(t *testing.T, ref string) int {
	t.Helper()
	c := oci.New(oci.Options{})
	subj, err := c.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.List(context.Background(), subj)
	if err != nil {
		t.Fatal(err)
	}
	return len(l.Items)
}

// verifiedStatements are the predicates of the bundles that verified.
func verifiedStatements(vr *pipeline.VerifyReport) []map[string]any {
	var out []map[string]any
	for _, sr := range vr.Subjects {
		for _, c := range sr.Bundles {
			if c.Err == nil && c.Result.Statement != nil {
				out = append(out, c.Result.Statement.GetPredicate().AsMap())
			}
		}
	}
	return out
}

// buildpackProvenance is what the tests read of the buildpack provenance.
type buildpackProvenance struct {
	BuildDefinition struct {
		BuildType          string
		ExternalParameters struct {
			Tags   []string
			Source struct {
				URI    string
				Digest map[string]string
			}
			Platform    string
			PlatformAPI string
		}
		InternalParameters struct {
			Buildpacks       []string
			LifecycleVersion string
		}
		ResolvedDependencies []struct {
			Name, URI string
			Digest    map[string]string
		}
	}
	RunDetails struct {
		Builder struct {
			ID      string
			Version map[string]string
		}
	}
}

// checkBuildpackProvenance checks the provenance names build b as run by
// this workflow: its identity as builder, its checkout as source.
func checkBuildpackProvenance(t *testing.T, pred map[string]any, b *cnbtest.Build, builderID, sha, platformAPI string) {
	t.Helper()
	js, _ := json.Marshal(pred)
	var p buildpackProvenance
	if err := json.Unmarshal(js, &p); err != nil {
		t.Fatal(err)
	}
	bd, ep := p.BuildDefinition, p.BuildDefinition.ExternalParameters
	builder, err := name.NewDigest(b.BuilderImage, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	deps := map[string]string{}
	for _, d := range bd.ResolvedDependencies {
		deps[d.Name] = d.URI + " " + d.Digest["sha256"] + d.Digest["gitCommit"]
	}
	switch {
	case bd.BuildType != buildpack.BuildType:
		t.Errorf("buildType %q", bd.BuildType)
	case p.RunDetails.Builder.ID != builderID:
		t.Errorf("builder.id %q, want %q", p.RunDetails.Builder.ID, builderID)
	case p.RunDetails.Builder.Version["lifecycle"] != b.LifecycleVersion:
		t.Errorf("builder.version %v", p.RunDetails.Builder.Version)
	case ep.Source.URI != "git+https://github.com/"+repo || ep.Source.Digest["gitCommit"] != sha:
		t.Errorf("source %+v", ep.Source)
	case ep.Platform != action.Platform || ep.PlatformAPI != platformAPI:
		t.Errorf("platform %q, platformApi %q", ep.Platform, ep.PlatformAPI)
	case !slices.Equal(ep.Tags, b.Tags):
		t.Errorf("tags %v, want %v", ep.Tags, b.Tags)
	case !slices.Equal(bd.InternalParameters.Buildpacks, []string{b.Buildpack}):
		t.Errorf("buildpacks %v", bd.InternalParameters.Buildpacks)
	case deps["source"] != "git+https://github.com/"+repo+" "+sha:
		t.Errorf("source dependency %q", deps["source"])
	case deps["builder"] != "oci://"+builder.Context().Name()+" "+strings.TrimPrefix(builder.DigestStr(), "sha256:"):
		t.Errorf("builder dependency %q, want %s", deps["builder"], b.BuilderImage)
	case deps["buildpack/"+cnbtest.BuildpackID] != "urn:cnb:builder:"+b.Buildpack+" ":
		t.Errorf("buildpack dependency %q", deps["buildpack/"+cnbtest.BuildpackID])
	}
}

// TestBuildpackMode runs mode buildpack in a simulated runner on the output
// of a real lifecycle build (cnbtest) laid out as pack leaves it, against
// the real server and registry.
func TestBuildpackMode(t *testing.T) {
	s := startServer(t)
	reg := ocitest.Start(t)
	b := cnbtest.Run(t, cnbtest.Options{Registry: reg.Host, Repository: "acme/widget", Tag: "v1",
		SBOMs: []cnbtest.SBOM{{Scope: cnbtest.ScopeLaunch, Format: cnbtest.CycloneDX}, {Scope: cnbtest.ScopeBuild, Format: cnbtest.SPDX}}})
	t.Logf("lifecycle build in %v", b.Wall)
	out := packOutput(t, b)
	buildpackRunner := func(t *testing.T, kv ...string) *runnerEnv {
		return newRunner(t, s).with(append([]string{"mode", "buildpack", "layers", out, "builder", b.BuilderImage}, kv...)...)
	}

	t.Run("pack output directories", func(t *testing.T) {
		bundleDir := filepath.Join(t.TempDir(), "bundles")
		r := buildpackRunner(t, "platform-api", b.PlatformAPI, "bundle-dir", bundleDir)
		if err := r.run(); err != nil {
			t.Fatalf("%v\n%s", err, r.Stdout.String())
		}
		o := r.outputs()
		if o["image"] != b.Ref() || o["digest"] != b.Digest {
			t.Errorf("image output %q, digest %q; want %s", o["image"], o["digest"], b.Ref())
		}
		es := r.bundles()
		// Every bundle is a file in bundle-dir too, named in bundle-path.
		paths := strings.Split(o["bundle-path"], "\n")
		if len(paths) != len(es) {
			t.Fatalf("bundle-path %q for %d bundles", o["bundle-path"], len(es))
		}
		for i, p := range paths {
			raw, err := os.ReadFile(p)
			if err != nil || filepath.Dir(p) != bundleDir || p != es[i].BundlePath {
				t.Fatalf("bundle-path %s (bundle %s): %v, want a file in %s", p, es[i].BundlePath, err, bundleDir)
			}
			if bd, err := bundle.Parse(raw); err != nil {
				t.Errorf("%s: %v", p, err)
			} else if c, _ := bd.Certificate(); c == nil {
				t.Errorf("%s holds no certificate", p)
			} else if id, _ := certext.Identity(c); id != identity {
				t.Errorf("%s signed by %s, want %s", p, id, identity)
			}
		}
		var subjects []struct {
			Subjects []struct {
				Name   string
				Digest map[string]string
			}
		}
		if err := json.Unmarshal([]byte(o["bundles"]), &subjects); err != nil || len(subjects) != len(es) {
			t.Fatalf("bundles output: %v", err)
		}
		var kinds []string
		for i, e := range es {
			kinds = append(kinds, e.Kind+" "+e.PredicateType)
			if e.Referrer == "" || e.Identity != identity || e.Issuer != s.Issuer {
				t.Errorf("bundle %+v", e)
			}
			// The image by digest, in the repository the tag is in.
			if ss := subjects[i].Subjects; len(ss) != 1 || ss[0].Name != reg.Host+"/acme/widget" || "sha256:"+ss[0].Digest["sha256"] != b.Digest {
				t.Errorf("%s subjects %+v, want %s", e.Kind, ss, b.Ref())
			}
			if (e.Kind == action.KindSignature) != (e.AttestationID == "") {
				t.Errorf("%s: attestation id %q (attestations go through the store, the signature does not)", e.Kind, e.AttestationID)
			}
		}
		slices.Sort(kinds)
		want := []string{"provenance " + intoto.PredicateSLSAProvenanceV1, "sbom " + intoto.PredicateCycloneDX, "sbom " + intoto.PredicateSPDX, "signature " + oci.CosignSignPredicateType}
		if !slices.Equal(kinds, want) {
			t.Fatalf("bundles %q, want %q", kinds, want)
		}
		if n := len(strings.Split(o["log-index"], "\n")); n != 4 || len(strings.Split(o["attestation-id"], "\n")) != 3 {
			t.Errorf("log-index %q, attestation-id %q", o["log-index"], o["attestation-id"])
		}

		// What a consumer sees in the registry: every kind verifies for this
		// workflow's identity, none for another's.
		for _, w := range []pipeline.Want{{Kind: intoto.KindSignature}, {PredicateType: intoto.PredicateCycloneDX}, {PredicateType: intoto.PredicateSPDX}, {PredicateType: intoto.PredicateSLSAProvenanceV1}} {
			if vr := verifyAttached(t, s, b.Ref(), w, identity); !vr.Verified {
				_, err := vr.FirstFailure()
				t.Errorf("%+v does not verify: %v", w, err)
			}
			vr := verifyAttached(t, s, b.Ref(), w, "https://github.com/evil/widget/"+workflow+"@"+ref)
			if _, err := vr.FirstFailure(); vr.Verified || verify.CheckOf(err) != verify.CheckIdentity {
				t.Errorf("%+v for another identity: verified %v, %v", w, vr.Verified, err)
			}
		}
		provs := verifiedStatements(verifyAttached(t, s, b.Ref(), pipeline.Want{PredicateType: intoto.PredicateSLSAProvenanceV1}, identity))
		if len(provs) != 1 {
			t.Fatalf("%d provenance statements", len(provs))
		}
		checkBuildpackProvenance(t, provs[0], b, identity, commit, b.PlatformAPI)

		sum := r.summary()
		for _, w := range []string{"Cloud Native Buildpacks build of `" + b.Ref() + "`", b.Buildpack, "sbom/build/", "| " + es[0].Referrer + " |", "signet verify " + b.Ref() + " --certificate-identity " + identity,
			"signet verify-attestation " + b.Ref() + " --type cyclonedx", "--type spdxjson", "--type slsaprovenance1"} {
			if !strings.Contains(sum, w) {
				t.Errorf("summary lacks %q:\n%s", w, sum)
			}
		}
		if len(r.errorAnnotations()) != 0 {
			t.Errorf("annotations on success: %q", r.errorAnnotations())
		}

		// The verify step of examples/buildpack/github-pack.yml, on the
		// image output.
		vr := newRunner(t, s).with("mode", "verify", "image", o["image"], "trusted-root", s.RootPath, "predicate-type", "cyclonedx",
			"certificate-identity", identity, "certificate-oidc-issuer", s.Issuer)
		if err := vr.run(); err != nil {
			t.Fatalf("verify mode: %v\n%s", err, vr.Stdout.String())
		}
		if vo := vr.outputs(); vo["verified"] != "true" || vo["digest"] != b.Digest {
			t.Errorf("verify outputs %v", vo)
		}
	})

	t.Run("without provenance or builder, from the lifecycle's layers directory", func(t *testing.T) {
		r := newRunner(t, s).with("mode", "buildpack", "layers", b.LayersDir, "provenance", "false")
		if err := r.run(); err != nil {
			t.Fatalf("%v\n%s", err, r.Stdout.String())
		}
		for _, e := range r.bundles() {
			if e.Kind == action.KindProvenance {
				t.Errorf("provenance made with provenance: false: %+v", e)
			}
		}
		if n := len(r.bundles()); n != 3 {
			t.Errorf("%d bundles, want the signature and two SBOMs", n)
		}
		// Without bundle-dir the files go to $RUNNER_TEMP/signet-bundles.
		for _, p := range strings.Split(r.outputs()["bundle-path"], "\n") {
			if _, err := os.Stat(p); err != nil || filepath.Dir(p) != filepath.Join(r.vars["RUNNER_TEMP"], "signet-bundles") {
				t.Errorf("bundle-path %s: %v", p, err)
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		other := reg.Ref("acme/widget:moved")
		ocitest.PushImage(t, other)
		plain := reg.Ref("acme/plain:v1")
		plainDigest := ocitest.PushImage(t, plain)
		brokenSBOM := packOutput(t, b)
		sboms, _ := filepath.Glob(filepath.Join(brokenSBOM, "sbom", "build", "*", "sbom.spdx.json"))
		if len(sboms) != 1 {
			t.Fatalf("build SBOMs in the pack output: %v", sboms)
		}
		if err := os.WriteFile(sboms[0], []byte(`{"spdxVersion":"SPDX-2.3","SPDXID":`), 0o644); err != nil {
			t.Fatal(err)
		}
		otherBuild := packOutput(t, b)
		writeFile(t, filepath.Join(otherBuild, "group.toml"), "[[group]]\nid = \"acme/other\"\nversion = \"9.9.9\"\napi = \"0.12\"\n")
		reportOnly := func(report string) string {
			return writeFile(t, filepath.Join(t.TempDir(), "report.toml"), report)
		}
		cases := []struct {
			name  string
			kv    []string
			want  string // in the ::error annotation
			about string // the image that must have nothing new attached
		}{
			{"no layers", []string{"layers", ""}, "input layers: mode buildpack needs the build's output", ""},
			{"no report.toml", []string{"layers", t.TempDir()}, "input layers: no report.toml at", ""},
			{"exported to a daemon", []string{"layers", filepath.Dir(reportOnly("[image]\ntags = [\"" + b.Image + "\"]\nimage-id = \"sha256:" + strings.Repeat("ab", 32) + "\"\n"))}, "add --publish to the pack build step", ""},
			{"tag moved", []string{"layers", filepath.Dir(reportOnly("[image]\ntags = [\"" + other + "\"]\ndigest = \"" + b.Digest + "\"\n"))}, "give pack build a tag of its own", b.Ref()},
			{"an image no lifecycle exported", []string{"layers", filepath.Dir(reportOnly("[image]\ntags = [\"" + plain + "\"]\ndigest = \"" + plainDigest + "\"\n"))}, "input layers: label io.buildpacks.lifecycle.metadata of " + reg.Ref("acme/plain@"+plainDigest) + ": missing", reg.Ref("acme/plain@" + plainDigest)},
			{"malformed build SBOM", []string{"layers", brokenSBOM}, "build SBOM " + sboms[0] + " (buildpack " + cnbtest.BuildpackID + "): ", b.Ref()},
			{"another build's group.toml", []string{"layers", otherBuild}, "input layers: the layers directory does not belong to the exported image", b.Ref()},
			{"builder not in the registry", []string{"builder", reg.Ref("acme/no-such-builder:v1")}, "input builder: builder image " + reg.Host + "/acme/no-such-builder:v1", b.Ref()},
			{"platform API out of range", []string{"platform-api", "0.6"}, "input platform-api: \"0.6\"", ""},
			{"platform API not a version", []string{"platform-api", "0.12.1"}, "input platform-api", ""},
			{"an image input", []string{"image", b.Ref()}, "input image: mode buildpack does not take image", ""},
			{"an SBOM input", []string{"sbom-path", "sbom.json"}, "input sbom-path: mode buildpack does not take sbom-path", ""},
			{"bundle-dir not a directory", []string{"bundle-dir", writeFile(t, filepath.Join(t.TempDir(), "file"), "x")}, "input bundle-dir: ", b.Ref()},
			{"no server", []string{"server", ""}, "input server: no signet server", ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				before := 0
				if c.about != "" {
					before = attachedCount(t, c.about)
				}
				r := buildpackRunner(t, c.kv...)
				if err := r.run(); err == nil {
					t.Fatalf("succeeded\n%s", r.Stdout.String())
				}
				anns := strings.Join(r.errorAnnotations(), "\n")
				if !strings.Contains(anns, c.want) {
					t.Fatalf("annotation %q does not say %q", anns, c.want)
				}
				t.Log(anns)
				if !strings.Contains(r.summary(), "signet: failed") {
					t.Errorf("summary:\n%s", r.summary())
				}
				if o := r.outputs(); len(o) != 0 {
					t.Errorf("outputs on failure: %v", o)
				}
				if c.about != "" {
					if after := attachedCount(t, c.about); after != before {
						t.Errorf("%d bundles attached to %s despite the error", after-before, c.about)
					}
				}
			})
		}
	})

	t.Run("buildpack inputs in another mode", func(t *testing.T) {
		r := newRunner(t, s).with("subject-path", writeFile(t, filepath.Join(t.TempDir(), "a"), "a"), "layers", out)
		if err := r.run(); err == nil || !strings.Contains(strings.Join(r.errorAnnotations(), "\n"), "input layers: layers is an input of mode buildpack") {
			t.Fatalf("err %v, annotations %q", err, r.errorAnnotations())
		}
	})
}
