package main

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// bundleSuffix ends the name of each Sigstore bundle the workflow signs
// the assets into (the action's naming).
const bundleSuffix = ".sigstore.json"

func publishDirCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("publish-dir", stderr)
	version := fs.String("version", "", "release version, e.g. v1.2.3 (required)")
	from := fs.String("from", "", "directory holding the signed release assets (required)")
	to := fs.String("to", "", "mirror root; the assets go to DIR/VERSION/, where SIGNET_RELEASE_URL=<URL of DIR> finds them (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkVersion(*version); err != nil {
		return err
	}
	if *from == "" || *to == "" {
		return usageError{fmt.Errorf("-from and -to are required: the signed assets' directory and the mirror root")}
	}
	names, err := publishDir(*from, *to, *version)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "published %d assets of signet %s to %s\n", len(names), *version, filepath.Join(*to, *version))
	return nil
}

// checkAssets is what must hold before anything of a release is made
// public: the binaries match SHA256SUMS, and every binary and SHA256SUMS
// has its signature bundle. It returns the files to publish.
func checkAssets(dir, version string) ([]string, error) {
	sums, err := readSums(filepath.Join(dir, SumsFile), version)
	if err != nil {
		return nil, err
	}
	for name, want := range sums {
		got, err := fileSHA256(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("%v: %s lists it, so the release needs it", err, SumsFile)
		}
		if got != want {
			return nil, fmt.Errorf("%s has sha256 %s but %s says %s: the file changed after the build; rebuild the release, never publish it", name, got, SumsFile, want)
		}
	}
	for _, name := range append(slices.Sorted(maps.Keys(sums)), SumsFile) {
		if _, err := os.Stat(filepath.Join(dir, name+bundleSuffix)); err != nil {
			return nil, fmt.Errorf("%s has no signature bundle %s: sign the assets (the workflow's Sign step) before publishing them", name, name+bundleSuffix)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("%s in %s is not a regular file: a release directory holds only its assets", e.Name(), dir)
		}
		names = append(names, e.Name())
	}
	return names, nil
}

// publishDir copies the assets of dir into to/version/. A file already
// there must have the same bytes: a published release never changes (a
// re-run may publish it again).
func publishDir(from, to, version string) ([]string, error) {
	names, err := checkAssets(from, version)
	if err != nil {
		return nil, err
	}
	dest := filepath.Join(to, version)
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return nil, fmt.Errorf("mirror %s: %v", to, err)
	}
	// Check every file first, so nothing is half published.
	var copies []string
	for _, name := range names {
		src, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			return nil, err
		}
		old, err := os.ReadFile(filepath.Join(dest, name))
		switch {
		case err == nil && bytes.Equal(old, src):
		case err == nil && strings.HasSuffix(name, bundleSuffix):
			// A re-run signs again: same artifact, new certificate and
			// log entry. Both bundles verify; keep the first.
		case err == nil:
			return nil, fmt.Errorf("%s already exists with other content: a published release never changes; if it must, remove %s by hand first", filepath.Join(dest, name), dest)
		case os.IsNotExist(err):
			copies = append(copies, name)
		default:
			return nil, err
		}
	}
	for _, name := range copies {
		if err := copyFile(filepath.Join(from, name), filepath.Join(dest, name)); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// copyFile writes dst through a temporary file and a rename, so the mirror
// never serves a partial asset.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".publish-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), fi.Mode().Perm()); err != nil {
		return err
	}
	if err := os.Chtimes(tmp.Name(), fi.ModTime(), fi.ModTime()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
