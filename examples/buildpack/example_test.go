// Tests of the buildpack examples and docs: the Tekton Task and the kpack
// Job decode into their typed objects with no unknown field (the Task also
// passes Tekton's validation), and every signet flag they, the GitHub
// workflow's run lines and docs/buildpack.md use is one `signet buildpack`
// has.
package buildpackexample_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	batchv1 "k8s.io/api/batch/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/signet-dev/signet/server/servertest"
)

func decode(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	strict, err := sigsjson.UnmarshalStrict(js, v, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	if err := errors.Join(append(strict, err)...); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// buildpackFlags are the long flags `signet buildpack --help` lists.
func buildpackFlags(t *testing.T) map[string]bool {
	out, err := exec.Command(servertest.Binary(t), "buildpack", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("signet buildpack --help: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["layers"] || !flags["image"] {
		t.Fatalf("no flags read from --help:\n%s", out)
	}
	return flags
}

var flagRE = regexp.MustCompile(`--([a-z][a-z-]+)`)

func checkFlags(t *testing.T, where string, text string, flags map[string]bool) {
	t.Helper()
	for _, m := range flagRE.FindAllStringSubmatch(text, -1) {
		if !flags[m[1]] {
			t.Errorf("%s uses --%s, which signet buildpack does not have", where, m[1])
		}
	}
}

func TestExamples(t *testing.T) {
	flags := buildpackFlags(t)

	var task v1.Task
	decode(t, "tekton.yaml", &task)
	task.SetDefaults(context.Background())
	if err := task.Validate(context.Background()); err != nil {
		t.Errorf("tekton.yaml: %v", err)
	}
	var signed bool
	for _, s := range task.Spec.Steps {
		if len(s.Args) > 0 && s.Args[0] == "buildpack" {
			signed = true
			checkFlags(t, "tekton.yaml step "+s.Name, strings.Join(s.Args, " "), flags)
		}
	}
	if !signed {
		t.Error("tekton.yaml has no signet buildpack step")
	}

	var job batchv1.Job
	decode(t, "kpack.yaml", &job)
	c := job.Spec.Template.Spec.Containers
	if len(c) != 1 || c[0].Args[0] != "buildpack" {
		t.Fatalf("kpack.yaml: containers %+v", c)
	}
	checkFlags(t, "kpack.yaml", strings.Join(c[0].Args, " "), flags)
	if job.Spec.Template.Spec.Volumes[0].Projected == nil && job.Spec.Template.Spec.Volumes[len(job.Spec.Template.Spec.Volumes)-1].Projected == nil {
		t.Error("kpack.yaml: no projected token for the identity")
	}

	// The docs' and the workflow's signet buildpack command lines.
	for _, path := range []string{"../../docs/buildpack.md", "github-pack.yml"} {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(raw), "\\\n", " ")
		for _, line := range strings.Split(text, "\n") {
			if i := strings.Index(line, "signet buildpack "); i >= 0 {
				checkFlags(t, path, line[i:], flags)
			}
			// The flags table: its first column.
			if cells := strings.Split(line, "|"); strings.HasPrefix(line, "| `--") && len(cells) > 2 {
				checkFlags(t, path+" flags table", cells[1], flags)
			}
		}
	}
}
