package action_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/action"
	"github.com/signet-dev/signet/action/acttest"
	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/verify"
	"github.com/signet-dev/signet/server/servertest"
)

// asSignetEnv makes this test binary behave as `signet github-action` (see
// TestMain) for the e2e test while cmd/signet does not register the command.
const asSignetEnv = "SIGNET_ACTION_TEST_AS_SIGNET"

func TestMain(m *testing.M) {
	if os.Getenv(asSignetEnv) == "1" && len(os.Args) == 2 && os.Args[1] == "github-action" {
		if err := action.Run(context.Background(), action.Options{}); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// moduleRoot is the repository root (action.yml, examples/).
func moduleRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..")
}

// signetForAction is the binary the composite action runs: the real signet
// when it has the github-action command, else this test binary standing in.
func signetForAction(t *testing.T) (bin string, env map[string]string) {
	real := servertest.Binary(t)
	if exec.Command(real, "github-action", "--help").Run() == nil {
		return real, nil
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cmd/signet does not register github-action yet; the action runs this test binary as signet")
	return self, map[string]string{asSignetEnv: "1"}
}

// TestExampleWorkflowsWithAct runs examples/github/release-binary.yml and
// deploy.yml with act on this host, unmodified, in a scratch repository
// acme/widget, against a real signet server whose development issuer plays
// GitHub's id-token endpoint. Remote actions are local stand-ins
// (--local-repository); actions/checkout is act's own local copy.
func TestExampleWorkflowsWithAct(t *testing.T) {
	start := time.Now()
	if _, err := acttest.Binary(); err != nil {
		t.Fatal(err)
	}
	t.Logf("act %s ready in %v", acttest.Version, time.Since(start).Round(time.Millisecond))
	s := startServer(t)
	signetBin, signetEnv := signetForAction(t)

	repoDir, head := actRepo(t, s, map[string]string{
		"go.mod":                               "module example.com/app\n\ngo 1.22\n",
		"main.go":                              "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"app deployed\") }\n",
		".github/workflows/release-binary.yml": readExample(t, "github", "release-binary.yml"),
		".github/workflows/deploy.yml":         readExample(t, "github", "deploy.yml"),
	})
	actionDir := releasedAction(t)
	standins := writeStandins(t)
	artifacts := t.TempDir()
	home := t.TempDir()

	env := map[string]string{
		"ACTIONS_ID_TOKEN_REQUEST_URL":   s.tokenURL(url.Values{"workflow": {".github/workflows/release-binary.yml"}, "sha": {head}, "run_attempt": {"1"}}),
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN": s.RequestToken,
		"GITHUB_RUN_ID":                  runID,
		"GITHUB_RUN_ATTEMPT":             "1",
		"SIGNET_BINARY":                  signetBin,
		"SIGNET_E2E_ARTIFACTS":           artifacts,
	}
	for k, v := range signetEnv {
		env[k] = v
	}
	// The build step runs the host's Go with the host's caches.
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		out, _ := exec.Command("go", "env", k).Output()
		env[k] = strings.TrimSpace(string(out))
	}
	env["GOTOOLCHAIN"] = "local"
	env["GOFLAGS"] = "-buildvcs=false"
	actions := map[string]string{
		"signet-dev/signet@v1":         actionDir,
		"actions/setup-go@v5":          filepath.Join(standins, "setup-go"),
		"actions/upload-artifact@v4":   filepath.Join(standins, "upload-artifact"),
		"actions/download-artifact@v4": filepath.Join(standins, "download-artifact"),
	}
	vars := map[string]string{"SIGNET_SERVER": s.URL, "SIGNET_OIDC_ISSUER": s.Issuer}
	repoJSON := `"repository":{"id":` + repoID + `,"full_name":"` + repo + `","owner":{"id":` + ownerID + `,"login":"acme"}}`

	pushEvent := writeFile(t, filepath.Join(t.TempDir(), "push.json"), `{"ref":"`+ref+`","after":"`+head+`",`+repoJSON+`}`)
	run := acttest.Run{Repo: repoDir, Event: "push", EventPath: pushEvent, Workflow: ".github/workflows/release-binary.yml", Env: env, Vars: vars, Actions: actions, Home: home}
	start = time.Now()
	out, err := run.Exec(context.Background())
	if err != nil {
		t.Fatalf("release workflow: %v\n%s", err, out)
	}
	t.Logf("release workflow ran in %v", time.Since(start).Round(time.Millisecond))

	// What the build job uploaded verifies as signed by the release
	// workflow on main, and not as anyone else's.
	released := filepath.Join(artifacts, "release")
	wfIdentity := "https://github.com/" + repo + "/.github/workflows/release-binary.yml@" + ref
	v := verify.New(s.Root)
	policy := verify.Policy{Identity: verify.Exact(wfIdentity), Issuer: verify.Exact(s.Issuer)}
	other := verify.Policy{Identity: verify.Exact("https://github.com/" + repo + "/.github/workflows/other.yml@" + ref), Issuer: verify.Exact(s.Issuer)}
	provenance, _ := filepath.Glob(filepath.Join(released, "signet", "*.slsaprovenance1.sigstore.json"))
	if len(provenance) != 1 {
		t.Fatalf("provenance bundles uploaded: %v\n%s", provenance, out)
	}
	for _, name := range []string{"app-linux-amd64", "app-linux-arm64"} {
		content, err := os.ReadFile(filepath.Join(released, name))
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		sig, err := bundle.ReadFile(filepath.Join(released, "signet", name+".sigstore.json"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.VerifyArtifact(context.Background(), sig, strings.NewReader(string(content)), policy); err != nil {
			t.Errorf("%s signature: %v", name, err)
		}
		if _, err := v.VerifyArtifact(context.Background(), sig, strings.NewReader(string(content)), other); verify.CheckOf(err) != verify.CheckIdentity {
			t.Errorf("%s signature verified for another workflow: %v", name, err)
		}
		prov, err := bundle.ReadFile(provenance[0])
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(content)
		res, err := v.VerifyAttestation(context.Background(), prov, verify.Digest{Algorithm: crypto.SHA256, Value: sum[:]}, policy, intoto.PredicateSLSAProvenanceV1)
		if err != nil {
			t.Fatalf("%s provenance: %v", name, err)
		}
		js, _ := json.Marshal(res.Statement.GetPredicate().AsMap())
		for _, want := range []string{`"buildType":"` + action.BuildType + `"`, `"path":".github/workflows/release-binary.yml"`, `"gitCommit":"` + head + `"`, `"invocationId":"https://github.com/` + repo + `/actions/runs/` + runID + `/attempts/1"`} {
			if !strings.Contains(string(js), want) {
				t.Errorf("provenance lacks %s:\n%s", want, js)
			}
		}
	}

	// The deploy workflow verifies the artifact before deploying it.
	runEvent := writeFile(t, filepath.Join(t.TempDir(), "workflow_run.json"), `{"action":"completed","workflow_run":{"id":`+runID+`,"conclusion":"success","head_branch":"main","head_sha":"`+head+`"},`+repoJSON+`}`)
	deploy := run
	deploy.Event, deploy.EventPath, deploy.Workflow = "workflow_run", runEvent, ".github/workflows/deploy.yml"
	out, err = deploy.Exec(context.Background())
	if err != nil || !strings.Contains(out, "app deployed") {
		t.Fatalf("deploy workflow: %v\n%s", err, out)
	}

	// A binary changed after signing stops the deployment.
	if err := os.WriteFile(filepath.Join(released, "app-linux-amd64"), []byte("#!/bin/sh\necho pwned\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err = deploy.Exec(context.Background())
	if err == nil || strings.Contains(out, "pwned") || !strings.Contains(out, "no bundle verifies app-linux-amd64") {
		t.Fatalf("deploy of a tampered binary: err %v\n%s", err, out)
	}
}

// readExample reads examples/<dir>/<file>.
func readExample(t *testing.T, dir, file string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(moduleRoot(t), "examples", dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// actRepo makes the scratch repository acme/widget act runs workflows in:
// files (path -> content), the server's trusted root committed as
// .github/signet/trusted_root.json, one commit on main, and GitHub as its
// origin (act takes github.repository from it). It returns the directory
// and the commit.
func actRepo(t *testing.T, s *server, files map[string]string) (dir, head string) {
	t.Helper()
	dir = t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=ci", "GIT_AUTHOR_EMAIL=ci@example.com", "GIT_COMMITTER_NAME=ci", "GIT_COMMITTER_EMAIL=ci@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	for path, content := range files {
		writeFile(t, filepath.Join(dir, path), content)
	}
	trustedRoot, _ := os.ReadFile(s.RootPath)
	writeFile(t, filepath.Join(dir, ".github", "signet", "trusted_root.json"), string(trustedRoot))
	git("add", ".")
	git("commit", "-q", "-m", "app")
	git("remote", "add", "origin", "https://github.com/"+repo+".git")
	return dir, git("rev-parse", "HEAD")
}

// releasedAction is the action as a release would ship it: action.yml and
// action/, nothing else.
func releasedAction(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"action.yml", "action/install-signet.sh", "action/RELEASE", "action/release.sha256"} {
		raw, err := os.ReadFile(filepath.Join(moduleRoot(t), f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, f), string(raw))
	}
	if err := os.Chmod(filepath.Join(dir, "action", "install-signet.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeStandins writes local composite actions standing in for the remote
// ones the examples use. Artifacts go to $SIGNET_E2E_ARTIFACTS/<name>/, with
// upload-artifact's layout for a single directory path (its contents).
func writeStandins(t *testing.T) string {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "setup-go", "action.yml"), `name: setup-go stand-in
description: uses the host's Go
inputs:
  go-version: {required: false}
runs:
  using: composite
  steps:
    - shell: bash
      run: go version
`)
	writeFile(t, filepath.Join(dir, "upload-artifact", "action.yml"), `name: upload-artifact stand-in
description: copies to $SIGNET_E2E_ARTIFACTS/<name>
inputs:
  name: {required: true}
  path: {required: true}
runs:
  using: composite
  steps:
    - shell: bash
      env:
        NAME: ${{ inputs.name }}
        SRC: ${{ inputs.path }}
      run: |
        rm -rf "$SIGNET_E2E_ARTIFACTS/$NAME" && mkdir -p "$SIGNET_E2E_ARTIFACTS/$NAME"
        if [ -d "$SRC" ]; then cp -R "$SRC"/. "$SIGNET_E2E_ARTIFACTS/$NAME"/; else cp "$SRC" "$SIGNET_E2E_ARTIFACTS/$NAME"/; fi
`)
	writeFile(t, filepath.Join(dir, "download-artifact", "action.yml"), `name: download-artifact stand-in
description: copies from $SIGNET_E2E_ARTIFACTS/<name>
inputs:
  name: {required: true}
  path: {required: true}
  run-id: {required: false}
  github-token: {required: false}
runs:
  using: composite
  steps:
    - shell: bash
      env:
        NAME: ${{ inputs.name }}
        DEST: ${{ inputs.path }}
      run: |
        mkdir -p "$DEST"
        cp -R "$SIGNET_E2E_ARTIFACTS/$NAME"/. "$DEST"/
`)
	return dir
}
