package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/oci"
)

// Subject is one artifact the pipeline signs or attests to.
type Subject struct {
	// Name is the in-toto subject name: a file's base name, an image's
	// repository, or what the plugin calls the artifact.
	Name string
	// SHA256 is the lower-case hex SHA-256 digest; every subject has one.
	SHA256 string
	// Path, when set, is a local file: a signature signs its content.
	Path string
	// Image, when set, is a resolved manifest: a signature is cosign v3's
	// image signature, and bundles can be attached to it as referrers.
	Image *oci.Subject
}

var reSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// FileSubject is the file at path, named by its base name, digested in one
// streamed pass.
func FileSubject(path string) (Subject, error) {
	f, err := os.Open(path)
	if err != nil {
		return Subject{}, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return Subject{}, fmt.Errorf("%s is a directory; sign a file (e.g. an archive of the directory)", path)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return Subject{}, fmt.Errorf("reading %s: %w", path, err)
	}
	return Subject{Name: filepath.Base(path), SHA256: hex.EncodeToString(h.Sum(nil)), Path: path}, nil
}

// ImageSubject is a resolved image manifest, named by its repository as
// cosign names image subjects.
func ImageSubject(s *oci.Subject) (Subject, error) {
	d := s.Descriptor.Digest
	if d.Algorithm != "sha256" {
		return Subject{}, fmt.Errorf("image %s has a %s digest; only sha256 manifests can be signed", s.Digest, d.Algorithm)
	}
	return Subject{Name: s.Digest.Context().String(), SHA256: d.Hex, Image: s}, nil
}

func (s Subject) check() error {
	if !reSHA256.MatchString(s.SHA256) {
		return fmt.Errorf("subject %q: SHA256 %q is not 64 lower-case hex digits", s.Name, s.SHA256)
	}
	if s.Path != "" && s.Image != nil {
		return fmt.Errorf("subject %q is both a file and an image", s.Name)
	}
	return nil
}

func (s Subject) intoto() intoto.Subject {
	return intoto.Subject{Name: s.Name, Digest: map[string]string{"sha256": s.SHA256}}
}

// ErrNothingToSign is returned for a signature over a subject that is
// neither a file nor an image: a digest alone can only be attested to.
var ErrNothingToSign = errors.New("a subject given only by its digest can be attested to, not signed: sign a file or an image, or make an attestation")
