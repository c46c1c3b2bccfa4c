package task_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExampleCloneTask runs the example's clone Task (examples/tekton/
// tasks.yaml) through the harness against a local repository: the
// CHAINS-GIT_URL and CHAINS-GIT_COMMIT results it reports, which
// signet-tekton turns into the provenance's resolved dependency, are the
// repository and the commit actually checked out.
func TestExampleCloneTask(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git on PATH")
	}
	task, ok := loadTasks(t, "../../examples/tekton/tasks.yaml")["example-git-clone"]
	if !ok {
		t.Fatal("no example-git-clone Task in examples/tekton/tasks.yaml")
	}
	repo := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir(), "GIT_AUTHOR_NAME=a", "GIT_AUTHOR_EMAIL=a@example.com",
			"GIT_COMMITTER_NAME=a", "GIT_COMMITTER_EMAIL=a@example.com"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	if err := os.WriteFile(filepath.Join(repo, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("add", "Dockerfile")
	git("commit", "-q", "-m", "one")
	git("tag", "v1")
	first := git("rev-parse", "HEAD")
	if err := os.WriteFile(filepath.Join(repo, "Dockerfile"), []byte("FROM scratch\nLABEL x=2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("commit", "-q", "-am", "two")
	head := git("rev-parse", "HEAD")
	url := "file://" + repo

	for rev, want := range map[string]string{"main": head, "v1": first} {
		out := t.TempDir()
		r := runTask(t, task, taskRun{
			params:     map[string]any{"url": url, "revision": rev},
			workspaces: map[string]string{"output": out},
		}, shells(t)[0], "")
		if r.failed() {
			t.Fatalf("revision %s: the Task failed\n%v", rev, r)
		}
		if r.results["CHAINS-GIT_URL"] != url || r.results["CHAINS-GIT_COMMIT"] != want {
			t.Errorf("revision %s: results %v, want %s at %s", rev, r.results, url, want)
		}
		if _, err := os.Stat(filepath.Join(out, "Dockerfile")); err != nil {
			t.Errorf("revision %s: the workspace holds no checkout: %v", rev, err)
		}
	}
}
