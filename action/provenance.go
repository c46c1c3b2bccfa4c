package action

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	attestation "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// BuildType is GitHub's SLSA build type for a GitHub Actions workflow run, the
// one actions/attest-build-provenance writes
// (https://actions.github.io/buildtypes/workflow/v1).
const BuildType = "https://actions.github.io/buildtypes/workflow/v1"

// supportedEvents are the events the build type is defined for; its spec
// says it MUST NOT be used for others (pull_request semantics are ambiguous).
var supportedEvents = []string{"create", "release", "push", "workflow_dispatch"}

// ErrUnsupportedEvent: the run's event is outside the build type's scope.
var ErrUnsupportedEvent = errors.New("the GitHub Actions workflow build type is defined only for create, release, push and workflow_dispatch events")

// RunInfo is what provenance records about the workflow run. Each field comes
// from the runner environment (GITHUB_* variables, the event payload) and,
// where the environment lacks it, from the identity token, whose claims the
// CA verified and binds into the certificate.
type RunInfo struct {
	ServerURL         string // https://github.com
	Repository        string // owner/name
	RepositoryID      string
	RepositoryOwnerID string
	Ref               string // refs/heads/main
	SHA               string // commit
	WorkflowRef       string // owner/name/.github/workflows/x.yml@refs/heads/main
	JobWorkflowRef    string // the workflow the job runs (differs for reusable workflows)
	EventName         string
	RunnerEnvironment string // github-hosted, self-hosted
	RunID             string
	RunAttempt        string
}

// envClaim pairs a runner variable with the token claim of the same meaning.
type envClaim struct {
	env, claim string
	field      func(*RunInfo) *string
}

var runFields = []envClaim{
	{"GITHUB_REPOSITORY", "repository", func(r *RunInfo) *string { return &r.Repository }},
	{"GITHUB_REPOSITORY_ID", "repository_id", func(r *RunInfo) *string { return &r.RepositoryID }},
	{"GITHUB_REPOSITORY_OWNER_ID", "repository_owner_id", func(r *RunInfo) *string { return &r.RepositoryOwnerID }},
	{"GITHUB_REF", "ref", func(r *RunInfo) *string { return &r.Ref }},
	{"GITHUB_SHA", "sha", func(r *RunInfo) *string { return &r.SHA }},
	{"GITHUB_WORKFLOW_REF", "workflow_ref", func(r *RunInfo) *string { return &r.WorkflowRef }},
	{"", "job_workflow_ref", func(r *RunInfo) *string { return &r.JobWorkflowRef }},
	{"GITHUB_EVENT_NAME", "event_name", func(r *RunInfo) *string { return &r.EventName }},
	{"RUNNER_ENVIRONMENT", "runner_environment", func(r *RunInfo) *string { return &r.RunnerEnvironment }},
	{"GITHUB_RUN_ID", "run_id", func(r *RunInfo) *string { return &r.RunID }},
	{"GITHUB_RUN_ATTEMPT", "run_attempt", func(r *RunInfo) *string { return &r.RunAttempt }},
}

// ReadRunInfo gathers the run's facts from the environment, the event payload
// (repository and owner IDs when the variables are absent) and the token's
// claims. Where the environment and the token both speak they must agree:
// a token from another run would make provenance contradict its certificate.
func ReadRunInfo(getenv func(string) string, event map[string]any, claims map[string]any) (*RunInfo, error) {
	r := &RunInfo{ServerURL: strings.TrimRight(getenv("GITHUB_SERVER_URL"), "/")}
	if r.ServerURL == "" {
		r.ServerURL = "https://github.com"
	}
	for _, f := range runFields {
		v := ""
		if f.env != "" {
			v = strings.TrimSpace(getenv(f.env))
		}
		c := claimString(claims, f.claim)
		if v != "" && c != "" && v != c {
			return nil, fmt.Errorf("the identity token was issued for %s=%q but this job has %s=%q; the token must be requested by this job (ACTIONS_ID_TOKEN_REQUEST_URL), not passed in from elsewhere", f.claim, c, f.env, v)
		}
		if v == "" {
			v = c
		}
		*f.field(r) = v
	}
	// The event payload carries the numeric IDs on every event GitHub sends;
	// they too must match what the run already says.
	for _, f := range []struct {
		name  string
		value *string
		path  []string
	}{
		{"repository_id", &r.RepositoryID, []string{"repository", "id"}},
		{"repository_owner_id", &r.RepositoryOwnerID, []string{"repository", "owner", "id"}},
	} {
		ev := jsonNumber(event, f.path...)
		switch {
		case ev == "":
		case *f.value == "":
			*f.value = ev
		case *f.value != ev:
			return nil, fmt.Errorf("the event payload (GITHUB_EVENT_PATH) says %s=%s but the runner and token say %s; the payload is not this run's", strings.Join(f.path, "."), ev, *f.value)
		}
	}
	if r.JobWorkflowRef == "" {
		r.JobWorkflowRef = r.WorkflowRef
	}
	var missing []string
	for name, v := range map[string]string{
		"GITHUB_REPOSITORY": r.Repository, "GITHUB_REF": r.Ref, "GITHUB_SHA": r.SHA,
		"GITHUB_WORKFLOW_REF": r.WorkflowRef, "GITHUB_EVENT_NAME": r.EventName, "GITHUB_RUN_ID": r.RunID,
	} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("cannot describe the workflow run: %s not set and not in the identity token; provenance needs a GitHub Actions run (or set provenance: false)", strings.Join(missing, ", "))
	}
	if r.RunAttempt == "" {
		r.RunAttempt = "1"
	}
	return r, nil
}

// WorkflowPath is the workflow file path within the repository: workflow_ref
// without "<repository>/" and "@<ref>". Paths and refs may contain '@',
// so the ref is removed as a known suffix, as the build type's spec says.
func (r *RunInfo) WorkflowPath() (string, error) {
	p, ok := strings.CutPrefix(r.WorkflowRef, r.Repository+"/")
	if ok {
		p, ok = strings.CutSuffix(p, "@"+r.Ref)
	}
	if !ok || p == "" {
		return "", fmt.Errorf("workflow ref %q is not <repository>/<path>@<ref> for repository %q and ref %q", r.WorkflowRef, r.Repository, r.Ref)
	}
	return p, nil
}

// RunURL is the run attempt's URL, the provenance invocation ID.
func (r *RunInfo) RunURL() string {
	return r.ServerURL + "/" + r.Repository + "/actions/runs/" + r.RunID + "/attempts/" + r.RunAttempt
}

// Provenance builds the SLSA v1 provenance predicate (JSON) of the run in the
// GitHub Actions workflow build type. startedOn is when the build began as
// far as signet can tell (GitHub does not give steps the run's start time).
func Provenance(r *RunInfo, startedOn time.Time) ([]byte, error) {
	if !slices.Contains(supportedEvents, r.EventName) {
		return nil, fmt.Errorf("%w; this run was triggered by %q", ErrUnsupportedEvent, r.EventName)
	}
	path, err := r.WorkflowPath()
	if err != nil {
		return nil, err
	}
	repoURL := r.ServerURL + "/" + r.Repository
	external, err := structpb.NewStruct(map[string]any{
		"workflow": map[string]any{"ref": r.Ref, "repository": repoURL, "path": path},
	})
	if err != nil {
		return nil, err
	}
	gh := map[string]any{"event_name": r.EventName}
	for k, v := range map[string]string{"repository_id": r.RepositoryID, "repository_owner_id": r.RepositoryOwnerID, "runner_environment": r.RunnerEnvironment} {
		if v != "" {
			gh[k] = v
		}
	}
	internal, err := structpb.NewStruct(map[string]any{"github": gh})
	if err != nil {
		return nil, err
	}
	p := &slsa.Provenance{
		BuildDefinition: &slsa.BuildDefinition{
			BuildType:          BuildType,
			ExternalParameters: external,
			InternalParameters: internal,
			ResolvedDependencies: []*attestation.ResourceDescriptor{{
				Uri:    "git+" + repoURL + "@" + r.Ref,
				Digest: map[string]string{"gitCommit": r.SHA},
			}},
		},
		RunDetails: &slsa.RunDetails{
			Builder: &slsa.Builder{Id: r.ServerURL + "/" + r.JobWorkflowRef},
			Metadata: &slsa.BuildMetadata{
				InvocationId: r.RunURL(),
				StartedOn:    timestamppb.New(startedOn.UTC()),
			},
		},
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	return protojson.Marshal(p)
}

func claimString(claims map[string]any, name string) string {
	switch v := claims[name].(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

// jsonNumber reads a numeric ID at path in decoded JSON; IDs below 2^53
// survive float64 exactly, and GitHub's do.
func jsonNumber(m map[string]any, path ...string) string {
	var cur any = m
	for _, k := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = obj[k]
	}
	switch v := cur.(type) {
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case string:
		return v
	}
	return ""
}
