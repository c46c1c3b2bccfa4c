package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/modfile"

	"github.com/signet-dev/signet/internal/signetbuild"
)

// modulePath is the module a release is built from.
const modulePath = "github.com/signet-dev/signet"

// SumsFile is the checksum file of a release, in sha256sum format.
const SumsFile = "SHA256SUMS"

// Platform is one target of a release.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// Platforms are the targets every release has: the ones
// action/install-signet.sh maps runners to.
var Platforms = []Platform{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "amd64"}, {"darwin", "arm64"}}

// Asset is the file name of version's binary for p, the name the installer
// downloads.
func Asset(version string, p Platform) string {
	return "signet-" + version + "-" + p.OS + "-" + p.Arch
}

// versionRE is a release version: v + semantic version, optionally with a
// pre-release part (v1.2.3-rc.1), no build metadata ('+' is not valid in a
// git tag pattern the workflow matches, nor wanted in asset names).
var versionRE = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)

func checkVersion(v string) error {
	if v == "" {
		return usageError{fmt.Errorf("-version is required: the release version, e.g. v1.2.3 (the tag being released)")}
	}
	if !versionRE.MatchString(v) {
		return usageError{fmt.Errorf("-version %q is not a release version: use vMAJOR.MINOR.PATCH, optionally with a pre-release suffix (v1.2.3, v1.2.3-rc.1)", v)}
	}
	return nil
}

// buildSpec is one reproducible build of a release.
type buildSpec struct {
	Module    string // module root (go.mod of modulePath)
	Version   string
	Out       string // empty or new directory
	Epoch     time.Time
	Platforms []Platform
	Log       io.Writer
}

func buildCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("build", stderr)
	version := fs.String("version", "", "release version, e.g. v1.2.3 (required)")
	out := fs.String("out", "", "directory to write the binaries and "+SumsFile+" to; must be empty or new (required)")
	module := fs.String("module", ".", "root of the signet module to build")
	platforms := fs.String("platforms", "", "comma-separated os/arch subset of "+platformList(Platforms)+" (default all)")
	epoch := fs.String("source-date-epoch", os.Getenv("SOURCE_DATE_EPOCH"), "modification time given to the files, Unix seconds; default $SOURCE_DATE_EPOCH")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkVersion(*version); err != nil {
		return err
	}
	if *out == "" {
		return usageError{fmt.Errorf("-out is required: the directory for the release assets (e.g. dist)")}
	}
	ps, err := parsePlatforms(*platforms)
	if err != nil {
		return err
	}
	t, err := parseEpoch(*epoch)
	if err != nil {
		return err
	}
	return build(buildSpec{Module: *module, Version: *version, Out: *out, Epoch: t, Platforms: ps, Log: stdout})
}

func platformList(ps []Platform) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func parsePlatforms(s string) ([]Platform, error) {
	if s == "" {
		return Platforms, nil
	}
	var ps []Platform
	for _, f := range strings.Split(s, ",") {
		os, arch, _ := strings.Cut(strings.TrimSpace(f), "/")
		p := Platform{os, arch}
		if !slices.Contains(Platforms, p) {
			return nil, usageError{fmt.Errorf("-platforms: %q is not a release platform: use a comma-separated subset of %s", f, platformList(Platforms))}
		}
		if slices.Contains(ps, p) {
			return nil, usageError{fmt.Errorf("-platforms: %s is listed twice", p)}
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// parseEpoch reads SOURCE_DATE_EPOCH (reproducible-builds.org): the
// assets' modification time, so a copy or archive of the directory is
// identical too. Go's output does not depend on the time at all.
func parseEpoch(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, usageError{fmt.Errorf("SOURCE_DATE_EPOCH is not set: set it (or -source-date-epoch) to the commit time of the commit being released, e.g. SOURCE_DATE_EPOCH=$(git log -1 --format=%%ct)")}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, usageError{fmt.Errorf("SOURCE_DATE_EPOCH %q is not a Unix time in seconds: use e.g. $(git log -1 --format=%%ct)", s)}
	}
	return time.Unix(n, 0).UTC(), nil
}

// buildEnv is the environment of every go command of a release.
func buildEnv(p Platform) []string { return signetbuild.Env(p.OS, p.Arch) }

// wantToolchain is the exact Go release go.mod asks for: its toolchain
// line, else its go line. The compiler is part of the output, so a release
// is only reproducible with exactly this one.
func wantToolchain(module string) (string, error) {
	path := filepath.Join(module, "go.mod")
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("-module %s: %v; run from the root of a signet checkout or give -module", module, err)
	}
	f, err := modfile.ParseLax(path, raw, nil)
	if err != nil {
		return "", fmt.Errorf("%s: %v", path, err)
	}
	if f.Module == nil || f.Module.Mod.Path != modulePath {
		return "", fmt.Errorf("%s is not the go.mod of %s: run from the root of a signet checkout or give -module", path, modulePath)
	}
	if f.Toolchain != nil {
		return f.Toolchain.Name, nil
	}
	if f.Go == nil {
		return "", fmt.Errorf("%s has no go line: the release needs the exact Go version it names", path)
	}
	return "go" + f.Go.Version, nil
}

// checkToolchain refuses a go command other than the one go.mod names, and
// a GOEXPERIMENT (which an empty variable cannot override).
func checkToolchain(module string) error {
	want, err := wantToolchain(module)
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "env", "-json", "GOVERSION", "GOEXPERIMENT")
	cmd.Dir = module
	cmd.Env = buildEnv(Platforms[0])
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go env: %v\n%s", err, stderr.Bytes())
	}
	var env struct{ GOVERSION, GOEXPERIMENT string }
	if err := json.Unmarshal(out, &env); err != nil {
		return fmt.Errorf("go env -json: %v", err)
	}
	if env.GOVERSION != want {
		return fmt.Errorf("the go command is %s but go.mod asks for %s: a release must be built with exactly that toolchain to be reproducible; set GOTOOLCHAIN=%s (go fetches it) or install it", env.GOVERSION, want, want)
	}
	if env.GOEXPERIMENT != "" {
		return fmt.Errorf("GOEXPERIMENT is %q (from the environment or `go env -w`): a release is built without experiments; unset it (go env -u GOEXPERIMENT)", env.GOEXPERIMENT)
	}
	return nil
}

// build writes s.Out/signet-VERSION-OS-ARCH for each platform and
// SHA256SUMS over them.
func build(s buildSpec) error {
	if err := checkToolchain(s.Module); err != nil {
		return err
	}
	if err := emptyDir(s.Out); err != nil {
		return err
	}
	module, err := filepath.Abs(s.Module)
	if err != nil {
		return err
	}
	var sums []string
	for _, p := range s.Platforms {
		name := Asset(s.Version, p)
		dest, err := filepath.Abs(filepath.Join(s.Out, name))
		if err != nil {
			return err
		}
		start := time.Now()
		if err := signetbuild.Build(context.Background(), module, s.Version, p.OS, p.Arch, dest); err != nil {
			return err
		}
		sum, err := fileSHA256(dest)
		if err != nil {
			return err
		}
		if err := stamp(dest, 0o755, s.Epoch); err != nil {
			return err
		}
		sums = append(sums, sum+"  "+name)
		fmt.Fprintf(s.Log, "%s  %s (%s)\n", sum, name, time.Since(start).Round(time.Second))
	}
	// sha256sum's format, sorted by name so the file is one function of
	// the binaries.
	slices.SortFunc(sums, func(a, b string) int { return strings.Compare(a[66:], b[66:]) })
	path := filepath.Join(s.Out, SumsFile)
	if err := os.WriteFile(path, []byte(strings.Join(sums, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	if err := stamp(path, 0o644, s.Epoch); err != nil {
		return err
	}
	fmt.Fprintf(s.Log, "wrote %s\n", path)
	return nil
}

// emptyDir makes dir, or accepts it empty: stale assets of another build
// must not end up in SHA256SUMS's directory and be published with it.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return fmt.Errorf("-out %s: %v", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("-out %s already holds %s: give an empty or new directory, so nothing of another build is released with this one", dir, entries[0].Name())
	}
	return nil
}

func stamp(path string, mode os.FileMode, t time.Time) error {
	if err := os.Chmod(path, mode); err != nil {
		return err
	}
	return os.Chtimes(path, t, t)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
