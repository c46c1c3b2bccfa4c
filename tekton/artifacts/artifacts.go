// Package artifacts reads what a finished Tekton run produced and consumed:
// Tekton Chains' type hints in its results (the rules of Chains' slsa/v2alpha4
// format, pkg/artifacts/signable.go and pkg/chains/formats/slsa/extract in
// tektoncd/chains) and TEP-0147 status.artifacts.
//
// A run's results are written by the build itself, so everything here is
// untrusted input: malformed hints are skipped and reported, sizes are capped,
// nothing is fatal.
package artifacts

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
)

// Limits on what one run may name; past them the rest is ignored (and said so
// in Problems), so a run cannot make the controller sign without end.
const (
	MaxSubjects = 1000 // Images + Artifacts
	MaxInputs   = 1000
	MaxValueLen = 2048 // one URI or image reference
	maxProblems = 100
)

// Image is an OCI image a run produced (IMAGE_URL/IMAGE_DIGEST pairs, IMAGES,
// *_IMAGE_URL/*_IMAGE_DIGEST, as Chains reads them).
type Image struct {
	// Repository is the repository as Chains names the subject: the reference
	// as written without tag, normalized as go-containerregistry does
	// ("alpine" is "index.docker.io/library/alpine").
	Repository string
	Digest     string // "sha256:<64 hex>"
	Source     string // what named it, e.g. `result IMAGE_URL/IMAGE_DIGEST` or `taskrun build/result IMAGES`
}

// Reference is the image by digest.
func (i Image) Reference() string { return i.Repository + "@" + i.Digest }

// Artifact is any other output or an input: a URI with digests.
type Artifact struct {
	URI    string
	Digest map[string]string // algorithm -> lower-case hex, e.g. {"sha256": "..."}, {"sha1": "..."} for git commits
	Source string
	// Step is the step whose result named it ("" for a run's own results,
	// params and status.artifacts). Chains places step-level inputs apart
	// from the run's in resolvedDependencies.
	Step string
}

// Found is what a run produced and consumed.
type Found struct {
	// Images are image outputs, deduplicated, sorted by Reference. A
	// *ARTIFACT_OUTPUTS build artifact whose uri is an image reference naming
	// its registry, with a sha256 digest, is an image too: Chains signs it as
	// one.
	Images []Image
	// Artifacts are the other outputs Chains' slsa/v2alpha4 makes subjects:
	// *ARTIFACT_OUTPUTS with isBuildArtifact "true", and status.artifacts
	// outputs with buildOutput. Deduplicated, sorted by URI.
	Artifacts []Artifact
	// Inputs are materials: CHAINS-GIT_URL/CHAINS-GIT_COMMIT (a git+…git URI
	// with its commit), *ARTIFACT_INPUTS, status.artifacts inputs.
	// Deduplicated, in the order Chains lists them in resolvedDependencies.
	Inputs []Artifact
	// Legacy are outputs that Chains' older formats (in-toto, slsa/v1,
	// slsa/v2alpha3) make subjects but slsa/v2alpha4 records only as
	// byproducts: *ARTIFACT_URI/*ARTIFACT_DIGEST pairs and *ARTIFACT_OUTPUTS
	// without isBuildArtifact "true". Not subjects unless the caller opts in.
	Legacy []Artifact
	// Problems name each malformed hint skipped, e.g.
	// `result IMAGE_DIGEST "abc": not <algorithm>:<hex>`; never fatal.
	Problems []string
}

// TaskRun reads a TaskRun's results, its steps' results and status.artifacts.
func TaskRun(tr *v1.TaskRun) Found {
	s := newScan()
	if tr == nil {
		return s.finish()
	}
	s.taskRunOutputs("", tr)
	s.stepInputs("", tr)
	s.taskInputs("", tr)
	s.statusInputs("", tr)
	return s.finish()
}

// PipelineRun reads the PipelineRun's own results and, as Chains' deep
// inspection does, those of its child TaskRuns (children: the TaskRuns listed
// in pr.Status.ChildReferences, already fetched by the caller; see Children).
func PipelineRun(pr *v1.PipelineRun, children []*v1.TaskRun) Found {
	s := newScan()
	if pr == nil {
		return s.finish()
	}
	kids, problems := Children(pr, children)
	for _, p := range problems {
		s.problem("%s", p)
	}
	// Subjects: children first, then the PipelineRun, as Chains reads them.
	for _, tr := range kids {
		s.taskRunOutputs(childScope(tr), tr)
	}
	prResults := PipelineRunResults(pr.Status.Results)
	s.outputs("", prResults, true)

	// Inputs in Chains' resolvedDependencies order: the children's step
	// results, the PipelineRun's *ARTIFACT_INPUTS, each child's own, then
	// the PipelineRun's git.
	for _, tr := range kids {
		s.stepInputs(childScope(tr), tr)
	}
	s.resultInputs("", "", prResults)
	for _, tr := range kids {
		s.taskInputs(childScope(tr), tr)
	}
	var defaults []v1.ParamSpec
	if pr.Status.PipelineSpec != nil {
		defaults = pr.Status.PipelineSpec.Params
	}
	s.git("", "", gitHints(defaults, pr.Spec.Params, prResults))
	for _, tr := range kids {
		s.statusInputs(childScope(tr), tr)
	}
	return s.finish()
}

// Children are the child TaskRuns a PipelineRun's provenance covers, in
// Chains' order: by pipeline task (status.pipelineSpec tasks, then finally),
// each task's TaskRuns as status.childReferences lists them, only those that
// ran (completionTime set). A TaskRun not listed in status.childReferences is
// left out and named in problems: its results are not this run's.
//
// Chains matches children to pipeline tasks by their tekton.dev/pipelineTask
// label; this reads the PipelineRun's own childReferences, which the pipeline
// controller writes and the child cannot change.
func Children(pr *v1.PipelineRun, children []*v1.TaskRun) (ordered []*v1.TaskRun, problems []string) {
	if pr == nil {
		return nil, nil
	}
	given := map[string]*v1.TaskRun{}
	for _, tr := range children {
		if tr == nil {
			continue
		}
		if tr.Namespace != "" && pr.Namespace != "" && tr.Namespace != pr.Namespace {
			problems = append(problems, fmt.Sprintf("TaskRun %s/%s is in another namespace than PipelineRun %s/%s; left out", tr.Namespace, tr.Name, pr.Namespace, pr.Name))
			continue
		}
		if _, dup := given[tr.Name]; !dup {
			given[tr.Name] = tr
		}
	}
	listed := map[string]bool{}
	var refs []v1.ChildStatusReference
	for _, ref := range pr.Status.ChildReferences {
		if (ref.Kind == "" || ref.Kind == "TaskRun") && !listed[ref.Name] {
			listed[ref.Name] = true
			refs = append(refs, ref)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(given)) {
		if !listed[name] {
			problems = append(problems, fmt.Sprintf("TaskRun %s is not in the PipelineRun's status.childReferences; left out", name))
		}
	}
	spec := pr.Status.PipelineSpec
	if spec == nil {
		return nil, problems
	}
	used := map[string]bool{}
	for _, task := range slices.Concat(spec.Tasks, spec.Finally) {
		for _, ref := range refs {
			if ref.PipelineTaskName != task.Name || used[ref.Name] {
				continue
			}
			used[ref.Name] = true
			tr := given[ref.Name]
			if tr == nil {
				problems = append(problems, fmt.Sprintf("TaskRun %s (pipeline task %s) was not given; its results are left out", ref.Name, task.Name))
				continue
			}
			if tr.Status.CompletionTime == nil {
				continue // did not run; Chains leaves it out too
			}
			ordered = append(ordered, tr)
		}
	}
	return ordered, problems
}

func childScope(tr *v1.TaskRun) string { return "taskrun " + tr.Name + "/" }

// scan accumulates one Found.
type scan struct {
	f                Found
	images           map[string]bool
	artifacts        map[string][]int // URI -> indexes in f.Artifacts
	legacy           map[string][]int
	inputs           map[string][]int
	overSubjects     int
	overInputs       int
	overLegacy       int
	problemsNotShown int
}

func newScan() *scan {
	return &scan{images: map[string]bool{}, artifacts: map[string][]int{}, legacy: map[string][]int{}, inputs: map[string][]int{}}
}

func (s *scan) problem(format string, args ...any) {
	if len(s.f.Problems) >= maxProblems {
		s.problemsNotShown++
		return
	}
	s.f.Problems = append(s.f.Problems, fmt.Sprintf(format, args...))
}

func (s *scan) subjects() int { return len(s.f.Images) + len(s.f.Artifacts) }

func (s *scan) addImage(img Image) {
	ref := img.Reference()
	if s.images[ref] {
		return
	}
	if s.subjects() >= MaxSubjects {
		s.overSubjects++
		return
	}
	s.images[ref] = true
	s.f.Images = append(s.f.Images, img)
}

func (s *scan) addArtifact(a Artifact) {
	if !merge(s.f.Artifacts, s.artifacts, a) {
		if s.subjects() >= MaxSubjects {
			s.overSubjects++
			return
		}
		s.artifacts[a.URI] = append(s.artifacts[a.URI], len(s.f.Artifacts))
		s.f.Artifacts = append(s.f.Artifacts, a)
	}
}

func (s *scan) addLegacy(a Artifact) {
	if !merge(s.f.Legacy, s.legacy, a) {
		if len(s.f.Legacy) >= MaxSubjects {
			s.overLegacy++
			return
		}
		s.legacy[a.URI] = append(s.legacy[a.URI], len(s.f.Legacy))
		s.f.Legacy = append(s.f.Legacy, a)
	}
}

func (s *scan) addInput(a Artifact) {
	if !merge(s.f.Inputs, s.inputs, a) {
		if len(s.f.Inputs) >= MaxInputs {
			s.overInputs++
			return
		}
		s.inputs[a.URI] = append(s.inputs[a.URI], len(s.f.Inputs))
		s.f.Inputs = append(s.f.Inputs, a)
	}
}

// merge folds a into an entry of list with the same URI whose digests it
// shares and does not contradict (Chains merges on one common digest); it
// reports whether it did. The first entry's Source and place are kept.
func merge(list []Artifact, byURI map[string][]int, a Artifact) bool {
	i := match(list, byURI, a)
	if i < 0 {
		return false
	}
	for alg, hex := range a.Digest {
		list[i].Digest[alg] = hex
	}
	return true
}

// match is the index of the entry a merges into, or -1.
func match(list []Artifact, byURI map[string][]int, a Artifact) int {
	for _, i := range byURI[a.URI] {
		common, conflict := false, false
		for alg, hex := range a.Digest {
			if h, ok := list[i].Digest[alg]; ok {
				if h == hex {
					common = true
				} else {
					conflict = true
				}
			}
		}
		if common && !conflict {
			return i
		}
	}
	return -1
}

func (s *scan) finish() Found {
	// Legacy subjects already subjects by v2alpha4's rules are not repeated.
	legacy := s.f.Legacy[:0:0]
	for _, a := range s.f.Legacy {
		if match(s.f.Artifacts, s.artifacts, a) >= 0 {
			continue
		}
		if hex := a.Digest["sha256"]; hex != "" && namesRegistry(a.URI) {
			if img, err := parseImage(a.URI, "sha256:"+hex); err == nil && s.images[img.Reference()] {
				continue
			}
		}
		legacy = append(legacy, a)
	}
	s.f.Legacy = legacy
	slices.SortFunc(s.f.Images, func(a, b Image) int { return strings.Compare(a.Reference(), b.Reference()) })
	byURI := func(a, b Artifact) int {
		return cmp.Or(strings.Compare(a.URI, b.URI), strings.Compare(digestString(a.Digest), digestString(b.Digest)))
	}
	slices.SortFunc(s.f.Artifacts, byURI)
	slices.SortFunc(s.f.Legacy, byURI)
	// The limits are always said, past maxProblems too.
	for _, over := range []struct {
		n     int
		what  string
		limit int
	}{{s.overSubjects, "subjects", MaxSubjects}, {s.overLegacy, "legacy subjects", MaxSubjects}, {s.overInputs, "inputs", MaxInputs}} {
		if over.n > 0 {
			s.f.Problems = append(s.f.Problems, fmt.Sprintf("%d more %s than the limit of %d ignored", over.n, over.what, over.limit))
		}
	}
	if s.problemsNotShown > 0 {
		s.f.Problems = append(s.f.Problems, fmt.Sprintf("%d more problems not listed", s.problemsNotShown))
	}
	return s.f
}

func digestString(d map[string]string) string {
	var parts []string
	for _, alg := range slices.Sorted(maps.Keys(d)) {
		parts = append(parts, alg+":"+d[alg])
	}
	return strings.Join(parts, ",")
}
