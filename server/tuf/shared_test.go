package tuf

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/signet-dev/signet/internal/mysqltest"
)

// clock is a replica's Options.Now, moved by the test; the handler reads
// it from the server's goroutines.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return b
}

// served is what a client walks through the repository at url: the
// newest root, the timestamp and the snapshot and targets it names, by
// name.
func served(t *testing.T, url string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	root, err := metadata.Root().FromBytes(get(t, url+"/root.json"))
	if err != nil {
		t.Fatal(err)
	}
	rn := fmt.Sprintf("%d.root.json", root.Signed.Version)
	out[rn] = get(t, url+"/"+rn)
	out["timestamp.json"] = get(t, url+"/timestamp.json")
	ts, err := metadata.Timestamp().FromBytes(out["timestamp.json"])
	if err != nil {
		t.Fatal(err)
	}
	sn := fmt.Sprintf("%d.snapshot.json", ts.Signed.Meta["snapshot.json"].Version)
	out[sn] = get(t, url+"/"+sn)
	s, err := metadata.Snapshot().FromBytes(out[sn])
	if err != nil {
		t.Fatal(err)
	}
	tn := fmt.Sprintf("%d.targets.json", s.Signed.Meta["targets.json"].Version)
	out[tn] = get(t, url+"/"+tn)
	return out
}

func names(m map[string][]byte) string {
	var n []string
	for k := range m {
		n = append(n, k)
	}
	slices.Sort(n)
	return strings.Join(n, " ")
}

// sameServed fails unless the replicas serve byte-identical metadata, and
// returns it.
func sameServed(t *testing.T, urls ...string) map[string][]byte {
	t.Helper()
	first := served(t, urls[0])
	for _, u := range urls[1:] {
		other := served(t, u)
		if names(other) != names(first) {
			t.Fatalf("replicas serve different versions: %s and %s", names(first), names(other))
		}
		for n, b := range first {
			if !bytes.Equal(other[n], b) {
				t.Fatalf("replicas serve different %s:\n%s\n%s", n, b, other[n])
			}
		}
	}
	return first
}

// tufClient is a go-tuf v2 updater keeping its trusted metadata in one
// directory across refreshes, as a client that runs again does: it
// refuses a timestamp or snapshot version below one it trusted.
type tufClient struct {
	root []byte
	dir  string
}

func (c *tufClient) refresh(url string) ([]byte, error) {
	cfg, err := config.New(url, c.root)
	if err != nil {
		return nil, err
	}
	cfg.LocalMetadataDir = c.dir
	cfg.LocalTargetsDir = filepath.Join(c.dir, "targets")
	up, err := updater.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := up.Refresh(); err != nil {
		return nil, err
	}
	tf, err := up.GetTargetInfo(TrustedRootTarget)
	if err != nil {
		return nil, err
	}
	_, b, err := up.DownloadTarget(tf, filepath.Join(c.dir, "dl"), "")
	return b, err
}

// trusted is the timestamp version the client trusts.
func (c *tufClient) trusted(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, "timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := metadata.Timestamp().FromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return ts.Signed.Version
}

func tsVersion(t *testing.T, files map[string][]byte) int64 {
	t.Helper()
	ts, err := metadata.Timestamp().FromBytes(files["timestamp.json"])
	if err != nil {
		t.Fatal(err)
	}
	return ts.Signed.Version
}

// rows is the database's SignetTUF table, path → content and serve_from.
func rows(t *testing.T, dsn string) map[string]string {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := db.Query("SELECT path, content, serve_from FROM SignetTUF")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	out := map[string]string{}
	for rs.Next() {
		var (
			p, c string
			f    int64
		)
		if err := rs.Scan(&p, &c, &f); err != nil {
			t.Fatal(err)
		}
		out[p] = fmt.Sprintf("%d %s", f, c)
	}
	return out
}

// logBuffer is a logger whose records a test reads.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *logBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

type replica struct {
	r     *Repo
	url   string
	clock *clock
	dir   string
}

func openReplica(t *testing.T, o Options, start time.Time) (*replica, error) {
	t.Helper()
	c := &clock{t: start}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	o.Now = c.Now
	r, err := Open(o)
	if err != nil {
		return nil, err
	}
	t.Cleanup(r.Close)
	return &replica{r: r, url: serve(t, r), clock: c, dir: o.Dir}, nil
}

func mustReplica(t *testing.T, o Options, start time.Time) *replica {
	t.Helper()
	rp, err := openReplica(t, o, start)
	if err != nil {
		t.Fatal(err)
	}
	return rp
}

// Replicas of one server share their TUF metadata through a real MariaDB.
func TestSharedMetadata(t *testing.T) {
	srv := mysqltest.Start(t)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	trusted := testTargets[TrustedRootTarget]
	targets := func(tr []byte) map[string][]byte {
		return map[string][]byte{TrustedRootTarget: tr, SigningConfigTarget: testTargets[SigningConfigTarget]}
	}

	// Two replicas starting at once sign one repository: version 1 of
	// each role, byte-identical through both. A re-sign by one is served
	// by both at the same time, and a client going from one to the other
	// and back never sees a version go back.
	t.Run("replicas", func(t *testing.T) {
		srv.CreateDatabase(t, "replicas")
		dsn := srv.DSN("replicas")
		start := time.Now()
		var a, b *replica
		var errA, errB error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			a, errA = openReplica(t, Options{DSN: dsn, Key: key, Targets: targets(trusted)}, start)
		}()
		// A second apart: unlocked, the two would sign different bytes.
		go func() {
			defer wg.Done()
			b, errB = openReplica(t, Options{DSN: dsn, Key: key, Targets: targets(trusted)}, start.Add(time.Second))
		}()
		wg.Wait()
		if errA != nil || errB != nil {
			t.Fatalf("opening two replicas at once: %v; %v", errA, errB)
		}
		got := sameServed(t, a.url, b.url)
		if names(got) != "1.root.json 1.snapshot.json 1.targets.json timestamp.json" || tsVersion(t, got) != 1 {
			t.Fatalf("two replicas starting at once serve %s, timestamp %d; want version 1 of each, signed once", names(got), tsVersion(t, got))
		}
		if rs := rows(t, dsn); len(rs) != 6 { // 4 metadata, 2 target files
			t.Errorf("the database holds %d rows after two starts, want 6: %s", len(rs), strings.Join(keys(rs), " "))
		}

		client := &tufClient{root: a.r.Root(), dir: t.TempDir()}
		if tr, err := client.refresh(a.url); err != nil || !bytes.Equal(tr, trusted) {
			t.Fatalf("client through A: %q, %v", tr, err)
		}
		v1 := got["timestamp.json"]

		// 13 hours on, A re-signs the timestamp (past half its day).
		a.clock.add(13 * time.Hour)
		b.clock.add(13 * time.Hour)
		a.r.refreshDue()
		if err := b.r.reload(); err != nil {
			t.Fatal(err)
		}
		// Neither serves it yet: B might not have read it.
		if got := sameServed(t, a.url, b.url); !bytes.Equal(got["timestamp.json"], v1) {
			t.Fatalf("a timestamp served before the replicas could all have read it: version %d", tsVersion(t, got))
		}
		if tr, err := client.refresh(b.url); err != nil || !bytes.Equal(tr, trusted) {
			t.Fatalf("client through B: %q, %v", tr, err)
		}
		// Once due, both serve it.
		a.clock.add(switchDelay)
		b.clock.add(switchDelay)
		got = sameServed(t, a.url, b.url)
		if tsVersion(t, got) != 2 {
			t.Fatalf("after the switch both serve timestamp version %d, want 2", tsVersion(t, got))
		}
		v2 := got["timestamp.json"]
		for _, u := range []string{a.url, b.url, a.url} {
			if tr, err := client.refresh(u); err != nil || !bytes.Equal(tr, trusted) {
				t.Fatalf("client through %s: %q, %v", u, tr, err)
			}
		}
		if v := client.trusted(t); v != 2 {
			t.Fatalf("the client trusts timestamp version %d, want 2", v)
		}

		// Now B signs (another 13 hours), A follows at its reload.
		a.clock.add(13 * time.Hour)
		b.clock.add(13 * time.Hour)
		b.r.refreshDue()
		a.r.refreshDue() // finds it signed: signs nothing
		if err := a.r.reload(); err != nil {
			t.Fatal(err)
		}
		// B's clock is a second ahead: A switches a second after.
		a.clock.add(switchDelay + time.Second)
		b.clock.add(switchDelay + time.Second)
		if got := sameServed(t, a.url, b.url); tsVersion(t, got) != 3 {
			t.Fatalf("after B's re-sign both serve timestamp version %d, want 3 (signed once)", tsVersion(t, got))
		}
		for _, u := range []string{b.url, a.url} {
			if _, err := client.refresh(u); err != nil {
				t.Fatalf("client through %s: %v", u, err)
			}
		}
		if v := client.trusted(t); v != 3 {
			t.Fatalf("the client trusts timestamp version %d, want 3", v)
		}

		// What the client would do at a replica serving an older
		// timestamp: refuse it. The replicas never do.
		mux := http.NewServeMux()
		mux.HandleFunc("GET /tuf/timestamp.json", func(w http.ResponseWriter, _ *http.Request) { w.Write(v2) })
		mux.HandleFunc("GET /tuf/{path...}", func(w http.ResponseWriter, req *http.Request) {
			resp, err := http.Get(a.url + "/" + req.PathValue("path"))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			w.WriteHeader(resp.StatusCode)
			io.Copy(w, resp.Body)
		})
		staleSrv := httptest.NewServer(mux)
		defer staleSrv.Close()
		stale := staleSrv.URL + "/tuf"
		if _, err := client.refresh(stale); err == nil || !errors.Is(err, &metadata.ErrBadVersionNumber{}) {
			t.Fatalf("the client took an older timestamp: %v", err)
		}

		// A database that goes back (restored from a backup) is not served.
		mysqltest.Exec(t, dsn, "UPDATE SignetTUF SET content = ? WHERE path = 'timestamp.json'", v2)
		mysqltest.Exec(t, dsn, "DELETE FROM SignetTUF WHERE path = ?", nextRow)
		if err := a.r.reload(); err == nil || !strings.Contains(err.Error(), "older than version 3") {
			t.Fatalf("reloading a database that went back: %v", err)
		}
		if got := served(t, a.url); tsVersion(t, got) != 3 {
			t.Fatalf("after the database went back A serves timestamp version %d, want 3", tsVersion(t, got))
		}
		// Nor signed below what was served: the next re-sign is above it.
		a.clock.add(13 * time.Hour)
		a.r.refreshDue()
		a.clock.add(switchDelay)
		if got := served(t, a.url); tsVersion(t, got) != 4 {
			t.Fatalf("re-signing over a database that went back: timestamp version %d, want 4", tsVersion(t, got))
		}
	})

	// New trust files at one replica's start: one new targets version,
	// which a replica still building the old ones serves too (rolling
	// upgrade); a replica started with the same new ones signs nothing.
	t.Run("targets change", func(t *testing.T) {
		srv.CreateDatabase(t, "targets")
		dsn := srv.DSN("targets")
		start := time.Now()
		a := mustReplica(t, Options{DSN: dsn, Key: key, Targets: targets(trusted)}, start)
		b := mustReplica(t, Options{DSN: dsn, Key: key, Targets: targets(trusted)}, start)
		client := &tufClient{root: a.r.Root(), dir: t.TempDir()}
		if _, err := client.refresh(b.url); err != nil {
			t.Fatal(err)
		}
		a.r.Close()

		changed := []byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":[]}` + "\n")
		a2 := mustReplica(t, Options{DSN: dsn, Key: key, Targets: targets(changed)}, start.Add(time.Minute))
		before := rows(t, dsn)
		if _, ok := before["2.targets.json"]; !ok {
			t.Fatalf("new trust files at start signed no new targets version: %s", strings.Join(keys(before), " "))
		}
		if err := b.r.reload(); err != nil {
			t.Fatal(err)
		}
		b2 := mustReplica(t, Options{DSN: dsn, Key: key, Targets: targets(changed)}, start.Add(time.Minute))
		if after := rows(t, dsn); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("a second replica with the same new trust files signed again:\nbefore %s\nafter  %s", strings.Join(keys(before), " "), strings.Join(keys(after), " "))
		}
		for _, r := range []*replica{a2, b, b2} {
			r.clock.add(time.Minute + switchDelay)
		}
		got := sameServed(t, a2.url, b.url, b2.url)
		if names(got) != "1.root.json 2.snapshot.json 2.targets.json timestamp.json" || tsVersion(t, got) != 2 {
			t.Fatalf("after the change: %s, timestamp %d; want targets, snapshot and timestamp version 2", names(got), tsVersion(t, got))
		}
		for _, u := range []string{b.url, a2.url, b2.url} {
			if tr, err := client.refresh(u); err != nil || !bytes.Equal(tr, changed) {
				t.Fatalf("client through %s after the change: %q, %v", u, tr, err)
			}
		}
	})

	// A published repository: root and targets from each replica's copy of
	// the ceremony's publication, snapshot and timestamp shared. New
	// targets published to one replica's tuf.dir only: another refuses to
	// start on its older copy, and a running one serves what the database
	// holds and says what to publish, then picks it up once published.
	t.Run("published", func(t *testing.T) {
		srv.CreateDatabase(t, "published")
		dsn := srv.DSN("published")
		rk, online := newKey(t, "ed25519"), newKey(t, "ecdsa-p256")
		c := &Ceremony{Dir: t.TempDir()}
		start := time.Now()
		if _, err := c.Init(RootChange{Expires: start.Add(DefaultRootExpiry), Roles: map[string]*RoleKeys{
			metadata.ROOT: roleOf(1, rk), metadata.TARGETS: roleOf(1, rk), metadata.TIMESTAMP: roleOf(1, online)}}); err != nil {
			t.Fatal(err)
		}
		mustSign(t, c, metadata.ROOT, rk)
		if _, err := c.Targets(testTargets, start.Add(DefaultTargetsExpiry)); err != nil {
			t.Fatal(err)
		}
		mustSign(t, c, metadata.TARGETS, rk)
		dirA, dirB := t.TempDir(), t.TempDir()
		for _, d := range []string{dirA, dirB} {
			if _, err := c.Publish(d); err != nil {
				t.Fatal(err)
			}
		}
		opts := func(dir string) Options { return Options{DSN: dsn, Dir: dir, Published: true, Online: online.signer} }
		a := mustReplica(t, opts(dirA), start)
		b := mustReplica(t, opts(dirB), start.Add(time.Second))
		got := sameServed(t, a.url, b.url)
		if names(got) != "1.root.json 1.snapshot.json 1.targets.json timestamp.json" {
			t.Fatalf("published replicas serve %s", names(got))
		}
		if k := strings.Join(keys(rows(t, dsn)), " "); k != "1.snapshot.json timestamp.json" {
			t.Fatalf("the database holds %s; want only what the online key signs", k)
		}
		pinned, _ := os.ReadFile(filepath.Join(c.Dir, "1.root.json"))
		client := &tufClient{root: pinned, dir: t.TempDir()}
		for _, u := range []string{a.url, b.url} {
			if tr, err := client.refresh(u); err != nil || !bytes.Equal(tr, trusted) {
				t.Fatalf("client through %s: %q, %v", u, tr, err)
			}
		}

		changed := []byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":[]}` + "\n")
		if _, err := c.Targets(targets(changed), start.Add(DefaultTargetsExpiry)); err != nil {
			t.Fatal(err)
		}
		mustSign(t, c, metadata.TARGETS, rk)
		if _, err := c.Publish(dirA); err != nil {
			t.Fatal(err)
		}
		a.r.Close()
		a2 := mustReplica(t, opts(dirA), start.Add(time.Minute))
		if _, err := openReplica(t, opts(dirB), start.Add(time.Minute)); err == nil || !strings.Contains(err.Error(), "holds targets up to version 1") || !strings.Contains(err.Error(), "signet tuf publish --to "+dirB) {
			t.Fatalf("a replica with the older publication started: %v", err)
		}
		if err := b.r.reload(); err == nil || !strings.Contains(err.Error(), "signet tuf publish --to "+dirB) {
			t.Fatalf("a running replica with the older publication reloaded: %v", err)
		}
		if _, err := c.Publish(dirB); err != nil {
			t.Fatal(err)
		}
		if err := b.r.reload(); err != nil {
			t.Fatalf("reloading once published: %v", err)
		}
		a2.clock.add(switchDelay)
		b.clock.add(time.Minute + switchDelay)
		got = sameServed(t, a2.url, b.url)
		if names(got) != "1.root.json 2.snapshot.json 2.targets.json timestamp.json" {
			t.Fatalf("after the new targets: %s", names(got))
		}
		for _, u := range []string{b.url, a2.url} {
			if tr, err := client.refresh(u); err != nil || !bytes.Equal(tr, changed) {
				t.Fatalf("client through %s after the new targets: %q, %v", u, tr, err)
			}
		}
	})

	// A server that kept its metadata in its data directory, then shares a
	// database: what it signs there is above what it served.
	t.Run("from the data directory", func(t *testing.T) {
		srv.CreateDatabase(t, "migrate")
		dir := t.TempDir()
		now := time.Now()
		local, err := Open(Options{Dir: dir, Key: key, Targets: targets(trusted), Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		for range 4 {
			if err := local.newTimestamp(now); err != nil {
				t.Fatal(err)
			}
		}
		local.Close()
		r := mustReplica(t, Options{DSN: srv.DSN("migrate"), Dir: dir, Key: key, Targets: targets(trusted)}, now)
		got := served(t, r.url)
		if names(got) != "1.root.json 2.snapshot.json 2.targets.json timestamp.json" || tsVersion(t, got) != 6 {
			t.Fatalf("moved to the database: %s, timestamp %d; want targets and snapshot 2, timestamp 6", names(got), tsVersion(t, got))
		}
	})

	t.Run("bad DSN", func(t *testing.T) {
		for dsn, want := range map[string]string{"not a dsn": "does not parse", srv.DSN(""): "names no database"} {
			if _, err := Open(Options{DSN: dsn, Key: key, Targets: targets(trusted)}); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("DSN %q: %v, want %q", dsn, err, want)
			}
		}
	})

	// The database down: at start a clear error naming it; while running,
	// the replica serves what it has and logs; once back, it reloads and
	// re-signs.
	t.Run("database down", func(t *testing.T) {
		srv.CreateDatabase(t, "outage")
		dsn := srv.DSN("outage")
		logs := &logBuffer{}
		start := time.Now()
		a := mustReplica(t, Options{DSN: dsn, Key: key, Targets: targets(trusted), Logger: slog.New(slog.NewTextHandler(logs, nil))}, start)
		before := served(t, a.url)
		srv.Kill()
		if _, err := Open(Options{DSN: dsn, Dir: t.TempDir(), Key: key, Targets: targets(trusted)}); err == nil ||
			!strings.Contains(err.Error(), "database outage on "+srv.Addr) || !strings.Contains(err.Error(), "connecting") {
			t.Fatalf("opening with the database down: %v", err)
		}
		if err := a.r.reload(); err == nil || !strings.Contains(err.Error(), "database outage on "+srv.Addr) {
			t.Fatalf("reloading with the database down: %v", err)
		}
		a.clock.add(13 * time.Hour)
		a.r.refreshDue()
		if !strings.Contains(logs.String(), "re-signing TUF metadata failed") || !strings.Contains(logs.String(), "outage") {
			t.Fatalf("a failed re-sign logged: %s", logs.String())
		}
		if got := served(t, a.url); fmt.Sprint(got) != fmt.Sprint(before) {
			t.Fatalf("with the database down the replica changed what it serves: %s", names(got))
		}
		srv.Restart(t)
		if err := a.r.reload(); err != nil {
			t.Fatalf("reloading once the database is back: %v", err)
		}
		a.r.refreshDue()
		a.clock.add(switchDelay)
		if got := served(t, a.url); tsVersion(t, got) != 2 {
			t.Fatalf("re-signing once the database is back: timestamp version %d, want 2", tsVersion(t, got))
		}
	})
}

func keys(m map[string]string) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}
