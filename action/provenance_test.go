package action_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/action"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestReadRunInfo(t *testing.T) {
	claims := map[string]any{
		"repository": repo, "ref": ref, "sha": commit, "workflow_ref": workflowRef,
		"job_workflow_ref": "acme/builders/.github/workflows/go.yml@refs/tags/v2", "event_name": "push",
		"repository_id": repoID, "repository_owner_id": ownerID, "runner_environment": "self-hosted",
		"run_id": runID, "run_attempt": "3",
	}
	t.Run("token fills what the runner lacks", func(t *testing.T) {
		// act sets no GITHUB_WORKFLOW_REF, RUNNER_ENVIRONMENT or IDs.
		r, err := action.ReadRunInfo(envOf(map[string]string{"GITHUB_REPOSITORY": repo, "GITHUB_SHA": commit}), nil, claims)
		if err != nil {
			t.Fatal(err)
		}
		if r.WorkflowRef != workflowRef || r.RunnerEnvironment != "self-hosted" || r.RunAttempt != "3" || r.ServerURL != "https://github.com" {
			t.Fatalf("%+v", r)
		}
		// A reusable workflow: the builder is the called workflow.
		p, err := action.Provenance(r, time.Unix(1700000000, 0))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(p), `"id":"https://github.com/acme/builders/.github/workflows/go.yml@refs/tags/v2"`) || !strings.Contains(string(p), `"startedOn":"2023-11-14T22:13:20Z"`) {
			t.Fatalf("%s", p)
		}
	})
	t.Run("event payload fills the IDs", func(t *testing.T) {
		c := map[string]any{}
		for k, v := range claims {
			if k != "repository_id" && k != "repository_owner_id" {
				c[k] = v
			}
		}
		var event map[string]any
		json.Unmarshal([]byte(`{"repository":{"id":42,"owner":{"id":7}}}`), &event)
		r, err := action.ReadRunInfo(envOf(nil), event, c)
		if err != nil || r.RepositoryID != "42" || r.RepositoryOwnerID != "7" {
			t.Fatalf("%+v %v", r, err)
		}
	})
	t.Run("nothing to go on", func(t *testing.T) {
		_, err := action.ReadRunInfo(envOf(map[string]string{"GITHUB_REPOSITORY": repo}), nil, nil)
		if err == nil || !strings.Contains(err.Error(), "GITHUB_REF, GITHUB_RUN_ID, GITHUB_SHA, GITHUB_WORKFLOW_REF") || !strings.Contains(err.Error(), "provenance: false") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("runner and token disagree", func(t *testing.T) {
		_, err := action.ReadRunInfo(envOf(map[string]string{"GITHUB_SHA": strings.Repeat("f", 40)}), nil, claims)
		if err == nil || !strings.Contains(err.Error(), `issued for sha="`+commit+`"`) {
			t.Fatalf("%v", err)
		}
	})
}

func TestWorkflowPath(t *testing.T) {
	for _, c := range []struct{ repo, ref, wfRef, want string }{
		{"o/r", "refs/heads/main", "o/r/.github/workflows/a.yml@refs/heads/main", ".github/workflows/a.yml"},
		// '@' in the ref (changesets tags) and in the path.
		{"o/r", "refs/tags/@scope/pkg@1.0.0", "o/r/.github/workflows/a.yml@refs/tags/@scope/pkg@1.0.0", ".github/workflows/a.yml"},
		{"o/r", "refs/heads/main", "o/r/.github/workflows/x@y.yml@refs/heads/main", ".github/workflows/x@y.yml"},
	} {
		r := &action.RunInfo{Repository: c.repo, Ref: c.ref, WorkflowRef: c.wfRef}
		got, err := r.WorkflowPath()
		if err != nil || got != c.want {
			t.Errorf("%s: %q %v, want %q", c.wfRef, got, err, c.want)
		}
	}
	r := &action.RunInfo{Repository: "o/r", Ref: "refs/heads/dev", WorkflowRef: "o/r/.github/workflows/a.yml@refs/heads/main"}
	if _, err := r.WorkflowPath(); err == nil {
		t.Error("a workflow ref of another ref was accepted")
	}
}

func TestProvenanceRefusesUnsupportedEvents(t *testing.T) {
	r := &action.RunInfo{ServerURL: "https://github.com", Repository: repo, Ref: ref, SHA: commit, WorkflowRef: workflowRef, JobWorkflowRef: workflowRef, RunID: runID, RunAttempt: "1"}
	for _, ev := range []string{"push", "release", "create", "workflow_dispatch"} {
		r.EventName = ev
		if _, err := action.Provenance(r, time.Now()); err != nil {
			t.Errorf("%s: %v", ev, err)
		}
	}
	for _, ev := range []string{"pull_request", "pull_request_target", "repository_dispatch", "issues"} {
		r.EventName = ev
		if _, err := action.Provenance(r, time.Now()); !errors.Is(err, action.ErrUnsupportedEvent) {
			t.Errorf("%s: %v", ev, err)
		}
	}
}
