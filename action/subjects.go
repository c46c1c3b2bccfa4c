package action

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/pipeline"
)

// Subject is a file, digest or image the action signs or attests to.
type Subject = pipeline.Subject

// bundleSuffix ends every bundle file name the action writes.
const bundleSuffix = ".sigstore.json"

var reSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// parseDigest reads "sha256:<hex>", the form actions/attest takes.
func parseDigest(s string) (string, error) {
	alg, v, ok := strings.Cut(s, ":")
	if !ok || alg != "sha256" || !reSHA256.MatchString(v) {
		return "", fmt.Errorf("%q is not a digest of the form sha256:<64 lower-case hex digits>", s)
	}
	return v, nil
}

// resolveSubjects turns the subject inputs into subjects. Images are resolved
// to their digest once: that digest is what gets signed.
func resolveSubjects(ctx context.Context, in *Inputs, registry *oci.Client) ([]Subject, error) {
	switch {
	case len(in.SubjectPaths) > 0:
		return globFiles(in.SubjectPaths)
	case in.SubjectDigest != "":
		d, _ := parseDigest(in.SubjectDigest) // checked by ReadInputs
		return []Subject{{Name: in.SubjectName, SHA256: d}}, nil
	case in.SubjectChecksums != "":
		return readChecksums(in.SubjectChecksums)
	case in.Image != "":
		s, err := registry.Resolve(ctx, in.Image)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w; push the image before this step and log in to its registry (docker/login-action)", in.Image, err)
		}
		if !strings.HasPrefix(s.Digest.DigestStr(), "sha256:") {
			return nil, fmt.Errorf("image %s resolved to %s; only sha256 manifests are supported", in.Image, s.Digest)
		}
		return []Subject{{Name: s.Digest.Context().Name(), SHA256: strings.TrimPrefix(s.Digest.DigestStr(), "sha256:"), Image: s}}, nil
	}
	return nil, errors.New("no subject") // ReadInputs rejects this
}

// globFiles expands subject-path patterns ("**" allowed, "!pattern"
// excludes) to regular files, in a stable order, each hashed. A pattern
// that matches no file is an error: a release that silently signs nothing
// is worse than a failed step.
func globFiles(patterns []string) ([]Subject, error) {
	var include, exclude []string
	for _, p := range patterns {
		if rest, ok := strings.CutPrefix(p, "!"); ok {
			exclude = append(exclude, filepath.Clean(rest))
		} else {
			include = append(include, p)
		}
	}
	if len(include) == 0 {
		return nil, badInput("subject-path", "only exclusions (!pattern) given; add a pattern that names the files to sign")
	}
	seen := map[string]bool{}
	var files []string
	for _, p := range include {
		if !doublestar.ValidatePathPattern(p) {
			return nil, badInput("subject-path", "%q is not a valid glob pattern", p)
		}
		matches, err := doublestar.FilepathGlob(p)
		if err != nil {
			return nil, badInput("subject-path", "%q: %v", p, err)
		}
		literal := !strings.ContainsAny(p, "*?[{")
		n := 0
		for _, m := range matches {
			st, err := os.Stat(m)
			if err != nil || !st.Mode().IsRegular() || excluded(m, exclude) {
				continue
			}
			// Bundles land next to the files they sign, so dist/* would
			// pick up the last run's bundles: a glob never selects them.
			if !literal && strings.HasSuffix(m, bundleSuffix) {
				continue
			}
			n++
			if !seen[m] {
				seen[m] = true
				files = append(files, m)
			}
		}
		if n == 0 {
			wd, _ := os.Getwd()
			return nil, badInput("subject-path", "%q matched no files in %s; check that the build step wrote them there, or fix the pattern (globs like dist/** are allowed)", p, wd)
		}
	}
	slices.Sort(files)
	subjects := make([]Subject, 0, len(files))
	for _, f := range files {
		d, err := fileSHA256(f)
		if err != nil {
			return nil, fmt.Errorf("subject %s: %w", f, err)
		}
		subjects = append(subjects, Subject{Name: filepath.Base(f), SHA256: d, Path: f})
	}
	return subjects, nil
}

func excluded(path string, patterns []string) bool {
	for _, x := range patterns {
		if ok, _ := doublestar.PathMatch(x, filepath.Clean(path)); ok {
			return true
		}
	}
	return false
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

// readChecksums reads a sha256sum file: "<hex>  <name>" (text) or
// "<hex> *<name>" (binary) per line, as `sha256sum` and goreleaser write it.
func readChecksums(path string) ([]Subject, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, badInput("subject-checksums", "%v", err)
	}
	defer f.Close()
	var out []Subject
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		d, name, ok := strings.Cut(line, " ")
		name = strings.TrimPrefix(strings.TrimPrefix(name, " "), "*")
		if !ok || !reSHA256.MatchString(d) || name == "" {
			return nil, badInput("subject-checksums", "%s line %d is not \"<sha256 hex>  <name>\" (the sha256sum format): %q", path, n, line)
		}
		out = append(out, Subject{Name: name, SHA256: d})
	}
	if err := sc.Err(); err != nil {
		return nil, badInput("subject-checksums", "reading %s: %v", path, err)
	}
	if len(out) == 0 {
		return nil, badInput("subject-checksums", "%s lists no checksums; write it with e.g. `sha256sum dist/* > checksums.txt`", path)
	}
	return out, nil
}
