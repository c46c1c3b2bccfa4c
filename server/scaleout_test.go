package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"

	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/sign/transport"
	"github.com/signet-dev/signet/internal/backendtest"
	"github.com/signet-dev/signet/internal/mysqltest"
	"github.com/signet-dev/signet/internal/s3test"
	"github.com/signet-dev/signet/server/servertest"
	"github.com/signet-dev/signet/server/storage"
)

// balancer is a loopback HTTP load balancer: round robin over its
// backends, and, as real ones do, the next backend when one refuses the
// connection. It counts the requests each backend answered.
type balancer struct {
	srv      *httptest.Server
	mu       sync.Mutex
	backends []string // host:port
	next     int
	served   map[string]*atomic.Int64
	tr       *http.Transport
}

func newBalancer(t testing.TB) *balancer {
	b := &balancer{served: map[string]*atomic.Int64{}, tr: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(func() { b.srv.Close(); b.tr.CloseIdleConnections() })
	return b
}

func (b *balancer) add(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backends = append(b.backends, addr)
	b.served[addr] = &atomic.Int64{}
}

func (b *balancer) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	order := append(append([]string(nil), b.backends[b.next:]...), b.backends[:b.next]...)
	b.next = (b.next + 1) % max(len(b.backends), 1)
	b.mu.Unlock()
	for _, addr := range order {
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, "http://"+addr+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := b.tr.RoundTrip(req)
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			continue // down: the next one
		}
		if err != nil {
			http.Error(w, "backend "+addr+": "+err.Error(), http.StatusBadGateway)
			return
		}
		b.served[addr].Add(1)
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		resp.Body.Close()
		return
	}
	http.Error(w, "no backend is up", http.StatusBadGateway)
}

// sharedKeys makes one key set (as a first embedded start would) for
// every replica to copy into its data directory.
func sharedKeys(t testing.TB) string {
	t.Helper()
	tmpl := t.TempDir()
	d, err := storage.Open(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Keys(storage.KeyFiles{}, "signet scale-out test"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.TUFKey(); err != nil {
		t.Fatal(err)
	}
	d.Close()
	return d.KeysDir()
}

func copyDir(t testing.TB, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if e.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// distributedBackends starts a MariaDB with databases "signet" and
// "signet_ct" (the CT log's) and a
// versitygw with bucket "signet", and points the AWS SDK of the servers
// the test starts at the latter's credentials and region (not its
// endpoint: storage.objects.endpoint names it).
func distributedBackends(t testing.TB) (*mysqltest.Server, *s3test.Server) {
	t.Helper()
	db, objects := backendtest.Start(t)
	db.CreateDatabase(t, "signet")
	db.CreateDatabase(t, "signet_ct")
	objects.CreateBucket(t, "signet")
	ak, sk := objects.Credentials()
	t.Setenv("AWS_ACCESS_KEY_ID", ak)
	t.Setenv("AWS_SECRET_ACCESS_KEY", sk)
	t.Setenv("AWS_REGION", objects.Region())
	return db, objects
}

// distributedConfig is a server configuration at url with issuers, on
// the log's database (and database_ct for the CT log) and bucket "signet"
// under prefix.
func distributedConfig(url, issuers string, db *mysqltest.Server, objects *s3test.Server, database, prefix string) string {
	return fmt.Sprintf("url: %s\n%sstorage:\n  driver: distributed\n  database:\n    dsn: %q\n  ctDatabase:\n    dsn: %q\n  objects:\n    bucket: signet\n    prefix: %s\n    endpoint: %s\n    pathStyle: true\n",
		url, issuers, db.DSN(database), db.DSN(database+"_ct"), prefix, objects.Endpoint())
}

// ack is an acknowledged log entry: its index and leaf hash.
type ack struct {
	index uint64
	leaf  []byte
}

// loadgen appends entries through url from workers goroutines until
// stopped, keeping every acknowledgement and counting answers by status.
type loadgen struct {
	url    string
	key    *ecdsa.PrivateKey
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	acks     []ack
	statuses map[int]int
	bodies   map[int]string // one body per status, for messages
}

func startLoad(t *testing.T, url string, workers int) *loadgen {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &loadgen{url: url, key: key, cancel: cancel, statuses: map[int]int{}, bodies: map[int]string{}}
	c := &http.Client{Timeout: 2 * time.Minute}
	for range workers {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.url+"/api/v2/log/entries", bytes.NewReader(hashedRekordRequest(key)))
				req.Header.Set("Content-Type", "application/json")
				resp, err := c.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						g.count(-1, err.Error())
					}
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				g.count(resp.StatusCode, string(body))
				if resp.StatusCode != http.StatusCreated {
					if resp.StatusCode == http.StatusServiceUnavailable {
						time.Sleep(50 * time.Millisecond)
					}
					continue
				}
				var tle struct {
					LogIndex          int64  `json:"logIndex,string"`
					CanonicalizedBody []byte `json:"canonicalizedBody"`
				}
				if err := json.Unmarshal(body, &tle); err != nil {
					g.count(-2, "undecodable 201: "+err.Error())
					continue
				}
				g.mu.Lock()
				g.acks = append(g.acks, ack{uint64(tle.LogIndex), rfc6962.DefaultHasher.HashLeaf(tle.CanonicalizedBody)})
				g.mu.Unlock()
			}
		}()
	}
	return g
}

func (g *loadgen) count(status int, body string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.statuses[status]++
	if _, ok := g.bodies[status]; !ok {
		g.bodies[status] = body
	}
}

func (g *loadgen) stop() {
	g.cancel()
	g.wg.Wait()
}

// snapshot returns the statuses so far and resets them.
func (g *loadgen) snapshot() (map[int]int, map[int]string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, b := g.statuses, g.bodies
	g.statuses, g.bodies = map[int]int{}, map[int]string{}
	return s, b
}

func (g *loadgen) acked() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.acks)
}

// waitAcks waits until n more entries than now are acknowledged.
func (g *loadgen) waitAcks(t *testing.T, n int, within time.Duration, what string) {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("%s: %d more acknowledged in %v", what, n, time.Since(start).Round(time.Millisecond)) }()
	want := g.acked() + n
	deadline := time.Now().Add(within)
	for g.acked() < want {
		if time.Now().After(deadline) {
			s, b := g.snapshot()
			t.Fatalf("%s: fewer than %d entries acknowledged within %v; answers %v, e.g. %v", what, n, within, s, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Three servers on one MariaDB database and one versitygw bucket behind a
// load balancer serve one log: writes spread across them; one killed with
// SIGKILL under load, the database restarted under load and the object
// store briefly down lose no acknowledged entry: each is proven included
// in the final checkpoint, which is proven consistent with one taken
// before the kill.
func TestScaleOutReplicasSurviveFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB, versitygw and three servers")
	}
	db, objects := distributedBackends(t)

	lb := newBalancer(t)
	keys := sharedKeys(t)
	dir := t.TempDir()
	iss := newTestIssuer(t, dir)
	cfg := filepath.Join(dir, "server.yaml")
	yml := distributedConfig(lb.srv.URL, iss.config("url: https://ci.example.com", "type: email"), db, objects, "signet", "log/")
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := servertest.Binary(t)
	type replica struct {
		addr, data string
		p          *servertest.Process
	}
	start := func(r *replica) {
		t.Helper()
		p, err := servertest.StartArgsErr(bin, "--config", cfg, "--addr", r.addr, "--data", r.data)
		if err != nil {
			t.Fatal(err)
		}
		r.p = p
		t.Cleanup(func() {
			p.Kill()
			if t.Failed() || os.Getenv("SIGNET_SHOW_REPLICA_LOGS") != "" {
				t.Logf("replica %s stderr (last 3 KiB):\n%s", r.addr, tailOf(p.Stderr(), 3072))
			}
		})
		// Healthy itself, not only through the balancer.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			resp, err := http.Get("http://" + r.addr + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %s not healthy within 30s: %v", r.addr, err)
			}
		}
	}
	replicas := make([]*replica, 3)
	for i := range replicas {
		replicas[i] = &replica{addr: servertest.FreeAddr(t), data: t.TempDir()}
		copyDir(t, keys, filepath.Join(replicas[i].data, "keys"))
		lb.add(replicas[i].addr)
	}
	for _, r := range replicas {
		start(r)
	}

	trJSON, err := replicas[0].p.Get("/trust/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	// The trust files and the TUF repository are the same on every
	// replica: a client moving between them sees one deployment.
	for _, path := range []string{"/trust/trusted_root.json", "/tuf/root.json", "/tuf/timestamp.json"} {
		var want []byte
		for i, r := range replicas {
			other, err := http.Get("http://" + r.addr + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(other.Body)
			other.Body.Close()
			if i == 0 {
				want = b
			}
			if other.StatusCode != http.StatusOK || !bytes.Equal(b, want) {
				t.Fatalf("replica %s serves another %s than %s: %d %.200s", r.addr, path, replicas[0].addr, other.StatusCode, b)
			}
		}
	}
	pub, origin := logKeyAndOrigin(t, trJSON, replicas[0].p)
	verifier := noteVerifier(t, origin, pub)
	fetcher, err := client.NewHTTPFetcher(mustURL(t, lb.srv.URL+"/api/v2/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	checkpoint := func(atLeast uint64, within time.Duration) (size uint64, root []byte) {
		t.Helper()
		var last error
		for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			cp, _, _, err := client.FetchCheckpoint(context.Background(), fetcher.ReadCheckpoint, verifier, origin)
			if err == nil && cp.Size >= atLeast {
				return cp.Size, cp.Hash
			}
			last = err
		}
		t.Fatalf("no checkpoint of at least %d entries within %v (last error: %v)", atLeast, within, last)
		return 0, nil
	}

	// An attestation stored through the balancer is found through every
	// replica: the store is the shared database.
	subject := strings.Repeat("5e", 32)
	res, err := attestAs(lb.srv.URL, iss.mint(t, emailClaims("https://ci.example.com", "alice@example.com")), subject)
	if err != nil || res.AttestationID == "" {
		t.Fatalf("storing an attestation through the balancer: %v (id %q)", err, res.AttestationID)
	}
	for _, r := range replicas {
		resp, err := http.Get("http://" + r.addr + "/api/v2/attestations?digest=sha256:" + subject)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), res.AttestationID) {
			t.Fatalf("replica %s does not find attestation %s: %d %.300s", r.addr, res.AttestationID, resp.StatusCode, body)
		}
	}

	// The certificate carries the shared CT log's SCT, and every replica
	// serves that CT log's checkpoint covering it.
	if ids := sctLogIDs(t, res.Certificate); len(ids) != 1 {
		t.Fatalf("the certificate carries %d SCTs, want the CT log's", len(ids))
	}
	for _, r := range replicas {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			resp, err := http.Get("http://" + r.addr + "/ctlog/checkpoint")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if lines := strings.SplitN(string(body), "\n", 3); resp.StatusCode == http.StatusOK && len(lines) == 3 && lines[1] != "0" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %s serves no CT checkpoint covering the certificate: %d %.300s", r.addr, resp.StatusCode, body)
			}
		}
	}

	load := startLoad(t, lb.srv.URL, 16)
	defer load.stop()
	load.waitAcks(t, 200, time.Minute, "three replicas")
	for _, r := range replicas {
		if n := lb.served[r.addr].Load(); n == 0 {
			t.Fatalf("replica %s answered no request: the balancer did not spread the writes", r.addr)
		}
	}
	if s, b := load.snapshot(); s[http.StatusCreated] == 0 || len(s) != 1 {
		t.Fatalf("with every part up, answers were %v, e.g. %v", s, b)
	}
	beforeSize, beforeRoot := checkpoint(1, 10*time.Second)

	// kill -9 one replica under load.
	replicas[1].p.Kill()
	load.waitAcks(t, 200, time.Minute, "after killing a replica")
	load.snapshot() // requests in flight to the killed replica fail: that is not a lost entry

	// The database restarted under load: clear 503s, then service resumes.
	db.Kill()
	s, b := map[int]int{}, map[int]string{}
	for deadline := time.Now().Add(15 * time.Second); s[http.StatusServiceUnavailable] < 16; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("with the database down 15s, answers were %v (want 503s), e.g. %v", s, b)
		}
		more, bodies := load.snapshot()
		for k, v := range more {
			s[k] += v
			if _, ok := b[k]; !ok {
				b[k] = bodies[k]
			}
		}
	}
	for status := range s {
		if status != http.StatusServiceUnavailable && status != http.StatusCreated {
			t.Fatalf("with the database down, a %d answer: %.300s", status, b[status])
		}
	}
	if !strings.Contains(b[http.StatusServiceUnavailable], "database or object store is not answering") {
		t.Fatalf("the 503 does not say what is wrong: %s", b[http.StatusServiceUnavailable])
	}
	// A certificate cannot be logged in the CT log (its database is on
	// the same server): a clear refusal, and no certificate without SCT.
	refusedFrom := time.Now()
	if c, err := requestCert(replicas[0].p, iss.mint(t, emailClaims("https://ci.example.com", "alice@example.com"))); err == nil {
		t.Fatalf("with the database down, a certificate was issued (%d SCTs)", len(sctLogIDs(t, c)))
	} else if !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "the certificate transparency log did not log it") {
		t.Fatalf("with the database down, the certificate request failed with: %v", err)
	}
	t.Logf("certificate refused %v after the database went down", time.Since(refusedFrom).Round(time.Millisecond))
	db.Restart(t)
	load.waitAcks(t, 200, time.Minute, "after the database restart")

	// The object store briefly down: appends wait for integration and
	// complete once it is back.
	load.snapshot()
	objects.Kill()
	time.Sleep(2 * time.Second)
	objects.Restart(t)
	load.waitAcks(t, 200, time.Minute, "after the object store came back")

	// The killed replica comes back and serves the same log.
	start(replicas[1])
	load.waitAcks(t, 100, time.Minute, "with the killed replica back")
	load.stop()

	load.mu.Lock()
	acks := append([]ack(nil), load.acks...)
	load.mu.Unlock()
	var largest uint64
	for _, a := range acks {
		largest = max(largest, a.index+1)
	}
	size, root := checkpoint(largest, 30*time.Second)
	pb, err := client.NewProofBuilder(context.Background(), size, fetcher.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for _, a := range acks {
		if seen[a.index] {
			t.Fatalf("index %d acknowledged twice", a.index)
		}
		seen[a.index] = true
		p, err := pb.InclusionProof(context.Background(), a.index)
		if err != nil {
			t.Fatalf("inclusion proof for acknowledged entry %d in tree %d: %v", a.index, size, err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, a.index, size, a.leaf, p, root); err != nil {
			t.Fatalf("acknowledged entry %d is not in the final tree %d: %v", a.index, size, err)
		}
	}
	cons, err := pb.ConsistencyProof(context.Background(), beforeSize, size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, beforeSize, size, cons, beforeRoot, root); err != nil {
		t.Fatalf("the final tree %d does not extend the one before the kill (%d): %v", size, beforeSize, err)
	}
	t.Logf("%d acknowledged entries proven in tree %d; consistent with tree %d from before the failures; served: %v", len(acks), size, beforeSize, servedCounts(lb))
}

// attestAs stores an in-toto statement about subject through the server
// at url, signed under a certificate for token, as `signet attest` does.
func attestAs(url, token, subject string) (*sign.Result, error) {
	ctx := context.Background()
	services, err := sign.FromServer(ctx, url, transport.NewClient(transport.Options{}), time.Now())
	if err != nil {
		return nil, err
	}
	st, err := intoto.NewStatement([]intoto.Subject{{Name: "a", Digest: map[string]string{"sha256": subject}}}, "https://example.com/p/v1", []byte(`{}`))
	if err != nil {
		return nil, err
	}
	payload, err := intoto.MarshalStatement(st)
	if err != nil {
		return nil, err
	}
	res, err := sign.AttestationBundle(ctx, sign.Options{Services: services, IdentityToken: token, ViaAttestationStore: true}, payload)
	if err != nil {
		return nil, err
	}
	return res, nil
}

func servedCounts(lb *balancer) map[string]int64 {
	out := map[string]int64{}
	for a, n := range lb.served {
		out[a] = n.Load()
	}
	return out
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Distributed storage settings that cannot work are refused at start,
// before anything is connected to or written, naming the setting and
// what to do.
func TestDistributedStorageRefusedAtStart(t *testing.T) {
	bin := servertest.Binary(t)
	dir := t.TempDir()
	iss := newTestIssuer(t, dir)
	issuers := iss.config("url: https://ci.example.com", "type: email")
	keys := sharedKeys(t)
	noTUF := t.TempDir()
	copyDir(t, keys, noTUF)
	os.Remove(filepath.Join(noTUF, "tuf.key"))
	// Nothing listens there: a start that got as far as connecting
	// would fail differently.
	const dsn, ctDSN = "signet:pw@tcp(127.0.0.1:1)/signet", "signet:pw@tcp(127.0.0.1:1)/signet_ct"
	distributed := "ct:\n  disabled: true\n" + issuers + "storage:\n  driver: distributed\n  database:\n    dsn: \"" + dsn + "\"\n  objects:\n    bucket: signet\n"
	withCT := strings.TrimPrefix(distributed, "ct:\n  disabled: true\n")
	noCTKey := t.TempDir()
	copyDir(t, keys, noCTKey)
	os.Remove(filepath.Join(noCTKey, "ctlog.key"))
	for _, c := range []struct {
		name, yaml string
		keys       string // copied into the data directory's keys/
		says       []string
	}{
		{"unknown driver", issuers + "storage:\n  driver: s3\n", keys, []string{`storage.driver "s3" is not a storage driver`, `"embedded"`, `"distributed"`}},
		{"settings without the driver", issuers + "storage:\n  objects:\n    bucket: signet\n", keys, []string{"settings of the distributed storage", "storage.driver: distributed"}},
		{"no database", "ct:\n  disabled: true\n" + issuers + "storage:\n  driver: distributed\n  objects:\n    bucket: signet\n", keys, []string{"storage.database.dsn or storage.database.dsnFile"}},
		{"two databases", strings.Replace(distributed, "    dsn:", "    dsnFile: /run/dsn\n    dsn:", 1), keys, []string{"storage.database.dsn or storage.database.dsnFile (one of them)"}},
		{"no bucket", "ct:\n  disabled: true\n" + issuers + "storage:\n  driver: distributed\n  database:\n    dsn: \"" + dsn + "\"\n", keys, []string{"set storage.objects.bucket"}},
		{"prefix not a folder", distributed + "    prefix: log\n", keys, []string{`storage.objects.prefix "log" must end in /`}},
		{"endpoint not a URL", distributed + "    endpoint: s3.example.com\n", keys, []string{`storage.objects.endpoint "s3.example.com" must be an absolute http(s) URL`}},
		{"DSN that does not parse", strings.Replace(distributed, dsn, "signet@127.0.0.1/signet", 1), keys, []string{"storage.database: the DSN does not parse", "user:password@tcp(host:3306)/database"}},
		{"CT log without its database", issuers + "storage:\n  driver: distributed\n  database:\n    dsn: \"" + dsn + "\"\n  objects:\n    bucket: signet\n", keys, []string{"database of the certificate transparency log's own", "storage.ctDatabase.dsn or storage.ctDatabase.dsnFile", "ct.disabled: true"}},
		{"CT database with the CT log disabled", distributed + "  ctDatabase:\n    dsn: \"" + ctDSN + "\"\n", keys, []string{"storage.ctDatabase is the certificate transparency log's database, and ct.disabled is true"}},
		{"CT log on the log's database", withCT + "  ctDatabase:\n    dsn: \"" + dsn + "\"\n", keys, []string{"storage.ctDatabase names the same database (signet on 127.0.0.1:1) as storage.database"}},
		{"CT log key of its own", withCT + "  ctDatabase:\n    dsn: \"" + ctDSN + "\"\n", noCTKey, []string{"holds no CT log key (ctlog.key)", "keys.ctLogKey"}},
		{"too many integration loops", distributed + "  integrationLoops: 17\n", keys, []string{"storage.integrationLoops 17: give 1 to 16"}},
		{"integration loops on the embedded storage", issuers + "storage:\n  integrationLoops: 2\n", keys, []string{"settings of the distributed storage", "storage.integrationLoops"}},
		{"development issuer", "devOIDC: true\n" + distributed, keys, []string{"--dev-oidc keeps its signing key in each server's data directory", "oidcIssuers"}},
		{"keys of its own", distributed, "", []string{"holds no keys, and servers sharing one log must not generate their own", "keys.caKey", "docs/scale-out.md"}},
		{"TUF key of its own", distributed, noTUF, []string{"the zero-config TUF repository's key would be generated per server", "tuf.key"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := t.TempDir()
			if c.keys != "" {
				copyDir(t, c.keys, filepath.Join(data, "keys"))
			}
			cfg := filepath.Join(t.TempDir(), "server.yaml")
			if err := os.WriteFile(cfg, []byte(c.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			p, err := servertest.StartErr(bin, data, "--config", cfg)
			if err == nil {
				p.Kill()
				t.Fatal("started")
			}
			for _, s := range c.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("the refusal does not say %q:\n%v", s, err)
				}
			}
			if c.keys == "" {
				if _, err := os.Stat(filepath.Join(data, "keys")); err == nil {
					t.Error("the refused start generated keys")
				}
			}
		})
	}
}
