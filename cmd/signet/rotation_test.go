package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-dev/signet/server/servertest"
)

// bundleIssuer is the subject of the CA certificate that issued a bundle's
// signing certificate (the chain's issuer of the leaf).
func bundleIssuer(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		VerificationMaterial struct {
			Certificate struct {
				RawBytes []byte `json:"rawBytes"`
			} `json:"certificate"`
		} `json:"verificationMaterial"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(b.VerificationMaterial.Certificate.RawBytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c.Issuer.CommonName
}

// The CA's issuing key is rotated under load: a new intermediate from the
// same offline root (signet ca csr, signet ca issue-intermediate) is
// configured with a start a few seconds ahead, so trusted_root.json lists
// both before the switch. Clients sign throughout; every bundle from
// before the switch is issued by the old intermediate, every one after by
// the new, none fails, and all of them verify offline with signet, cosign
// v3 and sigstore-go. A trusted root fetched before the rotation was
// configured does not trust the new key.
func TestCARotationUnderLoad(t *testing.T) {
	cosignBinary(t)
	data := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	first := servertest.Start(t, data, "--dev-oidc", "--addr", addr)
	old := filepath.Join(t.TempDir(), "old-trust")
	runSignet(t, nil, "trust", "--server", first.URL, "--out", old).want(t, 0)
	first.Kill()

	work := t.TempDir()
	newKey, csr, chain := filepath.Join(work, "ca-2.key"), filepath.Join(work, "ca-2.csr"), filepath.Join(work, "ca-2-chain.pem")
	runSignet(t, nil, "ca", "csr", "--key", newKey, "--generate", "ecdsa-p256", "--common-name", "signet intermediate CA 2", "--out", csr).want(t, 0)
	runSignet(t, nil, "ca", "issue-intermediate", "--issuer-key", filepath.Join(data, "keys", "ca-root.key"),
		"--issuer-chain", filepath.Join(data, "keys", "ca-root.pem"), "--csr", csr, "--out", chain).want(t, 0)
	if r := runSignet(t, nil, "ca", "issue-intermediate", "--issuer-key", filepath.Join(data, "keys", "ca-root.key"),
		"--issuer-chain", filepath.Join(data, "keys", "ca-root.pem"), "--csr", csr, "--out", chain).want(t, 1); !strings.Contains(r.stderr, "exists") {
		t.Errorf("issuing over an existing chain file: %s", r.stderr)
	}

	from := time.Now().Add(12 * time.Second).UTC().Truncate(time.Second)
	cfg := filepath.Join(work, "rotate.yaml")
	yml := fmt.Sprintf("keys:\n  caRotations:\n    - key: %s\n      chain: %s\n      from: %s\n", newKey, chain, from.Format(time.RFC3339))
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newCLIEnvIn(t, data, "acme/rotate", "--addr", addr, "--config", cfg)
	var tr struct {
		CertificateAuthorities []struct {
			ValidFor struct{ Start, End string } `json:"validFor"`
		} `json:"certificateAuthorities"`
	}
	if raw, err := os.ReadFile(e.root); err != nil || json.Unmarshal(raw, &tr) != nil || len(tr.CertificateAuthorities) != 2 ||
		tr.CertificateAuthorities[0].ValidFor.End != from.Format(time.RFC3339) || tr.CertificateAuthorities[1].ValidFor.Start != from.Format(time.RFC3339) {
		t.Fatalf("trusted_root.json's CAs around the rotation at %s: %+v (%v)", from, tr, err)
	}

	art := e.file(t, "app.tar.gz", "rotated\n")
	type signed struct {
		path string
		at   time.Time
	}
	var (
		mu      sync.Mutex
		bundles []signed
		fails   []string
		wg      sync.WaitGroup
	)
	stop := from.Add(6 * time.Second)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				p := filepath.Join(e.dir, fmt.Sprintf("b-%d-%d.sigstore.json", w, i))
				start := time.Now()
				cmd := exec.Command(servertest.Binary(t), "sign-blob", art, "--bundle", p, "--identity-token", e.token)
				cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.dir}, e.serverEnv...)
				out, err := cmd.CombinedOutput()
				mu.Lock()
				if err != nil {
					fails = append(fails, fmt.Sprintf("%v: %s", err, out))
				} else {
					bundles = append(bundles, signed{p, start})
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(fails) > 0 {
		t.Fatalf("%d signatures failed during the rotation, first: %s", len(fails), fails[0])
	}
	var before, after []string
	for _, b := range bundles {
		iss := bundleIssuer(t, b.path)
		switch {
		case b.at.Add(2*time.Second).Before(from) && iss != "signet intermediate CA":
			t.Errorf("%s (signed %s, before the rotation) issued by %q", b.path, b.at, iss)
		case b.at.After(from) && iss != "signet intermediate CA 2":
			t.Errorf("%s (signed %s, after the rotation) issued by %q", b.path, b.at, iss)
		}
		switch iss {
		case "signet intermediate CA":
			before = append(before, b.path)
		case "signet intermediate CA 2":
			after = append(after, b.path)
		}
	}
	if len(before) == 0 || len(after) == 0 {
		t.Fatalf("bundles: %d from the old key, %d from the new; the load did not straddle the rotation", len(before), len(after))
	}
	artifact, _ := os.ReadFile(art)
	for _, b := range []string{before[0], before[len(before)-1], after[0], after[len(after)-1]} {
		runSignet(t, nil, append([]string{"verify-blob", art, "--bundle", b}, e.policy()...)...).want(t, 0)
		mustCosign(t, append([]string{"verify-blob", "--bundle", b, art}, e.cosignVerifyFlags()...)...)
		if err := e.sigstoreGoVerify(t, b, artifact); err != nil {
			t.Errorf("sigstore-go: %s: %v", b, err)
		}
	}
	// The trust root from before the rotation was configured knows only the old key.
	oldRoot := filepath.Join(old, trustedRootFile)
	runSignet(t, nil, "verify-blob", art, "--bundle", before[0], "--trusted-root", oldRoot, "--certificate-identity", e.identity, "--certificate-oidc-issuer", e.issuer).want(t, 0)
	if r := runSignet(t, nil, "verify-blob", art, "--bundle", after[0], "--trusted-root", oldRoot, "--certificate-identity", e.identity, "--certificate-oidc-issuer", e.issuer).want(t, 1); !strings.Contains(r.stdout+r.stderr, "certificate") {
		t.Errorf("a new-key bundle against the old trust root: %s %s", r.stdout, r.stderr)
	}
	// The CA's trust bundle (Fulcio's /api/v2/trustBundle) lists both chains.
	tb, err := e.p.Get("/api/v2/trustBundle")
	if err != nil {
		t.Fatal(err)
	}
	newPEM, _ := os.ReadFile(chain)
	blk, _ := pem.Decode(newPEM)
	if !bytes.Contains(tb, []byte(strings.ReplaceAll(string(pem.EncodeToMemory(blk)), "\n", `\n`))) {
		t.Errorf("the trust bundle does not list the new chain:\n%s", tb)
	}
	t.Logf("%d bundles from the old key, %d from the new", len(before), len(after))
}
