package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func hashes(n int) []byte {
	var b []byte
	for i := range n {
		h := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		b = append(b, h[:]...)
	}
	return b
}

// The backup copies a tree of a given size while tessera keeps writing:
// the partial tile that tree needs may have been joined by a longer one or
// by the full tile (and removed). Whichever is there, the backup takes its
// prefix; a version too short, or none, is an error naming the tile.
func TestBackupTileVersions(t *testing.T) {
	root := t.TempDir()
	f := logFiles{root: root}
	all := hashes(256)

	// Only a longer partial and one of tessera's temporaries.
	writeFile(t, filepath.Join(root, "tile/0/000.p/9"), all[:9*32])
	writeFile(t, filepath.Join(root, "tile/0/000.p/51804289383"), []byte("temporary"))
	got, err := f.tile(0, 0, 5)
	if err != nil || !bytes.Equal(got, all[:5*32]) {
		t.Fatalf("width 5 from the width-9 partial: %d bytes, %v", len(got), err)
	}
	// The exact width, when there, is taken as is.
	writeFile(t, filepath.Join(root, "tile/0/000.p/5"), all[:5*32])
	if got, err := f.tile(0, 0, 5); err != nil || !bytes.Equal(got, all[:5*32]) {
		t.Fatalf("width 5 exact: %d bytes, %v", len(got), err)
	}
	// Full and garbage-collected partials.
	if err := os.RemoveAll(filepath.Join(root, "tile/0/000.p")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "tile/0/000"), all)
	if got, err := f.tile(0, 0, 7); err != nil || !bytes.Equal(got, all[:7*32]) {
		t.Fatalf("width 7 from the full tile: %d bytes, %v", len(got), err)
	}
	if got, err := f.tile(0, 0, 0); err != nil || !bytes.Equal(got, all) {
		t.Fatalf("the full tile: %d bytes, %v", len(got), err)
	}
	// Too short a version is damage, not a prefix.
	writeFile(t, filepath.Join(root, "tile/1/000.p/3"), all[:2*32])
	if _, err := f.tile(1, 0, 3); err == nil || !strings.Contains(err.Error(), "not 3 hashes") {
		t.Fatalf("a tile shorter than its width: %v", err)
	}
	if _, err := f.tile(2, 0, 1); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a tile with no version: %v", err)
	}
}

// Entry bundles are cut at entry boundaries: tlog-tiles entries are
// uint16-length-prefixed.
func TestBackupBundlePrefix(t *testing.T) {
	root := t.TempDir()
	var bundle []byte
	var ends []int
	for i := range 6 {
		e := bytes.Repeat([]byte{byte('a' + i)}, 10+i)
		bundle = binary.BigEndian.AppendUint16(bundle, uint16(len(e)))
		bundle = append(bundle, e...)
		ends = append(ends, len(bundle))
	}
	writeFile(t, filepath.Join(root, "tile/entries/000.p/6"), bundle)
	got, err := logFiles{root: root}.bundle(0, 4)
	if err != nil || !bytes.Equal(got, bundle[:ends[3]]) {
		t.Fatalf("4 entries of 6: %d bytes (want %d), %v", len(got), ends[3], err)
	}
	writeFile(t, filepath.Join(root, "tile/entries/001.p/6"), bundle[:ends[4]+3])
	if _, err := (logFiles{root: root}).bundle(1, 6); err == nil || !strings.Contains(err.Error(), "holds 5 entries, 6 are needed") {
		t.Fatalf("a bundle cut inside an entry: %v", err)
	}

	// static-ct-api data tiles hold TileLeafs: an x509 entry, then a
	// precertificate entry (issuer key hash, TBS, the precertificate).
	u24 := func(b []byte, v []byte) []byte {
		return append(append(b, byte(len(v)>>16), byte(len(v)>>8), byte(len(v))), v...)
	}
	u16 := func(b []byte, v []byte) []byte { return append(binary.BigEndian.AppendUint16(b, uint16(len(v))), v...) }
	var ct []byte
	ct = binary.BigEndian.AppendUint64(ct, 1)
	ct = binary.BigEndian.AppendUint16(ct, 0)
	ct = u24(ct, []byte("certificate"))
	ct = u16(ct, nil)
	ct = u16(ct, bytes.Repeat([]byte{1}, 32))
	first := len(ct)
	ct = binary.BigEndian.AppendUint64(ct, 2)
	ct = binary.BigEndian.AppendUint16(ct, 1)
	ct = append(ct, bytes.Repeat([]byte{2}, 32)...)
	ct = u24(ct, []byte("tbs"))
	ct = u16(ct, []byte("ext"))
	ct = u24(ct, []byte("precertificate"))
	ct = u16(ct, bytes.Repeat([]byte{3}, 64))
	writeFile(t, filepath.Join(root, "tile/data/000.p/2"), ct)
	cf := logFiles{root: root, staticCT: true}
	if got, err := cf.bundle(0, 1); err != nil || len(got) != first {
		t.Fatalf("1 TileLeaf of 2: %d bytes (want %d), %v", len(got), first, err)
	}
	if got, err := cf.bundle(0, 2); err != nil || !bytes.Equal(got, ct) {
		t.Fatalf("2 TileLeafs of 2: %d bytes (want %d), %v", len(got), len(ct), err)
	}
	writeFile(t, filepath.Join(root, "tile/data/001.p/2"), ct[:len(ct)-1])
	if _, err := cf.bundle(1, 2); err == nil || !strings.Contains(err.Error(), "holds 1 entries, 2 are needed") {
		t.Fatalf("a data tile cut inside a TileLeaf: %v", err)
	}
}

// A second backup while one is being written is refused, before it reads
// anything.
func TestOneBackupAtATime(t *testing.T) {
	s := &Server{logger: slog.New(slog.DiscardHandler)}
	s.backingUp.Store(true)
	rec := httptest.NewRecorder()
	s.handleBackup(rec, httptest.NewRequest(http.MethodGet, "/backup", nil))
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "already being written") {
		t.Errorf("a second backup: %d %s", rec.Code, rec.Body)
	}
}
