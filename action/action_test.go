package action_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/signet-dev/signet/action"
	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/oci/ocitest"
	"github.com/signet-dev/signet/core/verify"
)

const spdxDoc = `{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"widget","documentNamespace":"https://example.com/widget","creationInfo":{"created":"2026-01-01T00:00:00Z","creators":["Tool: test"]},"packages":[{"name":"widget","SPDXID":"SPDXRef-Package","downloadLocation":"NOASSERTION"}]}`

func TestAction(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	v := verify.New(s.Root)
	policy := verify.Policy{Identity: verify.Exact(identity), Issuer: verify.Exact(s.Issuer)}
	otherPolicy := verify.Policy{Identity: verify.Exact("https://github.com/evil/widget/" + workflow + "@" + ref), Issuer: verify.Exact(s.Issuer)}

	// Shared by the verify subtests: what "sign files" produced.
	dist := t.TempDir()
	app := writeFile(t, filepath.Join(dist, "bin", "app-linux-amd64"), "app binary amd64\n")
	app2 := writeFile(t, filepath.Join(dist, "bin", "app-linux-arm64"), "app binary arm64\n")
	writeFile(t, filepath.Join(dist, "bin", "notes.txt"), "not signed\n")
	var signed []action.Entry

	t.Run("sign files with provenance", func(t *testing.T) {
		// RUNNER_TEMP outlives this subtest: the verify subtests use the bundles.
		r := newRunner(t, s).with("subject-path", filepath.Join(dist, "**", "app-*")+"\n!"+filepath.Join(dist, "bin", "*.txt")).set("RUNNER_TEMP", filepath.Join(dist, "tmp"))
		if err := r.run(); err != nil {
			t.Fatalf("%v\n%s", err, r.Stdout.String())
		}
		out := r.outputs()
		paths := strings.Split(out["bundle-path"], "\n")
		want := []string{app + ".sigstore.json", app2 + ".sigstore.json", filepath.Join(r.vars["RUNNER_TEMP"], "signet-bundles")}
		if len(paths) != 3 || paths[0] != want[0] || paths[1] != want[1] || !strings.HasPrefix(paths[2], want[2]) || !strings.HasSuffix(paths[2], ".slsaprovenance1.sigstore.json") {
			t.Fatalf("bundle-path output = %q", paths)
		}
		if idx := strings.Split(out["log-index"], "\n"); len(idx) != 3 {
			t.Fatalf("log-index output = %q", out["log-index"])
		}
		signed = r.bundles()
		if len(signed) != 3 || signed[0].Identity != identity || signed[0].Issuer != s.Issuer {
			t.Fatalf("bundles output = %+v", signed)
		}
		// The provenance attestation went through the attestation store.
		if out["attestation-id"] == "" || !strings.HasPrefix(out["attestation-url"], s.URL+"/api/v2/attestations/") {
			t.Fatalf("attestation outputs: %q %q", out["attestation-id"], out["attestation-url"])
		}
		resp, err := http.Get(out["attestation-url"])
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET attestation-url: %v %v", err, resp)
		}
		resp.Body.Close()

		for i, file := range []string{app, app2} {
			b, err := bundle.ReadFile(paths[i])
			if err != nil {
				t.Fatal(err)
			}
			content, _ := os.ReadFile(file)
			if _, err := v.VerifyArtifact(ctx, b, bytes.NewReader(content), policy); err != nil {
				t.Fatalf("signature of %s does not verify: %v", file, err)
			}
			if _, err := v.VerifyArtifact(ctx, b, bytes.NewReader(content), otherPolicy); verify.CheckOf(err) != verify.CheckIdentity {
				t.Fatalf("verified with another identity: %v", err)
			}
		}
		// The provenance covers both files and describes this run.
		b, err := bundle.ReadFile(paths[2])
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range []string{app, app2} {
			content, _ := os.ReadFile(file)
			sum := sha256.Sum256(content)
			res, err := v.VerifyAttestation(ctx, b, verify.Digest{Algorithm: crypto.SHA256, Value: sum[:]}, policy, intoto.PredicateSLSAProvenanceV1)
			if err != nil {
				t.Fatalf("provenance for %s: %v", file, err)
			}
			checkProvenance(t, res.Statement.GetPredicate().AsMap())
		}
		// An independent verifier (sigstore-go) accepts the provenance bundle.
		sgVerify(t, s, paths[2], app)

		sum := r.summary()
		for _, wantText := range []string{"| app-linux-amd64 |", "| app-linux-arm64 |", "provenance", "signet verify-blob " + app, "--certificate-identity " + identity, "--certificate-oidc-issuer " + s.Issuer, "signet verify-blob-attestation"} {
			if !strings.Contains(sum, wantText) {
				t.Errorf("summary lacks %q:\n%s", wantText, sum)
			}
		}
		if strings.Contains(sum, "notes.txt") {
			t.Error("excluded file appears in the summary")
		}
		if len(r.errorAnnotations()) != 0 {
			t.Errorf("annotations on success: %q", r.errorAnnotations())
		}
	})

	t.Run("attest checksums with SBOM and custom predicate", func(t *testing.T) {
		dir := t.TempDir()
		sumA, sumB := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b"))
		checksums := writeFile(t, filepath.Join(dir, "checksums.txt"), hex.EncodeToString(sumA[:])+"  widget_1.0_linux_amd64.tar.gz\n"+hex.EncodeToString(sumB[:])+" *widget_1.0_darwin_arm64.tar.gz\n")
		sbomPath := writeFile(t, filepath.Join(dir, "sbom.spdx.json"), spdxDoc)
		r := newRunner(t, s).with("mode", "attest", "subject-checksums", checksums, "sbom-path", sbomPath,
			"predicate-type", "https://example.com/test-result/v1", "predicate", `{"passed":true}`, "bundle-dir", filepath.Join(dir, "bundles"))
		if err := r.run(); err != nil {
			t.Fatalf("%v\n%s", err, r.Stdout.String())
		}
		es := r.bundles()
		if len(es) != 3 {
			t.Fatalf("want provenance, SBOM and custom attestation; got %+v", es)
		}
		wantTypes := []string{intoto.PredicateSLSAProvenanceV1, intoto.PredicateSPDX, "https://example.com/test-result/v1"}
		for i, e := range es {
			if e.PredicateType != wantTypes[i] || filepath.Dir(e.BundlePath) != filepath.Join(dir, "bundles") || e.AttestationID == "" {
				t.Errorf("bundle %d = %+v", i, e)
			}
			b, err := bundle.ReadFile(e.BundlePath)
			if err != nil {
				t.Fatal(err)
			}
			for _, sum := range [][32]byte{sumA, sumB} {
				if _, err := v.VerifyAttestation(ctx, b, verify.Digest{Algorithm: crypto.SHA256, Value: sum[:]}, policy, wantTypes[i]); err != nil {
					t.Errorf("%s does not verify for a checksum subject: %v", e.BundlePath, err)
				}
			}
			other := sha256.Sum256([]byte("c"))
			if _, err := v.VerifyAttestation(ctx, b, verify.Digest{Algorithm: crypto.SHA256, Value: other[:]}, policy, ""); err == nil {
				t.Errorf("%s verifies for a digest it does not list", e.BundlePath)
			}
		}
		// Digest subjects have no file for verify-blob: the summary points
		// at the action's verify mode instead.
		if sum := r.summary(); !strings.Contains(sum, "mode: verify") || !strings.Contains(sum, "widget_1.0_linux_amd64.tar.gz") {
			t.Errorf("summary:\n%s", sum)
		}
	})

	t.Run("verify", func(t *testing.T) {
		if len(signed) != 3 {
			t.Skip("needs the bundles of the signing subtest")
		}
		bundles := signed[0].BundlePath + "\n" + signed[1].BundlePath + "\n" + signed[2].BundlePath
		base := func(t *testing.T) *runnerEnv {
			return newRunner(t, s).with("mode", "verify", "server", "", "trusted-root", s.RootPath,
				"subject-path", filepath.Join(dist, "bin", "app-*"), "bundle-path", bundles, "certificate-oidc-issuer", s.Issuer)
		}
		t.Run("exact identity", func(t *testing.T) {
			r := base(t).with("certificate-identity", identity)
			if err := r.run(); err != nil {
				t.Fatalf("%v\n%s", err, r.Stdout.String())
			}
			out := r.outputs()
			if out["verified"] != "true" || len(strings.Split(out["bundle-path"], "\n")) != 3 {
				t.Fatalf("outputs %v", out)
			}
			if sum := r.summary(); !strings.Contains(sum, "signet: verified") || !strings.Contains(sum, identity) {
				t.Errorf("summary:\n%s", sum)
			}
		})
		t.Run("identity regexp and predicate type", func(t *testing.T) {
			r := base(t).with("certificate-identity-regexp", `^https://github\.com/acme/widget/\.github/workflows/`, "bundle-path", signed[2].BundlePath, "predicate-type", "slsaprovenance1")
			if err := r.run(); err != nil {
				t.Fatalf("%v\n%s", err, r.Stdout.String())
			}
			if strings.Contains(r.Stdout.String(), "::warning") {
				t.Errorf("an anchored pattern warned:\n%s", r.Stdout.String())
			}
		})
		// As in cosign, a pattern is searched for anywhere in the value:
		// without a leading ^ a substring matches, and a warning says so.
		t.Run("unanchored identity regexp", func(t *testing.T) {
			r := base(t).with("certificate-identity-regexp", `acme/widget/`, "bundle-path", signed[2].BundlePath)
			if err := r.run(); err != nil {
				t.Fatalf("%v\n%s", err, r.Stdout.String())
			}
			if want := `::warning::certificate-identity-regexp "acme/widget/" has no leading ^, so it matches anywhere in the identity`; !strings.Contains(r.Stdout.String(), want) {
				t.Errorf("no annotation %q:\n%s", want, r.Stdout.String())
			}
		})
		t.Run("server trusted root", func(t *testing.T) {
			r := base(t).with("certificate-identity", identity, "trusted-root", "", "server", s.URL)
			if err := r.run(); err != nil {
				t.Fatalf("%v\n%s", err, r.Stdout.String())
			}
		})
		t.Run("another identity fails", func(t *testing.T) {
			r := base(t).with("certificate-identity", "https://github.com/evil/widget/"+workflow+"@"+ref)
			err := r.run()
			if err == nil {
				t.Fatal("verified with another identity")
			}
			anns := r.errorAnnotations()
			if len(anns) < 3 || !strings.Contains(strings.Join(anns, "\n"), "identity") {
				t.Fatalf("annotations %q", anns)
			}
			if r.outputs()["verified"] == "true" {
				t.Fatal("verified output set on failure")
			}
			if !strings.Contains(r.summary(), "signet: failed") {
				t.Errorf("summary:\n%s", r.summary())
			}
		})
		t.Run("changed artifact fails", func(t *testing.T) {
			changed := writeFile(t, filepath.Join(t.TempDir(), "app-linux-amd64"), "app binary amd64, patched\n")
			r := base(t).with("certificate-identity", identity, "subject-path", changed, "bundle-path", signed[0].BundlePath)
			if err := r.run(); err == nil || !strings.Contains(strings.Join(r.errorAnnotations(), "\n"), "app-linux-amd64") {
				t.Fatalf("err %v, annotations %q", err, r.errorAnnotations())
			}
		})
		t.Run("message signature is not an attestation", func(t *testing.T) {
			r := base(t).with("certificate-identity", identity, "bundle-path", signed[0].BundlePath, "predicate-type", "slsaprovenance1")
			if err := r.run(); err == nil || !strings.Contains(r.Stdout.String(), "not an attestation") {
				t.Fatalf("err %v\n%s", err, r.Stdout.String())
			}
		})
	})

	t.Run("image with SBOM pushed to registry, then verified from it", func(t *testing.T) {
		reg := ocitest.StartReferrersAPI(t)
		ref := reg.Ref("acme/widget:v1")
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		tag, _ := name.ParseReference(ref, name.Insecure)
		if err := remote.Write(tag, img); err != nil {
			t.Fatal(err)
		}
		imgDigest, _ := img.Digest()
		sbomPath := writeFile(t, filepath.Join(t.TempDir(), "sbom.spdx.json"), spdxDoc)
		r := newRunner(t, s).with("image", ref, "sbom-path", sbomPath, "push-to-registry", "true")
		if err := r.run(); err != nil {
			t.Fatalf("%v\n%s", err, r.Stdout.String())
		}
		es := r.bundles()
		if len(es) != 3 || es[0].Kind != action.KindSignature || es[1].Kind != action.KindProvenance || es[2].Kind != action.KindSBOM {
			t.Fatalf("bundles %+v", es)
		}
		// The tag resolved once, to the digest a later step should use.
		if o := r.outputs(); o["image"] != reg.Ref("acme/widget@"+imgDigest.String()) || o["digest"] != imgDigest.String() {
			t.Errorf("image output %q, digest %q; pushed %s", o["image"], o["digest"], imgDigest)
		}
		for _, e := range es {
			if e.Referrer == "" {
				t.Errorf("%s not attached", e.Kind)
			}
		}
		// What the registry lists for the image: a signature and two attestations.
		c := oci.New(oci.Options{})
		subj, err := c.Resolve(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if subj.Digest.DigestStr() != imgDigest.String() {
			t.Fatalf("resolved %s, pushed %s", subj.Digest, imgDigest)
		}
		l, err := c.List(ctx, subj)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Signatures()) != 1 || len(l.Attestations()) != 2 {
			t.Fatalf("listing: %d signatures, %d attestations", len(l.Signatures()), len(l.Attestations()))
		}

		// Verify from the registry, by tag, with no bundle files.
		vr := newRunner(t, s).with("mode", "verify", "image", ref, "trusted-root", s.RootPath, "certificate-identity", identity, "certificate-oidc-issuer", s.Issuer)
		if err := vr.run(); err != nil {
			t.Fatalf("%v\n%s", err, vr.Stdout.String())
		}
		if got := vr.bundles(); len(got) != 3 {
			t.Fatalf("verified %d bundles from the registry", len(got))
		}
		bad := newRunner(t, s).with("mode", "verify", "image", ref, "trusted-root", s.RootPath, "certificate-identity", "https://github.com/evil/widget/"+workflow+"@"+ref, "certificate-oidc-issuer", s.Issuer)
		if err := bad.run(); err == nil || !strings.Contains(bad.Stdout.String(), "no bundle verifies") {
			t.Fatalf("another identity: err %v\n%s", err, bad.Stdout.String())
		}
	})

	t.Run("pull_request event: signatures but no provenance", func(t *testing.T) {
		file := writeFile(t, filepath.Join(t.TempDir(), "pr-build"), "pr\n")
		r := newRunner(t, s).with("subject-path", file).set("GITHUB_EVENT_NAME", "pull_request").
			set("ACTIONS_ID_TOKEN_REQUEST_URL", s.tokenURL(url.Values{"event": {"pull_request"}}))
		if err := r.run(); err != nil {
			t.Fatalf("%v\n%s", err, r.Stdout.String())
		}
		if es := r.bundles(); len(es) != 1 || es[0].Kind != action.KindSignature {
			t.Fatalf("bundles %+v", es)
		}
		if !strings.Contains(r.Stdout.String(), "::warning::no SLSA provenance") {
			t.Errorf("no warning:\n%s", r.Stdout.String())
		}
	})

	t.Run("relative glob from the workspace", func(t *testing.T) {
		ws := t.TempDir()
		writeFile(t, filepath.Join(ws, "dist", "tool"), "tool\n")
		t.Chdir(ws)
		r := newRunner(t, s).with("subject-path", "dist/*", "provenance", "false")
		if err := r.run(); err != nil {
			t.Fatalf("%v\n%s", err, r.Stdout.String())
		}
		if got := r.outputs()["bundle-path"]; got != filepath.Join("dist", "tool.sigstore.json") {
			t.Fatalf("bundle-path %q", got)
		}
	})

	t.Run("errors", func(t *testing.T) {
		file := writeFile(t, filepath.Join(t.TempDir(), "artifact"), "x\n")
		closed := closedPort(t)
		cases := []struct {
			name  string
			setup func(*runnerEnv)
			want  string // in the ::error annotation
		}{
			{"missing id-token permission", func(r *runnerEnv) {
				r.with("subject-path", file).set("ACTIONS_ID_TOKEN_REQUEST_URL", "").set("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")
			}, "add `permissions: id-token: write`"},
			{"server unreachable", func(r *runnerEnv) {
				r.with("subject-path", file, "server", "http://"+closed)
			}, "check the server input"},
			{"glob matches nothing", func(r *runnerEnv) {
				r.with("subject-path", filepath.Join(t.TempDir(), "dist", "*.tar.gz"))
			}, "matched no files"},
			{"no subject", func(r *runnerEnv) {}, "no subject"},
			{"two kinds of subject", func(r *runnerEnv) {
				r.with("subject-path", file, "subject-digest", "sha256:"+strings.Repeat("a", 64), "subject-name", "x")
			}, "give only one of"},
			{"digest without name", func(r *runnerEnv) {
				r.with("mode", "attest", "subject-digest", "sha256:"+strings.Repeat("a", 64))
			}, "subject-digest and subject-name go together"},
			{"bad digest", func(r *runnerEnv) {
				r.with("mode", "attest", "subject-digest", "md5:abc", "subject-name", "x")
			}, "sha256:<64 lower-case hex digits>"},
			{"sign mode with a digest", func(r *runnerEnv) {
				r.with("subject-digest", "sha256:"+strings.Repeat("a", 64), "subject-name", "x")
			}, "use mode: attest"},
			{"unknown mode", func(r *runnerEnv) { r.with("mode", "publish", "subject-path", file) }, `"publish" is not a mode`},
			{"bad boolean", func(r *runnerEnv) { r.with("subject-path", file, "provenance", "yes") }, `input provenance: "yes" is not a boolean`},
			{"no server", func(r *runnerEnv) { r.with("subject-path", file, "server", "") }, "no signet server"},
			{"server not a URL", func(r *runnerEnv) { r.with("subject-path", file, "server", "signet.example.com") }, "is not an http(s) URL"},
			{"predicate without type", func(r *runnerEnv) { r.with("subject-path", file, "predicate", "{}") }, "a predicate needs its type"},
			{"type without predicate", func(r *runnerEnv) { r.with("subject-path", file, "predicate-type", "https://example.com/p") }, "there is no predicate"},
			{"predicate not JSON", func(r *runnerEnv) {
				r.with("subject-path", file, "predicate-type", "https://example.com/p", "predicate", "not json")
			}, "input predicate"},
			{"SBOM not an SBOM", func(r *runnerEnv) { r.with("subject-path", file, "sbom-path", file) }, "not a JSON document"},
			{"checksums malformed", func(r *runnerEnv) {
				r.with("mode", "attest", "subject-checksums", writeFile(t, filepath.Join(t.TempDir(), "sums"), "nonsense\n"))
			}, "line 1 is not"},
			{"push without image", func(r *runnerEnv) { r.with("subject-path", file, "push-to-registry", "true") }, "set the image input"},
			{"attest nothing", func(r *runnerEnv) { r.with("mode", "attest", "subject-path", file, "provenance", "false") }, "nothing to attest"},
			{"token from another repository", func(r *runnerEnv) {
				r.with("subject-path", file).set("ACTIONS_ID_TOKEN_REQUEST_URL", s.tokenURL(url.Values{"repository": {"evil/widget"}}))
			}, `the identity token was issued for repository="evil/widget"`},
			{"event payload of another repository", func(r *runnerEnv) {
				writeFile(t, r.vars["GITHUB_EVENT_PATH"], `{"repository":{"id":1,"owner":{"id":2}}}`)
				r.with("subject-path", file)
			}, "the payload is not this run's"},
			{"verify without policy", func(r *runnerEnv) {
				r.with("mode", "verify", "subject-path", file, "bundle-path", file, "certificate-oidc-issuer", s.Issuer)
			}, "give exactly one of certificate-identity"},
			{"verify without trust", func(r *runnerEnv) {
				r.with("mode", "verify", "server", "", "subject-path", file, "bundle-path", file, "certificate-identity", identity, "certificate-oidc-issuer", s.Issuer)
			}, "verification needs trust"},
			{"verify bundle glob matches nothing", func(r *runnerEnv) {
				r.with("mode", "verify", "trusted-root", s.RootPath, "subject-path", file, "bundle-path", file+".nope", "certificate-identity", identity, "certificate-oidc-issuer", s.Issuer)
			}, "matched no files"},
			{"verify a file that is no bundle", func(r *runnerEnv) {
				r.with("mode", "verify", "trusted-root", s.RootPath, "subject-path", file, "bundle-path", file, "certificate-identity", identity, "certificate-oidc-issuer", s.Issuer)
			}, "not a Sigstore bundle"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := newRunner(t, s)
				c.setup(r)
				before, _ := os.ReadDir(filepath.Dir(file))
				err := r.run()
				if err == nil {
					t.Fatalf("succeeded\n%s", r.Stdout.String())
				}
				anns := r.errorAnnotations()
				if !strings.Contains(strings.Join(anns, "\n"), c.want) {
					t.Fatalf("annotation %q does not say %q", anns, c.want)
				}
				t.Log(strings.Join(anns, "\n"))
				if !strings.Contains(r.summary(), "signet: failed") {
					t.Errorf("summary:\n%s", r.summary())
				}
				// Nothing was written next to the artifact.
				after, _ := os.ReadDir(filepath.Dir(file))
				if len(after) != len(before) {
					t.Errorf("files appeared next to the artifact: %v", after)
				}
				if out := r.outputs(); out["bundle-path"] != "" || out["verified"] != "" {
					t.Errorf("outputs on failure: %v", out)
				}
			})
		}
	})
}

// checkProvenance checks the SLSA predicate against the simulated run and
// GitHub's workflow build type.
func checkProvenance(t *testing.T, p map[string]any) {
	t.Helper()
	js, _ := json.Marshal(p)
	var got struct {
		BuildDefinition struct {
			BuildType          string
			ExternalParameters struct {
				Workflow struct{ Ref, Repository, Path string }
			}
			InternalParameters struct {
				Github map[string]string
			}
			ResolvedDependencies []struct {
				URI    string
				Digest map[string]string
			}
		}
		RunDetails struct {
			Builder  struct{ ID string }
			Metadata struct {
				InvocationID string
				StartedOn    string
			}
		}
	}
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatal(err)
	}
	bd, rd := got.BuildDefinition, got.RunDetails
	wf := bd.ExternalParameters.Workflow
	switch {
	case bd.BuildType != "https://actions.github.io/buildtypes/workflow/v1":
		t.Errorf("buildType %q", bd.BuildType)
	case wf.Ref != ref || wf.Repository != "https://github.com/"+repo || wf.Path != workflow:
		t.Errorf("workflow %+v", wf)
	case bd.InternalParameters.Github["event_name"] != "push" || bd.InternalParameters.Github["repository_id"] != repoID ||
		bd.InternalParameters.Github["repository_owner_id"] != ownerID || bd.InternalParameters.Github["runner_environment"] != "github-hosted":
		t.Errorf("internalParameters %v", bd.InternalParameters.Github)
	case len(bd.ResolvedDependencies) != 1 || bd.ResolvedDependencies[0].URI != "git+https://github.com/"+repo+"@"+ref || bd.ResolvedDependencies[0].Digest["gitCommit"] != commit:
		t.Errorf("resolvedDependencies %+v", bd.ResolvedDependencies)
	case rd.Builder.ID != identity:
		t.Errorf("builder %q", rd.Builder.ID)
	case rd.Metadata.InvocationID != "https://github.com/"+repo+"/actions/runs/"+runID+"/attempts/2":
		t.Errorf("invocationId %q", rd.Metadata.InvocationID)
	case rd.Metadata.StartedOn == "":
		t.Error("no startedOn")
	}
}

// sgVerify checks an attestation bundle with sigstore-go.
func sgVerify(t *testing.T, s *server, bundlePath, artifact string) {
	t.Helper()
	raw, _ := os.ReadFile(s.RootPath)
	tr, err := root.NewTrustedRootFromJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := sgverify.NewVerifier(tr, sgverify.WithSignedTimestamps(1), sgverify.WithTransparencyLog(1))
	if err != nil {
		t.Fatal(err)
	}
	b, err := sgbundle.LoadJSONFromPath(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	id, err := sgverify.NewShortCertificateIdentity(s.Issuer, "", identity, "")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(artifact)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := sv.Verify(b, sgverify.NewPolicy(sgverify.WithArtifact(f), sgverify.WithCertificateIdentity(id))); err != nil {
		t.Fatalf("sigstore-go rejects %s: %v", bundlePath, err)
	}
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
