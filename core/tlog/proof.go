package tlog

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
)

// ErrBeyondTree: the index is not below the verified checkpoint's tree size.
// A just-appended entry is not in the tree until the log publishes the next
// checkpoint.
var ErrBeyondTree = errors.New("the index is beyond the log's verified checkpoint")

func (l *Log) checkIndex(index uint64) error {
	if index >= l.cp.Size {
		return fmt.Errorf("log %s: entry %d: %w (tree size %d)", l.trusted.BaseURL, index, ErrBeyondTree, l.cp.Size)
	}
	return nil
}

// InclusionProof proves, from the tiles, that the leaf with leafHash (RFC
// 6962) is entry index of the checkpoint's tree, and returns the verified
// proof hashes. Errors: ErrBeyondTree; *InclusionError when the proof does
// not lead to the checkpoint's root; otherwise the tiles could not be read.
func (l *Log) InclusionProof(ctx context.Context, index uint64, leafHash []byte) ([][]byte, error) {
	if err := l.checkIndex(index); err != nil {
		return nil, err
	}
	l.mu.Lock()
	hashes, err := l.pb.InclusionProof(ctx, index)
	l.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("log %s: building the inclusion proof of entry %d: %w", l.trusted.BaseURL, index, err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, l.cp.Size, leafHash, hashes, l.cp.Hash); err != nil {
		return nil, &InclusionError{LogURL: l.trusted.BaseURL, Index: index, Size: l.cp.Size, LeafHash: leafHash, Hashes: hashes, Err: err}
	}
	return hashes, nil
}

// Consistency is a verified proof that an older tree is a prefix of the
// checkpoint's: nothing the old tree held was changed or removed.
type Consistency struct {
	OldSize uint64
	OldRoot []byte
	// OldSigned: the old tree came from a checkpoint signed by the log key.
	// Otherwise its root was computed from today's tiles, and the proof only
	// shows the log agrees with itself.
	OldSigned bool
	Hashes    [][]byte
}

// ConsistencyFrom verifies signedNote, a checkpoint of this log kept from
// earlier, against the trusted root's key, and proves that the current
// checkpoint's tree extends it. Errors: *CheckpointError (Served false) when
// signedNote does not verify; as ConsistencyProof otherwise.
func (l *Log) ConsistencyFrom(ctx context.Context, signedNote []byte) (*Consistency, error) {
	old, err := l.verifyCheckpoint(signedNote, false)
	if err != nil {
		return nil, err
	}
	c, err := l.ConsistencyProof(ctx, old.Size, old.Hash)
	var ce *ConsistencyError
	if errors.As(err, &ce) {
		ce.OldNote = signedNote
	}
	if err != nil {
		return nil, err
	}
	c.OldSigned = true
	return c, nil
}

// ConsistencyProof proves that the tree of oldSize with root oldRoot is a
// prefix of the checkpoint's tree. A nil oldRoot is computed from the
// tiles: then the proof shows what the log says, and only a root seen
// earlier makes it a guarantee. Errors: *ConsistencyError when the
// checkpoint's tree does not extend the old one; otherwise the tiles could
// not be read.
func (l *Log) ConsistencyProof(ctx context.Context, oldSize uint64, oldRoot []byte) (*Consistency, error) {
	size := l.cp.Size
	if oldSize > size {
		return nil, &ConsistencyError{LogURL: l.trusted.BaseURL, OldSize: oldSize, Size: size, OldRoot: oldRoot, Root: l.cp.Hash, Note: l.cp.Note}
	}
	if oldRoot == nil {
		var err error
		if oldRoot, err = l.rootAt(ctx, oldSize); err != nil {
			return nil, err
		}
	}
	l.mu.Lock()
	hashes, err := l.pb.ConsistencyProof(ctx, oldSize, size)
	l.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("log %s: building the consistency proof %d→%d: %w", l.trusted.BaseURL, oldSize, size, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, oldSize, size, hashes, oldRoot, l.cp.Hash); err != nil {
		return nil, &ConsistencyError{LogURL: l.trusted.BaseURL, OldSize: oldSize, Size: size, OldRoot: oldRoot, Root: l.cp.Hash, Note: l.cp.Note, Hashes: hashes, Err: err}
	}
	return &Consistency{OldSize: oldSize, OldRoot: oldRoot, Hashes: hashes}, nil
}

// rootAt computes the root of the tree of the given size from the tiles:
// tessera hands out the nodes of its compact range, which merkle hashes up.
func (l *Log) rootAt(ctx context.Context, size uint64) ([]byte, error) {
	if size == 0 {
		return rfc6962.DefaultHasher.EmptyRoot(), nil
	}
	// tessera keeps only the latest partial tile, so the older tree's may be
	// gone; the checkpoint's tiles hold all of its nodes.
	readTile := func(ctx context.Context, level, index uint64, _ uint8) ([]byte, error) {
		return l.fetcher.ReadTile(ctx, level, index, layout.PartialTileSize(level, index, l.cp.Size))
	}
	nodes, err := client.FetchRangeNodes(ctx, size, readTile)
	if err != nil {
		return nil, fmt.Errorf("log %s: reading tiles for size %d: %w", l.trusted.BaseURL, size, err)
	}
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r, err := rf.NewRange(0, size, nodes)
	if err != nil {
		return nil, fmt.Errorf("log %s: tiles for size %d: %w", l.trusted.BaseURL, size, err)
	}
	return r.GetRootHash(nil)
}

// InclusionError is an entry the tiles do not prove to be in the verified
// checkpoint: the log serves tiles or an entry that its signed root does
// not commit to.
type InclusionError struct {
	LogURL   string
	Index    uint64
	Size     uint64 // the verified checkpoint's
	LeafHash []byte
	Hashes   [][]byte // the proof the tiles gave
	Err      error    // from merkle's verification, e.g. proof.RootMismatchError
}

func (e *InclusionError) Error() string {
	return fmt.Sprintf("log %s: entry %d is not included in the verified checkpoint (tree size %d): %s", e.LogURL, e.Index, e.Size, proofFailure(e.Err))
}

func (e *InclusionError) Unwrap() error { return e.Err }

// ConsistencyError is a verified checkpoint that does not extend an older
// tree: the log was rewritten (forked or truncated), or serves a stale
// checkpoint.
type ConsistencyError struct {
	LogURL        string
	OldSize, Size uint64
	OldRoot       []byte   // as given; nil when it was to come from the tiles and the old tree is the larger
	Root          []byte   // the verified checkpoint's
	Hashes        [][]byte // the proof the tiles gave; nil when the old tree is the larger
	Err           error    // from merkle's verification; nil when the old tree is the larger
	// The evidence: the verified checkpoint the log serves now and, when
	// the old tree came from a signed checkpoint, that one. Both signed by
	// the log key, they prove the log told two stories.
	Note, OldNote []byte
}

// SplitView says the two trees have the same size and different roots: the
// log showed different clients different logs.
func (e *ConsistencyError) SplitView() bool {
	return e.OldSize == e.Size && e.OldRoot != nil && !bytes.Equal(e.OldRoot, e.Root)
}

// Evidence is the two signed checkpoints (when the old one was signed), to
// keep and publish: each verifies with the log key on its own.
func (e *ConsistencyError) Evidence() string {
	if e.OldNote == nil {
		return ""
	}
	return "checkpoint seen earlier:\n" + string(e.OldNote) + "\ncheckpoint served now:\n" + string(e.Note)
}

func (e *ConsistencyError) Error() string {
	if e.SplitView() {
		return fmt.Sprintf("SPLIT VIEW: log %s signed two different trees of size %d (root %s earlier, %s now): it shows different clients different logs", e.LogURL, e.Size, base64.StdEncoding.EncodeToString(e.OldRoot), base64.StdEncoding.EncodeToString(e.Root))
	}
	if e.OldSize > e.Size {
		return fmt.Sprintf("the old tree (size %d) is larger than the log's verified checkpoint (size %d): the log has been truncated or forked, or serves a stale checkpoint", e.OldSize, e.Size)
	}
	return fmt.Sprintf("log %s is NOT consistent with the old tree (size %d, root %s): %s", e.LogURL, e.OldSize, base64.StdEncoding.EncodeToString(e.OldRoot), proofFailure(e.Err))
}

func (e *ConsistencyError) Unwrap() error { return e.Err }

// proofFailure spells merkle's root mismatch in base64, as checkpoints do,
// instead of its multi-line byte lists.
func proofFailure(err error) string {
	var rm proof.RootMismatchError
	if errors.As(err, &rm) {
		return fmt.Sprintf("the proof computes root %s where %s was expected",
			base64.StdEncoding.EncodeToString(rm.CalculatedRoot), base64.StdEncoding.EncodeToString(rm.ExpectedRoot))
	}
	return err.Error()
}
