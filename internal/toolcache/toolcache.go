// Package toolcache builds the real third-party tools the integration tests
// run (distribution's registry, act, cosign, etcd, kube-apiserver) from the
// Go module proxy, once, into a cache outside the clone: $SIGNET_TOOLS_CACHE,
// default $HOME/.cache/signet-tools/<name>-<version>/. CI machines are
// reused, so the build cost is paid once per tool version (docs/ci.md has
// the cold costs).
package toolcache

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/mod/modfile"
)

// Tool is a Go command installable with `go install Package@Version`, or,
// when Module is set, built inside a wrapper module of its own.
type Tool struct {
	Name    string // binary name, also the cache directory prefix
	Package string // main package path
	Version string
	// Module is the module holding Package, for modules whose go.mod
	// replaces sibling modules with directories of their repository
	// (k8s.io/kubernetes' staging tree, etcd's api, client and pkg): `go
	// install pkg@version` refuses those. The wrapper module requires
	// Module@Version and points each such replacement at its published
	// ReplaceVersion instead, which is what the repository tags it as.
	Module         string
	ReplaceVersion string
	LDFlags        string // go build -ldflags for wrapper builds
}

// Versions of the Kubernetes parts the tekton controller's tests run. etcd
// is the 3.7 line Kubernetes 1.37 is tested against (its hack/lib/etcd.sh
// pins 3.7.0), at its newest patch release.
const (
	KubernetesVersion = "v1.37.2"
	// KubernetesStagingVersion is the version k8s.io/api, apiserver, ... are
	// published at for KubernetesVersion.
	KubernetesStagingVersion = "v0.37.2"
	EtcdVersion              = "v3.7.3"
	// TektonPipelineVersion is the Tekton release whose CRDs the tekton
	// controller's tests install; it is built against k8s.io v0.37.
	TektonPipelineVersion = "v1.15.0"
)

// Tools the tests use.
var (
	Registry = Tool{Name: "registry", Package: "github.com/distribution/distribution/v3/cmd/registry", Version: "v3.0.0"}
	Act      = Tool{Name: "act", Package: "github.com/nektos/act", Version: "v0.2.89"}
	Cosign   = Tool{Name: "cosign", Package: "github.com/sigstore/cosign/v3/cmd/cosign", Version: "v3.1.3"}

	Etcd = Tool{
		Name: "etcd", Package: "go.etcd.io/etcd/server/v3", Version: EtcdVersion,
		Module: "go.etcd.io/etcd/server/v3", ReplaceVersion: EtcdVersion,
	}
	KubeAPIServer = Tool{
		Name: "kube-apiserver", Package: "k8s.io/kubernetes/cmd/kube-apiserver", Version: KubernetesVersion,
		Module: "k8s.io/kubernetes", ReplaceVersion: KubernetesStagingVersion,
		LDFlags: "-s -w " + kubeVersionFlags(KubernetesVersion),
	}
)

// kubeVersionFlags stamps what Kubernetes' release build does, so /version
// reports the release instead of v0.0.0-master.
func kubeVersionFlags(version string) string {
	major, minor, _ := strings.Cut(strings.TrimPrefix(version, "v"), ".")
	minor, _, _ = strings.Cut(minor, ".")
	const pkg = "k8s.io/component-base/version."
	return "-X " + pkg + "gitVersion=" + version + " -X " + pkg + "gitMajor=" + major +
		" -X " + pkg + "gitMinor=" + minor + " -X " + pkg + "gitTreeState=clean"
}

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
	if t.Module == "" {
		err = t.install(tmp)
	} else {
		err = t.buildInModule(tmp)
	}
	if err != nil {
		return "", err
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

// goEnv is the environment of every go command a build runs.
func goEnv(extra ...string) []string {
	return append(os.Environ(), append([]string{"GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false", "GOWORK=off"}, extra...)...)
}

// goCmd is `go args...` run in dir. A test binary killed by its timeout
// takes the go command with it instead of leaving a long build running.
func goCmd(dir string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command("go", args...)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

func (t Tool) install(tmp string) error {
	// In tmp, outside any module, so the clone's go.mod is not touched.
	return t.run(goCmd(tmp, goEnv("GOBIN="+tmp), "install", t.Package+"@"+t.Version))
}

// buildInModule builds Package into tmp/Name from a wrapper module written
// in tmp, so neither the clone's go.mod nor the user's module cache state is
// touched beyond downloads.
func (t Tool) buildInModule(tmp string) error {
	src := filepath.Join(tmp, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		return err
	}
	gomod := filepath.Join(src, "go.mod")
	// No requirement yet: with Module required, the download would load its
	// graph, whose directory-replaced modules are v0.0.0 and not served.
	// `go get` adds it once the replacements are in place.
	if err := os.WriteFile(gomod, fmt.Appendf(nil, "module signet.invalid/build/%s\n\ngo 1.26\n", t.Name), 0o644); err != nil {
		return err
	}
	// CGO off: the static binary the projects release, and no C compiler needed.
	env := goEnv("CGO_ENABLED=0")
	info, err := download(src, env, t.Module, t.Version, t.what())
	if err != nil {
		return err
	}
	replaces, err := directoryReplaces(info.GoMod)
	if err != nil {
		return fmt.Errorf("%s: %w", t.what(), err)
	}
	f, err := os.OpenFile(gomod, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	fmt.Fprintln(f, "\nreplace (")
	for _, path := range replaces {
		fmt.Fprintf(f, "\t%s => %s %s\n", path, path, t.ReplaceVersion)
	}
	fmt.Fprintln(f, ")")
	if err := f.Close(); err != nil {
		return err
	}
	if err := t.run(goCmd(src, env, "get", t.Package+"@"+t.Version)); err != nil {
		return err
	}
	return t.run(goCmd(src, env, "build", "-trimpath", "-ldflags="+t.LDFlags, "-o", filepath.Join(tmp, t.Name), t.Package))
}

// moduleInfo is what `go mod download -json` reports of a module.
type moduleInfo struct {
	Dir   string // the extracted module in the module cache
	GoMod string // its go.mod file
}

// download fetches path@version into the Go module cache (a no-op when it is
// there) from dir, which must not be inside a module that lacks it; what
// says why, for the error.
func download(dir string, env []string, path, version, what string) (moduleInfo, error) {
	cmd := goCmd(dir, env, "mod", "download", "-json", path+"@"+version)
	out, err := cmd.Output()
	var info moduleInfo
	if jerr := json.Unmarshal(out, &info); err != nil || jerr != nil || info.Dir == "" {
		if err == nil {
			err = fmt.Errorf("no module directory in its output: %v", jerr)
		}
		return info, stepFailed(what, cmd, err, append(out, stderrOf(err)...))
	}
	return info, nil
}

// Source is a Go module whose files, not a program, tests read (Tekton's
// CRDs): the Go module cache already keeps it by version.
type Source struct {
	Path, Version string
}

// TektonPipeline holds the CRDs of the Tekton release the tekton controller
// targets (config/300-crds).
var TektonPipeline = Source{Path: "github.com/tektoncd/pipeline", Version: TektonPipelineVersion}

// Dir returns the module's directory in the Go module cache, downloading it
// on first use. It is read-only, as the module cache is.
func (s Source) Dir() (string, error) {
	scratch, err := os.MkdirTemp("", "signet-mod-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(scratch)
	info, err := download(scratch, goEnv(), s.Path, s.Version, "downloading "+s.Path+" "+s.Version)
	return info.Dir, err
}

// directoryReplaces lists the module paths that the go.mod at path
// replaces with a local directory.
func directoryReplaces(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	mf, err := modfile.Parse(path, data, nil) // not ParseLax: it drops replace directives
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, r := range mf.Replace {
		if r.New.Version == "" { // a directory, not a module version
			paths = append(paths, r.Old.Path)
		}
	}
	return paths, nil
}

func (t Tool) what() string { return "building " + t.Name + " " + t.Version }

// run runs a build step, failing with the command and its output's tail.
func (t Tool) run(cmd *exec.Cmd) error {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return stepFailed(t.what(), cmd, err, out)
	}
	return nil
}

// stepFailed describes a failed step: the command, where it ran, and the
// end of its output (a failing kube-apiserver build can print thousands of
// lines; the cause is at the end).
func stepFailed(what string, cmd *exec.Cmd, err error, out []byte) error {
	const max = 8 << 10
	if len(out) > max {
		out = append([]byte("...\n"), out[len(out)-max:]...)
	}
	return fmt.Errorf("%s (%s, in %s): %v\n%s", what, strings.Join(cmd.Args, " "), cmd.Dir, err, out)
}

func stderrOf(err error) []byte {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.Stderr
	}
	return nil
}
