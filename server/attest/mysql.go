package attest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/signet-dev/signet/server/storage"
)

// sqlRecords keeps the attestations in a MySQL-compatible database that
// any number of replicas share: an attestation stored through one is found
// through every other, and a replica keeps nothing of its own.
//
// Tables (all InnoDB, utf8mb4_bin, prefixed so that they can live in the
// transparency log's database beside tessera's):
//
//	SignetAttestationMeta     name → value; "schema" is the schema version
//	SignetAttestationRecords  seq (AUTO_INCREMENT, the page cursor), id, size, record JSON
//	SignetAttestationIndex    (kind, SHA-256 of the value, seq): what records are found by
//	SignetAttestationPending  id → when its append started, and which replica holds it until when
//
// The index keeps a digest of each value rather than the value: a
// predicate type or identity may be longer than an InnoDB key can be.
type sqlRecords struct {
	db    *sql.DB
	where string // "database D on host:port", never the password
	// maxRecord is the largest stored record the database takes in one
	// statement (its max_allowed_packet, less room for the statement).
	maxRecord int64
	// owner names this Store in the claims it takes. The Store's
	// in-process map knows which of them a live request holds, so it may
	// take back any other of its own at once, even one it could not
	// release because the database was down.
	owner string
}

const (
	// dbTimeout bounds each operation on the database (a claim, a put, a
	// query), however many statements it takes.
	dbTimeout = 30 * time.Second
	dbConns   = 16
	// recordMargin is what a stored record holds beyond its envelope: the
	// verifier (up to verifierSlack), the log entry (which holds the
	// verifier again, base64 in base64), the subjects and the JSON around.
	recordMargin = 2 << 20
	// packetOverhead is room in a packet for the statement around a record.
	packetOverhead = 64 << 10
	// claimLease is how long a claim holds an attestation against other
	// replicas: longer than one submission can take (timestamp, append,
	// put), so that only a replica that died mid-append leaves a claim to
	// expire before the attestation can be resubmitted.
	claimLease = timestampTimeout + appendTimeout + 2*dbTimeout
	// indexBatch bounds the rows of one index INSERT (a statement takes
	// at most 65535 placeholders).
	indexBatch = 1000
	// pendingReported bounds the interrupted appends named in the log at
	// open; the gauge counts them all.
	pendingReported = 100
)

// sqlSchemaVersion is SignetAttestationMeta's "schema" value.
const sqlSchemaVersion = "1"

var sqlTables = []string{
	`CREATE TABLE IF NOT EXISTS SignetAttestationMeta (
		name VARCHAR(64) NOT NULL PRIMARY KEY,
		value VARCHAR(255) NOT NULL
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
	`CREATE TABLE IF NOT EXISTS SignetAttestationRecords (
		seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
		id CHAR(64) NOT NULL,
		size BIGINT UNSIGNED NOT NULL,
		record LONGBLOB NOT NULL,
		UNIQUE KEY id (id)
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
	`CREATE TABLE IF NOT EXISTS SignetAttestationIndex (
		kind TINYINT UNSIGNED NOT NULL,
		term BINARY(32) NOT NULL,
		seq BIGINT UNSIGNED NOT NULL,
		PRIMARY KEY (kind, term, seq)
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
	`CREATE TABLE IF NOT EXISTS SignetAttestationPending (
		id CHAR(64) NOT NULL PRIMARY KEY,
		since DATETIME(6) NOT NULL,
		owner CHAR(32) NOT NULL,
		lease_until DATETIME(6) NULL
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
}

// checkPacket refuses a database whose max_allowed_packet (found) cannot
// take a record of the largest envelope the store accepts: such a
// submission would be logged and then fail to be stored.
func checkPacket(found, maxEnvelope int64) error {
	need := maxEnvelope + recordMargin
	if found >= need {
		return nil
	}
	const mib = 1 << 20
	fix := fmt.Sprintf("set max_allowed_packet = %dM or more in the database server's configuration ([mysqld] in its my.cnf, or the DB parameter group on RDS and Aurora) and restart it", (need+mib-1)/mib)
	if fits := found - recordMargin; fits > 0 {
		fix += fmt.Sprintf(", or lower attestations.maxEnvelopeBytes to %d or less", fits)
	}
	return fmt.Errorf("the database's max_allowed_packet is %d bytes, but attestations.maxEnvelopeBytes %d needs at least %d (the envelope and %d for the rest of the record): %s", found, maxEnvelope, need, recordMargin, fix)
}

// openSQL connects to the database, creates the tables it lacks, and
// returns it with the records and pending markers it holds.
func openSQL(dsn string, maxEnvelope int64, logger *slog.Logger) (*sqlRecords, int, int, error) {
	db, where, err := storage.OpenDB(dsn, dbConns, dbConns/4)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("attestations: %w", err)
	}
	s := &sqlRecords{db: db, where: where, owner: rand.Text()}
	stored, pending, err := s.prepare(maxEnvelope, logger)
	if err != nil {
		_ = s.db.Close()
		return nil, 0, 0, fmt.Errorf("attestations: %s: %w", s.where, err)
	}
	return s, stored, pending, nil
}

func (s *sqlRecords) prepare(maxEnvelope int64, logger *slog.Logger) (int, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	var packet int64
	if err := s.db.QueryRowContext(ctx, "SELECT @@max_allowed_packet").Scan(&packet); err != nil {
		return 0, 0, fmt.Errorf("connecting: %w", err)
	}
	if err := checkPacket(packet, maxEnvelope); err != nil {
		return 0, 0, err
	}
	s.maxRecord = packet - packetOverhead
	if err := storage.PrepareSchema(ctx, s.db, sqlTables, "SignetAttestationMeta", sqlSchemaVersion); err != nil {
		return 0, 0, err
	}
	stored, pending, err := s.counts(ctx)
	if err != nil {
		return 0, 0, err
	}
	// Markers no live request holds are appends that were interrupted;
	// those of other replicas' requests in flight are not news.
	rows, err := s.db.QueryContext(ctx, "SELECT id, since FROM SignetAttestationPending WHERE lease_until IS NULL OR lease_until <= UTC_TIMESTAMP(6) ORDER BY since LIMIT ?", pendingReported)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, since string
		if err := rows.Scan(&id, &since); err != nil {
			return 0, 0, err
		}
		logger.Warn("attestation may be in the transparency log without being stored; resubmitting the same envelope completes it",
			"attestation_id", id, "append_started", since+" UTC")
	}
	return stored, pending, rows.Err()
}

func (s *sqlRecords) close() error { return s.db.Close() }

// fail says where err happened, and marks it errUnavailable when the
// database did not answer rather than refused.
func (s *sqlRecords) fail(err error) error {
	if err == nil || errors.Is(err, errStored) || errors.Is(err, errClaimed) {
		return err
	}
	if unavailable(err) {
		return fmt.Errorf("%w (%s): %v", errUnavailable, s.where, err)
	}
	return fmt.Errorf("%s: %w", s.where, err)
}

// unavailable reports whether err means the database is down, unreachable
// or too busy, as opposed to refusing what it was asked.
func unavailable(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1040, // too many connections
			1053, // server shutdown in progress
			1203, // too many connections of the user
			1205, // lock wait timeout
			1213, // deadlock
			1226, // user resource limit
			1290, // --read-only (a replica, or failing over)
			1317, // query interrupted
			1836, // read-only mode
			1927, // connection killed
			1969, // statement timeout (MariaDB)
			3024, // statement timeout (MySQL)
			4031: // disconnected as idle (MySQL)
			return true
		}
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func isDuplicateKey(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1062
}

// claim takes the attestation's pending row for this request. A new row,
// or one no live request holds (an interrupted append's), is taken; each
// statement is atomic on its own, so two replicas racing for one row
// cannot both win it, and nothing waits on a lock.
func (s *sqlRecords) claim(ctx context.Context, id string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	wasPending, err := s.claimRow(ctx, id)
	return wasPending, s.fail(err)
}

func (s *sqlRecords) claimRow(ctx context.Context, id string) (bool, error) {
	if stored, err := s.exists(ctx, id); err != nil || stored {
		if stored {
			err = errStored
		}
		return false, err
	}
	lease := int64(claimLease / time.Second)
	_, err := s.db.ExecContext(ctx, "INSERT INTO SignetAttestationPending (id, since, owner, lease_until) VALUES (?, UTC_TIMESTAMP(6), ?, UTC_TIMESTAMP(6) + INTERVAL ? SECOND)", id, s.owner, lease)
	wasPending := isDuplicateKey(err)
	switch {
	case wasPending:
		res, err := s.db.ExecContext(ctx, "UPDATE SignetAttestationPending SET since = UTC_TIMESTAMP(6), owner = ?, lease_until = UTC_TIMESTAMP(6) + INTERVAL ? SECOND WHERE id = ? AND (lease_until IS NULL OR lease_until <= UTC_TIMESTAMP(6) OR owner = ?)", s.owner, lease, id, s.owner)
		if err != nil {
			return false, err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return false, errClaimed
		}
	case err != nil:
		return false, err
	}
	// Another replica may have stored it between the first look and the
	// claim (its put removed its own marker): then nothing is to be
	// logged, and the marker just written is moot.
	stored, err := s.exists(ctx, id)
	if err == nil && stored {
		_, err = s.db.ExecContext(ctx, "DELETE FROM SignetAttestationPending WHERE id = ?", id)
		if err == nil {
			err = errStored
		}
	}
	if err != nil {
		// Leave the marker, but not held: a retry need not wait out the lease.
		_, _ = s.db.ExecContext(ctx, "UPDATE SignetAttestationPending SET lease_until = NULL WHERE id = ?", id)
		return false, err
	}
	return wasPending, nil
}

func (s *sqlRecords) release(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	_, err := s.db.ExecContext(ctx, "UPDATE SignetAttestationPending SET lease_until = NULL WHERE id = ?", id)
	return s.fail(err)
}

func (s *sqlRecords) unmark(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	_, err := s.db.ExecContext(ctx, "DELETE FROM SignetAttestationPending WHERE id = ?", id)
	return s.fail(err)
}

// put writes the record, its index rows and removes its pending row in
// one transaction, so a record is never found without its index, nor
// stored with its marker left.
func (s *sqlRecords) put(ctx context.Context, rec *Record) error {
	val, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if int64(len(val)) > s.maxRecord {
		return fmt.Errorf("%s: the record of attestation %s is %d bytes, more than the database's max_allowed_packet lets one statement carry (%d)", s.where, rec.ID, len(val), s.maxRecord)
	}
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	return s.fail(s.putTx(ctx, rec, val))
}

func (s *sqlRecords) putTx(ctx context.Context, rec *Record, val []byte) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, "INSERT INTO SignetAttestationRecords (id, size, record) VALUES (?, ?, ?)", rec.ID, len(val), val)
	if isDuplicateKey(err) {
		return errStored
	}
	if err != nil {
		return err
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return err
	}
	terms := indexTerms(rec)
	for len(terms) > 0 {
		batch := terms[:min(len(terms), indexBatch)]
		terms = terms[len(batch):]
		args := make([]any, 0, 3*len(batch))
		for _, t := range batch {
			args = append(args, t.kind, termHash(t.value), seq)
		}
		stmt := "INSERT INTO SignetAttestationIndex (kind, term, seq) VALUES " + strings.Repeat("(?, ?, ?), ", len(batch)-1) + "(?, ?, ?)"
		if _, err := tx.ExecContext(ctx, stmt, args...); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM SignetAttestationPending WHERE id = ?", rec.ID); err != nil {
		return err
	}
	return tx.Commit()
}

func termHash(v string) []byte {
	h := sha256.Sum256([]byte(v))
	return h[:]
}

func (s *sqlRecords) exists(ctx context.Context, id string) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, "SELECT 1 FROM SignetAttestationRecords WHERE id = ?", id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (s *sqlRecords) has(ctx context.Context, id string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	ok, err := s.exists(ctx, id)
	return ok, s.fail(err)
}

func (s *sqlRecords) get(ctx context.Context, id string) (*Record, error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	var raw []byte
	err := s.db.QueryRowContext(ctx, "SELECT record FROM SignetAttestationRecords WHERE id = ?", id).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, s.fail(err)
	}
	var rec Record
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("record %s: %w", id, err)
	}
	return &rec, nil
}

// find joins the index rows of every term on seq, newest first, and
// reads the sizes first: the page is cut by count and by maxPageBytes as
// boltRecords.find cuts it, and only the records on it are read.
func (s *sqlRecords) find(ctx context.Context, q query) ([]*Record, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	out, next, err := s.findPage(ctx, q)
	return out, next, s.fail(err)
}

func (s *sqlRecords) findPage(ctx context.Context, q query) ([]*Record, uint64, error) {
	terms := queryTerms(q)
	var b strings.Builder
	var args []any
	b.WriteString("SELECT i0.seq, r.size FROM SignetAttestationIndex i0")
	for i, t := range terms[1:] {
		fmt.Fprintf(&b, " JOIN SignetAttestationIndex i%[1]d ON i%[1]d.kind = ? AND i%[1]d.term = ? AND i%[1]d.seq = i0.seq", i+1)
		args = append(args, t.kind, termHash(t.value))
	}
	b.WriteString(" JOIN SignetAttestationRecords r ON r.seq = i0.seq WHERE i0.kind = ? AND i0.term = ?")
	args = append(args, terms[0].kind, termHash(terms[0].value))
	if q.before != 0 {
		b.WriteString(" AND i0.seq < ?")
		args = append(args, q.before)
	}
	// One more than the page: whether there is a next page.
	b.WriteString(" ORDER BY i0.seq DESC LIMIT ?")
	args = append(args, q.pageSize+1)
	rows, err := s.db.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, 0, err
	}
	var seqs []uint64
	var next, last uint64
	var total int64
	for rows.Next() {
		var seq uint64
		var size int64
		if err := rows.Scan(&seq, &size); err != nil {
			rows.Close()
			return nil, 0, err
		}
		if len(seqs) == q.pageSize || (len(seqs) > 0 && total+size > maxPageBytes) {
			next = last
			break
		}
		seqs = append(seqs, seq)
		total += size
		last = seq
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	if len(seqs) == 0 {
		return nil, 0, nil
	}
	// Records are never removed or changed, so reading them apart from
	// the index is consistent.
	ph := strings.Repeat("?, ", len(seqs)-1) + "?"
	seqArgs := make([]any, len(seqs))
	at := make(map[uint64]int, len(seqs))
	for i, seq := range seqs {
		seqArgs[i], at[seq] = seq, i
	}
	rows, err = s.db.QueryContext(ctx, "SELECT seq, id, record FROM SignetAttestationRecords WHERE seq IN ("+ph+")", seqArgs...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := make([]*Record, len(seqs))
	for rows.Next() {
		var seq uint64
		var id string
		var raw []byte
		if err := rows.Scan(&seq, &id, &raw); err != nil {
			return nil, 0, err
		}
		var rec Record
		if err := json.Unmarshal(raw, &rec); err != nil {
			return nil, 0, fmt.Errorf("record %s: %w", id, err)
		}
		out[at[seq]] = &rec
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	for i, r := range out {
		if r == nil {
			return nil, 0, fmt.Errorf("record of seq %d vanished while the page was read", seqs[i])
		}
	}
	return out, next, nil
}

func (s *sqlRecords) counts(ctx context.Context) (stored, pending int, err error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	err = s.db.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM SignetAttestationRecords), (SELECT COUNT(*) FROM SignetAttestationPending)").Scan(&stored, &pending)
	return stored, pending, s.fail(err)
}
