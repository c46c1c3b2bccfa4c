package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	f_log "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/signet-dev/signet/server"
	"github.com/signet-dev/signet/server/loadgen"
	"github.com/signet-dev/signet/server/servertest"
)

// fetchCheckpoint gets and verifies a log's checkpoint.
func fetchCheckpoint(t *testing.T, base, vkey string) (*f_log.Checkpoint, []byte) {
	t.Helper()
	resp, err := http.Get(base + "/api/v2/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET checkpoint: %d %s (%v)", resp.StatusCode, raw, err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(raw, note.VerifierList(v))
	if err != nil {
		t.Fatalf("the checkpoint of %s does not verify with %s: %v\n%s", base, vkey, err, raw)
	}
	var cp f_log.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		t.Fatal(err)
	}
	return &cp, raw
}

// logVerifierKey is the log's note verifier key, as `signet log
// checkpoint` reports it.
func logVerifierKey(t *testing.T, base string) string {
	t.Helper()
	var out checkpointJSON
	runSignet(t, nil, "log", "checkpoint", "--server", base, "-o", "json").want(t, 0).decode(t, &out)
	if out.VerifierKey == "" {
		t.Fatal("signet log checkpoint printed no verifierKey")
	}
	return out.VerifierKey
}

// readManifest is a backup archive's manifest (its last member).
func readManifest(t *testing.T, path string) *server.BackupManifest {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var last []byte
	var name string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name = h.Name
		if last, err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
	if name != server.BackupManifestName {
		t.Fatalf("the archive's last member is %s, not the manifest", name)
	}
	var m server.BackupManifest
	if err := json.Unmarshal(last, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// rewriteMember copies a backup archive, changing the content of the
// first member whose name has the prefix (same size, so only its hash
// tells, or with fixManifest, not even that), and returns that member's
// name.
func rewriteMember(t *testing.T, from, to, prefix string, fixManifest bool) string {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var out bytes.Buffer
	tr, tw := tar.NewReader(in), tar.NewWriter(&out)
	changed := ""
	sums := map[string][32]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if changed == "" && strings.HasPrefix(h.Name, prefix) && len(data) > 0 {
			data[len(data)/2] ^= 0x01
			changed = h.Name
			sums[h.Name] = sha256.Sum256(data)
		}
		if h.Name == server.BackupManifestName && fixManifest {
			var m server.BackupManifest
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			for i, f := range m.Files {
				if sum, ok := sums[f.Name]; ok {
					m.Files[i].SHA256 = hex.EncodeToString(sum[:])
				}
			}
			if data, err = json.Marshal(&m); err != nil {
				t.Fatal(err)
			}
			h.Size = int64(len(data))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if changed == "" {
		t.Fatalf("no member %s* in the backup", prefix)
	}
	if err := os.WriteFile(to, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return changed
}

// noRestoreLeftovers fails if a restore left its scratch directory beside
// target.
func noRestoreLeftovers(t *testing.T, target string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(target))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".restore-") {
			t.Errorf("a failed restore left %s beside %s", e.Name(), target)
		}
	}
}

// A backup taken through the admin listener while clients keep signing
// restores into a new directory, and the server started there is the same
// log: same origin and key, the same root at the backup's size, the
// bundles made before the backup verify against its trust, new writes
// succeed, and its next checkpoint is consistent with the last one in the
// backup. Entries acknowledged after the backup are not in it, and a
// restore given a checkpoint that shows them refuses (a fork). Damaged,
// truncated and misdirected restores refuse and leave nothing behind.
func TestBackupRestoreWhileServing(t *testing.T) {
	addr, adminAddr := servertest.FreeAddr(t), servertest.FreeAddr(t)
	e := newCLIEnvIn(t, t.TempDir(), "acme/backup", "--addr", addr, "--admin-addr", adminAddr)
	admin := "http://" + adminAddr
	vkey := logVerifierKey(t, e.p.URL)
	art := e.file(t, "app.tar.gz", "backed up\n")

	var before []string // bundles made before the backup started
	for i := range 2 {
		p := filepath.Join(e.dir, fmt.Sprintf("pre-%d.sigstore.json", i))
		runSignet(t, e.serverEnv, "sign-blob", art, "--bundle", p, "--identity-token", e.token).want(t, 0)
		before = append(before, p)
	}
	pred := e.file(t, "result.json", `{"passed":true}`)
	attested := filepath.Join(e.dir, "attested.sigstore.json")
	runSignet(t, e.serverEnv, "attest-blob", art, "--predicate", pred, "--type", "https://example.com/test-result/v1", "--bundle", attested, "--identity-token", e.token).want(t, 0)

	// Two clients sign throughout the backup.
	type signed struct {
		path     string
		finished time.Time
	}
	var (
		mu      sync.Mutex
		load    []signed
		fails   []string
		wg      sync.WaitGroup
		stopped = make(chan struct{})
	)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stopped:
					return
				default:
				}
				p := filepath.Join(e.dir, fmt.Sprintf("load-%d-%d.sigstore.json", w, i))
				cmd := exec.Command(servertest.Binary(t), "sign-blob", art, "--bundle", p, "--identity-token", e.token)
				cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.dir}, e.serverEnv...)
				out, err := cmd.CombinedOutput()
				mu.Lock()
				if err != nil {
					fails = append(fails, fmt.Sprintf("%v: %s", err, out))
				} else {
					load = append(load, signed{p, time.Now()})
				}
				mu.Unlock()
			}
		}()
	}
	loaded := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(load)
	}
	waitLoad := func(n int) {
		deadline := time.Now().Add(2 * time.Minute)
		for loaded() < n {
			if time.Now().After(deadline) {
				t.Fatalf("the clients signed %d blobs in 2 minutes, want %d (failures: %v)", loaded(), n, fails)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitLoad(3)
	// And four clients append log entries as fast as the log takes them,
	// so the tree grows past full tiles while the backup copies it.
	wl, err := loadgen.Log(context.Background(), e.p.URL, e.p.RequestToken, 20000, nil)
	if err != nil {
		t.Fatal(err)
	}
	var appended atomic.Int64
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stopped:
					return
				default:
				}
				req := wl.Next(c, i)
				resp, err := http.Post(e.p.URL+req.Path, req.ContentType, bytes.NewReader(req.Body))
				if err == nil {
					var body []byte
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil {
						err = wl.Check(resp.StatusCode, body)
					}
				}
				if err != nil {
					mu.Lock()
					fails = append(fails, "log entry: "+err.Error())
					mu.Unlock()
					continue
				}
				appended.Add(1)
			}
		}()
	}
	// The backup starts once the tree has a full tile, so it copies full
	// and partial tiles while both grow.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if cp, _ := fetchCheckpoint(t, e.p.URL, vkey); cp.Size > 300 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the log did not reach 300 entries within a minute of load")
		}
	}

	_, early := fetchCheckpoint(t, e.p.URL, vkey) // smaller than the backup's tree
	backupStart := time.Now()
	outDir := t.TempDir()
	var res backupResult
	r := runSignet(t, nil, "server", "backup", "--admin", admin, "--out", outDir, "--include-keys", "-o", "json").want(t, 0)
	r.decode(t, &res)
	if !strings.Contains(r.stderr, "WARNING: this backup holds the server's private keys") {
		t.Errorf("a backup with --include-keys does not warn that it holds the keys; stderr:\n%s", r.stderr)
	}
	// Without --include-keys: no secret in it, and the CLI says so.
	keyless := filepath.Join(outDir, "keyless.tar")
	r = runSignet(t, nil, "server", "backup", "--admin", admin, "--out", keyless).want(t, 0)
	if !strings.Contains(r.stdout, "backup written and checked: "+keyless) || !strings.Contains(r.stdout, "This backup holds no private keys") || strings.Contains(r.stderr, "WARNING") {
		t.Errorf("a backup without keys printed:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	if r := runSignet(t, nil, "server", "backup", "--admin", admin, "--out", keyless).want(t, 1); !strings.Contains(r.stderr, "exists") {
		t.Errorf("a backup over an existing file: %s", r.stderr)
	}
	if r := runSignet(t, nil, "server", "backup", "--admin", e.p.URL, "--out", filepath.Join(outDir, "public.tar")).want(t, 1); !strings.Contains(r.stderr, "not the admin listener") {
		t.Errorf("a backup asked of the public listener: %s", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(outDir, "public.tar.partial")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed backup left its partial file")
	}
	runSignet(t, nil, "server", "backup", "--admin", "ftp://"+adminAddr, "--out", filepath.Join(outDir, "x.tar")).want(t, 2)
	if resp, err := http.Get(admin + "/backup?keys=yes"); err != nil {
		t.Fatal(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "keys=include") {
			t.Errorf("GET /backup?keys=yes: %d %s", resp.StatusCode, body)
		}
	}
	afterBackup, appendedAtBackup := loaded(), appended.Load()
	waitLoad(afterBackup + 3) // writes go on after the backup
	close(stopped)
	wg.Wait()
	if len(fails) > 0 {
		t.Fatalf("%d signatures failed while the backup was taken, first: %s", len(fails), fails[0])
	}
	if appended.Load() <= appendedAtBackup {
		t.Fatalf("no log entry was appended after the backup (%d before it)", appendedAtBackup)
	}
	last, lastRaw := fetchCheckpoint(t, e.p.URL, vkey)
	if err := e.p.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}

	m := readManifest(t, res.File)
	if len(m.Logs) != 2 || m.Logs[0].StaticCT || !m.Logs[1].StaticCT || !m.Keys || m.Attestations < 1 {
		t.Fatalf("manifest: want the log, the CT log, the keys and the attestation: %+v", m)
	}
	tl := m.Logs[0]
	if len(res.Logs) != 2 || res.Logs[0].Size != tl.Size {
		t.Fatalf("backup's JSON %+v does not match its manifest %+v", res, m.Logs)
	}
	if tl.Size < uint64(len(before))+1 || last.Size <= tl.Size {
		t.Fatalf("backup at size %d, last checkpoint seen %d: want entries both before and after the backup", tl.Size, last.Size)
	}
	var head f_log.Checkpoint
	if _, err := head.Unmarshal([]byte(strings.SplitN(tl.Checkpoint, "\n\n", 2)[0] + "\n")); err != nil || head.Size > tl.Size || head.Origin != last.Origin {
		t.Fatalf("the backup's last signed checkpoint %q (%v) is not a checkpoint of %s within its tree of %d", tl.Checkpoint, err, last.Origin, tl.Size)
	}
	t.Logf("backup: log at %d entries (last signed %d), CT log at %d, %d attestations, %d files; last checkpoint seen before stopping: %d", tl.Size, head.Size, m.Logs[1].Size, m.Attestations, len(m.Files), last.Size)

	// Refusals: each leaves its target as it was and nothing beside it.
	scratch := t.TempDir()
	occupied := filepath.Join(scratch, "occupied")
	if err := os.MkdirAll(occupied, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(occupied, "keep"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runSignet(t, nil, "server", "restore", "--from", res.File, "--data", occupied).want(t, 1)
	if !strings.Contains(r.stderr, "is not empty") || !strings.Contains(r.stderr, "new or empty directory") {
		t.Errorf("restore into a non-empty directory: %s", r.stderr)
	}
	if entries, _ := os.ReadDir(occupied); len(entries) != 1 || string(mustRead(t, filepath.Join(occupied, "keep"))) != "mine" {
		t.Errorf("a refused restore changed the non-empty target: %v", entries)
	}
	noRestoreLeftovers(t, occupied)

	full := mustRead(t, res.File)
	truncated := filepath.Join(scratch, "truncated.tar")
	if err := os.WriteFile(truncated, full[:len(full)*2/3], 0o600); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(scratch, "from-truncated")
	r = runSignet(t, nil, "server", "restore", "--from", truncated, "--data", target).want(t, 1)
	if !strings.Contains(r.stderr, "the backup is not whole, nothing was restored") || !strings.Contains(r.stderr, "truncated") {
		t.Errorf("restore of a truncated backup: %s", r.stderr)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused restore created %s", target)
	}
	noRestoreLeftovers(t, target)

	// Cut exactly before the manifest: every file is whole, the archive is not.
	cut := filepath.Join(scratch, "cut.tar")
	cutAt := bytes.LastIndex(full, []byte(server.BackupManifestName))
	if err := os.WriteFile(cut, full[:cutAt-cutAt%512], 0o600); err != nil {
		t.Fatal(err)
	}
	r = runSignet(t, nil, "server", "restore", "--from", cut, "--data", target).want(t, 1)
	if !strings.Contains(r.stderr, "nothing was restored") {
		t.Errorf("restore of a backup cut before its manifest: %s", r.stderr)
	}
	noRestoreLeftovers(t, target)

	corrupt := filepath.Join(scratch, "corrupt.tar")
	member := rewriteMember(t, res.File, corrupt, "log/tile/entries/", false)
	r = runSignet(t, nil, "server", "restore", "--from", corrupt, "--data", target).want(t, 1)
	if !strings.Contains(r.stderr, member+" is damaged") {
		t.Errorf("restore of a backup with %s changed: %s", member, r.stderr)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused restore created %s", target)
	}
	noRestoreLeftovers(t, target)

	// Changed with its manifest to match: fsck's walk finds it.
	rewriteMember(t, res.File, corrupt+"2", "log/tile/entries/", true)
	r = runSignet(t, nil, "server", "restore", "--from", corrupt+"2", "--data", target).want(t, 1)
	if !strings.Contains(r.stderr, "the backup does not check out, nothing was restored: log "+last.Origin) {
		t.Errorf("restore of a backup with %s and its manifest changed: %s", member, r.stderr)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused restore created %s", target)
	}
	noRestoreLeftovers(t, target)

	// The last checkpoint seen shows the log grew after the backup: a
	// server restored from it would fork the log, and restore says so.
	lastFile := filepath.Join(scratch, "last-checkpoint")
	if err := os.WriteFile(lastFile, lastRaw, 0o600); err != nil {
		t.Fatal(err)
	}
	r = runSignet(t, nil, "server", "restore", "--from", res.File, "--data", target, "--checkpoint", lastFile).want(t, 1)
	if !strings.Contains(r.stderr, "a fork") || !strings.Contains(r.stderr, fmt.Sprintf("had grown to %d entries", last.Size)) {
		t.Errorf("restore of a backup older than a checkpoint given: %s", r.stderr)
	}
	noRestoreLeftovers(t, target)

	// The keyless backup restores into an existing empty directory; fsck
	// wants the keys, and passes once the original keys/ is put in.
	bare := t.TempDir()
	earlyFile := filepath.Join(scratch, "early-checkpoint")
	if err := os.WriteFile(earlyFile, early, 0o600); err != nil {
		t.Fatal(err)
	}
	r = runSignet(t, nil, "server", "restore", "--from", keyless, "--data", bare, "--checkpoint", earlyFile).want(t, 0)
	if !strings.Contains(r.stdout, "holds no private keys") {
		t.Errorf("restore of a keyless backup printed: %s", r.stdout)
	}
	for _, d := range []string{"keys", "dev-oidc"} {
		if _, err := os.Stat(filepath.Join(bare, d)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a backup without --include-keys restored %s/", d)
		}
	}
	runSignet(t, nil, "server", "fsck", "--data", bare).want(t, 1)
	if out, err := exec.Command("cp", "-a", filepath.Join(e.p.DataDir, "keys"), filepath.Join(bare, "keys")).CombinedOutput(); err != nil {
		t.Fatalf("cp keys: %v %s", err, out)
	}
	if r := runSignet(t, nil, "server", "fsck", "--data", bare).want(t, 0); !strings.Contains(r.stdout, "ok: ") {
		t.Errorf("fsck of the keyless restore with its keys put back: %s", r.stdout)
	}

	garbage := filepath.Join(scratch, "not-a-checkpoint")
	if err := os.WriteFile(garbage, []byte("127.0.0.1\n5\nAAAA\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runSignet(t, nil, "server", "restore", "--from", res.File, "--data", target, "--checkpoint", garbage).want(t, 1)
	if !strings.Contains(r.stderr, "is not a signed checkpoint of a log in this backup") {
		t.Errorf("restore given an unsigned checkpoint: %s", r.stderr)
	}
	noRestoreLeftovers(t, target)

	// The real restore, and the successor on the original's address.
	restored := filepath.Join(scratch, "restored")
	r = runSignet(t, nil, "server", "restore", "--from", res.File, "--data", restored).want(t, 0)
	if !strings.Contains(r.stdout, "restored and checked: "+restored) {
		t.Errorf("restore printed: %s", r.stdout)
	}
	noRestoreLeftovers(t, restored)
	p := servertest.Start(t, restored, "--dev-oidc", "--addr", addr)
	if got := logVerifierKey(t, p.URL); got != vkey {
		t.Fatalf("the restored log's key is %s, the original's %s", got, vkey)
	}
	// It serves the backup's last signed checkpoint at first, and then
	// publishes the backup's whole tree, with nothing added.
	var cp *f_log.Checkpoint
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if cp, _ = fetchCheckpoint(t, p.URL, vkey); cp.Size >= tl.Size || time.Now().After(deadline) {
			break
		}
	}
	if cp.Origin != last.Origin || cp.Size != tl.Size || !bytes.Equal(cp.Hash, tl.Root) {
		t.Fatalf("the restored server serves %s at %d (root %x), the backup holds %s at %d (root %x)", cp.Origin, cp.Size, cp.Hash, last.Origin, tl.Size, tl.Root)
	}

	trustDir := filepath.Join(scratch, "trust")
	runSignet(t, nil, "trust", "--server", p.URL, "--out", trustDir).want(t, 0)
	policy := []string{"--trusted-root", filepath.Join(trustDir, trustedRootFile), "--certificate-identity", e.identity, "--certificate-oidc-issuer", e.issuer}
	mu.Lock()
	for _, s := range load {
		if s.finished.Before(backupStart) && len(before) < 6 {
			before = append(before, s.path)
		}
	}
	mu.Unlock()
	for _, b := range before {
		runSignet(t, nil, append([]string{"verify-blob", art, "--bundle", b}, policy...)...).want(t, 0)
	}
	runSignet(t, nil, append([]string{"verify-blob-attestation", art, "--bundle", attested, "--type", "https://example.com/test-result/v1"}, policy...)...).want(t, 0)

	tok, err := p.Token(context.Background(), url.Values{"kind": {"github"}, "repository": {"acme/backup"}, "workflow": {".github/workflows/release.yml"}, "ref": {"refs/heads/main"}})
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"SIGNET_SERVER=" + p.URL}
	fresh := filepath.Join(scratch, "after-restore.sigstore.json")
	runSignet(t, env, "sign-blob", art, "--bundle", fresh, "--identity-token", tok).want(t, 0)
	runSignet(t, nil, append([]string{"verify-blob", art, "--bundle", fresh}, policy...)...).want(t, 0)

	// The next checkpoint extends the backup's tree and its last signed one.
	var next *f_log.Checkpoint
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if next, _ = fetchCheckpoint(t, p.URL, vkey); next.Size > tl.Size {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restored server's checkpoint stays at %d after a new entry", next.Size)
		}
	}
	tilesURL, err := url.Parse(p.URL + "/api/v2/")
	if err != nil {
		t.Fatal(err)
	}
	fetcher, err := client.NewHTTPFetcher(tilesURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := client.NewProofBuilder(context.Background(), next.Size, fetcher.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	for _, old := range []struct {
		size uint64
		root []byte
	}{{head.Size, head.Hash}, {tl.Size, tl.Root}} {
		cons, err := pb.ConsistencyProof(context.Background(), old.size, next.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.size, next.Size, cons, old.root, next.Hash); err != nil {
			t.Fatalf("the restored server's checkpoint %d is not consistent with the backup's tree %d: %v", next.Size, old.size, err)
		}
	}
}

// A server with a rotated log key has a log shard of its own beside log/:
// the backup holds every shard, and a server restored with the same config
// serves each of them again.
func TestBackupRestoreLogShards(t *testing.T) {
	addr, adminAddr := servertest.FreeAddr(t), servertest.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	work := t.TempDir()
	logKey := filepath.Join(work, "log-2.key")
	runSignet(t, nil, "server", "keygen", "--key", logKey, "--algorithm", "ed25519").want(t, 0)
	cfg := filepath.Join(work, "server.yaml")
	from := time.Now().Add(time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
	if err := os.WriteFile(cfg, []byte("keys:\n  logRotations:\n    - key: "+logKey+"\n      origin: localhost\n      from: "+from+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newCLIEnvIn(t, t.TempDir(), "acme/shards", "--addr", addr, "--admin-addr", adminAddr, "--config", cfg)
	art := e.file(t, "app.bin", "sharded\n")
	runSignet(t, e.serverEnv, "sign-blob", art, "--bundle", filepath.Join(e.dir, "app.sigstore.json"), "--identity-token", e.token).want(t, 0)

	out := filepath.Join(work, "backup.tar")
	var res backupResult
	runSignet(t, nil, "server", "backup", "--admin", "http://"+adminAddr, "--out", out, "--include-keys", "-o", "json").want(t, 0).decode(t, &res)
	if err := e.p.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	m := readManifest(t, out)
	if len(m.Logs) != 3 || m.Logs[0].Origin != "127.0.0.1" || m.Logs[0].Size < 1 || m.Logs[1].Origin != "localhost" || m.Logs[1].Dir != "log.localhost" ||
		m.Logs[1].HeadFile != "signed-head.localhost" || !m.Logs[2].StaticCT {
		t.Fatalf("manifest logs: want the first log, the shard localhost and the CT log: %+v", m.Logs)
	}

	// Without the config the shard's key is the manifest's only.
	r := runSignet(t, nil, "server", "restore", "--from", out, "--data", filepath.Join(work, "unconfigured")).want(t, 0)
	if !strings.Contains(r.stdout, "checked against the log keys the backup records") {
		t.Errorf("restore of shards without --config printed: %s", r.stdout)
	}
	restored := filepath.Join(work, "restored")
	runSignet(t, nil, "server", "restore", "--from", out, "--data", restored, "--config", cfg).want(t, 0)
	servertest.Start(t, restored, "--dev-oidc", "--addr", addr, "--config", cfg)
	for _, l := range m.Logs[:2] {
		if origin, size := checkpointSize(t, "http://"+net.JoinHostPort(l.Origin, port)); origin != l.Origin || size != l.Size {
			t.Errorf("the restored server serves %s at %d, the backup holds %s at %d", origin, size, l.Origin, l.Size)
		}
	}
}
