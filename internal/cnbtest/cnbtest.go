// Package cnbtest runs real Cloud Native Buildpacks builds for tests: the
// lifecycle's creator (github.com/buildpacks/lifecycle v0.21.17, built from
// the Go module proxy into the tools cache by internal/toolcache), daemonless,
// exporting to a loopback registry (core/oci/ocitest), with a small test
// buildpack that writes the SBOMs a test asks for, and a run image and a
// builder image the harness pushes. The output is the lifecycle's own:
// report.toml, the layers directory, the exported image with its labels and
// SBOM layer, so the buildpack hook is tested against what platforms see.
//
// What the lifecycle needs, found by reading and running v0.21.17:
//
//   - Platform APIs: 0.7 to 0.15 (its api.Platform, none deprecated);
//     PlatformAPIs lists them. Buildpack APIs 0.7 to 0.12.
//   - The binary dispatches on argv[0]: the harness runs a symlink named
//     creator. As a phase it refuses to run without CNB_PLATFORM_API.
//   - Users: the creator drops to -uid/-gid itself and looks the uid up in
//     /etc/passwd (for HOME), so the uid must have an entry. Run as root, the
//     harness runs it as nobody from the start (SysProcAttr.Credential, with
//     the work directory chowned to it), as kpack and pack --publish run the
//     lifecycle as the build image's user; otherwise as the current user.
//   - Registry: nothing needs to be insecure for 127.0.0.1, which
//     go-containerregistry reaches over plain HTTP; at Platform API 0.13 and
//     later the harness passes -insecure-registry anyway, the flag the spec
//     names (earlier APIs have no such flag; the lifecycle reads
//     CNB_INSECURE_REGISTRIES at every API, which the harness does not rely
//     on). The keychain is an empty DOCKER_CONFIG: the registry has no auth.
//   - Run image: Platform API 0.12 and later read it from run.toml (-run),
//     earlier ones from stack.toml (-stack); the run image needs a linux
//     config for the target checks, nothing else (io.buildpacks.stack.id is
//     only checked on rebase; the harness sets it and CNB_USER_ID and
//     CNB_GROUP_ID as a stack would).
//   - Media types: the exported image keeps the run image's (imgutil keeps
//     the base image's types), so DockerMediaTypes gives a Docker v2 schema 2
//     manifest and otherwise the export is OCI.
//   - SBOMs: at Platform API 0.7 the lifecycle ignores SBOM files: there is no
//     <layers>/sbom and no SBOM layer. From 0.8 it copies them to
//     <layers>/sbom/{launch,build}/<buildpack>/[<layer>/]sbom.<format>.json
//     (the buildpack ID with / as _) and exports <layers>/sbom/launch as the
//     SBOM layer, whose entries are the absolute paths on disk and whose
//     diffID is "sbom"."sha" in io.buildpacks.lifecycle.metadata; the build
//     SBOMs stay on disk only. From 0.9 it adds sbom.legacy.json (the
//     deprecated BOM table, "[]" here) to both directories. From 0.11 it
//     would add its own SBOMs under buildpacksio_lifecycle/ from
//     /cnb/lifecycle, which this harness does not have (the lifecycle warns
//     and goes on). The lifecycle never reads an SBOM's content, so a
//     Broken one is exported as written.
//   - report.toml: the same at every API: [image] tags, digest (of the
//     manifest), manifest-size; no image-id when exporting to a registry.
//   - Labels: io.buildpacks.lifecycle.metadata names the run image by digest
//     in "runImage"."reference" at every API, by the run.toml/stack.toml tag
//     in "stack"."runImage"."image" at every API and also in
//     "runImage"."image" from 0.12. io.buildpacks.build.metadata has
//     "bom": null before 0.9 and no "bom" from then; a process's command is
//     a string before 0.10 and an array from then (the lifecycle's
//     launch.RawCommand); the launcher's version and commit are there at
//     every API. io.buildpacks.project.metadata is "{}" without a Source.
//     io.buildpacks.exec-env appears from 0.15. The run image's labels are
//     kept.
//   - Reproducible: a rebuild from the same layers directory, app and cache,
//     with the same buildpack and run image, exports the same digest (times
//     are normalized to 1980-01-01T00:00:01Z). Absolute paths of the work
//     directory end up in the image (app and layers paths, WORKDIR, the
//     SBOM layer's entries), which is why a rebuild must reuse the earlier
//     build's directories.
package cnbtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/signet-dev/signet/internal/toolcache"
)

// PlatformAPIs are the Platform API versions lifecycle v0.21.17 supports,
// oldest first.
var PlatformAPIs = []string{"0.7", "0.8", "0.9", "0.10", "0.11", "0.12", "0.13", "0.14", "0.15"}

// BuildpackAPIs are the Buildpack API versions it supports.
var BuildpackAPIs = []string{"0.7", "0.8", "0.9", "0.10", "0.11", "0.12"}

// Options describe a build.
type Options struct {
	Registry    string   // host:port, e.g. from ocitest.Start; required
	Repository  string   // image repository under Registry, default "app"
	Tag         string   // default "latest"
	Tags        []string // more tags in Repository (-tag), listed in report.toml after Tag
	PlatformAPI string   // CNB_PLATFORM_API; default the newest, PlatformAPIs' last
	// SBOMs the test buildpack writes; nil: one launch CycloneDX SBOM. An
	// empty non-nil slice writes none.
	SBOMs []SBOM
	// DockerMediaTypes pushes the run image with Docker v2 schema 2 media
	// types, which the export then has too.
	DockerMediaTypes bool
	// LayersDir is an earlier Build's LayersDir, for a rebuild: its app,
	// platform and cache directories (its siblings) are reused too, since
	// their paths are in the image. It must come from this test or a parent
	// (the directories go when the test that made them ends). "": a new
	// build in a new directory.
	LayersDir string
	// ReportPath is passed as -report, relative to the build's work
	// directory (the build user cannot write to a t.TempDir); "": the
	// lifecycle's default, <layers>/report.toml.
	ReportPath string
	// Source, when set, is written as the platform's project-metadata.toml
	// (<layers>/project-metadata.toml), which the lifecycle turns into the
	// io.buildpacks.project.metadata label.
	Source *Source
	// Env is extra environment for the creator (e.g. SOURCE_DATE_EPOCH);
	// it overrides the harness's.
	Env map[string]string
}

// Source is a git project source as the platform spec's project metadata
// describes it.
type Source struct {
	Repository string
	Commit     string
	Refs       []string
}

// Build is a finished build.
type Build struct {
	// WorkDir holds the build's directories: layers, app, platform, cache,
	// buildpacks, cnb (order.toml, run.toml, stack.toml, the lifecycle and
	// launcher).
	WorkDir                                  string
	LayersDir, AppDir, PlatformDir, CacheDir string
	ReportPath                               string
	Image                                    string // registry/repository:tag as exported
	Digest                                   string // sha256:... of the exported manifest, from report.toml
	Tags                                     []string
	ManifestSize                             int64  // from report.toml
	MediaType                                string // of the run image, and so of the exported manifest
	RunImage                                 string // registry/repository@sha256:... of the run image
	RunImageTag                              string // the tag run.toml and stack.toml name it by
	BuilderImage                             string // registry/repository@sha256:... of the builder image
	PlatformAPI, BuildpackAPI                string
	LifecycleVersion                         string // as the lifecycle reports it (0.21.17), without the commit
	Buildpack                                string // BuildpackID@BuildpackVersion
	UID, GID                                 int    // the user the lifecycle and buildpack ran as
	SBOMs                                    []SBOMFile
	Wall                                     time.Duration // the creator's whole run
	// Export is the lifecycle's own timer of its export phase (its debug
	// "Timer: Exporter ran for"), which includes pushing the image but not
	// the cache: the time to set a hook's beside.
	Export time.Duration
	Log    string // the creator's output, at debug level
}

// Run builds and exports an image, failing the test with the lifecycle's
// output if the build fails.
func Run(t testing.TB, o Options) *Build {
	t.Helper()
	b, err := run(t, o)
	if err != nil {
		t.Fatalf("cnbtest: %v", err)
	}
	return b
}

const marker = ".cnbtest"

func run(t testing.TB, o Options) (*Build, error) {
	if o.Registry == "" {
		return nil, errors.New("Options.Registry is required")
	}
	if o.Repository == "" {
		o.Repository = "app"
	}
	if o.Tag == "" {
		o.Tag = "latest"
	}
	if o.PlatformAPI == "" {
		o.PlatformAPI = PlatformAPIs[len(PlatformAPIs)-1]
	}
	if o.SBOMs == nil {
		o.SBOMs = []SBOM{{Scope: ScopeLaunch, Format: CycloneDX}}
	}
	lifecycle, err := toolcache.Lifecycle.Binary()
	if err != nil {
		return nil, err
	}
	launcher, err := toolcache.Launcher.Binary()
	if err != nil {
		return nil, err
	}
	version, err := lifecycleVersion(lifecycle)
	if err != nil {
		return nil, err
	}
	uid, gid, err := buildUser()
	if err != nil {
		return nil, err
	}

	var work string
	if o.LayersDir != "" {
		work = filepath.Dir(o.LayersDir)
		if _, err := os.Stat(filepath.Join(work, marker)); err != nil {
			return nil, fmt.Errorf("LayersDir %s is not a cnbtest build's (no %s beside it): %v", o.LayersDir, marker, err)
		}
	} else if work, err = newWorkDir(t); err != nil {
		return nil, err
	}
	b := &Build{
		WorkDir: work, LayersDir: filepath.Join(work, "layers"), AppDir: filepath.Join(work, "app"),
		PlatformDir: filepath.Join(work, "platform"), CacheDir: filepath.Join(work, "cache"),
		ReportPath: o.ReportPath, Image: o.Registry + "/" + o.Repository + ":" + o.Tag,
		PlatformAPI: o.PlatformAPI, BuildpackAPI: BuildpackAPI, LifecycleVersion: version, UID: uid, GID: gid,
		Buildpack: BuildpackID + "@" + BuildpackVersion,
	}
	switch {
	case b.ReportPath == "":
		b.ReportPath = filepath.Join(b.LayersDir, "report.toml")
	case filepath.IsAbs(b.ReportPath) || !filepath.IsLocal(b.ReportPath):
		return nil, fmt.Errorf("ReportPath %q should be relative to the work directory", b.ReportPath)
	default:
		b.ReportPath = filepath.Join(work, b.ReportPath)
		if err := os.MkdirAll(filepath.Dir(b.ReportPath), 0o755); err != nil {
			return nil, err
		}
	}
	cnb := filepath.Join(work, "cnb")
	for _, d := range []string{b.LayersDir, b.AppDir, filepath.Join(b.PlatformDir, "env"), b.CacheDir, filepath.Join(cnb, "lifecycle"), filepath.Join(work, "docker"), filepath.Join(work, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// The creator runs unprivileged and cannot read the tools cache under
	// root's home, so it gets copies (the launcher goes into the image).
	if err := copyExecutable(lifecycle, filepath.Join(cnb, "lifecycle", "lifecycle")); err != nil {
		return nil, err
	}
	if err := copyExecutable(launcher, filepath.Join(cnb, "lifecycle", "launcher")); err != nil {
		return nil, err
	}
	creator := filepath.Join(cnb, "lifecycle", "creator")
	if _, err := os.Lstat(creator); errors.Is(err, os.ErrNotExist) {
		if err := os.Symlink("lifecycle", creator); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(work, "docker", "config.json"), []byte("{}\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(b.AppDir, "app.txt"), []byte("the signet cnbtest app\n"), 0o644); err != nil {
		return nil, err
	}
	if o.Source != nil {
		if err := writeTOML(filepath.Join(b.LayersDir, "project-metadata.toml"), projectMetadata(o.Source)); err != nil {
			return nil, err
		}
	}

	// The buildpack, rewritten on a rebuild since its SBOMs may differ.
	bpDir := filepath.Join(work, "buildpacks", escapedBuildpackID, BuildpackVersion)
	if err := os.RemoveAll(bpDir); err != nil {
		return nil, err
	}
	bp, sboms, err := buildpackFiles(o.SBOMs, b.LayersDir, atLeast(o.PlatformAPI, "0.8"))
	if err != nil {
		return nil, err
	}
	b.SBOMs = sboms
	for rel, data := range bp {
		mode := os.FileMode(0o644)
		if strings.HasPrefix(rel, "bin/") {
			mode = 0o755
		}
		if err := writeFile(filepath.Join(bpDir, rel), data, mode); err != nil {
			return nil, err
		}
	}

	mt := ociTypes
	if o.DockerMediaTypes {
		mt = dockerTypes
	}
	b.MediaType = string(mt.manifest)
	run, err := runImage(mt, uid, gid)
	if err != nil {
		return nil, err
	}
	if b.RunImageTag, b.RunImage, err = push(run, o.Registry+"/cnbtest/run"); err != nil {
		return nil, err
	}
	orderTOML, err := tomlBytes(map[string]any{"order": []map[string]any{{"group": []map[string]string{{"id": BuildpackID, "version": BuildpackVersion}}}}})
	if err != nil {
		return nil, err
	}
	runTOML, err := tomlBytes(map[string]any{"images": []map[string]any{{"image": b.RunImageTag, "mirrors": []string{}}}})
	if err != nil {
		return nil, err
	}
	stackTOML, err := tomlBytes(map[string]any{"run-image": map[string]any{"image": b.RunImageTag, "mirrors": []string{}}})
	if err != nil {
		return nil, err
	}
	cnbFiles := map[string][]byte{"order.toml": orderTOML, "run.toml": runTOML, "stack.toml": stackTOML}
	for file, data := range cnbFiles {
		if err := writeFile(filepath.Join(cnb, file), data, 0o644); err != nil {
			return nil, err
		}
	}
	// The builder holds the buildpack without its SBOM documents, so a 1 MB
	// SBOM benchmark does not push megabytes of builder too.
	builderBP := map[string][]byte{}
	for rel, data := range bp {
		if !strings.HasPrefix(rel, "sbom-data/") {
			builderBP[rel] = data
		}
	}
	builder, err := builderImage(ociTypes, builderBP, cnbFiles, b.RunImageTag, version, uid, gid)
	if err != nil {
		return nil, err
	}
	if _, b.BuilderImage, err = push(builder, o.Registry+"/cnbtest/builder"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(work, marker), nil, 0o644); err != nil {
		return nil, err
	}
	if err := chownTree(work, uid, gid); err != nil {
		return nil, err
	}

	args := []string{
		"-app", b.AppDir, "-layers", b.LayersDir, "-platform", b.PlatformDir,
		"-buildpacks", filepath.Join(work, "buildpacks"), "-order", filepath.Join(cnb, "order.toml"),
		"-cache-dir", b.CacheDir, "-launcher", filepath.Join(cnb, "lifecycle", "launcher"),
		"-report", b.ReportPath,
		"-uid", strconv.Itoa(uid), "-gid", strconv.Itoa(gid), "-log-level", "debug", "-no-color",
	}
	if atLeast(o.PlatformAPI, "0.12") {
		args = append(args, "-run", filepath.Join(cnb, "run.toml"))
	} else {
		args = append(args, "-stack", filepath.Join(cnb, "stack.toml"))
	}
	if atLeast(o.PlatformAPI, "0.13") {
		args = append(args, "-insecure-registry", o.Registry)
	}
	for _, tag := range o.Tags {
		args = append(args, "-tag", o.Registry+"/"+o.Repository+":"+tag)
	}
	args = append(args, b.Image)

	env := map[string]string{
		"PATH":             "/usr/local/bin:/usr/bin:/bin",
		"CNB_PLATFORM_API": o.PlatformAPI,
		"DOCKER_CONFIG":    filepath.Join(work, "docker"),
		"TMPDIR":           filepath.Join(work, "tmp"),
	}
	for k, v := range o.Env {
		env[k] = v
	}
	cmd := exec.CommandContext(t.Context(), creator, args...)
	cmd.Dir = work
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if os.Getuid() != uid || os.Getgid() != gid {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	start := time.Now()
	err = cmd.Run()
	b.Wall = time.Since(start)
	b.Log = out.String()
	if err != nil {
		return nil, fmt.Errorf("creator (Platform API %s) failed: %v\n%s %s\n%s", o.PlatformAPI, err, creator, strings.Join(args, " "), b.Log)
	}
	b.Export = exporterTime(b.Log)

	var report struct {
		Image struct {
			Tags         []string `toml:"tags"`
			Digest       string   `toml:"digest"`
			ManifestSize int64    `toml:"manifest-size"`
		} `toml:"image"`
	}
	if _, err := toml.DecodeFile(b.ReportPath, &report); err != nil {
		return nil, fmt.Errorf("reading the lifecycle's report: %v\n%s", err, b.Log)
	}
	if _, err := v1.NewHash(report.Image.Digest); err != nil {
		return nil, fmt.Errorf("report.toml has no image digest (%q): %v\n%s", report.Image.Digest, err, b.Log)
	}
	b.Digest, b.Tags, b.ManifestSize = report.Image.Digest, report.Image.Tags, report.Image.ManifestSize
	return b, nil
}

// Ref is the exported image by digest, repository@sha256:....
func (b *Build) Ref() string {
	ref, err := name.ParseReference(b.Image, name.Insecure)
	if err != nil {
		return b.Image + "@" + b.Digest
	}
	return ref.Context().Name() + "@" + b.Digest
}

// buildUser is who the buildpack runs as: nobody when the tests run as root
// (the lifecycle needs the uid in /etc/passwd), else the current user.
func buildUser() (uid, gid int, err error) {
	if os.Getuid() != 0 {
		if _, err := user.LookupId(strconv.Itoa(os.Getuid())); err != nil {
			return 0, 0, fmt.Errorf("the lifecycle looks up its user's home in /etc/passwd, which has no entry for uid %d: %v", os.Getuid(), err)
		}
		return os.Getuid(), os.Getgid(), nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return 0, 0, fmt.Errorf("running as root, the build needs an unprivileged user with an /etc/passwd entry: %v", err)
	}
	uid, err = strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, err
	}
	gid, err = strconv.Atoi(u.Gid)
	return uid, gid, err
}

// newWorkDir is a directory the unprivileged build user can reach: a
// t.TempDir is inside a 0700 directory of the test's user.
func newWorkDir(t testing.TB) (string, error) {
	dir, err := os.MkdirTemp("", "cnbtest-")
	if err != nil {
		return "", err
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Getuid() == 0 {
		for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o001 == 0 {
				return "", fmt.Errorf("the build user cannot reach %s: %s is not searchable by others (%v); point TMPDIR elsewhere", dir, p, err)
			}
			if p == filepath.Dir(p) {
				break
			}
		}
	}
	return dir, os.Chmod(dir, 0o755)
}

func chownTree(root string, uid, gid int) error {
	if os.Getuid() != 0 {
		return nil
	}
	return filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, mode)
}

func tomlBytes(v any) ([]byte, error) {
	var buf bytes.Buffer
	err := toml.NewEncoder(&buf).Encode(v)
	return buf.Bytes(), err
}

func writeTOML(path string, v any) error {
	data, err := tomlBytes(v)
	if err != nil {
		return err
	}
	return writeFile(path, data, 0o644)
}

func projectMetadata(s *Source) map[string]any {
	md := map[string]any{"repository": s.Repository}
	if len(s.Refs) > 0 {
		md["refs"] = s.Refs
	}
	return map[string]any{"source": map[string]any{"type": "git", "version": map[string]any{"commit": s.Commit}, "metadata": md}}
}

// lifecycleVersion is what `lifecycle -version` prints (0.21.17+ba8eca5)
// without the commit.
func lifecycleVersion(bin string) (string, error) {
	out, err := exec.Command(bin, "-version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s -version: %v\n%s", bin, err, out)
	}
	v, _, _ := strings.Cut(strings.TrimSpace(string(out)), "+")
	return v, nil
}

var exporterTimer = regexp.MustCompile(`Timer: Exporter ran for (\S+) and ended`)

// exporterTime is the export phase's duration as the lifecycle logs it at
// debug level (its log.NewMeasurement around Exporter.Export); 0 if absent.
func exporterTime(log string) time.Duration {
	m := exporterTimer.FindStringSubmatch(log)
	if m == nil {
		return 0
	}
	d, _ := time.ParseDuration(m[1])
	return d
}

// atLeast compares Platform API versions "<major>.<minor>".
func atLeast(v, min string) bool {
	parse := func(s string) (int, int) {
		maj, mnr, _ := strings.Cut(s, ".")
		a, _ := strconv.Atoi(maj)
		b, _ := strconv.Atoi(mnr)
		return a, b
	}
	a, b := parse(v)
	c, d := parse(min)
	return a > c || a == c && b >= d
}

func sha256Digest(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}
