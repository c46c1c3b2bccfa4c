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
	"github.com/signet-dev/signet/internal/toolcache"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"
)

// Version is the act release the harness builds.
var Version = toolcache.Act.Version

// Binary returns the path of act, built on first use into the tools cache
// (internal/toolcache).
func Binary() (string, error) { return toolcache.Act.Binary() }

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
