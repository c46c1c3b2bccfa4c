package controller_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
)

// Each Chains type-hint family against the real controller: what it signs,
// what the provenance names as subjects and resolved dependencies, and that
// what it made verifies. The translation's rules are tekton/artifacts' and
// tekton/provenance's; these tests check the controller carries them to the
// registry and the attestation store.

// hintRun is what a hints test says of a run: results of any type (the
// env's runSpec takes strings only), step results and status.artifacts.
type hintRun struct {
	results     []pipelinev1.TaskRunResult
	stepResults []pipelinev1.TaskRunStepResult
	artifacts   *pipelinev1.Artifacts
}

func hintString(name, v string) pipelinev1.TaskRunResult {
	return pipelinev1.TaskRunResult{Name: name, Type: pipelinev1.ResultsTypeString, Value: *pipelinev1.NewStructuredValues(v)}
}

func hintObject(name string, kv ...string) pipelinev1.TaskRunResult {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return pipelinev1.TaskRunResult{Name: name, Type: pipelinev1.ResultsTypeObject, Value: *pipelinev1.NewObject(m)}
}

// hintStepImageID is the step image the kubelet reports for every hint run:
// the provenance's first resolved dependency.
var hintStepImageID = "cgr.dev/chainguard/busybox@sha256:" + strings.Repeat("ab", 32)

// hintTaskRun creates a TaskRun and writes a succeeded status carrying the
// given results, in the shape of env_test.go's taskRunErr.
func (e *env) hintTaskRun(t testing.TB, ns, name string, r hintRun) *pipelinev1.TaskRun {
	t.Helper()
	ctx := context.Background()
	tr := &pipelinev1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: pipelinev1.TaskRunSpec{
			TaskSpec: &pipelinev1.TaskSpec{Steps: []pipelinev1.Step{{Name: "build", Image: "cgr.dev/chainguard/busybox", Script: "echo build"}}},
		},
	}
	tr, err := e.tekton.TektonV1().TaskRuns(ns).Create(ctx, tr, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	start := metav1.NewTime(now.Add(-30 * time.Second))
	tr.Status = pipelinev1.TaskRunStatus{
		Status: duckv1.Status{Conditions: duckv1.Conditions{{Type: apis.ConditionSucceeded, Status: corev1.ConditionTrue, Reason: "Succeeded"}}},
		TaskRunStatusFields: pipelinev1.TaskRunStatusFields{
			StartTime:      &start,
			CompletionTime: &now,
			PodName:        name + "-pod",
			Steps: []pipelinev1.StepState{{Name: "build", Container: "step-build",
				ImageID: hintStepImageID, Results: r.stepResults}},
			TaskSpec:  tr.Spec.TaskSpec,
			Results:   r.results,
			Artifacts: r.artifacts,
		},
	}
	tr, err = e.tekton.TektonV1().TaskRuns(ns).UpdateStatus(ctx, tr, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// provenanceOf is the in-toto statement of the run's one attestation (the
// provenance: image signatures do not go through the attestation store).
func (e *env) provenanceOf(t testing.TB, ann map[string]string) (id string, st map[string]any) {
	t.Helper()
	ids := strings.Split(ann["signet.dev/attestation-ids"], ",")
	if len(ids) != 1 || ids[0] == "" {
		t.Fatalf("attestation IDs %q: want exactly one (the provenance)", ann["signet.dev/attestation-ids"])
	}
	st = e.statement(t, ids[0])
	if st["predicateType"] != "https://slsa.dev/provenance/v1" {
		t.Fatalf("attestation %s is a %v, want SLSA provenance v1", ids[0], st["predicateType"])
	}
	return ids[0], st
}

// subjectsOf are the statement's subjects, name -> "alg:hex,..." (sorted).
func subjectsOf(st map[string]any) map[string]string {
	out := map[string]string{}
	subs, _ := st["subject"].([]any)
	for _, s := range subs {
		m := s.(map[string]any)
		name, _ := m["name"].(string)
		out[name] = digestsOf(m["digest"])
	}
	return out
}

func digestsOf(v any) string {
	d, _ := v.(map[string]any)
	var parts []string
	for alg, hex := range d {
		parts = append(parts, fmt.Sprintf("%s:%v", alg, hex))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// hintDep is one resolvedDependencies entry as tekton/provenance writes it.
type hintDep struct{ name, uri, digest string }

func (d hintDep) String() string { return fmt.Sprintf("{%s %s %s}", d.name, d.uri, d.digest) }

func dependenciesOf(st map[string]any) []hintDep {
	pred, _ := st["predicate"].(map[string]any)
	bd, _ := pred["buildDefinition"].(map[string]any)
	deps, _ := bd["resolvedDependencies"].([]any)
	var out []hintDep
	for _, d := range deps {
		m := d.(map[string]any)
		name, _ := m["name"].(string)
		uri, _ := m["uri"].(string)
		out = append(out, hintDep{name, uri, digestsOf(m["digest"])})
	}
	return out
}

// byproductsOf are the names of the provenance's byproducts.
func byproductsOf(st map[string]any) []string {
	pred, _ := st["predicate"].(map[string]any)
	rd, _ := pred["runDetails"].(map[string]any)
	bps, _ := rd["byproducts"].([]any)
	var out []string
	for _, b := range bps {
		name, _ := b.(map[string]any)["name"].(string)
		out = append(out, name)
	}
	return out
}

// storedFor asks the attestation store what it keeps about a digest
// (docs/server.md: GET /api/v2/attestations?digest=).
type storedAttestation struct {
	ID            string `json:"attestationId"`
	PredicateType string `json:"predicateType"`
	Identity      string `json:"identity"`
	Issuer        string `json:"issuer"`
	Subjects      []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"subjects"`
}

func (e *env) storedFor(t testing.TB, digest string) []storedAttestation {
	t.Helper()
	b, err := e.srv.Get("/api/v2/attestations?digest=" + url.QueryEscape(digest))
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Attestations []storedAttestation `json:"attestations"`
	}
	if err := json.Unmarshal(b, &page); err != nil {
		t.Fatalf("attestations for %s: %v\n%s", digest, err, b)
	}
	return page.Attestations
}

// verifies runs `signet verify` (or verify-attestation with its type) and
// reports the exit code.
func (e *env) verifies(t testing.TB, ref string, attestation bool) (int, string) {
	t.Helper()
	args := []string{"verify", ref}
	if attestation {
		args = []string{"verify-attestation", ref, "--type", "slsaprovenance1"}
	}
	return e.signet(t, append(args, e.policy(e.identity)...)...)
}

func logEntries(ann map[string]string) int {
	if ann["signet.dev/log-indexes"] == "" {
		return 0
	}
	return len(strings.Split(ann["signet.dev/log-indexes"], ","))
}

func hexSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// (a) IMAGES: references by digest, separated by commas or newlines. Each
// image is signed, carries the provenance, and the provenance names all of
// them; the tag written in the reference is not part of the subject.
func TestHintImagesList(t *testing.T) {
	e := getEnv(t)
	const ns = "hint-images"
	e.namespace(t, ns)
	e.controller(t, ns)
	for _, tc := range []struct{ run, sep string }{{"comma", ","}, {"newline", "\n"}, {"both", ",\n"}} {
		t.Run(tc.run, func(t *testing.T) {
			repoA, repoB := "hints/images-"+tc.run+"-a", "hints/images-"+tc.run+"-b"
			dA, dB := e.pushImage(t, repoA), e.pushImage(t, repoB)
			list := e.reg.Ref(repoA+":v1") + "@" + dA + tc.sep + " " + e.reg.Ref(repoB) + "@" + dB + tc.sep
			e.hintTaskRun(t, ns, "build-"+tc.run, hintRun{results: []pipelinev1.TaskRunResult{hintString("IMAGES", list)}})
			ann := e.marked(t, "taskrun", ns, "build-"+tc.run, time.Minute)
			if ann["signet.dev/signed"] != "true" || ann["signet.dev/subjects"] != "2" || logEntries(ann) != 3 {
				t.Fatalf("annotations %v; want signed, 2 subjects, 3 log entries (2 signatures, the provenance)", ann)
			}
			_, st := e.provenanceOf(t, ann)
			want := map[string]string{
				e.reg.Ref(repoA): dA,
				e.reg.Ref(repoB): dB,
			}
			if got := subjectsOf(st); !maps2Equal(got, want) {
				t.Errorf("provenance subjects %v, want %v", got, want)
			}
			for _, ref := range []string{e.reg.Ref(repoA + "@" + dA), e.reg.Ref(repoB + "@" + dB)} {
				if s, a := e.attached(t, ref); s != 1 || a != 1 {
					t.Errorf("%s: %d signatures, %d attestations attached; want one of each", ref, s, a)
				}
				if code, out := e.verifies(t, ref, false); code != 0 {
					t.Errorf("signet verify %s: exit %d\n%s", ref, code, out)
				}
				if code, out := e.verifies(t, ref, true); code != 0 {
					t.Errorf("signet verify-attestation %s: exit %d\n%s", ref, code, out)
				}
			}
		})
	}
}

// maps2Equal compares subjects with plain sha256 digests given as
// "sha256:<hex>".
func maps2Equal(got, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// (b) A prefixed pair (APP_IMAGE_URL/APP_IMAGE_DIGEST) and the plain pair in
// one run: two images, both signed, both subjects of one provenance.
func TestHintPrefixedPairs(t *testing.T) {
	e := getEnv(t)
	const ns = "hint-pairs"
	e.namespace(t, ns)
	e.controller(t, ns)
	dApp, dMain := e.pushImage(t, "hints/pairs-app"), e.pushImage(t, "hints/pairs-main")
	e.hintTaskRun(t, ns, "build", hintRun{results: []pipelinev1.TaskRunResult{
		hintString("APP_IMAGE_URL", e.reg.Ref("hints/pairs-app:1.2.3")),
		hintString("APP_IMAGE_DIGEST", dApp),
		hintString("IMAGE_URL", e.reg.Ref("hints/pairs-main")),
		hintString("IMAGE_DIGEST", dMain),
	}})
	ann := e.marked(t, "taskrun", ns, "build", time.Minute)
	if ann["signet.dev/signed"] != "true" || ann["signet.dev/subjects"] != "2" || logEntries(ann) != 3 {
		t.Fatalf("annotations %v; want signed, 2 subjects, 3 log entries", ann)
	}
	_, st := e.provenanceOf(t, ann)
	want := map[string]string{e.reg.Ref("hints/pairs-app"): dApp, e.reg.Ref("hints/pairs-main"): dMain}
	if got := subjectsOf(st); !maps2Equal(got, want) {
		t.Errorf("provenance subjects %v, want %v", got, want)
	}
	// Image hints are subjects, not byproducts.
	for _, b := range byproductsOf(st) {
		if strings.Contains(b, "IMAGE_") {
			t.Errorf("byproduct %s: image hints are subjects", b)
		}
	}
	for _, ref := range []string{e.reg.Ref("hints/pairs-app@" + dApp), e.reg.Ref("hints/pairs-main@" + dMain)} {
		if code, out := e.verifies(t, ref, false); code != 0 {
			t.Errorf("signet verify %s: exit %d\n%s", ref, code, out)
		}
		if code, out := e.verifies(t, ref, true); code != 0 {
			t.Errorf("signet verify-attestation %s: exit %d\n%s", ref, code, out)
		}
	}
}

// (c) *_ARTIFACT_OUTPUTS: a build artifact that is not an image is a
// provenance subject, kept in the attestation store (there is no image to
// sign or attach to) and verifiable against the file; one naming an image
// in a registry is signed as an image; without isBuildArtifact it is a
// byproduct (tekton/artifacts' Legacy, which the controller does not make
// subjects), and a run with only that has nothing to sign.
func TestHintArtifactOutputs(t *testing.T) {
	e := getEnv(t)
	const ns = "hint-outputs"
	e.namespace(t, ns)
	e.controller(t, ns)
	dir := t.TempDir()
	tarball := []byte("hints: app 1.0 release tarball\n")
	file := filepath.Join(dir, "app-1.0.tar.gz")
	if err := os.WriteFile(file, tarball, 0o644); err != nil {
		t.Fatal(err)
	}
	binHex := hexSHA256(tarball)
	notesHex := hexSHA256([]byte("hints: release notes\n"))
	const binURI = "https://downloads.example.com/app/app-1.0.tar.gz"
	const notesURI = "https://downloads.example.com/app/NOTES.md"
	dImg := e.pushImage(t, "hints/outputs-img")

	e.hintTaskRun(t, ns, "build", hintRun{results: []pipelinev1.TaskRunResult{
		hintObject("bin-ARTIFACT_OUTPUTS", "uri", binURI, "digest", "sha256:"+binHex, "isBuildArtifact", "true"),
		hintObject("img-ARTIFACT_OUTPUTS", "uri", e.reg.Ref("hints/outputs-img"), "digest", dImg, "isBuildArtifact", "true"),
		hintObject("notes-ARTIFACT_OUTPUTS", "uri", notesURI, "digest", "sha256:"+notesHex),
	}})
	ann := e.marked(t, "taskrun", ns, "build", time.Minute)
	if ann["signet.dev/signed"] != "true" || ann["signet.dev/subjects"] != "2" || logEntries(ann) != 2 {
		t.Fatalf("annotations %v; want signed, 2 subjects (the tarball, the image), 2 log entries (the image's signature, the provenance)", ann)
	}
	id, st := e.provenanceOf(t, ann)
	want := map[string]string{binURI: "sha256:" + binHex, e.reg.Ref("hints/outputs-img"): dImg}
	if got := subjectsOf(st); !maps2Equal(got, want) {
		t.Errorf("provenance subjects %v, want %v (the artifact without isBuildArtifact is no subject)", got, want)
	}
	bps := byproductsOf(st)
	if !slices.Contains(bps, "taskRunResults/build/notes-ARTIFACT_OUTPUTS") {
		t.Errorf("byproducts %q: want the non-build artifact's result", bps)
	}
	for _, b := range bps {
		if strings.HasPrefix(b, "taskRunResults/build/bin-") || strings.HasPrefix(b, "taskRunResults/build/img-") {
			t.Errorf("byproduct %s: build artifacts are subjects", b)
		}
	}

	// The tarball: found in the store by its digest, signed by the
	// controller; its bundle verifies against the file.
	got := e.storedFor(t, "sha256:"+binHex)
	if len(got) != 1 || got[0].ID != id || got[0].Identity != e.identity || got[0].Issuer != e.issuer || got[0].PredicateType != "https://slsa.dev/provenance/v1" {
		t.Fatalf("the store has %+v for the tarball's digest; want the run's provenance %s by %s", got, id, e.identity)
	}
	bundle, err := e.srv.Get("/api/v2/attestations/" + id + "/bundle")
	if err != nil {
		t.Fatal(err)
	}
	bpath := filepath.Join(dir, "provenance.sigstore.json")
	if err := os.WriteFile(bpath, bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := e.signet(t, append([]string{"verify-blob-attestation", file, "--bundle", bpath, "--type", "slsaprovenance1"}, e.policy(e.identity)...)...); code != 0 {
		t.Errorf("signet verify-blob-attestation of the tarball: exit %d\n%s", code, out)
	}
	other := filepath.Join(dir, "other.tar.gz")
	os.WriteFile(other, []byte("another tarball\n"), 0o644)
	if code, out := e.signet(t, append([]string{"verify-blob-attestation", other, "--bundle", bpath, "--type", "slsaprovenance1"}, e.policy(e.identity)...)...); code != 1 {
		t.Errorf("verify-blob-attestation of a file the run did not build: exit %d, want 1\n%s", code, out)
	}
	// The non-build artifact: nothing about it.
	if got := e.storedFor(t, "sha256:"+notesHex); len(got) != 0 {
		t.Errorf("the store has %+v for the artifact without isBuildArtifact; want nothing", got)
	}

	// The image: signed, with the provenance attached.
	ref := e.reg.Ref("hints/outputs-img@" + dImg)
	if s, a := e.attached(t, ref); s != 1 || a != 1 {
		t.Errorf("%s: %d signatures, %d attestations; want one of each", ref, s, a)
	}
	if code, out := e.verifies(t, ref, false); code != 0 {
		t.Errorf("signet verify %s: exit %d\n%s", ref, code, out)
	}
	if code, out := e.verifies(t, ref, true); code != 0 {
		t.Errorf("signet verify-attestation %s: exit %d\n%s", ref, code, out)
	}

	// Only a non-build artifact: nothing to sign.
	onlyHex := hexSHA256([]byte("hints: a cache\n"))
	e.hintTaskRun(t, ns, "cache-only", hintRun{results: []pipelinev1.TaskRunResult{
		hintObject("cache-ARTIFACT_OUTPUTS", "uri", "https://cache.example.com/layer", "digest", "sha256:"+onlyHex),
	}})
	ann = e.marked(t, "taskrun", ns, "cache-only", time.Minute)
	if ann["signet.dev/signed"] != "true" || ann["signet.dev/subjects"] != "0" || logEntries(ann) != 0 || !strings.Contains(ann["signet.dev/reason"], "nothing to sign") {
		t.Errorf("annotations %v; want signed=true, 0 subjects, no log entry, nothing to sign", ann)
	}
	if got := e.storedFor(t, "sha256:"+onlyHex); len(got) != 0 {
		t.Errorf("the store has %+v for an artifact without isBuildArtifact", got)
	}
}

// (d) Inputs: CHAINS-GIT_URL/CHAINS-GIT_COMMIT become a git+….git material
// with its sha1, *_ARTIFACT_INPUTS (the run's and its steps') become
// materials, in tekton/provenance's order: step images, the steps' inputs,
// then the run's git and inputs. None is a subject.
func TestHintInputs(t *testing.T) {
	e := getEnv(t)
	const ns = "hint-inputs"
	e.namespace(t, ns)
	e.controller(t, ns)
	digest := e.pushImage(t, "hints/inputs")
	const commit = "4f2e6b1c0a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f"
	libHex := hexSHA256([]byte("hints: lib v1.2.0"))
	toolHex := hexSHA256([]byte("hints: tool v3"))
	e.hintTaskRun(t, ns, "build", hintRun{
		results: []pipelinev1.TaskRunResult{
			hintString("IMAGE_URL", e.reg.Ref("hints/inputs")),
			hintString("IMAGE_DIGEST", digest),
			hintString("CHAINS-GIT_URL", "https://github.com/acme/app"),
			hintString("CHAINS-GIT_COMMIT", commit),
			hintObject("lib-ARTIFACT_INPUTS", "uri", "pkg:github/acme/lib@v1.2.0", "digest", "sha256:"+libHex),
		},
		stepResults: []pipelinev1.TaskRunStepResult{
			hintObject("tool-ARTIFACT_INPUTS", "uri", "pkg:generic/tool@3", "digest", "sha256:"+toolHex),
		},
	})
	ann := e.marked(t, "taskrun", ns, "build", time.Minute)
	if ann["signet.dev/signed"] != "true" || ann["signet.dev/subjects"] != "1" {
		t.Fatalf("annotations %v; want signed, 1 subject (inputs are none)", ann)
	}
	_, st := e.provenanceOf(t, ann)
	if got, want := subjectsOf(st), map[string]string{e.reg.Ref("hints/inputs"): digest}; !maps2Equal(got, want) {
		t.Errorf("subjects %v, want only the image %v", got, want)
	}
	img, imgDigest, _ := strings.Cut(hintStepImageID, "@")
	want := []hintDep{
		{"", "oci://" + img, imgDigest},
		{"inputs/result", "pkg:generic/tool@3", "sha256:" + toolHex},
		{"inputs/result", "git+https://github.com/acme/app.git", "sha1:" + commit},
		{"inputs/result", "pkg:github/acme/lib@v1.2.0", "sha256:" + libHex},
	}
	if got := dependenciesOf(st); !slices.Equal(got, want) {
		t.Errorf("resolvedDependencies\n %v\nwant\n %v", got, want)
	}
	// As in Chains' v2alpha4, results that are not subjects stay
	// byproducts, input hints included; the image hints do not.
	bps := byproductsOf(st)
	for _, b := range []string{"taskRunResults/build/CHAINS-GIT_URL", "taskRunResults/build/CHAINS-GIT_COMMIT", "taskRunResults/build/lib-ARTIFACT_INPUTS", "stepResults/build/tool-ARTIFACT_INPUTS"} {
		if !slices.Contains(bps, b) {
			t.Errorf("byproducts %q: no %s", bps, b)
		}
	}
	if slices.Contains(bps, "taskRunResults/build/IMAGE_URL") {
		t.Errorf("byproducts %q: the image hint is a subject", bps)
	}
	if code, out := e.verifies(t, e.reg.Ref("hints/inputs@"+digest), true); code != 0 {
		t.Errorf("signet verify-attestation: exit %d\n%s", code, out)
	}
}

// (e) TEP-0147 status.artifacts: outputs with buildOutput are subjects by
// URI with their sha256 (other digests are not carried: a subject here has
// sha256 only), outputs without it are not; inputs are resolved
// dependencies. An output naming an image in the registry is a subject by
// URI only: tekton/artifacts makes status.artifacts outputs Artifacts,
// never Images, so the image is neither signed nor given the provenance as
// a referrer; the provenance is in the attestation store alone.
func TestHintStatusArtifacts(t *testing.T) {
	e := getEnv(t)
	const ns = "hint-status"
	e.namespace(t, ns)
	e.controller(t, ns)
	dImg := e.pushImage(t, "hints/status-img")
	imgHex := strings.TrimPrefix(dImg, "sha256:")
	binHex := hexSHA256([]byte("hints: status binary"))
	bin512 := strings.Repeat("5", 128)
	logHex := hexSHA256([]byte("hints: status log"))
	srcSHA1 := "0123456789abcdef0123456789abcdef01234567"
	srcHex := hexSHA256([]byte("hints: status source"))
	e.hintTaskRun(t, ns, "build", hintRun{artifacts: &pipelinev1.Artifacts{
		Outputs: []pipelinev1.Artifact{
			{Name: "binary", BuildOutput: true, Values: []pipelinev1.ArtifactValue{
				{Uri: "pkg:generic/hints-app@1.0", Digest: map[pipelinev1.Algorithm]string{"sha256": binHex, "sha512": bin512}},
			}},
			{Name: "image", BuildOutput: true, Values: []pipelinev1.ArtifactValue{
				{Uri: e.reg.Ref("hints/status-img"), Digest: map[pipelinev1.Algorithm]string{"sha256": imgHex}},
			}},
			{Name: "log", Values: []pipelinev1.ArtifactValue{
				{Uri: "pkg:generic/hints-build-log", Digest: map[pipelinev1.Algorithm]string{"sha256": logHex}},
			}},
		},
		Inputs: []pipelinev1.Artifact{
			{Name: "source", Values: []pipelinev1.ArtifactValue{
				{Uri: "pkg:github/acme/src@v1", Digest: map[pipelinev1.Algorithm]string{"sha1": srcSHA1, "sha256": srcHex}},
			}},
		},
	}})
	ann := e.marked(t, "taskrun", ns, "build", time.Minute)
	if ann["signet.dev/signed"] != "true" || ann["signet.dev/subjects"] != "2" || logEntries(ann) != 2 {
		t.Fatalf("annotations %v; want signed, 2 subjects, 2 log entries (the image's signature, the provenance)", ann)
	}
	id, st := e.provenanceOf(t, ann)
	want := map[string]string{
		"pkg:generic/hints-app@1.0":   "sha256:" + binHex,
		e.reg.Ref("hints/status-img"): "sha256:" + imgHex,
	}
	if got := subjectsOf(st); !maps2Equal(got, want) {
		t.Errorf("subjects %v, want %v (the log, not a build output, is none)", got, want)
	}
	img, imgDigest, _ := strings.Cut(hintStepImageID, "@")
	wantDeps := []hintDep{
		{"", "oci://" + img, imgDigest},
		{"inputs/result", "pkg:github/acme/src@v1", "sha1:" + srcSHA1 + ",sha256:" + srcHex},
	}
	if got := dependenciesOf(st); !slices.Equal(got, wantDeps) {
		t.Errorf("resolvedDependencies\n %v\nwant\n %v", got, wantDeps)
	}
	for _, d := range []string{"sha256:" + binHex, dImg} {
		if got := e.storedFor(t, d); len(got) != 1 || got[0].ID != id || got[0].Identity != e.identity {
			t.Errorf("the store has %+v for %s; want the run's provenance %s", got, d, id)
		}
	}
	if got := e.storedFor(t, "sha256:"+logHex); len(got) != 0 {
		t.Errorf("the store has %+v for the non-build output", got)
	}

	// A build output that names an image is signed as one, with the
	// provenance attached, as for *ARTIFACT_OUTPUTS.
	ref := e.reg.Ref("hints/status-img@" + dImg)
	if s, a := e.attached(t, ref); s != 1 || a != 1 {
		t.Errorf("%s: %d signatures, %d attestations attached; want one of each", ref, s, a)
	}
	if code, out := e.verifies(t, ref, false); code != 0 {
		t.Errorf("signet verify of the status.artifacts image: exit %d, want 0\n%s", code, out)
	}
}

// (f) A malformed hint is skipped and said: the run is still handled (the
// well-formed hint beside it is signed; a run with only the malformed one
// has nothing to sign), and a TypeHintSkipped Warning names the result.
func TestHintMalformed(t *testing.T) {
	e := getEnv(t)
	const ns = "hint-malformed"
	e.namespace(t, ns)
	e.controller(t, ns)
	digest := e.pushImage(t, "hints/malformed-good")
	bad := e.pushImage(t, "hints/malformed-bad")
	e.hintTaskRun(t, ns, "mixed", hintRun{results: []pipelinev1.TaskRunResult{
		hintString("IMAGE_URL", e.reg.Ref("hints/malformed-bad")),
		hintString("IMAGE_DIGEST", "not-a-digest"),
		hintString("GOOD_IMAGE_URL", e.reg.Ref("hints/malformed-good")),
		hintString("GOOD_IMAGE_DIGEST", digest),
	}})
	e.hintTaskRun(t, ns, "only-bad", hintRun{results: []pipelinev1.TaskRunResult{
		hintString("IMAGE_URL", e.reg.Ref("hints/malformed-bad")),
		hintString("IMAGE_DIGEST", strings.TrimPrefix(bad, "sha256:")), // the hex without its algorithm
	}})

	ann := e.marked(t, "taskrun", ns, "mixed", time.Minute)
	if ann["signet.dev/signed"] != "true" || ann["signet.dev/subjects"] != "1" {
		t.Fatalf("annotations %v; want signed, the well-formed image only", ann)
	}
	_, st := e.provenanceOf(t, ann)
	if got, want := subjectsOf(st), map[string]string{e.reg.Ref("hints/malformed-good"): digest}; !maps2Equal(got, want) {
		t.Errorf("subjects %v, want %v", got, want)
	}
	if code, out := e.verifies(t, e.reg.Ref("hints/malformed-good@"+digest), false); code != 0 {
		t.Errorf("signet verify of the well-formed image: exit %d\n%s", code, out)
	}
	if s, a := e.attached(t, e.reg.Ref("hints/malformed-bad@"+bad)); s+a != 0 {
		t.Errorf("the image named with a malformed digest got %d signatures, %d attestations", s, a)
	}

	ann = e.marked(t, "taskrun", ns, "only-bad", time.Minute)
	if ann["signet.dev/signed"] != "true" || ann["signet.dev/subjects"] != "0" || !strings.Contains(ann["signet.dev/reason"], "nothing to sign") {
		t.Errorf("annotations %v; want signed=true, 0 subjects, nothing to sign", ann)
	}

	for run, want := range map[string]string{
		"mixed":    `result IMAGE_DIGEST "not-a-digest": not <algorithm>:<hex>`,
		"only-bad": `result IMAGE_DIGEST "` + strings.TrimPrefix(bad, "sha256:") + `": not <algorithm>:<hex>`,
	} {
		var evs []corev1.Event
		waitFor(t, 30*time.Second, "a TypeHintSkipped warning on "+run, func() bool {
			evs = e.events(t, ns, run)
			for _, ev := range evs {
				if ev.Type == corev1.EventTypeWarning && ev.Reason == "TypeHintSkipped" && ev.Message == want {
					return true
				}
			}
			return false
		})
		for _, ev := range evs {
			if ev.Reason == "TypeHintSkipped" && ev.Message != want {
				t.Errorf("%s: unexpected TypeHintSkipped %q", run, ev.Message)
			}
		}
	}
}
