package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Timeouts set in a database DSN that sets none, so that a database that
// stops answering fails requests instead of holding them.
const (
	DBDialTimeout = 5 * time.Second
	DBIOTimeout   = 30 * time.Second
)

// BoundedDSN parses a go-sql-driver/mysql DSN of the distributed storage,
// which must name a database, and bounds the timeouts it leaves unset.
func BoundedDSN(dsn string) (*mysql.Config, error) {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("the database DSN does not parse (%v); write it as user:password@tcp(host:3306)/database", err)
	}
	if c.DBName == "" {
		return nil, errors.New("the database DSN names no database; end it with /database")
	}
	if c.Timeout == 0 {
		c.Timeout = DBDialTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DBIOTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DBIOTimeout
	}
	return c, nil
}

// OpenDB opens a pool on the database dsn names (BoundedDSN's timeouts),
// of at most maxOpen connections, idle ones renewed now and then so that
// after a failover none stays on the old primary. where names the
// database for messages, never with the password.
func OpenDB(dsn string, maxOpen, maxIdle int) (db *sql.DB, where string, err error) {
	cfg, err := BoundedDSN(dsn)
	if err != nil {
		return nil, "", err
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, "", err
	}
	db = sql.OpenDB(conn)
	db.SetMaxOpenConns(maxOpen)
	db.SetMaxIdleConns(maxIdle)
	db.SetConnMaxLifetime(5 * time.Minute)
	return db, fmt.Sprintf("database %s on %s", cfg.DBName, cfg.Addr), nil
}

// PrepareSchema creates the tables a database lacks and checks the schema
// version recorded in meta (a name/value table among tables): the first
// server to start on a new database records version, and a server finding
// another refuses it.
func PrepareSchema(ctx context.Context, db *sql.DB, tables []string, meta, version string) error {
	for _, stmt := range tables {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("creating the tables: %w", err)
		}
	}
	// INSERT IGNORE: servers starting at once on a new database all write
	// the one version, and the first wins.
	if _, err := db.ExecContext(ctx, "INSERT IGNORE INTO "+meta+" (name, value) VALUES ('schema', ?)", version); err != nil {
		return err
	}
	var v string
	if err := db.QueryRowContext(ctx, "SELECT value FROM "+meta+" WHERE name = 'schema'").Scan(&v); err != nil {
		return err
	}
	if v != version {
		return fmt.Errorf("schema version %q, this signet reads version %q; use the signet release that wrote it", v, version)
	}
	return nil
}
