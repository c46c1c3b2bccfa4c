package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/sign"
)

// Files writes bundles as files, all-or-nothing each.
//
// Default names: a signature of a file goes next to it as
// <file>.sigstore.json, an attestation about one file as
// <file>.<tag>.sigstore.json, where tag is intoto.FileTag of the predicate
// type (where verify-blob and verify-blob-attestation look). With Dir, every
// bundle goes there under its subject's name instead. Bundles that cannot sit
// next to a file (about a digest, an image, or several subjects) go to Dir,
// else FallbackDir, as <name>.<tag>.sigstore.json (an image's name with
// @sha256-<12 hex>, several subjects' as subjects-<12 hex of the statement>).
type Files struct {
	// Path, when set, is the one file the plan's only bundle is written to.
	Path        string
	Dir         string
	FallbackDir string

	mu    sync.Mutex
	paths map[*Item]string
}

// PathError is a bundle file that cannot be written where planned.
type PathError struct {
	Path string
	Err  error
}

func (e *PathError) Error() string { return fmt.Sprintf("bundle file %s: %v", e.Path, e.Err) }
func (e *PathError) Unwrap() error { return e.Err }

// Errors a PathError wraps.
var (
	ErrNotWritable   = errors.New("the directory is not writable")
	ErrNotABundle    = errors.New("the file exists and is not a Sigstore bundle; refusing to overwrite it")
	ErrOtherKind     = errors.New("the file holds a bundle of another kind; refusing to overwrite it")
	ErrSamePath      = errors.New("two bundles of this run would be written to the same file")
	ErrOnePath       = errors.New("one bundle path was given, but the run makes several bundles")
	ErrNoBundleDir   = errors.New("no directory was given for bundles that cannot sit next to a file")
	ErrPathIsDir     = errors.New("the path is a directory")
	ErrParentNotADir = errors.New("a parent of the path is not a directory")
)

// Name is "file".
func (f *Files) Name() string { return "file" }

// PathOf is where the bundle of it is written; valid after Check.
func (f *Files) PathOf(it *Item) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.paths[it]
}

func (f *Files) name(it *Item, many bool) (string, error) {
	if f.Path != "" {
		if many {
			return "", &PathError{Path: f.Path, Err: ErrOnePath}
		}
		return f.Path, nil
	}
	tag := ""
	if it.Statement != nil {
		tag = "." + intoto.FileTag(it.PredicateType)
	}
	if len(it.Subjects) == 1 && it.Subjects[0].Path != "" {
		s := it.Subjects[0]
		if f.Dir == "" {
			return s.Path + tag + ".sigstore.json", nil
		}
		return filepath.Join(f.Dir, s.Name+tag+".sigstore.json"), nil
	}
	dir := f.Dir
	if dir == "" {
		dir = f.FallbackDir
	}
	if dir == "" {
		return "", ErrNoBundleDir
	}
	var name string
	if len(it.Subjects) == 1 {
		s := it.Subjects[0]
		name = safeName(s.Name)
		if s.Image != nil {
			name += "@sha256-" + s.SHA256[:12]
		}
	} else {
		sum := sha256.Sum256(it.Statement)
		name = "subjects-" + hex.EncodeToString(sum[:6])
	}
	if tag == "" {
		tag = ".sig"
	}
	return filepath.Join(dir, name+tag+".sigstore.json"), nil
}

// Check names every bundle file and proves each can be written: its
// directory exists or can be made and is writable, nothing but an earlier
// bundle of the same kind sits at the path, and no two bundles share one.
func (f *Files) Check(_ context.Context, items []*Item) error {
	paths := map[*Item]string{}
	seen := map[string]*Item{}
	for _, it := range items {
		p, err := f.name(it, len(items) > 1)
		if err != nil {
			return err
		}
		clean := filepath.Clean(p)
		if prev := seen[clean]; prev != nil && f.Path == "" && it.Statement != nil && sameSubjects(prev, it) {
			// Two statements of one type about the same subjects (a build's
			// two CycloneDX SBOMs): the later is told apart by its digest.
			sum := sha256.Sum256(it.Statement)
			p = strings.TrimSuffix(p, ".sigstore.json") + "-" + hex.EncodeToString(sum[:6]) + ".sigstore.json"
			clean = filepath.Clean(p)
		}
		if seen[clean] != nil {
			return &PathError{Path: p, Err: ErrSamePath}
		}
		seen[clean] = it
		if err := checkWritable(p, it); err != nil {
			return &PathError{Path: p, Err: err}
		}
		paths[it] = p
	}
	f.mu.Lock()
	f.paths = paths
	f.mu.Unlock()
	return nil
}

func checkWritable(path string, it *Item) error {
	st, err := os.Stat(path)
	switch {
	case err == nil && st.IsDir():
		return ErrPathIsDir
	case err == nil:
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		b, err := bundle.Parse(raw)
		if err != nil {
			return ErrNotABundle
		}
		if !sameKind(b, it) {
			return ErrOtherKind
		}
	case errors.Is(err, syscall.ENOTDIR):
		return ErrParentNotADir
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	// The nearest existing ancestor must be a writable directory: probe it.
	dir := filepath.Dir(path)
	for {
		st, err := os.Stat(dir)
		if err == nil {
			if !st.IsDir() {
				return ErrParentNotADir
			}
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		up := filepath.Dir(dir)
		if up == dir {
			return err
		}
		dir = up
	}
	probe, err := os.CreateTemp(dir, ".signet-probe-*")
	if err != nil {
		return fmt.Errorf("%w: %s (%v)", ErrNotWritable, dir, err)
	}
	probe.Close()
	return os.Remove(probe.Name())
}

// sameKind says an existing bundle is an earlier one of what it makes: both
// message signatures, or both statements of the same predicate type.
func sameKind(b *bundle.Bundle, it *Item) bool {
	env := b.DSSEEnvelope()
	if it.Statement == nil || env == nil {
		return it.Statement == nil && env == nil
	}
	st, err := intoto.ParseStatementHeader(env.GetPayload())
	return err == nil && st.GetPredicateType() == it.PredicateType
}

// Put writes the bundle.
func (f *Files) Put(_ context.Context, it *Item, b *Signed) ([]Placement, error) {
	p := f.PathOf(it)
	if p == "" {
		return nil, fmt.Errorf("files: %s was not checked before signing", it.Describe())
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, &PathError{Path: p, Err: err}
	}
	if err := sign.WriteBundle(p, b.JSON); err != nil {
		return nil, err
	}
	return []Placement{{Destination: f.Name(), Location: p}}, nil
}

// safeName makes a subject name usable as a file name.
func safeName(s string) string {
	return strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
			return c
		}
		return '_'
	}, s)
}

func sameSubjects(a, b *Item) bool {
	if len(a.Subjects) != len(b.Subjects) {
		return false
	}
	for i := range a.Subjects {
		if a.Subjects[i].SHA256 != b.Subjects[i].SHA256 || a.Subjects[i].Name != b.Subjects[i].Name {
			return false
		}
	}
	return true
}
