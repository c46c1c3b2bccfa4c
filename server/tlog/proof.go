package tlog

import (
	"context"
	"fmt"
	"strconv"

	lru "github.com/hashicorp/golang-lru/v2"
	f_log "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/sync/singleflight"
)

// treeHead is a signed tree head the log hands out with inclusion proofs.
type treeHead struct {
	size       uint64
	root       []byte
	checkpoint []byte // C2SP signed note
}

// tileCacheSize bounds the expanded tiles kept in memory (≈16 KiB each). Fresh
// entries' proofs touch the right edge of each tile level, so a small cache
// serves nearly every proof without touching storage.
const tileCacheSize = 512

// tileCache hands out Merkle tree node hashes for proofs. Tessera's
// client.ProofBuilder rebuilds every requested node from its tile's leaves on
// each call and is single-request; at thousands of appends per second that
// hashing dominates, so tiles are expanded once (all interior nodes computed)
// and shared. A tile of a given width never changes, so entries never go stale.
type tileCache struct {
	read   func(ctx context.Context, level, index uint64, p uint8) ([]byte, error)
	tiles  *lru.Cache[tileKey, expandedTile]
	flight singleflight.Group
	misses func()
}

type tileKey struct {
	level, index uint64
	width        uint8 // 0 for a full tile
}

// expandedTile holds a tile's hashes at each of its 8 internal levels:
// rows[0] are the tile's own hashes, rows[k][i] the node over rows[k-1][2i:2i+2].
type expandedTile [][][]byte

func newTileCache(read func(ctx context.Context, level, index uint64, p uint8) ([]byte, error)) *tileCache {
	c, err := lru.New[tileKey, expandedTile](tileCacheSize)
	if err != nil {
		panic(err) // only for a non-positive size
	}
	return &tileCache{read: read, tiles: c, misses: func() {}}
}

func (c *tileCache) tile(ctx context.Context, k tileKey) (expandedTile, error) {
	if t, ok := c.tiles.Get(k); ok {
		return t, nil
	}
	// Every request of a batch misses the new right-edge tile at once: read
	// and expand it once.
	v, err, _ := c.flight.Do(fmt.Sprintf("%d/%d/%d", k.level, k.index, k.width), func() (any, error) {
		if t, ok := c.tiles.Get(k); ok {
			return t, nil
		}
		c.misses()
		raw, err := c.read(ctx, k.level, k.index, k.width)
		if err != nil {
			return nil, fmt.Errorf("reading tile %s: %w", layout.TilePath(k.level, k.index, k.width), err)
		}
		var ht api.HashTile
		if err := ht.UnmarshalText(raw); err != nil {
			return nil, fmt.Errorf("parsing tile %s: %w", layout.TilePath(k.level, k.index, k.width), err)
		}
		t := expand(ht.Nodes)
		c.tiles.Add(k, t)
		return t, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(expandedTile), nil
}

func expand(leaves [][]byte) expandedTile {
	rows := expandedTile{leaves}
	for row := leaves; len(row) >= 2; {
		next := make([][]byte, len(row)/2)
		for i := range next {
			next[i] = rfc6962.DefaultHasher.HashChildren(row[2*i], row[2*i+1])
		}
		rows = append(rows, next)
		row = next
	}
	return rows
}

// node returns the hash of the perfect subtree id within a tree of treeSize.
func (c *tileCache) node(ctx context.Context, id compact.NodeID, treeSize uint64) ([]byte, error) {
	tLevel, tIndex, nLevel, nIndex := layout.NodeCoordsToTileAddress(uint64(id.Level), id.Index)
	k := tileKey{level: tLevel, index: tIndex, width: layout.PartialTileSize(tLevel, tIndex, treeSize)}
	t, err := c.tile(ctx, k)
	if err != nil {
		return nil, err
	}
	if int(nLevel) >= len(t) || nIndex >= uint64(len(t[nLevel])) {
		return nil, fmt.Errorf("tile %s has no node at level %d index %d", layout.TilePath(k.level, k.index, k.width), nLevel, nIndex)
	}
	return t[nLevel][nIndex], nil
}

func (c *tileCache) nodes(ctx context.Context, ids []compact.NodeID, treeSize uint64) ([][]byte, error) {
	hashes := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := c.node(ctx, id, treeSize)
		if err != nil {
			return nil, err
		}
		hashes[i] = h
	}
	return hashes, nil
}

// root computes the root hash of the tree of the given size from its tiles.
func (c *tileCache) root(ctx context.Context, size uint64) ([]byte, error) {
	if size == 0 {
		return rfc6962.DefaultHasher.EmptyRoot(), nil
	}
	hashes, err := c.nodes(ctx, compact.RangeNodes(0, size, nil), size)
	if err != nil {
		return nil, err
	}
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r, err := rf.NewRange(0, size, hashes)
	if err != nil {
		return nil, err
	}
	return r.GetRootHash(nil)
}

// inclusionProof builds and checks the proof that leafHash is at index in th.
func (c *tileCache) inclusionProof(ctx context.Context, th *treeHead, index uint64, leafHash []byte) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, th.size)
	if err != nil {
		return nil, err
	}
	hashes, err := c.nodes(ctx, nodes.IDs, th.size)
	if err != nil {
		return nil, err
	}
	p, err := nodes.Rehash(hashes, rfc6962.DefaultHasher.HashChildren)
	if err != nil {
		return nil, err
	}
	// Never hand out a proof that does not verify against what we signed.
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, th.size, leafHash, p, th.root); err != nil {
		return nil, fmt.Errorf("inclusion proof for index %d in tree %d does not verify: %w", index, th.size, err)
	}
	return p, nil
}

// coveringHead returns a signed tree head whose tree contains index, which
// tessera has already durably integrated. Heads are made once per integrated
// tree size and shared by every request that size covers.
func (l *Log) coveringHead(ctx context.Context, index uint64) (*treeHead, error) {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	if th := l.state; th != nil && th.size > index {
		return th, nil
	}
	size, err := l.reader.IntegratedSize(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading integrated tree size: %w", err)
	}
	if size <= index {
		return nil, fmt.Errorf("entry %d reported integrated but the tree has size %d", index, size)
	}
	root, err := l.tiles.root(ctx, size)
	if err != nil {
		return nil, fmt.Errorf("computing root of tree %d: %w", size, err)
	}
	cp, err := note.Sign(&note.Note{Text: string(f_log.Checkpoint{Origin: l.origin, Size: size, Hash: root}.Marshal())}, l.signer)
	if err != nil {
		return nil, fmt.Errorf("signing checkpoint: %w", err)
	}
	th := &treeHead{size: size, root: root, checkpoint: cp}
	l.state = th
	l.metrics.treeSize.Set(float64(size))
	return th, nil
}

// publishedHead parses a checkpoint tessera published (from the awaiter).
func (l *Log) publishedHead(cp []byte) (*treeHead, error) {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	if th := l.state; th != nil && string(th.checkpoint) == string(cp) {
		return th, nil
	}
	n, err := note.Open(cp, note.VerifierList(l.verifier))
	if err != nil {
		return nil, fmt.Errorf("published checkpoint does not verify with the log key: %w", err)
	}
	var c f_log.Checkpoint
	if _, err := c.Unmarshal([]byte(n.Text)); err != nil {
		return nil, fmt.Errorf("parsing published checkpoint: %w", err)
	}
	if c.Origin != l.origin {
		return nil, fmt.Errorf("published checkpoint has origin %s, want %s", strconv.Quote(c.Origin), strconv.Quote(l.origin))
	}
	th := &treeHead{size: c.Size, root: c.Hash, checkpoint: cp}
	l.state = th
	l.metrics.treeSize.Set(float64(c.Size))
	return th, nil
}
