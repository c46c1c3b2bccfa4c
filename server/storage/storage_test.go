package storage

import (
	"crypto/ed25519"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeysGeneratedOnceAndKept(t *testing.T) {
	root := t.TempDir()
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	k1, err := d.Keys(KeyFiles{}, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	d2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	k2, err := d2.Keys(KeyFiles{}, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if !k1.CAChain[0].Equal(k2.CAChain[0]) || !k1.TSAChain[0].Equal(k2.TSAChain[0]) || !k1.Log.Public().(ed25519.PublicKey).Equal(k2.Log.Public()) {
		t.Fatal("keys changed across restarts")
	}
	if !k1.LogCreated.Equal(k2.LogCreated) {
		t.Fatalf("log key date changed: %v vs %v", k1.LogCreated, k2.LogCreated)
	}

	// The issuing CA chains to the root and may only sign leaves.
	inter, rootCert := k1.CAChain[0], k1.CAChain[1]
	if err := inter.CheckSignatureFrom(rootCert); err != nil {
		t.Fatal(err)
	}
	if !inter.IsCA || !inter.MaxPathLenZero || inter.Subject.Organization[0] != "acme" {
		t.Fatalf("intermediate: IsCA=%v MaxPathLenZero=%v org=%v", inter.IsCA, inter.MaxPathLenZero, inter.Subject.Organization)
	}
	// RFC 3161 requires a critical timeStamping-only EKU on the TSA certificate.
	leaf := k1.TSAChain[0]
	var critical bool
	for _, e := range leaf.Extensions {
		if e.Id.Equal([]int{2, 5, 29, 37}) {
			critical = e.Critical
		}
	}
	if !critical || len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageTimeStamping {
		t.Fatalf("TSA EKU critical=%v usages=%v", critical, leaf.ExtKeyUsage)
	}
	// Private keys are not world-readable.
	fi, err := os.Stat(filepath.Join(root, "keys", caInterKey))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", fi.Mode().Perm())
	}
}

func TestSecondServerOnSameDirectoryIsRefused(t *testing.T) {
	root := t.TempDir()
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = Open(root)
	if err == nil || !strings.Contains(err.Error(), "in use by another signet server") {
		t.Fatalf("want in-use error, got %v", err)
	}
}

func TestSuppliedKeysAreChecked(t *testing.T) {
	// A generated set provides real files to supply back, mismatched on purpose.
	src := t.TempDir()
	d, err := Open(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Keys(KeyFiles{}, ""); err != nil {
		t.Fatal(err)
	}
	d.Close()
	keys := filepath.Join(src, "keys")

	d2, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()

	cases := []struct {
		name string
		kf   KeyFiles
		want string
	}{
		{"half pair", KeyFiles{CAKey: filepath.Join(keys, caInterKey)}, "must be given together"},
		{"key does not match chain", KeyFiles{CAKey: filepath.Join(keys, caRootKey), CAChain: filepath.Join(keys, caInterCert)}, "does not hold the private key"},
		{"log key not ed25519", KeyFiles{LogKey: filepath.Join(keys, caRootKey)}, "must be Ed25519"},
		{"missing file", KeyFiles{LogKey: filepath.Join(keys, "nope.key")}, "no such file"},
		{"cert as key", KeyFiles{TSAKey: filepath.Join(keys, tsaLeafCert), TSAChain: filepath.Join(keys, tsaLeafCert)}, "is not a private key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d2.Keys(tc.kf, "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v", tc.want, err)
			}
		})
	}

	t.Run("chain without root", func(t *testing.T) {
		_, err := d2.Keys(KeyFiles{CAKey: filepath.Join(keys, caInterKey), CAChain: filepath.Join(keys, caInterCert)}, "")
		if err == nil || !strings.Contains(err.Error(), "not a self-signed root") {
			t.Fatalf("want missing-root error, got %v", err)
		}
	})

	tsaLeaf, _ := os.ReadFile(filepath.Join(keys, tsaLeafCert))
	tsaRoot, _ := os.ReadFile(filepath.Join(keys, tsaRootCert))
	tsaChainFile := filepath.Join(t.TempDir(), "tsa-chain.pem")
	if err := os.WriteFile(tsaChainFile, append(tsaLeaf, tsaRoot...), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("leaf as CA", func(t *testing.T) {
		_, err := d2.Keys(KeyFiles{CAKey: filepath.Join(keys, tsaLeafKey), CAChain: tsaChainFile}, "")
		if err == nil || !strings.Contains(err.Error(), "not a CA certificate") {
			t.Fatalf("want not-a-CA error, got %v", err)
		}
	})

	// A correct supplied set is used instead of the generated one.
	inter, _ := os.ReadFile(filepath.Join(keys, caInterCert))
	rootPEM, _ := os.ReadFile(filepath.Join(keys, caRootCert))
	chainFile := filepath.Join(t.TempDir(), "chain.pem")
	if err := os.WriteFile(chainFile, append(inter, rootPEM...), 0o644); err != nil {
		t.Fatal(err)
	}
	k, err := d2.Keys(KeyFiles{CAKey: filepath.Join(keys, caInterKey), CAChain: chainFile}, "")
	if err != nil {
		t.Fatal(err)
	}
	want, err := LoadCertificates(filepath.Join(keys, caInterCert))
	if err != nil {
		t.Fatal(err)
	}
	if !k.CAChain[0].Equal(want[0]) {
		t.Fatal("supplied CA chain not used")
	}
}
