package provenance

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	"github.com/tektoncd/pipeline/pkg/apis/config"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"google.golang.org/protobuf/encoding/protojson"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"

	"github.com/signet-dev/signet/tekton/artifacts"
)

// Digests from Chains' testdata/slsa-v2alpha4; Chains' short fake sha1s
// ("ab123", commit "taskrun") are made 40 hex digits, since this predicate
// is validated and hints are checked.
const (
	img1 = "d4b63d3e24d6eef04a6dc0795cf8a73470688803d97c52cffa3c8d4efd3397b6"
	img2 = "4d6dd704ef58cb214dd826519929e92a978a57cdee43693006139c0080fd6fac"
	img3 = "f1a8b8549c179f41e27ff3db0fe1a1793e4b109da46586501a8343637b1d0478"
	d1   = "d31cc8328054de2bd93735f9cbf0ccfb6e0ee8f4c4225da7d8f8cb3900eaf466"
	d2   = "827521c857fdcd4374f4da5442fbae2edb01e7fbae285c3ec15673d4c1daecb7"

	refBuild     = "ab12300000000000000000000000000000000000"
	refCatalog   = "c123000000000000000000000000000000000000"
	refPipeline  = "28b1230000000000000000000000000000000000"
	commitTR     = "7a5c000000000000000000000000000000000000"
	commitTask   = "7ade000000000000000000000000000000000000"
	commitPR     = "abcd000000000000000000000000000000000000"
	pipelineSHA1 = "7f2f46e1b97df36b2b82d1b1d87c81b8b3d21601"
)

var (
	started  = metav1.NewTime(time.Date(2021, 3, 29, 9, 50, 0, 0, time.UTC))
	finished = metav1.NewTime(time.Date(2021, 3, 29, 9, 50, 15, 0, time.UTC))
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
	return v1.TaskRunResult{Name: name, Value: v}
}

func succeeded(ok bool) duckv1.Status {
	c := apis.Condition{Type: apis.ConditionSucceeded, Status: corev1.ConditionTrue, Reason: "Succeeded"}
	if !ok {
		c.Status, c.Reason = corev1.ConditionFalse, "Failed"
	}
	return duckv1.Status{Conditions: duckv1.Conditions{c}}
}

// taskRun1 is Chains' testdata/slsa-v2alpha4/taskrun1.json as a v1 object.
func taskRun1() *v1.TaskRun {
	return &v1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{
			Name:   "taskrun-build",
			Labels: map[string]string{"tekton.dev/pipelineTask": "build"},
			UID:    "abhhf-12354-asjsdbjs23-3435353n",
		},
		Spec: v1.TaskRunSpec{
			Params: v1.Params{
				{Name: "IMAGE", Value: str("test.io/test/image")},
				{Name: "CHAINS-GIT_COMMIT", Value: str(commitTR)},
				{Name: "CHAINS-GIT_URL", Value: str("https://git.test.com")},
			},
			TaskRef:            &v1.TaskRef{Name: "build", Kind: "Task"},
			ServiceAccountName: "default",
		},
		Status: v1.TaskRunStatus{
			Status: succeeded(true),
			TaskRunStatusFields: v1.TaskRunStatusFields{
				StartTime: &started, CompletionTime: &finished, PodName: "test-pod-name",
				Steps: []v1.StepState{
					{Name: "step1", Container: "step-step1", ImageID: "docker-pullable://gcr.io/test1/test1@sha256:" + img1,
						Results: []v1.TaskRunStepResult{res("step1_result1", str("result-value"))}},
					{Name: "step2", Container: "step-step2", ImageID: "docker-pullable://gcr.io/test2/test2@sha256:" + img2,
						Results: []v1.TaskRunStepResult{res("step1_result1-ARTIFACT_OUTPUTS", obj("uri", "gcr.io/my/image/fromstep2", "digest", "sha256:"+d2))}},
					{Name: "step3", Container: "step-step3", ImageID: "docker-pullable://gcr.io/test3/test3@sha256:" + img3,
						Results: []v1.TaskRunStepResult{res("step3_result1-ARTIFACT_OUTPUTS", obj("uri", "gcr.io/my/image/fromstep3", "digest", "sha256:"+d2, "isBuildArtifact", "true"))}},
				},
				Results: []v1.TaskRunResult{
					res("IMAGE_DIGEST", str("sha256:"+d1)),
					res("IMAGE_URL", str("gcr.io/my/image")),
				},
				TaskSpec: &v1.TaskSpec{
					Params: v1.ParamSpecs{
						{Name: "IMAGE", Type: "string"},
						{Name: "CHAINS-GIT_COMMIT", Type: "string", Default: v1.NewStructuredValues(commitTask)},
						{Name: "CHAINS-GIT_URL", Type: "string", Default: v1.NewStructuredValues("https://defaultgit.test.com")},
					},
					Steps: []v1.Step{{Name: "step1"}, {Name: "step2"}, {Name: "step3"}},
				},
				Provenance: &v1.Provenance{
					RefSource:    &v1.RefSource{URI: "git+https://github.com/test", Digest: map[string]string{"sha1": refBuild}, EntryPoint: "build.yaml"},
					FeatureFlags: &config.FeatureFlags{EnableAPIFields: "beta", ResultExtractionMethod: "termination-message"},
				},
			},
		},
	}
}

// gitClone is Chains' testdata/slsa-v2alpha4/taskrun2.json.
func gitClone() *v1.TaskRun {
	return &v1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{
			Name:   "git-clone",
			Labels: map[string]string{"tekton.dev/pipelineTask": "git-clone"},
			UID:    "abhhf-12354-asjsdbjs23-3435353n",
		},
		Spec: v1.TaskRunSpec{
			Params:             v1.Params{{Name: "url", Value: str("https://git.test.com")}, {Name: "revision", Value: str("")}},
			TaskRef:            &v1.TaskRef{Name: "git-clone", Kind: "Task"},
			ServiceAccountName: "default",
		},
		Status: v1.TaskRunStatus{
			Status: succeeded(true),
			TaskRunStatusFields: v1.TaskRunStatusFields{
				StartTime: &started, CompletionTime: &finished,
				Steps: []v1.StepState{{Name: "step1", ImageID: "docker-pullable://gcr.io/test1/test1@sha256:" + img1,
					Results: []v1.TaskRunStepResult{res("step1_result1-ARTIFACT_INPUTS", obj("uri", "https://github.com/tektoncd/pipeline", "digest", "sha1:"+pipelineSHA1))}}},
				Results: []v1.TaskRunResult{
					res("some-uri_DIGEST", str("sha256:"+img1)),
					res("some-uri", str("pkg:deb/debian/curl@7.50.3-1")),
				},
				TaskSpec: &v1.TaskSpec{Params: v1.ParamSpecs{
					{Name: "CHAINS-GIT_COMMIT", Type: "string", Default: v1.NewStructuredValues(commitTask)},
					{Name: "CHAINS-GIT_URL", Type: "string", Default: v1.NewStructuredValues("https://git.test.com")},
				}},
				Provenance: &v1.Provenance{RefSource: &v1.RefSource{URI: "git+https://github.com/catalog", Digest: map[string]string{"sha1": refCatalog}, EntryPoint: "git-clone.yaml"}},
			},
		},
	}
}

var taskRunType = runtime.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "TaskRun"}

// pipelineRun1 is Chains' testdata/slsa-v2alpha4/pipelinerun1.json, with
// the childReferences the pipeline controller writes.
func pipelineRun1() *v1.PipelineRun {
	return &v1.PipelineRun{
		ObjectMeta: metav1.ObjectMeta{Name: "pipelinerun-build", UID: "pr-abhhf-12354-asjsdbjs23-3435353n"},
		Spec: v1.PipelineRunSpec{
			Params:          v1.Params{{Name: "IMAGE", Value: str("test.io/test/image")}},
			PipelineRef:     &v1.PipelineRef{Name: "test-pipeline"},
			TaskRunTemplate: v1.PipelineTaskRunTemplate{ServiceAccountName: "pipeline"},
		},
		Status: v1.PipelineRunStatus{
			Status: succeeded(true),
			PipelineRunStatusFields: v1.PipelineRunStatusFields{
				StartTime: &started, CompletionTime: &finished,
				Results: []v1.PipelineRunResult{
					{Name: "CHAINS-GIT_COMMIT", Value: str(commitPR)},
					{Name: "CHAINS-GIT_URL", Value: str("https://git.test.com")},
					{Name: "IMAGE_URL", Value: str("test.io/test/image")},
					{Name: "IMAGE_DIGEST", Value: str("sha256:" + d2)},
					{Name: "build-artifact-ARTIFACT_OUTPUTS", Value: obj("uri", "abc", "digest", "sha256:"+d2, "isBuildArtifact", "true")},
					{Name: "img-ARTIFACT_INPUTS", Value: obj("uri", "abc", "digest", "sha256:"+d2)},
					{Name: "img2-ARTIFACT_OUTPUTS", Value: obj("uri", "def", "digest", "sha256:", "isBuildArtifact", "true")},
					{Name: "img_no_uri-ARTIFACT_OUTPUTS", Value: obj("digest", "sha256:"+d2)},
				},
				PipelineSpec: &v1.PipelineSpec{
					Params: v1.ParamSpecs{{Name: "IMAGE", Type: "string", Description: "Image path on registry"}},
					Tasks:  []v1.PipelineTask{{Name: "git-clone"}, {Name: "build"}},
				},
				ChildReferences: []v1.ChildStatusReference{
					{TypeMeta: taskRunType, Name: "taskrun-build", PipelineTaskName: "build"},
					{TypeMeta: taskRunType, Name: "git-clone", PipelineTaskName: "git-clone"},
				},
				Provenance: &v1.Provenance{RefSource: &v1.RefSource{URI: "git+https://github.com/test", Digest: map[string]string{"sha1": refPipeline}, EntryPoint: "pipeline.yaml"}},
			},
		},
	}
}

// valid parses a predicate back and validates it, as a verifier would.
func valid(t *testing.T, pred []byte) map[string]any {
	t.Helper()
	var p slsa.Provenance
	if err := protojson.Unmarshal(pred, &p); err != nil {
		t.Fatalf("predicate is not a SLSA v1 Provenance: %v\n%s", err, pred)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("predicate does not validate: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(pred, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func equalJSON(t *testing.T, pred []byte, wantFile string) {
	t.Helper()
	got := valid(t, pred)
	b, err := os.ReadFile(filepath.Join("testdata", wantFile))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("predicate differs from testdata/%s\ngot:\n%s\nwant:\n%s", wantFile, g, w)
	}
}

// lookup walks decoded JSON by keys and list indexes.
func lookup(m any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			mm, _ := m.(map[string]any)
			m = mm[k]
		case int:
			l, _ := m.([]any)
			if k >= len(l) {
				return nil
			}
			m = l[k]
		}
	}
	return m
}

func TestTaskRunAsChains(t *testing.T) {
	tr := taskRun1()
	pred, err := TaskRun(tr, artifacts.TaskRun(tr), Options{BuilderID: "test_builder-1"})
	if err != nil {
		t.Fatal(err)
	}
	equalJSON(t, pred, "taskrun1.json")
}

func TestPipelineRunAsChains(t *testing.T) {
	pr := pipelineRun1()
	children := []*v1.TaskRun{taskRun1(), gitClone()}
	found := artifacts.PipelineRun(pr, children)
	pred, err := PipelineRun(pr, children, found, Options{BuilderID: "test_builder-1", BuildType: BuildType})
	if err != nil {
		t.Fatal(err)
	}
	equalJSON(t, pred, "pipelinerun1.json")
}

func TestDefaults(t *testing.T) {
	tr := taskRun1()
	pred, err := TaskRun(tr, artifacts.TaskRun(tr), Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := valid(t, pred)
	if got := lookup(m, "buildDefinition", "buildType"); got != "https://tekton.dev/chains/v2/slsa" {
		t.Errorf("buildType = %v", got)
	}
	if got := lookup(m, "runDetails", "builder", "id"); got != "https://tekton.dev/chains/v2" {
		t.Errorf("builder.id = %v", got)
	}
}

func TestUnsupportedBuildType(t *testing.T) {
	tr := taskRun1()
	_, err := TaskRun(tr, artifacts.TaskRun(tr), Options{BuildType: "https://example.com/other"})
	if !errors.Is(err, ErrUnsupportedBuildType) || !strings.Contains(err.Error(), `"https://example.com/other"`) {
		t.Errorf("err = %v", err)
	}
	pr := pipelineRun1()
	if _, err := PipelineRun(pr, nil, artifacts.Found{}, Options{BuildType: "slsa"}); !errors.Is(err, ErrUnsupportedBuildType) {
		t.Errorf("PipelineRun err = %v", err)
	}
}

func TestTektonBuildType(t *testing.T) {
	tr := taskRun1()
	tr.Annotations = map[string]string{"team": "a"}
	pred, err := TaskRun(tr, artifacts.TaskRun(tr), Options{BuildType: BuildTypeTekton})
	if err != nil {
		t.Fatal(err)
	}
	m := valid(t, pred)
	wantInternal := map[string]any{
		"tekton-pipelines-feature-flags": map[string]any{"enableAPIFields": "beta", "resultExtractionMethod": "termination-message"},
		"labels":                         map[string]any{"tekton.dev/pipelineTask": "build"},
		"annotations":                    map[string]any{"team": "a"},
	}
	if got := lookup(m, "buildDefinition", "internalParameters"); !reflect.DeepEqual(got, wantInternal) {
		t.Errorf("internalParameters = %v", got)
	}

	// A PipelineRun's pipelineTask dependencies carry each child whole, with
	// or without a ref.
	pr := pipelineRun1()
	clone := gitClone()
	clone.Status.Provenance = nil
	children := []*v1.TaskRun{taskRun1(), clone}
	pred, err = PipelineRun(pr, children, artifacts.PipelineRun(pr, children), Options{BuildType: BuildTypeTekton})
	if err != nil {
		t.Fatal(err)
	}
	m = valid(t, pred)
	if got := lookup(m, "buildDefinition", "internalParameters", "labels"); got != nil {
		t.Errorf("labels of an unlabelled PipelineRun = %v, want null", got)
	}
	var tasks []map[string]any
	for _, d := range lookup(m, "buildDefinition", "resolvedDependencies").([]any) {
		if d := d.(map[string]any); d["name"] == "pipelineTask" {
			tasks = append(tasks, d)
		}
	}
	if len(tasks) != 2 {
		t.Fatalf("%d pipelineTask dependencies, want 2: %v", len(tasks), tasks)
	}
	for i, want := range []struct{ name, uri string }{{"git-clone", ""}, {"taskrun-build", "git+https://github.com/test"}} {
		var content []byte
		if err := json.Unmarshal([]byte(`"`+tasks[i]["content"].(string)+`"`), &content); err != nil {
			t.Fatal(err)
		}
		var got v1.TaskRun
		if err := json.Unmarshal(content, &got); err != nil {
			t.Fatal(err)
		}
		if uri, _ := tasks[i]["uri"].(string); got.Name != want.name || uri != want.uri {
			t.Errorf("pipelineTask %d: TaskRun %q uri %q, want %q %q", i, got.Name, uri, want.name, want.uri)
		}
	}
}

func TestBuildConfigSource(t *testing.T) {
	tr := taskRun1()
	tr.Spec.TaskRef = &v1.TaskRef{ResolverRef: v1.ResolverRef{Resolver: "git", Params: v1.Params{{Name: "url", Value: str("https://github.com/test")}}}}
	pred, err := TaskRun(tr, artifacts.TaskRun(tr), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"ref": "sha1:" + refBuild, "repository": "git+https://github.com/test", "path": "build.yaml"}
	if got := lookup(valid(t, pred), "buildDefinition", "externalParameters", "buildConfigSource"); !reflect.DeepEqual(got, want) {
		t.Errorf("buildConfigSource = %v, want %v", got, want)
	}

	// The in-cluster resolver is not remote: no buildConfigSource, as in Chains.
	tr.Spec.TaskRef.Resolver = "Cluster"
	pred, _ = TaskRun(tr, artifacts.TaskRun(tr), Options{})
	if got := lookup(valid(t, pred), "buildDefinition", "externalParameters", "buildConfigSource"); got != nil {
		t.Errorf("Cluster resolver: buildConfigSource = %v", got)
	}

	pr := pipelineRun1()
	pr.Spec.PipelineRef = &v1.PipelineRef{ResolverRef: v1.ResolverRef{Resolver: "bundles"}}
	pr.Status.Provenance.RefSource = &v1.RefSource{URI: "oci://gcr.io/p", Digest: map[string]string{"sha256": img1}}
	pred, err = PipelineRun(pr, nil, artifacts.PipelineRun(pr, nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]any{"ref": "sha256:" + img1, "repository": "oci://gcr.io/p", "path": ""}
	if got := lookup(valid(t, pred), "buildDefinition", "externalParameters", "buildConfigSource"); !reflect.DeepEqual(got, want) {
		t.Errorf("PipelineRun buildConfigSource = %v, want %v", got, want)
	}
}

func deps(t *testing.T, pred []byte) []string {
	t.Helper()
	var out []string
	for _, d := range lookup(valid(t, pred), "buildDefinition", "resolvedDependencies").([]any) {
		d := d.(map[string]any)
		var digest []string
		for alg, hex := range d["digest"].(map[string]any) {
			digest = append(digest, alg+":"+hex.(string)[:4])
		}
		name, _ := d["name"].(string)
		out = append(out, strings.TrimSpace(name+" "+d["uri"].(string)+" "+strings.Join(digest, ",")))
	}
	return out
}

// Chains' order for a TaskRun: task, step and sidecar images, step-result
// inputs, remote StepActions, the TaskRun's inputs; duplicates of earlier
// entries dropped, except the task and StepAction refs.
func TestTaskRunDependencyOrder(t *testing.T) {
	tr := taskRun1()
	tr.Status.Sidecars = []v1.SidecarState{{Name: "dind", ImageID: "docker.io/library/docker@sha256:" + img2}}
	tr.Status.Steps[1].Provenance = &v1.Provenance{RefSource: &v1.RefSource{URI: "git+https://github.com/actions", Digest: map[string]string{"sha1": refCatalog}}}
	// A StepAction from the same commit as the task is still listed.
	tr.Status.Steps[2].Provenance = &v1.Provenance{RefSource: &v1.RefSource{URI: "git+https://github.com/test", Digest: map[string]string{"sha1": refBuild}}}
	tr.Status.Steps[0].Results = append(tr.Status.Steps[0].Results,
		res("tool-ARTIFACT_INPUTS", obj("uri", "https://github.com/tektoncd/pipeline", "digest", "sha1:"+pipelineSHA1)),
		// Names a step image: a duplicate, dropped.
		res("base-ARTIFACT_INPUTS", obj("uri", "oci://gcr.io/test1/test1", "digest", "sha256:"+img1)))
	tr.Status.Artifacts = &v1.Artifacts{Inputs: []v1.Artifact{{Name: "source", Values: []v1.ArtifactValue{{Uri: "pkg:generic/src", Digest: map[v1.Algorithm]string{"sha256": d1}}}}}}
	pred, err := TaskRun(tr, artifacts.TaskRun(tr), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"task git+https://github.com/test sha1:ab12",
		"oci://gcr.io/test1/test1 sha256:d4b6",
		"oci://gcr.io/test2/test2 sha256:4d6d",
		"oci://gcr.io/test3/test3 sha256:f1a8",
		"oci://docker.io/library/docker sha256:4d6d",
		"inputs/result https://github.com/tektoncd/pipeline sha1:7f2f",
		"stepAction/step2 git+https://github.com/actions sha1:c123",
		"stepAction/step3 git+https://github.com/test sha1:ab12",
		"inputs/result git+https://git.test.com.git sha1:7a5c",
		"inputs/result pkg:generic/src sha256:d31c",
	}
	if got := deps(t, pred); !reflect.DeepEqual(got, want) {
		t.Errorf("resolvedDependencies =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Provenance is made for failed runs too (opt-in in the controller): a
// step that never started has no imageID, and the run may lack results.
func TestFailedRun(t *testing.T) {
	tr := taskRun1()
	tr.Status.Status = succeeded(false)
	tr.Status.Steps[2].ImageID = ""
	tr.Status.Steps[2].Results = nil
	tr.Status.Results = nil
	pred, err := TaskRun(tr, artifacts.TaskRun(tr), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := deps(t, pred)
	if len(got) != 4 || strings.Contains(strings.Join(got, " "), "test3") {
		t.Errorf("resolvedDependencies = %q", got)
	}
	m := valid(t, pred)
	if got := lookup(m, "runDetails", "metadata", "finishedOn"); got != "2021-03-29T09:50:15Z" {
		t.Errorf("finishedOn = %v", got)
	}

	// A PipelineRun that failed before a child finished: that child is left
	// out, as Chains does; one with no start or completion time still
	// validates.
	pr := pipelineRun1()
	pr.Status.Status = succeeded(false)
	pr.Status.StartTime, pr.Status.CompletionTime = nil, nil
	clone := gitClone()
	clone.Status.CompletionTime = nil
	children := []*v1.TaskRun{taskRun1(), clone}
	pred, err = PipelineRun(pr, children, artifacts.PipelineRun(pr, children), Options{})
	if err != nil {
		t.Fatal(err)
	}
	m = valid(t, pred)
	if got := lookup(m, "runDetails", "metadata"); !reflect.DeepEqual(got, map[string]any{"invocationId": "pr-abhhf-12354-asjsdbjs23-3435353n"}) {
		t.Errorf("metadata = %v", got)
	}
	if strings.Contains(strings.Join(deps(t, pred), " "), "catalog") {
		t.Errorf("unfinished child's task ref listed: %q", deps(t, pred))
	}
}

func TestBadImageID(t *testing.T) {
	tr := taskRun1()
	tr.Status.Steps[1].ImageID = "sha256:" + img2
	_, err := TaskRun(tr, artifacts.TaskRun(tr), Options{})
	if err == nil || !strings.Contains(err.Error(), `step "step2"`) || !strings.Contains(err.Error(), "not <image>@<algorithm>:<hex>") {
		t.Errorf("err = %v", err)
	}
	// The in-toto validator refuses a digest of the wrong length.
	tr = taskRun1()
	tr.Status.Provenance.RefSource.Digest = map[string]string{"sha1": "ab123"}
	if _, err := TaskRun(tr, artifacts.TaskRun(tr), Options{}); err == nil || !strings.Contains(err.Error(), "ab123") {
		t.Errorf("short refSource digest: err = %v", err)
	}
}

// A child listed twice, and results without a Type (objects built in code):
// each child's byproducts once, values encoded by their content.
func TestByproducts(t *testing.T) {
	pr := pipelineRun1()
	pr.Status.Results = []v1.PipelineRunResult{
		{Name: "list", Value: v1.ParamValue{ArrayVal: []string{"a", "b"}}},
		{Name: "plain", Value: v1.ParamValue{StringVal: "x"}},
		{Name: "IMAGES", Value: str("gcr.io/x/y@sha256:" + d1)},
		{Name: "bad-ARTIFACT_OUTPUTS", Value: str("not an object")},
	}
	clone := gitClone()
	pred, err := PipelineRun(pr, []*v1.TaskRun{clone, clone}, artifacts.Found{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range lookup(valid(t, pred), "runDetails", "byproducts").([]any) {
		b := b.(map[string]any)
		var content []byte
		_ = json.Unmarshal([]byte(`"`+b["content"].(string)+`"`), &content)
		got = append(got, b["name"].(string)+" "+string(content)+" "+b["mediaType"].(string))
	}
	want := []string{
		`pipelineRunResults/pipelinerun-build/list ["a","b"] application/json`,
		`pipelineRunResults/pipelinerun-build/plain "x" application/json`,
		`taskRunResults/git-clone/some-uri_DIGEST "sha256:` + img1 + `" application/json`,
		`taskRunResults/git-clone/some-uri "pkg:deb/debian/curl@7.50.3-1" application/json`,
		`stepResults/git-clone/step1_result1-ARTIFACT_INPUTS {"digest":"sha1:` + pipelineSHA1 + `","uri":"https://github.com/tektoncd/pipeline"} application/json`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("byproducts =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestNil(t *testing.T) {
	if _, err := TaskRun(nil, artifacts.Found{}, Options{}); err == nil {
		t.Error("TaskRun(nil) succeeded")
	}
	if _, err := PipelineRun(nil, nil, artifacts.Found{}, Options{}); err == nil {
		t.Error("PipelineRun(nil) succeeded")
	}
}
