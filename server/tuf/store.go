package tuf

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/signet-dev/signet/server/storage"
)

// state is the repository's stored metadata: N.root.json, N.targets.json,
// N.snapshot.json, timestamp.json (and, in a database, the zero-config
// target files as targets/<sha256>.<name>), and a timestamp signed ahead
// (next), to be served from nextFrom on.
//
// Why a timestamp ahead: replicas re-read the database every reloadEvery,
// so a timestamp that one replica served at once would be served by the
// others up to reloadEvery later, and a client going from the first to
// another would see its version go back. A new timestamp is therefore
// stored switchDelay before it is due, every replica has it well before
// then, and all switch to it at nextFrom by their clocks.
type state struct {
	files    map[string][]byte
	next     []byte
	nextFrom time.Time
}

func (s *state) clone() *state {
	return &state{files: maps.Clone(s.files), next: s.next, nextFrom: s.nextFrom}
}

// metaStore keeps the state: the data directory of one server, or a
// database all replicas share.
type metaStore interface {
	read(ctx context.Context) (*state, error)
	// update runs fn on the stored state under the store's lock (no other
	// replica signs meanwhile) and stores what fn returns, all or nothing.
	update(ctx context.Context, fn func(*state) (*state, error)) (*state, error)
	where() string
	close() error
}

// dirStore is the metadata in a directory: one server's.
type dirStore struct {
	dir string
	mu  sync.Mutex
}

func (d *dirStore) where() string { return d.dir }
func (d *dirStore) close() error  { return nil }

func (d *dirStore) read(context.Context) (*state, error) {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, err
	}
	st := &state{files: map[string][]byte{}}
	for _, e := range entries {
		if versioned.MatchString(e.Name()) || e.Name() == "timestamp.json" {
			b, err := os.ReadFile(filepath.Join(d.dir, e.Name()))
			if err != nil {
				return nil, err
			}
			st.files[e.Name()] = b
		}
	}
	return st, nil
}

func (d *dirStore) update(ctx context.Context, fn func(*state) (*state, error)) (*state, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur, err := d.read(ctx)
	if err != nil {
		return nil, err
	}
	st, err := fn(cur.clone())
	if err != nil {
		return nil, err
	}
	if st.next != nil {
		return nil, errors.New("a timestamp signed ahead is for replicas sharing a database")
	}
	// The timestamp last: it names the snapshot, which names the targets.
	names := changed(cur, st)
	for _, n := range names {
		if err := storage.WriteFileSync(filepath.Join(d.dir, n), st.files[n], 0o644); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// changed lists the files of st that cur lacks or holds otherwise,
// timestamp.json last.
func changed(cur, st *state) []string {
	var names []string
	for n, b := range st.files {
		if n != "timestamp.json" && !bytes.Equal(cur.files[n], b) {
			names = append(names, n)
		}
	}
	if b := st.files["timestamp.json"]; b != nil && !bytes.Equal(cur.files["timestamp.json"], b) {
		names = append(names, "timestamp.json")
	}
	return names
}

// sqlStore is the metadata in a MySQL-compatible database that replicas
// share. Tables (InnoDB, prefixed, so they can live in the transparency
// log's database):
//
//	SignetTUFMeta  name → value; the "schema" row is also the lock every re-sign holds
//	SignetTUF      path → content; serve_from (Unix µs) is when "timestamp.next" is due
type sqlStore struct {
	db  *sql.DB
	loc string // "database D on host:port", never the password
}

// The timestamp signed ahead, in SignetTUF.
const nextRow = "timestamp.next"

const (
	// dbTimeout bounds one read or re-sign, however many statements.
	dbTimeout = 30 * time.Second
	// A reload and a re-sign at a time, and the odd overlap.
	dbConns = 2
)

const sqlSchemaVersion = "1"

var sqlTables = []string{
	`CREATE TABLE IF NOT EXISTS SignetTUFMeta (
		name VARCHAR(64) NOT NULL PRIMARY KEY,
		value VARCHAR(255) NOT NULL
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
	`CREATE TABLE IF NOT EXISTS SignetTUF (
		path VARCHAR(255) NOT NULL PRIMARY KEY,
		content LONGBLOB NOT NULL,
		serve_from BIGINT NOT NULL DEFAULT 0
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
}

// openSQL connects and creates the tables the database lacks.
func openSQL(dsn string) (*sqlStore, error) {
	db, where, err := storage.OpenDB(dsn, dbConns, dbConns)
	if err != nil {
		return nil, err
	}
	s := &sqlStore{db: db, loc: where}
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	if err := s.prepare(ctx); err != nil {
		_ = s.db.Close()
		return nil, fmt.Errorf("%s: %w", s.loc, err)
	}
	return s, nil
}

func (s *sqlStore) prepare(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	if err := storage.PrepareSchema(ctx, s.db, sqlTables, "SignetTUFMeta", sqlSchemaVersion); err != nil {
		return fmt.Errorf("the TUF metadata: %w", err)
	}
	return nil
}

func (s *sqlStore) where() string { return s.loc }
func (s *sqlStore) close() error  { return s.db.Close() }

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func readRows(ctx context.Context, q querier) (*state, error) {
	rows, err := q.QueryContext(ctx, "SELECT path, content, serve_from FROM SignetTUF")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	st := &state{files: map[string][]byte{}}
	for rows.Next() {
		var (
			path    string
			content []byte
			from    int64
		)
		if err := rows.Scan(&path, &content, &from); err != nil {
			return nil, err
		}
		if path == nextRow {
			st.next, st.nextFrom = content, time.UnixMicro(from).UTC()
		} else {
			st.files[path] = content
		}
	}
	return st, rows.Err()
}

func (s *sqlStore) read(ctx context.Context) (*state, error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	return readRows(ctx, s.db)
}

func (s *sqlStore) update(ctx context.Context, fn func(*state) (*state, error)) (*state, error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	// READ COMMITTED: what is read after the lock is what the replica
	// that held it before committed.
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	var v string
	if err := tx.QueryRowContext(ctx, "SELECT value FROM SignetTUFMeta WHERE name = 'schema' FOR UPDATE").Scan(&v); err != nil {
		return nil, fmt.Errorf("taking the TUF lock: %w", err)
	}
	cur, err := readRows(ctx, tx)
	if err != nil {
		return nil, err
	}
	st, err := fn(cur.clone())
	if err != nil {
		return nil, err
	}
	put := "INSERT INTO SignetTUF (path, content, serve_from) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE content = VALUES(content), serve_from = VALUES(serve_from)"
	for _, n := range changed(cur, st) {
		if strings.HasPrefix(n, nextRow) {
			return nil, fmt.Errorf("%s: not a TUF file name", n)
		}
		if _, err := tx.ExecContext(ctx, put, n, st.files[n], 0); err != nil {
			return nil, err
		}
	}
	switch {
	case st.next == nil && cur.next != nil:
		if _, err := tx.ExecContext(ctx, "DELETE FROM SignetTUF WHERE path = ?", nextRow); err != nil {
			return nil, err
		}
	case st.next != nil && (!bytes.Equal(st.next, cur.next) || !st.nextFrom.Equal(cur.nextFrom)):
		if _, err := tx.ExecContext(ctx, put, nextRow, st.next, st.nextFrom.UnixMicro()); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return st, nil
}
