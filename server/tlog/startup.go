package tlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	f_log "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"
)

// dropBadCheckpoint removes a published checkpoint that the log key does not
// verify (emptied, garbage, another key's), before tessera starts: tessera
// will not republish over a checkpoint it cannot parse, and would serve it
// for ever. With the file gone it publishes a fresh one, through the guard.
// It returns the size of a valid published checkpoint (0 if none): evidence,
// read before tessera can overwrite it, of how large the log already was.
func dropBadCheckpoint(dir string, v note.Verifier, origin string) (size uint64, why string, err error) {
	p := filepath.Join(dir, layout.CheckpointPath)
	raw, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("reading the published checkpoint %s: %w", p, err)
	}
	size, why, err = judgeCheckpoint(raw, p, v, origin)
	if why == "" || err != nil {
		return size, "", err
	}
	if err := os.Remove(p); err != nil {
		return 0, "", fmt.Errorf("removing the damaged published checkpoint %s: %w", p, err)
	}
	return 0, why, nil
}

// judgeCheckpoint reads the published checkpoint raw (stored at p): its
// size if the log key signed it, why not if it is damage, and ErrForked
// if another key signed it under the log's origin.
func judgeCheckpoint(raw []byte, p string, v note.Verifier, origin string) (size uint64, why string, err error) {
	var cp f_log.Checkpoint
	if n, err := note.Open(raw, note.VerifierList(v)); err != nil {
		// A well-formed checkpoint signed under this origin by another key
		// is not damage: the key changed. Removing it would hide that.
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) && len(unverified.Note.UnverifiedSigs) > 0 && unverified.Note.UnverifiedSigs[0].Name == origin {
			return 0, "", fmt.Errorf("%w: the published checkpoint %s is signed under origin %q by another key (%s), not by the configured log key (%s+%08x): the log key was replaced. Restore the original log.key", ErrForked, p, origin, describeSigners(raw), origin, v.KeyHash())
		}
		why = fmt.Sprintf("it does not verify with the log key (%v)", err)
	} else if _, err := cp.Unmarshal([]byte(n.Text)); err != nil || cp.Origin != origin {
		why = fmt.Sprintf("it is not a checkpoint of origin %q", origin)
	}
	if why == "" {
		return cp.Size, "", nil
	}
	return 0, why, nil
}

// checkAtStart proves the stored log is the one the key signed before the
// log signs anything new: the tree tessera's state describes must be
// readable from the tiles, its newest entries must hash to its newest tile,
// and it must extend both the recorded largest signed tree and the published
// checkpoint. It returns the integrated size.
func (l *Log) checkAtStart(ctx context.Context, g *guard, keyInUse bool, published uint64) (uint64, []byte, error) {
	size, err := l.reader.IntegratedSize(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("reading tessera's tree state (%s): %w", l.stateDesc, err)
	}
	damaged := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s; the log %s is damaged: restore it from a backup taken after the last acknowledged entry (run `signet server fsck` to list every inconsistency); the server will not sign a tree it cannot prove", ErrForked, fmt.Sprintf(format, args...), l.dir)
	}
	root := rfc6962.DefaultHasher.EmptyRoot()
	if size > 0 {
		if root, err = l.tiles.root(ctx, size); err != nil {
			return 0, nil, damaged("tessera's tree state (%s) says the tree has %d entries, but its tiles cannot be read: %v", l.stateDesc, size, err)
		}
		if err := checkRightEdge(ctx, l.reader, size); err != nil {
			return 0, nil, damaged("%v", err)
		}
	}
	recSize, recRoot, have := g.head()
	switch {
	case have && size < recSize:
		return 0, nil, damaged("the log key signed a tree of %d entries (recorded in %s), but tessera's tree state (%s) holds only %d: the state was deleted or rolled back", recSize, g.where, l.stateDesc, size)
	case have:
		if err := consistent(l.tiles, recSize, size, recRoot, root); err != nil {
			return 0, nil, damaged("%v", err)
		}
	case keyInUse && size == 0:
		return 0, nil, fmt.Errorf("%w: the log key in this data directory is not new, but there is no record of what it signed (%s) and the log is empty: the log and its record were deleted while the keys were kept. Restore %s and %s from backup; or, if this log never held an entry, remove the keys too to start a new log with a new identity", ErrForked, g.where, l.dir, g.where)
	}
	if published > size {
		return 0, nil, damaged("the published checkpoint (%s) was for %d entries, but tessera's tree state holds only %d: the state was deleted or rolled back", l.checkpointDesc, published, size)
	}
	return size, root, nil
}

// bundleReader reads tiles and entry bundles: tessera's LogReader, or the
// files themselves for fsck.
type bundleReader interface {
	ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error)
	ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error)
}

func stateFile(dir string) string { return filepath.Join(dir, ".state", "treeState") }

// checkRightEdge rehashes the newest entry bundle and compares it with the
// newest level-0 tile: the part of the log written by the last integration,
// so the part a crash or a bad disk most likely left damaged.
func checkRightEdge(ctx context.Context, r bundleReader, size uint64) error {
	idx := (size - 1) / layout.EntryBundleWidth
	p := layout.PartialTileSize(0, idx, size)
	want := int(p)
	if p == 0 {
		want = layout.EntryBundleWidth
	}
	raw, err := r.ReadEntryBundle(ctx, idx, p)
	if err != nil {
		return fmt.Errorf("entry bundle %s of the tree's %d entries cannot be read: %v", layout.EntriesPath(idx, p), size, err)
	}
	var eb api.EntryBundle
	if err := eb.UnmarshalText(raw); err != nil || len(eb.Entries) != want {
		return fmt.Errorf("entry bundle %s does not hold the %d entries the tree needs (%v)", layout.EntriesPath(idx, p), want, err)
	}
	tile, err := r.ReadTile(ctx, 0, idx, p)
	if err != nil {
		return fmt.Errorf("tile %s cannot be read: %v", layout.TilePath(0, idx, p), err)
	}
	var ht api.HashTile
	if err := ht.UnmarshalText(tile); err != nil || len(ht.Nodes) != want {
		return fmt.Errorf("tile %s does not hold the %d hashes the tree needs (%v)", layout.TilePath(0, idx, p), want, err)
	}
	for i, e := range eb.Entries {
		if !bytes.Equal(rfc6962.DefaultHasher.HashLeaf(e), ht.Nodes[i]) {
			return fmt.Errorf("entry %d in %s does not hash to its leaf in %s", idx*layout.EntryBundleWidth+uint64(i), layout.EntriesPath(idx, p), layout.TilePath(0, idx, p))
		}
	}
	return nil
}

// sweepTemporaries removes the temporary files tessera's POSIX driver leaves
// when killed between writing a file and renaming it into place: it names
// them after their destination plus a random decimal suffix, and nothing
// else ever removes them. It runs before tessera starts, under the data
// directory's lock, so no write is under way.
func sweepTemporaries(dir string) (int, error) {
	known := map[string]bool{layout.CheckpointPath: true, "treeState": true, "version": true, "gcState": true}
	n := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !isTemporary(known, filepath.Base(filepath.Dir(p)), d.Name()) {
			return nil
		}
		if err := os.Remove(p); err != nil {
			return err
		}
		n++
		return nil
	})
	return n, err
}

// isTemporary tells tessera's leftovers from its files: a known name with
// digits appended, or, under tile/, a name the tile layout cannot produce
// (a full tile is NNN, a partial tile sits in NNN.p/ and is named 1 to 255).
func isTemporary(known map[string]bool, parent, name string) bool {
	stem := strings.TrimRight(name, "0123456789")
	if stem != name && known[stem] {
		return true
	}
	if stem != "" || known[name] || strings.HasSuffix(name, ".lock") {
		return false // not a tile name, or a real file
	}
	if strings.HasSuffix(parent, ".p") {
		w, err := strconv.Atoi(name)
		return err != nil || w < 1 || w > 255 || name[0] == '0'
	}
	return len(name) != 3
}
