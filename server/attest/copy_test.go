package attest

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/signet-dev/signet/internal/mysqltest"
)

// copySource is a bbolt store filled through the Store API, closed (as a
// stopped server's), with what it holds.
type copySource struct {
	*env
	ids        []string // in submission order
	slsaIDs    []string
	pendingID  string
	pendingReq map[string]any
	index      int // index entries held
	d1, d2, dp string
}

const (
	copyIssuerA = "https://accounts.example.com"
	copyIssuerB = "https://other-idp.example.com"
)

func newCopySource(t *testing.T) *copySource {
	t.Helper()
	e := newEnv(t)
	c := &copySource{env: e, d1: hexDigest("one"), d2: hexDigest("two"), dp: hexDigest("paged")}
	alice := e.ca.issue(t, "alice@example.com", copyIssuerA)
	bob := e.ca.issue(t, "bob@example.com", copyIssuerA)
	aliceB := e.ca.issue(t, "alice@example.com", copyIssuerB)
	key := newKeySigner(t)
	submit := func(s *signer, predicateType string, digests ...string) {
		t.Helper()
		resp := e.post(map[string]any{"envelope": s.sign(t, InTotoPayloadType, statement(predicateType, digests...)), "verifier": s.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")})
		if resp.status != http.StatusCreated {
			t.Fatalf("submit: %d %s", resp.status, resp.body)
		}
		id := resp.json(t)["attestationId"].(string)
		c.ids = append(c.ids, id)
		if predicateType == slsa {
			c.slsaIDs = append(c.slsaIDs, id)
		}
	}
	submit(alice, slsa, c.d1)
	submit(alice, spdx, c.d1, c.d2)
	submit(alice, slsa, c.d2)
	submit(bob, slsa, c.d1)
	submit(aliceB, slsa, c.d1)
	submit(key, slsa, c.d1, c.dp)
	for range 7 {
		submit(alice, slsa, c.dp)
	}
	// An append that failed: a pending marker and no record.
	e.log.err = errors.New("disk on fire")
	c.pendingReq = map[string]any{"envelope": alice.sign(t, InTotoPayloadType, statement(slsa, hexDigest("lost"))), "verifier": alice.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")}
	if resp := e.post(c.pendingReq); resp.status != http.StatusServiceUnavailable {
		t.Fatalf("submit with the log down: %d %s", resp.status, resp.body)
	}
	e.log.err = nil
	var r, p int
	r, p, c.index = e.counts()
	if r != len(c.ids) || p != 1 {
		t.Fatalf("source holds %d records, %d pending", r, p)
	}
	_ = e.store.recs.(*boltRecords).db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPending).ForEach(func(id, _ []byte) error { c.pendingID = string(id); return nil })
	})
	c.stop()
	return c
}

// stop closes the source's store, as a stopped server leaves it.
func (c *copySource) stop() {
	c.srv.Close()
	if err := c.store.Close(); err != nil {
		c.t.Fatal(err)
	}
}

// queries are the source's answers to compare: every kind of query, some
// paged.
func (c *copySource) queries() []url.Values {
	return []url.Values{
		{"digest": {"sha256:" + c.d1}},
		{"digest": {"sha256:" + c.d2}},
		{"digest": {"sha256:" + c.dp}, "pageSize": {"3"}},
		{"digest": {"sha256:" + c.d1}, "predicateType": {spdx}},
		{"predicateType": {spdx}},
		{"predicateType": {slsa}, "pageSize": {"4"}},
		{"identity": {"alice@example.com"}, "pageSize": {"5"}},
		{"identity": {"bob@example.com"}},
		{"identity": {"alice@example.com"}, "issuer": {copyIssuerB}},
		{"identity": {"alice@example.com"}, "issuer": {copyIssuerA}, "digest": {"sha256:" + c.d2}},
		{"digest": {"sha256:" + c.d1}, "issuer": {copyIssuerA}},
		{"digest": {"sha256:" + hexDigest("nothing")}},
	}
}

// pages fetches every page of a query, decoded.
func pages(t *testing.T, e *env, params url.Values) []any {
	t.Helper()
	params = maps(params)
	var out []any
	for n := 0; ; n++ {
		if n > 20 {
			t.Fatalf("%v: pagination does not end", params)
		}
		resp := e.get("/api/v2/attestations?" + params.Encode())
		if resp.status != http.StatusOK {
			t.Fatalf("query %v: %d %s", params, resp.status, resp.body)
		}
		var v map[string]any
		if err := json.Unmarshal(resp.body, &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
		next, _ := v["nextPageToken"].(string)
		if next == "" {
			return out
		}
		params.Set("pageToken", next)
	}
}

func maps(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

func decoded(t *testing.T, r response) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("%d %s: %v", r.status, r.body, err)
	}
	return v
}

// sameAnswers checks that dst answers every get and query as src does.
func sameAnswers(t *testing.T, src *copySource, dst *env) {
	t.Helper()
	for _, id := range src.ids {
		want, got := src.get("/api/v2/attestations/"+id), dst.get("/api/v2/attestations/"+id)
		if want.status != http.StatusOK || got.status != http.StatusOK {
			t.Fatalf("get %s: source %d, target %d %s", id, want.status, got.status, got.body)
		}
		if w, g := decoded(t, want), decoded(t, got); !reflect.DeepEqual(w, g) {
			t.Errorf("get %s: target answers\n%s\nsource\n%s", id, got.body, want.body)
		}
	}
	for _, q := range src.queries() {
		if w, g := pages(t, src.env, q), pages(t, dst, q); !reflect.DeepEqual(w, g) {
			t.Errorf("query %v: target answers\n%v\nsource\n%v", q, g, w)
		}
	}
	// Not vacuous: the paged answer is every slsa record, newest first.
	var got []string
	params := url.Values{"predicateType": {slsa}, "pageSize": {"4"}}
	for range 10 {
		p := dst.query(t, params)
		got = append(got, ids(p)...)
		if p.NextPageToken == "" {
			break
		}
		params.Set("pageToken", p.NextPageToken)
	}
	if want := reversed(src.slsaIDs); !reflect.DeepEqual(got, want) {
		t.Errorf("target's slsa records %v, want %v", got, want)
	}
}

// dump is the target's tables, row by row.
func dump(t *testing.T, dsn string) []string {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []string
	for _, q := range []string{
		"SELECT CONCAT('record ', seq, ' ', id, ' ', size, ' ', SHA2(record, 256)) FROM SignetAttestationRecords ORDER BY seq",
		"SELECT CONCAT('index ', kind, ' ', HEX(term), ' ', seq) FROM SignetAttestationIndex ORDER BY kind, term, seq",
		"SELECT CONCAT('pending ', id) FROM SignetAttestationPending ORDER BY id",
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func mustCopy(t *testing.T, src *copySource, dsn string, opts CopyOptions) CopyReport {
	t.Helper()
	rep, err := Copy(context.Background(), src.path, dsn, opts)
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	return rep
}

func TestCopyToMySQL(t *testing.T) {
	srv := mysqltest.Start(t)
	newDB := func(t *testing.T) string {
		name := fmt.Sprintf("copy_%d", dbSeq.Add(1))
		srv.CreateDatabase(t, name)
		return srv.DSN(name)
	}
	t.Run("SameAnswers", func(t *testing.T) { testCopySameAnswers(t, newDB(t)) })
	t.Run("Idempotent", func(t *testing.T) { testCopyIdempotent(t, newDB(t)) })
	t.Run("ResumesAfterLoss", func(t *testing.T) { testCopyResumesAfterLoss(t, newDB(t)) })
	t.Run("ResumesAfterCancel", func(t *testing.T) { testCopyResumesAfterCancel(t, newDB(t), newDB(t)) })
	t.Run("Conflict", func(t *testing.T) { testCopyConflict(t, newDB(t)) })
	t.Run("TargetInUse", func(t *testing.T) { testCopyTargetInUse(t, newDB(t)) })
	t.Run("SourceLocked", func(t *testing.T) { testCopySourceLocked(t, newDB(t)) })
	t.Run("SourceRefused", func(t *testing.T) { testCopySourceRefused(t, newDB(t)) })
	t.Run("PacketTooSmall", func(t *testing.T) { testCopyPacketTooSmall(t, newDB(t)) })
}

func testCopySameAnswers(t *testing.T, dsn string) {
	src := newCopySource(t)
	var logged bytes.Buffer
	var progress [][2]int
	rep := mustCopy(t, src, dsn, CopyOptions{
		Logger:   slog.New(slog.NewTextHandler(&logged, nil)),
		Progress: func(done, total int) { progress = append(progress, [2]int{done, total}) },
	})
	n := len(src.ids)
	if want := (CopyReport{Total: n, Copied: n, Pending: []string{src.pendingID}}); !reflect.DeepEqual(rep, want) {
		t.Fatalf("report %+v, want %+v", rep, want)
	}
	if len(progress) == 0 || progress[len(progress)-1] != [2]int{n, n} {
		t.Errorf("progress %v", progress)
	}
	if !strings.Contains(logged.String(), src.pendingID) || !strings.Contains(logged.String(), "resubmitting the same envelope") {
		t.Errorf("the pending marker is not reported:\n%s", logged.String())
	}

	src.open()
	dst := startEnv(t, &env{dsn: dsn, ca: src.ca})
	if r, p, i := dst.counts(); r != n || p != 0 || i != src.index {
		t.Fatalf("target holds %d records, %d pending, %d index rows; want %d, 0, %d", r, p, i, n, src.index)
	}
	if got := dst.get("/api/v2/attestations/" + src.pendingID); got.status != http.StatusNotFound {
		t.Errorf("pending attestation on the target: %d %s", got.status, got.body)
	}
	sameAnswers(t, src, dst)

	// The new deployment goes on: the pending one resubmitted is stored,
	// and newer than every copied record.
	if resp := dst.post(src.pendingReq); resp.status != http.StatusCreated {
		t.Fatalf("resubmit the pending attestation: %d %s", resp.status, resp.body)
	}
	if got := ids(dst.query(t, url.Values{"predicateType": {slsa}, "pageSize": {"2"}})); len(got) != 2 || got[0] != src.pendingID || got[1] != src.slsaIDs[len(src.slsaIDs)-1] {
		t.Errorf("newest slsa records on the target %v, want [%s %s]", got, src.pendingID, src.slsaIDs[len(src.slsaIDs)-1])
	}
}

func testCopyIdempotent(t *testing.T, dsn string) {
	src := newCopySource(t)
	mustCopy(t, src, dsn, CopyOptions{})
	first := dump(t, dsn)
	if len(first) != len(src.ids)+src.index {
		t.Fatalf("target holds %d rows, want %d", len(first), len(src.ids)+src.index)
	}
	rep := mustCopy(t, src, dsn, CopyOptions{})
	if rep.Copied != 0 || rep.Present != len(src.ids) || rep.Total != len(src.ids) {
		t.Fatalf("second copy: %+v", rep)
	}
	if again := dump(t, dsn); !reflect.DeepEqual(again, first) {
		t.Fatalf("second copy changed the target:\n%v\nwas\n%v", again, first)
	}
}

// Rows lost from the target (a copy cut short, someone's cleanup) are
// copied again, and only those.
func testCopyResumesAfterLoss(t *testing.T, dsn string) {
	src := newCopySource(t)
	mustCopy(t, src, dsn, CopyOptions{})
	full := dump(t, dsn)
	mysqltest.Exec(t, dsn, "DELETE FROM SignetAttestationRecords WHERE seq IN (2, 5)")
	mysqltest.Exec(t, dsn, "DELETE FROM SignetAttestationIndex WHERE seq IN (2, 5, 7)") // 7 keeps its record
	if got := dump(t, dsn); len(got) >= len(full) {
		t.Fatal("nothing deleted")
	}
	rep := mustCopy(t, src, dsn, CopyOptions{})
	if rep.Copied != 2 || rep.Present != len(src.ids)-2 {
		t.Fatalf("resumed copy: %+v", rep)
	}
	if got := dump(t, dsn); !reflect.DeepEqual(got, full) {
		t.Fatalf("after resuming the target holds\n%v\nwant\n%v", got, full)
	}
	src.open()
	sameAnswers(t, src, startEnv(t, &env{dsn: dsn, ca: src.ca}))
}

// A copy cancelled part way leaves whole batches; run again it completes.
func testCopyResumesAfterCancel(t *testing.T, dsn, reference string) {
	defer func(n int) { copyBatch = n }(copyBatch)
	copyBatch = 2
	src := newCopySource(t)
	mustCopy(t, src, reference, CopyOptions{})
	full := dump(t, reference)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := Copy(ctx, src.path, dsn, CopyOptions{Progress: func(done, _ int) {
		if done >= 4 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "run it again") {
		t.Fatalf("cancelled copy: %v", err)
	}
	var held int
	for _, row := range dump(t, dsn) {
		if strings.HasPrefix(row, "record ") {
			held++
		}
	}
	if held != 4 {
		t.Fatalf("the cancelled copy left %d records, want 4 (two batches)", held)
	}
	rep := mustCopy(t, src, dsn, CopyOptions{})
	if rep.Copied != len(src.ids)-4 || rep.Present != 4 {
		t.Fatalf("resumed copy: %+v", rep)
	}
	if got := dump(t, dsn); !reflect.DeepEqual(got, full) {
		t.Fatalf("after resuming the target holds\n%v\nwant\n%v", got, full)
	}
}

// A record the target holds with other content is refused by ID; one
// stored in other bytes but the same is not.
func testCopyConflict(t *testing.T, dsn string) {
	src := newCopySource(t)
	mustCopy(t, src, dsn, CopyOptions{})
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	raw := func(id string) []byte {
		var b []byte
		if err := db.QueryRow("SELECT record FROM SignetAttestationRecords WHERE id = ?", id).Scan(&b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	// The same record, spaced otherwise.
	var spaced bytes.Buffer
	if err := json.Indent(&spaced, raw(src.ids[2]), "", "  "); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE SignetAttestationRecords SET record = ? WHERE id = ?", spaced.Bytes(), src.ids[2]); err != nil {
		t.Fatal(err)
	}
	if rep := mustCopy(t, src, dsn, CopyOptions{}); rep.Copied != 0 || rep.Present != len(src.ids) {
		t.Fatalf("copy over a respaced record: %+v", rep)
	}
	// Another record under the same ID.
	var rec Record
	if err := json.Unmarshal(raw(src.ids[3]), &rec); err != nil {
		t.Fatal(err)
	}
	rec.StoredTime = rec.StoredTime.Add(time.Hour)
	other, err := json.Marshal(&rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE SignetAttestationRecords SET record = ? WHERE id = ?", other, src.ids[3]); err != nil {
		t.Fatal(err)
	}
	_, err = Copy(context.Background(), src.path, dsn, CopyOptions{})
	if err == nil || !strings.Contains(err.Error(), "attestation "+src.ids[3]+" with other content") {
		t.Fatalf("copy over a conflicting record: %v", err)
	}
}

// A target servers have stored attestations in already is refused: the
// copied records could not keep their order.
func testCopyTargetInUse(t *testing.T, dsn string) {
	src := newCopySource(t)
	running := startEnv(t, &env{dsn: dsn, ca: src.ca})
	other := running.submit(running.ca.issue(t, "carol@example.com", copyIssuerA), "elsewhere")
	_, err := Copy(context.Background(), src.path, dsn, CopyOptions{})
	if err == nil || !strings.Contains(err.Error(), "the target holds attestation "+other+" at position 1, where the source holds "+src.ids[0]) || !strings.Contains(err.Error(), "new, empty database") {
		t.Fatalf("copy into a database in use: %v", err)
	}
	if r, _, _ := running.counts(); r != 1 {
		t.Fatalf("the refused copy left %d records", r)
	}
}

func testCopySourceLocked(t *testing.T, dsn string) {
	defer func(d time.Duration) { lockTimeout = d }(lockTimeout)
	lockTimeout = 50 * time.Millisecond
	src := newCopySource(t)
	src.open() // a server running on it
	_, err := Copy(context.Background(), src.path, dsn, CopyOptions{})
	if err == nil || !strings.Contains(err.Error(), "locked by a running signet server; stop the server first") {
		t.Fatalf("copy of a store in use: %v", err)
	}
	src.stop()
	if rep := mustCopy(t, src, dsn, CopyOptions{}); rep.Copied != len(src.ids) {
		t.Fatalf("copy once stopped: %+v", rep)
	}
}

func testCopySourceRefused(t *testing.T, dsn string) {
	dir := t.TempDir()
	file := func(name string, content []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	boltFile := func(name string, fill func(tx *bolt.Tx) error) string {
		p := filepath.Join(dir, name)
		db, err := bolt.Open(p, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(fill); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	versioned := newCopySource(t)
	db, err := bolt.Open(versioned.path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte("2")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	for _, c := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.db"), "there is no attestation store at"},
		{file("empty.db", nil), "is empty, not an attestation store"},
		{file("text.db", bytes.Repeat([]byte("not a database\n"), 1000)), "is not a readable bbolt database"},
		{boltFile("other.db", func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err }), `is a bbolt database but not a signet attestation store (it has no "meta" bucket)`},
		{versioned.path, `has schema version "2", this signet copies version "1"`},
	} {
		_, err := Copy(context.Background(), c.path, dsn, CopyOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("copy of %s: %v, want %q", filepath.Base(c.path), err, c.want)
		}
	}
	tdb, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer tdb.Close()
	var tables int
	if err := tdb.QueryRow("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()").Scan(&tables); err != nil || tables != 0 {
		t.Errorf("refused sources left %d tables in the target (%v)", tables, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("copying a missing store created it: %v", err)
	}
}

func testCopyPacketTooSmall(t *testing.T, dsn string) {
	src := newCopySource(t)
	_, err := Copy(context.Background(), src.path, dsn, CopyOptions{MaxEnvelopeBytes: 1 << 30})
	if err == nil || !strings.Contains(err.Error(), "max_allowed_packet is") || !strings.Contains(err.Error(), "needs at least") {
		t.Fatalf("copy into a database whose packet is too small: %v", err)
	}
}
