package attest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// boltRecords keeps the attestations in one bbolt file of this server's
// own. Claims need no more than the file: one process holds its lock, and
// the Store's in-process map keeps two requests from appending one
// attestation at once.
type boltRecords struct {
	db     *bolt.DB
	used   *watermark
	stored atomic.Uint64 // records held, for the watermark
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

// openBolt opens (or creates) the database file at path and returns it
// with the records and pending markers it holds.
func openBolt(path string, logger *slog.Logger) (*boltRecords, int, int, error) {
	if err := checkDatabaseFile(path); err != nil {
		return nil, 0, 0, fmt.Errorf("attestations: %w", err)
	}
	// A second process on the same file would block forever on the lock;
	// fail fast and say why.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, 0, 0, fmt.Errorf("attestations: database %s is locked by another process; stop the other signet server using this data directory", path)
	}
	if err != nil {
		return nil, 0, 0, fmt.Errorf("attestations: open database %s: %w", path, err)
	}
	var stored, pending int
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
		stored = tx.Bucket(bucketRecords).Stats().KeyN
		pending = tx.Bucket(bucketPending).Stats().KeyN
		return tx.Bucket(bucketPending).ForEach(func(id, since []byte) error {
			logger.Warn("attestation may be in the transparency log without being stored; resubmitting the same envelope completes it",
				"attestation_id", string(id), "append_started", string(since))
			return nil
		})
	})
	if err != nil {
		_ = db.Close()
		return nil, 0, 0, fmt.Errorf("attestations: database %s: %w", path, err)
	}

	held, _, err := readWatermark(path)
	if err != nil {
		_ = db.Close()
		return nil, 0, 0, fmt.Errorf("attestations: %w", err)
	}
	if uint64(stored) < held {
		_ = db.Close()
		return nil, 0, 0, fmt.Errorf("attestations: %s holds %d attestations, but the store has held %d (%s): it is an older or damaged copy, and the envelopes of the missing ones are gone while their log entries remain. Restore the latest backup of %s; to accept the loss, remove %s", path, stored, held, usedMarker(path), path, usedMarker(path))
	}
	used := &watermark{path: path, count: held}
	if err := used.advance(uint64(stored)); err != nil {
		_ = db.Close()
		return nil, 0, 0, fmt.Errorf("attestations: %w", err)
	}
	b := &boltRecords{db: db, used: used}
	b.stored.Store(uint64(stored))
	return b, stored, pending, nil
}

func (b *boltRecords) close() error { return b.db.Close() }

// Mark the append as started, unless the attestation is already stored.
func (b *boltRecords) claim(_ context.Context, id string) (bool, error) {
	var wasPending bool
	err := b.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketRecords).Get([]byte(id)) != nil {
			return errStored
		}
		p := tx.Bucket(bucketPending)
		wasPending = p.Get([]byte(id)) != nil
		return p.Put([]byte(id), []byte(time.Now().UTC().Format(time.RFC3339Nano)))
	})
	return wasPending, err
}

// release has nothing to do: the claim is the Store's in-process mark.
func (b *boltRecords) release(context.Context, string) error { return nil }

func (b *boltRecords) unmark(_ context.Context, id string) error {
	return b.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPending).Delete([]byte(id)) })
}

// put writes a record, its index entries and clears its pending marker in
// one transaction, so a record is never visible without its index entries.
func (b *boltRecords) put(_ context.Context, rec *Record) error {
	val, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	err = b.db.Update(func(tx *bolt.Tx) error {
		records := tx.Bucket(bucketRecords)
		id := []byte(rec.ID)
		// A second put of one id (KeepLogged racing a submission) would
		// index the record twice.
		if records.Get(id) != nil {
			return errStored
		}
		seq, err := records.NextSequence()
		if err != nil {
			return err
		}
		if err := records.Put(id, val); err != nil {
			return err
		}
		for _, t := range indexTerms(rec) {
			if err := tx.Bucket(t.bucket).Put(indexKey(t.value, seq), id); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketPending).Delete(id)
	})
	if err != nil {
		return err
	}
	// After the commit, so the count never exceeds what the database holds.
	return b.used.advance(b.stored.Add(1))
}

// indexTerm is one index entry of a record: the bucket (bbolt) or kind
// (SQL) and the value indexed.
type indexTerm struct {
	bucket []byte
	kind   uint8
	value  string
}

// Index kinds in SQL (SignetAttestationIndex.kind).
const (
	kindSubject   = 1 // "alg:value" of each subject digest
	kindPredicate = 2
	kindIdentity  = 3
	kindIssuer    = 4
)

var (
	termSubject   = indexTerm{bucket: bucketSubject, kind: kindSubject}
	termPredicate = indexTerm{bucket: bucketPredicate, kind: kindPredicate}
	termIdentity  = indexTerm{bucket: bucketIdentity, kind: kindIdentity}
	termIssuer    = indexTerm{bucket: bucketIssuer, kind: kindIssuer}
)

func (t indexTerm) of(v string) indexTerm { t.value = v; return t }

// indexTerms are what a record is found by: each distinct subject digest,
// its predicate type, and its signer's identity and issuer if it has them.
func indexTerms(rec *Record) []indexTerm {
	var out []indexTerm
	seen := map[string]bool{}
	for _, sub := range rec.Subjects {
		for alg, v := range sub.Digest {
			d := alg + ":" + v
			if seen[d] {
				continue
			}
			seen[d] = true
			out = append(out, termSubject.of(d))
		}
	}
	out = append(out, termPredicate.of(rec.PredicateType))
	if rec.Identity != "" {
		out = append(out, termIdentity.of(rec.Identity))
	}
	if rec.Issuer != "" {
		out = append(out, termIssuer.of(rec.Issuer))
	}
	return out
}

// queryTerms are the index entries a query must match, all of them.
func queryTerms(q query) []indexTerm {
	var terms []indexTerm
	if q.digestAlg != "" {
		terms = append(terms, termSubject.of(q.digestAlg+":"+q.digestValue))
	}
	if q.identity != "" {
		terms = append(terms, termIdentity.of(q.identity))
	}
	if q.predicateType != "" {
		terms = append(terms, termPredicate.of(q.predicateType))
	}
	if q.issuer != "" {
		terms = append(terms, termIssuer.of(q.issuer))
	}
	return terms
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

func (b *boltRecords) has(_ context.Context, id string) (bool, error) {
	var exists bool
	err := b.db.View(func(tx *bolt.Tx) error {
		exists = tx.Bucket(bucketRecords).Get([]byte(id)) != nil
		return nil
	})
	return exists, err
}

func (b *boltRecords) get(_ context.Context, id string) (*Record, error) {
	var rec *Record
	err := b.db.View(func(tx *bolt.Tx) error {
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

// find intersects the indexes of every criterion the query names, newest
// first, without reading a record until it matches all of them (a
// leapfrog join over the sorted index ranges: each step seeks the lagging
// index down to the leader's sequence number).
func (b *boltRecords) find(_ context.Context, q query) ([]*Record, uint64, error) {
	terms := queryTerms(q)
	var out []*Record
	var next uint64
	err := b.db.View(func(tx *bolt.Tx) error {
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

func (b *boltRecords) counts(context.Context) (stored, pending int, err error) {
	err = b.db.View(func(tx *bolt.Tx) error {
		stored = tx.Bucket(bucketRecords).Stats().KeyN
		pending = tx.Bucket(bucketPending).Stats().KeyN
		return nil
	})
	return stored, pending, err
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
