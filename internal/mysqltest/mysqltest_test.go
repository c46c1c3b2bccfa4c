package mysqltest

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/signet-dev/signet/internal/testproc"
)

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// A row committed before a kill -9 is there after the restart, on the
// same address; a second server of the same test binary is its own.
func TestServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	s := Start(t)
	t.Logf("first Start (unpacking MariaDB if the tools cache lacks it): %v", time.Since(start))
	s.CreateDatabase(t, "log")
	db := open(t, s.DSN("log"))

	var flush int
	if err := db.QueryRowContext(ctx, "SELECT @@innodb_flush_log_at_trx_commit").Scan(&flush); err != nil {
		t.Fatal(err)
	}
	if flush != 1 {
		t.Fatalf("innodb_flush_log_at_trx_commit = %d: a commit would not be durable", flush)
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE entries (idx BIGINT PRIMARY KEY, leaf VARBINARY(64) NOT NULL) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO entries VALUES (?, ?)", 7, []byte("leaf seven")); err != nil {
		t.Fatal(err)
	}
	readBack := func(db *sql.DB) string {
		t.Helper()
		var leaf []byte
		if err := db.QueryRowContext(ctx, "SELECT leaf FROM entries WHERE idx = ?", 7).Scan(&leaf); err != nil {
			t.Fatalf("reading the committed row back: %v", err)
		}
		return string(leaf)
	}
	if got := readBack(db); got != "leaf seven" {
		t.Fatalf("read back %q, want %q", got, "leaf seven")
	}

	// Uncommitted work is lost with the process; committed work is not.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO entries VALUES (?, ?)", 8, []byte("never committed")); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr
	s.Kill()
	if err := db.PingContext(ctx); err == nil {
		t.Fatal("the server still answers after Kill")
	}
	tx.Rollback()
	start = time.Now()
	s.Restart(t)
	t.Logf("Restart after kill -9: %v", time.Since(start))
	if s.Addr != addr {
		t.Fatalf("restarted on %s, want the same address %s", s.Addr, addr)
	}
	db.SetMaxIdleConns(0) // the pool's connections died with the server
	if got := readBack(db); got != "leaf seven" {
		t.Fatalf("after kill -9 and restart read back %q, want %q", got, "leaf seven")
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM entries WHERE idx = 8").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("an uncommitted row survived the crash")
	}

	// The second server has neither the first one's address nor its data.
	start = time.Now()
	s2 := Start(t)
	t.Logf("second Start: %v", time.Since(start))
	if s2.Addr == s.Addr || s2.Dir == s.Dir || s2.Password == s.Password {
		t.Fatalf("second server shares the first's address, directory or password: %+v / %+v", s2, s)
	}
	db2 := open(t, s2.DSN(""))
	if err := db2.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'log'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("the second server has the first one's database")
	}
	if got := readBack(db); got != "leaf seven" {
		t.Fatalf("first server after the second started: read back %q", got)
	}
}

// The account needs its password: the grant tables are real, and root has
// no password login over TCP.
func TestServerRefusesWrongLogins(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := Start(t)
	for _, tc := range []struct{ name, user, password string }{
		{"wrong password", User, "not-" + s.Password},
		{"no password", User, ""},
		{"root over TCP", "root", ""},
	} {
		c := s.Config("")
		c.User, c.Passwd = tc.user, tc.password
		err := open(t, c.FormatDSN()).PingContext(ctx)
		var merr *mysql.MySQLError
		if !errors.As(err, &merr) || merr.Number != 1045 { // ER_ACCESS_DENIED_ERROR
			t.Errorf("%s: err = %v, want access denied (1045)", tc.name, err)
		}
	}
	if err := open(t, s.DSN("")).PingContext(ctx); err != nil {
		t.Fatalf("the right password: %v", err)
	}
}

// A start that fails says why, with the end of mariadbd's log.
func TestRestartFailureShowsTheLog(t *testing.T) {
	s := Start(t)
	s.Kill()
	// Another process on the port: the restart cannot bind it.
	l, err := netListen(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	msg := testproc.FatalMessage(t, func(ft testing.TB) { s.Restart(ft) })
	if !strings.Contains(msg, "restarting MariaDB on "+s.Addr) || !strings.Contains(msg, "Address already in use") {
		t.Fatalf("failed restart's message lacks the address or mariadbd's log:\n%s", msg)
	}
}

// CreateDatabase refuses a name it would have to quote, or MariaDB would
// refuse, before it connects.
func TestCreateDatabaseRefusesOddNames(t *testing.T) {
	s := &Server{}
	for _, name := range []string{"a`b", "", "x-y", strings.Repeat("n", 65)} {
		msg := testproc.FatalMessage(t, func(ft testing.TB) { s.CreateDatabase(ft, name) })
		if !strings.Contains(msg, "use 1 to 64 letters, digits and underscores") {
			t.Errorf("CreateDatabase(%q): message = %q", name, msg)
		}
	}
}

func netListen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
