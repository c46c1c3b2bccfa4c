// Package mysqltest gives tests a real MySQL-compatible database: MariaDB
// from Debian's packages (toolcache.MariaDB, unpacked into the tools
// cache), one fresh server per Start, listening on 127.0.0.1 with a data
// directory in the test's temporary directory.
//
// Clients connect over TCP as a user with a password, as they would to a
// production database: the grant tables are real (no --skip-grant-tables).
// The administrative accounts (root@localhost, and the OS user's own when
// the test does not run as root) log in only through the server's Unix
// socket, by unix_socket authentication as that OS user.
package mysqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/signet-dev/signet/internal/testproc"
	"github.com/signet-dev/signet/internal/toolcache"
)

// User is the account every Server creates for its clients, with all
// privileges (it creates the tests' databases).
const User = "signet"

// startTimeout bounds one start of mariadbd until it accepts a login; a
// warm start takes well under a second, a crash recovery after Kill a
// little more, on a loaded 2-core machine several seconds.
const startTimeout = 90 * time.Second

// A Server is a running mariadbd of the test's own.
type Server struct {
	Addr     string // 127.0.0.1:port, the same across Restart
	Port     int
	Password string // User's password
	Dir      string // holds data/, mariadbd.log and the socket
	Log      string // mariadbd's log file
	Socket   string // Unix socket, for root (unix_socket authentication)

	bin, libDir string
	proc        *testproc.Process
}

// Start initialises a data directory in t.TempDir(), starts mariadbd on a
// free loopback port and returns once User can log in. The server is
// killed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	root, err := toolcache.MariaDB.Root()
	if err != nil {
		t.Fatalf("MariaDB from Debian's packages: %v", err)
	}
	s := &Server{Dir: t.TempDir(), bin: filepath.Join(root, "usr/sbin/mariadbd")}
	s.Log = filepath.Join(s.Dir, "mariadbd.log")
	s.proc = &testproc.Process{Name: "mariadbd", Log: s.Log}
	s.Socket = filepath.Join(s.Dir, "mysqld.sock")
	if len(s.Socket) > 100 {
		// sun_path holds 108 bytes; a long test name makes TempDir longer.
		short, err := os.MkdirTemp("", "mysql-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(short) })
		s.Socket = filepath.Join(short, "mysqld.sock")
	}
	if s.libDir, err = libDir(root); err != nil {
		t.Fatal(err)
	}
	var pw [16]byte
	rand.Read(pw[:])
	s.Password = hex.EncodeToString(pw[:])
	if err := s.install(root); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Kill)
	testproc.OnFreePort(t, s.proc, "MariaDB", func(port int) error {
		s.Port, s.Addr = port, "127.0.0.1:"+strconv.Itoa(port)
		return s.start()
	})
	return s
}

// Config is the go-sql-driver/mysql configuration for database db ("" for
// none) as User, for callers that set more of it (timeouts, parseTime).
func (s *Server) Config(db string) *mysql.Config {
	c := mysql.NewConfig()
	c.User = User
	c.Passwd = s.Password
	c.Net = "tcp"
	c.Addr = s.Addr
	c.DBName = db
	return c
}

// DSN is the go-sql-driver/mysql data source name for database db ("" for
// none) as User.
func (s *Server) DSN(db string) string { return s.Config(db).FormatDSN() }

// dbName is what CreateDatabase accepts: a name that needs no quoting
// beyond backquotes, within MariaDB's 64 characters.
var dbName = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// CreateDatabase creates database name (utf8mb4) and fails the test if
// it cannot.
func (s *Server) CreateDatabase(t testing.TB, name string) {
	t.Helper()
	if !dbName.MatchString(name) {
		t.Fatalf("mysqltest: database name %q: use 1 to 64 letters, digits and underscores", name)
	}
	db, err := sql.Open("mysql", s.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		t.Fatalf("creating database %s: %v", name, err)
	}
}

// Exec runs one statement on the database dsn names and fails the test
// if it does not succeed.
func Exec(t testing.TB, dsn, stmt string, args ...any) {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, stmt, args...); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// Kill kills mariadbd with SIGKILL, as a crash or a lost machine would,
// and waits until it has exited; the data directory stays for Restart.
// Killing a stopped server does nothing.
func (s *Server) Kill() { s.proc.Stop(syscall.SIGKILL) }

// Restart kills mariadbd (if it runs) and starts it again on the same data
// directory and port, returning once User can log in: InnoDB recovers
// every committed transaction from its redo log.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	if err := s.start(); err != nil {
		t.Fatalf("restarting MariaDB on %s: %v\n%s", s.Addr, err, s.proc.LogTail())
	}
}

// install creates the system tables, root@localhost by unix_socket for
// the OS user running the test, and User with its password. In bootstrap
// mode the grant tables are not loaded: FLUSH PRIVILEGES loads them, so
// CREATE USER works.
func (s *Server) install(root string) error {
	users := filepath.Join(s.Dir, "users.sql")
	sqlText := fmt.Sprintf("FLUSH PRIVILEGES;\nCREATE USER '%s'@'%%' IDENTIFIED BY '%s';\nGRANT ALL PRIVILEGES ON *.* TO '%s'@'%%' WITH GRANT OPTION;\n", User, s.Password, User)
	if err := os.WriteFile(users, []byte(sqlText), 0o600); err != nil {
		return err
	}
	args := append([]string{
		"--no-defaults",
		"--basedir=" + filepath.Join(root, "usr"),
		"--datadir=" + filepath.Join(s.Dir, "data"),
		"--auth-root-authentication-method=socket",
		"--skip-test-db",
		"--skip-name-resolve",
		"--extra-file=" + users,
	}, s.commonArgs()...)
	cmd := exec.Command(filepath.Join(root, "usr/bin/mariadb-install-db"), args...)
	cmd.Env = s.env()
	cmd.Dir = s.Dir
	log, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mariadb-install-db (initialising %s): %v\n%s", filepath.Join(s.Dir, "data"), err, s.proc.LogTail())
	}
	return nil
}

// commonArgs are options install and every start share: the redo log's
// size must match, or the server resizes it at each start.
func (s *Server) commonArgs() []string {
	args := []string{"--innodb-log-file-size=16M"}
	if os.Geteuid() == 0 {
		// mariadbd refuses to run as root unless told to.
		args = append(args, "--user=root")
	}
	return args
}

// env is the test's environment for MariaDB's programs, with the unpacked
// libraries first and without MYSQL_* variables, which would redirect
// them (MYSQL_TCP_PORT, MYSQL_UNIX_PORT, MYSQLD_BOOTSTRAP, ...).
func (s *Server) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MYSQL") && !strings.HasPrefix(kv, "MARIADB") && !strings.HasPrefix(kv, "LD_LIBRARY_PATH=") {
			env = append(env, kv)
		}
	}
	lib := s.libDir
	if old := os.Getenv("LD_LIBRARY_PATH"); old != "" {
		lib += ":" + old
	}
	return append(env, "LD_LIBRARY_PATH="+lib)
}

// start runs mariadbd on s.Dir's data directory and s.Port and waits
// until User can log in, or mariadbd exits, or startTimeout passes.
func (s *Server) start() error {
	args := append([]string{
		"--no-defaults",
		"--basedir=" + filepath.Dir(filepath.Dir(s.bin)),
		"--datadir=" + filepath.Join(s.Dir, "data"),
		"--tmpdir=" + s.Dir,
		"--socket=" + s.Socket,
		"--pid-file=" + filepath.Join(s.Dir, "mariadbd.pid"),
		"--log-error=" + s.Log,
		"--bind-address=127.0.0.1",
		"--port=" + strconv.Itoa(s.Port),
		"--skip-name-resolve",
		// MariaDB's default of 16 MiB is less than one attestation
		// record of the default 32 MiB envelope limit needs
		// (server/attest refuses to open on such a database).
		"--max-allowed-packet=64M",
	}, s.commonArgs()...)
	cmd := exec.Command(s.bin, args...)
	cmd.Env = s.env()
	cmd.Dir = s.Dir
	db, err := sql.Open("mysql", s.DSN(""))
	if err != nil {
		return err
	}
	defer db.Close()
	// A login waits for the server's greeting.
	return s.proc.Run(cmd, startTimeout, "accept a login on "+s.Addr, db.PingContext)
}

// libDir is the unpacked multiarch library directory (usr/lib/<triplet>),
// which holds the libraries mariadbd needs from the packages.
func libDir(root string) (string, error) {
	dirs, _ := filepath.Glob(filepath.Join(root, "usr/lib/*-linux-gnu*/libnuma.so.1"))
	if len(dirs) == 0 {
		return "", errors.New("MariaDB's unpacked packages hold no usr/lib/<triplet>/libnuma.so.1: remove " + root + " from the tools cache and run again")
	}
	return filepath.Dir(dirs[0]), nil
}
