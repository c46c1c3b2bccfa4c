package artifacts

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
)

// hexN is a digest of the given length made of one repeated digit.
func hexN(c string, n int) string { return strings.Repeat(c, n) }

var (
	shaA = hexN("a", 64)
	shaB = hexN("b", 64)
	shaC = hexN("c", 64)
	shaD = hexN("d", 64)
	sha1 = "7f2f46e1b97df36b2b82d1b1d87c81b8b3d21601"
)

func str(v string) v1.ParamValue { return *v1.NewStructuredValues(v) }

func obj(kv ...string) v1.ParamValue {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return *v1.NewObject(m)
}

func res(name string, v v1.ParamValue) v1.TaskRunResult {
	t := v1.ResultsTypeString
	switch v.Type {
	case v1.ParamTypeObject:
		t = v1.ResultsTypeObject
	case v1.ParamTypeArray:
		t = v1.ResultsTypeArray
	}
	return v1.TaskRunResult{Name: name, Type: t, Value: v}
}

func finished(name string, results ...v1.TaskRunResult) *v1.TaskRun {
	start := metav1.NewTime(time.Unix(1617011400, 0))
	end := metav1.NewTime(time.Unix(1617011415, 0))
	return &v1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)},
		Status: v1.TaskRunStatus{
			Status: duckv1.Status{Conditions: duckv1.Conditions{{Type: apis.ConditionSucceeded, Status: corev1.ConditionTrue}}},
			TaskRunStatusFields: v1.TaskRunStatusFields{
				StartTime: &start, CompletionTime: &end, Results: results,
			},
		},
	}
}

func TestImageURLAndDigest(t *testing.T) {
	f := TaskRun(finished("build",
		res("IMAGE_URL", str("registry.example.com/team/app:v1\n")),
		res("IMAGE_DIGEST", str("sha256:"+shaA)),
		res("second_IMAGE_URL", str("alpine")),
		res("second_IMAGE_DIGEST", str("sha256:"+shaB)),
	))
	want := []Image{
		{Repository: "index.docker.io/library/alpine", Digest: "sha256:" + shaB, Source: "result second_IMAGE_URL/second_IMAGE_DIGEST"},
		{Repository: "registry.example.com/team/app", Digest: "sha256:" + shaA, Source: "result IMAGE_URL/IMAGE_DIGEST"},
	}
	if !reflect.DeepEqual(f.Images, want) {
		t.Fatalf("Images = %#v\nwant %#v", f.Images, want)
	}
	if got := f.Images[1].Reference(); got != "registry.example.com/team/app@sha256:"+shaA {
		t.Errorf("Reference() = %s", got)
	}
	if len(f.Problems) != 0 || len(f.Artifacts) != 0 || len(f.Inputs) != 0 {
		t.Errorf("unexpected: %+v", f)
	}
}

func TestImagesList(t *testing.T) {
	f := TaskRun(finished("build",
		res("IMAGES", str(" gcr.io/bb@sha256:"+shaB+", gcr.io/aa@sha256:"+shaA+"\n\ngcr.io/cc:v2@sha256:"+shaC+",")),
		// The same image again by another hint is one subject, the first source kept.
		res("IMAGE_URL", str("gcr.io/aa:latest")),
		res("IMAGE_DIGEST", str("sha256:"+shaA)),
	))
	var refs, sources []string
	for _, i := range f.Images {
		refs = append(refs, i.Reference())
		sources = append(sources, i.Source)
	}
	wantRefs := []string{"gcr.io/aa@sha256:" + shaA, "gcr.io/bb@sha256:" + shaB, "gcr.io/cc@sha256:" + shaC}
	if !slices.Equal(refs, wantRefs) {
		t.Errorf("refs = %v, want %v", refs, wantRefs)
	}
	// Pairs are read before IMAGES, as Chains does.
	wantSources := []string{"result IMAGE_URL/IMAGE_DIGEST", "result IMAGES", "result IMAGES"}
	if !slices.Equal(sources, wantSources) {
		t.Errorf("sources = %v, want %v", sources, wantSources)
	}
	if len(f.Problems) != 0 {
		t.Errorf("problems: %q", f.Problems)
	}
}

func TestArtifactOutputs(t *testing.T) {
	f := TaskRun(finished("build",
		// A build artifact naming an image is an image (Chains signs it as one).
		res("img-ARTIFACT_OUTPUTS", obj("uri", "gcr.io/foo/img", "digest", "sha256:"+shaA, "isBuildArtifact", "true")),
		// Not an image reference: a subject by URI.
		res("pkg-ARTIFACT_OUTPUTS", obj("uri", "pkg:npm/left-pad@1.3.0", "digest", "sha512:"+hexN("e", 128), "isBuildArtifact", "true")),
		res("file-ARTIFACT_OUTPUTS", obj("uri", "https://example.com/app.tar.gz", "digest", "SHA256:"+shaB, "isBuildArtifact", "true")),
		// Parses as a Docker Hub image, but names no registry: an artifact.
		res("dist-ARTIFACT_OUTPUTS", obj("uri", "dist/app.tar.gz", "digest", "sha256:"+shaB, "isBuildArtifact", "true")),
		res("local-ARTIFACT_OUTPUTS", obj("uri", "localhost:5000/team/app:v1", "digest", "sha256:"+shaC, "isBuildArtifact", "true")),
		// Without isBuildArtifact "true": a byproduct in v2alpha4, a subject in older formats.
		res("plain-ARTIFACT_OUTPUTS", obj("uri", "gcr.io/foo/plain", "digest", "sha256:"+shaC)),
		res("false-ARTIFACT_OUTPUTS", obj("uri", "gcr.io/foo/false", "digest", "sha256:"+shaC, "isBuildArtifact", "false")),
		res("caps-ARTIFACT_OUTPUTS", obj("uri", "gcr.io/foo/caps", "digest", "sha256:"+shaD, "isBuildArtifact", "True")),
	))
	if want := []Image{
		{Repository: "gcr.io/foo/img", Digest: "sha256:" + shaA, Source: "result img-ARTIFACT_OUTPUTS"},
		{Repository: "localhost:5000/team/app", Digest: "sha256:" + shaC, Source: "result local-ARTIFACT_OUTPUTS"},
	}; !reflect.DeepEqual(f.Images, want) {
		t.Errorf("Images = %+v, want %+v", f.Images, want)
	}
	wantArtifacts := []Artifact{
		{URI: "dist/app.tar.gz", Digest: map[string]string{"sha256": shaB}, Source: "result dist-ARTIFACT_OUTPUTS"},
		{URI: "https://example.com/app.tar.gz", Digest: map[string]string{"sha256": shaB}, Source: "result file-ARTIFACT_OUTPUTS"},
		{URI: "pkg:npm/left-pad@1.3.0", Digest: map[string]string{"sha512": hexN("e", 128)}, Source: "result pkg-ARTIFACT_OUTPUTS"},
	}
	if !reflect.DeepEqual(f.Artifacts, wantArtifacts) {
		t.Errorf("Artifacts = %+v\nwant %+v", f.Artifacts, wantArtifacts)
	}
	wantLegacy := []Artifact{
		{URI: "gcr.io/foo/caps", Digest: map[string]string{"sha256": shaD}, Source: "result caps-ARTIFACT_OUTPUTS"},
		{URI: "gcr.io/foo/false", Digest: map[string]string{"sha256": shaC}, Source: "result false-ARTIFACT_OUTPUTS"},
		{URI: "gcr.io/foo/plain", Digest: map[string]string{"sha256": shaC}, Source: "result plain-ARTIFACT_OUTPUTS"},
	}
	if !reflect.DeepEqual(f.Legacy, wantLegacy) {
		t.Errorf("Legacy = %+v\nwant %+v", f.Legacy, wantLegacy)
	}
	wantProblems := []string{`result caps-ARTIFACT_OUTPUTS: isBuildArtifact "True" is not "true", so it is not a subject`}
	if !slices.Equal(f.Problems, wantProblems) {
		t.Errorf("Problems = %q, want %q", f.Problems, wantProblems)
	}
}

// ARTIFACT_URI/ARTIFACT_DIGEST pairs are byproducts in v2alpha4 (Chains'
// docs/slsa-provenance.md): never subjects, offered as Legacy.
func TestArtifactURIIsLegacy(t *testing.T) {
	f := TaskRun(finished("build",
		res("ARTIFACT_URI", str("https://example.com/app.tar.gz")),
		res("ARTIFACT_DIGEST", str("sha256:"+shaA)),
		res("lib_ARTIFACT_URI", str("pkg:maven/org.example/lib@1.0")),
		res("lib_ARTIFACT_DIGEST", str("sha1:"+sha1)),
		// Already a v2alpha4 subject: not repeated in Legacy.
		res("x-ARTIFACT_OUTPUTS", obj("uri", "https://example.com/app.tar.gz", "digest", "sha256:"+shaA, "isBuildArtifact", "true")),
	))
	if len(f.Images) != 0 {
		t.Errorf("Images = %+v", f.Images)
	}
	wantArtifacts := []Artifact{{URI: "https://example.com/app.tar.gz", Digest: map[string]string{"sha256": shaA}, Source: "result x-ARTIFACT_OUTPUTS"}}
	if !reflect.DeepEqual(f.Artifacts, wantArtifacts) {
		t.Errorf("Artifacts = %+v", f.Artifacts)
	}
	wantLegacy := []Artifact{{URI: "pkg:maven/org.example/lib@1.0", Digest: map[string]string{"sha1": sha1}, Source: "result lib_ARTIFACT_URI/lib_ARTIFACT_DIGEST"}}
	if !reflect.DeepEqual(f.Legacy, wantLegacy) {
		t.Errorf("Legacy = %+v", f.Legacy)
	}
}

func TestInputs(t *testing.T) {
	tr := finished("build",
		res("src-ARTIFACT_INPUTS", obj("uri", "https://github.com/tektoncd/pipeline", "digest", "sha1:"+sha1)),
		res("CHAINS-GIT_COMMIT", str(hexN("1", 40))),
	)
	tr.Status.TaskSpec = &v1.TaskSpec{Params: v1.ParamSpecs{
		{Name: "CHAINS-GIT_URL", Default: v1.NewStructuredValues("https://default.example.com/repo")},
		{Name: "CHAINS-GIT_COMMIT", Default: v1.NewStructuredValues(hexN("0", 40))},
	}}
	tr.Spec.Params = v1.Params{{Name: "CHAINS-GIT_URL", Value: str("https://github.com/acme/app")}}
	tr.Status.Steps = []v1.StepState{
		{Name: "clone", Results: []v1.TaskRunStepResult{
			res("CHAINS-GIT_URL", str("git+https://github.com/acme/lib.git")),
			res("CHAINS-GIT_COMMIT", str(hexN("2", 64))),
			res("base-ARTIFACT_INPUTS", obj("uri", "oci://gcr.io/base", "digest", "sha256:"+shaA)),
		}},
	}
	tr.Status.Artifacts = &v1.Artifacts{Inputs: []v1.Artifact{{Name: "source", Values: []v1.ArtifactValue{
		{Uri: "pkg:github/acme/tool@v1", Digest: map[v1.Algorithm]string{"sha256": shaB, "sha1": sha1}},
	}}}}
	f := TaskRun(tr)
	want := []Artifact{
		// Step-level first (Chains' FromStepActionsResults): git, then ARTIFACT_INPUTS.
		{URI: "git+https://github.com/acme/lib.git", Digest: map[string]string{"sha256": hexN("2", 64)}, Source: "step clone/result CHAINS-GIT_URL, result CHAINS-GIT_COMMIT", Step: "clone"},
		{URI: "oci://gcr.io/base", Digest: map[string]string{"sha256": shaA}, Source: "step clone/result base-ARTIFACT_INPUTS", Step: "clone"},
		// Then the TaskRun's: git (param overrides the default, result overrides both), ARTIFACT_INPUTS.
		{URI: "git+https://github.com/acme/app.git", Digest: map[string]string{"sha1": hexN("1", 40)}, Source: "param CHAINS-GIT_URL, result CHAINS-GIT_COMMIT"},
		{URI: "https://github.com/tektoncd/pipeline", Digest: map[string]string{"sha1": sha1}, Source: "result src-ARTIFACT_INPUTS"},
		// Then status.artifacts inputs, every digest kept.
		{URI: "pkg:github/acme/tool@v1", Digest: map[string]string{"sha256": shaB, "sha1": sha1}, Source: `status.artifacts input "source"`},
	}
	if !reflect.DeepEqual(f.Inputs, want) {
		t.Errorf("Inputs =\n%s\nwant\n%s", dump(f.Inputs), dump(want))
	}
	if len(f.Problems) != 0 || len(f.Images)+len(f.Artifacts) != 0 {
		t.Errorf("unexpected: %+v", f)
	}
}

func dump(as []Artifact) string {
	var b strings.Builder
	for _, a := range as {
		fmt.Fprintf(&b, "  %s %v %q step=%q\n", a.URI, a.Digest, a.Source, a.Step)
	}
	return b.String()
}

func TestStepResults(t *testing.T) {
	tr := finished("build", res("IMAGE_URL", str("gcr.io/task/image")), res("IMAGE_DIGEST", str("sha256:"+shaA)))
	tr.Status.Steps = []v1.StepState{
		{Name: "s1", Results: []v1.TaskRunStepResult{
			res("IMAGE_URL", str("gcr.io/step/image")),
			res("IMAGE_DIGEST", str("sha256:"+shaB)),
			res("out-ARTIFACT_OUTPUTS", obj("uri", "gcr.io/step/artifact", "digest", "sha256:"+shaC, "isBuildArtifact", "true")),
			// Step results are only v2alpha4's: no legacy subjects from them.
			res("plain-ARTIFACT_OUTPUTS", obj("uri", "gcr.io/step/plain", "digest", "sha256:"+shaC)),
			res("x_IMAGE_URL", str("gcr.io/half")),
		}},
		// A pair is read within one step: halves in different steps do not pair.
		{Name: "s2", Results: []v1.TaskRunStepResult{res("x_IMAGE_DIGEST", str("sha256:"+shaD))}},
	}
	f := TaskRun(tr)
	var got []string
	for _, i := range f.Images {
		got = append(got, i.Reference()+" "+i.Source)
	}
	want := []string{
		"gcr.io/step/artifact@sha256:" + shaC + " step s1/result out-ARTIFACT_OUTPUTS",
		"gcr.io/step/image@sha256:" + shaB + " step s1/result IMAGE_URL/IMAGE_DIGEST",
		"gcr.io/task/image@sha256:" + shaA + " result IMAGE_URL/IMAGE_DIGEST",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Images = %q\nwant %q", got, want)
	}
	if len(f.Legacy) != 0 {
		t.Errorf("Legacy = %+v", f.Legacy)
	}
	wantProblems := []string{
		`step s1/result x_IMAGE_URL "gcr.io/half": no x_IMAGE_DIGEST result to go with it`,
		`step s2/result x_IMAGE_DIGEST "sha256:` + shaD + `": no x_IMAGE_URL result to go with it`,
	}
	if !slices.Equal(f.Problems, wantProblems) {
		t.Errorf("Problems = %q\nwant %q", f.Problems, wantProblems)
	}
}

func TestStatusArtifacts(t *testing.T) {
	tr := finished("build")
	tr.Status.Artifacts = &v1.Artifacts{Outputs: []v1.Artifact{
		{Name: "binary", BuildOutput: true, Values: []v1.ArtifactValue{
			{Uri: "pkg:generic/app@1.0", Digest: map[v1.Algorithm]string{"sha256": shaA}},
			{Uri: "pkg:generic/app-docs@1.0", Digest: map[v1.Algorithm]string{"sha256": "nothex"}},
		}},
		{Name: "log", Values: []v1.ArtifactValue{{Uri: "pkg:generic/log", Digest: map[v1.Algorithm]string{"sha256": shaB}}}},
		// The same URI again with another algorithm besides: one subject, digests merged.
		{Name: "again", BuildOutput: true, Values: []v1.ArtifactValue{
			{Uri: "pkg:generic/app@1.0", Digest: map[v1.Algorithm]string{"sha256": shaA, "sha512": hexN("f", 128)}},
		}},
		// Same URI, another sha256: another subject.
		{Name: "rebuilt", BuildOutput: true, Values: []v1.ArtifactValue{
			{Uri: "pkg:generic/app@1.0", Digest: map[v1.Algorithm]string{"sha256": shaC}},
			{Uri: "", Digest: map[v1.Algorithm]string{"sha256": shaC}},
			{Uri: "pkg:generic/nodigest"},
		}},
	}}
	f := TaskRun(tr)
	want := []Artifact{
		{URI: "pkg:generic/app@1.0", Digest: map[string]string{"sha256": shaA, "sha512": hexN("f", 128)}, Source: `status.artifacts output "binary"`},
		{URI: "pkg:generic/app@1.0", Digest: map[string]string{"sha256": shaC}, Source: `status.artifacts output "rebuilt"`},
	}
	if !reflect.DeepEqual(f.Artifacts, want) {
		t.Errorf("Artifacts =\n%s\nwant\n%s", dump(f.Artifacts), dump(want))
	}
	wantProblems := []string{
		`status.artifacts output "binary" value 1 "pkg:generic/app-docs@1.0" digest "sha256:nothex": a sha256 digest is 64 lower-case hex digits`,
		`status.artifacts output "rebuilt" value 1 uri "": empty`,
		`status.artifacts output "rebuilt" value 2 "pkg:generic/nodigest": no digest`,
	}
	if !slices.Equal(f.Problems, wantProblems) {
		t.Errorf("Problems = %q\nwant %q", f.Problems, wantProblems)
	}
}

func TestMalformedHints(t *testing.T) {
	long := "gcr.io/" + strings.Repeat("a", MaxValueLen)
	for _, tc := range []struct {
		name    string
		results []v1.TaskRunResult
		want    string
	}{
		{"digest not alg:hex", []v1.TaskRunResult{res("IMAGE_URL", str("gcr.io/app")), res("IMAGE_DIGEST", str("abc"))},
			`result IMAGE_DIGEST "abc": not <algorithm>:<hex>`},
		{"image digest not sha256", []v1.TaskRunResult{res("IMAGE_URL", str("gcr.io/app")), res("IMAGE_DIGEST", str("sha512:"+hexN("a", 128)))},
			`result IMAGE_DIGEST "sha512:` + hexN("a", 73) + `"…: an image digest is sha256, not "sha512"`},
		{"image digest upper-case hex", []v1.TaskRunResult{res("IMAGE_URL", str("gcr.io/app")), res("IMAGE_DIGEST", str("sha256:"+strings.ToUpper(shaA)))},
			`result IMAGE_DIGEST "sha256:` + strings.ToUpper(shaA) + `": a sha256 digest is 64 lower-case hex digits`},
		{"image digest short", []v1.TaskRunResult{res("IMAGE_URL", str("gcr.io/app")), res("IMAGE_DIGEST", str("sha256:abc"))},
			`result IMAGE_DIGEST "sha256:abc": a sha256 digest is 64 lower-case hex digits`},
		{"bad image reference", []v1.TaskRunResult{res("IMAGE_URL", str("gcr.io/Upper/Case")), res("IMAGE_DIGEST", str("sha256:"+shaA))},
			`result IMAGE_URL "gcr.io/Upper/Case": not an image reference: `},
		{"url with digest", []v1.TaskRunResult{res("IMAGE_URL", str("gcr.io/app@sha256:"+shaB)), res("IMAGE_DIGEST", str("sha256:"+shaA))},
			`result IMAGE_URL "gcr.io/app@sha256:` + shaB[:62] + `"…: already has a digest; name the repository only`},
		{"url scheme", []v1.TaskRunResult{res("IMAGE_URL", str("https://example.com/app")), res("IMAGE_DIGEST", str("sha256:"+shaA))},
			`result IMAGE_URL "https://example.com/app": not an image reference: a URL, not <registry>/<repository>`},
		{"overlong url", []v1.TaskRunResult{res("IMAGE_URL", str(long)), res("IMAGE_DIGEST", str("sha256:"+shaA))},
			`result IMAGE_URL "gcr.io/` + strings.Repeat("a", 73) + `"…: longer than 2048 bytes`},
		{"pair half a list", []v1.TaskRunResult{res("IMAGE_URL", *v1.NewStructuredValues("a", "b"))},
			`result IMAGE_URL: an array, not a string`},
		{"IMAGES without digest", []v1.TaskRunResult{res("IMAGES", str("gcr.io/app:latest"))},
			`result IMAGES entry "gcr.io/app:latest": not <image>@sha256:<hex>`},
		{"IMAGES bad digest", []v1.TaskRunResult{res("IMAGES", str("gcr.io/app@md5:abc"))},
			`result IMAGES entry "gcr.io/app@md5:abc": an image digest is sha256, not "md5"`},
		{"IMAGES an object", []v1.TaskRunResult{res("IMAGES", obj("a", "b"))},
			`result IMAGES: an object, not a string`},
		{"outputs not object", []v1.TaskRunResult{res("x-ARTIFACT_OUTPUTS", str("gcr.io/app"))},
			`result x-ARTIFACT_OUTPUTS: a string, not an object with uri and digest`},
		{"outputs no uri", []v1.TaskRunResult{res("x-ARTIFACT_OUTPUTS", obj("digest", "sha256:"+shaA, "isBuildArtifact", "true"))},
			`result x-ARTIFACT_OUTPUTS: uri "": empty`},
		{"outputs no digest", []v1.TaskRunResult{res("x-ARTIFACT_OUTPUTS", obj("uri", "gcr.io/app", "isBuildArtifact", "true"))},
			`result x-ARTIFACT_OUTPUTS: no digest`},
		{"outputs empty digest hex", []v1.TaskRunResult{res("x-ARTIFACT_OUTPUTS", obj("uri", "def", "digest", "sha256:", "isBuildArtifact", "true"))},
			`result x-ARTIFACT_OUTPUTS: digest "sha256:": a sha256 digest is 64 lower-case hex digits`},
		{"outputs unknown algorithm", []v1.TaskRunResult{res("x-ARTIFACT_OUTPUTS", obj("uri", "a", "digest", "md5:"+hexN("a", 32), "isBuildArtifact", "true"))},
			`result x-ARTIFACT_OUTPUTS: digest "md5:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": unsupported algorithm "md5" (want sha1, sha256, sha384 or sha512)`},
		{"outputs uri with space", []v1.TaskRunResult{res("x-ARTIFACT_OUTPUTS", obj("uri", "a b", "digest", "sha256:"+shaA, "isBuildArtifact", "true"))},
			`result x-ARTIFACT_OUTPUTS: uri "a b": contains spaces or control characters`},
		{"inputs sha1 short", []v1.TaskRunResult{res("x-ARTIFACT_INPUTS", obj("uri", "https://github.com/a/b", "digest", "sha1:abc"))},
			`result x-ARTIFACT_INPUTS: digest "sha1:abc": a sha1 digest is 40 lower-case hex digits`},
		{"inputs two colons", []v1.TaskRunResult{res("x-ARTIFACT_INPUTS", obj("uri", "https://github.com/a/b", "digest", "sha1:a:b"))},
			`result x-ARTIFACT_INPUTS: digest "sha1:a:b": not <algorithm>:<hex>`},
		{"artifact digest missing", []v1.TaskRunResult{res("ARTIFACT_URI", str("https://example.com/f"))},
			`result ARTIFACT_URI "https://example.com/f": no ARTIFACT_DIGEST result to go with it`},
		{"git commit not hex", []v1.TaskRunResult{res("CHAINS-GIT_URL", str("https://github.com/a/b")), res("CHAINS-GIT_COMMIT", str("main"))},
			`result CHAINS-GIT_COMMIT "main": not a commit ID (40 or 64 lower-case hex digits)`},
		{"git url missing", []v1.TaskRunResult{res("CHAINS-GIT_COMMIT", str(sha1))},
			`result CHAINS-GIT_COMMIT "` + sha1 + `": no CHAINS-GIT_URL to go with it`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := TaskRun(finished("build", tc.results...))
			if len(f.Images)+len(f.Artifacts)+len(f.Inputs)+len(f.Legacy) != 0 {
				t.Errorf("a malformed hint was used: %+v", f)
			}
			if len(f.Problems) != 1 || !strings.HasPrefix(f.Problems[0], tc.want) {
				t.Errorf("Problems = %q, want one starting %q", f.Problems, tc.want)
			}
		})
	}
}

func TestDigestAlgorithms(t *testing.T) {
	for alg, n := range map[string]int{"sha1": 40, "sha256": 64, "sha384": 96, "sha512": 128} {
		f := TaskRun(finished("build", res("x-ARTIFACT_OUTPUTS", obj("uri", "pkg:generic/x", "digest", " "+strings.ToUpper(alg)+" : "+hexN("9", n), "isBuildArtifact", "true"))))
		want := []Artifact{{URI: "pkg:generic/x", Digest: map[string]string{alg: hexN("9", n)}, Source: "result x-ARTIFACT_OUTPUTS"}}
		if !reflect.DeepEqual(f.Artifacts, want) || len(f.Problems) != 0 {
			t.Errorf("%s: Artifacts = %+v, Problems = %q", alg, f.Artifacts, f.Problems)
		}
		// One digit short is refused.
		f = TaskRun(finished("build", res("x-ARTIFACT_OUTPUTS", obj("uri", "pkg:generic/x", "digest", alg+":"+hexN("9", n-1), "isBuildArtifact", "true"))))
		if len(f.Artifacts) != 0 || len(f.Problems) != 1 {
			t.Errorf("%s short: Artifacts = %+v, Problems = %q", alg, f.Artifacts, f.Problems)
		}
	}
}

func TestLimits(t *testing.T) {
	var list []string
	for i := range MaxSubjects + 5 {
		list = append(list, fmt.Sprintf("gcr.io/img%d@sha256:%s", i, shaA))
	}
	bad := []v1.TaskRunResult{res("IMAGES", str(strings.Join(list, ",")))}
	for i := range maxProblems + 3 {
		bad = append(bad, res(fmt.Sprintf("bad%d-ARTIFACT_INPUTS", i), str("x")))
	}
	f := TaskRun(finished("build", bad...))
	if len(f.Images) != MaxSubjects {
		t.Errorf("%d images, want %d", len(f.Images), MaxSubjects)
	}
	if n := len(f.Problems); n != maxProblems+2 {
		t.Fatalf("%d problems, want %d", n, maxProblems+2)
	}
	if got := f.Problems[maxProblems:]; !slices.Equal(got, []string{"5 more subjects than the limit of 1000 ignored", "3 more problems not listed"}) {
		t.Errorf("last problems = %q", got)
	}
}

func TestFailedRun(t *testing.T) {
	tr := finished("build", res("IMAGE_URL", str("gcr.io/app")), res("IMAGE_DIGEST", str("sha256:"+shaA)))
	tr.Status.Conditions = duckv1.Conditions{{Type: apis.ConditionSucceeded, Status: corev1.ConditionFalse, Reason: "Failed"}}
	if f := TaskRun(tr); len(f.Images) != 1 {
		t.Errorf("a failed run's images are still read: %+v", f)
	}
	if f := TaskRun(nil); f.Images != nil || f.Problems != nil {
		t.Errorf("nil run: %+v", f)
	}
}

// pipelineRun has the shape of Chains' testdata/slsa-v2alpha4/pipelinerun1.json:
// tasks git-clone then build, results re-exporting an image and more.
func pipelineRun() *v1.PipelineRun {
	start := metav1.NewTime(time.Unix(1617011400, 0))
	end := metav1.NewTime(time.Unix(1617011415, 0))
	return &v1.PipelineRun{
		ObjectMeta: metav1.ObjectMeta{Name: "pipelinerun-build", Namespace: "ns", UID: "pr-uid"},
		Spec:       v1.PipelineRunSpec{Params: v1.Params{{Name: "CHAINS-GIT_URL", Value: str("https://git.example.com/pipeline")}}},
		Status: v1.PipelineRunStatus{
			Status: duckv1.Status{Conditions: duckv1.Conditions{{Type: apis.ConditionSucceeded, Status: corev1.ConditionTrue}}},
			PipelineRunStatusFields: v1.PipelineRunStatusFields{
				StartTime: &start, CompletionTime: &end,
				PipelineSpec: &v1.PipelineSpec{
					Tasks:   []v1.PipelineTask{{Name: "git-clone"}, {Name: "build"}},
					Finally: []v1.PipelineTask{{Name: "notify"}},
				},
				ChildReferences: []v1.ChildStatusReference{
					{TypeMeta: runtimeTaskRun, Name: "pr-build", PipelineTaskName: "build"},
					{TypeMeta: runtimeTaskRun, Name: "pr-git-clone", PipelineTaskName: "git-clone"},
					{TypeMeta: runtimeTaskRun, Name: "pr-notify", PipelineTaskName: "notify"},
				},
				Results: []v1.PipelineRunResult{
					{Name: "IMAGE_URL", Value: str("gcr.io/my/image")},
					{Name: "IMAGE_DIGEST", Value: str("sha256:" + shaA)},
					{Name: "img-ARTIFACT_INPUTS", Value: obj("uri", "abc", "digest", "sha256:"+shaD)},
					{Name: "CHAINS-GIT_COMMIT", Value: str(hexN("3", 40))},
					{Name: "IMAGES", Value: str("gcr.io/pr/extra@sha256:" + shaC)},
				},
			},
		},
	}
}

var runtimeTaskRun = runtime.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "TaskRun"}

func children() []*v1.TaskRun {
	build := finished("pr-build",
		res("IMAGE_URL", str("gcr.io/my/image")),
		res("IMAGE_DIGEST", str("sha256:"+shaA)),
		res("CHAINS-GIT_URL", str("https://git.example.com/build")),
		res("CHAINS-GIT_COMMIT", str(hexN("2", 40))),
	)
	build.Status.Steps = []v1.StepState{{Name: "s", Results: []v1.TaskRunStepResult{
		res("tool-ARTIFACT_INPUTS", obj("uri", "https://github.com/tektoncd/pipeline", "digest", "sha1:"+sha1)),
	}}}
	clone := finished("pr-git-clone",
		res("src-ARTIFACT_OUTPUTS", obj("uri", "pkg:generic/src.tar", "digest", "sha256:"+shaB, "isBuildArtifact", "true")),
		res("CHAINS-GIT_URL", str("https://git.example.com/clone")),
		res("CHAINS-GIT_COMMIT", str(hexN("1", 40))),
		res("cache_IMAGE_URL", str("gcr.io/cache/img")),
	)
	notify := finished("pr-notify", res("IMAGES", str("gcr.io/never@sha256:"+shaD)))
	notify.Status.CompletionTime = nil // did not run
	return []*v1.TaskRun{build, clone, notify}
}

func TestPipelineRun(t *testing.T) {
	stranger := finished("other-run", res("IMAGES", str("gcr.io/evil@sha256:"+shaD)))
	f := PipelineRun(pipelineRun(), append(children(), stranger))

	var images []string
	for _, i := range f.Images {
		images = append(images, i.Reference()+" "+i.Source)
	}
	wantImages := []string{
		// Re-exported by the PipelineRun: one subject, named by the child that made it.
		"gcr.io/my/image@sha256:" + shaA + " taskrun pr-build/result IMAGE_URL/IMAGE_DIGEST",
		"gcr.io/pr/extra@sha256:" + shaC + " result IMAGES",
	}
	if !slices.Equal(images, wantImages) {
		t.Errorf("Images = %q\nwant %q", images, wantImages)
	}
	wantArtifacts := []Artifact{{URI: "pkg:generic/src.tar", Digest: map[string]string{"sha256": shaB}, Source: "taskrun pr-git-clone/result src-ARTIFACT_OUTPUTS"}}
	if !reflect.DeepEqual(f.Artifacts, wantArtifacts) {
		t.Errorf("Artifacts = %+v", f.Artifacts)
	}
	// Chains' order (resolved_dependencies.PipelineRun, material.FromPipelineParamsAndResults):
	// children's step inputs, the PipelineRun's ARTIFACT_INPUTS, each child's
	// git and inputs in pipeline order, the PipelineRun's git.
	wantInputs := []Artifact{
		{URI: "https://github.com/tektoncd/pipeline", Digest: map[string]string{"sha1": sha1}, Source: "taskrun pr-build/step s/result tool-ARTIFACT_INPUTS", Step: "s"},
		{URI: "abc", Digest: map[string]string{"sha256": shaD}, Source: "result img-ARTIFACT_INPUTS"},
		{URI: "git+https://git.example.com/clone.git", Digest: map[string]string{"sha1": hexN("1", 40)}, Source: "taskrun pr-git-clone/result CHAINS-GIT_URL, result CHAINS-GIT_COMMIT"},
		{URI: "git+https://git.example.com/build.git", Digest: map[string]string{"sha1": hexN("2", 40)}, Source: "taskrun pr-build/result CHAINS-GIT_URL, result CHAINS-GIT_COMMIT"},
		{URI: "git+https://git.example.com/pipeline.git", Digest: map[string]string{"sha1": hexN("3", 40)}, Source: "param CHAINS-GIT_URL, result CHAINS-GIT_COMMIT"},
	}
	if !reflect.DeepEqual(f.Inputs, wantInputs) {
		t.Errorf("Inputs =\n%s\nwant\n%s", dump(f.Inputs), dump(wantInputs))
	}
	wantProblems := []string{
		"TaskRun other-run is not in the PipelineRun's status.childReferences; left out",
		`taskrun pr-git-clone/result cache_IMAGE_URL "gcr.io/cache/img": no cache_IMAGE_DIGEST result to go with it`,
	}
	if !slices.Equal(f.Problems, wantProblems) {
		t.Errorf("Problems = %q", f.Problems)
	}
}

func TestChildren(t *testing.T) {
	pr := pipelineRun()
	kids := children()
	foreign := finished("pr-git-clone-2")
	foreign.Namespace = "elsewhere"
	pr.Status.ChildReferences = append(pr.Status.ChildReferences, v1.ChildStatusReference{TypeMeta: runtimeTaskRun, Name: "pr-missing", PipelineTaskName: "build"})
	got, problems := Children(pr, append(kids, nil, foreign))
	var names []string
	for _, tr := range got {
		names = append(names, tr.Name)
	}
	// Pipeline order, not the order given or listed; notify did not run.
	if want := []string{"pr-git-clone", "pr-build"}; !slices.Equal(names, want) {
		t.Errorf("Children = %v, want %v", names, want)
	}
	wantProblems := []string{
		"TaskRun elsewhere/pr-git-clone-2 is in another namespace than PipelineRun ns/pipelinerun-build; left out",
		"TaskRun pr-missing (pipeline task build) was not given; its results are left out",
	}
	if !slices.Equal(problems, wantProblems) {
		t.Errorf("problems = %q", problems)
	}
	// Without a resolved pipeline spec Chains reads no child.
	pr.Status.PipelineSpec = nil
	if got, _ := Children(pr, kids); len(got) != 0 {
		t.Errorf("Children without pipelineSpec = %v", got)
	}
}

// The subjects Chains' v2alpha4 tests expect for its taskrun1.json and
// taskrun-multiple-subjects.json, from equivalent objects.
func TestChainsTaskRunSubjects(t *testing.T) {
	const (
		d1 = "d31cc8328054de2bd93735f9cbf0ccfb6e0ee8f4c4225da7d8f8cb3900eaf466"
		d2 = "827521c857fdcd4374f4da5442fbae2edb01e7fbae285c3ec15673d4c1daecb7"
	)
	tr := finished("taskrun-build", res("IMAGE_DIGEST", str("sha256:"+d1)), res("IMAGE_URL", str("gcr.io/my/image")))
	tr.Status.Steps = []v1.StepState{
		{Name: "step1", Results: []v1.TaskRunStepResult{res("step1_result1", str("result-value"))}},
		{Name: "step2", Results: []v1.TaskRunStepResult{res("step1_result1-ARTIFACT_OUTPUTS", obj("uri", "gcr.io/my/image/fromstep2", "digest", "sha256:"+d2))}},
		{Name: "step3", Results: []v1.TaskRunStepResult{res("step3_result1-ARTIFACT_OUTPUTS", obj("uri", "gcr.io/my/image/fromstep3", "digest", "sha256:"+d2, "isBuildArtifact", "true"))}},
	}
	f := TaskRun(tr)
	var got []string
	for _, i := range f.Images {
		got = append(got, i.Reference())
	}
	if want := []string{"gcr.io/my/image/fromstep3@sha256:" + d2, "gcr.io/my/image@sha256:" + d1}; !slices.Equal(got, want) {
		t.Errorf("taskrun1 subjects = %q, want %q", got, want)
	}
	if len(f.Artifacts)+len(f.Legacy) != 0 || len(f.Problems) != 0 {
		t.Errorf("taskrun1: %+v", f)
	}

	f = TaskRun(finished("multi",
		res("IMAGES", str("gcr.io/myimage1@sha256:db546e77d11cf34199d965d28b1107f98bcbb7630182b7d847cc31d5d21b47b0,gcr.io/myimage3@sha256:8d14f5ded713f263742d371279586b264bde42ee8de97b808d1f5e205f376ade")),
		res("result1_ARTIFACT_OUTPUTS", obj("uri", "gcr.io/foo/bar", "digest", "sha256:d4b63d3e24d6eef04a6dc0795cf8a73470688803d97c52cffa3c8d4efd3397b6", "isBuildArtifact", "true")),
		res("result2_ARTIFACT_OUTPUTS", obj("uri", "gcr.io/myimage2", "digest", "sha256:9f036c6170dd7aba07e45cf2fe414c7ca792e5ede3bc3a78609e3aab4fa2ff2d", "isBuildArtifact", "true")),
	))
	got = nil
	for _, i := range f.Images {
		got = append(got, i.Reference())
	}
	want := []string{
		"gcr.io/foo/bar@sha256:d4b63d3e24d6eef04a6dc0795cf8a73470688803d97c52cffa3c8d4efd3397b6",
		"gcr.io/myimage1@sha256:db546e77d11cf34199d965d28b1107f98bcbb7630182b7d847cc31d5d21b47b0",
		"gcr.io/myimage2@sha256:9f036c6170dd7aba07e45cf2fe414c7ca792e5ede3bc3a78609e3aab4fa2ff2d",
		"gcr.io/myimage3@sha256:8d14f5ded713f263742d371279586b264bde42ee8de97b808d1f5e205f376ade",
	}
	if !slices.Equal(got, want) {
		t.Errorf("multiple subjects = %q\nwant %q", got, want)
	}
}
