package attest

import (
	"errors"
	"fmt"
	"io"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Snapshot writes a consistent copy of the database while the store keeps
// serving (the server's backup): one bbolt read transaction written out
// with Tx.WriteTo, so writes go on meanwhile and none appears half in the
// copy. open gets the copy's size and the number of attestations in it,
// and says where to write it.
//
// A store in a MySQL database has no snapshot: Snapshot returns
// ErrNoSnapshot, and the database's own backups cover it.
func (s *Store) Snapshot(open func(size int64, records int) (io.Writer, error)) error {
	b, ok := s.recs.(*boltRecords)
	if !ok {
		return ErrNoSnapshot
	}
	return b.db.View(func(tx *bolt.Tx) error {
		w, err := open(tx.Size(), tx.Bucket(bucketRecords).Stats().KeyN)
		if err != nil {
			return err
		}
		_, err = tx.WriteTo(w)
		return err
	})
}

// ErrNoSnapshot is Snapshot's answer for a store in a MySQL database.
var ErrNoSnapshot = errors.New("the attestation store is in a MySQL database, which a signet backup does not copy; back it up with the database's own tools (mysqldump --single-transaction, mariabackup, or RDS/Aurora snapshots)")

// UsedMarker is the watermark file's content for a store that has held
// records attestations (what the store writes beside its database).
func UsedMarker(records int) []byte {
	return fmt.Appendf(nil, "attestations %d\nThis file records how many attestations attestations.db has held; see docs/operations.md.\n", records)
}

// CheckCopy opens a copy of the database read-only (a restored backup, no
// server running on it) and checks it through: its file layout, every
// page bbolt's consistency check walks, and that it holds records
// attestations.
func CheckCopy(path string, records int) error {
	if err := checkDatabaseFile(path); err != nil {
		return err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("%s cannot be opened: %w", path, err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("%s fails bbolt's consistency check: %w", path, errors.Join(errs...))
		}
		b := tx.Bucket(bucketRecords)
		if b == nil {
			return fmt.Errorf("%s holds no attestation records bucket: it is not signet's attestation store", path)
		}
		if n := b.Stats().KeyN; n != records {
			return fmt.Errorf("%s holds %d attestations, but the backup's manifest says %d", path, n, records)
		}
		return nil
	})
}
