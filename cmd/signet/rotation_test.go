package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/digitorus/timestamp"

	"github.com/signet-dev/signet/server/servertest"
)

// signedBy names the keys behind a bundle: the common name of the CA
// certificate that issued its signing certificate, of the certificate that
// signed its RFC 3161 timestamp, and the origin of its log entry's
// checkpoint (the log shard).
type signedBy struct{ issuer, tsa, log string }

func bundleKeys(t *testing.T, path string) signedBy {
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
			TlogEntries []struct {
				InclusionProof struct {
					Checkpoint struct {
						Envelope string `json:"envelope"`
					} `json:"checkpoint"`
				} `json:"inclusionProof"`
			} `json:"tlogEntries"`
			TimestampVerificationData struct {
				RFC3161Timestamps []struct {
					SignedTimestamp []byte `json:"signedTimestamp"`
				} `json:"rfc3161Timestamps"`
			} `json:"timestampVerificationData"`
		} `json:"verificationMaterial"`
	}
	vm := &b.VerificationMaterial
	if err := json.Unmarshal(raw, &b); err != nil || len(vm.TimestampVerificationData.RFC3161Timestamps) != 1 || len(vm.TlogEntries) != 1 {
		t.Fatalf("%s: want one timestamp and one log entry (%v)", path, err)
	}
	ts, err := timestamp.ParseResponse(vm.TimestampVerificationData.RFC3161Timestamps[0].SignedTimestamp)
	if err != nil || len(ts.Certificates) == 0 {
		t.Fatalf("%s: timestamp without its signing certificate (%v)", path, err)
	}
	c, err := x509.ParseCertificate(vm.Certificate.RawBytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	origin, _, _ := strings.Cut(vm.TlogEntries[0].InclusionProof.Checkpoint.Envelope, "\n")
	return signedBy{issuer: c.Issuer.CommonName, tsa: ts.Certificates[0].Subject.CommonName, log: origin}
}

// checkpointSize is the size of the checkpoint the log at base serves.
func checkpointSize(t *testing.T, base string) (origin string, size uint64) {
	t.Helper()
	resp, err := http.Get(base + "/api/v2/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	lines := strings.Split(string(body), "\n")
	if resp.StatusCode != http.StatusOK || len(lines) < 3 {
		t.Fatalf("GET %s/api/v2/checkpoint: %s %s", base, resp.Status, body)
	}
	if size, err = strconv.ParseUint(lines[1], 10, 64); err != nil {
		t.Fatalf("checkpoint of %s: %s", base, body)
	}
	return lines[0], size
}

// The CA's issuing key, the TSA's key and the log's key are rotated under
// load: a new intermediate and a new timestamping certificate from the
// same offline roots (signet ca csr, signet ca issue-intermediate [--tsa])
// and a new log shard with its own key and origin (signet server keygen)
// are configured with a start a few seconds ahead, so trusted_root.json
// lists both before the switch. Clients sign throughout; every bundle from
// before the switch is issued, timestamped and logged by the old keys,
// every one after by the new, none fails, and all of them verify offline
// with signet, cosign v3 and sigstore-go. The old shard is frozen and
// still served; a restart keeps both, and a configuration that drops the
// shard is refused. A trusted root fetched before the rotation was
// configured does not trust the new keys.
func TestKeyRotationUnderLoad(t *testing.T) {
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

	// The new shard's origin is another host name of this machine: Sigstore
	// clients take a log's origin from the host of its URL.
	logKey := filepath.Join(work, "log-2.key")
	runSignet(t, nil, "server", "keygen", "--key", logKey, "--algorithm", "ed25519").want(t, 0)
	_, port, _ := net.SplitHostPort(addr)
	oldLog, newLog := "http://"+addr, "http://localhost:"+port

	from := time.Now().Add(12 * time.Second).UTC().Truncate(time.Second)
	cfg := filepath.Join(work, "rotate.yaml")
	yml := fmt.Sprintf("keys:\n  caRotations:\n    - key: %s\n      chain: %s\n      from: %s\n  tsaRotations:\n    - key: %s\n      chain: %s\n      from: %s\n  logRotations:\n    - key: %s\n      origin: localhost\n      from: %s\n",
		newKey, chain, from.Format(time.RFC3339), tsaKey, tsaChain, from.Format(time.RFC3339), logKey, from.Format(time.RFC3339))
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newCLIEnvIn(t, data, "acme/rotate", "--addr", addr, "--config", cfg)
	type period struct{ Start, End string }
	type authorities []struct {
		ValidFor period `json:"validFor"`
	}
	var tr struct {
		CAs   authorities `json:"certificateAuthorities"`
		TSAs  authorities `json:"timestampAuthorities"`
		Tlogs []struct {
			BaseURL   string `json:"baseUrl"`
			PublicKey struct {
				ValidFor period `json:"validFor"`
			} `json:"publicKey"`
		} `json:"tlogs"`
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
	if len(tr.Tlogs) != 2 || tr.Tlogs[0].BaseURL != oldLog || tr.Tlogs[0].PublicKey.ValidFor.End != from.Format(time.RFC3339) ||
		tr.Tlogs[1].BaseURL != newLog || tr.Tlogs[1].PublicKey.ValidFor.Start != from.Format(time.RFC3339) || tr.Tlogs[1].PublicKey.ValidFor.End != "" {
		t.Fatalf("trusted_root.json's tlogs around the rotation at %s: %+v", from, tr.Tlogs)
	}
	var sc struct {
		RekorTlogUrls []struct {
			URL      string `json:"url"`
			ValidFor period `json:"validFor"`
		} `json:"rekorTlogUrls"`
	}
	if err := json.Unmarshal(mustRead(t, filepath.Join(filepath.Dir(e.root), signingConfigFile)), &sc); err != nil {
		t.Fatal(err)
	}
	if len(sc.RekorTlogUrls) != 2 || sc.RekorTlogUrls[0].URL != oldLog || sc.RekorTlogUrls[0].ValidFor.End != from.Format(time.RFC3339) ||
		sc.RekorTlogUrls[1].URL != newLog || sc.RekorTlogUrls[1].ValidFor.Start != from.Format(time.RFC3339) {
		t.Fatalf("signing_config.json's rekorTlogUrls around the rotation: %+v", sc.RekorTlogUrls)
	}
	if origin, size := checkpointSize(t, newLog); origin != "localhost" || size != 0 {
		t.Fatalf("the new shard before its start serves a checkpoint of %s at size %d, want localhost at 0", origin, size)
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
	oldKeys := signedBy{"signet intermediate CA", "signet timestamping", "127.0.0.1"}
	newKeys := signedBy{"signet intermediate CA 2", "signet timestamping 2", "localhost"}
	for _, b := range bundles {
		switch by := bundleKeys(t, b.path); {
		case b.at.Add(2*time.Second).Before(from) && by != oldKeys:
			t.Errorf("%s (signed %s, before the rotation) by %+v, want %+v", b.path, b.at, by, oldKeys)
		case b.at.After(from) && by != newKeys:
			t.Errorf("%s (signed %s, after the rotation) by %+v, want %+v", b.path, b.at, by, newKeys)
		case by == oldKeys:
			before = append(before, b.path)
		case by == newKeys:
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

	// The old shard is frozen: what is signed now goes to the new one,
	// whichever log URL the client was given.
	_, frozen := checkpointSize(t, oldLog)
	_, grown := checkpointSize(t, newLog)
	last := filepath.Join(e.dir, "last.sigstore.json")
	runSignet(t, e.serverEnv, "sign-blob", art, "--bundle", last, "--identity-token", e.token).want(t, 0)
	if by := bundleKeys(t, last); by != newKeys {
		t.Errorf("signed after the rotation by %+v", by)
	}
	time.Sleep(500 * time.Millisecond) // a checkpoint interval or more
	if origin, size := checkpointSize(t, oldLog); origin != "127.0.0.1" || size != frozen {
		t.Errorf("the old shard serves %s at size %d after the rotation, want 127.0.0.1 frozen at %d", origin, size, frozen)
	}
	if _, size := checkpointSize(t, newLog); size <= grown {
		t.Errorf("the new shard did not grow past %d: %d", grown, size)
	}

	// A restart keeps both shards; one that drops the new shard is refused.
	e.p.Kill()
	again := servertest.Start(t, data, "--dev-oidc", "--addr", addr, "--config", cfg)
	if _, size := checkpointSize(t, oldLog); size != frozen {
		t.Errorf("after a restart the old shard is at %d, want %d", size, frozen)
	}
	runSignet(t, nil, append([]string{"verify-blob", art, "--bundle", last}, e.policy()...)...).want(t, 0)
	again.Kill()
	dropped := filepath.Join(work, "dropped.yaml")
	if err := os.WriteFile(dropped, []byte(strings.Split(yml, "  logRotations:")[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := servertest.StartErr(servertest.Binary(t), data, "--dev-oidc", "--addr", addr, "--config", dropped); err == nil {
		p.Kill()
		t.Fatal("the server started with a configuration that drops a log shard")
	} else if !strings.Contains(err.Error(), "holds the log shard localhost, which keys.logRotations no longer names") {
		t.Errorf("dropping a shard: %v", err)
	}
	t.Logf("%d bundles from the old keys, %d from the new", len(before), len(after))
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
