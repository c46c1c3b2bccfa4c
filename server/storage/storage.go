// Package storage is the one storage layer under signet's three services: a
// data directory that holds the key material (generated on first start and
// kept), the transparency log's tiles (tessera's POSIX layout), the attestation
// database and the development issuer's state.
//
// Layout of the data directory:
//
//	lock                 advisory lock: one server per data directory
//	keys/                CA root + intermediate, log key, TSA chain (0600 keys)
//	log/                 tessera POSIX storage (checkpoint, tile/...)
//	signed-head          the largest checkpoint the log key signed (see server/tlog)
//	attestations.db      bbolt database of attestation envelopes
//	dev-oidc/            development issuer key and request token
package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Dir is an opened, locked data directory.
type Dir struct {
	root string
	lock *os.File
}

// Open creates root if needed and takes its lock, so that two servers never
// write the same log (tessera's POSIX driver assumes a single writer).
func Open(root string) (*Dir, error) {
	if root == "" {
		return nil, errors.New("data directory: empty path; pass --data DIR")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("data directory %q: %w", root, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("data directory %q: cannot create it: %w", abs, err)
	}
	f, err := os.OpenFile(filepath.Join(abs, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory %q: cannot open lock file: %w", abs, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data directory %q is in use by another signet server; stop it or pass a different --data", abs)
		}
		return nil, fmt.Errorf("data directory %q: cannot lock: %w", abs, err)
	}
	return &Dir{root: abs, lock: f}, nil
}

// Root is the absolute path of the data directory.
func (d *Dir) Root() string { return d.root }

// LogDir is where tessera keeps the log.
func (d *Dir) LogDir() string { return filepath.Join(d.root, "log") }

// ShardDir is where tessera keeps the log shard with the given origin (a
// log key rotation, keys.logRotations).
func (d *Dir) ShardDir(origin string) string { return filepath.Join(d.root, "log."+origin) }

// ShardHeadPath is SignedHeadPath for the shard with the given origin: out
// of ShardDir, so that a shard's directory wiped is detected.
func (d *Dir) ShardHeadPath(origin string) string {
	return filepath.Join(d.root, "signed-head."+origin)
}

// Shards lists the origins of the log shards the directory holds (made by
// earlier starts), sorted.
func (d *Dir) Shards() ([]string, error) {
	entries, err := os.ReadDir(d.root)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if origin, ok := strings.CutPrefix(e.Name(), "log."); ok && e.IsDir() {
			out = append(out, origin)
		} else if origin, ok := strings.CutPrefix(e.Name(), "signed-head."); ok && !e.IsDir() {
			out = append(out, origin)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// AttestationsPath is the attestation database file.
func (d *Dir) AttestationsPath() string { return filepath.Join(d.root, "attestations.db") }

// SignedHeadPath is where the log records the largest checkpoint its key
// signed, apart from tessera's state in LogDir.
func (d *Dir) SignedHeadPath() string { return filepath.Join(d.root, "signed-head") }

// heldData lists what of a log or store the directory already holds.
func (d *Dir) heldData() []string {
	var held []string
	if entries, err := os.ReadDir(d.LogDir()); err == nil && len(entries) > 0 {
		held = append(held, d.LogDir())
	}
	if shards, err := d.Shards(); err == nil {
		for _, origin := range shards {
			held = append(held, d.ShardDir(origin))
		}
	}
	for _, p := range []string{d.SignedHeadPath(), d.AttestationsPath(), d.AttestationsPath() + ".used"} {
		if _, err := os.Stat(p); err == nil {
			held = append(held, p)
		}
	}
	return held
}

// KeysDir holds the generated key material.
func (d *Dir) KeysDir() string { return filepath.Join(d.root, "keys") }

// Close releases the lock.
func (d *Dir) Close() error {
	if d.lock == nil {
		return nil
	}
	err := d.lock.Close()
	d.lock = nil
	return err
}

// WriteFileSync writes data to path atomically and durably: a reader sees the
// old content or the new, never half a file, even after a crash.
func WriteFileSync(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// IsFull reports whether err comes from a full disk or quota. tessera
// formats some storage errors with %v, which drops the errno from the
// chain, so its text is read too.
func IsFull(err error) bool {
	if err == nil {
		return false
	}
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		strings.Contains(err.Error(), syscall.ENOSPC.Error()) || strings.Contains(err.Error(), syscall.EDQUOT.Error())
}
