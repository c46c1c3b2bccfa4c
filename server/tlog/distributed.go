package tlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	tesseraaws "github.com/transparency-dev/tessera/storage/aws"
	awsantispam "github.com/transparency-dev/tessera/storage/aws/antispam"
	"golang.org/x/mod/sumdb/note"

	"github.com/signet-dev/signet/server/storage"
)

// Distributed puts the log on tessera's AWS driver: a MySQL-compatible
// database sequences entries and coordinates integration and publication,
// an S3-compatible object store holds the tiles, entry bundles and the
// published checkpoint. Any number of servers may open the same log at once
// (tessera's design: whichever wins the database's row lock integrates);
// each answers appends with proofs under checkpoints signed by the one key.
type Distributed struct {
	// DSN is the go-sql-driver/mysql data source name of the log's own
	// database: tessera's tables have fixed names, so two logs need two
	// databases. Timeouts left unset in it get storage.DBDialTimeout and
	// storage.DBIOTimeout, so a database that stops answering fails requests
	// instead of holding them.
	DSN string
	// Bucket and Prefix say where in the object store the log lives: its
	// resources are at Prefix + the tlog-tiles path (checkpoint, tile/…).
	Bucket, Prefix string
	// AWS is the SDK configuration (credentials, region, HTTP client) for
	// the object store, as config.LoadDefaultConfig makes it.
	AWS aws.Config
	// Endpoint is the object store's URL; "" is the SDK's choice (AWS S3,
	// or AWS_ENDPOINT_URL_S3). PathStyle addresses buckets in the path
	// (http://host/bucket/key), as most stores other than AWS need.
	Endpoint  string
	PathStyle bool
	// Integrators is how many of tessera's integration loops this server
	// runs, started evenly spread over a second: tessera's AWS driver
	// integrates once a second per loop, and an append is answered only
	// once integrated, so this divides the wait. 0 is defaultIntegrators.
	Integrators int
	// MaxOpenConns bounds this server's connections to the database (each
	// of the sequencer, the antispam index and the signed-head record has
	// a pool of this size); 0 is defaultDBConns.
	MaxOpenConns int
}

const (
	dbIOTimeout    = storage.DBIOTimeout
	defaultDBConns = 16
	// defaultIntegrators: measured in docs/benchmarks.md (scale-out).
	defaultIntegrators = 4
	// integratorConns: an extra integration loop's pool; it runs one
	// integration (and a checkpoint publication) at a time.
	integratorConns = 2
	// integrationPoll is how often a server waiting for integration
	// rereads the tree size from the database. tessera's AWS driver
	// integrates once a second, so waiting costs that at most; the poll
	// adds no more than its period.
	integrationPoll = 20 * time.Millisecond
)

// integrationWait bounds an append's wait for integration: longer means
// the integrating side (database, object store) is failing. A variable for
// the outage tests.
var integrationWait = 30 * time.Second

// ErrStorageUnavailable is wrapped by append failures of a distributed log
// whose database or object store does not answer: nothing the client sent
// was wrong, and a retry once it is back succeeds.
var ErrStorageUnavailable = errors.New("the transparency log's database or object store is unavailable")

// where names the log in messages.
func (d *Distributed) where() string {
	db := "?"
	if c, err := mysql.ParseDSN(d.DSN); err == nil {
		db = c.DBName + " on " + c.Addr
	}
	return fmt.Sprintf("s3://%s/%s (database %s)", d.Bucket, d.Prefix, db)
}

// dsn is DSN with the timeouts bounded.
func (d *Distributed) dsn() (string, error) {
	c, err := storage.BoundedDSN(d.DSN)
	if err != nil {
		return "", err
	}
	return c.FormatDSN(), nil
}

func (d *Distributed) conns() int {
	if d.MaxOpenConns > 0 {
		return d.MaxOpenConns
	}
	return defaultDBConns
}

// S3Options configures an S3 client for the object store (endpoint,
// addressing), for the other logs of a server on the same store.
func (d *Distributed) S3Options(o *s3.Options) { d.s3Options(o) }

// BoundedDSN is DSN with the timeouts it leaves unset bounded.
func (d *Distributed) BoundedDSN() (string, error) { return d.dsn() }

func (d *Distributed) s3Options(o *s3.Options) {
	o.UsePathStyle = d.PathStyle
	if d.Endpoint != "" {
		o.BaseEndpoint = aws.String(d.Endpoint)
	}
}

// distributedParts are what Open needs of a distributed log.
type distributedParts struct {
	driver    tessera.Driver
	antispam  tessera.Antispam
	head      *sqlHead
	published []byte // the checkpoint in the object store before tessera starts (nil: none)
}

func openDistributed(ctx context.Context, d *Distributed, origin string) (*distributedParts, error) {
	if d.Bucket == "" {
		return nil, errors.New("no bucket: give the object store bucket that holds (or will hold) the log")
	}
	dsn, err := d.dsn()
	if err != nil {
		return nil, err
	}
	head, err := openSQLHead(ctx, dsn, origin, d.where())
	if err != nil {
		return nil, err
	}
	published, err := readObject(ctx, s3.NewFromConfig(d.AWS, d.s3Options), d.Bucket, d.Prefix+layout.CheckpointPath, maxCheckpointBytes)
	if err != nil {
		head.close()
		return nil, fmt.Errorf("reading the published checkpoint s3://%s/%s%s: %w", d.Bucket, d.Prefix, layout.CheckpointPath, err)
	}
	driver, err := tesseraaws.New(ctx, tesseraaws.Config{
		SDKConfig:    &d.AWS,
		S3Options:    d.s3Options,
		Bucket:       d.Bucket,
		BucketPrefix: d.Prefix,
		DSN:          dsn,
		MaxOpenConns: d.conns(),
		MaxIdleConns: d.conns(),
	})
	if err != nil {
		head.close()
		return nil, err
	}
	as, err := awsantispam.NewAntispam(ctx, dsn, awsantispam.AntispamOpts{MaxOpenConns: d.conns(), MaxIdleConns: d.conns()})
	if err != nil {
		head.close()
		return nil, fmt.Errorf("opening tessera's antispam index in the database: %w", err)
	}
	return &distributedParts{driver: driver, antispam: as, head: head, published: published}, nil
}

// startIntegrators runs the extra integration loops: each is tessera's
// AWS appender with nothing to add, whose own ticker integrates what any
// server sequenced (the database serialises them), started 1/n s after
// the previous one. The shutdown it returns stops those started.
func startIntegrators(ctx context.Context, d *Distributed, signer note.Signer, interval time.Duration, logger *slog.Logger, running prometheus.Gauge) func(context.Context) error {
	n := d.Integrators
	if n == 0 {
		n = defaultIntegrators
	}
	var (
		mu        sync.Mutex
		shutdowns []func(context.Context) error
		wg        sync.WaitGroup
	)
	dsn, err := d.dsn()
	if err != nil || n < 2 {
		running.Set(1)
		return func(context.Context) error { return nil }
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		running.Set(1)
		for i := 1; i < n; i++ {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second / time.Duration(n)):
			}
			driver, err := tesseraaws.New(ctx, tesseraaws.Config{
				SDKConfig: &d.AWS, S3Options: d.s3Options, Bucket: d.Bucket, BucketPrefix: d.Prefix,
				DSN: dsn, MaxOpenConns: integratorConns, MaxIdleConns: integratorConns,
			})
			if err == nil {
				var shutdown func(context.Context) error
				_, shutdown, _, err = tessera.NewAppender(ctx, driver, tessera.NewAppendOptions().
					WithCheckpointSigner(signer).WithCheckpointInterval(interval))
				if err == nil {
					mu.Lock()
					shutdowns = append(shutdowns, shutdown)
					mu.Unlock()
					running.Inc()
					continue
				}
			}
			// The first loop still integrates: slower answers, not lost ones.
			logger.Warn("an extra integration loop did not start; appends wait longer", "error", err)
		}
	}()
	return func(ctx context.Context) error {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		var errs []error
		for _, sd := range shutdowns {
			errs = append(errs, sd(ctx))
		}
		return errors.Join(errs...)
	}
}

// readObject returns the object, or nil if there is none.
func readObject(ctx context.Context, c *s3.Client, bucket, key string, limit int64) ([]byte, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		var api smithy.APIError
		if errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NotFound") {
			return nil, nil
		}
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(io.LimitReader(out.Body, limit))
}

// maxCheckpointBytes bounds what is read of a published checkpoint: a
// signed note of one tree head with a few cosignatures is well under it.
const maxCheckpointBytes = 64 << 10

// sqlHead is the signed-head record of a distributed log: one row per
// origin in the log's database, read and written under a row lock, so
// that every server signs only trees consistent with the largest any of
// them signed.
type sqlHead struct {
	db     *sql.DB
	origin string
	desc   string
}

func openSQLHead(ctx context.Context, dsn, origin, desc string) (*sqlHead, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	h := &sqlHead{db: db, origin: origin, desc: "table SignetSignedHead of " + desc}
	cctx, cancel := context.WithTimeout(ctx, dbIOTimeout)
	defer cancel()
	_, err = db.ExecContext(cctx, "CREATE TABLE IF NOT EXISTS SignetSignedHead (origin VARBINARY(255) NOT NULL PRIMARY KEY, note BLOB NULL)")
	if err == nil {
		// The row exists from the first start on, so that advance can
		// lock it (SELECT … FOR UPDATE locks nothing that is absent).
		_, err = db.ExecContext(cctx, "INSERT IGNORE INTO SignetSignedHead (origin, note) VALUES (?, NULL)", origin)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("preparing the signed-head record in the database: %w", err)
	}
	return h, nil
}

func (h *sqlHead) close() { h.db.Close() }

func (h *sqlHead) where() string { return h.desc }

func (h *sqlHead) load(ctx context.Context) ([]byte, error) {
	var note []byte
	err := h.db.QueryRowContext(ctx, "SELECT note FROM SignetSignedHead WHERE origin = ?", h.origin).Scan(&note)
	return note, err
}

func (h *sqlHead) advance(ctx context.Context, f func(cur []byte) ([]byte, error)) error {
	ctx, cancel := context.WithTimeout(ctx, dbIOTimeout)
	defer cancel()
	tx, err := h.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var cur []byte
	if err := tx.QueryRowContext(ctx, "SELECT note FROM SignetSignedHead WHERE origin = ? FOR UPDATE", h.origin).Scan(&cur); err != nil {
		return err
	}
	next, err := f(cur)
	if err != nil {
		return err
	}
	if next != nil {
		if _, err := tx.ExecContext(ctx, "UPDATE SignetSignedHead SET note = ? WHERE origin = ?", next, h.origin); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// integration wakes appends once the tree covers them. tessera's AWS
// driver resolves an append when the database has sequenced it; some
// server integrates it later. One poller per log serves all waiters, and
// runs only while someone waits.
type integration struct {
	size func(context.Context) (uint64, error)

	mu      sync.Mutex
	known   uint64        // the largest integrated size seen
	changed chan struct{} // closed when known grows or polls fail
	lastErr error
	failing time.Time // when the polls began to fail (zero: they succeed)
	waiters int
	polling bool
}

// integrationFailFast is how long the database may fail to answer before
// waiting appends are answered 503 instead of waiting out integrationWait:
// nothing integrates while it is down.
const integrationFailFast = 2 * time.Second

func newIntegration(size func(context.Context) (uint64, error)) *integration {
	return &integration{size: size, changed: make(chan struct{})}
}

// wait returns once the integrated tree holds index, or the database has
// not said so within integrationWait.
func (in *integration) wait(ctx context.Context, index uint64) error {
	ctx, cancel := context.WithTimeout(ctx, integrationWait)
	defer cancel()
	in.mu.Lock()
	in.waiters++
	if !in.polling {
		in.polling = true
		go in.poll()
	}
	defer func() { in.mu.Lock(); in.waiters--; in.mu.Unlock() }()
	for {
		if in.known > index {
			in.mu.Unlock()
			return nil
		}
		if !in.failing.IsZero() && time.Since(in.failing) >= integrationFailFast {
			err := in.lastErr
			in.mu.Unlock()
			return fmt.Errorf("%w: entry %d is sequenced, but the database has not answered for %v: %v", ErrStorageUnavailable, index, integrationFailFast, err)
		}
		ch, lastErr := in.changed, in.lastErr
		in.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("%w: entry %d is sequenced but not yet integrated: %v", ErrStorageUnavailable, index, lastErr)
			}
			return fmt.Errorf("%w: entry %d is sequenced but not integrated within %v", ErrStorageUnavailable, index, integrationWait)
		}
		in.mu.Lock()
	}
}

func (in *integration) poll() {
	t := time.NewTicker(integrationPoll)
	defer t.Stop()
	for range t.C {
		ctx, cancel := context.WithTimeout(context.Background(), dbIOTimeout)
		size, err := in.size(ctx)
		cancel()
		in.mu.Lock()
		grew := err == nil && size > in.known
		if grew {
			in.known = size
		}
		switch {
		case err == nil:
			in.failing = time.Time{}
		case in.failing.IsZero():
			in.failing = time.Now()
		}
		in.lastErr = err
		// Waiters look again when the tree grew, and on every failed
		// poll, to give up once the database has been gone too long.
		if grew || err != nil {
			close(in.changed)
			in.changed = make(chan struct{})
		}
		if in.waiters == 0 {
			in.polling = false
			in.mu.Unlock()
			return
		}
		in.mu.Unlock()
	}
}
