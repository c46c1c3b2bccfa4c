package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// moduleRoot is the root of this checkout.
func moduleRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// copySource copies the checkout's files (tracked and untracked, not
// ignored, as git lists them) to a new directory: another place the same
// source is built from.
func copySource(t *testing.T) string {
	t.Helper()
	root := moduleRoot(t)
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dir := t.TempDir()
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		raw, err := os.ReadFile(filepath.Join(root, name))
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		}
		if err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dest, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func hostPlatform(t *testing.T) Platform {
	p := Platform{runtime.GOOS, runtime.GOARCH}
	if !slices.Contains(Platforms, p) {
		t.Fatalf("this host (%s) is not a release platform", p)
	}
	return p
}

// TestBuildReproducible builds the host's binary of a release twice, from
// two copies of the source in different directories, at different times,
// the second with an empty build cache (nothing reused from the first), and
// requires the same bytes, the same SHA256SUMS and the commit's time on
// every file.
func TestBuildReproducible(t *testing.T) {
	const version = "v0.0.0-repro"
	p := hostPlatform(t)
	epoch := time.Unix(1767225600, 0) // 2026-01-01, as a commit time would be
	var outs, sources []string
	for i, cache := range []string{"", t.TempDir()} {
		if cache != "" {
			t.Setenv("GOCACHE", cache)
		}
		out := filepath.Join(t.TempDir(), "dist")
		var log bytes.Buffer
		start := time.Now()
		src := copySource(t)
		sources = append(sources, src)
		err := build(buildSpec{Module: src, Version: version, Out: out, Epoch: epoch, Platforms: []Platform{p}, Log: &log})
		if err != nil {
			t.Fatalf("build %d: %v\n%s", i+1, err, log.String())
		}
		t.Logf("build %d (GOCACHE %q) in %v: %s", i+1, cache, time.Since(start).Round(time.Second), log.String())
		outs = append(outs, out)
	}
	asset := Asset(version, p)
	for _, name := range []string{asset, SumsFile} {
		a, errA := os.ReadFile(filepath.Join(outs[0], name))
		b, errB := os.ReadFile(filepath.Join(outs[1], name))
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between the two builds (%d and %d bytes)", name, len(a), len(b))
		}
		for _, out := range outs {
			fi, err := os.Stat(filepath.Join(out, name))
			if err != nil {
				t.Fatal(err)
			}
			if !fi.ModTime().Equal(epoch) {
				t.Errorf("%s: modification time %v, want SOURCE_DATE_EPOCH %v", filepath.Join(out, name), fi.ModTime(), epoch)
			}
		}
	}
	bin := filepath.Join(outs[0], asset)
	sum, _ := fileSHA256(bin)
	if sums, _ := os.ReadFile(filepath.Join(outs[0], SumsFile)); string(sums) != sum+"  "+asset+"\n" {
		t.Errorf("%s is %q, want the binary's line %q", SumsFile, sums, sum+"  "+asset)
	}
	// The version is stamped; nothing of either checkout is in the binary.
	out, err := exec.Command(bin, "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	var v struct{ Version, Go, Platform, Commit string }
	if err := json.Unmarshal(out, &v); err != nil || v.Version != version || v.Go != runtime.Version() || v.Platform != p.String() || v.Commit != "" {
		t.Errorf("version -o json: %s (%v)", out, err)
	}
	raw, _ := os.ReadFile(bin)
	for _, dir := range append(sources, moduleRoot(t), runtime.GOROOT()) {
		if bytes.Contains(raw, []byte(dir+"/")) {
			t.Errorf("the binary contains the path %s: -trimpath did not apply", dir)
		}
	}
}

func TestBuildEnvOverridesTheCallersSettings(t *testing.T) {
	t.Setenv("GOFLAGS", "-race -tags=debug")
	t.Setenv("GOAMD64", "v3")
	t.Setenv("CGO_ENABLED", "1")
	t.Setenv("GOWORK", "/elsewhere/go.work")
	env := buildEnv(Platform{"darwin", "arm64"})
	got := map[string][]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = append(got[k], v)
	}
	for k, want := range map[string]string{"GOFLAGS": "-mod=readonly", "GOAMD64": "v1", "GOARM64": "v8.0", "CGO_ENABLED": "0", "GOWORK": "off", "GOOS": "darwin", "GOARCH": "arm64"} {
		if len(got[k]) != 1 || got[k][0] != want {
			t.Errorf("%s = %q, want exactly %q", k, got[k], want)
		}
	}
	if len(got["PATH"]) != 1 {
		t.Errorf("PATH not passed through: %q", got["PATH"])
	}
}

func TestBuildRefuses(t *testing.T) {
	// A module that is signet's but names another Go release.
	otherGo := t.TempDir()
	writeFile(t, filepath.Join(otherGo, "go.mod"), "module "+modulePath+"\n\ngo 1.26.0\n")
	notSignet := t.TempDir()
	writeFile(t, filepath.Join(notSignet, "go.mod"), "module example.com/app\n\ngo 1.26.0\n")
	busy := t.TempDir()
	writeFile(t, filepath.Join(busy, "old-asset"), "x")

	root := moduleRoot(t)
	for _, tc := range []struct {
		name string
		args []string
		env  string // SOURCE_DATE_EPOCH
		code int
		want string
	}{
		{"no version", []string{"-out", t.TempDir()}, "1", 2, "-version is required"},
		{"bad version", []string{"-version", "1.2.3", "-out", t.TempDir()}, "1", 2, `-version "1.2.3" is not a release version: use vMAJOR.MINOR.PATCH`},
		{"build metadata", []string{"-version", "v1.2.3+meta", "-out", t.TempDir()}, "1", 2, "is not a release version"},
		{"no out", []string{"-version", "v1.2.3"}, "1", 2, "-out is required"},
		{"no epoch", []string{"-version", "v1.2.3", "-out", t.TempDir()}, "", 2, "SOURCE_DATE_EPOCH is not set: set it (or -source-date-epoch) to the commit time"},
		{"bad epoch", []string{"-version", "v1.2.3", "-out", t.TempDir()}, "yesterday", 2, `SOURCE_DATE_EPOCH "yesterday" is not a Unix time in seconds`},
		{"bad platform", []string{"-version", "v1.2.3", "-out", t.TempDir(), "-platforms", "windows/amd64"}, "1", 2, `"windows/amd64" is not a release platform`},
		{"platform twice", []string{"-version", "v1.2.3", "-out", t.TempDir(), "-platforms", "linux/amd64,linux/amd64"}, "1", 2, "linux/amd64 is listed twice"},
		{"positional", []string{"-version", "v1.2.3", "-out", t.TempDir(), "extra"}, "1", 2, `unexpected argument "extra"`},
		{"other toolchain", []string{"-version", "v1.2.3", "-out", t.TempDir(), "-module", otherGo}, "1", 1, "but go.mod asks for go1.26.0: a release must be built with exactly that toolchain to be reproducible; set GOTOOLCHAIN=go1.26.0"},
		{"other module", []string{"-version", "v1.2.3", "-out", t.TempDir(), "-module", notSignet}, "1", 1, "is not the go.mod of github.com/signet-dev/signet"},
		{"non-empty out", []string{"-version", "v1.2.3", "-out", busy, "-module", root}, "1", 1, "already holds old-asset: give an empty or new directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", tc.env)
			code, stderr := runCmd(t, append([]string{"build"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, want %d; stderr:\n%s\nwant it to contain %q", code, tc.code, stderr, tc.want)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	if code, stderr := runCmd(t); code != 2 || !strings.Contains(stderr, "commands:") {
		t.Errorf("no command: exit %d\n%s", code, stderr)
	}
	if code, stderr := runCmd(t, "sign"); code != 2 || !strings.Contains(stderr, `unknown command "sign"`) {
		t.Errorf("unknown command: exit %d\n%s", code, stderr)
	}
	if code, stderr := runCmd(t, "pin", "-bogus"); code != 2 || !strings.Contains(stderr, "flag provided but not defined: -bogus") {
		t.Errorf("unknown flag: exit %d\n%s", code, stderr)
	}
}

// release is a fake release of version in a directory: content for each
// binary, SHA256SUMS, and a bundle file for each of them.
func fakeRelease(t *testing.T, version string) (dir string, sums string) {
	t.Helper()
	dir = t.TempDir()
	var lines []string
	for _, p := range Platforms {
		name := Asset(version, p)
		content := "binary " + name
		path := writeFile(t, filepath.Join(dir, name), content)
		os.Chmod(path, 0o755)
		sum := sha256.Sum256([]byte(content))
		lines = append(lines, hex.EncodeToString(sum[:])+"  "+name)
		writeFile(t, filepath.Join(dir, name+bundleSuffix), `{"bundle":"`+name+`"}`)
	}
	slices.SortFunc(lines, func(a, b string) int { return strings.Compare(a[66:], b[66:]) }) // by name, as build writes it
	sums = strings.Join(lines, "\n") + "\n"
	writeFile(t, filepath.Join(dir, SumsFile), sums)
	writeFile(t, filepath.Join(dir, SumsFile+bundleSuffix), `{"bundle":"sums"}`)
	writeFile(t, filepath.Join(dir, "signet-"+version+".slsaprovenance1"+bundleSuffix), `{"bundle":"provenance"}`)
	return dir, sums
}

func actionDir(t *testing.T) string {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "install-signet.sh"), "#!/bin/sh\n")
	writeFile(t, filepath.Join(dir, "RELEASE"), "# old header\n")
	writeFile(t, filepath.Join(dir, "release.sha256"), "")
	return dir
}

func TestPin(t *testing.T) {
	dist, sums := fakeRelease(t, "v1.2.3")
	action := actionDir(t)
	if code, stderr := runCmd(t, "pin", "-version", "v1.2.3", "-sums", filepath.Join(dist, SumsFile), "-action-dir", action); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	release, _ := os.ReadFile(filepath.Join(action, "RELEASE"))
	if !strings.HasSuffix(string(release), "\nv1.2.3\n") || !strings.HasPrefix(string(release), "# ") {
		t.Errorf("RELEASE:\n%s", release)
	}
	if pinned, _ := os.ReadFile(filepath.Join(action, "release.sha256")); string(pinned) != sums {
		t.Errorf("release.sha256:\n%s\nwant:\n%s", pinned, sums)
	}

	line := func(name string) string {
		return strings.Repeat("a", 64) + "  " + name + "\n"
	}
	all := ""
	for _, p := range Platforms {
		all += line(Asset("v1.2.3", p))
	}
	for _, tc := range []struct {
		name, sums, action, want string
	}{
		{"missing platform", strings.Join(strings.SplitAfter(all, "\n")[:3], ""), action, "has no checksum for signet-v1.2.3-darwin-arm64: every release has binaries for linux/amd64,linux/arm64,darwin/amd64,darwin/arm64"},
		{"other version", strings.ReplaceAll(all, "v1.2.3", "v1.2.4"), action, `lists "signet-v1.2.4-linux-amd64", which is not a binary of signet v1.2.3`},
		{"stray file", all + line("notes.txt"), action, `line 5 lists "notes.txt"`},
		{"twice", all + line(Asset("v1.2.3", Platforms[0])), action, "lists signet-v1.2.3-linux-amd64 twice"},
		{"malformed", "abc  signet-v1.2.3-linux-amd64\n", action, `line 1 is not '<sha256 hex>  <file>'`},
		{"not the action", all, t.TempDir(), "has no install-signet.sh: give the action/ directory of a signet checkout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, filepath.Join(t.TempDir(), SumsFile), tc.sums)
			code, stderr := runCmd(t, "pin", "-version", "v1.2.3", "-sums", path, "-action-dir", tc.action)
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d; stderr:\n%s\nwant it to contain %q", code, stderr, tc.want)
			}
		})
	}
	if code, stderr := runCmd(t, "pin", "-version", "v1.2.3", "-action-dir", action); code != 2 || !strings.Contains(stderr, "-sums is required") {
		t.Errorf("no -sums: exit %d\n%s", code, stderr)
	}
	// The failed runs left the first pin as it was.
	if pinned, _ := os.ReadFile(filepath.Join(action, "release.sha256")); string(pinned) != sums {
		t.Errorf("release.sha256 changed by a refused pin:\n%s", pinned)
	}
}

func TestPublishDir(t *testing.T) {
	const version = "v1.2.3"
	dist, _ := fakeRelease(t, version)
	mirror := t.TempDir()
	publish := func(from string) (int, string) {
		return runCmd(t, "publish-dir", "-version", version, "-from", from, "-to", mirror)
	}
	if code, stderr := publish(dist); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	want, _ := os.ReadDir(dist)
	got, _ := os.ReadDir(filepath.Join(mirror, version))
	if len(got) != len(want) || len(got) != 2*len(Platforms)+3 {
		t.Fatalf("mirror holds %v, want %v", got, want)
	}
	for _, e := range want {
		a, _ := os.ReadFile(filepath.Join(dist, e.Name()))
		b, _ := os.ReadFile(filepath.Join(mirror, version, e.Name()))
		fa, _ := os.Stat(filepath.Join(dist, e.Name()))
		fb, _ := os.Stat(filepath.Join(mirror, version, e.Name()))
		if !bytes.Equal(a, b) || fa.Mode() != fb.Mode() {
			t.Errorf("%s: published %q %v, want %q %v", e.Name(), b, fb.Mode(), a, fa.Mode())
		}
	}

	// A re-run: same binaries, new bundles. The mirror keeps what it has.
	writeFile(t, filepath.Join(dist, SumsFile+bundleSuffix), `{"bundle":"sums, signed again"}`)
	if code, stderr := publish(dist); code != 0 {
		t.Fatalf("re-run: exit %d\n%s", code, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(mirror, version, SumsFile+bundleSuffix)); string(b) != `{"bundle":"sums"}` {
		t.Errorf("re-run replaced a published bundle: %s", b)
	}

	t.Run("other bytes under a published name", func(t *testing.T) {
		other, sums := fakeRelease(t, version)
		name := Asset(version, Platforms[1])
		writeFile(t, filepath.Join(other, name), "rebuilt differently")
		sum := sha256.Sum256([]byte("rebuilt differently"))
		old := sha256.Sum256([]byte("binary " + name))
		writeFile(t, filepath.Join(other, SumsFile), strings.Replace(sums, hex.EncodeToString(old[:]), hex.EncodeToString(sum[:]), 1))
		code, stderr := publish(other)
		if code != 1 || !strings.Contains(stderr, "already exists with other content: a published release never changes") {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		if b, _ := os.ReadFile(filepath.Join(mirror, version, name)); string(b) != "binary "+name {
			t.Errorf("published binary replaced: %q", b)
		}
	})
	for _, tc := range []struct {
		name   string
		change func(dir string)
		want   string
	}{
		{"binary changed after the build", func(dir string) {
			writeFile(t, filepath.Join(dir, Asset(version, Platforms[0])), "tampered")
		}, "the file changed after the build; rebuild the release, never publish it"},
		{"unsigned", func(dir string) {
			os.Remove(filepath.Join(dir, SumsFile+bundleSuffix))
		}, "SHA256SUMS has no signature bundle SHA256SUMS.sigstore.json: sign the assets"},
		{"missing binary", func(dir string) {
			os.Remove(filepath.Join(dir, Asset(version, Platforms[3])))
		}, "SHA256SUMS lists it, so the release needs it"},
		{"subdirectory", func(dir string) {
			os.Mkdir(filepath.Join(dir, "extra"), 0o755)
		}, "extra in "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := fakeRelease(t, version)
			tc.change(dir)
			empty := t.TempDir()
			code, stderr := runCmd(t, "publish-dir", "-version", version, "-from", dir, "-to", empty)
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d; stderr:\n%s\nwant it to contain %q", code, stderr, tc.want)
			}
			if entries, _ := os.ReadDir(filepath.Join(empty, version)); len(entries) != 0 {
				t.Errorf("a refused release was published: %v", entries)
			}
		})
	}
}

func runCmd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stderr.String()
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
