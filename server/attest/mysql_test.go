package attest

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/mysqltest"
)

var dbSeq atomic.Int64

// mysqlEnvs opens each env on a new database of srv.
func mysqlEnvs(srv *mysqltest.Server) envMaker {
	return func(t testing.TB, mutate ...func(*Options)) *env {
		t.Helper()
		name := fmt.Sprintf("attest_%d", dbSeq.Add(1))
		srv.CreateDatabase(t, name)
		return startEnv(t, &env{dsn: srv.DSN(name)}, mutate...)
	}
}

// replica opens another store on e's database, with e's log and CA: a
// second server behind the load balancer.
func (e *env) replica(mutate ...func(*Options)) *env {
	e.t.Helper()
	return startEnv(e.t, &env{dsn: e.dsn, log: e.log, ca: e.ca}, mutate...)
}

func (e *env) sqlDB() *sql.DB { return e.store.recs.(*sqlRecords).db }

// behaviour are the tests of what the store does, whatever keeps it; each
// runs as TestX on bbolt and as TestMySQL/X here.
var behaviour = []struct {
	name string
	test func(*testing.T, envMaker)
}{
	{"SubmitAndGet", testSubmitAndGet},
	{"Duplicate", testDuplicate},
	{"ConcurrentDuplicate", testConcurrentDuplicate},
	{"PublicKeyVerifier", testPublicKeyVerifier},
	{"Refusals", testRefusals},
	{"LogRejects", testLogRejects},
	{"LogFailureAndResubmit", testLogFailureAndResubmit},
	{"LogReturnsWrongEntry", testLogReturnsWrongEntry},
	{"KeepLogged", testKeepLogged},
	{"Queries", testQueries},
	{"QueryRefusals", testQueryRefusals},
	{"PagesAreBoundedInBytes", testPagesAreBoundedInBytes},
	{"TimestampFailureStoresNothing", testTimestampFailureStoresNothing},
	{"TimestampFailureKeepsEarlierMarker", testTimestampFailureKeepsEarlierMarker},
	{"ExpiredCertificateStoredWithoutTimestamp", testExpiredCertificateStoredWithoutTimestamp},
	{"BundleIDs", testBundleIDs},
	{"BundleOfRecordWithoutTimestamp", testBundleOfRecordWithoutTimestamp},
}

// TestMySQL runs the store on a real MariaDB: the behaviour tests, then
// what only a shared database has (replicas, its packet limit, its
// outages). One server serves them all, each test on a database of its
// own; the outage test, which kills the server, comes last.
func TestMySQL(t *testing.T) {
	srv := mysqltest.Start(t)
	newEnv := mysqlEnvs(srv)
	for _, b := range behaviour {
		t.Run(b.name, func(t *testing.T) { b.test(t, newEnv) })
	}
	t.Run("Replicas", func(t *testing.T) { testReplicas(t, newEnv) })
	t.Run("ReplicasSubmitAtOnce", func(t *testing.T) { testReplicasSubmitAtOnce(t, newEnv) })
	t.Run("ClaimsAcrossReplicas", func(t *testing.T) { testClaimsAcrossReplicas(t, newEnv) })
	t.Run("LargestEnvelope", func(t *testing.T) { testLargestEnvelope(t, newEnv) })
	t.Run("SchemaVersion", func(t *testing.T) { testSQLSchemaVersion(t, newEnv) })
	t.Run("NoSnapshot", func(t *testing.T) { testNoSnapshot(t, newEnv) })
	t.Run("PacketTooSmall", func(t *testing.T) { testPacketTooSmall(t, srv, newEnv) })
	t.Run("DatabaseDown", func(t *testing.T) { testDatabaseDown(t, srv, newEnv) })
}

// An attestation stored through one replica is found through another, by
// id and by every query, and pages run across what both stored.
func testReplicas(t *testing.T, newEnv envMaker) {
	defer func(d time.Duration) { countsRefresh = d }(countsRefresh)
	countsRefresh = 20 * time.Millisecond
	a := newEnv(t)
	b := a.replica()
	s := a.ca.issue(t, "alice@example.com", "https://accounts.example.com")
	req := map[string]any{"envelope": s.sign(t, InTotoPayloadType, statement(slsa, hexDigest("x"))), "verifier": s.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")}
	first := a.post(req)
	if first.status != http.StatusCreated {
		t.Fatalf("submit through a: %d %s", first.status, first.body)
	}
	id := first.json(t)["attestationId"].(string)
	if got := b.get("/api/v2/attestations/" + id); got.status != http.StatusOK || !strings.Contains(string(got.body), id) {
		t.Fatalf("get through b: %d %s", got.status, got.body)
	}
	for _, q := range []url.Values{
		{"digest": {"sha256:" + hexDigest("x")}},
		{"predicateType": {slsa}},
		{"identity": {"alice@example.com"}, "issuer": {"https://accounts.example.com"}},
	} {
		if got := ids(b.query(t, q)); !reflect.DeepEqual(got, []string{id}) {
			t.Errorf("query %v through b: %v, want [%s]", q, got, id)
		}
	}
	// Resubmitted through the other replica: a duplicate, not logged again.
	second := b.post(req)
	if second.status != http.StatusConflict || second.header.Get("Location") != "/api/v2/attestations/"+id || !strings.Contains(string(second.body), "already stored") {
		t.Fatalf("resubmit through b: %d %s", second.status, second.body)
	}
	if n := a.log.count(); n != 1 {
		t.Fatalf("the log was asked %d times", n)
	}

	// Submissions alternating between the replicas page newest first
	// through either.
	want := []string{}
	for i := range 6 {
		via := a
		if i%2 == 1 {
			via = b
		}
		want = append([]string{via.submit(s, "paged")}, want...)
	}
	for _, start := range []*env{a, b} {
		var got []string
		params := url.Values{"digest": {"sha256:" + hexDigest("paged")}, "pageSize": {"4"}}
		for via, pages := start, 0; ; pages++ {
			if pages > 2 {
				t.Fatal("pagination does not end")
			}
			p := via.query(t, params)
			got = append(got, ids(p)...)
			if p.NextPageToken == "" {
				break
			}
			params.Set("pageToken", p.NextPageToken)
			if via == a { // the next page from the other replica
				via = b
			} else {
				via = a
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("paged across replicas: %v, want %v", got, want)
		}
	}

	// Each replica's gauge counts what the database holds, not what it
	// stored itself.
	deadline := time.Now().Add(10 * time.Second)
	for {
		va, vb := metricValue(t, a.store.metrics.records), metricValue(t, b.store.metrics.records)
		if va == 7 && vb == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored gauges a %v b %v, want 7 each", va, vb)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The same envelope sent to two replicas at once is appended once: the
// second is told the first is logging it.
func testReplicasSubmitAtOnce(t *testing.T, newEnv envMaker) {
	a := newEnv(t)
	b := a.replica()
	a.log.entered, a.log.release = make(chan struct{}), make(chan struct{})
	s := a.ca.issue(t, "alice@example.com", "https://accounts.example.com")
	req := map[string]any{"envelope": s.sign(t, InTotoPayloadType, statement(slsa, hexDigest("a"))), "verifier": s.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")}
	first := make(chan response, 1)
	go func() { first <- a.post(req) }()
	select {
	case <-a.log.entered:
	case r := <-first:
		t.Fatalf("first request ended before reaching the log: %d %s", r.status, r.body)
	case <-time.After(10 * time.Second):
		t.Fatal("first request did not reach the log within 10s")
	}
	second := make(chan response, 1)
	go func() { second <- b.post(req) }()
	var r2 response
	select {
	case r2 = <-second:
	case <-time.After(10 * time.Second):
		// It is waiting in the log: it was let through to append again.
		// Let it finish, or the servers cannot close.
		go func() { <-a.log.entered }()
		close(a.log.release)
		<-second
		t.Fatal("the second replica's request reached the log as well")
	}
	close(a.log.release)
	if r := <-first; r.status != http.StatusCreated {
		t.Fatalf("first: %d %s", r.status, r.body)
	}
	if r2.status != http.StatusConflict || !strings.Contains(r2.json(t)["message"].(string), "being logged by another request") || r2.header.Get("Location") == "" {
		t.Fatalf("second: %d %s", r2.status, r2.body)
	}
	if n := a.log.count(); n != 1 {
		t.Fatalf("log appended %d times", n)
	}
	if r, p, _ := a.counts(); r != 1 || p != 0 {
		t.Fatalf("%d records, %d pending", r, p)
	}
}

// A claim another replica holds keeps others off until it is released
// (the append failed, outcome unknown) or expires (the replica died);
// then a resubmission through any replica completes the attestation.
func testClaimsAcrossReplicas(t *testing.T, newEnv envMaker) {
	a := newEnv(t)
	b := a.replica()
	s := a.ca.issue(t, "alice@example.com", "https://accounts.example.com")
	req := func(subject string) map[string]any {
		return map[string]any{"envelope": s.sign(t, InTotoPayloadType, statement(slsa, hexDigest(subject))), "verifier": s.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")}
	}

	// The log fails through a: the marker stays, released.
	one := req("one")
	a.log.err = errors.New("connection reset")
	if r := a.post(one); r.status != http.StatusServiceUnavailable {
		t.Fatalf("log down: %d %s", r.status, r.body)
	}
	a.log.err = nil
	if r, p, _ := a.counts(); r != 0 || p != 1 {
		t.Fatalf("%d records, %d pending after the failed append", r, p)
	}
	if r := b.post(one); r.status != http.StatusCreated {
		t.Fatalf("resubmit through b: %d %s", r.status, r.body)
	}
	if r, p, _ := a.counts(); r != 1 || p != 0 {
		t.Fatalf("%d records, %d pending after the resubmission", r, p)
	}

	// A replica that died mid-append leaves a live claim: others wait for
	// it to expire.
	two := req("two")
	sub := validated(t, a, two)
	if _, err := a.sqlDB().Exec("INSERT INTO SignetAttestationPending (id, since, owner, lease_until) VALUES (?, UTC_TIMESTAMP(6), 'dead-replica', UTC_TIMESTAMP(6) + INTERVAL 1 HOUR)", sub.id); err != nil {
		t.Fatal(err)
	}
	r := b.post(two)
	if r.status != http.StatusConflict || !strings.Contains(string(r.body), "being logged by another request") {
		t.Fatalf("with a live claim: %d %s", r.status, r.body)
	}
	if _, err := a.sqlDB().Exec("UPDATE SignetAttestationPending SET lease_until = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND WHERE id = ?", sub.id); err != nil {
		t.Fatal(err)
	}
	if r := b.post(two); r.status != http.StatusCreated {
		t.Fatalf("after the claim expired: %d %s", r.status, r.body)
	}
	if r, p, _ := a.counts(); r != 2 || p != 0 {
		t.Fatalf("%d records, %d pending", r, p)
	}
	if n := a.log.count(); n != 3 {
		t.Fatalf("the log was asked %d times, want 3 (one failed, two appended)", n)
	}
}

// validated is what the store makes of a request body.
func validated(t *testing.T, e *env, body map[string]any) *submission {
	t.Helper()
	env, ver, ok := decodeSubmission(must(json.Marshal(body)))
	if !ok {
		t.Fatal("body does not decode")
	}
	sub, err := e.store.validator.validate(env, ver)
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// An envelope just under the default limit is stored and read back: the
// database takes a record that size (max_allowed_packet).
func testLargestEnvelope(t *testing.T, newEnv envMaker) {
	e := newEnv(t)
	s := e.ca.issue(t, "alice@example.com", "https://accounts.example.com")
	stmt := must(json.Marshal(map[string]any{ // ~31 MiB in base64
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": "sbom", "digest": map[string]string{"sha256": hexDigest("big")}}},
		"predicateType": spdx,
		"predicate":     map[string]any{"packages": strings.Repeat("x", 23<<20)},
	}))
	body := map[string]any{"envelope": s.sign(t, InTotoPayloadType, stmt), "verifier": s.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")}
	resp := e.post(body)
	if resp.status != http.StatusCreated {
		t.Fatalf("%d %.500s", resp.status, resp.body)
	}
	id := resp.json(t)["attestationId"].(string)
	rec, err := e.store.get(context.Background(), id)
	if err != nil || rec == nil || !bytes.Equal(rec.Envelope.GetPayload(), stmt) {
		t.Fatalf("read back: %v", err)
	}
	if n, bound := len(e.rawRecord(id)), recordBound(validated(t, e, body)); int64(n) > bound || int64(n) > e.store.maxRecord {
		t.Fatalf("stored record of %d bytes, over its bound %d or the packet %d", n, bound, e.store.maxRecord)
	}
}

func testSQLSchemaVersion(t *testing.T, newEnv envMaker) {
	e := newEnv(t)
	if _, err := e.sqlDB().Exec("UPDATE SignetAttestationMeta SET value = '2' WHERE name = 'schema'"); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{DSN: e.dsn, Log: e.log})
	if err == nil {
		s.Close()
		t.Fatal("opened a database of another schema version")
	}
	if !strings.Contains(err.Error(), `schema version "2", this signet reads version "1"; use the signet release that wrote it`) {
		t.Fatalf("refusal: %v", err)
	}
}

func testNoSnapshot(t *testing.T, newEnv envMaker) {
	e := newEnv(t)
	err := e.store.Snapshot(func(int64, int) (io.Writer, error) {
		t.Fatal("Snapshot asked where to write a copy")
		return nil, nil
	})
	if !errors.Is(err, ErrNoSnapshot) || !strings.Contains(err.Error(), "mysqldump") || !strings.Contains(err.Error(), "mariabackup") {
		t.Fatalf("Snapshot: %v", err)
	}
}

func TestCheckPacket(t *testing.T) {
	if err := checkPacket(64<<20, 32<<20); err != nil {
		t.Errorf("64 MiB for 32 MiB envelopes: %v", err)
	}
	if err := checkPacket(34<<20, 32<<20); err != nil {
		t.Errorf("34 MiB for 32 MiB envelopes: %v", err)
	}
	err := checkPacket(16<<20, 32<<20)
	for _, want := range []string{"max_allowed_packet is 16777216 bytes", "maxEnvelopeBytes 33554432 needs at least 35651584", "set max_allowed_packet = 34M or more", "lower attestations.maxEnvelopeBytes to 14680064 or less"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("16 MiB for 32 MiB envelopes: %v, want it to say %q", err, want)
		}
	}
	if err := checkPacket(1<<20, 32<<20); err == nil || strings.Contains(err.Error(), "lower attestations.maxEnvelopeBytes") {
		t.Errorf("1 MiB, which fits no envelope: %v", err)
	}
}

// A database whose max_allowed_packet cannot take the largest record is
// refused at open; one that takes the largest envelope but not a record
// bloated by its subjects refuses that attestation before it is logged.
func testPacketTooSmall(t *testing.T, srv *mysqltest.Server, newEnv envMaker) {
	root, err := sql.Open("mysql", srv.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	var was int64
	if err := root.QueryRow("SELECT @@GLOBAL.max_allowed_packet").Scan(&was); err != nil {
		t.Fatal(err)
	}
	setPacket := func(n int64) {
		t.Helper()
		if _, err := root.Exec(fmt.Sprintf("SET GLOBAL max_allowed_packet = %d", n)); err != nil {
			t.Fatal(err)
		}
	}
	// New sessions take the global value; the store's are all new.
	t.Cleanup(func() {
		setPacket(was)
		root.Close()
	})

	e := newEnv(t, func(o *Options) { o.MaxEnvelopeBytes = 8 << 20 })
	e.srv.Close()
	e.store.Close()
	setPacket(16 << 20)
	s, err := New(Options{DSN: e.dsn, Log: e.log})
	if err == nil {
		s.Close()
		t.Fatal("opened with a 16 MiB max_allowed_packet for 32 MiB envelopes")
	}
	for _, want := range []string{"max_allowed_packet is 16777216 bytes", "needs at least 35651584", "max_allowed_packet = 34M", "attestations.maxEnvelopeBytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}

	setPacket(10 << 20)
	e.open(func(o *Options) { o.MaxEnvelopeBytes = 8 << 20 })
	// ~5 MiB of subjects: an envelope under 8 MiB, a record over 10 MiB.
	sg := e.ca.issue(t, "alice@example.com", "https://accounts.example.com")
	digests := make([]string, 50_000)
	for i := range digests {
		digests[i] = hexDigest(fmt.Sprint(i))
	}
	resp := e.post(map[string]any{"envelope": sg.sign(t, InTotoPayloadType, statement(slsa, digests...)), "verifier": sg.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")})
	if resp.status != http.StatusRequestEntityTooLarge || !strings.Contains(string(resp.body), "max_allowed_packet") || !strings.Contains(string(resp.body), "nothing was logged") {
		t.Fatalf("%d %.500s", resp.status, resp.body)
	}
	if n := e.log.count(); n != 0 {
		t.Fatalf("the log was asked %d times", n)
	}
	if r, p, i := e.counts(); r+p+i != 0 {
		t.Fatalf("database changed: %d records, %d pending, %d index rows", r, p, i)
	}
	// A smaller one goes through.
	if id := e.submit(sg, "small"); id == "" {
		t.Fatal("no id")
	}
}

// A database that is down answers 503 and changes nothing; once it is
// back the same request succeeds. One that dies between the append and
// the store leaves the marker, and a resubmission completes it.
func testDatabaseDown(t *testing.T, srv *mysqltest.Server, newEnv envMaker) {
	e := newEnv(t)
	b := e.replica()
	s := e.ca.issue(t, "alice@example.com", "https://accounts.example.com")
	req := map[string]any{"envelope": s.sign(t, InTotoPayloadType, statement(slsa, hexDigest("a"))), "verifier": s.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")}

	srv.Kill()
	resp := e.post(req)
	if resp.status != http.StatusServiceUnavailable {
		t.Fatalf("database down: %d %s", resp.status, resp.body)
	}
	msg := resp.json(t)["message"].(string)
	for _, want := range []string{"attestation database is unavailable", "not stored", "retry the same request"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "127.0.0.1") || strings.Contains(msg, "connection refused") {
		t.Errorf("the answer gives away the database's address or error: %q", msg)
	}
	if n := e.log.count(); n != 0 {
		t.Fatalf("the log was asked %d times with the database down", n)
	}
	if v := metricValue(t, e.store.metrics.submissions.WithLabelValues("storage_unavailable")); v != 1 {
		t.Errorf("storage_unavailable submissions %v", v)
	}
	for _, path := range []string{"/api/v2/attestations/" + hexDigest("x"), "/api/v2/attestations?digest=sha256:" + hexDigest("a")} {
		if r := e.get(path); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "unavailable") {
			t.Errorf("GET %s with the database down: %d %s", path, r.status, r.body)
		}
	}

	srv.Restart(t)
	if r, p, i := e.counts(); r+p+i != 0 {
		t.Fatalf("the failed submission changed the database: %d records, %d pending, %d index rows", r, p, i)
	}
	if r := e.post(req); r.status != http.StatusCreated {
		t.Fatalf("database back: %d %s", r.status, r.body)
	}

	// Down between the append and the store.
	e.log.entered, e.log.release = make(chan struct{}), make(chan struct{})
	late := map[string]any{"envelope": s.sign(t, InTotoPayloadType, statement(slsa, hexDigest("late"))), "verifier": s.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")}
	done := make(chan response, 1)
	go func() { done <- e.post(late) }()
	select {
	case <-e.log.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the log")
	}
	srv.Kill()
	close(e.log.release)
	r := <-done
	e.log.entered, e.log.release = nil, nil
	if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "could not store the logged attestation") {
		t.Fatalf("database down after the append: %d %s", r.status, r.body)
	}
	srv.Restart(t)
	if r, p, _ := e.counts(); r != 1 || p != 1 {
		t.Fatalf("%d records, %d pending, want the marker of the logged one", r, p)
	}
	// Its claim could not be released: another replica waits for it to
	// expire, the replica that holds it takes it back at once.
	if r := b.post(late); r.status != http.StatusConflict {
		t.Fatalf("through the other replica: %d %s", r.status, r.body)
	}
	if r := e.post(late); r.status != http.StatusCreated {
		t.Fatalf("resubmitted: %d %s", r.status, r.body)
	}
	if r, p, _ := e.counts(); r != 2 || p != 0 {
		t.Fatalf("%d records, %d pending", r, p)
	}
}
