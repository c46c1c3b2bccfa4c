package attest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"sync"

	"github.com/signet-dev/signet/server/storage"
)

// bbolt maps its file and trusts it: a file cut short makes it read past the
// end of the mapping and crash the process (SIGSEGV/SIGBUS) instead of
// failing. checkDatabaseFile reads bbolt's two meta pages first (the layout
// is bbolt's file format: a 16-byte page header, then magic, version, page
// size, flags, root bucket, freelist, high-water page id, txid, checksum)
// and refuses a file shorter than the newest valid meta says it is.
const (
	boltMagic    = 0xED0CDAED
	boltVersion  = 2
	boltPageHdr  = 16
	boltMetaSize = 64 // meta fields through the checksum
)

// usedMarker is the file beside the database that says it has held
// attestations: an empty or missing database next to it lost them.
func usedMarker(path string) string { return path + ".used" }

func checkDatabaseFile(path string) error {
	fi, err := os.Stat(path)
	missing := errors.Is(err, os.ErrNotExist)
	if err != nil && !missing {
		return err
	}
	if missing || fi.Size() == 0 {
		if _, err := os.Stat(usedMarker(path)); err == nil {
			what := "missing"
			if !missing {
				what = "empty"
			}
			return fmt.Errorf("%s is %s, but it held attestations (%s records that); the stored envelopes are gone while their log entries remain. Restore %s from backup; to start a new, empty store on purpose, remove %s", path, what, usedMarker(path), path, usedMarker(path))
		}
		return nil // a new store
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var best struct {
		ok                   bool
		pageSize, pgid, txid uint64
	}
	// Meta page 0 is at offset 0; meta page 1 is one page further, and the
	// page size is in the meta itself (try the common sizes for page 1).
	head := make([]byte, boltPageHdr+boltMetaSize)
	readMeta := func(off int64) {
		if _, err := f.ReadAt(head, off); err != nil && !errors.Is(err, io.EOF) {
			return
		}
		m := head[boltPageHdr:]
		if binary.LittleEndian.Uint32(m[0:]) != boltMagic || binary.LittleEndian.Uint32(m[4:]) != boltVersion {
			return
		}
		h := fnv.New64a()
		h.Write(m[:56])
		if h.Sum64() != binary.LittleEndian.Uint64(m[56:]) {
			return
		}
		ps, pgid, txid := uint64(binary.LittleEndian.Uint32(m[8:])), binary.LittleEndian.Uint64(m[40:]), binary.LittleEndian.Uint64(m[48:])
		if !best.ok || txid > best.txid {
			best.ok, best.pageSize, best.pgid, best.txid = true, ps, pgid, txid
		}
	}
	readMeta(0)
	if best.ok {
		readMeta(int64(best.pageSize))
	}
	if !best.ok {
		return fmt.Errorf("%s is not a readable bbolt database: neither meta page is valid; restore it from backup", path)
	}
	if need := best.pgid * best.pageSize; uint64(fi.Size()) < need {
		return fmt.Errorf("%s is truncated: it is %d bytes, but its metadata (transaction %d) says the database fills %d; restore it from backup", path, fi.Size(), best.txid, need)
	}
	return nil
}

// watermark is the durable count of attestations the store has held, kept
// in usedMarker beside the database and written after each new record
// commits: a database holding fewer records than it says is an older copy
// (or a damaged one), and its missing envelopes have log entries that
// point nowhere.
type watermark struct {
	mu    sync.Mutex
	path  string
	count uint64
}

// readWatermark returns the recorded count; a marker from before counts
// were recorded says only "at least one".
func readWatermark(dbPath string) (uint64, bool, error) {
	b, err := os.ReadFile(usedMarker(dbPath))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	var n uint64
	if _, err := fmt.Sscanf(string(b), "attestations %d", &n); err != nil {
		n = 1
	}
	return n, true, nil
}

// advance records that the store holds n attestations, if that is more
// than recorded.
func (w *watermark) advance(n uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n <= w.count {
		return nil
	}
	line := fmt.Sprintf("attestations %d\nThis file records how many attestations attestations.db has held; see docs/operations.md.\n", n)
	if err := storage.WriteFileSync(usedMarker(w.path), []byte(line), 0o600); err != nil {
		return err
	}
	w.count = n
	return nil
}
