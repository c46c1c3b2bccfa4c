package toolcache

import (
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
// machine with Go and gcc has).
type DebianPackages struct {
	Name     string   // cache directory prefix
	Version  string   // version of every package below
	Packages []string // binary package names
}

// SoftHSM2 is the PKCS#11 token the HSM-backed server's tests use, from
// Debian 12's packages.
var SoftHSM2 = DebianPackages{Name: "softhsm2", Version: "2.6.1-2.1", Packages: []string{"softhsm2", "libsofthsm2", "softhsm2-common"}}

var unpacked sync.Map // key -> *result

func (p DebianPackages) key() string { return p.Name + "-" + p.Version }

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
	var specs []string
	for _, name := range p.Packages {
		specs = append(specs, name+"="+p.Version)
	}
	download := func() ([]byte, error) {
		cmd := exec.Command("apt-get", append([]string{"download", "-q"}, specs...)...)
		cmd.Dir = tmp
		return cmd.CombinedOutput()
	}
	out, err := download()
	if err != nil && os.Geteuid() == 0 {
		// A fresh machine has no package lists yet; as root, fetch them once.
		if upd, uerr := exec.Command("apt-get", "update", "-q").CombinedOutput(); uerr != nil {
			return fmt.Errorf("apt-get update (before downloading %s): %v\n%s", strings.Join(specs, " "), uerr, upd)
		}
		out, err = download()
	}
	if err != nil {
		return fmt.Errorf("apt-get download %s: %v\n%s(as a non-root user, run apt-get update as root first)", strings.Join(specs, " "), err, out)
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
