package tlog

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	f_log "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// A log that signs two trees that are not one the extension of the other has
// forked, and a fork under one key breaks the log's only promise. tessera
// signs whatever its tree state file says, so a damaged or rolled-back state
// would be signed as readily as a true one. The guard stands between tessera
// (and the log's own checkpoints) and the key: it signs a tree only if the
// stored tiles prove it consistent with the largest tree this key ever signed,
// whose signed checkpoint it keeps durably, outside tessera's directory,
// before the signature leaves it.

// ErrForked is wrapped by every refusal to sign or start that protects the
// log from forking: the data directory no longer holds the tree the key
// signed. Nothing is signed after it.
var ErrForked = errors.New("the stored log is not an extension of the tree this log key signed")

// guard is a note.Signer that signs only consistent trees.
type guard struct {
	store    headStore // the durable record: the largest signed checkpoint
	where    string    // names the record in messages
	origin   string
	hash     uint32
	sign     func(msg []byte) ([]byte, error)
	verifier note.Verifier

	ready chan struct{} // closed once tiles are readable and the start checks passed
	mu    sync.Mutex
	tiles *tileCache
	fatal error // set when the start checks failed: sign nothing
	size  uint64
	root  []byte
	have  bool   // a record exists (size and root are meaningful)
	note  []byte // the recorded signed checkpoint
}

func (g *guard) Name() string    { return g.origin }
func (g *guard) KeyHash() uint32 { return g.hash }

// load reads the record, if any. A record the key does not verify means the
// key changed under an existing log.
func (g *guard) load() error {
	if g.where == "" {
		g.where = g.store.where()
	}
	raw, err := g.store.load(context.Background())
	if err != nil {
		return fmt.Errorf("reading the log's signed-head record %s: %w", g.where, err)
	}
	return g.adopt(raw)
}

// adopt makes raw, the record as stored, the guard's view of it. The record
// only grows: one that verifies but names a smaller tree than the guard
// already saw was rolled back (a restored database, another server's old
// copy) and is refused like a fork.
func (g *guard) adopt(raw []byte) error {
	if raw == nil || bytes.Equal(raw, g.note) {
		return nil
	}
	n, err := note.Open(raw, note.VerifierList(g.verifier))
	if err != nil {
		return fmt.Errorf("%w: %s holds the largest checkpoint this log signed, and the configured log key (%s+%08x) does not verify it (%s); the log key was replaced or the origin changed. Restore the original log.key (and log.origin), or start a new log in an empty data directory", ErrForked, g.where, g.origin, g.hash, describeSigners(raw))
	}
	var cp f_log.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil || cp.Origin != g.origin {
		return fmt.Errorf("%w: %s is not a checkpoint of origin %q (%v)", ErrForked, g.where, g.origin, err)
	}
	if g.have && cp.Size < g.size {
		return fmt.Errorf("%w: %s now names a tree of %d entries, but it named %d before: the record was rolled back", ErrForked, g.where, cp.Size, g.size)
	}
	g.size, g.root, g.have, g.note = cp.Size, cp.Hash, true, raw
	return nil
}

// describeSigners names the keys that signed a note, for error messages.
func describeSigners(raw []byte) string {
	_, sigs, ok := bytes.Cut(raw, []byte("\n\n"))
	if !ok {
		return "the record is not a signed note"
	}
	var out []string
	for _, line := range bytes.Split(bytes.TrimSpace(sigs), []byte("\n")) {
		f := bytes.Fields(line)
		if len(f) != 3 {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(string(f[2]))
		if err != nil || len(b) < 4 {
			continue
		}
		out = append(out, fmt.Sprintf("%s+%08x", f[1], binary.BigEndian.Uint32(b)))
	}
	if len(out) == 0 {
		return "the record carries no signature"
	}
	return fmt.Sprintf("it was signed by %v", out)
}

// start makes the guard operational once tiles can be read, or makes every
// later signature fail with err.
func (g *guard) start(tiles *tileCache, err error) {
	g.mu.Lock()
	g.tiles, g.fatal = tiles, err
	g.mu.Unlock()
	close(g.ready)
}

// Sign approves the checkpoint text msg, signs it, and records it durably
// when it is the largest tree signed so far.
func (g *guard) Sign(msg []byte) ([]byte, error) {
	var cp f_log.Checkpoint
	if _, err := cp.Unmarshal(msg); err != nil {
		return nil, fmt.Errorf("refusing to sign a malformed checkpoint: %w", err)
	}
	if cp.Origin != g.origin {
		return nil, fmt.Errorf("refusing to sign a checkpoint of origin %q with the key of %q", cp.Origin, g.origin)
	}
	select {
	case <-g.ready:
	default:
		if cp.Size == 0 {
			// tessera publishes the empty tree while it opens a directory
			// without tree state, before the tiles can be read. That is
			// decided without them, and not recorded: the start checks
			// decide whether this directory may be a new log.
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.have && g.size > 0 {
				return nil, fmt.Errorf("%w: tessera has no tree state and would start the log afresh, but this key signed a tree of %d entries (recorded in %s): the state was deleted or the log directory replaced", ErrForked, g.size, g.where)
			}
			return g.sign(msg)
		}
		select {
		case <-g.ready:
		case <-time.After(time.Minute):
			return nil, errors.New("refusing to sign: the log's start checks have not finished")
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fatal != nil {
		return nil, g.fatal
	}
	// The record is read and written under the store's lock: with several
	// servers on one log, whichever signs must see the largest tree any of
	// them signed.
	var sig []byte
	var signed []byte
	err := g.store.advance(context.Background(), func(cur []byte) ([]byte, error) {
		if err := g.adopt(cur); err != nil {
			return nil, err
		}
		if err := g.approve(cp.Size, cp.Hash); err != nil {
			return nil, err
		}
		var err error
		if sig, err = g.sign(msg); err != nil {
			return nil, err
		}
		if g.have && cp.Size <= g.size {
			return nil, nil
		}
		signed = g.noteOf(msg, sig)
		return signed, nil
	})
	if err != nil {
		if sig != nil && signed != nil {
			return nil, fmt.Errorf("recording the signed head durably before releasing it: %w", err)
		}
		return nil, err
	}
	if signed != nil {
		g.size, g.root, g.have, g.note = cp.Size, cp.Hash, true, signed
	}
	return sig, nil
}

// approve decides whether the tree (size, root) may be signed: it must be
// consistent with the recorded largest tree, as proven from the stored tiles.
func (g *guard) approve(size uint64, root []byte) error {
	if !g.have {
		if size == 0 {
			return nil
		}
		return g.checkRoot(size, root)
	}
	switch {
	case size == g.size:
		if !bytes.Equal(root, g.root) {
			return fmt.Errorf("%w: asked to sign tree %d with root %x, but this key signed tree %d with root %x", ErrForked, size, root, g.size, g.root)
		}
		return nil
	case size > g.size:
		if err := g.checkRoot(size, root); err != nil {
			return err
		}
		return g.consistent(g.size, size, g.root, root)
	default:
		return g.consistent(size, g.size, root, g.root)
	}
}

// checkRoot compares root with the root computed from the stored tiles.
func (g *guard) checkRoot(size uint64, root []byte) error {
	got, err := g.tiles.root(context.Background(), size)
	if err != nil {
		return fmt.Errorf("%w: cannot compute the root of tree %d from the stored tiles: %v", ErrForked, size, err)
	}
	if !bytes.Equal(got, root) {
		return fmt.Errorf("%w: tree %d has root %x by tessera's state but %x by the stored tiles", ErrForked, size, root, got)
	}
	return nil
}

func (g *guard) consistent(size1, size2 uint64, root1, root2 []byte) error {
	return consistent(g.tiles, size1, size2, root1, root2)
}

// consistent proves from the stored tiles of tree size2 that tree size1 is a
// prefix of it with the given roots. It takes the tiles rather than reading
// the guard's, because the start checks run before the guard is started.
func consistent(tiles *tileCache, size1, size2 uint64, root1, root2 []byte) error {
	if size1 == 0 {
		return nil
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return err
	}
	hashes, err := tiles.nodes(context.Background(), nodes.IDs, size2)
	if err != nil {
		return fmt.Errorf("%w: cannot read the tiles that prove tree %d extends tree %d: %v", ErrForked, size2, size1, err)
	}
	p, err := nodes.Rehash(hashes, rfc6962.DefaultHasher.HashChildren)
	if err != nil {
		return err
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, p, root1, root2); err != nil {
		return fmt.Errorf("%w: tree %d (root %x) is not an extension of tree %d (root %x) by the stored tiles: %v", ErrForked, size2, root2, size1, root1, err)
	}
	return nil
}

// noteOf is the signed note of checkpoint text with the key's signature sig.
func (g *guard) noteOf(text, sig []byte) []byte {
	var b bytes.Buffer
	b.Write(text)
	b.WriteString("\n— ")
	b.WriteString(g.origin)
	b.WriteByte(' ')
	kh := binary.BigEndian.AppendUint32(nil, g.hash)
	b.WriteString(base64.StdEncoding.EncodeToString(append(kh, sig...)))
	b.WriteByte('\n')
	return b.Bytes()
}

// latest is the recorded signed checkpoint: the largest tree signed.
func (g *guard) latest() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.note
}

// head returns the recorded largest tree.
func (g *guard) head() (size uint64, root []byte, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.size, g.root, g.have
}

// Guard is the same fork guard for another tessera log of this server (the
// certificate transparency log), whose checkpoints are signed by another
// note.Signer: it signs a tree only if the stored tiles prove it extends
// the largest tree that signer signed, recorded durably at path.
type Guard struct{ g *guard }

// NewGuard wraps s; v verifies what s signs (for the record).
func NewGuard(path string, s note.Signer, v note.Verifier) (*Guard, error) {
	g := &guard{store: &fileHead{path: path}, origin: s.Name(), hash: s.KeyHash(), sign: s.Sign, verifier: v, ready: make(chan struct{})}
	if err := g.load(); err != nil {
		return nil, err
	}
	return &Guard{g}, nil
}

// NewDistributedGuard is NewGuard for a log on distributed storage: the
// record is a row (keyed by the signer's name) in d's database, read and
// written under a row lock, so that every server of the log sees the
// largest tree any of them signed. Call close when the log is closed.
func NewDistributedGuard(ctx context.Context, d *Distributed, s note.Signer, v note.Verifier) (_ *Guard, close func(), _ error) {
	dsn, err := d.dsn()
	if err != nil {
		return nil, nil, err
	}
	head, err := openSQLHead(ctx, dsn, s.Name(), d.where())
	if err != nil {
		return nil, nil, err
	}
	g := &guard{store: head, origin: s.Name(), hash: s.KeyHash(), sign: s.Sign, verifier: v, ready: make(chan struct{})}
	if err := g.load(); err != nil {
		head.close()
		return nil, nil, err
	}
	return &Guard{g}, head.close, nil
}

// Signer is the guarded signer, for tessera.
func (G *Guard) Signer() note.Signer { return G.g }

// Start checks, once tessera has opened the log, that its integrated tree
// extends the recorded one (the tiles prove it), and lets signing begin; on
// failure nothing is ever signed and the error says why.
func (G *Guard) Start(ctx context.Context, r interface {
	ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error)
	IntegratedSize(ctx context.Context) (uint64, error)
}) error {
	tiles := newTileCache(r.ReadTile)
	err := func() error {
		size, root, have := G.g.head()
		if !have || size == 0 {
			return nil
		}
		stored, err := r.IntegratedSize(ctx)
		if err != nil {
			return fmt.Errorf("reading the stored tree size: %w", err)
		}
		if stored < size {
			return fmt.Errorf("%w: the stored tree has %d entries, but this key signed a tree of %d (recorded in %s): the log was rolled back or its state damaged", ErrForked, stored, size, G.g.where)
		}
		got, err := tiles.root(ctx, stored)
		if err != nil {
			return fmt.Errorf("%w: cannot compute the root of the stored tree %d from its tiles: %v", ErrForked, stored, err)
		}
		return consistent(tiles, size, stored, root, got)
	}()
	G.g.start(tiles, err)
	return err
}
