// Tests of the Tekton example: every manifest decodes into its typed
// object (Tekton v1, Kubernetes core) with no unknown field and passes
// Tekton's own validation; the references between them resolve (tasks,
// params, workspaces, results, the ServiceAccount); the type-hinted results
// signet-tekton reads are there; and the README's identities are those the
// manifests produce and its command lines use flags the signet CLI has.
package tektonexample_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"knative.dev/pkg/apis"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/signet-dev/signet/server/servertest"
)

const repoRoot = "../.."

// objects is everything the example's files hold, by kind and name.
type objects struct {
	tasks        map[string]*v1.Task
	pipelines    map[string]*v1.Pipeline
	pipelineRuns []*v1.PipelineRun
	sas          map[string]*corev1.ServiceAccount // namespace/name
	namespaces   map[string]bool
	files        []string
}

func decodeStrict(data []byte, v any) error {
	strict, err := sigsjson.UnmarshalStrict(data, v, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	return errors.Join(append(strict, err)...)
}

// documents splits a YAML file into its documents, as JSON.
func documents(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			out = append(out, js)
		}
	}
}

// validate runs Tekton's defaulting and validation, as its webhook does.
func validate(t *testing.T, what string, o interface {
	SetDefaults(context.Context)
	Validate(context.Context) *apis.FieldError
}) {
	t.Helper()
	ctx := context.Background()
	o.SetDefaults(ctx)
	if err := o.Validate(ctx); err != nil {
		t.Errorf("%s: Tekton refuses it: %v", what, err)
	}
}

func load(t *testing.T) objects {
	t.Helper()
	o := objects{tasks: map[string]*v1.Task{}, pipelines: map[string]*v1.Pipeline{}, sas: map[string]*corev1.ServiceAccount{}, namespaces: map[string]bool{}}
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests (%v)", err)
	}
	o.files = files
	for _, f := range files {
		for i, js := range documents(t, f) {
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := json.Unmarshal(js, &head); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			what := fmt.Sprintf("%s document %d (%s)", f, i, head.Kind)
			decode := func(v any) {
				if err := decodeStrict(js, v); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
			}
			switch head.APIVersion + " " + head.Kind {
			case "tekton.dev/v1 Task":
				var x v1.Task
				decode(&x)
				validate(t, what, &x)
				o.tasks[x.Name] = &x
			case "tekton.dev/v1 Pipeline":
				var x v1.Pipeline
				decode(&x)
				validate(t, what, &x)
				o.pipelines[x.Name] = &x
			case "tekton.dev/v1 PipelineRun":
				var x v1.PipelineRun
				decode(&x)
				if x.Name == "" && x.GenerateName != "" {
					x.Name = x.GenerateName + "abcde" // the apiserver names it before Tekton's webhook sees it
				}
				validate(t, what, &x)
				o.pipelineRuns = append(o.pipelineRuns, &x)
			case "v1 ServiceAccount":
				var x corev1.ServiceAccount
				decode(&x)
				o.sas[x.Namespace+"/"+x.Name] = &x
			case "v1 Namespace":
				var x corev1.Namespace
				decode(&x)
				o.namespaces[x.Name] = true
			default:
				t.Fatalf("%s: %s %s is not a kind the example should hold", what, head.APIVersion, head.Kind)
			}
		}
	}
	return o
}

// catalogTask is the signet-sign Task, which pipeline-sign-task.yaml uses.
func catalogTask(t *testing.T) *v1.Task {
	t.Helper()
	docs := documents(t, filepath.Join(repoRoot, "tekton/task/signet-sign/0.1/signet-sign.yaml"))
	var task v1.Task
	if len(docs) != 1 || decodeStrict(docs[0], &task) != nil {
		t.Fatal("tekton/task/signet-sign/0.1/signet-sign.yaml does not decode")
	}
	return &task
}

var resultRef = regexp.MustCompile(`\$\(tasks\.([^.()]+)\.results\.([^.()\[]+)\)`)

func TestExampleManifests(t *testing.T) {
	o := load(t)
	tasks := map[string]*v1.Task{"signet-sign": catalogTask(t)}
	for n, task := range o.tasks {
		tasks[n] = task
	}
	if len(o.pipelines) != 2 || len(o.pipelineRuns) != 1 || len(o.tasks) != 2 {
		t.Fatalf("%d pipelines, %d runs, %d tasks", len(o.pipelines), len(o.pipelineRuns), len(o.tasks))
	}
	for _, task := range o.tasks {
		if task.Namespace != "builds" {
			t.Errorf("Task %s in namespace %q", task.Name, task.Namespace)
		}
	}

	// The type hints: the build reports IMAGE_URL/IMAGE_DIGEST, the clone
	// CHAINS-GIT_URL/CHAINS-GIT_COMMIT.
	hasResults := func(task string, names ...string) {
		tk, ok := o.tasks[task]
		if !ok {
			t.Errorf("no Task %s", task)
			return
		}
		for _, n := range names {
			if !slices.ContainsFunc(tk.Spec.Results, func(r v1.TaskResult) bool { return r.Name == n }) {
				t.Errorf("Task %s lacks the type-hinted result %s", task, n)
			}
		}
	}
	hasResults("example-kaniko-build", "IMAGE_URL", "IMAGE_DIGEST")
	hasResults("example-git-clone", "CHAINS-GIT_URL", "CHAINS-GIT_COMMIT")

	for _, p := range o.pipelines {
		if p.Namespace != "builds" {
			t.Errorf("Pipeline %s in namespace %q", p.Name, p.Namespace)
		}
		pipelineTasks := map[string]*v1.Task{}
		for _, pt := range p.Spec.Tasks {
			if pt.TaskRef == nil {
				t.Errorf("%s/%s: no taskRef", p.Name, pt.Name)
				continue
			}
			task, ok := tasks[pt.TaskRef.Name]
			if !ok {
				t.Errorf("%s/%s: Task %s is defined nowhere", p.Name, pt.Name, pt.TaskRef.Name)
				continue
			}
			pipelineTasks[pt.Name] = task
			given := map[string]bool{}
			for _, prm := range pt.Params {
				given[prm.Name] = true
				if !slices.ContainsFunc(task.Spec.Params, func(s v1.ParamSpec) bool { return s.Name == prm.Name }) {
					t.Errorf("%s/%s: param %s is not one of %s's", p.Name, pt.Name, prm.Name, task.Name)
				}
			}
			for _, s := range task.Spec.Params {
				if s.Default == nil && !given[s.Name] {
					t.Errorf("%s/%s: %s's param %s is required and not given", p.Name, pt.Name, task.Name, s.Name)
				}
			}
			bound := map[string]bool{}
			for _, w := range pt.Workspaces {
				bound[w.Name] = true
				if !slices.ContainsFunc(task.Spec.Workspaces, func(d v1.WorkspaceDeclaration) bool { return d.Name == w.Name }) {
					t.Errorf("%s/%s: workspace %s is not one of %s's", p.Name, pt.Name, w.Name, task.Name)
				}
			}
			for _, d := range task.Spec.Workspaces {
				if !d.Optional && !bound[d.Name] {
					t.Errorf("%s/%s: %s's workspace %s is required and not bound", p.Name, pt.Name, task.Name, d.Name)
				}
			}
		}
		// Every $(tasks.X.results.Y) names a result X's Task has.
		var refs []string
		for _, r := range p.Spec.Results {
			refs = append(refs, r.Value.StringVal)
		}
		for _, pt := range p.Spec.Tasks {
			for _, prm := range pt.Params {
				refs = append(refs, prm.Value.StringVal)
				refs = append(refs, prm.Value.ArrayVal...)
			}
		}
		for _, s := range refs {
			for _, m := range resultRef.FindAllStringSubmatch(s, -1) {
				task, ok := pipelineTasks[m[1]]
				if !ok || !slices.ContainsFunc(task.Spec.Results, func(r v1.TaskResult) bool { return r.Name == m[2] }) {
					t.Errorf("%s: %s names no result of a task of the pipeline", p.Name, m[0])
				}
			}
		}
		// The Pipeline's own type hints, for the PipelineRun's provenance.
		for _, want := range []string{"IMAGE_URL", "IMAGE_DIGEST"} {
			i := slices.IndexFunc(p.Spec.Results, func(r v1.PipelineResult) bool { return r.Name == want })
			if i < 0 || p.Spec.Results[i].Value.StringVal != "$(tasks.build.results."+want+")" {
				t.Errorf("%s: result %s is not the build's %s", p.Name, want, want)
			}
		}
	}
	// The variant with the Task signs the build's image by digest.
	sign := o.pipelines["build-push-sign"]
	if sign == nil {
		t.Fatal("no Pipeline build-push-sign")
	}
	i := slices.IndexFunc(sign.Spec.Tasks, func(pt v1.PipelineTask) bool { return pt.TaskRef != nil && pt.TaskRef.Name == "signet-sign" })
	if i < 0 {
		t.Fatal("build-push-sign does not use signet-sign")
	}
	var images []string
	for _, prm := range sign.Spec.Tasks[i].Params {
		if prm.Name == "images" {
			images = prm.Value.ArrayVal
		}
	}
	if !slices.Equal(images, []string{"$(tasks.build.results.IMAGE_URL)@$(tasks.build.results.IMAGE_DIGEST)"}) {
		t.Errorf("signet-sign signs %v, want the build's image by digest", images)
	}

	// The run: its Pipeline, params, workspaces and ServiceAccount exist.
	for _, run := range o.pipelineRuns {
		p, ok := o.pipelines[run.Spec.PipelineRef.Name]
		if !ok {
			t.Fatalf("PipelineRun runs %s, defined nowhere", run.Spec.PipelineRef.Name)
		}
		if !o.namespaces[run.Namespace] || run.Namespace != p.Namespace {
			t.Errorf("PipelineRun in %q, Pipeline in %q", run.Namespace, p.Namespace)
		}
		sa := run.Spec.TaskRunTemplate.ServiceAccountName
		if _, ok := o.sas[run.Namespace+"/"+sa]; !ok {
			t.Errorf("PipelineRun runs as %s/%s, defined nowhere", run.Namespace, sa)
		}
		given := map[string]bool{}
		for _, prm := range run.Spec.Params {
			given[prm.Name] = true
			if !slices.ContainsFunc(p.Spec.Params, func(s v1.ParamSpec) bool { return s.Name == prm.Name }) {
				t.Errorf("PipelineRun param %s is not one of %s's", prm.Name, p.Name)
			}
		}
		for _, s := range p.Spec.Params {
			if s.Default == nil && !given[s.Name] {
				t.Errorf("PipelineRun lacks %s's required param %s", p.Name, s.Name)
			}
		}
		var bound, want []string
		for _, w := range run.Spec.Workspaces {
			bound = append(bound, w.Name)
		}
		for _, w := range p.Spec.Workspaces {
			want = append(want, w.Name)
		}
		sort.Strings(bound)
		sort.Strings(want)
		if !slices.Equal(bound, want) {
			t.Errorf("PipelineRun binds %v, %s declares %v", bound, p.Name, want)
		}
	}
	for key, sa := range o.sas {
		if !o.namespaces[sa.Namespace] {
			t.Errorf("ServiceAccount %s in a namespace the example does not create", key)
		}
		if len(sa.ImagePullSecrets) == 0 {
			t.Errorf("ServiceAccount %s names no imagePullSecrets: signet-tekton would find no push credentials", key)
		}
	}
}

// identity is the SAN signet's CA gives a Kubernetes service account
// (server/identity).
func identity(namespace, sa string) string {
	return "https://kubernetes.io/namespaces/" + namespace + "/serviceaccounts/" + sa
}

func TestREADMEIdentities(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	// The controller signs as its Deployment's ServiceAccount.
	var d appsv1.Deployment
	found := false
	for _, js := range documents(t, filepath.Join(repoRoot, "tekton/config/500-controller.yaml")) {
		var head struct {
			Kind string `json:"kind"`
		}
		_ = json.Unmarshal(js, &head)
		if head.Kind == "Deployment" {
			if err := decodeStrict(js, &d); err != nil {
				t.Fatal(err)
			}
			found = true
		}
	}
	if !found {
		t.Fatal("no Deployment in tekton/config/500-controller.yaml")
	}
	controller := identity(d.Namespace, d.Spec.Template.Spec.ServiceAccountName)
	run := identity("builds", load(t).pipelineRuns[0].Spec.TaskRunTemplate.ServiceAccountName)
	for _, id := range []string{controller, run} {
		if !bytes.Contains(readme, []byte(id)) {
			t.Errorf("README.md never names %s", id)
		}
	}
	// Any other identity it names is a mistake.
	for _, m := range regexp.MustCompile(`https://kubernetes\.io/namespaces/[a-z0-9-]+/serviceaccounts/[a-z0-9-]+`).FindAll(readme, -1) {
		if s := string(m); s != controller && s != run {
			t.Errorf("README.md names %s, which nothing here signs as", s)
		}
	}
	// Every file is listed.
	for _, f := range load(t).files {
		if !bytes.Contains(readme, []byte("`"+f+"`")) {
			t.Errorf("README.md does not list %s", f)
		}
	}
}

// commandLines are the shell lines of a Markdown file's ```sh blocks, with
// continuations joined and comments dropped.
func commandLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in, cont := false, ""
	for _, l := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(l, "```sh"):
			in = true
			continue
		case strings.HasPrefix(l, "```"):
			in = false
			continue
		case !in:
			continue
		}
		if i := strings.Index(l, " #"); i >= 0 {
			l = l[:i]
		}
		l = strings.TrimSpace(l)
		if s, ok := strings.CutSuffix(l, `\`); ok {
			cont += s + " "
			continue
		}
		if l = strings.TrimSpace(cont + l); l != "" {
			out = append(out, l)
		}
		cont = ""
	}
	return out
}

// TestREADMECommands runs `signet <command> --help` for each signet command
// line of the READMEs and checks every flag it uses is there; cosign's
// verify lines name the trusted root and check SCTs (signet's CA logs
// every certificate);
// every file named is in the repository.
func TestREADMECommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the signet CLI")
	}
	bin := servertest.Binary(t)
	help := map[string]string{}
	helpOf := func(cmd []string) string {
		key := strings.Join(cmd, " ")
		if h, ok := help[key]; ok {
			return h
		}
		out, err := exec.Command(bin, append(cmd, "--help")...).CombinedOutput()
		if err != nil {
			t.Errorf("signet %s --help: %v\n%s", key, err, out)
		}
		help[key] = string(out)
		return string(out)
	}
	flag := regexp.MustCompile(`^(--[a-z0-9-]+|-[a-zA-Z])(=.*)?$`)
	path := regexp.MustCompile(`(?:^|\s)((?:examples|tekton)/[A-Za-z0-9_./-]+\.yaml|tekton/config/(?:optional/)?)(?:\s|$)`)
	for _, readme := range []string{"README.md", filepath.Join(repoRoot, "tekton/task/signet-sign/0.1/README.md")} {
		lines := commandLines(t, readme)
		var signet, cosign int
		for _, l := range lines {
			for _, m := range path.FindAllStringSubmatch(l, -1) {
				if _, err := os.Stat(filepath.Join(repoRoot, m[1])); err != nil {
					t.Errorf("%s: %q names %s: %v", readme, l, m[1], err)
				}
			}
			words := strings.Fields(l)
			switch words[0] {
			case "signet":
				signet++
				cmd := []string{words[1]}
				if strings.Contains(helpOf(cmd), "Available Commands:") && len(words) > 2 {
					cmd = append(cmd, words[2])
				}
				h := helpOf(cmd)
				for _, w := range words[1+len(cmd):] {
					m := flag.FindStringSubmatch(w)
					if m == nil {
						continue
					}
					long := regexp.MustCompile(`(?m)(^|[\s,])` + regexp.QuoteMeta(m[1]) + `(\s|,|$)`)
					if !long.MatchString(h) {
						t.Errorf("%s: signet %s has no flag %s (in %q)", readme, strings.Join(cmd, " "), m[1], l)
					}
				}
			case "cosign":
				cosign++
				if strings.HasPrefix(words[1], "verify") && (slices.Contains(words, "--insecure-ignore-sct") || !slices.Contains(words, "--trusted-root")) {
					t.Errorf("%s: %q: cosign needs --trusted-root, and no --insecure-ignore-sct: signet's certificates carry SCTs", readme, l)
				}
			}
		}
		if signet == 0 {
			t.Errorf("%s: no signet command lines found", readme)
		}
		if readme == "README.md" && cosign < 2 {
			t.Errorf("%s: %d cosign lines, want the verify and verify-attestation equivalents", readme, cosign)
		}
	}
}
