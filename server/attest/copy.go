package attest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// CopyOptions configure Copy.
type CopyOptions struct {
	// MaxEnvelopeBytes is the attestations.maxEnvelopeBytes the MySQL
	// deployment will run with: the target's max_allowed_packet must take
	// a record of that envelope, as New checks. 0 means
	// DefaultMaxEnvelopeBytes.
	MaxEnvelopeBytes int64
	// Logger receives the pending markers left behind and a summary; nil
	// discards them.
	Logger *slog.Logger
	// Progress, when set, is called after each batch is committed with the
	// source's records dealt with so far (copied or found in the target)
	// and their total.
	Progress func(done, total int)
}

// CopyReport says what Copy did.
type CopyReport struct {
	// Total is the records of the source.
	Total int
	// Copied is the records this run wrote to the target; Present those
	// the target held already, with the same content (an earlier run's).
	Copied, Present int
	// Pending are the IDs of the source's pending markers, which are not
	// copied (see Copy).
	Pending []string
}

// copyBatch bounds the records written in one transaction of Copy (and
// copyBatchBytes their size); a variable so tests can interrupt a copy
// between batches.
var (
	copyBatch      = 100
	copyBatchBytes = 16 << 20
)

// Copy copies every record of the bbolt attestation store at fromPath into
// the MySQL attestation store at toDSN, for a server that moves from its
// own data directory to a shared database (signet server migrate).
//
// The source is opened read-only and must not be in use: the lock of a
// running server on it makes Copy fail at once, saying to stop the server
// first (records it stored meanwhile would be missed). It must be a signet
// attestation store of the schema version this signet reads. The target's
// tables are created if missing, and its max_allowed_packet must take a
// record of opts.MaxEnvelopeBytes, as New requires.
//
// Each record keeps its position in submission order: it is stored at the
// source's sequence number with its index entries (subjects, predicate
// type, identity, issuer), so every query on the target answers the same
// records in the same order as on the source, and page tokens handed out
// by the old server still continue where they were. The target must
// therefore hold nothing but what Copy put there: create a new database,
// and start the servers on it once the copy is done.
//
// Copy is idempotent: the records are written in batches, each in one
// transaction, and a record the target holds already (by attestation ID)
// is not written again, so after an interruption running it again copies
// only what is missing and ends with the same content. A record the target
// holds with other content, or at another position, or another record at
// its position, is an error naming the attestation IDs.
//
// Pending markers of the source (appends to the transparency log that
// started but whose record was not stored) are reported, in the log and in
// CopyReport.Pending, and not copied: the marker holds no record, only the
// ID of an attestation that may be in the log without being stored (its
// envelope is not kept anywhere), and resubmitting the same envelope to the
// new deployment logs it again and stores it there, as it would have on the
// old server. The marker itself is needed for nothing there: its only use
// is to say that an envelope should be resubmitted, which the report says.
//
// On an error the report says what was done before it.
func Copy(ctx context.Context, fromPath, toDSN string, opts CopyOptions) (CopyReport, error) {
	var rep CopyReport
	if opts.MaxEnvelopeBytes < 0 {
		return rep, fmt.Errorf("attestations.maxEnvelopeBytes is %d; set a positive byte count or 0 for the default %d", opts.MaxEnvelopeBytes, DefaultMaxEnvelopeBytes)
	}
	if opts.MaxEnvelopeBytes == 0 {
		opts.MaxEnvelopeBytes = DefaultMaxEnvelopeBytes
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	src, err := openCopySource(fromPath)
	if err != nil {
		return rep, err
	}
	defer src.Close()

	// The source is checked before the target is touched. Nothing writes
	// it (the lock says no server has it open), so its order stays true.
	var order []copyItem
	err = src.View(func(tx *bolt.Tx) error {
		var err error
		if order, err = sourceOrder(tx, fromPath); err != nil {
			return err
		}
		return tx.Bucket(bucketPending).ForEach(func(id, since []byte) error {
			rep.Pending = append(rep.Pending, string(id))
			if len(rep.Pending) <= pendingReported {
				logger.Warn("attestation not copied: its append to the transparency log was started but it was not stored; resubmitting the same envelope to the new deployment completes it",
					"attestation_id", string(id), "append_started", string(since))
			}
			return nil
		})
	})
	if err != nil {
		return rep, fmt.Errorf("attestations: %w", err)
	}
	rep.Total = len(order)

	dst, _, _, err := openSQL(toDSN, opts.MaxEnvelopeBytes, slog.New(slog.DiscardHandler))
	if err != nil {
		return rep, err
	}
	defer dst.close()

	err = src.View(func(tx *bolt.Tx) error {
		records := tx.Bucket(bucketRecords)
		for len(order) > 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("copy interrupted after %d of %d records (run it again to copy the rest): %w", rep.Copied+rep.Present, rep.Total, err)
			}
			var batch []copyItem
			size := 0
			for len(order) > 0 && len(batch) < copyBatch && (len(batch) == 0 || size < copyBatchBytes) {
				it := order[0]
				order = order[1:]
				it.raw = records.Get([]byte(it.id))
				if int64(len(it.raw)) > dst.maxRecord {
					return fmt.Errorf("the record of attestation %s is %d bytes, more than the target's max_allowed_packet lets one statement carry (%d); raise max_allowed_packet on %s", it.id, len(it.raw), dst.maxRecord, dst.where)
				}
				var rec Record
				if err := json.Unmarshal(it.raw, &rec); err != nil {
					return fmt.Errorf("%s: record %s does not read: %w", fromPath, it.id, err)
				}
				if rec.ID != it.id {
					return fmt.Errorf("%s: the record stored as %s is attestation %s; the store is damaged", fromPath, it.id, rec.ID)
				}
				it.rec = &rec
				batch = append(batch, it)
				size += len(it.raw)
			}
			copied, err := dst.copyBatch(ctx, batch)
			if err != nil {
				return fmt.Errorf("copy stopped after %d of %d records (%d copied by this run): %w", rep.Copied+rep.Present, rep.Total, rep.Copied, err)
			}
			rep.Copied += copied
			rep.Present += len(batch) - copied
			if opts.Progress != nil {
				opts.Progress(rep.Copied+rep.Present, rep.Total)
			}
		}
		return nil
	})
	if err != nil {
		// err names the database where it is the database's.
		return rep, fmt.Errorf("attestations: copying %s: %w", fromPath, err)
	}
	logger.Info("attestations copied", "from", fromPath, "to", dst.where,
		"records", rep.Total, "copied", rep.Copied, "already_there", rep.Present, "pending_not_copied", len(rep.Pending))
	return rep, nil
}

// openCopySource opens a bbolt attestation store read-only, refusing one a
// server has open.
func openCopySource(path string) (*bolt.DB, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("attestations: there is no attestation store at %s; give the stopped server's attestations.db", path)
	case err != nil:
		return nil, fmt.Errorf("attestations: %w", err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("attestations: %s is not a file; give the stopped server's attestations.db", path)
	case fi.Size() == 0:
		return nil, fmt.Errorf("attestations: %s is empty, not an attestation store", path)
	}
	if err := checkDatabaseFile(path); err != nil {
		return nil, fmt.Errorf("attestations: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("attestations: %s is locked by a running signet server; stop the server first, then copy (what it stores meanwhile would be missed)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("attestations: open %s: %w", path, err)
	}
	return db, nil
}

type copyItem struct {
	seq uint64
	id  string
	raw []byte // valid while the source's transaction is
	rec *Record
}

// sourceOrder checks that tx is a signet attestation store of this schema
// version and returns its records in submission order. The predicate type
// index holds every record once with its sequence number.
func sourceOrder(tx *bolt.Tx, path string) ([]copyItem, error) {
	meta := tx.Bucket(bucketMeta)
	for _, name := range [][]byte{bucketMeta, bucketRecords, bucketPending, bucketPredicate} {
		if tx.Bucket(name) == nil {
			return nil, fmt.Errorf("%s is a bbolt database but not a signet attestation store (it has no %q bucket)", path, name)
		}
	}
	if v := meta.Get(keySchema); !bytes.Equal(v, schemaVersion) {
		if v == nil {
			return nil, fmt.Errorf("%s is not a signet attestation store (its meta bucket has no schema version)", path)
		}
		return nil, fmt.Errorf("%s has schema version %q, this signet copies version %q; use the signet release that wrote it", path, v, schemaVersion)
	}
	records := tx.Bucket(bucketRecords)
	stored := records.Stats().KeyN
	if held, _, err := readWatermark(path); err != nil {
		return nil, err
	} else if uint64(stored) < held {
		return nil, fmt.Errorf("%s holds %d attestations, but the store has held %d (%s): it is an older or damaged copy; copy the latest backup instead", path, stored, held, usedMarker(path))
	}
	order := make([]copyItem, 0, stored)
	seen := make(map[string]bool, stored)
	err := tx.Bucket(bucketPredicate).ForEach(func(k, id []byte) error {
		if len(k) < 8 {
			return fmt.Errorf("%s: index key %x is too short; the store is damaged", path, k)
		}
		if seen[string(id)] {
			return fmt.Errorf("%s: attestation %s is in the predicate type index twice; the store is damaged", path, id)
		}
		if records.Get(id) == nil {
			return fmt.Errorf("%s: the index names attestation %s, which is not stored; the store is damaged", path, id)
		}
		seen[string(id)] = true
		order = append(order, copyItem{seq: binary.BigEndian.Uint64(k[len(k)-8:]), id: string(id)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(order) != stored {
		return nil, fmt.Errorf("%s holds %d records but indexes %d; the store is damaged", path, stored, len(order))
	}
	slices.SortFunc(order, func(a, b copyItem) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	for i := 1; i < len(order); i++ {
		if order[i].seq == order[i-1].seq {
			return nil, fmt.Errorf("%s: attestations %s and %s have one sequence number; the store is damaged", path, order[i-1].id, order[i].id)
		}
	}
	return order, nil
}

// copyBatch writes the records of batch the target lacks, at their
// sequence numbers, with the index rows of every record of the batch (so
// that a record whose index rows went missing gets them back), in one
// transaction. It returns how many records it wrote.
func (s *sqlRecords) copyBatch(ctx context.Context, batch []copyItem) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	n, err := s.copyTx(ctx, batch)
	return n, s.fail(err)
}

func (s *sqlRecords) copyTx(ctx context.Context, batch []copyItem) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()

	// What the target holds already, by id or at the batch's positions.
	ph := strings.Repeat("?, ", len(batch)-1) + "?"
	args := make([]any, 0, 2*len(batch))
	for _, it := range batch {
		args = append(args, it.id)
	}
	for _, it := range batch {
		args = append(args, it.seq)
	}
	type held struct {
		seq  uint64
		id   string
		hash string
	}
	byID, bySeq := map[string]held{}, map[uint64]held{}
	rows, err := tx.QueryContext(ctx, "SELECT seq, id, SHA2(record, 256) FROM SignetAttestationRecords WHERE id IN ("+ph+") OR seq IN ("+ph+") FOR UPDATE", args...)
	if err != nil {
		return 0, err
	}
	for rows.Next() {
		var h held
		if err := rows.Scan(&h.seq, &h.id, &h.hash); err != nil {
			rows.Close()
			return 0, err
		}
		byID[h.id], bySeq[h.seq] = h, h
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}

	copied := 0
	for _, it := range batch {
		if h, ok := byID[it.id]; ok {
			if h.seq != it.seq {
				return 0, fmt.Errorf("the target holds attestation %s at position %d, but the source at %d: the target was not filled by copying this store; copy into a new, empty database", it.id, h.seq, it.seq)
			}
			sum := sha256.Sum256(it.raw)
			if h.hash != hex.EncodeToString(sum[:]) {
				same, err := s.sameAsHeld(ctx, tx, it)
				if err != nil {
					return 0, err
				}
				if !same {
					return 0, fmt.Errorf("the target holds attestation %s with other content than the source; it was not copied from this store: copy into a new, empty database, or remove that record from the target if it is wrong", it.id)
				}
			}
			continue
		}
		if h, ok := bySeq[it.seq]; ok {
			return 0, fmt.Errorf("the target holds attestation %s at position %d, where the source holds %s: the target was not filled by copying this store (were servers already running on it?); copy into a new, empty database", h.id, it.seq, it.id)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO SignetAttestationRecords (seq, id, size, record) VALUES (?, ?, ?, ?)", it.seq, it.id, len(it.raw), it.raw); err != nil {
			return 0, fmt.Errorf("attestation %s: %w", it.id, err)
		}
		copied++
	}

	var index []any
	flush := func() error {
		if len(index) == 0 {
			return nil
		}
		stmt := "INSERT INTO SignetAttestationIndex (kind, term, seq) VALUES " + strings.Repeat("(?, ?, ?), ", len(index)/3-1) + "(?, ?, ?) ON DUPLICATE KEY UPDATE kind = kind"
		_, err := tx.ExecContext(ctx, stmt, index...)
		index = index[:0]
		return err
	}
	for _, it := range batch {
		for _, t := range indexTerms(it.rec) {
			index = append(index, t.kind, termHash(t.value), it.seq)
			if len(index) == 3*indexBatch {
				if err := flush(); err != nil {
					return 0, err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return 0, err
	}
	// As put does: a stored record has no marker.
	if _, err := tx.ExecContext(ctx, "DELETE FROM SignetAttestationPending WHERE id IN ("+ph+")", args[:len(batch)]...); err != nil {
		return 0, err
	}
	return copied, tx.Commit()
}

// sameAsHeld reports whether the target's record of it.id, whose bytes
// differ from the source's, holds the same record (protojson's output
// differs in spacing from one build to another).
func (s *sqlRecords) sameAsHeld(ctx context.Context, tx *sql.Tx, it copyItem) (bool, error) {
	var raw []byte
	if err := tx.QueryRowContext(ctx, "SELECT record FROM SignetAttestationRecords WHERE id = ?", it.id).Scan(&raw); err != nil {
		return false, err
	}
	var got Record
	if err := json.Unmarshal(raw, &got); err != nil {
		return false, nil // not a record: not the same
	}
	return sameRecord(&got, it.rec), nil
}

func sameRecord(a, b *Record) bool {
	return a.ID == b.ID &&
		proto.Equal(a.Envelope, b.Envelope) && proto.Equal(a.Verifier, b.Verifier) && proto.Equal(a.Entry, b.Entry) &&
		a.StatementType == b.StatementType && a.PredicateType == b.PredicateType &&
		reflect.DeepEqual(a.Subjects, b.Subjects) &&
		a.Identity == b.Identity && a.Issuer == b.Issuer &&
		a.StoredTime.Equal(b.StoredTime) && bytes.Equal(a.SignedTimestamp, b.SignedTimestamp)
}
