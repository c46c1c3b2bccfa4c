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

	"github.com/digitorus/timestamp"

	"github.com/signet-dev/signet/server/servertest"
)

// bundleTSA is the common name of the certificate that signed a bundle's
// RFC 3161 timestamp.
func bundleTSA(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		VerificationMaterial struct {
			TimestampVerificationData struct {
				RFC3161Timestamps []struct {
					SignedTimestamp []byte `json:"signedTimestamp"`
				} `json:"rfc3161Timestamps"`
			} `json:"timestampVerificationData"`
		} `json:"verificationMaterial"`
	}
	if err := json.Unmarshal(raw, &b); err != nil || len(b.VerificationMaterial.TimestampVerificationData.RFC3161Timestamps) != 1 {
		t.Fatalf("%s: no timestamp (%v)", path, err)
	}
	ts, err := timestamp.ParseResponse(b.VerificationMaterial.TimestampVerificationData.RFC3161Timestamps[0].SignedTimestamp)
	if err != nil || len(ts.Certificates) == 0 {
		t.Fatalf("%s: timestamp without its signing certificate (%v)", path, err)
	}
	return ts.Certificates[0].Subject.CommonName
}

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

// The CA's issuing key and the TSA's key are rotated under load: a new
// intermediate and a new timestamping certificate from the same offline
// roots (signet ca csr, signet ca issue-intermediate [--tsa]) are
// configured with a start a few seconds ahead, so trusted_root.json lists
// both before the switch. Clients sign throughout; every bundle from
// before the switch is issued and timestamped by the old keys, every one
// after by the new, none fails, and all of them verify offline with
// signet, cosign v3 and sigstore-go. A trusted root fetched before the
// rotation was configured does not trust the new keys.
func TestCAAndTSARotationUnderLoad(t *testing.T) {
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

	tsaKey, tsaCSR, tsaChain := filepath.Join(work, "tsa-2.key"), filepath.Join(work, "tsa-2.csr"), filepath.Join(work, "tsa-2-chain.pem")
	runSignet(t, nil, "ca", "csr", "--key", tsaKey, "--generate", "ecdsa-p256", "--common-name", "signet timestamping 2", "--out", tsaCSR).want(t, 0)
	runSignet(t, nil, "ca", "issue-intermediate", "--tsa", "--issuer-key", filepath.Join(data, "keys", "tsa-root.key"),
		"--issuer-chain", filepath.Join(data, "keys", "tsa-root.pem"), "--csr", tsaCSR, "--out", tsaChain).want(t, 0)

	from := time.Now().Add(12 * time.Second).UTC().Truncate(time.Second)
	cfg := filepath.Join(work, "rotate.yaml")
	yml := fmt.Sprintf("keys:\n  caRotations:\n    - key: %s\n      chain: %s\n      from: %s\n  tsaRotations:\n    - key: %s\n      chain: %s\n      from: %s\n",
		newKey, chain, from.Format(time.RFC3339), tsaKey, tsaChain, from.Format(time.RFC3339))
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newCLIEnvIn(t, data, "acme/rotate", "--addr", addr, "--config", cfg)
	type authorities []struct {
		ValidFor struct{ Start, End string } `json:"validFor"`
	}
	var tr struct {
		CAs  authorities `json:"certificateAuthorities"`
		TSAs authorities `json:"timestampAuthorities"`
	}
	raw, err := os.ReadFile(e.root)
	if err != nil || json.Unmarshal(raw, &tr) != nil {
		t.Fatal(err)
	}
	for what, a := range map[string]authorities{"CAs": tr.CAs, "TSAs": tr.TSAs} {
		if len(a) != 2 || a[0].ValidFor.End != from.Format(time.RFC3339) || a[1].ValidFor.Start != from.Format(time.RFC3339) {
			t.Fatalf("trusted_root.json's %s around the rotation at %s: %+v", what, from, a)
		}
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
		iss, stamp := bundleIssuer(t, b.path), bundleTSA(t, b.path)
		switch {
		case b.at.Add(2*time.Second).Before(from) && (iss != "signet intermediate CA" || stamp != "signet timestamping"):
			t.Errorf("%s (signed %s, before the rotation) issued by %q, timestamped by %q", b.path, b.at, iss, stamp)
		case b.at.After(from) && (iss != "signet intermediate CA 2" || stamp != "signet timestamping 2"):
			t.Errorf("%s (signed %s, after the rotation) issued by %q, timestamped by %q", b.path, b.at, iss, stamp)
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
	// The TSA serves the new key's chain now.
	if cc, err := e.p.Get("/api/v1/timestamp/certchain"); err != nil || !strings.Contains(string(cc), strings.Split(string(mustRead(t, tsaChain)), "-----END CERTIFICATE-----")[0]) {
		t.Errorf("/api/v1/timestamp/certchain after the rotation is not the new chain (%v)", err)
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

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
