package action_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-dev/signet/action"
	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/server/servertest"
)

// The simulated run: repository acme/widget, release workflow on main, push.
const (
	repo        = "acme/widget"
	ref         = "refs/heads/main"
	commit      = "0123456789abcdef0123456789abcdef01234567"
	workflow    = ".github/workflows/release.yml"
	runID       = "4242"
	repoID      = "123456789"
	ownerID     = "987654321"
	workflowRef = repo + "/" + workflow + "@" + ref
	identity    = "https://github.com/" + workflowRef
)

// server is the real signet server with its development OIDC issuer.
type server struct {
	*servertest.Process
	Issuer   string
	RootPath string
	Root     *trust.Root
}

func startServer(t *testing.T) *server {
	t.Helper()
	p := servertest.Start(t, t.TempDir(), "--dev-oidc")
	raw, err := p.Get("/trust/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "trusted_root.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := trust.ParseRoot(raw)
	if err != nil {
		t.Fatal(err)
	}
	return &server{Process: p, Issuer: p.URL + "/dev/oidc", RootPath: path, Root: root}
}

// tokenURL is the id-token request URL a GitHub runner would be given, for a
// token with these claims. It ends in '?...' because clients append &audience=.
func (s *server) tokenURL(claims url.Values) string {
	q := url.Values{"kind": {"github"}, "repository": {repo}, "ref": {ref}, "sha": {commit}, "workflow": {workflow},
		"run_id": {runID}, "run_attempt": {"2"}, "repository_id": {repoID}, "repository_owner_id": {ownerID}, "event": {"push"}}
	for k, v := range claims {
		q[k] = v
	}
	return s.URL + "/dev/oidc/token?" + q.Encode()
}

// runnerEnv simulates a GitHub-hosted runner step: variables, the event
// payload, and the GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files.
type runnerEnv struct {
	t       *testing.T
	vars    map[string]string
	Dir     string
	Output  string
	Summary string
	Stdout  bytes.Buffer
}

func newRunner(t *testing.T, s *server) *runnerEnv {
	t.Helper()
	dir := t.TempDir()
	r := &runnerEnv{t: t, Dir: dir, Output: filepath.Join(dir, "github_output"), Summary: filepath.Join(dir, "step_summary")}
	for _, f := range []string{r.Output, r.Summary} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	event := filepath.Join(dir, "event.json")
	payload := `{"ref":"` + ref + `","after":"` + commit + `","repository":{"id":` + repoID + `,"full_name":"` + repo + `","owner":{"id":` + ownerID + `,"login":"acme"}}}`
	if err := os.WriteFile(event, []byte(payload), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "runner_temp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	r.vars = map[string]string{
		"GITHUB_ACTIONS":                 "true",
		"GITHUB_SERVER_URL":              "https://github.com",
		"GITHUB_REPOSITORY":              repo,
		"GITHUB_REPOSITORY_ID":           repoID,
		"GITHUB_REF":                     ref,
		"GITHUB_SHA":                     commit,
		"GITHUB_WORKFLOW_REF":            workflowRef,
		"GITHUB_EVENT_NAME":              "push",
		"GITHUB_EVENT_PATH":              event,
		"GITHUB_RUN_ID":                  runID,
		"GITHUB_RUN_ATTEMPT":             "2",
		"GITHUB_OUTPUT":                  r.Output,
		"GITHUB_STEP_SUMMARY":            r.Summary,
		"RUNNER_ENVIRONMENT":             "github-hosted",
		"RUNNER_TEMP":                    tmp,
		"INPUT_SERVER":                   s.URL,
		"INPUT_PROVENANCE":               "true",
		"INPUT_SHOW-SUMMARY":             "true",
		"INPUT_PUSH-TO-REGISTRY":         "false",
		"INPUT_MODE":                     "sign",
		"ACTIONS_ID_TOKEN_REQUEST_URL":   s.tokenURL(nil),
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN": s.RequestToken,
	}
	return r
}

// with sets inputs by their action.yml names.
func (r *runnerEnv) with(kv ...string) *runnerEnv {
	for i := 0; i < len(kv); i += 2 {
		r.vars["INPUT_"+strings.ToUpper(kv[i])] = kv[i+1]
	}
	return r
}

func (r *runnerEnv) set(k, v string) *runnerEnv {
	if v == "" {
		delete(r.vars, k)
	} else {
		r.vars[k] = v
	}
	return r
}

func (r *runnerEnv) run(o ...func(*action.Options)) error {
	opts := action.Options{Getenv: func(k string) string { return r.vars[k] }, Stdout: &r.Stdout}
	for _, f := range o {
		f(&opts)
	}
	return action.Run(context.Background(), opts)
}

// outputs parses GITHUB_OUTPUT (name<<delimiter ... delimiter blocks).
func (r *runnerEnv) outputs() map[string]string {
	raw, err := os.ReadFile(r.Output)
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[string]string{}
	ls := strings.Split(string(raw), "\n")
	for i := 0; i < len(ls); i++ {
		if ls[i] == "" {
			continue
		}
		name, delim, ok := strings.Cut(ls[i], "<<")
		if !ok {
			r.t.Fatalf("GITHUB_OUTPUT line %q is not name<<delimiter", ls[i])
		}
		var val []string
		for i++; i < len(ls) && ls[i] != delim; i++ {
			val = append(val, ls[i])
		}
		if i == len(ls) {
			r.t.Fatalf("GITHUB_OUTPUT: %s has no closing delimiter", name)
		}
		out[name] = strings.Join(val, "\n")
	}
	return out
}

func (r *runnerEnv) summary() string {
	raw, err := os.ReadFile(r.Summary)
	if err != nil {
		r.t.Fatal(err)
	}
	return string(raw)
}

// errorAnnotations are the ::error commands the step printed.
func (r *runnerEnv) errorAnnotations() []string {
	var out []string
	for _, l := range strings.Split(r.Stdout.String(), "\n") {
		if strings.HasPrefix(l, "::error") {
			out = append(out, l)
		}
	}
	return out
}

func (r *runnerEnv) bundles() []action.Entry {
	var es []action.Entry
	raw := r.outputs()["bundles"]
	if raw == "" {
		return nil
	}
	var decoded []map[string]any
	if err := json.Unmarshal([]byte(raw), &decoded); err != nil {
		r.t.Fatalf("bundles output: %v\n%s", err, raw)
	}
	if err := json.Unmarshal([]byte(raw), &es); err != nil {
		r.t.Fatalf("bundles output: %v", err)
	}
	// The CLI's field names, in every mode: bundle and logEntries.
	for i, d := range decoded {
		ents, _ := d["logEntries"].([]any)
		if d["bundle"] != d["bundlePath"] || len(ents) == 0 || ents[0].(map[string]any)["logIndex"] != d["logIndex"] {
			r.t.Errorf("bundles output entry %d lacks the CLI's bundle/logEntries fields: %v", i, d)
		}
	}
	return es
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
