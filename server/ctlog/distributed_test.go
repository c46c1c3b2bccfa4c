package ctlog

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/ctutil"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	f_log "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/ctonly"
	"golang.org/x/mod/sumdb/note"

	"github.com/signet-dev/signet/internal/backendtest"
	"github.com/signet-dev/signet/internal/mysqltest"
	"github.com/signet-dev/signet/internal/s3test"
	"github.com/signet-dev/signet/server/tlog"
)

const testOrigin = "example.com/ctlog"

// distStore is a database server and an object store of the test's own,
// real ones (MariaDB, versitygw).
type distStore struct {
	db *mysqltest.Server
	s3 *s3test.Server
}

func startDistStore(t *testing.T) *distStore {
	t.Helper()
	var ds distStore
	ds.db, ds.s3 = backendtest.Start(t)
	return &ds
}

// settings are those of a log in database db under prefix of bucket,
// both created.
func (ds *distStore) settings(t *testing.T, db, bucket, prefix string) *tlog.Distributed {
	t.Helper()
	ds.db.CreateDatabase(t, db)
	ds.s3.CreateBucket(t, bucket)
	ak, sk := ds.s3.Credentials()
	return &tlog.Distributed{
		DSN:    ds.db.DSN(db),
		Bucket: bucket, Prefix: prefix,
		AWS: aws.Config{
			Region:      ds.s3.Region(),
			Credentials: credentials.NewStaticCredentialsProvider(ak, sk, ""),
			HTTPClient:  &http.Client{Timeout: 10 * time.Second},
		},
		Endpoint:  ds.s3.Endpoint(),
		PathStyle: true, // versitygw on loopback
	}
}

// replica is one server's CT log on the shared storage, with its HTTP API.
type replica struct {
	*Log
	url string
}

func openReplica(t *testing.T, ca *testCA, key *ecdsa.PrivateKey, d *tlog.Distributed) *replica {
	t.Helper()
	l, err := Open(context.Background(), Options{Distributed: d, Signer: key, Origin: testOrigin, CAChain: []*x509.Certificate{ca.inter, ca.root}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	l.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		closeLog(t, l)
	})
	return &replica{Log: l, url: srv.URL}
}

func closeLog(t *testing.T, l *Log) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Errorf("close: %v", err)
	}
}

// logged is a precertificate the log gave an SCT for.
type logged struct {
	pre   []byte
	sct   *ct.SignedCertificateTimestamp
	index uint64
}

// submit makes a precertificate and logs it through r, in process or
// through add-pre-chain; the SCT must verify over the final certificate.
func submit(t *testing.T, ca *testCA, r *replica, viaHTTP bool) (logged, error) {
	tmpl, k := ca.leaf(t)
	pre := *tmpl
	pre.ExtraExtensions = []pkix.Extension{poison}
	der := ca.sign(t, &pre, &k.PublicKey)
	var sct *ct.SignedCertificateTimestamp
	if viaHTTP {
		body, _ := json.Marshal(ct.AddChainRequest{Chain: [][]byte{der, ca.inter.Raw, ca.root.Raw}})
		resp, err := http.Post(r.url+"/ctlog/ct/v1/add-pre-chain", "application/json", bytes.NewReader(body))
		if err != nil {
			return logged{}, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return logged{}, fmt.Errorf("add-pre-chain: %d %s", resp.StatusCode, b)
		}
		var acr ct.AddChainResponse
		if err := json.Unmarshal(b, &acr); err != nil {
			return logged{}, err
		}
		if sct, err = acr.ToSignedCertificateTimestamp(); err != nil {
			return logged{}, err
		}
	} else {
		var err error
		if sct, err = r.SubmitPrecert(context.Background(), der, ca.inter); err != nil {
			return logged{}, err
		}
	}
	// static-ct-api's leaf_index extension: type 0, length 5, 40 bits.
	e := sct.Extensions
	if len(e) != 8 || e[0] != 0 || e[1] != 0 || e[2] != 5 {
		return logged{}, fmt.Errorf("SCT extensions %x are not a leaf_index", e)
	}
	idx := binary.BigEndian.Uint64(append([]byte{0, 0, 0}, e[3:]...))

	raw, _ := cttls.Marshal(*sct)
	list, _ := cttls.Marshal(ctx509.SignedCertificateTimestampList{SCTList: []ctx509.SerializedSCT{{Val: raw}}})
	val, _ := asn1.Marshal(list)
	tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2}, Value: val}}
	final, _ := ctx509.ParseCertificate(ca.sign(t, tmpl, &k.PublicKey))
	issuer, _ := ctx509.ParseCertificate(ca.inter.Raw)
	if err := ctutil.VerifySCT(r.PublicKey(), []*ctx509.Certificate{final, issuer}, sct, true); err != nil {
		return logged{}, fmt.Errorf("SCT of entry %d does not verify: %v", idx, err)
	}
	if sct.LogID.KeyID != [32]byte(r.LogID()) {
		return logged{}, fmt.Errorf("SCT log ID %x", sct.LogID.KeyID)
	}
	return logged{pre: der, sct: sct, index: idx}, nil
}

// leafHash is the Merkle leaf hash of e's entry, as the log must have
// stored it.
func (e logged) leafHash(t *testing.T, ca *testCA) []byte {
	t.Helper()
	tbs, err := precertTBS(e.pre)
	if err != nil {
		t.Fatal(err)
	}
	kh := sha256.Sum256(ca.inter.RawSubjectPublicKeyInfo)
	entry := &ctonly.Entry{
		Timestamp: e.sct.Timestamp, IsPrecert: true, Certificate: tbs, Precertificate: e.pre, IssuerKeyHash: kh[:],
		FingerprintsChain: [][32]byte{sha256.Sum256(ca.inter.Raw), sha256.Sum256(ca.root.Raw)},
	}
	return rfc6962.DefaultHasher.HashLeaf(entry.MerkleTreeLeaf(e.index))
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// checkpoint waits for r to serve a checkpoint of at least size entries
// and returns it, verified with the log key.
func checkpoint(t *testing.T, r *replica, key *ecdsa.PrivateKey, size uint64) f_log.Checkpoint {
	t.Helper()
	vkey, err := fnote.RFC6962VerifierString("https://"+testOrigin, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	v, err := fnote.NewRFC6962Verifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := get(t, r.url+"/ctlog/checkpoint")
		if code == http.StatusOK {
			n, err := note.Open(body, note.VerifierList(v))
			if err != nil {
				t.Fatalf("checkpoint does not verify with the log key: %v\n%s", err, body)
			}
			var cp f_log.Checkpoint
			if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
				t.Fatal(err)
			}
			if cp.Origin != testOrigin {
				t.Fatalf("checkpoint origin %q", cp.Origin)
			}
			if cp.Size >= size {
				return cp
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of %d entries within 30s; last: %d %s", size, code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// leafHashes are the first n leaf hashes, from r's level-0 tile (n ≤ 256).
func leafHashes(t *testing.T, r *replica, n uint64) [][]byte {
	t.Helper()
	code, body := get(t, r.url+"/ctlog/"+layout.TilePath(0, 0, uint8(n%256)))
	if code != http.StatusOK || uint64(len(body)) != n*32 {
		t.Fatalf("tile 0/000 of %d: %d, %d bytes", n, code, len(body))
	}
	var hs [][]byte
	for i := range n {
		hs = append(hs, body[i*32:(i+1)*32])
	}
	return hs
}

func rootOf(t *testing.T, hashes [][]byte) []byte {
	t.Helper()
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	cr := rf.NewEmptyRange(0)
	for _, h := range hashes {
		if err := cr.Append(h, nil); err != nil {
			t.Fatal(err)
		}
	}
	root, err := cr.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// Two servers on one database and one bucket prefix run one CT log:
// precertificates logged through either, in process or by add-pre-chain,
// get SCTs that verify with distinct indexes; the checkpoint either serves
// verifies with the log key and commits to exactly those entries; the
// issuers are under the log's prefix; and the log reopens with its tree.
func TestDistributedReplicasRunOneLog(t *testing.T) {
	ds := startDistStore(t)
	d := ds.settings(t, "ctlog", "signet", "ct/")
	ca := newTestCA(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	a := openReplica(t, ca, key, d)
	b := openReplica(t, ca, key, d)

	const n = 12
	entries := make([]logged, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			via := []*replica{a, b}[i%2]
			e, err := submit(t, ca, via, i%3 == 0)
			if err != nil {
				t.Errorf("submission %d: %v", i, err)
			}
			entries[i] = e
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	byIndex := map[uint64]logged{}
	for i, e := range entries {
		if _, dup := byIndex[e.index]; dup {
			t.Fatalf("submission %d got index %d, already given", i, e.index)
		}
		byIndex[e.index] = e
	}
	for i := range uint64(n) {
		if _, ok := byIndex[i]; !ok {
			t.Fatalf("no submission got index %d: %v", i, byIndex)
		}
	}

	// Both serve the published checkpoint, and the tiles under it hold
	// the entries the SCTs promised, at their indexes.
	var cp f_log.Checkpoint
	for _, r := range []*replica{a, b} {
		cp = checkpoint(t, r, key, n)
		if cp.Size != n {
			t.Fatalf("checkpoint of %d entries, %d were logged", cp.Size, n)
		}
		hs := leafHashes(t, r, n)
		for i, h := range hs {
			if want := byIndex[uint64(i)].leafHash(t, ca); !bytes.Equal(h, want) {
				t.Fatalf("leaf %d in the tile is not the entry its SCT promised", i)
			}
		}
		if got := rootOf(t, hs); !bytes.Equal(got, cp.Hash) {
			t.Fatalf("the checkpoint's root %x is not the tree of the tiles' leaves %x", cp.Hash, got)
		}
	}

	// The fork guard's record is the database's, and covers the tree.
	db, err := sql.Open("mysql", d.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rec []byte
	if err := db.QueryRow("SELECT note FROM SignetSignedHead WHERE origin = ?", testOrigin).Scan(&rec); err != nil {
		t.Fatalf("the guard's record in the database: %v", err)
	}
	if !strings.Contains(string(rec), fmt.Sprintf("\n%d\n", n)) {
		t.Fatalf("the guard's record is not of the %d-entry tree:\n%s", n, rec)
	}

	// The issuers are in the object store under the log's prefix, and
	// served from there.
	fp := sha256.Sum256(ca.inter.Raw)
	obj, err := ds.s3.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(d.Bucket), Key: aws.String("ct/issuer/" + hex.EncodeToString(fp[:]))})
	if err != nil {
		t.Fatalf("the issuing certificate is not under the log's prefix: %v", err)
	}
	stored, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if !bytes.Equal(stored, ca.inter.Raw) {
		t.Fatal("the stored issuer is not the issuing certificate")
	}
	if code, body := get(t, b.url+"/ctlog/issuer/"+hex.EncodeToString(fp[:])); code != http.StatusOK || !bytes.Equal(body, ca.inter.Raw) {
		t.Fatalf("GET issuer: %d, %d bytes", code, len(body))
	}
	for path, want := range map[string]int{"/ctlog/tile/0/001": 404, "/ctlog/.roots.pem": 404, "/ctlog/issuer/" + strings.Repeat("0", 64): 404, "/ctlog/tile/data/000.p/" + fmt.Sprint(n): 200} {
		if code, _ := get(t, a.url+path); code != want {
			t.Errorf("GET %s: %d, want %d", path, code, want)
		}
	}

	// Reopened, the log extends the same tree.
	closeLog(t, a.Log)
	closeLog(t, b.Log)
	c := openReplica(t, ca, key, d)
	e, err := submit(t, ca, c, false)
	if err != nil {
		t.Fatal(err)
	}
	if e.index != n {
		t.Fatalf("the first entry after reopening got index %d, want %d", e.index, n)
	}
	cp2 := checkpoint(t, c, key, n+1)
	hs := leafHashes(t, c, n+1)
	if !bytes.Equal(rootOf(t, hs[:n]), cp.Hash) || !bytes.Equal(hs[n], e.leafHash(t, ca)) || !bytes.Equal(rootOf(t, hs), cp2.Hash) {
		t.Fatal("the reopened log's tree does not extend the one published before")
	}

	// A database restored from an old backup (here: an empty one) has
	// lost the tree and the guard's record with it; the checkpoint in the
	// object store still shows the tree, and the log refuses to start
	// rather than sign a second, different tree of those sizes.
	closeLog(t, c.Log)
	ds.db.CreateDatabase(t, "ctlog_restored")
	restored := *d
	restored.DSN = ds.db.DSN("ctlog_restored")
	l, err := Open(context.Background(), Options{Distributed: &restored, Signer: key, Origin: testOrigin, CAChain: []*x509.Certificate{ca.inter, ca.root}})
	if err == nil {
		closeLog(t, l)
		t.Fatal("opened on a database without the published tree")
	}
	if !errors.Is(err, tlog.ErrForked) || !strings.Contains(err.Error(), fmt.Sprintf("is of %d entries, but the database's tree holds only 0", n+1)) {
		t.Fatalf("opening on a database without the published tree: %v", err)
	}
}

// Settings that cannot work are refused before anything is opened, with
// a message that says what to change.
func TestDistributedRefusesBadOptions(t *testing.T) {
	ca := newTestCA(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := &tlog.Distributed{DSN: "u:p@tcp(127.0.0.1:1)/ct", Bucket: "b", Prefix: "ct/"}
	base := Options{Distributed: d, Signer: key, Origin: testOrigin, CAChain: []*x509.Certificate{ca.inter, ca.root}}
	for name, c := range map[string]struct {
		edit func(*Options)
		want string
	}{
		"dir too":      {func(o *Options) { o.Dir = t.TempDir() }, "both a directory"},
		"head file":    {func(o *Options) { o.HeadFile = t.TempDir() + "/head" }, "leave HeadFile empty"},
		"no bucket":    {func(o *Options) { o.Distributed = &tlog.Distributed{DSN: d.DSN} }, "without a bucket"},
		"fast publish": {func(o *Options) { o.CheckpointInterval = 500 * time.Millisecond }, "minimum of 1s"},
	} {
		o := base
		c.edit(&o)
		l, err := Open(context.Background(), o)
		if err == nil {
			l.Close(context.Background())
			t.Errorf("%s: opened", name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to say %q", name, err, c.want)
		}
	}
}
