// Package ctlog is signet's certificate transparency log: an RFC 6962 log
// (static-ct-api, https://c2sp.org/static-ct-api) run in process by
// transparency-dev/tesseract on tessera's POSIX storage. The CA submits every
// precertificate it makes and embeds the SCT in the certificate, as Fulcio
// does, so verifiers that require an SCT (cosign, sigstore-go, sigstore-js by
// default) accept signet's certificates.
//
// The submission API (add-chain, add-pre-chain, get-roots) is tesseract's
// handler; the monitoring API (checkpoint, tiles, issuers) is served from the
// storage directory, which holds exactly that layout, or, on distributed
// storage (Options.Distributed: tessera's AWS driver), from the object
// store, which holds the same layout under the log's prefix.
package ctlog

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	ct "github.com/google/certificate-transparency-go"
	cttls "github.com/google/certificate-transparency-go/tls"
	"github.com/prometheus/client_golang/prometheus"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/ctonly"
	tposix "github.com/transparency-dev/tessera/storage/posix"
	"github.com/transparency-dev/tesseract"
	tstorage "github.com/transparency-dev/tesseract/storage"
	tsposix "github.com/transparency-dev/tesseract/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/signet-dev/signet/server/precert"
	"github.com/signet-dev/signet/server/storage"
	"github.com/signet-dev/signet/server/tlog"
)

// Defaults.
const (
	// DefaultPathPrefix is where the log is served: submissions under
	// <prefix>/ct/v1/, monitoring under <prefix>/checkpoint, /tile/, /issuer/.
	DefaultPathPrefix = "/ctlog"
	// DefaultBatchMaxAge bounds how long a precertificate waits to be
	// sequenced, which every certificate request waits for.
	DefaultBatchMaxAge        = 25 * time.Millisecond
	DefaultBatchMaxSize       = 1024
	DefaultCheckpointInterval = time.Second
	// DefaultSubmitTimeout bounds one submission, the CA's included: a log
	// that cannot sequence in time fails the certificate request with 503
	// rather than holding it.
	DefaultSubmitTimeout = 10 * time.Second
	// maxSubmissionBytes bounds an add-chain body: a chain of a few
	// certificates is a few KiB.
	maxSubmissionBytes = 256 << 10
)

// Options configure the log.
type Options struct {
	// Dir holds the log's tiles, entries, issuers and checkpoint.
	Dir string
	// Distributed, instead of Dir, puts the log on tessera's AWS driver
	// (a MySQL-compatible database and an S3-compatible object store), so
	// that several servers run the one log: tiles, entries, the checkpoint
	// and the issuers are objects under Distributed.Prefix, and the fork
	// guard's record is a row in the database. The CT log needs a database
	// of its own, not the transparency log's: tessera's tables have fixed
	// names. Bucket and prefix may be shared with other logs if the prefix
	// is the CT log's own. Dir and HeadFile must then be empty, and
	// CheckpointInterval at least 1s (the driver's minimum; the default).
	Distributed *tlog.Distributed
	// Signer is the log's ECDSA P-256 key (SCTs and checkpoints).
	Signer crypto.Signer
	// Origin is the checkpoint origin, which static-ct-api requires to be
	// the submission prefix without its scheme (host/ctlog).
	Origin string
	// CAChain is the CA's chain, issuing certificate first, root last:
	// submissions must lead to its root, and the CA's precertificates are
	// logged under its issuing certificate.
	CAChain []*x509.Certificate
	// MoreCAChains are the chains of the CA's other issuing keys (a
	// rotation): accepted and logged under their own issuing certificates.
	MoreCAChains [][]*x509.Certificate
	// HeadFile records, outside Dir, the largest checkpoint the log key
	// signed (the fork guard's record); default Dir + ".signed-head". Not
	// with Distributed, whose record is in its database.
	HeadFile string
	// PathPrefix is the URL path the log is served under; default
	// DefaultPathPrefix.
	PathPrefix         string
	BatchMaxAge        time.Duration
	BatchMaxSize       uint
	CheckpointInterval time.Duration
	SubmitTimeout      time.Duration
	Logger             *slog.Logger
	Metrics            prometheus.Registerer
}

// Log is a running CT log.
type Log struct {
	dir, prefix string
	// obj, bucket and objPrefix are where the resources are read from on
	// distributed storage (obj nil: from dir).
	obj               *s3.Client
	bucket, objPrefix string
	closeGuard        func()
	origin            string
	signer            crypto.Signer
	pub               crypto.PublicKey
	spki              []byte
	store             *tstorage.CTStorage
	// chains describe each CA chain in entries, by the issuing
	// certificate's fingerprint.
	chains    map[[sha256.Size]byte]*entryChain
	logID     [sha256.Size]byte
	handler   http.Handler
	timeout   time.Duration
	log       *slog.Logger
	shutdown  func(context.Context) error
	cancel    context.CancelFunc
	closeOnce sync.Once

	submitted *prometheus.CounterVec
	latency   prometheus.Histogram
}

// Open starts (or resumes) the log in o.Dir, or on o.Distributed.
func Open(ctx context.Context, o Options) (*Log, error) {
	d := o.Distributed
	switch {
	case d != nil && o.Dir != "":
		return nil, fmt.Errorf("ctlog: both a directory (%s) and distributed storage (s3://%s/%s) given; the CT log runs on one of them", o.Dir, d.Bucket, d.Prefix)
	case d != nil && o.HeadFile != "":
		return nil, errors.New("ctlog: HeadFile is given with distributed storage, whose fork-guard record is in its database; leave HeadFile empty")
	case d != nil && d.Bucket == "":
		return nil, errors.New("ctlog: distributed storage without a bucket; give the object store bucket that holds (or will hold) the CT log")
	case d == nil && o.Dir == "":
		return nil, errors.New("ctlog: Options.Dir is empty; give the directory that holds (or will hold) the CT log")
	}
	pub, ok := o.Signer.Public().(*ecdsa.PublicKey)
	if o.Signer == nil || !ok || pub.Curve != elliptic.P256() {
		return nil, errors.New("ctlog: the log key must be an ECDSA P-256 key (RFC 6962 §2.1.4, as Sigstore's CT logs use)")
	}
	if o.Origin == "" || strings.ContainsAny(o.Origin, " \n+") || strings.Contains(o.Origin, "://") {
		return nil, fmt.Errorf("ctlog: origin %q must be the submission prefix without scheme, e.g. signet.example.com/ctlog", o.Origin)
	}
	if len(o.CAChain) == 0 {
		return nil, errors.New("ctlog: no CA chain; the log accepts chains to the CA's root only")
	}
	o.PathPrefix = "/" + strings.Trim(cmp.Or(o.PathPrefix, DefaultPathPrefix), "/")
	if o.BatchMaxAge <= 0 {
		o.BatchMaxAge = DefaultBatchMaxAge
	}
	if o.BatchMaxSize == 0 {
		o.BatchMaxSize = DefaultBatchMaxSize
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.CheckpointInterval < 100*time.Millisecond {
		return nil, fmt.Errorf("ctlog: checkpoint interval %v is below tessera's minimum of 100ms", o.CheckpointInterval)
	}
	if d != nil && o.CheckpointInterval < minDistributedCheckpointInterval {
		return nil, fmt.Errorf("ctlog: checkpoint interval %v is below the minimum of %v of tessera's AWS driver (distributed storage)", o.CheckpointInterval, minDistributedCheckpointInterval)
	}
	if d == nil && o.HeadFile == "" {
		o.HeadFile = filepath.Clean(o.Dir) + ".signed-head"
	}
	if o.SubmitTimeout <= 0 {
		o.SubmitTimeout = DefaultSubmitTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = prometheus.NewRegistry()
	}
	where := o.Dir
	if d == nil {
		if err := os.MkdirAll(o.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("ctlog: %w", err)
		}
	} else {
		where = "s3://" + path.Join(d.Bucket, d.Prefix)
	}
	// tesseract reads its roots from a file; it is derived from the CA
	// chain at every start, so it always matches the configured CA.
	all := append([][]*x509.Certificate{o.CAChain}, o.MoreCAChains...)
	var roots bytes.Buffer
	seenRoot := map[[sha256.Size]byte]bool{}
	for _, ch := range all {
		if len(ch) == 0 {
			return nil, errors.New("ctlog: an empty CA chain")
		}
		root := ch[len(ch)-1]
		if fp := sha256.Sum256(root.Raw); !seenRoot[fp] {
			seenRoot[fp] = true
			_ = pem.Encode(&roots, &pem.Block{Type: "CERTIFICATE", Bytes: root.Raw})
		}
	}
	rootsFile, removeRoots, err := writeRoots(o.Dir, roots.Bytes())
	if err != nil {
		return nil, fmt.Errorf("ctlog: writing the accepted roots: %w", err)
	}
	// tesseract reads the file once, in NewLogHandler.
	defer removeRoots()
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("ctlog: log key: %w", err)
	}

	l := &Log{dir: o.Dir, prefix: o.PathPrefix, origin: o.Origin, signer: o.Signer, pub: pub, spki: spki, logID: sha256.Sum256(spki), timeout: o.SubmitTimeout, log: o.Logger}
	if d != nil {
		l.obj, l.bucket, l.objPrefix = s3.NewFromConfig(d.AWS, d.S3Options), d.Bucket, d.Prefix
	}
	l.chains = map[[sha256.Size]byte]*entryChain{}
	for _, ch := range all {
		ec := &entryChain{keyHash: sha256.Sum256(ch[0].RawSubjectPublicKeyInfo)}
		for _, c := range ch {
			ec.fingerprints = append(ec.fingerprints, sha256.Sum256(c.Raw))
		}
		l.chains[sha256.Sum256(ch[0].Raw)] = ec
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel = cancel
	// tesseract exits the process when storage cannot be made; open it
	// here, keep the error, and hand tesseract storage that fails instead.
	var openErr error
	create := func(ctx context.Context, signer note.Signer) (*tstorage.CTStorage, error) {
		st, shutdown, closeGuard, err := openStorage(runCtx, o, signer, l.obj)
		if err != nil {
			openErr = err
			return failedStorage(runCtx, err)
		}
		l.shutdown, l.store, l.closeGuard = shutdown, st, closeGuard
		return st, nil
	}
	cfg := tesseract.ChainValidationConfig{RootsPEMFile: rootsFile}
	// Errors unmasked for the CA's in-process submissions, which need the
	// cause (a full disk); Register masks them for everyone else.
	h, err := tesseract.NewLogHandler(runCtx, o.Origin, o.Signer, cfg, create, o.SubmitTimeout, false, o.PathPrefix, tesseract.LogHandlerOpts{DedupRL: -1})
	if err == nil {
		err = openErr
	}
	if err != nil {
		l.Close(context.Background())
		return nil, fmt.Errorf("ctlog: opening the CT log in %s: %w", where, err)
	}
	l.handler = http.MaxBytesHandler(h, maxSubmissionBytes)
	// The CA's issuers, for monitors to fetch by fingerprint; stored once
	// here, since the CA's own submissions skip tesseract's handler.
	for _, ch := range all {
		if err := l.store.AddIssuerChain(runCtx, ch); err != nil {
			l.Close(context.Background())
			return nil, fmt.Errorf("ctlog: storing the CA's certificates: %w", err)
		}
	}

	l.submitted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "signet_ctlog_precertificates_total",
		Help: "Precertificates the CA submitted to the CT log, by result.",
	}, []string{"result"})
	l.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "signet_ctlog_submit_duration_seconds",
		Help:    "Time from precertificate submission to SCT.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
	})
	for _, c := range []prometheus.Collector{l.submitted, l.latency} {
		if err := o.Metrics.Register(c); err != nil {
			l.Close(context.Background())
			return nil, fmt.Errorf("ctlog: register metrics: %w", err)
		}
	}
	o.Logger.Info("certificate transparency log open", "storage", where, "origin", o.Origin, "log_id", fmt.Sprintf("%x", l.logID))
	return l, nil
}

// openStorage opens tessera, the fork guard and the issuer storage on the
// directory or on distributed storage (obj is then the object store's
// client). closeGuard releases the guard's record (nil for a file).
func openStorage(ctx context.Context, o Options, signer note.Signer, obj *s3.Client) (_ *tstorage.CTStorage, shutdown func(context.Context) error, closeGuard func(), err error) {
	// The transparency log's fork guard stands between tessera and the
	// key here too: a damaged or rolled-back CT log is never signed as a
	// new tree under the same key.
	vkey, err := fnote.RFC6962VerifierString("https://"+o.Origin, o.Signer.Public())
	if err != nil {
		return nil, nil, nil, err
	}
	verifier, err := fnote.NewRFC6962Verifier(vkey)
	if err != nil {
		return nil, nil, nil, err
	}
	var (
		guard     *tlog.Guard
		driver    tessera.Driver
		issuers   tstorage.IssuerStorage
		published uint64
	)
	if d := o.Distributed; d != nil {
		// The record is a row in the log's database, so every replica
		// signs only trees that extend the largest any of them signed.
		g, closeG, gerr := tlog.NewDistributedGuard(ctx, d, signer, verifier)
		if gerr != nil {
			return nil, nil, nil, fmt.Errorf("the fork guard's record in the database: %w", gerr)
		}
		// closeG, not the result: a failed return sets that to nil.
		defer func() {
			if err != nil {
				closeG()
			}
		}()
		guard, closeGuard = g, closeG
		if driver, err = openDistributedDriver(ctx, d); err != nil {
			return nil, nil, nil, err
		}
		issuers = &s3Issuers{client: obj, bucket: d.Bucket, prefix: d.Prefix}
		// The guard's record is in the database: a database restored from
		// an old backup rolls it back with the tree. The checkpoint in the
		// object store still says how large a tree was published.
		if published, err = publishedSize(ctx, obj, d.Bucket, d.Prefix, verifier, o.Origin, o.Logger); err != nil {
			return nil, nil, nil, err
		}
	} else {
		if guard, err = tlog.NewGuard(o.HeadFile, signer, verifier); err != nil {
			return nil, nil, nil, err
		}
		if driver, err = tposix.New(ctx, tposix.Config{Path: o.Dir}); err != nil {
			return nil, nil, nil, fmt.Errorf("tessera POSIX storage: %w", err)
		}
		if issuers, err = tsposix.NewIssuerStorage(ctx, o.Dir); err != nil {
			return nil, nil, nil, err
		}
	}
	// No antispam: the only submitter that matters is the CA, which sends
	// each precertificate once; a duplicate add-chain is logged again,
	// which RFC 6962 allows.
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(guard.Signer()).
		WithCTLayout().
		WithCheckpointInterval(o.CheckpointInterval).
		WithBatching(o.BatchMaxSize, o.BatchMaxAge)
	appender, shutdown, reader, err := tessera.NewAppender(ctx, driver, opts)
	if err != nil {
		return nil, nil, nil, err
	}
	if published > 0 {
		size, err := reader.IntegratedSize(ctx)
		if err == nil && size < published {
			err = fmt.Errorf("%w: the published checkpoint (s3://%s) is of %d entries, but the database's tree holds only %d: the database was rolled back or replaced; restore it from a backup taken after the last SCT", tlog.ErrForked, objectKey(path.Join(o.Distributed.Bucket, o.Distributed.Prefix), layout.CheckpointPath), published, size)
		}
		if err != nil {
			_ = shutdown(ctx)
			return nil, nil, nil, err
		}
	}
	if err = guard.Start(ctx, reader); err != nil {
		_ = shutdown(ctx)
		return nil, nil, nil, err
	}
	// The SCT is the promise: tessera has sequenced the entry durably when
	// its index is known, so nobody waits for the next checkpoint. That
	// holds on both drivers: POSIX resolves an Add once the entry is in
	// its bundle files, the AWS driver once the transaction that gives it
	// its index has committed it to the database (from which whichever
	// replica integrates next puts it in the tree).
	st, err := tstorage.NewCTStorage(ctx, &tstorage.CTStorageOptions{Appender: appender, Reader: reader, IssuerStorage: issuers})
	if err != nil {
		_ = shutdown(ctx)
		return nil, nil, nil, err
	}
	return st, shutdown, closeGuard, nil
}

// writeRoots writes the accepted roots where tesseract reads them: in dir,
// or, without one (distributed storage), in a temporary file; remove
// deletes the temporary file.
func writeRoots(dir string, data []byte) (file string, remove func(), err error) {
	if dir != "" {
		file = filepath.Join(dir, ".roots.pem")
		return file, func() {}, storage.WriteFileSync(file, data, 0o644)
	}
	f, err := os.CreateTemp("", "signet-ctlog-roots-*.pem")
	if err != nil {
		return "", nil, err
	}
	remove = func() { _ = os.Remove(f.Name()) }
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		remove()
		return "", nil, err
	}
	return f.Name(), remove, nil
}

// failedStorage answers every call with err, for tesseract to hold while
// Open reports err.
func failedStorage(ctx context.Context, err error) (*tstorage.CTStorage, error) {
	add := func(context.Context, *tessera.Entry) tessera.IndexFuture {
		return func() (tessera.Index, error) { return tessera.Index{}, err }
	}
	return tstorage.NewCTStorage(ctx, &tstorage.CTStorageOptions{
		Appender:      &tessera.Appender{Add: add},
		Reader:        failedReader{err},
		IssuerStorage: failedIssuers{err},
	})
}

type failedReader struct{ err error }

func (r failedReader) ReadCheckpoint(context.Context) ([]byte, error) { return nil, r.err }
func (r failedReader) ReadTile(context.Context, uint64, uint64, uint8) ([]byte, error) {
	return nil, r.err
}
func (r failedReader) ReadEntryBundle(context.Context, uint64, uint8) ([]byte, error) {
	return nil, r.err
}
func (r failedReader) NextIndex(context.Context) (uint64, error)      { return 0, r.err }
func (r failedReader) IntegratedSize(context.Context) (uint64, error) { return 0, r.err }

type failedIssuers struct{ err error }

func (f failedIssuers) AddIssuersIfNotExist(context.Context, []tstorage.KV) error { return f.err }

// Close stops the log after sequencing what was submitted.
func (l *Log) Close(ctx context.Context) error {
	var err error
	l.closeOnce.Do(func() {
		if l.shutdown != nil {
			err = l.shutdown(ctx)
		}
		l.cancel()
		// After tessera, which signs through the guard until it stops.
		if l.closeGuard != nil {
			l.closeGuard()
		}
	})
	return err
}

// PublicKey is the log's key; SPKI is its DER SubjectPublicKeyInfo.
func (l *Log) PublicKey() crypto.PublicKey { return l.pub }
func (l *Log) SPKI() []byte                { return bytes.Clone(l.spki) }

// LogID is RFC 6962's log ID: the SHA-256 of the key's SPKI.
func (l *Log) LogID() []byte { return bytes.Clone(l.logID[:]) }

// Origin is the checkpoint origin.
func (l *Log) Origin() string { return l.origin }

// PathPrefix is the URL path the log is served under.
func (l *Log) PathPrefix() string { return l.prefix }

// Register serves the submission and monitoring APIs.
func (l *Log) Register(mux *http.ServeMux) {
	mux.Handle("POST "+l.prefix+"/ct/v1/add-chain", masked{l.handler})
	mux.Handle("POST "+l.prefix+"/ct/v1/add-pre-chain", masked{l.handler})
	mux.Handle("GET "+l.prefix+"/ct/v1/get-roots", l.handler)
	mux.HandleFunc("GET "+l.prefix+"/checkpoint", l.serveFile("text/plain; charset=utf-8", "no-cache"))
	mux.HandleFunc("GET "+l.prefix+"/tile/", l.serveFile("application/octet-stream", ""))
	mux.HandleFunc("GET "+l.prefix+"/issuer/", l.serveFile("application/pkix-cert", "public, max-age=604800, immutable"))
}

// masked answers server errors without their text, which names the
// server's paths and OS errors; client errors (a chain the log refuses)
// keep theirs.
type masked struct{ h http.Handler }

func (m masked) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &recorder{header: http.Header{}}
	m.h.ServeHTTP(rec, r)
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	code := cmp.Or(rec.code, http.StatusOK)
	if code >= 500 {
		w.Header().Del("Content-Length")
		msg := "the CT log could not log the chain; retry later"
		if storage.IsFull(errors.New(rec.body.String())) {
			msg = "the CT log's storage is full; nothing was logged; retry later (the operator must free space)"
		}
		http.Error(w, msg, code)
		return
	}
	w.WriteHeader(code)
	_, _ = w.Write(rec.body.Bytes())
}

// serveFile serves the static-ct-api monitoring resources from the storage
// directory, whose layout is that API's.
func (l *Log) serveFile(contentType, cacheControl string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rel := strings.TrimPrefix(r.URL.Path, l.prefix+"/")
		if !validResource(rel) {
			http.Error(w, "no such CT log resource: "+r.URL.Path, http.StatusNotFound)
			return
		}
		if l.obj != nil {
			l.serveObject(w, r, rel, contentType, cacheFor(rel, cacheControl))
			return
		}
		f, err := os.Open(filepath.Join(l.dir, filepath.FromSlash(rel)))
		if err != nil {
			http.Error(w, "no such CT log resource: "+r.URL.Path, http.StatusNotFound)
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			http.Error(w, "no such CT log resource: "+r.URL.Path, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", cacheFor(rel, cacheControl))
		http.ServeContent(w, r, "", fi.ModTime(), f)
	}
}

// cacheFor is the Cache-Control of resource rel: cc, or for a tile (cc
// empty) what fits it: full tiles never change; partial ones (.p/) are
// replaced.
func cacheFor(rel, cc string) string {
	if cc != "" {
		return cc
	}
	if strings.Contains(rel, ".p/") {
		return "no-cache"
	}
	return "public, max-age=31536000, immutable"
}

// validResource admits checkpoint, tile/… and issuer/<hex> paths made of
// the characters static-ct-api uses, so nothing else in the directory
// (tessera's state, the roots file) is reachable.
func validResource(rel string) bool {
	if rel == "checkpoint" {
		return true
	}
	if !strings.HasPrefix(rel, "tile/") && !strings.HasPrefix(rel, "issuer/") {
		return false
	}
	for _, seg := range strings.Split(rel, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		for _, c := range seg {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == '.') {
				return false
			}
		}
	}
	return true
}

// SubmitPrecert logs a precertificate the CA made (signed by its issuing
// certificate) and returns the log's SCT for it.
//
// It appends to the log directly rather than through tesseract's
// add-pre-chain handler, which would parse and verify the CA's own chain
// again and round-trip it through JSON: that doubled the CPU of every
// certificate (docs/benchmarks.md). The entry and the SCT are those the
// handler makes: the same ctonly.Entry, and an SCT over its MerkleTreeLeaf
// with the static-ct-api leaf_index extension.
func (l *Log) SubmitPrecert(ctx context.Context, precert []byte, issuing *x509.Certificate) (*ct.SignedCertificateTimestamp, error) {
	start := time.Now()
	sct, err := l.logPrecert(ctx, precert, issuing)
	l.latency.Observe(time.Since(start).Seconds())
	if err != nil {
		l.submitted.WithLabelValues("error").Inc()
		return nil, err
	}
	l.submitted.WithLabelValues("ok").Inc()
	return sct, nil
}

// entryChain is what an entry records of the chain its precertificate
// was issued under (RFC 6962 §3.1 issuer_key_hash, static-ct-api's chain
// fingerprints).
type entryChain struct {
	keyHash      [sha256.Size]byte
	fingerprints [][sha256.Size]byte
}

func (l *Log) logPrecert(ctx context.Context, precert []byte, issuing *x509.Certificate) (*ct.SignedCertificateTimestamp, error) {
	chain, ok := l.chains[sha256.Sum256(issuing.Raw)]
	if !ok {
		return nil, fmt.Errorf("ctlog: the issuing certificate %q is not one of the CA chains the log was opened with", issuing.Subject)
	}
	tbs, err := precertTBS(precert)
	if err != nil {
		return nil, fmt.Errorf("ctlog: the precertificate: %w", err)
	}
	entry := &ctonly.Entry{
		Timestamp:         uint64(time.Now().UnixMilli()),
		IsPrecert:         true,
		Certificate:       tbs,
		Precertificate:    precert,
		IssuerKeyHash:     chain.keyHash[:],
		FingerprintsChain: chain.fingerprints,
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	future, err := l.store.Add(ctx, entry)
	if err != nil {
		return nil, l.storeError(err)
	}
	idx, err := waitIndex(ctx, future)
	if err != nil {
		return nil, l.storeError(err)
	}
	// RFC 6962 §3.2: the signed data is the MerkleTreeLeaf's fields with
	// signature_type certificate_timestamp (0) where the leaf has
	// leaf_type timestamped_entry (0), so the same bytes.
	leaf := entry.MerkleTreeLeaf(idx.Index)
	n := len(leaf)
	if n < 10 || leaf[n-10] != 0 || leaf[n-9] != 8 {
		return nil, errors.New("ctlog: unexpected leaf extensions")
	}
	digest := sha256.Sum256(leaf)
	sig, err := l.signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("ctlog: signing the SCT: %w", err)
	}
	return &ct.SignedCertificateTimestamp{
		SCTVersion: ct.V1,
		LogID:      ct.LogID{KeyID: l.logID},
		Timestamp:  entry.Timestamp,
		Extensions: ct.CTExtensions(bytes.Clone(leaf[n-8:])),
		Signature: ct.DigitallySigned{
			Algorithm: cttls.SignatureAndHashAlgorithm{Hash: cttls.SHA256, Signature: cttls.ECDSA},
			Signature: sig,
		},
	}, nil
}

// waitIndex resolves a tessera future, or gives up when ctx ends (the
// entry may still be sequenced: a logged precertificate without a
// certificate, which CT allows).
func waitIndex(ctx context.Context, f tessera.IndexFuture) (tessera.Index, error) {
	type result struct {
		idx tessera.Index
		err error
	}
	ch := make(chan result, 1)
	go func() {
		idx, err := f()
		ch <- result{idx, err}
	}()
	select {
	case r := <-ch:
		return r.idx, r.err
	case <-ctx.Done():
		return tessera.Index{}, ctx.Err()
	}
}

func (l *Log) storeError(err error) error {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, tessera.ErrPushback):
		status = http.StatusTooManyRequests
	case errors.Is(err, context.DeadlineExceeded):
		err = fmt.Errorf("no SCT within %s: %w", l.timeout, err)
		status = http.StatusServiceUnavailable
	}
	return &SubmitError{Status: status, Message: err.Error(), Full: storage.IsFull(err)}
}

// precertTBS is the precertificate's TBSCertificate without the poison
// extension: what the log entry and the SCT commit to. The DER is
// rewritten rather than parsed (ct-go's RemoveCTPoison parses the whole
// certificate, most of the log's CPU per SCT).
func precertTBS(pre []byte) ([]byte, error) {
	tbs, _, err := precert.Split(pre)
	if err != nil {
		return nil, err
	}
	return precert.ReplacePoison(tbs, nil)
}

// SubmitError is a refused or failed submission. Message may name paths:
// it is for the server's log.
type SubmitError struct {
	Status  int
	Message string
	Full    bool // the log's storage is full
}

func (e *SubmitError) Error() string {
	return fmt.Sprintf("CT log: %d: %s", e.Status, e.Message)
}

// StorageFull says the log's disk is full, so the CA can answer as the
// other services do.
func (e *SubmitError) StorageFull() bool { return e.Full }

// recorder holds a response of tesseract's handler, so masked can rewrite it.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(b)
}
