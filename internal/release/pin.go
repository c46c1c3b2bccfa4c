package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// releaseHeader heads action/RELEASE; install-signet.sh ignores '#' lines.
const releaseHeader = `# The signet release this action runs; the release workflow writes it together
# with release.sha256 before tagging (docs/github-action.md). Empty on
# development branches: the action then builds from its own source.
`

// sumLineRE is a sha256sum line: text ("  name") or binary (" *name") mode.
var sumLineRE = regexp.MustCompile(`^([0-9a-f]{64}) [ *](.+)$`)

// readSums parses a SHA256SUMS of version: exactly one line for each
// release platform's binary, nothing else. It returns name -> hex digest.
func readSums(path, version string) (map[string]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%v; give the %s that `release build` wrote", err, SumsFile)
	}
	want := map[string]bool{}
	for _, p := range Platforms {
		want[Asset(version, p)] = true
	}
	sums := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		m := sumLineRE.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("%s line %d is not '<sha256 hex>  <file>': %q", path, n, line)
		}
		name := m[2]
		if !want[name] {
			return nil, fmt.Errorf("%s line %d lists %q, which is not a binary of signet %s (%s): give the %s `release build -version %s` wrote", path, n, name, version, strings.Join(slices.Sorted(maps.Keys(want)), ", "), SumsFile, version)
		}
		if _, dup := sums[name]; dup {
			return nil, fmt.Errorf("%s lists %s twice", path, name)
		}
		sums[name] = m[1]
	}
	for _, p := range Platforms {
		if _, ok := sums[Asset(version, p)]; !ok {
			return nil, fmt.Errorf("%s has no checksum for %s: every release has binaries for %s, and the action's pin must name them all", path, Asset(version, p), platformList(Platforms))
		}
	}
	return sums, nil
}

func pinCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("pin", stderr)
	version := fs.String("version", "", "release version, e.g. v1.2.3 (required)")
	sumsPath := fs.String("sums", "", "the release's "+SumsFile+" (required)")
	actionDir := fs.String("action-dir", "action", "the action/ directory of the checkout to pin")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkVersion(*version); err != nil {
		return err
	}
	if *sumsPath == "" {
		return usageError{fmt.Errorf("-sums is required: the %s of the release (e.g. dist/%s)", SumsFile, SumsFile)}
	}
	if err := pin(*actionDir, *version, *sumsPath); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pinned signet %s in %s\n", *version, filepath.Join(*actionDir, "RELEASE"))
	return nil
}

// pin writes RELEASE (the version) and release.sha256 (each binary's
// digest, sha256sum format, which install-signet.sh looks its asset up in).
func pin(actionDir, version, sumsPath string) error {
	if _, err := os.Stat(filepath.Join(actionDir, "install-signet.sh")); err != nil {
		return fmt.Errorf("-action-dir %s has no install-signet.sh: give the action/ directory of a signet checkout", actionDir)
	}
	sums, err := readSums(sumsPath, version)
	if err != nil {
		return err
	}
	var lines []string
	for _, name := range slices.Sorted(maps.Keys(sums)) {
		lines = append(lines, sums[name]+"  "+name)
	}
	if err := os.WriteFile(filepath.Join(actionDir, "RELEASE"), []byte(releaseHeader+version+"\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(actionDir, "release.sha256"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}
