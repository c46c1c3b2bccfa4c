// Tests of the catalog Tasks. No kubelet runs them: a small harness does
// what Tekton does to a step for a given TaskRun — parameters resolved
// against their defaults, $(params.x), $(params.x[*]) in args,
// $(workspaces.w.path), $(workspaces.w.bound) and $(results.r.path)
// substituted, the script run by a POSIX shell with the step's arguments
// and environment only — and the step runs the real signet binary against
// a real signet server and a real registry.
package task_test

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
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// loadTask decodes a Task as the apiserver's strict field validation
// would (no unknown, duplicate or miscased field), then defaults and
// validates it as Tekton's admission webhook does.
func loadTask(t *testing.T, path string) *v1.Task {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return decodeTask(t, path, data)
}

func decodeTask(t *testing.T, path string, data []byte) *v1.Task {
	t.Helper()
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var task v1.Task
	strict, err := sigsjson.UnmarshalStrict(js, &task, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	if err := errors.Join(append(strict, err)...); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if task.APIVersion != "tekton.dev/v1" || task.Kind != "Task" {
		t.Fatalf("%s: %s %s, want a tekton.dev/v1 Task", path, task.APIVersion, task.Kind)
	}
	ctx := context.Background()
	task.SetDefaults(ctx)
	if ferr := task.Validate(ctx); ferr != nil {
		t.Fatalf("%s: Tekton refuses the Task: %v", path, ferr)
	}
	return &task
}

// loadTasks is loadTask for a file of several Tasks, by name.
func loadTasks(t *testing.T, path string) map[string]*v1.Task {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*v1.Task{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		task := decodeTask(t, path, doc)
		out[task.Name] = task
	}
}

// taskRun is what a TaskRun gives the Task: parameter values (string or
// []string) and bound workspaces (name -> directory).
type taskRun struct {
	params     map[string]any
	workspaces map[string]string
}

// stepRun is one step as the harness ran it.
type stepRun struct {
	name, image    string
	stdout, stderr string
	exitCode       int
}

// runResult is a TaskRun's outcome: each step run (up to the first that
// failed) and the results written.
type runResult struct {
	steps   []stepRun
	results map[string]string
}

func (r runResult) failed() bool { return len(r.steps) > 0 && r.steps[len(r.steps)-1].exitCode != 0 }

func (r runResult) stderr() string {
	var b strings.Builder
	for _, s := range r.steps {
		b.WriteString(s.stderr)
	}
	return b.String()
}

func (r runResult) String() string {
	var b strings.Builder
	for _, s := range r.steps {
		fmt.Fprintf(&b, "step %s (image %s): exit %d\n--- stdout\n%s\n--- stderr\n%s\n", s.name, s.image, s.exitCode, s.stdout, s.stderr)
	}
	fmt.Fprintf(&b, "results: %v", r.results)
	return b.String()
}

// variable is any $(...) reference Tekton substitutes; a shell's own $(…)
// starts with something else (a command name), and Tekton leaves it alone
// too.
var variable = regexp.MustCompile(`\$\((params|workspaces|results|context|steps|tasks|step|artifacts)(\.[^()]*|\[[^()]*)\)`)

// substituter resolves the variables of one TaskRun.
type substituter struct {
	strings map[string]string   // params of type string
	arrays  map[string][]string // params of type array
	vars    map[string]string   // workspaces.*, results.*
}

func newSubstituter(task *v1.Task, tr taskRun, resultsDir string) (*substituter, error) {
	s := &substituter{strings: map[string]string{}, arrays: map[string][]string{}, vars: map[string]string{}}
	declared := map[string]bool{}
	for _, p := range task.Spec.Params {
		declared[p.Name] = true
		v, given := tr.params[p.Name]
		if !given {
			if p.Default == nil {
				return nil, fmt.Errorf("param %s has no default and the TaskRun gives none", p.Name)
			}
			switch p.Type {
			case v1.ParamTypeArray:
				v = p.Default.ArrayVal
			case v1.ParamTypeString:
				v = p.Default.StringVal
			default:
				return nil, fmt.Errorf("param %s: type %s is not one the harness knows", p.Name, p.Type)
			}
		}
		switch val := v.(type) {
		case string:
			if p.Type != v1.ParamTypeString {
				return nil, fmt.Errorf("param %s is an %s, given a string", p.Name, p.Type)
			}
			s.strings[p.Name] = val
		case []string:
			if p.Type != v1.ParamTypeArray {
				return nil, fmt.Errorf("param %s is a %s, given an array", p.Name, p.Type)
			}
			s.arrays[p.Name] = val
		default:
			return nil, fmt.Errorf("param %s: %T", p.Name, v)
		}
	}
	for name := range tr.params {
		if !declared[name] {
			return nil, fmt.Errorf("the TaskRun gives param %s, which the Task does not declare", name)
		}
	}
	known := map[string]bool{}
	for _, w := range task.Spec.Workspaces {
		known[w.Name] = true
		dir, bound := tr.workspaces[w.Name]
		if !bound && !w.Optional {
			return nil, fmt.Errorf("workspace %s is not optional and the TaskRun binds none", w.Name)
		}
		// Tekton: an unbound optional workspace's path is empty.
		s.vars["workspaces."+w.Name+".path"] = dir
		s.vars["workspaces."+w.Name+".bound"] = fmt.Sprint(bound)
	}
	for name := range tr.workspaces {
		if !known[name] {
			return nil, fmt.Errorf("the TaskRun binds workspace %s, which the Task does not declare", name)
		}
	}
	for _, r := range task.Spec.Results {
		s.vars["results."+r.Name+".path"] = filepath.Join(resultsDir, r.Name)
	}
	return s, nil
}

// str substitutes every variable of a string field; an array parameter
// or an unknown variable is an error.
func (s *substituter) str(field, in string) (string, error) {
	var errs []error
	out := variable.ReplaceAllStringFunc(in, func(ref string) string {
		inner := ref[2 : len(ref)-1]
		if name, ok := strings.CutPrefix(inner, "params."); ok {
			if v, ok := s.strings[name]; ok {
				return v
			}
			if _, ok := s.arrays[strings.TrimSuffix(name, "[*]")]; ok {
				errs = append(errs, fmt.Errorf("%s: array %s outside an args or command element of its own", field, ref))
				return ref
			}
		}
		if v, ok := s.vars[inner]; ok {
			return v
		}
		errs = append(errs, fmt.Errorf("%s: %s is not a variable this TaskRun defines (or the harness knows)", field, ref))
		return ref
	})
	return out, errors.Join(errs...)
}

// list substitutes args or command: an element that is exactly
// $(params.x[*]) becomes the array's elements, as Tekton expands it.
func (s *substituter) list(field string, in []string) ([]string, error) {
	var out []string
	for i, a := range in {
		if m := regexp.MustCompile(`^\$\(params\.([^()\[\]]+)\[\*\]\)$`).FindStringSubmatch(a); m != nil {
			v, ok := s.arrays[m[1]]
			if !ok {
				return nil, fmt.Errorf("%s[%d]: %s is not an array param", field, i, a)
			}
			out = append(out, v...)
			continue
		}
		v, err := s.str(fmt.Sprintf("%s[%d]", field, i), a)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// shells are the POSIX shells a script is run with: every one of these
// found on this machine (the step image's sh may be any of them).
func shells(t *testing.T) [][]string {
	var out [][]string
	for _, sh := range [][]string{{"dash"}, {"bash", "--posix"}, {"busybox", "sh"}} {
		if p, err := exec.LookPath(sh[0]); err == nil {
			out = append(out, append([]string{p}, sh[1:]...))
		}
	}
	if len(out) == 0 {
		t.Fatal("no POSIX shell (dash, bash, busybox) on PATH")
	}
	return out
}

// runTask runs every step of task for tr, in order, stopping at the first
// that fails, as Tekton does. shell runs scripts; pathDir (where the signet
// binary is) is the PATH the step image provides, with the system's
// directories for the shell's own needs.
func runTask(t *testing.T, task *v1.Task, tr taskRun, shell []string, pathDir string) runResult {
	t.Helper()
	work := t.TempDir()
	resultsDir := filepath.Join(work, "results")
	home := filepath.Join(work, "home")
	for _, d := range []string{resultsDir, home} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := newSubstituter(task, tr, resultsDir)
	if err != nil {
		t.Fatal(err)
	}
	var res runResult
	for i, step := range task.Spec.Steps {
		image, err := sub.str("image", step.Image)
		if err != nil {
			t.Fatal(err)
		}
		args, err := sub.list("args", step.Args)
		if err != nil {
			t.Fatal(err)
		}
		command, err := sub.list("command", step.Command)
		if err != nil {
			t.Fatal(err)
		}
		// Tekton gives a step the image's environment plus its own env
		// and HOME; nothing of this test process leaks in.
		path := "/usr/local/bin:/usr/bin:/bin"
		if pathDir != "" {
			path = pathDir + ":" + path
		}
		env := []string{"PATH=" + path, "HOME=" + home}
		for _, e := range step.Env {
			if e.ValueFrom != nil {
				t.Fatalf("step %s: env %s from %v: the harness knows plain values only", step.Name, e.Name, e.ValueFrom)
			}
			v, err := sub.str("env "+e.Name, e.Value)
			if err != nil {
				t.Fatal(err)
			}
			env = append(env, e.Name+"="+v)
		}
		var argv []string
		switch {
		case step.Script != "":
			script, err := sub.str("script", step.Script)
			if err != nil {
				t.Fatal(err)
			}
			if len(command) > 0 {
				t.Fatalf("step %s: script and command", step.Name)
			}
			if !strings.HasPrefix(script, "#!/bin/sh\n") {
				t.Fatalf("step %s: the harness runs POSIX sh scripts, and this one starts %q", step.Name, strings.SplitN(script, "\n", 2)[0])
			}
			path := filepath.Join(work, fmt.Sprintf("script-%d", i))
			if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			argv = append(append(slices.Clone(shell), path), args...)
		case len(command) > 0:
			argv = append(command, args...)
		default:
			t.Fatalf("step %s: neither script nor command (the image's entrypoint is unknown here)", step.Name)
		}
		dir := work
		if step.WorkingDir != "" {
			if dir, err = sub.str("workingDir", step.WorkingDir); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env, cmd.Dir = env, dir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err = cmd.Run()
		cancel()
		sr := stepRun{name: step.Name, image: image, stdout: stdout.String(), stderr: stderr.String()}
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			sr.exitCode = exit.ExitCode()
		case err != nil:
			t.Fatalf("step %s: %v", step.Name, err)
		}
		res.steps = append(res.steps, sr)
		if sr.exitCode != 0 {
			break
		}
	}
	res.results = map[string]string{}
	for _, r := range task.Spec.Results {
		if b, err := os.ReadFile(filepath.Join(resultsDir, r.Name)); err == nil {
			res.results[r.Name] = string(b)
		}
	}
	return res
}

// terminationMessageSize is how many bytes Tekton's default results
// mechanism (the step's termination message, at most 4096 bytes for the
// whole step) needs for these results: a JSON array of
// {"key","value","type"} entries.
func terminationMessageSize(results map[string]string) int {
	type entry struct {
		Key   string `json:"key"`
		Value string `json:"value"`
		Type  int    `json:"type"`
	}
	var es []entry
	for k, v := range results {
		es = append(es, entry{k, v, 1})
	}
	// The entrypoint's own entry ("StartedAt") rides along.
	es = append(es, entry{"StartedAt", time.Now().UTC().Format(time.RFC3339Nano), 3})
	b, _ := json.Marshal(es)
	return len(b)
}
