package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-dev/signet/server/servertest"
)

// cliRun is one run of the real signet binary.
type cliRun struct {
	stdout, stderr string
	code           int
}

// runSignet runs the built binary with a clean environment (so no CI token
// source of the machine running the tests leaks in) plus env.
func runSignet(t testing.TB, env []string, args ...string) cliRun {
	t.Helper()
	return runSignetStdin(t, env, "", args...)
}

// runSignetStdin is runSignet with stdin as standard input.
func runSignetStdin(t testing.TB, env []string, stdin string, args ...string) cliRun {
	t.Helper()
	cmd := exec.Command(servertest.Binary(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running signet %v: %v", args, err)
	}
	return cliRun{out.String(), errb.String(), code}
}

// want fails the test unless the run exited with code.
func (r cliRun) want(t testing.TB, code int) cliRun {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

// decode parses stdout as JSON into v.
func (r cliRun) decode(t testing.TB, v any) {
	t.Helper()
	// Every JSON answer is one object that starts with its schemaVersion.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &fields); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, r.stdout)
	}
	if string(fields["schemaVersion"]) != "1" || !strings.HasPrefix(strings.TrimSpace(r.stdout), "{\n  \"schemaVersion\": 1") {
		t.Fatalf("stdout does not start with schemaVersion 1:\n%s", r.stdout)
	}
	delete(fields, "schemaVersion")
	rest, _ := json.Marshal(fields)
	dec := json.NewDecoder(bytes.NewReader(rest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("stdout is not the documented JSON: %v\n%s", err, r.stdout)
	}
}

// cliEnv is a running signet server with a pinned trust directory and a
// development identity token for acme/app's release workflow.
type cliEnv struct {
	p         *servertest.Process
	dir       string
	root      string // pinned trusted_root.json
	token     string
	identity  string
	issuer    string
	serverEnv []string
}

func newCLIEnv(t testing.TB, serverArgs ...string) *cliEnv {
	t.Helper()
	return newCLIEnvFor(t, "acme/app", serverArgs...)
}

// newCLIEnvFor is newCLIEnv with the release workflow of another repository.
func newCLIEnvFor(t testing.TB, repository string, serverArgs ...string) *cliEnv {
	t.Helper()
	return newCLIEnvIn(t, t.TempDir(), repository, serverArgs...)
}

// newCLIEnvIn is newCLIEnvFor with the server's data directory given (a
// restart of an earlier server keeps its keys and log).
func newCLIEnvIn(t testing.TB, dataDir, repository string, serverArgs ...string) *cliEnv {
	t.Helper()
	p := servertest.Start(t, dataDir, append([]string{"--dev-oidc"}, serverArgs...)...)
	tok, err := p.Token(context.Background(), url.Values{"kind": {"github"}, "repository": {repository}, "workflow": {".github/workflows/release.yml"}, "ref": {"refs/heads/main"}})
	if err != nil {
		t.Fatal(err)
	}
	e := &cliEnv{
		p: p, dir: t.TempDir(), token: tok,
		identity:  "https://github.com/" + repository + "/.github/workflows/release.yml@refs/heads/main",
		issuer:    p.URL + "/dev/oidc",
		serverEnv: []string{"SIGNET_SERVER=" + p.URL},
	}
	runSignet(t, e.serverEnv, "trust", "--out", filepath.Join(e.dir, "trust")).want(t, 0)
	e.root = filepath.Join(e.dir, "trust", trustedRootFile)
	return e
}

// file writes content to a new file in the env's directory.
func (e *cliEnv) file(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// policy is the verify flags for the env's identity, then extra args.
func (e *cliEnv) policy(extra ...string) []string {
	return append([]string{"--trusted-root", e.root, "--certificate-identity", e.identity, "--certificate-oidc-issuer", e.issuer}, extra...)
}
