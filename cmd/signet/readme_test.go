package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/signet-dev/signet/server/servertest"
)

// readmeBlock is the shell block of README.md that follows the paragraph
// starting with intro.
func readmeBlock(t *testing.T, intro string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)" + regexp.QuoteMeta(intro) + ".*?```sh\n(.*?)```").FindSubmatch(raw)
	if m == nil {
		t.Fatalf("README.md has no sh block after %q", intro)
	}
	return string(m[1])
}

// The README's commands for a development token and for cosign, run as
// written against a running server (its URL and data directory in place of
// 127.0.0.1:8080 and signet-data): cosign signs, and verifies the bundle
// with its default checks, SCT included.
func TestREADMECosignCommands(t *testing.T) {
	cosign := cosignBinary(t)
	p := servertest.Start(t, t.TempDir(), "--dev-oidc")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "artifact"), []byte("artifact\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// sh runs script and returns its stdout, and its stdout and stderr.
	sh := func(script string) (string, string, error) {
		t.Helper()
		script = strings.ReplaceAll(script, "http://127.0.0.1:8080", p.URL)
		script = strings.ReplaceAll(script, "signet-data/", p.DataDir+"/")
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
		cmd.Dir = dir
		home := t.TempDir()
		cmd.Env = []string{"PATH=" + filepath.Dir(cosign) + ":" + os.Getenv("PATH"), "HOME=" + home, "TUF_ROOT=" + filepath.Join(home, "tuf"), "TOKEN=" + os.Getenv("README_TOKEN")}
		var out, all bytes.Buffer
		cmd.Stdout, cmd.Stderr = io.MultiWriter(&out, &all), &all
		err := cmd.Run()
		return out.String(), all.String(), err
	}

	out, all, err := sh(readmeBlock(t, "so you can mint CI-shaped\nidentities locally:"))
	if err != nil {
		t.Fatalf("README token command: %v\n%s", err, all)
	}
	var tok struct{ Value string }
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.Value == "" {
		t.Fatalf("README token command printed %q (%v)", out, err)
	}
	t.Setenv("README_TOKEN", tok.Value)

	block := readmeBlock(t, "With the two trust files, cosign v3")
	if _, all, err := sh(block); err != nil {
		t.Fatalf("README cosign commands: %v\n%s", err, all)
	}
	if strings.Contains(block, "--insecure-ignore-sct") {
		t.Error("the README's cosign verify-blob passes --insecure-ignore-sct; signet's certificates carry SCTs")
	}
}
