// Package acttest runs GitHub Actions workflows locally with nektos/act for
// end-to-end tests of the signet action: jobs run on the host
// (-P ubuntu-latest=-self-hosted), never in containers, and nothing is fetched
// from GitHub: remote actions are mapped to local directories.
//
// act is built once from the Go module proxy and cached outside the clone,
// like the registry of core/oci/ocitest.
package acttest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"
)

// Version is the act release the harness builds.
const Version = "v0.2.89"

const module = "github.com/nektos/act"

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// CacheDir is where act is kept: $SIGNET_TOOLS_CACHE or
// $HOME/.cache/signet-tools, then act-<version>.
func CacheDir() (string, error) {
	root := os.Getenv("SIGNET_TOOLS_CACHE")
	if root == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no tools cache: set SIGNET_TOOLS_CACHE or HOME: %w", err)
		}
		root = filepath.Join(home, ".cache", "signet-tools")
	}
	return filepath.Join(root, "act-"+Version), nil
}

// Binary returns the path of act, building it with `go install` on first
// use. A lock file serialises concurrent test binaries.
func Binary() (string, error) {
	buildOnce.Do(func() { buildPath, buildErr = build() })
	return buildPath, buildErr
}

func build() (string, error) {
	dir, err := CacheDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "act")
	if isExecutable(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating tools cache: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("opening build lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if isExecutable(bin) { // built by another process while we waited
		return bin, nil
	}
	// Install into a scratch directory and rename, so a half-written binary
	// is never seen at the final path.
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "install", module+"@"+Version)
	cmd.Dir = tmp // outside any module, so the clone's go.mod is not touched
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building act %s (go install %s@%s): %v\n%s", Version, module, Version, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "act"), bin); err != nil {
		return "", err
	}
	return bin, nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Run describes one act invocation.
type Run struct {
	// Repo is the git repository holding .github/workflows.
	Repo string
	// Event is the event name (push, workflow_run…) and EventPath its payload.
	Event     string
	EventPath string
	// Workflow is the workflow file, relative to Repo.
	Workflow string
	// Env and Vars are passed as --env and --var: Env reaches every step's
	// environment, Vars the vars context.
	Env, Vars map[string]string
	// Actions maps remote actions (owner/repo@ref) to local directories
	// (--local-repository), so nothing is cloned from GitHub.
	Actions map[string]string
	// Home is act's HOME: its action cache and config live there, not in
	// the user's.
	Home string
	// Timeout bounds the run.
	Timeout time.Duration
}

// Exec runs act and returns its combined output.
func (r Run) Exec(ctx context.Context) (string, error) {
	bin, err := Binary()
	if err != nil {
		return "", err
	}
	args := []string{r.Event,
		"-W", r.Workflow,
		"-P", "ubuntu-latest=-self-hosted",
		"--action-offline-mode",
		"--no-cache-server",
	}
	if r.EventPath != "" {
		args = append(args, "-e", r.EventPath)
	}
	for _, k := range sortedKeys(r.Env) {
		args = append(args, "--env", k+"="+r.Env[k])
	}
	for _, k := range sortedKeys(r.Vars) {
		args = append(args, "--var", k+"="+r.Vars[k])
	}
	for _, k := range sortedKeys(r.Actions) {
		args = append(args, "--local-repository", k+"="+r.Actions[k])
	}
	if r.Timeout == 0 {
		r.Timeout = 3 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = r.Repo
	cmd.Env = append(os.Environ(), "HOME="+r.Home, "XDG_CONFIG_HOME="+filepath.Join(r.Home, ".config"), "XDG_CACHE_HOME="+filepath.Join(r.Home, ".cache"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.String(), err
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
