package attest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/prometheus/client_golang/prometheus"
	dssepb "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sync/semaphore"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/signet-dev/signet/server/ratelog"
	"github.com/signet-dev/signet/server/tlog"
)

// Appender appends a hashedrekord entry to the transparency log and returns
// it with its inclusion proof and checkpoint. *tlog.Log satisfies it.
type Appender interface {
	AppendHashedRekord(ctx context.Context, req *rekorv2.HashedRekordRequestV002) (*rekorv1.TransparencyLogEntry, error)
}

// DefaultMaxEnvelopeBytes bounds an envelope when Options.MaxEnvelopeBytes is 0.
const DefaultMaxEnvelopeBytes = 32 << 20

// appendTimeout bounds one log append. The append runs detached from the
// request so a client hanging up does not abandon an entry the log is
// already integrating.
const appendTimeout = time.Minute

// lockTimeout bounds the wait for the database file lock; a variable so
// tests need not wait for it.
var lockTimeout = 2 * time.Second

// Options configure a Store.
type Options struct {
	// Path is the bbolt database file, e.g. <data>/attestations.db.
	Path string
	// Log is the transparency log attestations are appended to.
	Log Appender
	// LogRejects reports whether an error from Log means the log refused the
	// entry as invalid (nothing was appended; the caller's fault). Nil means
	// errors.Is(err, tlog.ErrInvalidEntry), signet's own log.
	LogRejects func(error) bool
	// MaxEnvelopeBytes bounds the JSON envelope; 0 means DefaultMaxEnvelopeBytes.
	MaxEnvelopeBytes int64
	// MaxInflightBytes bounds the request bodies being read and checked at
	// once, so that large submissions cannot together exhaust memory (each
	// costs a few times its size while it is decoded and verified); 0 means
	// twice MaxEnvelopeBytes.
	MaxInflightBytes int64
	// Roots, when set, are the CA roots (and Intermediates the intermediate
	// CAs) signer certificates must chain to, so that identities in the
	// index are ones this server's CA vouched for.
	Roots         *x509.CertPool
	Intermediates *x509.CertPool
	// Timestamp, when set, is the server's timestamp authority: it returns
	// the DER RFC 3161 TimeStampResp over SHA-256(signature), as a bundle's
	// rfc3161Timestamps[].signedTimestamp holds it (server/tsa's
	// TSA.Timestamp). Every submission is then timestamped before it is
	// logged and the timestamp kept with it, so the store can serve a
	// complete bundle; a failure refuses the submission. Nil keeps no
	// timestamps, and the store serves no bundles.
	Timestamp func(ctx context.Context, signature []byte) ([]byte, error)
	Logger    *slog.Logger
	// Metrics receives the store's metrics; nil keeps them unregistered.
	Metrics prometheus.Registerer
}

// Store keeps attestations and the log entries that make them transparent.
type Store struct {
	used       *watermark
	stored     atomic.Uint64 // records held, for the watermark
	db         *bolt.DB
	log        Appender
	logRejects func(error) bool
	timestamp  func(context.Context, []byte) ([]byte, error)
	maxBytes   int64
	validator  validator
	logger     *slog.Logger
	metrics    *metrics

	// inflight weighs the request bodies being read and checked.
	inflight    *semaphore.Weighted
	inflightMax int64

	mu      sync.Mutex
	logging map[string]bool // attestation IDs being appended

	errLog ratelog.Limiter
}

// Buckets. Index keys are lp(value) || seq (8 bytes, big endian) → id, so a
// prefix scan over one value yields ids in submission order and the seq is
// the page cursor.
var (
	bucketRecords   = []byte("records")   // id → record JSON
	bucketPending   = []byte("pending")   // id → RFC 3339 time the append started
	bucketSubject   = []byte("bySubject") // lp("alg:value") || seq → id
	bucketPredicate = []byte("byPredicateType")
	bucketIdentity  = []byte("byIdentity")
	bucketIssuer    = []byte("byIssuer")
	bucketMeta      = []byte("meta")
	keySchema       = []byte("schema")
	schemaVersion   = []byte("1")
)

// New opens (or creates) the attestation database.
func New(opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("attestations: no database path; set Options.Path to a file under the data directory")
	}
	if opts.Log == nil {
		return nil, errors.New("attestations: no transparency log to append to (Options.Log)")
	}
	if opts.MaxEnvelopeBytes < 0 {
		return nil, fmt.Errorf("attestations.maxEnvelopeBytes is %d; set a positive byte count or 0 for the default %d", opts.MaxEnvelopeBytes, DefaultMaxEnvelopeBytes)
	}
	if opts.MaxEnvelopeBytes == 0 {
		opts.MaxEnvelopeBytes = DefaultMaxEnvelopeBytes
	}
	if opts.MaxInflightBytes < 0 {
		return nil, fmt.Errorf("attestations.maxInflightBytes is %d; set a positive byte count or 0 for twice maxEnvelopeBytes", opts.MaxInflightBytes)
	}
	if opts.MaxInflightBytes == 0 {
		opts.MaxInflightBytes = 2 * opts.MaxEnvelopeBytes
	}
	if opts.MaxInflightBytes < opts.MaxEnvelopeBytes+verifierSlack {
		opts.MaxInflightBytes = opts.MaxEnvelopeBytes + verifierSlack // one largest submission always fits
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.LogRejects == nil {
		opts.LogRejects = func(err error) bool { return errors.Is(err, tlog.ErrInvalidEntry) }
	}
	m, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, fmt.Errorf("attestations: metrics: %w", err)
	}

	if err := checkDatabaseFile(opts.Path); err != nil {
		return nil, fmt.Errorf("attestations: %w", err)
	}
	// A second process on the same file would block forever on the lock;
	// fail fast and say why.
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("attestations: database %s is locked by another process; stop the other signet server using this data directory", opts.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("attestations: open database %s: %w", opts.Path, err)
	}
	var records, pending int
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketRecords, bucketPending, bucketSubject, bucketPredicate, bucketIdentity, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		// The issuer index came later: build it once for older stores.
		if tx.Bucket(bucketIssuer) == nil {
			if err := backfillIssuers(tx); err != nil {
				return fmt.Errorf("building the issuer index: %w", err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(keySchema); {
		case v == nil:
			if err := meta.Put(keySchema, schemaVersion); err != nil {
				return err
			}
		case !bytes.Equal(v, schemaVersion):
			return fmt.Errorf("schema version %q, this signet reads version %q; use the signet release that wrote it", v, schemaVersion)
		}
		records = tx.Bucket(bucketRecords).Stats().KeyN
		pending = tx.Bucket(bucketPending).Stats().KeyN
		return tx.Bucket(bucketPending).ForEach(func(id, since []byte) error {
			opts.Logger.Warn("attestation may be in the transparency log without being stored; resubmitting the same envelope completes it",
				"attestation_id", string(id), "append_started", string(since))
			return nil
		})
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("attestations: database %s: %w", opts.Path, err)
	}
	m.records.Set(float64(records))
	m.pending.Set(float64(pending))

	held, _, err := readWatermark(opts.Path)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("attestations: %w", err)
	}
	if uint64(records) < held {
		_ = db.Close()
		return nil, fmt.Errorf("attestations: %s holds %d attestations, but the store has held %d (%s): it is an older or damaged copy, and the envelopes of the missing ones are gone while their log entries remain. Restore the latest backup of %s; to accept the loss, remove %s", opts.Path, records, held, usedMarker(opts.Path), opts.Path, usedMarker(opts.Path))
	}
	used := &watermark{path: opts.Path, count: held}
	if err := used.advance(uint64(records)); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("attestations: %w", err)
	}
	st := &Store{
		used:        used,
		db:          db,
		log:         opts.Log,
		logRejects:  opts.LogRejects,
		timestamp:   opts.Timestamp,
		maxBytes:    opts.MaxEnvelopeBytes,
		inflight:    semaphore.NewWeighted(opts.MaxInflightBytes),
		inflightMax: opts.MaxInflightBytes,
		validator:   validator{roots: opts.Roots, intermediates: opts.Intermediates},
		logger:      opts.Logger,
		metrics:     m,
		logging:     map[string]bool{},
	}
	st.stored.Store(uint64(records))
	return st, nil
}

// Close closes the database.
func (s *Store) Close() error {
	return s.db.Close()
}

// apiError is a failure with the HTTP status and message to answer it with.
type apiError struct {
	status   int
	reason   string // metric label
	msg      string
	location string // for 409: the existing attestation
}

func (e *apiError) Error() string { return e.msg }

func fail(status int, reason, format string, args ...any) *apiError {
	return &apiError{status: status, reason: reason, msg: fmt.Sprintf(format, args...)}
}

// submit validates, logs and stores one attestation.
func (s *Store) submit(ctx context.Context, sub *submission) (*Record, error) {
	s.mu.Lock()
	if s.logging[sub.id] {
		s.mu.Unlock()
		return nil, &apiError{status: http.StatusConflict, reason: "duplicate",
			msg:      fmt.Sprintf("attestation %s is being logged by another request right now; fetch it with GET /api/v2/attestations/%s in a moment", sub.id, sub.id),
			location: "/api/v2/attestations/" + sub.id}
	}
	s.logging[sub.id] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.logging, sub.id)
		s.mu.Unlock()
	}()

	// Mark the append as started, unless the attestation is already stored.
	var wasPending bool
	err := s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketRecords).Get([]byte(sub.id)) != nil {
			return &apiError{status: http.StatusConflict, reason: "duplicate",
				msg:      fmt.Sprintf("this attestation is already stored as %s and was not logged again; fetch it with GET /api/v2/attestations/%s", sub.id, sub.id),
				location: "/api/v2/attestations/" + sub.id}
		}
		p := tx.Bucket(bucketPending)
		wasPending = p.Get([]byte(sub.id)) != nil
		return p.Put([]byte(sub.id), []byte(time.Now().UTC().Format(time.RFC3339Nano)))
	})
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return nil, ae
		}
		return nil, s.storageFailure("record the pending append", err)
	}
	if !wasPending {
		s.metrics.pending.Inc()
	}

	// The timestamp comes before the append: an entry once logged cannot be
	// taken back, so a TSA failure must be known while nothing is logged.
	stamp, err := s.stamp(ctx, sub)
	if err != nil {
		s.dropMarker(sub.id, wasPending)
		return nil, err
	}

	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), appendTimeout)
	defer cancel()
	start := time.Now()
	entry, err := s.log.AppendHashedRekord(actx, sub.request)
	s.metrics.appendSeconds.Observe(time.Since(start).Seconds())
	if err == nil {
		err = checkEntry(entry, sub.request)
	}
	if err != nil {
		if s.logRejects(err) {
			s.dropMarker(sub.id, wasPending)
			return nil, fail(http.StatusBadRequest, "log_rejected", "the transparency log refused the entry: %v", err)
		}
		s.errLog.Error(s.logger, "transparency log append failed; the attestation may or may not be in the log", "attestation_id", sub.id, "error", err)
		if tlog.IsStorageFull(err) {
			return nil, storageFull()
		}
		// The cause goes to the server log; the client learns what to do,
		// not the server's paths.
		return nil, fail(http.StatusServiceUnavailable, "log_unavailable", "the transparency log could not append the attestation; retry the same request")
	}

	rec := &Record{
		ID:            sub.id,
		Envelope:      sub.envelope,
		Verifier:      sub.verifier,
		Entry:         entry,
		StatementType: sub.statementType,
		PredicateType: sub.predicateType,
		Subjects:      sub.subjects,
		Identity:      sub.identity,
		Issuer:        sub.issuer,
		StoredTime:    time.Now().UTC(),
		// Set only once its token was issued and checked (s.stamp).
		SignedTimestamp: stamp,
	}
	if err := s.put(rec); err != nil {
		s.logger.ErrorContext(ctx, "attestation is in the transparency log but could not be stored; resubmitting it completes it",
			"attestation_id", sub.id, "log_index", entry.GetLogIndex(), "error", err)
		return nil, s.storageFailure("store the logged attestation", err)
	}
	s.metrics.pending.Dec()
	s.metrics.records.Inc()
	return rec, nil
}

// dropMarker removes the pending marker of a submission that appended
// nothing, unless an earlier attempt left it and may have been appended.
func (s *Store) dropMarker(id string, wasPending bool) {
	if wasPending {
		return
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPending).Delete([]byte(id)) }); err == nil {
		s.metrics.pending.Dec()
	}
}

// timestampTimeout bounds the TSA's answer; in process it takes
// milliseconds, but its key may be held by a slower signer.
const timestampTimeout = 30 * time.Second

// stamp gets the TSA's timestamp over the envelope's signature, checked to
// be over that signature. It returns nil, and no error, when the store has
// no TSA, or when the signing certificate was not valid at the timestamp's
// time: verifiers accept a certificate only at a time within its validity,
// so such a timestamp would prove nothing, and the record is kept as it
// was before the store kept timestamps (the signer's own bundle holds the
// timestamp taken when it signed).
func (s *Store) stamp(ctx context.Context, sub *submission) ([]byte, error) {
	if s.timestamp == nil {
		return nil, nil
	}
	sig := sub.request.GetSignature().GetContent()
	tctx, cancel := context.WithTimeout(ctx, timestampTimeout)
	defer cancel()
	raw, err := s.timestamp(tctx, sig)
	var ts *timestamp.Timestamp
	if err == nil {
		ts, err = checkTimestamp(raw, sig)
	}
	if err != nil {
		s.errLog.Error(s.logger, "timestamp authority failed; the attestation was refused before it was logged", "attestation_id", sub.id, "error", err)
		return nil, fail(http.StatusServiceUnavailable, "timestamp_unavailable", "the server's timestamp authority could not timestamp the attestation, so it was neither logged nor stored; retry the same request later")
	}
	if c := sub.cert; c != nil && (ts.Time.Before(c.NotBefore) || ts.Time.After(c.NotAfter)) {
		s.logger.InfoContext(ctx, "signing certificate not valid at the submission's timestamp; storing the attestation without one",
			"attestation_id", sub.id, "timestamp", ts.Time, "not_before", c.NotBefore, "not_after", c.NotAfter)
		return nil, nil
	}
	return raw, nil
}

// checkTimestamp makes sure a TSA answer is a granted timestamp over
// SHA-256(sig), as verifiers will check it, before it is kept for good.
func checkTimestamp(raw, sig []byte) (*timestamp.Timestamp, error) {
	ts, err := timestamp.ParseResponse(raw)
	if err != nil {
		return nil, fmt.Errorf("the answer is not a granted RFC 3161 timestamp: %v", err)
	}
	digest := sha256.Sum256(sig)
	if ts.HashAlgorithm != crypto.SHA256 || !bytes.Equal(ts.HashedMessage, digest[:]) {
		return nil, errors.New("the timestamp is not over the SHA-256 of the envelope's signature")
	}
	return ts, nil
}

func storageFull() *apiError {
	return fail(http.StatusInsufficientStorage, "storage_full", "the server's storage is full; the attestation was not stored; retry later (the operator must free space)")
}

func (s *Store) storageFailure(what string, err error) *apiError {
	s.errLog.Error(s.logger, "attestation database failure", "op", what, "error", err)
	if tlog.IsStorageFull(err) {
		return storageFull()
	}
	return fail(http.StatusInternalServerError, "storage_error", "the attestation database could not %s; retry later or ask the operator to check the server log", what)
}

// put writes a record, its index entries and clears its pending marker in
// one transaction, so a record is never visible without its index entries.
func (s *Store) put(rec *Record) error {
	val, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		records := tx.Bucket(bucketRecords)
		seq, err := records.NextSequence()
		if err != nil {
			return err
		}
		id := []byte(rec.ID)
		if err := records.Put(id, val); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, sub := range rec.Subjects {
			for alg, v := range sub.Digest {
				d := alg + ":" + v
				if seen[d] {
					continue
				}
				seen[d] = true
				if err := tx.Bucket(bucketSubject).Put(indexKey(d, seq), id); err != nil {
					return err
				}
			}
		}
		if err := tx.Bucket(bucketPredicate).Put(indexKey(rec.PredicateType, seq), id); err != nil {
			return err
		}
		if rec.Identity != "" {
			if err := tx.Bucket(bucketIdentity).Put(indexKey(rec.Identity, seq), id); err != nil {
				return err
			}
		}
		if rec.Issuer != "" {
			if err := tx.Bucket(bucketIssuer).Put(indexKey(rec.Issuer, seq), id); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketPending).Delete(id)
	})
	if err != nil {
		return err
	}
	// After the commit, so the count never exceeds what the database holds.
	return s.used.advance(s.stored.Add(1))
}

// checkEntry makes sure the log returned the entry for this request, with a
// proof, before it is linked to the envelope for good.
func checkEntry(e *rekorv1.TransparencyLogEntry, req *rekorv2.HashedRekordRequestV002) error {
	if e == nil {
		return errors.New("the log returned no entry")
	}
	if e.GetInclusionProof() == nil || e.GetInclusionProof().GetCheckpoint() == nil {
		return errors.New("the log returned an entry without an inclusion proof and checkpoint")
	}
	if kv := e.GetKindVersion(); kv.GetKind() != "hashedrekord" || kv.GetVersion() != "0.0.2" {
		return fmt.Errorf("the log returned a %s %s entry, not hashedrekord 0.0.2", kv.GetKind(), kv.GetVersion())
	}
	var body rekorv2.Entry
	if err := protojson.Unmarshal(e.GetCanonicalizedBody(), &body); err != nil {
		return fmt.Errorf("the log returned an entry whose body is not a Rekor v2 entry: %v", err)
	}
	hr := body.GetSpec().GetHashedRekordV002()
	if !bytes.Equal(hr.GetData().GetDigest(), req.GetDigest()) || !bytes.Equal(hr.GetSignature().GetContent(), req.GetSignature().GetContent()) {
		return errors.New("the log returned an entry for another digest or signature")
	}
	return nil
}

// lp prefixes a value with its length, so one value's keys are never a prefix
// of another value's.
func lp(v string) []byte {
	b := binary.AppendUvarint(nil, uint64(len(v)))
	return append(b, v...)
}

func indexKey(v string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(lp(v), seq)
}

// get loads one record; nil if there is none.
func (s *Store) get(id string) (*Record, error) {
	var rec *Record
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		rec, err = loadRecord(tx, []byte(id))
		return err
	})
	return rec, err
}

func loadRecord(tx *bolt.Tx, id []byte) (*Record, error) {
	v := tx.Bucket(bucketRecords).Get(id)
	if v == nil {
		return nil, nil
	}
	var rec Record
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("record %s: %w", id, err)
	}
	return &rec, nil
}

// query selects attestations; at least one of the digest, predicateType and
// identity is set.
type query struct {
	digestAlg, digestValue string
	predicateType          string
	identity, issuer       string
	before                 uint64 // page cursor: return seq < before (0: from the newest)
	pageSize               int
}

// maxPageBytes bounds the stored size of one page of results: a page of
// many large attestations is cut short (the cursor continues it), so one
// query never builds an answer of hundreds of megabytes.
const maxPageBytes = 16 << 20

// find intersects the indexes of every criterion the query names, newest
// first (descending submission order), without reading a record until it
// matches all of them (a leapfrog join over the sorted index ranges: each
// step seeks the lagging index down to the leader's sequence number). It
// returns the page and the cursor of the next one (0 when there is none):
// the sequence number of the page's last, oldest record, so attestations
// stored while a client pages never shift the pages it has yet to read.
func (s *Store) find(q query) ([]*Record, uint64, error) {
	type term struct {
		bucket []byte
		value  string
	}
	var terms []term
	if q.digestAlg != "" {
		terms = append(terms, term{bucketSubject, q.digestAlg + ":" + q.digestValue})
	}
	if q.identity != "" {
		terms = append(terms, term{bucketIdentity, q.identity})
	}
	if q.predicateType != "" {
		terms = append(terms, term{bucketPredicate, q.predicateType})
	}
	if q.issuer != "" {
		terms = append(terms, term{bucketIssuer, q.issuer})
	}
	var out []*Record
	var next uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		cursors := make([]*bolt.Cursor, len(terms))
		for i, t := range terms {
			cursors[i] = tx.Bucket(t.bucket).Cursor()
		}
		// seek returns the last sequence number <= seq in term i.
		seek := func(i int, seq uint64) (uint64, []byte, bool) {
			prefix, key := lp(terms[i].value), indexKey(terms[i].value, seq)
			k, id := cursors[i].Seek(key)
			switch {
			case k == nil:
				k, id = cursors[i].Last()
			case !bytes.Equal(k, key):
				k, id = cursors[i].Prev()
			}
			if k == nil || !bytes.HasPrefix(k, prefix) {
				return 0, nil, false
			}
			return binary.BigEndian.Uint64(k[len(prefix):]), id, true
		}
		var last uint64
		size := 0
		start := uint64(math.MaxUint64)
		if q.before != 0 {
			start = q.before - 1
		}
		for target := start; target > 0; target-- {
			var id []byte
			for agreed := 0; agreed < len(terms); {
				for i := range terms {
					seq, got, ok := seek(i, target)
					if !ok {
						return nil
					}
					if seq != target {
						target, agreed = seq, 0
						break
					}
					id = got
					agreed++
				}
			}
			raw := tx.Bucket(bucketRecords).Get(id)
			if raw == nil {
				continue
			}
			if len(out) == q.pageSize || (len(out) > 0 && size+len(raw) > maxPageBytes) {
				// There is at least one more match: hand out a cursor.
				next = last
				return nil
			}
			rec, err := loadRecord(tx, id)
			if err != nil {
				return err
			}
			out = append(out, rec)
			size += len(raw)
			last = target
		}
		return nil
	})
	return out, next, err
}

// backfillIssuers creates the issuer index and fills it from the records.
func backfillIssuers(tx *bolt.Tx) error {
	idx, err := tx.CreateBucket(bucketIssuer)
	if err != nil {
		return err
	}
	// Any index holds every record once with its sequence number: the
	// predicate type index does, since every record has one.
	return tx.Bucket(bucketPredicate).ForEach(func(k, id []byte) error {
		rec, err := loadRecord(tx, id)
		if err != nil || rec == nil || rec.Issuer == "" {
			return err
		}
		return idx.Put(indexKey(rec.Issuer, binary.BigEndian.Uint64(k[len(k)-8:])), id)
	})
}

// pageTokenNewestFirst marks page tokens of newest-first answers; those of
// servers that answered oldest first (8 bytes, no mark) are refused rather
// than read the other way.
const pageTokenNewestFirst = 1

func encodePageToken(seq uint64) string {
	return base64.RawURLEncoding.EncodeToString(binary.BigEndian.AppendUint64([]byte{pageTokenNewestFirst}, seq))
}

func decodePageToken(t string) (uint64, error) {
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil || len(b) != 9 || b[0] != pageTokenNewestFirst || binary.BigEndian.Uint64(b[1:]) == 0 {
		return 0, errors.New("not a page token")
	}
	return binary.BigEndian.Uint64(b[1:]), nil
}

// KeepLogged stores an in-toto attestation that a client logged itself as a
// dsse entry (sigstore-js, actions/attest), so it is found by digest like
// one submitted here. The entry is already in the log: an envelope the
// store would refuse (not in-toto, a certificate of another CA) is only
// not kept, and a failure to keep it is logged, not answered.
func (s *Store) KeepLogged(ctx context.Context, env *dssepb.Envelope, ver *rekorv2.Verifier, entry *rekorv1.TransparencyLogEntry) {
	sub, err := s.validator.validate(env, ver)
	if err != nil {
		s.logger.DebugContext(ctx, "dsse log entry not kept as an attestation", "log_index", entry.GetLogIndex(), "reason", err)
		return
	}
	var exists bool
	_ = s.db.View(func(tx *bolt.Tx) error {
		exists = tx.Bucket(bucketRecords).Get([]byte(sub.id)) != nil
		return nil
	})
	if exists {
		return
	}
	// The TSA is asked only for an attestation not kept yet.
	stamp, err := s.stamp(ctx, sub)
	if err != nil {
		stamp = nil // the record is kept without the server's timestamp, its bundle then 404
	}
	rec := &Record{
		ID: sub.id, Envelope: sub.envelope, Verifier: sub.verifier, Entry: entry,
		StatementType: sub.statementType, PredicateType: sub.predicateType, Subjects: sub.subjects,
		Identity: sub.identity, Issuer: sub.issuer, StoredTime: time.Now().UTC(), SignedTimestamp: stamp,
	}
	if err := s.put(rec); err != nil {
		s.errLog.Error(s.logger, "a dsse entry was logged but its attestation could not be kept", "attestation_id", sub.id, "log_index", entry.GetLogIndex(), "error", err)
		return
	}
	s.metrics.records.Inc()
	s.metrics.submissions.WithLabelValues("logged_dsse").Inc()
	s.logger.InfoContext(ctx, "attestation kept from a dsse log entry", "attestation_id", rec.ID, "predicate_type", rec.PredicateType, "identity", rec.Identity, "log_index", entry.GetLogIndex())
}
