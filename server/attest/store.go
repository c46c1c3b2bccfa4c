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
	"net/http"
	"sync"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/prometheus/client_golang/prometheus"
	dssepb "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"golang.org/x/sync/semaphore"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

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
	// Path is the bbolt database file, e.g. <data>/attestations.db: the
	// store of a single server. Exactly one of Path and DSN is set.
	Path string
	// DSN is the go-sql-driver/mysql data source name
	// (user:password@tcp(host:3306)/database) of a MySQL-compatible
	// database that replicas share: the store creates its tables there
	// (SignetAttestation*, beside any others, such as the log's), keeps
	// nothing on local disk, and has no Snapshot (the database's own
	// backups cover it). Timeouts the DSN leaves unset are bounded
	// (timeout 5s, readTimeout and writeTimeout 30s). The database's
	// max_allowed_packet must exceed MaxEnvelopeBytes by 2 MiB.
	DSN string
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
	recs records
	// maxRecord bounds a stored record (the database's packet size); 0
	// for none.
	maxRecord  int64
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

	// stopRefresh ends the gauges' refresh from a shared database, which
	// closes done. Nil for a store of its own.
	stopRefresh context.CancelFunc
	done        chan struct{}
}

// countsRefresh is how often a store on a shared database rereads the
// gauges of records and pending markers, which other replicas change too;
// a variable for tests.
var countsRefresh = time.Minute

// New opens (or creates) the attestation database: the bbolt file at
// Options.Path, or the MySQL database at Options.DSN.
func New(opts Options) (*Store, error) {
	switch {
	case opts.Path != "" && opts.DSN != "":
		return nil, errors.New("attestations: both a database file (Options.Path) and a MySQL database (Options.DSN) are set; set one: the file for a single server, the DSN for replicas that share the database")
	case opts.Path == "" && opts.DSN == "":
		return nil, errors.New("attestations: no database; set Options.Path to a file under the data directory, or Options.DSN to a MySQL database the replicas share")
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

	st := &Store{
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
	var stored, pending int
	if opts.DSN != "" {
		var sr *sqlRecords
		sr, stored, pending, err = openSQL(opts.DSN, opts.MaxEnvelopeBytes, opts.Logger)
		if err != nil {
			return nil, err
		}
		st.recs, st.maxRecord = sr, sr.maxRecord
		var ctx context.Context
		ctx, st.stopRefresh = context.WithCancel(context.Background())
		st.done = make(chan struct{})
		go st.refreshCounts(ctx, countsRefresh)
	} else {
		st.recs, stored, pending, err = openBolt(opts.Path, opts.Logger)
		if err != nil {
			return nil, err
		}
	}
	m.records.Set(float64(stored))
	m.pending.Set(float64(pending))
	return st, nil
}

// refreshCounts sets the gauges from the shared database now and then:
// other replicas store attestations and clear markers too, so counting
// only this replica's would drift.
func (s *Store) refreshCounts(ctx context.Context, every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		stored, pending, err := s.recs.counts(ctx)
		if err != nil {
			continue // the failure shows where it matters: in the requests
		}
		s.metrics.records.Set(float64(stored))
		s.metrics.pending.Set(float64(pending))
	}
}

// Close closes the database.
func (s *Store) Close() error {
	if s.stopRefresh != nil {
		s.stopRefresh()
		<-s.done
	}
	return s.recs.close()
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

func inFlight(id string) *apiError {
	return &apiError{status: http.StatusConflict, reason: "duplicate",
		msg:      fmt.Sprintf("attestation %s is being logged by another request right now; fetch it with GET /api/v2/attestations/%s in a moment", id, id),
		location: "/api/v2/attestations/" + id}
}

func alreadyStored(id string) *apiError {
	return &apiError{status: http.StatusConflict, reason: "duplicate",
		msg:      fmt.Sprintf("this attestation is already stored as %s and was not logged again; fetch it with GET /api/v2/attestations/%s", id, id),
		location: "/api/v2/attestations/" + id}
}

// submit validates, logs and stores one attestation.
func (s *Store) submit(ctx context.Context, sub *submission) (*Record, error) {
	// A record the database cannot take must be refused while nothing is
	// logged.
	if s.maxRecord > 0 {
		if n := recordBound(sub); n > s.maxRecord {
			return nil, fail(http.StatusRequestEntityTooLarge, "too_large", "the attestation would be stored as up to %d bytes, more than the attestation database takes in one record (%d, its max_allowed_packet); nothing was logged; send a smaller attestation (fewer or shorter subjects) or ask the operator to raise max_allowed_packet", n, s.maxRecord)
		}
	}
	s.mu.Lock()
	if s.logging[sub.id] {
		s.mu.Unlock()
		return nil, inFlight(sub.id)
	}
	s.logging[sub.id] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.logging, sub.id)
		s.mu.Unlock()
	}()

	// Writes go on when the client hangs up: a claim or a record half
	// written would be neither here nor there.
	wctx := context.WithoutCancel(ctx)
	// Mark the append as started, unless the attestation is already stored
	// or another replica is appending it.
	wasPending, err := s.recs.claim(wctx, sub.id)
	switch {
	case errors.Is(err, errStored):
		return nil, alreadyStored(sub.id)
	case errors.Is(err, errClaimed):
		return nil, inFlight(sub.id)
	case err != nil:
		return nil, s.storageFailure("record the pending append", err)
	}
	if !wasPending {
		s.metrics.pending.Inc()
	}

	// The timestamp comes before the append: an entry once logged cannot be
	// taken back, so a TSA failure must be known while nothing is logged.
	stamp, err := s.stamp(ctx, sub)
	if err != nil {
		s.dropMarker(wctx, sub.id, wasPending)
		return nil, err
	}

	actx, cancel := context.WithTimeout(wctx, appendTimeout)
	defer cancel()
	start := time.Now()
	entry, err := s.log.AppendHashedRekord(actx, sub.request)
	s.metrics.appendSeconds.Observe(time.Since(start).Seconds())
	if err == nil {
		err = checkEntry(entry, sub.request)
	}
	if err != nil {
		if s.logRejects(err) {
			s.dropMarker(wctx, sub.id, wasPending)
			return nil, fail(http.StatusBadRequest, "log_rejected", "the transparency log refused the entry: %v", err)
		}
		s.errLog.Error(s.logger, "transparency log append failed; the attestation may or may not be in the log", "attestation_id", sub.id, "error", err)
		s.release(wctx, sub.id)
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
	if err := s.recs.put(wctx, rec); err != nil {
		if errors.Is(err, errStored) {
			// Another replica stored it after this one's claim expired.
			s.metrics.pending.Dec()
			return nil, alreadyStored(sub.id)
		}
		s.logger.ErrorContext(ctx, "attestation is in the transparency log but could not be stored; resubmitting it completes it",
			"attestation_id", sub.id, "log_index", entry.GetLogIndex(), "error", err)
		s.release(wctx, sub.id)
		return nil, s.storageFailure("store the logged attestation", err)
	}
	s.metrics.pending.Dec()
	s.metrics.records.Inc()
	return rec, nil
}

// dropMarker removes the pending marker of a submission that appended
// nothing, unless an earlier attempt left it and may have been appended.
func (s *Store) dropMarker(ctx context.Context, id string, wasPending bool) {
	if wasPending {
		s.release(ctx, id)
		return
	}
	if err := s.recs.unmark(ctx, id); err == nil {
		s.metrics.pending.Dec()
	}
}

// release lets a resubmission through other replicas complete an append
// this request leaves unknown; failing, the claim expires on its own.
func (s *Store) release(ctx context.Context, id string) {
	if err := s.recs.release(ctx, id); err != nil {
		s.errLog.Error(s.logger, "could not release the claim on an attestation; resubmissions wait for it to expire", "attestation_id", id, "error", err)
	}
}

// recordBound is an upper bound on the size of sub's stored record, known
// before it is logged: the envelope and verifier in base64, the verifier
// again in the log entry (base64 of JSON holding it in base64), the
// subjects and strings as JSON, and room for the rest of the entry (its
// proof, checkpoint, signature and the JSON around).
func recordBound(sub *submission) int64 {
	b64 := func(n int) int64 { return int64(base64.StdEncoding.EncodedLen(n)) }
	env := sub.envelope
	n := b64(len(env.GetPayload()))
	for _, sig := range env.GetSignatures() {
		n += b64(len(sig.GetSig())) + int64(len(sig.GetKeyid()))*6
	}
	n += 4 * b64(proto.Size(sub.verifier))
	text, _ := json.Marshal([]any{sub.subjects, env.GetPayloadType(), sub.statementType, sub.predicateType, sub.identity, sub.issuer})
	return n + int64(len(text)) + 64<<10
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
	if errors.Is(err, errUnavailable) {
		// Not the client's fault, and passing: the same request succeeds
		// once the database is back.
		return fail(http.StatusServiceUnavailable, "storage_unavailable", "the attestation database is unavailable, so the server could not %s; the attestation is not stored; retry the same request later", what)
	}
	return fail(http.StatusInternalServerError, "storage_error", "the attestation database could not %s; retry later or ask the operator to check the server log", what)
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

// get loads one record; nil if there is none.
func (s *Store) get(ctx context.Context, id string) (*Record, error) {
	return s.recs.get(ctx, id)
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

// find answers a query with the records that match every criterion it
// names, newest first (descending submission order). It returns the page
// and the cursor of the next one (0 when there is none): the sequence
// number of the page's last, oldest record, so attestations stored while a
// client pages never shift the pages it has yet to read.
func (s *Store) find(ctx context.Context, q query) ([]*Record, uint64, error) {
	return s.recs.find(ctx, q)
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
	if exists, err := s.recs.has(ctx, sub.id); exists || err != nil {
		if err != nil {
			s.errLog.Error(s.logger, "a dsse entry was logged but the attestation database could not be read to keep it", "attestation_id", sub.id, "log_index", entry.GetLogIndex(), "error", err)
		}
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
	if err := s.recs.put(context.WithoutCancel(ctx), rec); err != nil {
		if errors.Is(err, errStored) {
			return // kept meanwhile, by a submission or another replica
		}
		s.errLog.Error(s.logger, "a dsse entry was logged but its attestation could not be kept", "attestation_id", sub.id, "log_index", entry.GetLogIndex(), "error", err)
		return
	}
	s.metrics.records.Inc()
	s.metrics.submissions.WithLabelValues("logged_dsse").Inc()
	s.logger.InfoContext(ctx, "attestation kept from a dsse log entry", "attestation_id", rec.ID, "predicate_type", rec.PredicateType, "identity", rec.Identity, "log_index", entry.GetLogIndex())
}
