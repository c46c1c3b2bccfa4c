package server

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	f_log "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/mod/sumdb/note"

	"github.com/signet-dev/signet/server/attest"
	"github.com/signet-dev/signet/server/tlog"
)

// A backup is taken from the running server, so it must be consistent
// while writes go on, without stopping them:
//
//   - attestations.db is copied inside one bbolt read transaction, first:
//     every attestation in the copy was stored after its log entry was
//     acknowledged, so the log copied next holds that entry;
//   - each log (the transparency log, each of its shards, the CT log) is
//     copied at a tree size read first (tessera's integrated tree state,
//     and the signed-head record, which is never larger): the tiles and
//     entry bundles that tree needs are immutable once written, except
//     that a partial tile is later joined by a longer version (and the
//     shorter removed once the tile is full). A partial tile of width W is
//     the first W hashes (entries) of any longer version, so the backup
//     takes whichever version is there and cuts it to W;
//   - the snapshot's tree state, checkpoint and signed-head record are
//     written for that size, so the restored log is exactly the tree
//     backed up, and its next checkpoint extends it.
//
// The archive is a tar whose last member is the manifest (BackupManifest):
// what each log holds and the SHA-256 of every other member. An archive cut
// short has no manifest, and restore refuses it.

// BackupManifestName is the last member of a backup archive.
const BackupManifestName = "signet-backup.json"

// backupFormat is the manifest's format version; restore refuses others.
const backupFormat = 1

// BackupManifest describes a backup archive.
type BackupManifest struct {
	Format  int       `json:"format"`
	Created time.Time `json:"created"`
	// Keys says the archive holds the private key files (keys/, dev-oidc/).
	Keys         bool         `json:"keys"`
	Logs         []BackupLog  `json:"logs"`
	Attestations int          `json:"attestations"` // records in attestations.db; -1: none backed up
	Files        []BackupFile `json:"files"`
}

// BackupLog is one log in a backup.
type BackupLog struct {
	Dir      string `json:"dir"`      // relative to the data directory
	HeadFile string `json:"headFile"` // its signed-head record, relative
	Origin   string `json:"origin"`
	// VerifierKey is the C2SP note verifier key of the log's checkpoints
	// (the CT log's is an RFC 6962 one).
	VerifierKey string `json:"verifierKey"`
	StaticCT    bool   `json:"staticCT,omitempty"`
	Size        uint64 `json:"size"`
	Root        []byte `json:"root"`
	// Checkpoint is the largest checkpoint the log key had signed when the
	// backup was taken; the backed-up tree extends it (Size ≥ its size).
	Checkpoint string `json:"checkpoint,omitempty"`
}

// BackupFile is one member of the archive.
type BackupFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// backupLog is a log the server has open, as the backup sees it.
type backupLog struct {
	dir, head string // absolute
	origin    string
	verifier  string
	staticCT  bool
}

// backupLogs lists the logs the server has open: each transparency log
// shard (the first in log/, later ones in their own directories) and the
// CT log.
func (s *Server) backupLogs() ([]backupLog, error) {
	var out []backupLog
	for i, sh := range s.logs.All() {
		origin := sh.Log.Origin()
		vkey, err := note.NewEd25519VerifierKey(origin, sh.Log.PublicKey())
		if err != nil {
			return nil, err
		}
		l := backupLog{dir: s.dir.LogDir(), head: s.dir.SignedHeadPath(), origin: origin, verifier: vkey}
		if i > 0 {
			l.dir, l.head = s.dir.ShardDir(origin), s.dir.ShardHeadPath(origin)
		}
		out = append(out, l)
	}
	if s.ct != nil {
		vkey, err := fnote.RFC6962VerifierString("https://"+s.ct.Origin(), s.ct.PublicKey())
		if err != nil {
			return nil, err
		}
		dir := s.dir.CTLogDir()
		out = append(out, backupLog{dir: dir, head: filepath.Clean(dir) + ".signed-head", origin: s.ct.Origin(), verifier: vkey, staticCT: true})
	}
	return out, nil
}

// handleBackup streams a backup archive (admin listener only):
// GET /backup, with ?keys=include to put the private key files in it.
func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) {
	keys := false
	switch v := r.URL.Query().Get("keys"); v {
	case "", "exclude":
	case "include":
		keys = true
	default:
		http.Error(w, fmt.Sprintf("keys=%q: use keys=include to put the private key files in the backup, or leave it out", v), http.StatusBadRequest)
		return
	}
	if s.cfg.Storage.Distributed() {
		http.Error(w, "this server's log and attestations are in the distributed storage: back up the database with its own tools (mysqldump, mariabackup, Aurora snapshots) and the bucket with the object store's (versioning, replication); see docs/scale-out.md", http.StatusConflict)
		return
	}
	// One at a time: a backup reads the whole data directory, and a
	// second one beside it only doubles the disk reads.
	if !s.backingUp.CompareAndSwap(false, true) {
		http.Error(w, "a backup is already being written; wait for it to finish", http.StatusConflict)
		return
	}
	defer s.backingUp.Store(false)
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", `attachment; filename="signet-backup-`+time.Now().UTC().Format("20060102T150405Z")+`.tar"`)
	cw := &countingWriter{w: w}
	m, err := s.WriteBackup(r.Context(), cw, keys)
	if err != nil {
		s.logger.ErrorContext(r.Context(), "backup failed", "error", err)
		if cw.n == 0 {
			w.Header().Del("Content-Disposition")
			http.Error(w, "backup failed: "+err.Error(), http.StatusInternalServerError)
		}
		// Else the status is sent: the archive ends without its manifest,
		// which is how the client (and restore) tell it failed.
		return
	}
	s.logger.InfoContext(r.Context(), "backup written", "keys", keys, "files", len(m.Files), "attestations", m.Attestations)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// WriteBackup writes a consistent backup archive of the data directory to
// w while the server serves.
func (s *Server) WriteBackup(ctx context.Context, w io.Writer, includeKeys bool) (*BackupManifest, error) {
	b := &backupWriter{tw: tar.NewWriter(w), root: s.dir.Root(), now: time.Now().UTC().Truncate(time.Second)}
	m := &BackupManifest{Format: backupFormat, Created: b.now, Keys: includeKeys, Attestations: -1}

	// The store first: the logs copied after it hold every entry its
	// attestations point to. (Its read transaction lasts as long as the
	// copy takes to send; bbolt's writers go on meanwhile.)
	if s.attest != nil {
		err := s.attest.Snapshot(func(size int64, records int) (io.Writer, error) {
			m.Attestations = records
			return b.member("attestations.db", size)
		})
		if err != nil {
			return nil, fmt.Errorf("backup: attestations.db: %w", err)
		}
		if err := b.file("attestations.db.used", attest.UsedMarker(m.Attestations)); err != nil {
			return nil, err
		}
	}
	logs, err := s.backupLogs()
	if err != nil {
		return nil, err
	}
	for _, l := range logs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		bl, err := b.log(ctx, l)
		if err != nil {
			return nil, fmt.Errorf("backup: log %s: %w", l.origin, err)
		}
		m.Logs = append(m.Logs, *bl)
	}
	// The TUF repository's metadata: small files, each replaced atomically.
	if err := b.tree("tuf"); err != nil {
		return nil, err
	}
	if includeKeys {
		for _, d := range []string{"keys", "dev-oidc"} {
			if err := b.tree(d); err != nil {
				return nil, err
			}
		}
	}
	if err := b.finish(); err != nil {
		return nil, err
	}
	m.Files = b.files
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := b.raw(BackupManifestName, raw); err != nil {
		return nil, err
	}
	return m, b.tw.Close()
}

// backupWriter writes the archive and records what it wrote.
type backupWriter struct {
	tw    *tar.Writer
	root  string
	now   time.Time
	files []BackupFile
	cur   *hashingWriter
}

type hashingWriter struct {
	w    io.Writer
	n    int64
	hash hash.Hash
}

func (h *hashingWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.hash.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// member starts an archive member of size bytes; what is written to the
// returned writer is hashed into the manifest.
func (b *backupWriter) member(name string, size int64) (io.Writer, error) {
	return b.memberAt(name, size, b.now)
}

// memberAt is member with the file's modification time, which restore
// sets: the server dates its keys by their files' (trusted_root.json's
// validity periods).
func (b *backupWriter) memberAt(name string, size int64, mtime time.Time) (io.Writer, error) {
	if err := b.finish(); err != nil {
		return nil, err
	}
	if err := b.tw.WriteHeader(&tar.Header{Name: name, Size: size, Mode: 0o600, ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return nil, err
	}
	b.cur = &hashingWriter{w: b.tw, hash: sha256.New()}
	b.files = append(b.files, BackupFile{Name: name, Size: size})
	return b.cur, nil
}

// finish records the hash of the member being written.
func (b *backupWriter) finish() error {
	if b.cur == nil {
		return nil
	}
	last := &b.files[len(b.files)-1]
	if b.cur.n != last.Size {
		return fmt.Errorf("backup: %s: wrote %d bytes of %d", last.Name, b.cur.n, last.Size)
	}
	last.SHA256 = hex.EncodeToString(b.cur.hash.Sum(nil))
	b.cur = nil
	return nil
}

func (b *backupWriter) file(name string, data []byte) error {
	w, err := b.member(name, int64(len(data)))
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

// raw writes a member that is not listed in the manifest (the manifest).
func (b *backupWriter) raw(name string, data []byte) error {
	if err := b.finish(); err != nil {
		return err
	}
	if err := b.tw.WriteHeader(&tar.Header{Name: name, Size: int64(len(data)), Mode: 0o600, ModTime: b.now, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := b.tw.Write(data)
	return err
}

// tree copies every regular file under rel (relative to the data
// directory) but the temporaries of storage.WriteFileSync that a crash
// left; a missing rel is nothing.
func (b *backupWriter) tree(rel string) error {
	base := filepath.Join(b.root, filepath.FromSlash(rel))
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // gone meanwhile (a tessera temporary), or no such tree
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		r, err := filepath.Rel(b.root, p)
		if err != nil {
			return err
		}
		r = filepath.ToSlash(r)
		if n := d.Name(); strings.HasPrefix(n, ".") && strings.Contains(n, ".tmp-") {
			return nil
		}
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		mtime := b.now
		if fi, err := d.Info(); err == nil {
			mtime = fi.ModTime()
		}
		w, err := b.memberAt(r, int64(len(data)), mtime)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("backup: %s: %w", rel, err)
	}
	return nil
}

// log copies one tessera log at the tree it holds now.
func (b *backupWriter) log(ctx context.Context, l backupLog) (*BackupLog, error) {
	relDir, err := filepath.Rel(b.root, l.dir)
	if err != nil {
		return nil, err
	}
	relHead, err := filepath.Rel(b.root, l.head)
	if err != nil {
		return nil, err
	}
	relDir, relHead = filepath.ToSlash(relDir), filepath.ToSlash(relHead)
	v, err := logVerifier(l.verifier, l.staticCT)
	if err != nil {
		return nil, err
	}
	out := &BackupLog{Dir: relDir, HeadFile: relHead, Origin: l.origin, VerifierKey: l.verifier, StaticCT: l.staticCT}
	write := func(rel string, data []byte) error { return b.file(path.Join(relDir, rel), data) }

	// The signed head first, the tree state after: the state only grows,
	// and the guard signs no tree the tiles do not hold, so the state read
	// second is at least as large as the head read first.
	head, err := os.ReadFile(l.head)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		head = nil // a CT log before its first certificate
	case err != nil:
		return nil, err
	default:
		cp, err := openCheckpoint(head, v, l.origin)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.head, err)
		}
		out.Checkpoint = string(head)
		out.Size = cp.Size
	}
	raw, err := os.ReadFile(filepath.Join(l.dir, ".state", "treeState"))
	var st struct {
		Size uint64 `json:"size"`
		Root []byte `json:"root"`
	}
	switch {
	case head == nil:
		// Nothing signed with an entry yet: the empty tree, and the
		// checkpoint tessera published for it.
		st.Root = rfc6962.DefaultHasher.EmptyRoot()
		if cp, err := os.ReadFile(filepath.Join(l.dir, layout.CheckpointPath)); err == nil {
			if c, err := openCheckpoint(cp, v, l.origin); err == nil && c.Size == 0 {
				if err := write(layout.CheckpointPath, cp); err != nil {
					return nil, err
				}
			}
		}
	case err != nil:
		return nil, fmt.Errorf("tessera's tree state: %w", err)
	default:
		if err := json.Unmarshal(raw, &st); err != nil {
			return nil, fmt.Errorf("tessera's tree state: %w", err)
		}
	}
	if st.Size < out.Size {
		return nil, fmt.Errorf("tessera's tree state (%d entries) is smaller than the signed head (%d): the log is damaged; run signet server fsck", st.Size, out.Size)
	}
	out.Size, out.Root = st.Size, st.Root

	files := logFiles{root: l.dir, staticCT: l.staticCT}
	for level := uint64(0); st.Size>>(level*layout.TileHeight) > 0; level++ {
		n := st.Size >> (level * layout.TileHeight)
		for idx := uint64(0); idx*layout.TileWidth < n; idx++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			p := layout.PartialTileSize(level, idx, st.Size)
			data, err := files.tile(level, idx, p)
			if errors.Is(err, fs.ErrNotExist) && level > 0 {
				continue // not stored by tessera; restore's fsck tells whether it was needed
			}
			if err != nil {
				return nil, err
			}
			if err := write(layout.TilePath(level, idx, p), data); err != nil {
				return nil, err
			}
			if level > 0 {
				continue
			}
			bundle, err := files.bundle(idx, p)
			if err != nil {
				return nil, err
			}
			if err := write(files.bundlePath(idx, p), bundle); err != nil {
				return nil, err
			}
		}
	}
	stRaw, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	if err := write(".state/treeState", stRaw); err != nil {
		return nil, err
	}
	// tessera's layout version, as the source has it (tessera writes one
	// if none).
	if ver, err := os.ReadFile(filepath.Join(l.dir, ".state", "version")); err == nil {
		if err := write(".state/version", ver); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if head != nil {
		// The published checkpoint is the signed head: the restored
		// server publishes a new one for the tree (through its guard).
		if err := write(layout.CheckpointPath, head); err != nil {
			return nil, err
		}
		if err := b.file(relHead, head); err != nil {
			return nil, err
		}
	}
	if l.staticCT {
		// The CA's issuer certificates (written before any entry names
		// them) and the roots the log accepts.
		if err := b.tree(path.Join(relDir, "issuer")); err != nil {
			return nil, err
		}
		if err := b.tree(path.Join(relDir, ".roots.pem")); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// logFiles reads a live log's tiles and entry bundles at a given width.
type logFiles struct {
	root     string
	staticCT bool
}

func (f logFiles) bundlePath(idx uint64, p uint8) string {
	if f.staticCT {
		return "tile/data/" + layout.NWithSuffix(0, idx, p)
	}
	return layout.EntriesPath(idx, p)
}

// tile is the hash tile (level, idx) of width p (0: full).
func (f logFiles) tile(level, idx uint64, p uint8) ([]byte, error) {
	return f.read(layout.TilePath(level, idx, 0), p, func(b []byte, w int) ([]byte, error) {
		if len(b) < w*32 || len(b)%32 != 0 {
			return nil, fmt.Errorf("tile %s holds %d bytes, not %d hashes", layout.TilePath(level, idx, p), len(b), w)
		}
		return b[:w*32], nil
	})
}

// bundle is the entry bundle (data tile) idx of width p (0: full).
func (f logFiles) bundle(idx uint64, p uint8) ([]byte, error) {
	return f.read(f.bundlePath(idx, 0), p, func(b []byte, w int) ([]byte, error) {
		n, err := bundlePrefix(b, w, f.staticCT)
		if err != nil {
			return nil, fmt.Errorf("entry bundle %s: %w", f.bundlePath(idx, p), err)
		}
		return b[:n], nil
	})
}

// read finds a version of the file at full (the full-width path) that
// holds at least p items: the one of width p, the full one, or a longer
// partial one, in that order, and cuts it to p items.
func (f logFiles) read(full string, p uint8, cut func([]byte, int) ([]byte, error)) ([]byte, error) {
	w := int(p)
	if p == 0 {
		w = layout.TileWidth
	}
	try := func(rel string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(f.root, filepath.FromSlash(rel)))
		if err != nil {
			return nil, err
		}
		return cut(b, w)
	}
	partials := full + ".p"
	if p > 0 {
		if b, err := try(partials + "/" + strconv.Itoa(w)); !errors.Is(err, fs.ErrNotExist) {
			return b, err
		}
	}
	if b, err := try(full); !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	// The exact partial was replaced meanwhile: a longer one holds it.
	entries, err := os.ReadDir(filepath.Join(f.root, filepath.FromSlash(partials)))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s of width %d: %w", full, w, fs.ErrNotExist)
		}
		return nil, err
	}
	var widths []int
	for _, e := range entries {
		// tessera's temporaries have digits appended: no valid width.
		if n, err := strconv.Atoi(e.Name()); err == nil && n > w && n < layout.TileWidth && e.Name()[0] != '0' {
			widths = append(widths, n)
		}
	}
	slices.Sort(widths)
	for _, n := range widths {
		if b, err := try(partials + "/" + strconv.Itoa(n)); !errors.Is(err, fs.ErrNotExist) {
			return b, err
		}
	}
	if b, err := try(full); !errors.Is(err, fs.ErrNotExist) {
		return b, err // became full while the directory was listed
	}
	return nil, fmt.Errorf("%s of width %d: no version holds it: %w", full, w, fs.ErrNotExist)
}

// bundlePrefix is the length of the first w entries of an entry bundle:
// tlog-tiles entries are uint16-length-prefixed, static-ct-api data tiles
// hold TileLeafs.
func bundlePrefix(b []byte, w int, staticCT bool) (int, error) {
	s := cryptobyte.String(b)
	for i := range w {
		var skip cryptobyte.String
		ok := true
		if !staticCT {
			ok = s.ReadUint16LengthPrefixed(&skip)
		} else {
			var ts uint64
			var typ uint16
			ok = s.ReadUint64(&ts) && s.ReadUint16(&typ)
			switch {
			case !ok:
			case typ == 0:
				ok = s.ReadUint24LengthPrefixed(&skip)
			case typ == 1:
				ok = s.Skip(32) && s.ReadUint24LengthPrefixed(&skip)
			default:
				return 0, fmt.Errorf("entry %d has unknown type %d", i, typ)
			}
			ok = ok && s.ReadUint16LengthPrefixed(&skip) // extensions
			if ok && typ == 1 {
				ok = s.ReadUint24LengthPrefixed(&skip) // pre_certificate
			}
			ok = ok && s.ReadUint16LengthPrefixed(&skip) // chain fingerprints
		}
		if !ok {
			return 0, fmt.Errorf("holds %d entries, %d are needed", i, w)
		}
	}
	return len(b) - len(s), nil
}

func logVerifier(vkey string, staticCT bool) (note.Verifier, error) {
	if staticCT {
		return fnote.NewRFC6962Verifier(vkey)
	}
	return note.NewVerifier(vkey)
}

// openCheckpoint verifies a signed checkpoint of origin.
func openCheckpoint(raw []byte, v note.Verifier, origin string) (*f_log.Checkpoint, error) {
	n, err := note.Open(raw, note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("the checkpoint does not verify with the log key %s: %w", v.Name(), err)
	}
	var cp f_log.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		return nil, fmt.Errorf("not a checkpoint: %w", err)
	}
	if cp.Origin != origin {
		return nil, fmt.Errorf("a checkpoint of origin %q, not %q", cp.Origin, origin)
	}
	return &cp, nil
}

// RestoreOptions say how to restore.
type RestoreOptions struct {
	// Config, when set, names the keys (keys.*) and log.origin the
	// restored server will use; they are checked against the backup.
	Config *Config
	// Newer are checkpoints of the backed-up logs seen elsewhere since (the
	// old server's signed-head files, a witness's or monitor's
	// checkpoints). Restore refuses a backup whose tree a checkpoint shows
	// was larger, or different: starting from it would fork the log.
	Newer [][]byte
}

// RestoreResult is what a restore wrote.
type RestoreResult struct {
	Manifest *BackupManifest
	Dir      string
	// Fsck is the whole server check with the server's keys; nil when
	// neither the backup nor the config gave them (the logs were then
	// checked against the log keys the manifest records).
	Fsck *FsckReport
}

// Restore writes the backup archive read from r into dataDir, which must
// not exist or be empty. It writes beside dataDir, checks everything (each
// member against the manifest, each log with fsck, the attestation
// database, newer checkpoints against the backed-up trees), and only then
// renames the result into place: on any failure dataDir is as it was.
func Restore(ctx context.Context, r io.Reader, dataDir string, o RestoreOptions) (*RestoreResult, error) {
	if dataDir == "" {
		return nil, errors.New("restore: no target directory; pass --data DIR (a new or empty directory)")
	}
	target, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	if entries, err := os.ReadDir(target); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("restore: %s is not empty (it holds %s): restore only into a new or empty directory, so that nothing of another data directory is mixed into the restored one", target, entries[0].Name())
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("restore: %s: %w", target, err)
	}
	// The copy is made beside the target, on its filesystem, so that the
	// final rename is atomic; the parent is not created, so that a failed
	// restore leaves nothing at all.
	tmp, err := os.MkdirTemp(filepath.Dir(target), "."+filepath.Base(target)+".restore-")
	if err != nil {
		return nil, fmt.Errorf("restore: cannot write beside %s (%w); its parent directory must exist and be writable", target, err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	m, err := extractBackup(r, tmp)
	if err != nil {
		return nil, fmt.Errorf("restore: the backup is not whole, nothing was restored: %w", err)
	}
	res := &RestoreResult{Manifest: m, Dir: target}
	if res.Fsck, err = verifyRestored(ctx, tmp, m, o); err != nil {
		return nil, fmt.Errorf("restore: the backup does not check out, nothing was restored: %w", err)
	}
	if err := syncTree(tmp); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	// An empty target directory gives way (os.Remove removes only an
	// empty one, so nothing that appeared there meanwhile is lost).
	if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("restore: %s is no longer empty: %w; nothing was restored", target, err)
	}
	if err := os.Rename(tmp, target); err != nil {
		return nil, fmt.Errorf("restore: moving the checked copy into %s: %w", target, err)
	}
	done = true
	if d, err := os.Open(filepath.Dir(target)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return res, nil
}

// extractBackup writes the archive's members under dir and checks them
// against its manifest, which must come last.
func extractBackup(r io.Reader, dir string) (*BackupManifest, error) {
	tr := tar.NewReader(r)
	got := map[string]BackupFile{}
	var manifest []byte
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("the archive is truncated or damaged after %d files (%v); take a new backup", len(got), err)
		}
		if manifest != nil {
			return nil, fmt.Errorf("%s is followed by %s: the manifest must be the archive's last member; this is not a signet backup", BackupManifestName, h.Name)
		}
		if h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("member %s is not a regular file: a signet backup holds only files", h.Name)
		}
		name := path.Clean(h.Name)
		if name != h.Name || path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") || name == "." || name == "lock" {
			return nil, fmt.Errorf("member %q has a path a signet backup never holds", h.Name)
		}
		if name == BackupManifestName {
			if manifest, err = io.ReadAll(io.LimitReader(tr, 64<<20)); err != nil {
				return nil, fmt.Errorf("the manifest is truncated (%v); take a new backup", err)
			}
			continue
		}
		if _, dup := got[name]; dup {
			return nil, fmt.Errorf("member %s appears twice", name)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, err
		}
		sum := sha256.New()
		n, err := io.Copy(io.MultiWriter(f, sum), tr)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("%s is truncated or unreadable (%v); take a new backup", name, err)
		}
		if err := os.Chtimes(p, h.ModTime, h.ModTime); err != nil {
			return nil, err
		}
		got[name] = BackupFile{Name: name, Size: n, SHA256: hex.EncodeToString(sum.Sum(nil))}
	}
	if manifest == nil {
		return nil, fmt.Errorf("the archive ends after %d files without its manifest (%s): it is truncated (cut short, or the backup failed while it was written); take a new backup", len(got), BackupManifestName)
	}
	var m BackupManifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, fmt.Errorf("the manifest %s is damaged: %v", BackupManifestName, err)
	}
	if m.Format != backupFormat {
		return nil, fmt.Errorf("the backup's format is %d; this signet restores format %d: use the signet release that took it", m.Format, backupFormat)
	}
	for _, f := range m.Files {
		g, ok := got[f.Name]
		switch {
		case !ok:
			return nil, fmt.Errorf("%s is in the manifest but not in the archive", f.Name)
		case g.Size != f.Size || g.SHA256 != f.SHA256:
			return nil, fmt.Errorf("%s is damaged: %d bytes with SHA-256 %s, the manifest says %d bytes with %s", f.Name, g.Size, g.SHA256, f.Size, f.SHA256)
		}
		delete(got, f.Name)
	}
	for name := range got {
		return nil, fmt.Errorf("%s is in the archive but not in its manifest", name)
	}
	return &m, nil
}

// verifyRestored checks a restored directory before it is put in place.
func verifyRestored(ctx context.Context, dir string, m *BackupManifest, o RestoreOptions) (*FsckReport, error) {
	if len(m.Logs) == 0 {
		return nil, errors.New("the backup holds no log")
	}
	matched := make([]bool, len(o.Newer))
	for _, l := range m.Logs {
		v, err := logVerifier(l.VerifierKey, l.StaticCT)
		if err != nil {
			return nil, fmt.Errorf("log %s: the manifest's verifier key: %w", l.Origin, err)
		}
		rep, err := tlog.Fsck(ctx, tlog.FsckOptions{Dir: filepath.Join(dir, filepath.FromSlash(l.Dir)), HeadFile: filepath.Join(dir, filepath.FromSlash(l.HeadFile)), Verifier: v, Origin: l.Origin, StaticCT: l.StaticCT})
		if err != nil {
			return nil, fmt.Errorf("log %s: %w", l.Origin, err)
		}
		if len(rep.Problems) > 0 {
			return nil, fmt.Errorf("log %s: %s", l.Origin, strings.Join(rep.Problems, "; "))
		}
		if rep.TreeSize != l.Size {
			return nil, fmt.Errorf("log %s: the restored tree has %d entries, the manifest says %d", l.Origin, rep.TreeSize, l.Size)
		}
		for i, raw := range o.Newer {
			ok, err := checkNewer(dir, l, v, raw)
			if err != nil {
				return nil, err
			}
			matched[i] = matched[i] || ok
		}
	}
	for i, ok := range matched {
		if !ok {
			var origins []string
			for _, l := range m.Logs {
				origins = append(origins, l.Origin)
			}
			return nil, fmt.Errorf("checkpoint %d given is not a signed checkpoint of a log in this backup (%s): it does not verify with their keys; give the old server's signed-head or a checkpoint it served", i+1, strings.Join(origins, ", "))
		}
	}
	if m.Attestations >= 0 {
		if err := attest.CheckCopy(filepath.Join(dir, "attestations.db"), m.Attestations); err != nil {
			return nil, err
		}
	}
	// With the server's keys, the whole server check: the logs against the
	// keys the restored server will sign with. They are the configured
	// ones, or without --config those of a zero-config server in keys/
	// (shards always need the config, which names their keys).
	cfg := Config{}
	if o.Config != nil {
		cfg = *o.Config
	} else {
		shards := 0
		for _, l := range m.Logs {
			if !l.StaticCT {
				shards++
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "keys", "log.key")); err != nil || shards > 1 {
			return nil, nil
		}
	}
	cfg.Data = dir
	rep, err := Fsck(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var problems []string
	reports := []*tlog.FsckReport{rep.Log, rep.CTLog}
	for _, sh := range rep.Shards {
		reports = append(reports, sh.FsckReport)
	}
	for _, r := range reports {
		if r != nil {
			problems = append(problems, r.Problems...)
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("with the server's keys: %s", strings.Join(problems, "; "))
	}
	return rep, nil
}

// checkNewer refuses the backup of log l if the checkpoint raw (of the same
// log) shows a larger or different tree than the one restored: the
// restored server would sign other entries at those sizes.
// It reports whether raw is a checkpoint of l at all.
func checkNewer(dir string, l BackupLog, v note.Verifier, raw []byte) (bool, error) {
	n, err := note.Open(raw, note.VerifierList(v))
	if err != nil {
		return false, nil // another log's checkpoint (each is checked against every log)
	}
	var cp f_log.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil || cp.Origin != l.Origin {
		return false, nil
	}
	return true, consistentWithNewer(dir, l, &cp)
}

func consistentWithNewer(dir string, l BackupLog, cp *f_log.Checkpoint) error {
	if cp.Size > l.Size {
		return fmt.Errorf("log %s had grown to %d entries (the newer checkpoint given), but this backup holds %d: a server restored from it would sign different entries at sizes %d to %d under the same key, a fork. Restore a newer backup (or the original data directory); entries acknowledged after this backup cannot be recovered from it", l.Origin, cp.Size, l.Size, l.Size+1, cp.Size)
	}
	files := client.FileFetcher{Root: filepath.Join(dir, filepath.FromSlash(l.Dir))}
	read := files.ReadTile
	if cp.Size == l.Size {
		if !bytes.Equal(cp.Hash, l.Root) {
			return fmt.Errorf("log %s: the newer checkpoint is for the backup's size %d but another root (%x, the backup's is %x): the backup is of another tree under the same key", l.Origin, cp.Size, cp.Hash, l.Root)
		}
		return nil
	}
	if cp.Size == 0 {
		return nil
	}
	pb, err := client.NewProofBuilder(context.Background(), l.Size, read)
	if err != nil {
		return err
	}
	p, err := pb.ConsistencyProof(context.Background(), cp.Size, l.Size)
	if err != nil {
		return fmt.Errorf("log %s: proving the backup extends the newer checkpoint: %w", l.Origin, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp.Size, l.Size, p, cp.Hash, l.Root); err != nil {
		return fmt.Errorf("log %s: the backup's tree is not an extension of the checkpoint given (size %d): %w", l.Origin, cp.Size, err)
	}
	return nil
}

// syncTree fsyncs every directory under root, so the restored files
// (fsynced as written) are durably named before the rename.
func syncTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}
