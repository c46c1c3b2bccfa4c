// Package toolcache builds the real third-party tools the integration tests
// run (distribution's registry, act, cosign, etcd, kube-apiserver, the CNB
// lifecycle and launcher, local-kms, versitygw) from the Go module proxy,
// once, into a cache outside the clone: $SIGNET_TOOLS_CACHE, default
// $HOME/.cache/signet-tools/<name>-<version>/. CI machines are
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
	"golang.org/x/mod/module"
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
	// Pins are requirements of Module's graph the wrapper module replaces
	// with another published version, for a version the proxy does not
	// serve (the lifecycle's kaniko); they need Module set, even with no
	// directory replacements.
	Pins    []module.Version
	LDFlags string // go build -ldflags for wrapper builds
	// Main is the source of a main package the wrapper module builds
	// instead of a command of Module, for a tool whose own command cannot
	// be told what the tests need (local-kms listens on every interface and
	// only over plain HTTP); Package is then the library it imports.
	Main string
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
	// CosignV2 is the cosign most users still run: signet's bundles must
	// verify there too.
	CosignV2 = Tool{Name: "cosign", Package: "github.com/sigstore/cosign/v2/cmd/cosign", Version: "v2.6.1"}

	Etcd = Tool{
		Name: "etcd", Package: "go.etcd.io/etcd/server/v3", Version: EtcdVersion,
		Module: "go.etcd.io/etcd/server/v3", ReplaceVersion: EtcdVersion,
	}
	KubeAPIServer = Tool{
		Name: "kube-apiserver", Package: "k8s.io/kubernetes/cmd/kube-apiserver", Version: KubernetesVersion,
		Module: "k8s.io/kubernetes", ReplaceVersion: KubernetesStagingVersion,
		LDFlags: "-s -w " + kubeVersionFlags(KubernetesVersion),
	}
	// Witness is transparency-dev/witness's omniwitness, a C2SP
	// tlog-witness server. The module has no tagged release; this is its
	// newest commit the proxy serves (2026-07-01). Its go.mod requires a
	// formats pseudo-version the proxy refuses; it builds with formats
	// v0.1.1, which signet itself uses.
	Witness = Tool{
		Name: "omniwitness", Package: "github.com/transparency-dev/witness/cmd/omniwitness",
		Version: "v0.0.0-20260701145555-54dbcdd14f82",
		Module:  "github.com/transparency-dev/witness",
		Pins:    []module.Version{{Path: "github.com/transparency-dev/formats", Version: "v0.1.1"}},
	}
	// Versitygw is an S3 gateway; internal/s3test runs it with its POSIX
	// backend as the S3-compatible object store of issue 15's tests. v1.8.0
	// (go 1.25.0) builds with Go 1.26, and its go.mod replaces nothing, so
	// `go install` works.
	Versitygw = Tool{Name: "versitygw", Package: "github.com/versity/versitygw/cmd/versitygw", Version: "v1.8.0"}
	// Lifecycle is the Cloud Native Buildpacks lifecycle: one binary that
	// runs the phase named by argv[0] (creator, exporter, ...).
	Lifecycle = lifecycleTool("lifecycle")
	// Launcher is the lifecycle's launcher, which the exporter copies into
	// every image it exports (-launcher).
	Launcher = lifecycleTool("launcher")
)

// LifecycleVersion is the CNB lifecycle release internal/cnbtest runs.
const LifecycleVersion = "v0.21.17"

// lifecycleTool is cmd/<name> of the lifecycle module. Its go.mod requires
// kaniko v1.28.3, which the Go module proxy refuses to serve ("not
// available"); it builds with v1.27.5, the newest kaniko the proxy has
// (only the extender phase uses kaniko, and cnbtest never runs it).
func lifecycleTool(name string) Tool {
	return Tool{
		Name: name, Package: "github.com/buildpacks/lifecycle/cmd/" + name, Version: LifecycleVersion,
		Module: "github.com/buildpacks/lifecycle",
		Pins:   []module.Version{{Path: "github.com/osscontainertools/kaniko", Version: "v1.27.5"}},
		// v0.21.17 is commit ba8eca5b7b02a3a138bc200af2378726465f6819.
		LDFlags: "-s -w " + lifecycleVersionFlags(LifecycleVersion, "ba8eca5"),
	}
}

// lifecycleVersionFlags stamps what the lifecycle's Makefile does for a
// release (LIFECYCLE_VERSION without the v, the short commit), so
// `lifecycle -version` prints 0.21.17+ba8eca5 as the released binary does
// and the image's io.buildpacks.build.metadata names lifecycle 0.21.17
// instead of 0.0.0.
func lifecycleVersionFlags(version, shortCommit string) string {
	const pkg = "github.com/buildpacks/lifecycle/cmd."
	return "-X " + pkg + "SCMRepository=github.com/buildpacks/lifecycle -X " + pkg + "SCMCommit=" + shortCommit +
		" -X " + pkg + "Version=" + strings.TrimPrefix(version, "v")
}

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

var built sync.Map // Tool.key() -> *result

// key identifies t's build as its cache directory does (a Tool with Pins
// is not comparable, so it cannot be the key itself).
func (t Tool) key() string { return t.Name + "-" + t.Version }

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
	r, _ := built.LoadOrStore(t.key(), &result{})
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
	err = underLock(dir, func() bool { return isExecutable(bin) }, func() error {
		// Install into a scratch directory and rename, so a half-written
		// binary is never seen at the final path.
		tmp, err := os.MkdirTemp(dir, "build-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if t.Module == "" {
			err = t.install(tmp)
		} else {
			err = t.buildInModule(tmp)
		}
		if err != nil {
			return err
		}
		return os.Rename(filepath.Join(tmp, t.Name), bin)
	})
	if err != nil {
		return "", err
	}
	return bin, nil
}

// underLock runs fill unless ready says its result is there, holding
// dir's lock file so the test binaries of parallel packages wait for one
// another instead of building the same tool twice; ready is asked again
// once the lock is held (another process may have filled it meanwhile).
func underLock(dir string, ready func() bool, fill func() error) error {
	if ready() {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating tools cache: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("opening the tools cache lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if ready() {
		return nil
	}
	return fill()
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
	_, err = f.WriteString(t.replaceBlock(replaces))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := t.run(goCmd(src, env, "get", t.Package+"@"+t.Version)); err != nil {
		return err
	}
	pkg := t.Package
	if t.Main != "" {
		if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(t.Main), 0o644); err != nil {
			return err
		}
		pkg = "."
	}
	return t.run(goCmd(src, env, "build", "-trimpath", "-ldflags="+t.LDFlags, "-o", filepath.Join(tmp, t.Name), pkg))
}

// replaceBlock is the wrapper go.mod's replace block: each directory
// replacement of Module (dirs) pointed at ReplaceVersion, then the Pins.
// A pin replaces every version of its path, so it holds whatever version
// Module's graph selects.
func (t Tool) replaceBlock(dirs []string) string {
	var b strings.Builder
	b.WriteString("\nreplace (\n")
	for _, path := range dirs {
		fmt.Fprintf(&b, "\t%s => %s %s\n", path, path, t.ReplaceVersion)
	}
	for _, p := range t.Pins {
		fmt.Fprintf(&b, "\t%s => %s %s\n", p.Path, p.Path, p.Version)
	}
	b.WriteString(")\n")
	return b.String()
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
