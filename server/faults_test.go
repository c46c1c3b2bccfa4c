package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/sign/transport"
	"github.com/signet-dev/signet/server/servertest"
)

// hashedRekordRequest is a valid log request for a fresh random digest.
func hashedRekordRequest(key *ecdsa.PrivateKey) []byte {
	pubDER, _ := x509.MarshalPKIXPublicKey(key.Public())
	digest := make([]byte, 32)
	_, _ = rand.Read(digest)
	sig, _ := ecdsa.SignASN1(rand.Reader, key, digest)
	req, _ := json.Marshal(map[string]any{"hashedRekordRequestV002": map[string]any{
		"digest": digest,
		"signature": map[string]any{"content": sig, "verifier": map[string]any{
			"publicKey": map[string]any{"rawBytes": pubDER}, "keyDetails": "PKIX_ECDSA_P256_SHA_256",
		}},
	}})
	return req
}

// appendEntries logs n entries and fails the test unless each is acknowledged.
func appendEntries(t *testing.T, p *servertest.Process, n int) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			resp, err := http.Post(p.URL+"/api/v2/log/entries", "application/json", bytes.NewReader(hashedRekordRequest(key)))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("HTTP %d", resp.StatusCode)
				}
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("append: %v", err)
		}
	}
}

// loggedDataDir is a data directory whose log holds n entries, the server
// stopped cleanly.
func loggedDataDir(t *testing.T, n int) string {
	t.Helper()
	data := t.TempDir()
	p := servertest.Start(t, data, "--dev-oidc")
	appendEntries(t, p, n)
	waitPublished(t, p, uint64(n))
	if err := p.Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	return data
}

// waitPublished waits until the published checkpoint covers size entries and
// verifies with the log key.
func waitPublished(t *testing.T, p *servertest.Process, size uint64) {
	t.Helper()
	trJSON, err := p.Get("/trust/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	der, err := base64.StdEncoding.DecodeString(logKey(t, trJSON))
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		t.Fatal(err)
	}
	pub, origin := k.(ed25519.PublicKey), mustURL(t, p.URL).Hostname()
	fetcher, err := client.NewHTTPFetcher(mustURL(t, p.URL+"/api/v2/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var last error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		cp, _, _, err := client.FetchCheckpoint(context.Background(), fetcher.ReadCheckpoint, noteVerifier(t, origin, pub), origin)
		if err == nil && cp.Size >= size {
			return
		}
		last = err
	}
	t.Fatalf("no valid published checkpoint of %d entries within 10s (last error: %v)", size, last)
}

func flipByte(t *testing.T, path string, at int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if at < 0 {
		at += len(b)
	}
	b[at] ^= 0x01
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRefusesToForkTheLog damages a stopped server's data directory the ways
// an operator, a restore or a disk can, and requires the real server to
// refuse to start, naming what is wrong, instead of signing a tree that is
// not an extension of what it signed before.
func TestRefusesToForkTheLog(t *testing.T) {
	bin := servertest.Binary(t)
	const n = 300 // one full tile of 256 and a partial one
	state := func(data string) string { return filepath.Join(data, "log", ".state", "treeState") }
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, data string)
		want   []string
	}{
		{"tree state deleted", func(t *testing.T, data string) { os.Remove(state(data)) },
			[]string{"not an extension", "deleted or the log directory replaced"}},
		{"tree state rolled back", func(t *testing.T, data string) {
			// A copy of the state from an earlier, smaller tree.
			p := servertest.Start(t, data, "--dev-oidc")
			old, _ := os.ReadFile(state(data))
			appendEntries(t, p, 40)
			waitPublished(t, p, n+40)
			if err := p.Stop(20 * time.Second); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(state(data), old, 0o644)
		}, []string{"not an extension", "rolled back"}},
		{"log directory missing", func(t *testing.T, data string) { os.RemoveAll(filepath.Join(data, "log")) },
			[]string{"not an extension", "tessera has no tree state"}},
		{"tree state size raised", func(t *testing.T, data string) {
			var st map[string]any
			b, _ := os.ReadFile(state(data))
			json.Unmarshal(b, &st)
			st["size"] = st["size"].(float64) + 1000
			b, _ = json.Marshal(st)
			os.WriteFile(state(data), b, 0o644)
		}, []string{"not an extension", "its tiles cannot be read"}},
		{"byte flipped in the right-edge tile", func(t *testing.T, data string) {
			flipByte(t, filepath.Join(data, "log", "tile", "0", "001.p", fmt.Sprint(n-256)), 5)
		}, []string{"not an extension", "does not hash to its leaf"}},
		{"byte flipped in the right-edge entry bundle", func(t *testing.T, data string) {
			flipByte(t, filepath.Join(data, "log", "tile", "entries", "001.p", fmt.Sprint(n-256)), -3)
		}, []string{"not an extension", "does not hash to its leaf"}},
		{"keys deleted", func(t *testing.T, data string) { os.RemoveAll(filepath.Join(data, "keys")) },
			[]string{"key directory", "is missing, but the data directory already holds", "restore"}},
		{"log key replaced", func(t *testing.T, data string) {
			_, k, _ := ed25519.GenerateKey(rand.Reader)
			der, _ := x509.MarshalPKCS8PrivateKey(k)
			os.WriteFile(filepath.Join(data, "keys", "log.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
		}, []string{"does not verify it", "the log key was replaced", "it was signed by [127.0.0.1+"}},
		{"log and its record deleted, keys kept", func(t *testing.T, data string) {
			os.RemoveAll(filepath.Join(data, "log"))
			os.Remove(filepath.Join(data, "signed-head"))
		}, []string{"the log and its record were deleted while the keys were kept"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := loggedDataDir(t, n)
			c.damage(t, data)
			_, err := servertest.StartErr(bin, data, "--dev-oidc")
			if err == nil {
				t.Fatal("the server started on a damaged data directory")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			// fsck finds it too.
			if out, code := fsck(t, bin, data); code != 1 || !strings.Contains(out, "problem") && !strings.Contains(out, "Error") {
				t.Errorf("fsck exit %d on a damaged directory:\n%s", code, out)
			}
		})
	}
}

func fsck(t *testing.T, bin, data string) (string, int) {
	t.Helper()
	out, err := exec.Command(bin, "server", "fsck", "--data", data).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return string(out), 0
}

// A flipped byte in a full tile leaves the right edge and the root intact,
// so the server starts; fsck, which recomputes every tile from the entries,
// names the tile. A sound directory passes.
func TestFsckFindsDamageTheStartCheckCannot(t *testing.T) {
	bin := servertest.Binary(t)
	data := loggedDataDir(t, 300)
	if out, code := fsck(t, bin, data); code != 0 || !strings.Contains(out, "ok: ") || !strings.Contains(out, "300 entries") {
		t.Fatalf("fsck on a sound directory: exit %d\n%s", code, out)
	}
	flipByte(t, filepath.Join(data, "log", "tile", "0", "000"), 100)
	out, code := fsck(t, bin, data)
	if code != 1 || !strings.Contains(out, "problem: ") || !strings.Contains(out, "tile/0/000 differs from the tile recomputed from the entry bundles") {
		t.Fatalf("fsck exit %d:\n%s", code, out)
	}
	// fsck refuses to run beside a live server.
	servertest.Start(t, data, "--dev-oidc")
	if out, code := fsck(t, bin, data); code != 1 || !strings.Contains(out, "in use by another signet server") {
		t.Fatalf("fsck beside a live server: exit %d\n%s", code, out)
	}
}

// A published checkpoint emptied or replaced by garbage is republished: the
// server starts, serves a checkpoint the log key verifies for the whole
// tree, and keeps appending.
func TestRepublishesDamagedCheckpoint(t *testing.T) {
	for name, content := range map[string][]byte{"emptied": {}, "garbage": []byte("not a checkpoint\n")} {
		t.Run(name, func(t *testing.T) {
			data := loggedDataDir(t, 20)
			if err := os.WriteFile(filepath.Join(data, "log", "checkpoint"), content, 0o644); err != nil {
				t.Fatal(err)
			}
			p := servertest.Start(t, data, "--dev-oidc")
			waitPublished(t, p, 20)
			appendEntries(t, p, 5)
			waitPublished(t, p, 25)
		})
	}
}

// A published checkpoint damaged while the server runs: GET checkpoint
// still serves a checkpoint the log key verifies for every acknowledged
// entry, and tessera republishes the file.
func TestCheckpointDamagedWhileRunning(t *testing.T) {
	data := t.TempDir()
	p := servertest.Start(t, data, "--dev-oidc")
	appendEntries(t, p, 30)
	waitPublished(t, p, 30)
	cpPath := filepath.Join(data, "log", "checkpoint")
	if err := os.WriteFile(cpPath, []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The very next read serves a checkpoint the key verifies.
	cp, err := p.Get("/api/v2/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	trJSON, _ := p.Get("/trust/trusted_root.json")
	der, _ := base64.StdEncoding.DecodeString(logKey(t, trJSON))
	k, _ := x509.ParsePKIXPublicKey(der)
	if _, err := note.Open(cp, note.VerifierList(noteVerifier(t, "127.0.0.1", k.(ed25519.PublicKey)))); err != nil {
		t.Fatalf("served a checkpoint the log key does not verify: %q: %v", cp, err)
	}
	appendEntries(t, p, 10)
	waitPublished(t, p, 40)
	// GET checkpoint answers from the signed-head record; the file follows
	// at tessera's next publication.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(cpPath)
		if err == nil && strings.HasPrefix(string(b), "127.0.0.1\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint file not republished within 10 s: %q %v", b, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill -9 between tessera's write and rename leaves temporary files; the
// next start removes them and nothing else.
func TestSweepsTemporaryFilesAtStart(t *testing.T) {
	data := loggedDataDir(t, 300)
	leftovers := []string{"log/checkpoint1804289383", "log/.state/treeState846930886", "log/tile/0/0001681692777", "log/tile/0/001.p/441714636915"}
	for _, f := range leftovers {
		if err := os.WriteFile(filepath.Join(data, f), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := servertest.Start(t, data, "--dev-oidc")
	for _, f := range leftovers {
		if _, err := os.Stat(filepath.Join(data, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s not swept: %v", f, err)
		}
	}
	waitPublished(t, p, 300)
	appendEntries(t, p, 5)
	waitPublished(t, p, 305)
}

// storeAttestation stores one attestation through the server's store.
func storeAttestation(t *testing.T, p *servertest.Process, subject string) *sign.Result {
	t.Helper()
	return storeAttestationOf(t, p, subject, []byte(`{}`))
}

func storeAttestationOf(t *testing.T, p *servertest.Process, subject string, predicate []byte) *sign.Result {
	t.Helper()
	res, err := attest(p, subject, predicate)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func tryStoreAttestation(p *servertest.Process, subject string) error {
	_, err := attest(p, subject, []byte(`{}`))
	return err
}

// attest signs an in-toto statement about subject and stores it through
// the server's attestation store, as `signet attest` does.
func attest(p *servertest.Process, subject string, predicate []byte) (*sign.Result, error) {
	ctx := context.Background()
	tok, err := p.Token(ctx, map[string][]string{"kind": {"github"}, "repository": {"acme/app"}})
	if err != nil {
		return nil, err
	}
	services, err := sign.FromServer(ctx, p.URL, transport.NewClient(transport.Options{}), time.Now())
	if err != nil {
		return nil, err
	}
	st, err := intoto.NewStatement([]intoto.Subject{{Name: "a", Digest: map[string]string{"sha256": subject}}}, "https://example.com/p/v1", predicate)
	if err != nil {
		return nil, err
	}
	payload, err := intoto.MarshalStatement(st)
	if err != nil {
		return nil, err
	}
	return sign.AttestationBundle(ctx, sign.Options{Services: services, IdentityToken: tok, ViaAttestationStore: true}, payload)
}

// A store that lost what it held is refused at start, never opened empty,
// and a truncated one is refused instead of crashing bbolt.
func TestRefusesDamagedAttestationStore(t *testing.T) {
	bin := servertest.Binary(t)
	for _, c := range []struct {
		name   string
		damage func(path string)
		says   string
	}{
		{"deleted", func(path string) { os.Remove(path) }, "attestations.db is missing, but it held attestations"},
		{"truncated to zero", func(path string) { os.Truncate(path, 0) }, "attestations.db is empty, but it held attestations"},
		// Three pages: the meta pages and one more, short of the pages
		// the buckets and records use (bbolt grows the file ahead of use,
		// so cutting only that slack is harmless and not refused).
		{"truncated into its data", func(path string) { os.Truncate(path, 3*4096) }, "attestations.db is truncated"},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := t.TempDir()
			p := servertest.Start(t, data, "--dev-oidc")
			for i := range 8 {
				storeAttestation(t, p, fmt.Sprintf("%064x", i))
			}
			if err := p.Stop(20 * time.Second); err != nil {
				t.Fatal(err)
			}
			c.damage(filepath.Join(data, "attestations.db"))
			_, err := servertest.StartErr(bin, data, "--dev-oidc")
			if err == nil || !strings.Contains(err.Error(), c.says) || strings.Contains(err.Error(), "SIGSEGV") || strings.Contains(err.Error(), "signal") {
				t.Fatalf("err %v, want a refusal saying %q", err, c.says)
			}
		})
	}
}

// Answers carry every field whatever its value: the first attestation of a
// new server is log entry 0, and its answer says so. (Timestamps are not
// logged here: their entries would come first.)
func TestAttestationAnswerCarriesLogIndexZero(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "server.yaml")
	if err := os.WriteFile(cfg, []byte("tsa:\n  logTimestamps: false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := servertest.Start(t, t.TempDir(), "--dev-oidc", "--config", cfg)
	res := storeAttestation(t, p, strings.Repeat("ab", 32))
	if res.Entries[0].GetLogIndex() != 0 {
		t.Fatalf("first entry has index %d", res.Entries[0].GetLogIndex())
	}
	body, err := p.Get("/api/v2/attestations/" + res.AttestationID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `"logIndex":"0"`) {
		t.Fatalf("answer omits logIndex 0:\n%s", body)
	}
}

// A known path with the wrong method is 405 with Allow, not 404.
func TestWrongMethodIs405(t *testing.T) {
	p := servertest.Start(t, t.TempDir(), "--dev-oidc")
	for _, c := range []struct{ method, path, allow string }{
		{http.MethodGet, "/api/v2/log/entries", "POST"},
		{http.MethodPost, "/api/v2/checkpoint", "GET, HEAD"},
		{http.MethodDelete, "/trust/trusted_root.json", "GET, HEAD"},
	} {
		req, _ := http.NewRequest(c.method, p.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d Allow %q, want 405 Allow %q", c.method, c.path, resp.StatusCode, resp.Header.Get("Allow"), c.allow)
		}
	}
	resp, err := http.Get(p.URL + "/no/such/path")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path: %d, want 404", resp.StatusCode)
	}
}

// Bodies must come with the documented content type, and the CA and TSA
// refuse unknown JSON fields as the log does: nothing is guessed.
func TestRequestsNeedTheDocumentedShape(t *testing.T) {
	p := servertest.Start(t, t.TempDir(), "--dev-oidc")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	post := func(path, ct, body string) (int, string) {
		resp, err := http.Post(p.URL+path, ct, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		name, path, ct, body string
		status               int
		says                 string
	}{
		{"log entry as text/plain", "/api/v2/log/entries", "text/plain", string(hashedRekordRequest(key)), http.StatusUnsupportedMediaType, "application/json"},
		{"attestation as text/plain", "/api/v2/attestations", "text/plain", `{}`, http.StatusUnsupportedMediaType, "application/json"},
		{"certificate request as text/plain", "/api/v2/signingCert", "text/plain", `{}`, http.StatusUnsupportedMediaType, "application/json"},
		{"certificate request with an unknown field", "/api/v2/signingCert", "application/json", `{"credentials":{"oidcIdentityToken":"x"},"publicKeyRequst":{}}`, http.StatusBadRequest, "publicKeyRequst"},
		{"timestamp request with an unknown field", "/api/v1/timestamp", "application/json", `{"artifactHash":"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `","hashAlgorithm":"sha256","nonse":1}`, http.StatusBadRequest, "nonse"},
		{"timestamp request as text/plain", "/api/v1/timestamp", "text/plain", `x`, http.StatusUnsupportedMediaType, "Content-Type"},
	} {
		status, body := post(c.path, c.ct, c.body)
		if status != c.status || !strings.Contains(body, c.says) {
			t.Errorf("%s: %d %s, want %d naming %q", c.name, status, body, c.status, c.says)
		}
	}
	// The well-formed request still works.
	if status, body := post("/api/v2/log/entries", "application/json; charset=utf-8", string(hashedRekordRequest(key))); status != http.StatusCreated && status != http.StatusOK {
		t.Errorf("well-formed entry: %d %s", status, body)
	}
}

// The development issuer refuses to mint a token larger than the CA takes.
func TestDevIssuerRefusesOversizedTokens(t *testing.T) {
	p := servertest.Start(t, t.TempDir(), "--dev-oidc")
	_, err := p.Token(context.Background(), map[string][]string{"kind": {"github"}, "repository": {"acme/" + strings.Repeat("a", 70<<10)}})
	if err == nil || !strings.Contains(err.Error(), "the CA accepts") {
		t.Fatalf("err %v, want the token size refused", err)
	}
}

// A query answer is paged by bytes as well as by count: three attestations
// of 7 MB come one per page (each page under 16 MiB), and the pages
// together hold each exactly once; a filter that matches nothing answers
// an empty page.
func TestQueryPagesAreBoundedInBytes(t *testing.T) {
	p := servertest.Start(t, t.TempDir(), "--dev-oidc")
	subject := strings.Repeat("cd", 32)
	big := []byte(`{"blob":"` + strings.Repeat("z", 7<<20) + `"}`)
	want := map[string]bool{}
	for range 3 {
		want[storeAttestationOf(t, p, subject, big).AttestationID] = true
	}
	token, pages := "", 0
	for {
		path := "/api/v2/attestations?digest=sha256:" + subject
		if token != "" {
			path += "&pageToken=" + token
		}
		page, size := queryPage(t, p, path)
		if size > 24<<20 || len(page.IDs) > 1 {
			t.Fatalf("page %d: %d attestations in %d bytes", pages, len(page.IDs), size)
		}
		for _, id := range page.IDs {
			if !want[id] {
				t.Fatalf("unexpected or repeated attestation %s", id)
			}
			delete(want, id)
		}
		pages++
		if token = page.Next; token == "" {
			break
		}
	}
	if len(want) != 0 || pages != 3 {
		t.Fatalf("%d pages; missing %v", pages, want)
	}
	body, err := p.Get("/api/v2/attestations?digest=sha256:" + subject + "&predicateType=https://example.com/none/v1")
	if err != nil || !strings.Contains(string(body), `"attestations":[]`) {
		t.Fatalf("no match: %s %v", body, err)
	}
}

// attestationPage is one page of an attestation query: the IDs in order and
// the token of the next page.
type attestationPage struct {
	IDs  []string
	Next string
}

// queryPage asks the attestation store for path and returns the page and
// the size of the answer.
func queryPage(t *testing.T, p *servertest.Process, path string) (attestationPage, int) {
	t.Helper()
	body, err := p.Get(path)
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Attestations []struct {
			ID string `json:"attestationId"`
		} `json:"attestations"`
		NextPageToken string `json:"nextPageToken"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatalf("%s: the answer is not JSON: %v", path, err)
	}
	out := attestationPage{Next: page.NextPageToken}
	for _, a := range page.Attestations {
		out.IDs = append(out.IDs, a.ID)
	}
	return out, len(body)
}

// A full disk: appends answer 507 with Retry-After, naming the cause but
// no server path; the public checkpoint covers every acknowledged entry;
// the error log stays a line a second; and once there is room again the
// log goes on. The disk is a 4 MiB tmpfs (the suite runs as root, as CI
// does).
func TestDiskFull(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mounting a tmpfs for the test needs root: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	data := filepath.Join(mnt, "data")
	p := servertest.Start(t, data, "--dev-oidc")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	var (
		mu      sync.Mutex
		maxAck  int64 = -1
		full    int
		other   []string
		started = time.Now()
	)
	work := make(chan struct{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				resp, err := http.Post(p.URL+"/api/v2/log/entries", "application/json", bytes.NewReader(hashedRekordRequest(key)))
				if err != nil {
					mu.Lock()
					other = append(other, err.Error())
					mu.Unlock()
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				mu.Lock()
				switch {
				case resp.StatusCode == http.StatusCreated:
					var tle struct {
						LogIndex string `json:"logIndex"`
					}
					json.Unmarshal(body, &tle)
					var idx int64
					fmt.Sscan(tle.LogIndex, &idx)
					maxAck = max(maxAck, idx)
				case resp.StatusCode == http.StatusInsufficientStorage && resp.Header.Get("Retry-After") != "" &&
					strings.Contains(string(body), "storage is full") && !strings.Contains(string(body), mnt):
					full++
				default:
					other = append(other, fmt.Sprintf("%d %s", resp.StatusCode, body))
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < 20000; i++ {
		mu.Lock()
		done := full >= 200
		mu.Unlock()
		if done {
			break
		}
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	if full < 200 {
		t.Fatalf("the disk never filled: %d entries acknowledged, %d full answers, other answers %v", maxAck+1, full, other[:min(len(other), 5)])
	}
	if len(other) > 0 {
		t.Errorf("%d answers were neither 201 nor a clean 507, e.g. %v", len(other), other[:min(len(other), 3)])
	}
	// Unready while full (a load balancer sends the next client elsewhere),
	// naming the cause; still live.
	if code, body := getStatus(t, p.URL+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "storage is full") || strings.Contains(body, mnt) {
		t.Errorf("/readyz on a full disk: %d %q", code, body)
	}
	if code, _ := getStatus(t, p.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz on a full disk: %d; the process is alive", code)
	}
	// The public checkpoint covers every acknowledged entry.
	cp, err := p.Get("/api/v2/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	fmt.Sscan(strings.Split(string(cp), "\n")[1], &size)
	if size <= maxAck {
		t.Errorf("published checkpoint has %d entries, but entry %d was acknowledged", size, maxAck)
	}
	// A line a second at most (plus start-up lines), not one per failure.
	lines := strings.Count(p.Stderr(), "\n")
	if limit := 20 + int(time.Since(started).Seconds())*4; lines > limit {
		t.Errorf("%d log lines in %s for %d failures:\n%s", lines, time.Since(started).Round(time.Second), full, p.Stderr()[max(0, len(p.Stderr())-3000):])
	}
	// An attestation meets the same full disk with the same clean answer.
	if err := tryStoreAttestation(p, strings.Repeat("ef", 32)); err == nil || !strings.Contains(err.Error(), "storage is full") || strings.Contains(err.Error(), mnt) {
		t.Errorf("attestation on a full disk: %v", err)
	}
	// Room again: appends succeed and the checkpoint follows.
	if out, err := exec.Command("mount", "-o", "remount,size=64m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v: %s", err, out)
	}
	appendEntries(t, p, 20)
	waitPublished(t, p, uint64(maxAck)+1)
	if code, body := getStatus(t, p.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz once appends succeed again: %d %q", code, body)
	}
}

// On SIGTERM the server is unready at once (load balancers stop sending
// new requests) but live, while a request in flight keeps it draining;
// then it exits.
func TestDrainingIsUnreadyButLive(t *testing.T) {
	port := servertest.FreePort(t)
	admin := fmt.Sprintf("http://127.0.0.1:%d", port)
	p := servertest.Start(t, t.TempDir(), "--dev-oidc", "--admin-addr", fmt.Sprintf("127.0.0.1:%d", port))
	if code, body := getStatus(t, admin+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz before shutdown: %d %q", code, body)
	}
	// A request in flight: headers sent, the body still coming.
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/v2/log/entries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	time.Sleep(200 * time.Millisecond)
	p.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body := getStatus(t, admin+"/readyz")
		if code == http.StatusServiceUnavailable && strings.Contains(body, "shutting down") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz while draining: %d %q", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := getStatus(t, admin+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while draining: %d; the process is alive", code)
	}
	conn.Close()
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the server did not exit after its last request")
	}
}

// getStatus GETs url and returns the status and body.
func getStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The same hashedrekord twice gets no second index: 409 with the existing
// index in X-Log-Index, as rekor-tiles answers.
func TestDuplicateEntryIsNotLoggedTwice(t *testing.T) {
	p := servertest.Start(t, t.TempDir(), "--dev-oidc")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	req := hashedRekordRequest(key)
	post := func() (*http.Response, []byte) {
		resp, err := http.Post(p.URL+"/api/v2/log/entries", "application/json", bytes.NewReader(req))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	first, body := post()
	if first.StatusCode != http.StatusCreated {
		t.Fatalf("first: %d %s", first.StatusCode, body)
	}
	var tle struct {
		LogIndex string `json:"logIndex"`
	}
	json.Unmarshal(body, &tle)
	second, body := post()
	if second.StatusCode != http.StatusConflict || second.Header.Get("X-Log-Index") != tle.LogIndex || !strings.Contains(string(body), "already exists") {
		t.Fatalf("second: %d X-Log-Index %q (first was %s) %s", second.StatusCode, second.Header.Get("X-Log-Index"), tle.LogIndex, body)
	}
	waitPublished(t, p, 1)
	cp, _ := p.Get("/api/v2/checkpoint")
	if lines := strings.Split(string(cp), "\n"); len(lines) < 2 || lines[1] != "1" {
		t.Fatalf("tree grew for a duplicate: %q", cp)
	}
}

// An older copy of the store (a backup restored over newer data) is
// refused: its missing envelopes have log entries that would point nowhere.
func TestRefusesOlderAttestationStore(t *testing.T) {
	bin := servertest.Binary(t)
	data := t.TempDir()
	db := filepath.Join(data, "attestations.db")
	p := servertest.Start(t, data, "--dev-oidc")
	for i := range 3 {
		storeAttestation(t, p, fmt.Sprintf("%064x", i))
	}
	if err := p.Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	backup, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	p = servertest.Start(t, data, "--dev-oidc")
	for i := range 2 {
		storeAttestation(t, p, fmt.Sprintf("%064x", 10+i))
	}
	if err := p.Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, backup, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = servertest.StartErr(bin, data, "--dev-oidc")
	if err == nil || !strings.Contains(err.Error(), "holds 3 attestations, but the store has held 5") {
		t.Fatalf("err %v, want the older copy refused", err)
	}
}

// A data directory from before signed-head existed, whose log key was then
// replaced, is still refused: the published checkpoint names the old key.
func TestRefusesReplacedKeyWithoutSignedHead(t *testing.T) {
	bin := servertest.Binary(t)
	data := loggedDataDir(t, 10)
	os.Remove(filepath.Join(data, "signed-head"))
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	os.WriteFile(filepath.Join(data, "keys", "log.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	_, err := servertest.StartErr(bin, data, "--dev-oidc")
	if err == nil || !strings.Contains(err.Error(), "signed under origin \"127.0.0.1\" by another key") {
		t.Fatalf("err %v, want the replaced key refused", err)
	}
	// Without the replacement, the same directory starts (and records its head).
	data = loggedDataDir(t, 10)
	os.Remove(filepath.Join(data, "signed-head"))
	p := servertest.Start(t, data, "--dev-oidc")
	waitPublished(t, p, 10)
	if _, err := os.Stat(filepath.Join(data, "signed-head")); err != nil {
		t.Fatalf("signed-head not recorded for a directory from before it: %v", err)
	}
}
