package toolcache

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// DebianPackages are Debian packages unpacked (not installed) into the
// tools cache: `apt-get download` of exact versions and `dpkg-deb -x`, so
// tests get a C library and its tools without root and without touching
// the system. The packages' own dependencies must already be on the
// machine (for SoftHSM2: libssl3, libsqlite3, libstdc++, which a Debian
// machine with Go and gcc has); a dependency such a machine lacks is
// listed among Packages with its own version.
type DebianPackages struct {
	Name    string // cache directory prefix
	Version string // version of every package below that names none
	// Packages are binary package names, each at Version, or
	// "name=version" for a package of another source (a library the
	// main packages need) at its own version.
	Packages []string
}

// SoftHSM2 is the PKCS#11 token the HSM-backed server's tests use, from
// Debian 12's packages.
var SoftHSM2 = DebianPackages{Name: "softhsm2", Version: "2.6.1-2.1", Packages: []string{"softhsm2", "libsofthsm2", "softhsm2-common"}}

// MariaDB is the MySQL-compatible database internal/mysqltest runs, from
// Debian 12's packages: the server and mariadb-install-db, the client
// tools (install-db runs my_print_defaults from them), and the libraries
// mariadbd links that a machine with Go and gcc lacks. The version is the
// one bookworm's main suite carries, which stays until the next point
// release; mariadb-common (only /etc/mysql/mariadb.cnf) is left out, as
// every mariadbd run here passes --no-defaults.
var MariaDB = DebianPackages{Name: "mariadb", Version: "1:10.11.18-0+deb12u1", Packages: []string{
	"mariadb-server-core", "mariadb-client-core",
	"libnuma1=2.0.16-1", "liburing2=2.3-3", "libaio1=0.3.113-4",
}}

var unpacked sync.Map // key -> *result

// key names the cache directory. A declaration whose packages all share
// Version keeps the plain name-version; one with packages at their own
// versions gets a digest of the whole list, so changing any of them
// unpacks afresh. The epoch ("1:") is dropped: a colon in the directory
// would split LD_LIBRARY_PATH and PATH.
func (p DebianPackages) key() string {
	v := p.Version
	if i := strings.IndexByte(v, ':'); i >= 0 {
		v = v[i+1:]
	}
	key := p.Name + "-" + v
	for _, pkg := range p.Packages {
		if strings.Contains(pkg, "=") {
			specs, _ := p.specs()
			sum := sha256.Sum256([]byte(strings.Join(specs, "\n")))
			return key + "-" + hex.EncodeToString(sum[:4])
		}
	}
	return key
}

// specs are the "name=version" arguments of apt-get download.
func (p DebianPackages) specs() ([]string, error) {
	var specs []string
	for _, pkg := range p.Packages {
		name, version, pinned := strings.Cut(pkg, "=")
		if !pinned {
			version = p.Version
		}
		if name == "" || version == "" {
			return nil, fmt.Errorf("Debian package %q of %s has no version: set Version or write it as name=version", pkg, p.Name)
		}
		specs = append(specs, name+"="+version)
	}
	return specs, nil
}

// Root returns the directory the packages are unpacked into (it holds
// usr/bin, usr/lib, ...), downloading them on first use.
func (p DebianPackages) Root() (string, error) {
	r, _ := unpacked.LoadOrStore(p.key(), &result{})
	res := r.(*result)
	res.once.Do(func() { res.path, res.err = p.unpack() })
	return res.path, res.err
}

func (p DebianPackages) unpack() (string, error) {
	root, err := cacheRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, p.key())
	done := filepath.Join(dir, "root")
	err = underLock(dir, func() bool { _, err := os.Stat(done); return err == nil }, func() error { return p.fill(dir, done) })
	if err != nil {
		return "", err
	}
	return done, nil
}

// fill downloads and unpacks the packages into done, through a scratch
// directory renamed into place.
func (p DebianPackages) fill(dir, done string) error {
	tmp, err := os.MkdirTemp(dir, "unpack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	specs, err := p.specs()
	if err != nil {
		return err
	}
	download := func() ([]byte, error) {
		cmd := exec.Command("apt-get", append([]string{"download", "-q"}, specs...)...)
		cmd.Dir = tmp
		return cmd.CombinedOutput()
	}
	out, err := download()
	if err != nil && os.Geteuid() == 0 {
		// A fresh machine has no package lists yet, and an older one's lists
		// may predate a pinned version; as root, fetch them once.
		if upd, uerr := exec.Command("apt-get", "update", "-q").CombinedOutput(); uerr != nil {
			return fmt.Errorf("apt-get update (before downloading %s): %v\n%s", strings.Join(specs, " "), uerr, upd)
		}
		out, err = download()
	}
	if err != nil {
		return fmt.Errorf("apt-get download %s: %v\n%s"+
			"(as a non-root user, run apt-get update as root first; if a version is still not found, "+
			"Debian has replaced it: pin the one `apt-cache policy <package>` offers in internal/toolcache's %s declaration)",
			strings.Join(specs, " "), err, out, p.Name)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != len(p.Packages) {
		return fmt.Errorf("apt-get download %s gave %d packages, want %d", strings.Join(specs, " "), len(debs), len(p.Packages))
	}
	for _, deb := range debs {
		if out, err := exec.Command("dpkg-deb", "-x", deb, filepath.Join(tmp, "root")).CombinedOutput(); err != nil {
			return fmt.Errorf("dpkg-deb -x %s: %v\n%s", deb, err, out)
		}
	}
	return os.Rename(filepath.Join(tmp, "root"), done)
}
