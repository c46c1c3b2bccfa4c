// Package toolcache builds the real third-party tools the integration tests
// run (distribution's registry, act, cosign) from the Go module proxy, once,
// into a cache outside the clone: $SIGNET_TOOLS_CACHE, default
// $HOME/.cache/signet-tools/<name>-<version>/. CI machines are reused, so
// the build cost is paid once per tool version.
package toolcache

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
)

// Tool is a Go command installable with `go install Package@Version`.
type Tool struct {
	Name    string // binary name, also the cache directory prefix
	Package string // main package path
	Version string
}

// Tools the tests use.
var (
	Registry = Tool{Name: "registry", Package: "github.com/distribution/distribution/v3/cmd/registry", Version: "v3.0.0"}
	Act      = Tool{Name: "act", Package: "github.com/nektos/act", Version: "v0.2.89"}
	Cosign   = Tool{Name: "cosign", Package: "github.com/sigstore/cosign/v3/cmd/cosign", Version: "v3.1.3"}
)

type result struct {
	once sync.Once
	path string
	err  error
}

var built sync.Map // Tool -> *result

// Dir is where t is kept.
func (t Tool) Dir() (string, error) {
	root, err := cacheRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, t.Name+"-"+t.Version), nil
}

// Binary returns the path of t, building it on first use. A lock file
// serialises the test binaries of parallel packages so only one builds.
func (t Tool) Binary() (string, error) {
	r, _ := built.LoadOrStore(t, &result{})
	res := r.(*result)
	res.once.Do(func() { res.path, res.err = t.build() })
	return res.path, res.err
}

func (t Tool) build() (string, error) {
	dir, err := t.Dir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, t.Name)
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
	cmd := exec.Command("go", "install", t.Package+"@"+t.Version)
	cmd.Dir = tmp // outside any module, so the clone's go.mod is not touched
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building %s %s (go install %s@%s): %v\n%s", t.Name, t.Version, t.Package, t.Version, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, t.Name), bin); err != nil {
		return "", err
	}
	return bin, nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
