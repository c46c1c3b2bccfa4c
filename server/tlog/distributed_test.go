package tlog

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	f_log "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/signet-dev/signet/internal/backendtest"
	"github.com/signet-dev/signet/internal/mysqltest"
	"github.com/signet-dev/signet/internal/s3test"
)

// distributedStore is a database server and an object store of the test's
// own, real ones (MariaDB from Debian's packages, versitygw).
type distributedStore struct {
	db *mysqltest.Server
	s3 *s3test.Server
}

func startDistributedStore(t *testing.T) *distributedStore {
	t.Helper()
	var ds distributedStore
	ds.db, ds.s3 = backendtest.Start(t)
	return &ds
}

// log returns the settings of a log in database db and under prefix of
// bucket, creating both on first use.
func (ds *distributedStore) log(t *testing.T, db, bucket, prefix string) *Distributed {
	t.Helper()
	ds.db.CreateDatabase(t, db)
	ds.s3.CreateBucket(t, bucket)
	return ds.settings(db, bucket, prefix)
}

func (ds *distributedStore) settings(db, bucket, prefix string) *Distributed {
	ak, sk := ds.s3.Credentials()
	return &Distributed{
		DSN:    ds.db.DSN(db),
		Bucket: bucket, Prefix: prefix,
		AWS: aws.Config{
			Region:      ds.s3.Region(),
			Credentials: credentials.NewStaticCredentialsProvider(ak, sk, ""),
			HTTPClient:  &http.Client{Timeout: 10 * time.Second},
		},
		Endpoint:  ds.s3.Endpoint(),
		PathStyle: true,
	}
}

func openDistributedLog(t *testing.T, d *Distributed, key ed25519.PrivateKey) *testLog {
	t.Helper()
	return openTestLog(t, "", key, func(o *Options) { o.Dir, o.Distributed = "", d })
}

// appendVia posts a fresh entry to tl and returns its status and entry.
func appendVia(t *testing.T, tl *testLog, s *signer, artifact string) (int, *rekorv1.TransparencyLogEntry, []byte) {
	t.Helper()
	req := s.request(t, []byte(artifact))
	status, body := post(t, http.DefaultClient, tl.srv.URL, createEntryJSON(t, req))
	if status != http.StatusCreated {
		return status, nil, body
	}
	tle := decodeTLE(t, body)
	if err := verifyWithSigstoreGo(t, tl, s, req, tle); err != nil {
		t.Fatalf("sigstore-go rejects %s (entry %d): %v", artifact, tle.GetLogIndex(), err)
	}
	return status, tle, body
}

// checkpointOf opens a signed checkpoint with tl's key.
func checkpointOf(t *testing.T, tl *testLog, raw string) f_log.Checkpoint {
	t.Helper()
	n, err := note.Open([]byte(raw), note.VerifierList(tl.verifier))
	if err != nil {
		t.Fatalf("checkpoint does not verify with the log key: %v\n%s", err, raw)
	}
	var cp f_log.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		t.Fatal(err)
	}
	return cp
}

// Two servers on one database and one bucket serve one log: appends
// through either get distinct indexes and proofs under checkpoints of the
// one key, every checkpoint either hands out is consistent with the
// largest, and the log reopens as it was.
func TestDistributedReplicasServeOneLog(t *testing.T) {
	ds := startDistributedStore(t)
	d := ds.log(t, "onelog", "signet-log", "log/")
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	a := openDistributedLog(t, d, key)
	b := openDistributedLog(t, d, key)
	s := newECDSASigner(t)

	const n = 40
	tles := make([]*rekorv1.TransparencyLogEntry, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			via := a
			if i%2 == 1 {
				via = b
			}
			status, tle, body := appendVia(t, via, s, fmt.Sprintf("artifact %d", i))
			if status != http.StatusCreated {
				t.Errorf("append %d: status %d: %s", i, status, body)
				return
			}
			tles[i] = tle
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	seen := map[int64]int{}
	var largest *rekorv1.TransparencyLogEntry
	for i, tle := range tles {
		if j, dup := seen[tle.GetLogIndex()]; dup {
			t.Fatalf("appends %d and %d both got index %d", j, i, tle.GetLogIndex())
		}
		seen[tle.GetLogIndex()] = i
		if largest == nil || tle.GetInclusionProof().GetTreeSize() > largest.GetInclusionProof().GetTreeSize() {
			largest = tle
		}
	}
	for i := range int64(n) {
		if _, ok := seen[i]; !ok {
			t.Fatalf("no append got index %d: %v", i, seen)
		}
	}
	big := largest.GetInclusionProof()
	for i, tle := range tles {
		p := tle.GetInclusionProof()
		cp := checkpointOf(t, a, p.GetCheckpoint().GetEnvelope())
		if cp.Size != uint64(p.GetTreeSize()) {
			t.Fatalf("append %d: checkpoint size %d, proof tree size %d", i, cp.Size, p.GetTreeSize())
		}
		if err := consistent(a.tiles, uint64(p.GetTreeSize()), uint64(big.GetTreeSize()), p.GetRootHash(), big.GetRootHash()); err != nil {
			t.Fatalf("append %d's tree is not a prefix of the largest handed out: %v", i, err)
		}
	}

	// Either server serves the tiles and, soon, a published checkpoint of
	// the whole tree.
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, body := get(t, b.srv.URL+"/api/v2/checkpoint")
		if resp.StatusCode == http.StatusOK && checkpointOf(t, b, string(body)).Size == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of %d entries published within 20s; last: %d %s", n, resp.StatusCode, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp, body := get(t, a.srv.URL+"/api/v2/tile/0/000.p/"+strconv.Itoa(n)); resp.StatusCode != http.StatusOK || len(body) != n*32 {
		t.Fatalf("tile 0/000.p/%d: %d, %d bytes", n, resp.StatusCode, len(body))
	}

	// The record in the database names a tree at least as large as every
	// one handed out.
	rec, err := a.signer.store.load(context.Background())
	if err != nil || rec == nil {
		t.Fatalf("signed-head record: %v", err)
	}
	if got := checkpointOf(t, a, string(rec)).Size; got < uint64(big.GetTreeSize()) {
		t.Fatalf("the record names tree %d, smaller than the %d handed out", got, big.GetTreeSize())
	}

	a.close(t)
	b.close(t)
	c := openDistributedLog(t, d, key)
	status, tle, body := appendVia(t, c, s, "after reopening")
	if status != http.StatusCreated || tle.GetLogIndex() != n {
		t.Fatalf("append after reopening: %d, index %d: %s", status, tle.GetLogIndex(), body)
	}
	p := tle.GetInclusionProof()
	if err := consistent(c.tiles, uint64(big.GetTreeSize()), uint64(p.GetTreeSize()), big.GetRootHash(), p.GetRootHash()); err != nil {
		t.Fatalf("the reopened log does not extend the tree handed out before: %v", err)
	}
}

// A database restored from an old backup holds an older tree than the
// checkpoint already published in the object store: the log refuses to
// start rather than sign a second tree of that size.
func TestDistributedRefusesRolledBackDatabase(t *testing.T) {
	ds := startDistributedStore(t)
	d := ds.log(t, "before", "signet-log", "")
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	tl := openDistributedLog(t, d, key)
	s := newECDSASigner(t)
	for i := range 3 {
		if status, _, body := appendVia(t, tl, s, fmt.Sprintf("a%d", i)); status != http.StatusCreated {
			t.Fatalf("append: %d %s", status, body)
		}
	}
	// Wait for the checkpoint of all three to be published.
	deadline := time.Now().Add(20 * time.Second)
	for {
		raw, err := readObject(context.Background(), tl.objects, d.Bucket, "checkpoint", maxCheckpointBytes)
		if err == nil && raw != nil && checkpointOf(t, tl, string(raw)).Size == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of 3 entries published: %v %s", err, raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
	tl.close(t)

	ds.db.CreateDatabase(t, "emptied")
	_, err := Open(context.Background(), Options{Distributed: ds.settings("emptied", d.Bucket, ""), Signer: key, Origin: testOrigin})
	if !errors.Is(err, ErrForked) {
		t.Fatalf("opened over a database without the tree of the published checkpoint: %v", err)
	}
	for _, want := range []string{"the published checkpoint (s3://signet-log/checkpoint) was for 3 entries", "holds only 0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
}

// While the database is down appends fail at once with a 503 that says
// so, nothing acknowledged is lost, and appends succeed again once it is
// back.
func TestDistributedDatabaseOutage(t *testing.T) {
	ds := startDistributedStore(t)
	d := ds.log(t, "outage", "signet-log", "")
	tl := openDistributedLog(t, d, nil)
	s := newECDSASigner(t)
	status, first, body := appendVia(t, tl, s, "before")
	if status != http.StatusCreated {
		t.Fatalf("append: %d %s", status, body)
	}

	ds.db.Kill()
	start := time.Now()
	status, _, body = appendVia(t, tl, s, "during")
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "database or object store is not answering") {
		t.Fatalf("append with the database down: %d %s", status, body)
	}
	if took := time.Since(start); took > integrationWait+5*time.Second {
		t.Fatalf("the refusal took %v", took)
	}

	ds.db.Restart(t)
	var after *rekorv1.TransparencyLogEntry
	deadline := time.Now().Add(60 * time.Second)
	for after == nil {
		status, after, body = appendVia(t, tl, s, "after")
		if after == nil && time.Now().After(deadline) {
			t.Fatalf("appends still fail a minute after the database came back: %d %s", status, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	p1, p2 := first.GetInclusionProof(), after.GetInclusionProof()
	if err := consistent(tl.tiles, uint64(p1.GetTreeSize()), uint64(p2.GetTreeSize()), p1.GetRootHash(), p2.GetRootHash()); err != nil {
		t.Fatalf("the tree after the outage does not extend the one before: %v", err)
	}
}

// While the object store is down appends are sequenced but cannot be
// integrated: the client gets a 503 after integrationWait, and the entry
// is integrated (and its retry answered with its index) once the store is
// back.
func TestDistributedObjectStoreOutage(t *testing.T) {
	defer func(d time.Duration) { integrationWait = d }(integrationWait)
	integrationWait = 3 * time.Second
	ds := startDistributedStore(t)
	d := ds.log(t, "s3outage", "signet-log", "")
	tl := openDistributedLog(t, d, nil)
	s := newECDSASigner(t)
	if status, _, body := appendVia(t, tl, s, "before"); status != http.StatusCreated {
		t.Fatalf("append: %d %s", status, body)
	}

	ds.s3.Kill()
	req := s.request(t, []byte("during"))
	status, body := post(t, http.DefaultClient, tl.srv.URL, createEntryJSON(t, req))
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "database or object store is not answering") {
		t.Fatalf("append with the object store down: %d %s", status, body)
	}

	ds.s3.Restart(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		status, body = post(t, http.DefaultClient, tl.srv.URL, createEntryJSON(t, req))
		if status == http.StatusCreated || status == http.StatusConflict {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the retry still fails a minute after the object store came back: %d %s", status, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if status == http.StatusCreated {
		if tle := decodeTLE(t, body); tle.GetLogIndex() != 1 {
			t.Fatalf("the retried entry got index %d; it was sequenced as 1 during the outage", tle.GetLogIndex())
		}
	}
}

// The shared record only grows: a record put back to an older signed
// checkpoint (a database restored under running servers) stops signing.
func TestDistributedRefusesRecordRolledBack(t *testing.T) {
	ds := startDistributedStore(t)
	d := ds.log(t, "record", "signet-log", "")
	tl := openDistributedLog(t, d, nil)
	s := newECDSASigner(t)
	_, first, _ := appendVia(t, tl, s, "one")
	if first == nil {
		t.Fatal("first append failed")
	}
	if status, _, body := appendVia(t, tl, s, "two"); status != http.StatusCreated {
		t.Fatalf("append: %d %s", status, body)
	}
	db, err := sql.Open("mysql", ds.db.DSN("record"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("UPDATE SignetSignedHead SET note = ?", first.GetInclusionProof().GetCheckpoint().GetEnvelope()); err != nil {
		t.Fatal(err)
	}
	status, _, body := appendVia(t, tl, s, "three")
	if status != http.StatusInternalServerError {
		t.Fatalf("append over a rolled-back record: %d %s", status, body)
	}
	_, err = tl.signer.Sign([]byte(f_log.Checkpoint{Origin: testOrigin, Size: 3, Hash: make([]byte, 32)}.Marshal()))
	if !errors.Is(err, ErrForked) || !strings.Contains(err.Error(), "the record was rolled back") {
		t.Fatalf("signing over a rolled-back record: %v", err)
	}
	// tessera's shutdown waits for a checkpoint the guard will not sign;
	// a server's shutdown deadline ends it, as this one does.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = tl.Close(ctx)
}
