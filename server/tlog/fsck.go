package tlog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	f_log "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/fsck"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/mod/sumdb/note"
)

// FsckOptions say which stopped log to check.
type FsckOptions struct {
	Dir      string // tessera POSIX root
	HeadFile string // the signed-head record; default as in Options
	Key      ed25519.PublicKey
	Origin   string
	// Verifier, when set, checks the log's checkpoints instead of Key
	// (the CT log's RFC 6962 key).
	Verifier note.Verifier
	// StaticCT: the log is laid out as static-ct-api (data tiles under
	// tile/data/, entries are TileLeafs), as the CT log is.
	StaticCT bool
}

// FsckReport is what Fsck found. The log is sound when Problems is empty.
type FsckReport struct {
	TreeSize      uint64 // tessera's tree state
	PublishedSize uint64 // the published checkpoint, if it verifies
	SignedSize    uint64 // the signed-head record, if it verifies
	Problems      []string
}

// Fsck checks a stopped log's files against each other: the published
// checkpoint and the signed-head record against the log key, tessera's tree
// state against the tiles, every entry bundle and tile against the tree
// (tessera's fsck, which recomputes them all), and the signed and published
// trees as prefixes of the stored one. It reports every problem it can tell
// apart; tessera's walk stops at the first bad tile or bundle.
func Fsck(ctx context.Context, o FsckOptions) (*FsckReport, error) {
	if o.HeadFile == "" {
		o.HeadFile = filepath.Clean(o.Dir) + ".signed-head"
	}
	verifier := o.Verifier
	if verifier == nil {
		vkey, err := note.NewEd25519VerifierKey(o.Origin, o.Key)
		if err != nil {
			return nil, err
		}
		if verifier, err = note.NewVerifier(vkey); err != nil {
			return nil, err
		}
	}
	keyHash := verifier.KeyHash()
	rep := &FsckReport{}
	problem := func(format string, args ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...)) }
	var files fsckFiles = client.FileFetcher{Root: o.Dir}
	hashes := leafHashes
	if o.StaticCT {
		files, hashes = ctFiles{client.FileFetcher{Root: o.Dir}}, ctLeafHashes
	}
	tiles := newTileCache(files.ReadTile)

	// tessera's tree state: what the server would sign next.
	var st struct {
		Size uint64 `json:"size"`
		Root []byte `json:"root"`
	}
	raw, err := os.ReadFile(stateFile(o.Dir))
	if err != nil {
		problem("tessera's tree state %s cannot be read: %v", stateFile(o.Dir), err)
	} else if err := json.Unmarshal(raw, &st); err != nil {
		problem("tessera's tree state %s is not valid JSON: %v", stateFile(o.Dir), err)
	}
	rep.TreeSize = st.Size
	stateOK := err == nil
	if stateOK {
		root, err := tiles.root(ctx, st.Size)
		switch {
		case err != nil:
			problem("the tree state says %d entries, but the tiles cannot give its root: %v", st.Size, err)
			stateOK = false
		case !bytes.Equal(root, st.Root):
			problem("the tree state's root %x is not the root %x of its %d entries' tiles", st.Root, root, st.Size)
			stateOK = false
		}
		if st.Size > 0 && !o.StaticCT { // the full walk below covers a CT log's edge
			if err := checkRightEdge(ctx, files, st.Size); err != nil {
				problem("%v", err)
			}
		}
	}

	g := &guard{store: &fileHead{path: o.HeadFile}, origin: o.Origin, hash: keyHash, verifier: verifier, tiles: tiles}
	prefix := func(what string, size uint64, root []byte) {
		if !stateOK {
			return
		}
		if size > st.Size {
			problem("%s is for %d entries, more than the tree state's %d: the state was rolled back", what, size, st.Size)
			return
		}
		if err := g.consistent(size, st.Size, root, st.Root); err != nil {
			problem("%s (%d entries) is not a prefix of the stored tree: %v", what, size, err)
		}
	}
	switch err := g.load(); {
	case err != nil:
		problem("%v", err)
	case !g.have && o.StaticCT && stateOK && st.Size == 0:
		// A CT log before its first certificate: its guard records the
		// first tree it signs with an entry. (An empty transparency log
		// with no record is one that was wiped: its server records the
		// tree at every start.)
	case !g.have:
		problem("no signed-head record at %s: nothing shows which tree the log key signed last", o.HeadFile)
	default:
		rep.SignedSize = g.size
		prefix("the signed-head record "+o.HeadFile, g.size, g.root)
	}

	cpPath := filepath.Join(o.Dir, layout.CheckpointPath)
	cpRaw, err := os.ReadFile(cpPath)
	var cp f_log.Checkpoint
	switch {
	case errors.Is(err, os.ErrNotExist):
		problem("no published checkpoint at %s (the server publishes one at start)", cpPath)
	case err != nil:
		problem("the published checkpoint %s cannot be read: %v", cpPath, err)
	default:
		if n, err := note.Open(cpRaw, note.VerifierList(verifier)); err != nil {
			problem("the published checkpoint %s does not verify with the log key: %v", cpPath, err)
		} else if _, err := cp.Unmarshal([]byte(n.Text)); err != nil || cp.Origin != o.Origin {
			problem("the published checkpoint %s is not a checkpoint of origin %q", cpPath, o.Origin)
		} else {
			rep.PublishedSize = cp.Size
			prefix("the published checkpoint "+cpPath, cp.Size, cp.Hash)
		}
	}

	// Every bundle and tile, recomputed from the entries, against the tree
	// state (tessera's fsck wants a signed checkpoint: sign one here with a
	// throwaway key, since the state's root is what is being checked).
	if stateOK && st.Size > 0 {
		if err := fsckAll(ctx, files, hashes, st.Size, st.Root); err != nil {
			problem("entry bundles and tiles do not agree with the tree state: %v", err)
		}
	}
	return rep, nil
}

// fsckFiles reads a stopped log's files.
type fsckFiles interface {
	ReadTile(ctx context.Context, l, i uint64, p uint8) ([]byte, error)
	ReadEntryBundle(ctx context.Context, i uint64, p uint8) ([]byte, error)
	ReadCheckpoint(ctx context.Context) ([]byte, error)
}

func fsckAll(ctx context.Context, files fsckFiles, hashes func([]byte) ([][]byte, error), size uint64, root []byte) error {
	const origin = "signet-fsck"
	skey, vkey, err := note.GenerateKey(nil, origin)
	if err != nil {
		return err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return err
	}
	cp, err := note.Sign(&note.Note{Text: string(f_log.Checkpoint{Origin: origin, Size: size, Hash: root}.Marshal())}, signer)
	if err != nil {
		return err
	}
	f := fsck.New(origin, verifier, stateFetcher{files, cp}, hashes, fsck.Opts{N: 2})
	err = f.Check(ctx)
	if err != nil {
		// tessera prints both tiles in full; the path is what an operator needs.
		if msg, _, cut := strings.Cut(err.Error(), ": log has:"); cut {
			return fmt.Errorf("%s differs from the tile recomputed from the entry bundles", strings.TrimPrefix(msg, "failed: "))
		}
	}
	return err
}

// stateFetcher serves the log's files with the checkpoint replaced.
type stateFetcher struct {
	fsckFiles
	cp []byte
}

func (s stateFetcher) ReadCheckpoint(context.Context) ([]byte, error) { return s.cp, nil }

// leafHashes are the RFC 6962 leaf hashes of an entry bundle's entries.
func leafHashes(bundle []byte) ([][]byte, error) {
	var eb api.EntryBundle
	if err := eb.UnmarshalText(bundle); err != nil {
		return nil, err
	}
	out := make([][]byte, len(eb.Entries))
	for i, e := range eb.Entries {
		out[i] = rfc6962.DefaultHasher.HashLeaf(e)
	}
	return out, nil
}

// ctFiles reads a static-ct-api log: its entry bundles are data tiles.
type ctFiles struct{ client.FileFetcher }

func (c ctFiles) ReadEntryBundle(_ context.Context, i uint64, p uint8) ([]byte, error) {
	return os.ReadFile(filepath.Join(c.Root, "tile", "data", layout.NWithSuffix(0, i, p)))
}

// ctLeafHashes are the RFC 6962 leaf hashes of a static-ct-api data tile:
// each TileLeaf starts with the TimestampedEntry the MerkleTreeLeaf
// (version v1, leaf type timestamped_entry) wraps, followed by the
// precertificate (for precert entries) and the chain fingerprints.
func ctLeafHashes(tile []byte) ([][]byte, error) {
	s := cryptobyte.String(tile)
	var out [][]byte
	for !s.Empty() {
		start := s
		var (
			ts        uint64
			entryType uint16
			skip      cryptobyte.String
		)
		if !s.ReadUint64(&ts) || !s.ReadUint16(&entryType) {
			return nil, errors.New("data tile: truncated TimestampedEntry")
		}
		switch entryType {
		case 0: // x509_entry: ASN.1Cert
			if !s.ReadUint24LengthPrefixed(&skip) {
				return nil, errors.New("data tile: truncated certificate")
			}
		case 1: // precert_entry: issuer_key_hash, TBSCertificate
			if !s.Skip(32) || !s.ReadUint24LengthPrefixed(&skip) {
				return nil, errors.New("data tile: truncated precertificate entry")
			}
		default:
			return nil, fmt.Errorf("data tile: unknown entry type %d", entryType)
		}
		if !s.ReadUint16LengthPrefixed(&skip) { // CtExtensions
			return nil, errors.New("data tile: truncated extensions")
		}
		entry := start[:len(start)-len(s)]
		if entryType == 1 && !s.ReadUint24LengthPrefixed(&skip) { // pre_certificate
			return nil, errors.New("data tile: truncated pre_certificate")
		}
		if !s.ReadUint16LengthPrefixed(&skip) { // certificate_chain fingerprints
			return nil, errors.New("data tile: truncated chain fingerprints")
		}
		leaf := append([]byte{0, 0}, entry...) // MerkleTreeLeaf: v1, timestamped_entry
		out = append(out, rfc6962.DefaultHasher.HashLeaf(leaf))
	}
	return out, nil
}
