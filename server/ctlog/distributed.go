package ctlog

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	f_log "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	tesseraaws "github.com/transparency-dev/tessera/storage/aws"
	tstorage "github.com/transparency-dev/tesseract/storage"
	"golang.org/x/mod/sumdb/note"

	"github.com/signet-dev/signet/server/tlog"
)

const (
	// minDistributedCheckpointInterval is tessera's AWS driver's minimum.
	minDistributedCheckpointInterval = time.Second
	// defaultDBConns is the database pool size when Distributed leaves
	// MaxOpenConns 0, as the transparency log's default.
	defaultDBConns = 16
	// issuerDir is static-ct-api's issuer path, under the log's prefix.
	issuerDir = "issuer"
)

// objectKey is the object-store key of a static-ct-api resource: joined
// to the prefix as tessera's AWS driver joins it (filepath.Join), so that
// "ct" and "ct/" name the same place.
func objectKey(prefix, rel string) string {
	if prefix == "" {
		return rel
	}
	return path.Join(prefix, rel)
}

// openDistributedDriver is tessera's AWS driver on d.
func openDistributedDriver(ctx context.Context, d *tlog.Distributed) (tessera.Driver, error) {
	dsn, err := d.BoundedDSN()
	if err != nil {
		return nil, err
	}
	conns := cmp.Or(d.MaxOpenConns, defaultDBConns)
	driver, err := tesseraaws.New(ctx, tesseraaws.Config{
		SDKConfig:    &d.AWS,
		S3Options:    d.S3Options,
		Bucket:       d.Bucket,
		BucketPrefix: d.Prefix,
		DSN:          dsn,
		MaxOpenConns: conns,
		MaxIdleConns: conns,
	})
	if err != nil {
		return nil, fmt.Errorf("tessera AWS storage: %w", err)
	}
	return driver, nil
}

// s3Issuers stores the issuers in the object store under the log's prefix.
// tesseract's own S3 issuer storage (storage/aws, v0.1.1) always writes at
// the bucket's top (issuer/…), where two logs of one bucket would share
// them and the log's prefix would not hold all of it; this is the same
// logic with the prefix.
type s3Issuers struct {
	client         *s3.Client
	bucket, prefix string
}

// AddIssuersIfNotExist writes each issuer once: an object already there
// with the same bytes (another replica wrote it) is success, with other
// bytes a failure, as in tesseract's.
func (s *s3Issuers) AddIssuersIfNotExist(ctx context.Context, kvs []tstorage.KV) error {
	errs := make([]error, len(kvs))
	var wg sync.WaitGroup
	for i, kv := range kvs {
		key := objectKey(s.prefix, path.Join(issuerDir, string(kv.K)))
		wg.Go(func() { errs[i] = s.put(ctx, key, kv.V) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *s3Issuers) put(ctx context.Context, key string, v []byte) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(s.bucket),
		Key:         aws.String(key),
		Body:        bytes.NewReader(v),
		ContentType: aws.String("application/pkix-cert"),
		IfNoneMatch: aws.String("*"),
	})
	if err == nil {
		return nil
	}
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "PreconditionFailed" {
		return fmt.Errorf("writing issuer s3://%s/%s: %w", s.bucket, key, err)
	}
	got, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("reading existing issuer s3://%s/%s: %w", s.bucket, key, err)
	}
	defer got.Body.Close()
	have, err := io.ReadAll(io.LimitReader(got.Body, maxIssuerBytes+1))
	if err != nil {
		return fmt.Errorf("reading existing issuer s3://%s/%s: %w", s.bucket, key, err)
	}
	if !bytes.Equal(have, v) {
		return fmt.Errorf("issuer s3://%s/%s exists with other content", s.bucket, key)
	}
	return nil
}

// publishedSize is the size of the checkpoint published in the object
// store (0: none, or one that does not verify with the log key, which the
// next publication replaces).
func publishedSize(ctx context.Context, c *s3.Client, bucket, prefix string, v note.Verifier, origin string, logger *slog.Logger) (uint64, error) {
	key := objectKey(prefix, layout.CheckpointPath)
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		var api smithy.APIError
		if errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NotFound") {
			return 0, nil
		}
		return 0, fmt.Errorf("reading the published checkpoint s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(out.Body, maxCheckpointBytes))
	if err != nil {
		return 0, fmt.Errorf("reading the published checkpoint s3://%s/%s: %w", bucket, key, err)
	}
	n, err := note.Open(raw, note.VerifierList(v))
	var cp f_log.Checkpoint
	if err == nil {
		_, err = cp.Unmarshal([]byte(n.Text))
	}
	if err != nil || cp.Origin != origin {
		logger.Warn("the published CT checkpoint does not verify with the log key; the next publication replaces it", "object", "s3://"+bucket+"/"+key, "err", err)
		return 0, nil
	}
	return cp.Size, nil
}

// maxCheckpointBytes bounds what is read of a published checkpoint: a
// signed note of one tree head is well under it.
const maxCheckpointBytes = 64 << 10

// maxIssuerBytes bounds what is read of an existing issuer: a certificate
// is a few KiB.
const maxIssuerBytes = 1 << 20

// serveObject answers GET of resource rel from the object store, with the
// content type and caching serveFile gives the same resource on disk.
func (l *Log) serveObject(w http.ResponseWriter, r *http.Request, rel, contentType, cacheControl string) {
	key := objectKey(l.objPrefix, rel)
	out, err := l.obj.GetObject(r.Context(), &s3.GetObjectInput{Bucket: aws.String(l.bucket), Key: aws.String(key)})
	if err != nil {
		var api smithy.APIError
		if errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NotFound") {
			http.Error(w, "no such CT log resource: "+r.URL.Path, http.StatusNotFound)
			return
		}
		if r.Context().Err() == nil {
			l.log.Warn("CT log: reading from the object store", "bucket", l.bucket, "key", key, "err", err)
		}
		// The store's error names the bucket and endpoint: for the log.
		http.Error(w, "the CT log's object store is unavailable; retry later", http.StatusServiceUnavailable)
		return
	}
	defer out.Body.Close()
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", cacheControl)
	if out.ContentLength != nil {
		w.Header().Set("Content-Length", strconv.FormatInt(*out.ContentLength, 10))
	}
	if out.LastModified != nil {
		w.Header().Set("Last-Modified", out.LastModified.UTC().Format(http.TimeFormat))
	}
	if r.Method == http.MethodHead {
		return
	}
	_, _ = io.Copy(w, out.Body)
}

// CopyIssuers copies the issuer certificates of the stopped CT log in dir
// into distributed storage d (for a migration: tlog.Migrate copies the
// tree; the issuers the data tiles name by fingerprint are beside it).
// Issuers already there with the same bytes are skipped, so it can be run
// again. It returns how many the directory holds.
func CopyIssuers(ctx context.Context, dir string, d *tlog.Distributed) (int, error) {
	entries, err := os.ReadDir(filepath.Join(dir, issuerDir))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("ctlog: reading the issuers: %w", err)
	}
	s := &s3Issuers{client: s3.NewFromConfig(d.AWS, d.S3Options), bucket: d.Bucket, prefix: d.Prefix}
	var kvs []tstorage.KV
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, issuerDir, e.Name()))
		if err != nil {
			return 0, fmt.Errorf("ctlog: reading an issuer: %w", err)
		}
		kvs = append(kvs, tstorage.KV{K: []byte(e.Name()), V: b})
	}
	if err := s.AddIssuersIfNotExist(ctx, kvs); err != nil {
		return 0, fmt.Errorf("ctlog: copying the issuers to s3://%s/%s: %w", d.Bucket, d.Prefix, err)
	}
	return len(kvs), nil
}
