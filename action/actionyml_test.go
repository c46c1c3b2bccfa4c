package action_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type actionYML struct {
	Inputs map[string]struct {
		Description string
		Default     string
	} `yaml:"inputs"`
	Outputs map[string]struct{ Value string } `yaml:"outputs"`
	Runs    struct {
		Using string `yaml:"using"`
		Steps []struct {
			ID  string            `yaml:"id"`
			Env map[string]string `yaml:"env"`
			Run string            `yaml:"run"`
		} `yaml:"steps"`
	} `yaml:"runs"`
}

func readActionYML(t *testing.T) *actionYML {
	raw, err := os.ReadFile(filepath.Join(moduleRoot(t), "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var a actionYML
	if err := yaml.Unmarshal(raw, &a); err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	return &a
}

// TestActionYMLMatchesTheCode checks the three places an input or output is
// named agree: action.yml's inputs, the INPUT_* variables its composite step
// passes, and what the Go code reads and writes.
func TestActionYMLMatchesTheCode(t *testing.T) {
	a := readActionYML(t)
	if a.Runs.Using != "composite" || len(a.Runs.Steps) != 2 {
		t.Fatalf("runs: %+v", a.Runs)
	}
	run := a.Runs.Steps[1]
	if run.ID != "run" {
		t.Fatalf("second step id %q; outputs refer to steps.run", run.ID)
	}
	src, err := os.ReadFile(filepath.Join(moduleRoot(t), "action", "inputs.go"))
	if err != nil {
		t.Fatal(err)
	}
	var read []string
	for _, m := range regexp.MustCompile(`GetInput\("([a-z-]+)"\)|boolInput\(a, "([a-z-]+)"`).FindAllStringSubmatch(string(src), -1) {
		read = append(read, m[1]+m[2])
	}
	sort.Strings(read)
	var declared, passed []string
	for name := range a.Inputs {
		if name != "signet-binary" { // read by the install step, not the Go code
			declared = append(declared, name)
		}
	}
	sort.Strings(declared)
	for k, v := range run.Env {
		name, ok := strings.CutPrefix(k, "INPUT_")
		if !ok {
			continue
		}
		name = strings.ToLower(name)
		passed = append(passed, name)
		if v != "${{ inputs."+name+" }}" {
			t.Errorf("%s = %q, want ${{ inputs.%s }}", k, v, name)
		}
	}
	sort.Strings(passed)
	if !slices.Equal(read, declared) || !slices.Equal(passed, declared) {
		t.Errorf("inputs disagree:\n  action.yml   %v\n  passed (env) %v\n  read (Go)    %v", declared, passed, read)
	}

	report, err := os.ReadFile(filepath.Join(moduleRoot(t), "action", "report.go"))
	if err != nil {
		t.Fatal(err)
	}
	var set []string
	for _, m := range regexp.MustCompile(`SetOutput\("([a-z-]+)"`).FindAllStringSubmatch(string(report), -1) {
		set = append(set, m[1])
	}
	sort.Strings(set)
	var outs []string
	for name, o := range a.Outputs {
		outs = append(outs, name)
		if o.Value != "${{ steps.run.outputs."+name+" }}" {
			t.Errorf("output %s value %q", name, o.Value)
		}
	}
	sort.Strings(outs)
	if !slices.Equal(set, outs) {
		t.Errorf("outputs disagree: action.yml %v, Go sets %v", outs, set)
	}
}

// modes are the values of the mode input, from the Mode constants.
func modes(t *testing.T) []string {
	src, err := os.ReadFile(filepath.Join(moduleRoot(t), "action", "inputs.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^\s*Mode[A-Za-z]+ Mode = "([a-z]+)"`).FindAllStringSubmatch(string(src), -1) {
		out = append(out, m[1])
	}
	if len(out) < 4 {
		t.Fatalf("modes found in inputs.go: %v", out)
	}
	return out
}

// TestActionDocumented checks docs/github-action.md and action.yml describe
// every mode, input and output the code has.
func TestActionDocumented(t *testing.T) {
	a := readActionYML(t)
	raw, err := os.ReadFile(filepath.Join(moduleRoot(t), "docs", "github-action.md"))
	if err != nil {
		t.Fatal(err)
	}
	// section is the text under a "## " heading, up to the next one.
	section := func(heading string) string {
		_, rest, ok := strings.Cut(string(raw), "\n## "+heading+"\n")
		if !ok {
			t.Fatalf("docs/github-action.md has no section %q", heading)
		}
		body, _, _ := strings.Cut(rest, "\n## ")
		return body
	}
	inputs, outputs, modesDoc := section("Inputs"), section("Outputs"), section("Modes")
	// A row names one or more inputs: "| `predicate-type`, `predicate` |";
	// "`certificate-identity` / `-regexp`" names both.
	inRow := func(doc, name string) bool {
		base, isRegexp := strings.CutSuffix(name, "-regexp")
		return regexp.MustCompile("(?m)^\\| [^|]*`"+regexp.QuoteMeta(name)+"`").MatchString(doc) ||
			isRegexp && strings.Contains(doc, "| `"+base+"` / `-regexp`")
	}
	for name := range a.Inputs {
		if !inRow(inputs, name) && !(name == "mode" && inRow(modesDoc, name)) {
			t.Errorf("input %s has no row in the Inputs section of docs/github-action.md", name)
		}
	}
	for name := range a.Outputs {
		if !inRow(outputs, name) {
			t.Errorf("output %s has no row in the Outputs section of docs/github-action.md", name)
		}
	}
	for _, m := range modes(t) {
		if !strings.Contains(modesDoc, "| `"+m+"`") {
			t.Errorf("mode %s has no row in the Modes section of docs/github-action.md", m)
		}
		if !regexp.MustCompile(`\b` + m + ` \(`).MatchString(a.Inputs["mode"].Description) {
			t.Errorf("action.yml's mode description does not describe %s (as \"%s (...)\"): %q", m, m, a.Inputs["mode"].Description)
		}
	}
}

// TestExampleWorkflowsUseDeclaredInputs parses every example workflow and
// checks each signet step passes only inputs action.yml declares, with a
// mode the action has, that later steps read only outputs it declares, and
// that signing jobs ask for the id-token permission.
func TestExampleWorkflowsUseDeclaredInputs(t *testing.T) {
	a := readActionYML(t)
	files, _ := filepath.Glob(filepath.Join(moduleRoot(t), "examples", "github", "*.yml"))
	if len(files) < 3 {
		t.Fatalf("examples: %v", files)
	}
	// The buildpack examples for other platforms (kpack, Tekton) are not
	// workflows.
	pack, _ := filepath.Glob(filepath.Join(moduleRoot(t), "examples", "buildpack", "github-*.yml"))
	if len(pack) == 0 {
		t.Fatal("no examples/buildpack/github-*.yml")
	}
	files = append(files, pack...)
	allModes := modes(t)
	outputRef := regexp.MustCompile(`steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)`)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var wf struct {
			Permissions map[string]string `yaml:"permissions"`
			Jobs        map[string]struct {
				Permissions map[string]string `yaml:"permissions"`
				Steps       []struct {
					ID   string            `yaml:"id"`
					Uses string            `yaml:"uses"`
					With map[string]string `yaml:"with"`
				} `yaml:"steps"`
			} `yaml:"jobs"`
		}
		if err := yaml.Unmarshal(raw, &wf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		uses := 0
		signetSteps := map[string]bool{}
		for jobName, job := range wf.Jobs {
			for _, st := range job.Steps {
				if !strings.HasPrefix(st.Uses, "signet-dev/signet@") {
					continue
				}
				uses++
				if st.ID != "" {
					signetSteps[st.ID] = true
				}
				for k := range st.With {
					if _, ok := a.Inputs[k]; !ok {
						t.Errorf("%s job %s: input %q is not in action.yml", filepath.Base(f), jobName, k)
					}
				}
				if m, ok := st.With["mode"]; ok && !slices.Contains(allModes, m) {
					t.Errorf("%s job %s: mode %q is not one of %v", filepath.Base(f), jobName, m, allModes)
				}
				if st.With["mode"] != "verify" && job.Permissions["id-token"] != "write" && wf.Permissions["id-token"] != "write" {
					t.Errorf("%s job %s signs without permissions: id-token: write", filepath.Base(f), jobName)
				}
			}
		}
		if uses == 0 {
			t.Errorf("%s does not use the action", filepath.Base(f))
		}
		for _, m := range outputRef.FindAllStringSubmatch(string(raw), -1) {
			if _, ok := a.Outputs[m[2]]; signetSteps[m[1]] && !ok {
				t.Errorf("%s reads output %s of signet step %s; action.yml has no such output", filepath.Base(f), m[2], m[1])
			}
		}
	}
}
