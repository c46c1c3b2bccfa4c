// Package provenance makes the SLSA v1 provenance predicate of finished
// Tekton runs in the shape of Tekton Chains' slsa/v2alpha4 format
// (pkg/chains/formats/slsa/v2alpha4 in tektoncd/chains), so that policies
// written against Chains' provenance keep working.
package provenance

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	attestation "github.com/in-toto/attestation/go/v1"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signet-dev/signet/tekton/artifacts"
)

const (
	// BuildType is Chains' default buildType (its build_types package).
	BuildType = "https://tekton.dev/chains/v2/slsa"
	// BuildTypeTekton is Chains' alternative, which v2alpha4 supports: it adds
	// the run's labels and annotations to internalParameters and each child
	// TaskRun, whole, to its pipelineTask resolved dependency.
	BuildTypeTekton = "https://tekton.dev/chains/v2/slsa-tekton"
	// DefaultBuilderID is Chains' default builder.id (its config package).
	DefaultBuilderID = "https://tekton.dev/chains/v2"
)

// Options choose the builder and build type, as Chains' builder.id and
// builddefinition.buildtype settings do.
type Options struct {
	BuilderID string // "" = DefaultBuilderID
	BuildType string // "" = BuildType
}

// Names Chains gives resolved dependencies and byproducts
// (internal/resolved_dependencies, v2alpha4/internal/{taskrun,pipelinerun}).
const (
	taskConfigName         = "task"
	pipelineConfigName     = "pipeline"
	pipelineTaskConfigName = "pipelineTask"
	stepActionPrefix       = "stepAction/"
	inputResultName        = "inputs/result"
	featureFlagsKey        = "tekton-pipelines-feature-flags"
	jsonMediaType          = "application/json"
)

// ErrUnsupportedBuildType: Options.BuildType is neither of Chains' two.
var ErrUnsupportedBuildType = errors.New("unsupported build type")

// TaskRun returns the predicate (JSON, protojson of in-toto attestation's
// go/predicates/provenance/v1 Provenance, validated) of a finished TaskRun;
// found is artifacts.TaskRun(tr), whose Inputs it lists. A failed run has
// provenance too.
func TaskRun(tr *v1.TaskRun, found artifacts.Found, o Options) ([]byte, error) {
	if tr == nil {
		return nil, errors.New("provenance: no TaskRun")
	}
	buildType, builderID, err := o.resolve()
	if err != nil {
		return nil, err
	}
	external := map[string]any{"runSpec": tr.Spec}
	if isRemote(tr.Spec.TaskRef) {
		if cs := configSource(tr.Status.Provenance); cs != nil {
			external["buildConfigSource"] = cs
		}
	}
	deps, err := taskRunDependencies(tr, found.Inputs)
	if err != nil {
		return nil, err
	}
	byproducts, err := taskRunByproducts(tr)
	if err != nil {
		return nil, err
	}
	return predicate(buildType, builderID, external, internalParameters(buildType, tr.Status.Provenance, tr.ObjectMeta), deps,
		string(tr.UID), tr.Status.StartTime, tr.Status.CompletionTime, byproducts)
}

// PipelineRun returns the predicate of a finished PipelineRun, carrying its
// child TaskRuns as Chains' deep inspection does: each pipeline task's
// resolved dependencies (task ref, step and sidecar images), their results as
// byproducts. children are those given to artifacts.PipelineRun, and found
// what it returned.
func PipelineRun(pr *v1.PipelineRun, children []*v1.TaskRun, found artifacts.Found, o Options) ([]byte, error) {
	if pr == nil {
		return nil, errors.New("provenance: no PipelineRun")
	}
	buildType, builderID, err := o.resolve()
	if err != nil {
		return nil, err
	}
	external := map[string]any{"runSpec": pr.Spec}
	if pr.Spec.PipelineRef != nil && remote(pr.Spec.PipelineRef.Resolver) {
		if cs := configSource(pr.Status.Provenance); cs != nil {
			external["buildConfigSource"] = cs
		}
	}
	kids, _ := artifacts.Children(pr, children) // artifacts.PipelineRun reports the problems
	deps, err := pipelineRunDependencies(pr, kids, found.Inputs, buildType)
	if err != nil {
		return nil, err
	}
	byproducts, err := results("pipelineRunResults", pr.Name, artifacts.PipelineRunResults(pr.Status.Results))
	if err != nil {
		return nil, err
	}
	for _, tr := range kids {
		bp, err := taskRunByproducts(tr)
		if err != nil {
			return nil, err
		}
		byproducts = append(byproducts, bp...)
	}
	return predicate(buildType, builderID, external, internalParameters(buildType, pr.Status.Provenance, pr.ObjectMeta), deps,
		string(pr.UID), pr.Status.StartTime, pr.Status.CompletionTime, byproducts)
}

func (o Options) resolve() (buildType, builderID string, err error) {
	buildType, builderID = o.BuildType, o.BuilderID
	if buildType == "" {
		buildType = BuildType
	}
	if builderID == "" {
		builderID = DefaultBuilderID
	}
	if buildType != BuildType && buildType != BuildTypeTekton {
		return "", "", fmt.Errorf("provenance: %w %q (Chains' are %s and %s)", ErrUnsupportedBuildType, buildType, BuildType, BuildTypeTekton)
	}
	return buildType, builderID, nil
}

func predicate(buildType, builderID string, external, internal map[string]any, deps []*attestation.ResourceDescriptor,
	uid string, start, end *metav1.Time, byproducts []*attestation.ResourceDescriptor) ([]byte, error) {
	ext, err := toStruct(external)
	if err != nil {
		return nil, fmt.Errorf("provenance: externalParameters: %w", err)
	}
	in, err := toStruct(internal)
	if err != nil {
		return nil, fmt.Errorf("provenance: internalParameters: %w", err)
	}
	md := &slsa.BuildMetadata{InvocationId: uid}
	if start != nil {
		md.StartedOn = timestamppb.New(start.UTC())
	}
	if end != nil {
		md.FinishedOn = timestamppb.New(end.UTC())
	}
	p := &slsa.Provenance{
		BuildDefinition: &slsa.BuildDefinition{
			BuildType:            buildType,
			ExternalParameters:   ext,
			InternalParameters:   in,
			ResolvedDependencies: deps,
		},
		RunDetails: &slsa.RunDetails{
			Builder:    &slsa.Builder{Id: builderID},
			Metadata:   md,
			Byproducts: byproducts,
		},
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	return protojson.Marshal(p)
}

// toStruct goes through JSON, as Chains does, so Tekton's types appear with
// their JSON names.
func toStruct(m map[string]any) (*structpb.Struct, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(b, s); err != nil {
		return nil, err
	}
	return s, nil
}

// isRemote: Chains records buildConfigSource only for a ref a remote resolver
// fetched (not the in-cluster "Cluster" resolver).
func isRemote(ref *v1.TaskRef) bool { return ref != nil && remote(ref.Resolver) }

func remote(r v1.ResolverName) bool { return r != "" && r != "Cluster" }

// configSource is Chains' buildConfigSource {ref, repository, path}. Chains
// takes ref from whichever digest its map yields first; here the
// alphabetically first algorithm, so it is stable.
func configSource(p *v1.Provenance) map[string]string {
	if p == nil || p.RefSource == nil {
		return nil
	}
	ref := ""
	if algs := slices.Sorted(maps.Keys(p.RefSource.Digest)); len(algs) > 0 {
		ref = algs[0] + ":" + p.RefSource.Digest[algs[0]]
	}
	return map[string]string{"ref": ref, "repository": p.RefSource.URI, "path": p.RefSource.EntryPoint}
}

// internalParameters: the pipeline controller's feature flags, and for the
// Tekton build type the run's labels and annotations.
func internalParameters(buildType string, p *v1.Provenance, meta metav1.ObjectMeta) map[string]any {
	in := map[string]any{}
	if p != nil && p.FeatureFlags != nil {
		in[featureFlagsKey] = *p.FeatureFlags
	}
	if buildType == BuildTypeTekton {
		in["labels"] = meta.Labels
		in["annotations"] = meta.Annotations
	}
	return in
}

func refDependency(name string, p *v1.Provenance) *attestation.ResourceDescriptor {
	if p == nil || p.RefSource == nil {
		return nil
	}
	return &attestation.ResourceDescriptor{Name: name, Uri: p.RefSource.URI, Digest: maps.Clone(p.RefSource.Digest)}
}

// taskRunDependencies in Chains' order (resolved_dependencies.TaskRun): the
// task, step then sidecar images, inputs named by step results, remote
// StepActions, the TaskRun's own inputs; duplicates dropped.
func taskRunDependencies(tr *v1.TaskRun, inputs []artifacts.Artifact) ([]*attestation.ResourceDescriptor, error) {
	var deps []*attestation.ResourceDescriptor
	if d := refDependency(taskConfigName, tr.Status.Provenance); d != nil {
		deps = append(deps, d)
	}
	images, err := imageDependencies(tr)
	if err != nil {
		return nil, err
	}
	deps = append(deps, images...)
	for _, in := range inputs {
		if in.Step != "" {
			deps = append(deps, inputDependency(in))
		}
	}
	deps = append(deps, stepActions(tr)...)
	for _, in := range inputs {
		if in.Step == "" {
			deps = append(deps, inputDependency(in))
		}
	}
	return dedup(deps), nil
}

// pipelineRunDependencies in Chains' order (resolved_dependencies.PipelineRun):
// the pipeline, then per child its pipeline task, remote StepActions, step
// and sidecar images, then the inputs; duplicates dropped.
func pipelineRunDependencies(pr *v1.PipelineRun, kids []*v1.TaskRun, inputs []artifacts.Artifact, buildType string) ([]*attestation.ResourceDescriptor, error) {
	var deps []*attestation.ResourceDescriptor
	if d := refDependency(pipelineConfigName, pr.Status.Provenance); d != nil {
		deps = append(deps, d)
	}
	for _, tr := range kids {
		task := refDependency(pipelineTaskConfigName, tr.Status.Provenance)
		if buildType == BuildTypeTekton {
			// The Tekton build type carries the whole TaskRun, with or
			// without a ref.
			content, err := json.Marshal(tr)
			if err != nil {
				return nil, fmt.Errorf("provenance: TaskRun %s: %w", tr.Name, err)
			}
			if task == nil {
				task = &attestation.ResourceDescriptor{Name: pipelineTaskConfigName}
			}
			task.Content = content
		}
		if task != nil {
			deps = append(deps, task)
		}
		deps = append(deps, stepActions(tr)...)
		images, err := imageDependencies(tr)
		if err != nil {
			return nil, err
		}
		deps = append(deps, images...)
	}
	for _, in := range inputs {
		deps = append(deps, inputDependency(in))
	}
	return dedup(deps), nil
}

func inputDependency(a artifacts.Artifact) *attestation.ResourceDescriptor {
	return &attestation.ResourceDescriptor{Name: inputResultName, Uri: a.URI, Digest: maps.Clone(a.Digest)}
}

// stepActions are the StepActions a remote resolver fetched, named
// stepAction/<step>.
func stepActions(tr *v1.TaskRun) []*attestation.ResourceDescriptor {
	var deps []*attestation.ResourceDescriptor
	for _, st := range tr.Status.Steps {
		if d := refDependency(stepActionPrefix+st.Name, st.Provenance); d != nil {
			deps = append(deps, d)
		}
	}
	return deps
}

// imageDependencies are the step and sidecar images the kubelet ran, by the
// digest it reports: oci://<repository> with the digest. A container that
// never started has no imageID and is left out (Chains fails on it, which
// would leave a failed run without provenance).
func imageDependencies(tr *v1.TaskRun) ([]*attestation.ResourceDescriptor, error) {
	var deps []*attestation.ResourceDescriptor
	add := func(kind, name, imageID string) error {
		if imageID == "" {
			return nil
		}
		repo, digest, ok := strings.Cut(strings.TrimPrefix(imageID, "docker-pullable://"), "@")
		alg, hex, ok2 := strings.Cut(digest, ":")
		if !ok || !ok2 || repo == "" || alg == "" || hex == "" || strings.Contains(digest, "@") || strings.Contains(hex, ":") {
			return fmt.Errorf("provenance: TaskRun %s %s %q: imageID %q is not <image>@<algorithm>:<hex>", tr.Name, kind, name, imageID)
		}
		deps = append(deps, &attestation.ResourceDescriptor{Uri: "oci://" + repo, Digest: map[string]string{alg: hex}})
		return nil
	}
	for _, st := range tr.Status.Steps {
		if err := add("step", st.Name, st.ImageID); err != nil {
			return nil, err
		}
	}
	for _, sc := range tr.Status.Sidecars {
		if err := add("sidecar", sc.Name, sc.ImageID); err != nil {
			return nil, err
		}
	}
	return deps, nil
}

// dedup drops a dependency equal (uri, digest, content) to an earlier one,
// except the task, pipeline and StepAction refs, which Chains always keeps.
func dedup(deps []*attestation.ResourceDescriptor) []*attestation.ResourceDescriptor {
	seen := map[string]bool{}
	out := make([]*attestation.ResourceDescriptor, 0, len(deps))
	for _, d := range deps {
		var key strings.Builder
		key.WriteString(d.Uri)
		for _, alg := range slices.Sorted(maps.Keys(d.Digest)) {
			key.WriteString("\x00" + alg + "=" + d.Digest[alg])
		}
		key.WriteString("\x00\x00")
		key.Write(d.Content)
		k := key.String()
		keep := d.Name == taskConfigName || d.Name == pipelineConfigName || strings.HasPrefix(d.Name, stepActionPrefix)
		if seen[k] && !keep {
			continue
		}
		seen[k] = true
		out = append(out, d)
	}
	return out
}

// taskRunByproducts: the TaskRun's results, then its steps', that are not
// subjects (Chains' v2alpha4 taskrun.ByProducts).
func taskRunByproducts(tr *v1.TaskRun) ([]*attestation.ResourceDescriptor, error) {
	bp, err := results("taskRunResults", tr.Name, artifacts.TaskRunResults(tr.Status.Results))
	if err != nil {
		return nil, err
	}
	var steps []artifacts.Result
	for _, st := range tr.Status.Steps {
		steps = append(steps, artifacts.TaskRunResults(st.Results)...)
	}
	sbp, err := results("stepResults", tr.Name, steps)
	if err != nil {
		return nil, err
	}
	return append(bp, sbp...), nil
}

// results are byproducts <kind>/<run>/<result> with the value's JSON,
// leaving out what Chains reads as subjects: image hints (*IMAGE_URL,
// *IMAGE_DIGEST, IMAGES) and *ARTIFACT_OUTPUTS that are build artifacts or
// not objects (results.GetResultsWithoutBuildArtifacts).
func results(kind, run string, rs []artifacts.Result) ([]*attestation.ResourceDescriptor, error) {
	var out []*attestation.ResourceDescriptor
	for _, r := range rs {
		if strings.HasSuffix(r.Name, "IMAGE_URL") || strings.HasSuffix(r.Name, "IMAGE_DIGEST") || r.Name == "IMAGES" {
			continue
		}
		if strings.HasSuffix(r.Name, "ARTIFACT_OUTPUTS") && (r.Value.ObjectVal == nil || r.Value.ObjectVal["isBuildArtifact"] == "true") {
			continue
		}
		v := r.Value
		if v.Type == "" { // objects built in code; the API server always sets it
			switch {
			case v.ObjectVal != nil:
				v.Type = v1.ParamTypeObject
			case v.ArrayVal != nil:
				v.Type = v1.ParamTypeArray
			default:
				v.Type = v1.ParamTypeString
			}
		}
		content, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("provenance: result %s of %s: %w", r.Name, run, err)
		}
		out = append(out, &attestation.ResourceDescriptor{Name: kind + "/" + run + "/" + r.Name, Content: content, MediaType: jsonMediaType})
	}
	return out, nil
}
