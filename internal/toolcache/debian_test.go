package toolcache

import (
	"slices"
	"strings"
	"testing"
)

// A package at its own version is downloaded at that version, and changes
// the cache directory; declarations with one version keep their plain
// directory (existing caches stay valid) and the epoch never reaches a
// path, where its colon would split LD_LIBRARY_PATH.
func TestDebianPackageVersions(t *testing.T) {
	specs, err := MariaDB.specs()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"mariadb-server-core=1:10.11.18-0+deb12u1", "mariadb-client-core=1:10.11.18-0+deb12u1",
		"libnuma1=2.0.16-1", "liburing2=2.3-3", "libaio1=0.3.113-4",
	}
	if !slices.Equal(specs, want) {
		t.Errorf("MariaDB specs = %q, want %q", specs, want)
	}
	if got := SoftHSM2.key(); got != "softhsm2-2.6.1-2.1" {
		t.Errorf("SoftHSM2 key = %q, want softhsm2-2.6.1-2.1", got)
	}
	key := MariaDB.key()
	if !strings.HasPrefix(key, "mariadb-10.11.18-0+deb12u1-") || strings.Contains(key, ":") {
		t.Errorf("MariaDB key = %q, want mariadb-10.11.18-0+deb12u1-<digest>, without a colon", key)
	}
	other := MariaDB
	other.Packages = slices.Clone(MariaDB.Packages)
	other.Packages[2] = "libnuma1=2.0.18-1"
	if other.key() == key {
		t.Errorf("changing libnuma1's version keeps the cache directory %s", key)
	}
	bad := DebianPackages{Name: "x", Packages: []string{"a=1", "b"}}
	if _, err := bad.specs(); err == nil || !strings.Contains(err.Error(), `"b" of x has no version`) {
		t.Errorf("a package without a version: err = %v", err)
	}
}
