package action_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// installEnv is a copy of the action (action.yml and action/) in which
// install-signet.sh runs as the composite action's first step would.
type installEnv struct {
	t      *testing.T
	action string // the copy's action/ directory
	temp   string // RUNNER_TEMP
	tools  string // RUNNER_TOOL_CACHE
	output string // GITHUB_OUTPUT
}

func newInstallEnv(t *testing.T) *installEnv {
	root := moduleRoot(t)
	dir := t.TempDir()
	e := &installEnv{t: t, action: filepath.Join(dir, "action"), temp: t.TempDir(), tools: t.TempDir(), output: filepath.Join(t.TempDir(), "out")}
	for _, f := range []string{"action/install-signet.sh", "action/RELEASE", "action/release.sha256"} {
		raw, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, f), string(raw))
	}
	os.Chmod(filepath.Join(e.action, "install-signet.sh"), 0o755)
	return e
}

// pin writes a release pin: version and the checksum of content for this
// platform's asset.
func (e *installEnv) pin(version string, content []byte) string {
	asset := "signet-" + version + "-linux-" + runtime.GOARCH
	sum := sha256.Sum256(content)
	writeFile(e.t, filepath.Join(e.action, "RELEASE"), "# pinned by the release workflow\n"+version+"\n")
	writeFile(e.t, filepath.Join(e.action, "release.sha256"), hex.EncodeToString(sum[:])+"  "+asset+"\n"+strings.Repeat("0", 64)+"  signet-"+version+"-darwin-arm64\n")
	return asset
}

func (e *installEnv) run(env ...string) (path, log string, err error) {
	os.WriteFile(e.output, nil, 0o644)
	cmd := exec.Command(filepath.Join(e.action, "install-signet.sh"))
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"RUNNER_OS=Linux", "RUNNER_ARCH=" + map[string]string{"amd64": "X64", "arm64": "ARM64"}[runtime.GOARCH],
		"RUNNER_TEMP=" + e.temp, "RUNNER_TOOL_CACHE=" + e.tools, "GITHUB_OUTPUT=" + e.output,
	}, env...)
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOTOOLCHAIN"} {
		if out, err := exec.Command("go", "env", k).Output(); err == nil {
			cmd.Env = append(cmd.Env, k+"="+strings.TrimSpace(string(out)))
		}
	}
	out, err := cmd.CombinedOutput()
	raw, _ := os.ReadFile(e.output)
	path, _ = strings.CutPrefix(strings.TrimSpace(string(raw)), "path=")
	return path, string(out), err
}

func TestInstallSignet(t *testing.T) {
	fakeRelease := []byte("#!/bin/sh\necho signet release\n")

	t.Run("override", func(t *testing.T) {
		e := newInstallEnv(t)
		bin := writeFile(t, filepath.Join(t.TempDir(), "signet"), "#!/bin/sh\n")
		os.Chmod(bin, 0o755)
		path, log, err := e.run("SIGNET_BINARY=" + bin)
		if err != nil || path != bin {
			t.Fatalf("path %q err %v\n%s", path, err, log)
		}
		// The input wins over the variable.
		path, log, err = e.run("SIGNET_BINARY=/nonexistent", "SIGNET_BINARY_INPUT="+bin)
		if err != nil || path != bin {
			t.Fatalf("path %q err %v\n%s", path, err, log)
		}
	})
	t.Run("override not executable", func(t *testing.T) {
		e := newInstallEnv(t)
		notExec := writeFile(t, filepath.Join(t.TempDir(), "signet"), "x")
		path, log, err := e.run("SIGNET_BINARY=" + notExec)
		if err == nil || path != "" || !strings.Contains(log, "::error title=signet binary::") || !strings.Contains(log, "not an executable file") {
			t.Fatalf("path %q err %v\n%s", path, err, log)
		}
	})
	t.Run("pinned release from a mirror, checksum verified, then cached", func(t *testing.T) {
		e := newInstallEnv(t)
		asset := e.pin("v1.2.3", fakeRelease)
		mirror := t.TempDir()
		writeFile(t, filepath.Join(mirror, "v1.2.3", asset), string(fakeRelease))
		path, log, err := e.run("SIGNET_RELEASE_URL=file://" + mirror)
		if err != nil {
			t.Fatalf("%v\n%s", err, log)
		}
		if got, _ := os.ReadFile(path); string(got) != string(fakeRelease) || !strings.HasPrefix(path, e.tools) || !strings.Contains(log, "sha256 verified") {
			t.Fatalf("path %q\n%s", path, log)
		}
		// Second run on the same runner: no download (the mirror is gone).
		os.RemoveAll(mirror)
		path2, log, err := e.run("SIGNET_RELEASE_URL=file://" + mirror)
		if err != nil || path2 != path || !strings.Contains(log, "cached") {
			t.Fatalf("path %q err %v\n%s", path2, err, log)
		}
	})
	t.Run("pinned release with a wrong checksum is not run", func(t *testing.T) {
		e := newInstallEnv(t)
		asset := e.pin("v1.2.3", fakeRelease)
		mirror := t.TempDir()
		writeFile(t, filepath.Join(mirror, "v1.2.3", asset), "#!/bin/sh\necho tampered\n")
		path, log, err := e.run("SIGNET_RELEASE_URL=file://" + mirror)
		if err == nil || path != "" || !strings.Contains(log, "checksum mismatch") {
			t.Fatalf("path %q err %v\n%s", path, err, log)
		}
		if entries, _ := filepath.Glob(filepath.Join(e.tools, "signet", "v1.2.3", "*", "*")); len(entries) != 0 {
			t.Fatalf("tampered download left in the tool cache: %v", entries)
		}
	})
	t.Run("platform without a pinned checksum", func(t *testing.T) {
		e := newInstallEnv(t)
		e.pin("v1.2.3", fakeRelease)
		path, log, err := e.run("RUNNER_OS=macOS", "RUNNER_ARCH=X64")
		if err == nil || path != "" || !strings.Contains(log, "no checksum for signet-v1.2.3-darwin-amd64") {
			t.Fatalf("path %q err %v\n%s", path, err, log)
		}
	})
	t.Run("no release, no Go", func(t *testing.T) {
		// A PATH with the tools the script uses, and no go.
		bin := t.TempDir()
		for _, tool := range []string{"bash", "sed", "tr", "awk", "sha256sum", "curl", "mktemp", "cut", "dirname", "uname", "mkdir", "rm", "chmod", "mv"} {
			p, err := exec.LookPath(tool)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
				t.Fatal(err)
			}
		}
		e := newInstallEnv(t)
		path, log, err := e.run("PATH=" + bin)
		if err == nil || path != "" || !strings.Contains(log, "no signet binary") || !strings.Contains(log, "actions/setup-go") {
			t.Fatalf("path %q err %v\n%s", path, err, log)
		}
	})
	t.Run("download fails: go build of the action's source", func(t *testing.T) {
		// The real action directory: its parent is this module, the source
		// a checkout of the action holds. A pinned release (if RELEASE names
		// one) cannot be downloaded from the mirror given, so either way the
		// script builds; to RUNNER_TEMP, with the shared build cache.
		e := newInstallEnv(t)
		e.action = filepath.Join(moduleRoot(t), "action")
		path, log, err := e.run("SIGNET_RELEASE_URL=file:///nonexistent")
		if err != nil || !strings.HasPrefix(path, e.temp) || !strings.Contains(log, "building from") {
			t.Fatalf("path %q err %v\n%s", path, err, log)
		}
		out, err := exec.Command(path, "version").CombinedOutput()
		if err != nil {
			t.Fatalf("built binary: %v\n%s", err, out)
		}
	})
}
