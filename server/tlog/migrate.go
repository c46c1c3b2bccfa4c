package tlog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/client"
	tesseraaws "github.com/transparency-dev/tessera/storage/aws"
	"golang.org/x/mod/sumdb/note"
)

// MigrateOptions say which stopped POSIX log to copy where.
type MigrateOptions struct {
	Dir      string // tessera POSIX root
	HeadFile string // its signed-head record; default as in Options
	Key      ed25519.PublicKey
	Origin   string
	To       *Distributed
	// Verifier and StaticCT are as in FsckOptions: a certificate
	// transparency log (RFC 6962 key, static-ct-api data tiles) migrates
	// with them set, and with Origin its signer's name.
	Verifier note.Verifier
	StaticCT bool
	// Workers copy entry bundles at once; 0 is 4.
	Workers uint
}

// MigrateReport says what Migrate did.
type MigrateReport struct {
	TreeSize   uint64 // entries in the migrated tree
	Root       []byte
	SignedSize uint64 // the signed-head record carried over
	Done       bool   // the target already held exactly this log: nothing to do
}

// Migrate copies a stopped POSIX log into distributed storage without
// changing the tree: the same entries at the same indexes, so the same
// root at the same size, which tessera's migration checks before it
// reports success. It first runs Fsck and refuses a damaged source. The
// signed-head record is carried over last, so a server started on the
// target after an interrupted run finds no record and an incomplete tree,
// and the start checks refuse it; running Migrate again resumes. The
// published checkpoint is not copied: the first server started on the
// target publishes one through the fork guard, which proves it extends
// the record.
func Migrate(ctx context.Context, o MigrateOptions) (*MigrateReport, error) {
	if o.To == nil {
		return nil, errors.New("tlog: MigrateOptions.To is nil; give the distributed storage to migrate to")
	}
	if o.HeadFile == "" {
		o.HeadFile = filepath.Clean(o.Dir) + ".signed-head"
	}
	if o.Workers == 0 {
		o.Workers = 4
	}
	rep, err := Fsck(ctx, FsckOptions{Dir: o.Dir, HeadFile: o.HeadFile, Key: o.Key, Origin: o.Origin, Verifier: o.Verifier, StaticCT: o.StaticCT})
	if err != nil {
		return nil, err
	}
	if len(rep.Problems) > 0 {
		return nil, fmt.Errorf("the log in %s is damaged, so it is not migrated (%d problem(s), the first: %s); run `signet server fsck` and restore it first", o.Dir, len(rep.Problems), rep.Problems[0])
	}
	record, err := os.ReadFile(o.HeadFile)
	switch {
	case errors.Is(err, os.ErrNotExist) && o.StaticCT && rep.TreeSize == 0:
		// A CT log before its first certificate has no record yet (Fsck
		// accepts that); there is nothing to copy.
		return &MigrateReport{Done: true}, nil
	case err != nil:
		return nil, fmt.Errorf("reading the signed-head record: %w", err)
	}
	var files interface {
		ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error)
		ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error)
	} = client.FileFetcher{Root: o.Dir}
	mopts := tessera.NewMigrationOptions()
	if o.StaticCT {
		files, mopts = ctFiles{client.FileFetcher{Root: o.Dir}}, mopts.WithCTLayout()
	}
	size := rep.TreeSize
	root, err := newTileCache(files.ReadTile).root(ctx, size)
	if err != nil {
		return nil, fmt.Errorf("the root of the tree of %d entries in %s: %w", size, o.Dir, err)
	}
	out := &MigrateReport{TreeSize: size, Root: root, SignedSize: rep.SignedSize}

	d := o.To
	dsn, err := d.dsn()
	if err != nil {
		return nil, err
	}
	head, err := openSQLHead(ctx, dsn, o.Origin, d.where())
	if err != nil {
		return nil, err
	}
	defer head.close()
	have, err := head.load(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the target's signed-head record: %w", err)
	}
	if have != nil && !bytes.Equal(have, record) {
		return nil, fmt.Errorf("%s already holds a log of origin %s with another signed-head record: migrate only into an empty database and bucket prefix", d.where(), o.Origin)
	}
	driver, err := tesseraaws.New(ctx, tesseraaws.Config{
		SDKConfig: &d.AWS, S3Options: d.s3Options, Bucket: d.Bucket, BucketPrefix: d.Prefix,
		DSN: dsn, MaxOpenConns: d.conns(), MaxIdleConns: d.conns(),
	})
	if err != nil {
		return nil, err
	}
	// No antispam follower here: tessera v1.0.4's migration reader has no
	// tree size for it (a nil function, a panic). The servers' own
	// followers index the migrated entries from the start of the log.
	mt, err := tessera.NewMigrationTarget(ctx, driver, mopts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.where(), err)
	}
	if have != nil {
		out.Done = true
	}
	if err := mt.Migrate(ctx, o.Workers, size, root, files.ReadEntryBundle); err != nil {
		if strings.Contains(err.Error(), "root hash") {
			return nil, fmt.Errorf("%w: %s already holds another tree: %v", ErrForked, d.where(), err)
		}
		return nil, fmt.Errorf("copying the log to %s: %w", d.where(), err)
	}
	// tessera v1.0.4's migration sets the integrated tree (IntCoord) but
	// not the next index to assign (SeqCoord), which stays 0: the first
	// append would be refused as 2^64 entries behind, or given index 0
	// again. Set it to the tree size before any server sequences.
	if _, err := head.db.ExecContext(ctx, "UPDATE SeqCoord SET next = ? WHERE id = 0 AND next < ?", size, size); err != nil {
		return nil, fmt.Errorf("setting the target's next index to %d: %w", size, err)
	}
	if have == nil {
		err = head.advance(ctx, func(cur []byte) ([]byte, error) {
			if cur != nil && !bytes.Equal(cur, record) {
				return nil, fmt.Errorf("%s got another signed-head record while migrating: is a server running on it?", d.where())
			}
			return record, nil
		})
		if err != nil {
			return nil, fmt.Errorf("carrying the signed-head record over: %w", err)
		}
	}
	return out, nil
}
