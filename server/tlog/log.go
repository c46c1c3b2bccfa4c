// Package tlog is signet's transparency log: a Rekor v2 (rekor-tiles)
// compatible log of hashedrekord (and dsse) entries, stored by transparency-dev/tessera's
// POSIX driver and served over C2SP tlog-tiles.
package tlog

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	f_log "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/signet-dev/signet/server/ratelimit"
	"github.com/signet-dev/signet/server/ratelog"
)

// Defaults chosen for short integration latency: tessera's minimum checkpoint
// interval; batches short enough for ~25 ms latency at low load, long enough
// that one integration's fsyncs serve a few hundred entries at high load
// (measured: 10 ms batches gave ~15% less throughput at 256 clients, 40 ms
// batches cap a closed-loop client pool at clients/40ms).
const (
	DefaultCheckpointInterval = 100 * time.Millisecond
	// DistributedCheckpointInterval is the default, and tessera's minimum,
	// on a distributed log. Appends do not wait for it (they are answered
	// with checkpoints the log signs as it integrates).
	DistributedCheckpointInterval = time.Second
	DefaultBatchMaxAge            = 20 * time.Millisecond
	DefaultBatchMaxSize           = 256
	DefaultMaxRequestBytes        = 256 << 10
	// awaitPollPeriod is how often the publication awaiter rereads the
	// published checkpoint when Options.AwaitPublication is set.
	awaitPollPeriod = 10 * time.Millisecond
	// dedupEntries is how many recent entries tessera's in-memory antispam
	// remembers: an identical entry within that window (a second of
	// appends at full load, much longer at normal load: enough for a
	// client's retry) is answered with the first. The cache keeps each
	// entry until it is evicted; 65,536 of them cost a sixth of the
	// throughput in collection work (docs/benchmarks.md).
	dedupEntries = 4096
	// maxEntryBytes is the tlog-tiles limit on one entry (uint16 length prefix
	// in entry bundles).
	maxEntryBytes = 1<<16 - 1
)

// Options configure Open.
type Options struct {
	// Dir is the tessera POSIX root (e.g. <data>/log). It is created if absent.
	Dir string
	// Distributed, when set, puts the log on a database and an object store
	// instead of Dir (distributed.go); several servers may share it.
	Distributed *Distributed
	// Signer is the Ed25519 checkpoint key: a private key or a token key (core/keyref).
	Signer crypto.Signer
	// Origin is the checkpoint origin line; rekor-tiles uses the log's hostname
	// (verifiers derive it from the trusted root's baseUrl host).
	Origin string
	// CheckpointInterval is how often tessera publishes /checkpoint (min 100ms;
	// 1s on a distributed log).
	CheckpointInterval time.Duration
	// BatchMaxAge and BatchMaxSize bound how long and how many entries tessera
	// collects before one integration.
	BatchMaxAge  time.Duration
	BatchMaxSize uint
	// MaxRequestBytes bounds the body of POST /api/v2/log/entries.
	MaxRequestBytes int64
	// AwaitPublication makes an append wait until tessera has published a
	// checkpoint covering it (at most one per CheckpointInterval). When false,
	// an append is acknowledged once tessera has durably integrated it (entry
	// bundle, tiles and tree state fsynced) and the log has signed a checkpoint
	// for that integrated tree; tessera publishes a checkpoint of at least that
	// size within CheckpointInterval. Both survive kill -9; the second does not
	// tie every client's latency to the publication period.
	AwaitPublication bool
	// HeadFile is where the log durably records the largest checkpoint its
	// key signed, apart from tessera's state (see guard.go); default: beside
	// Dir, named "<Dir>.signed-head".
	HeadFile string
	// KeyInUse says the log key existed before this start (it was not just
	// generated): an empty log with no HeadFile was then wiped, not created,
	// and Open refuses it.
	KeyInUse bool
	// Witnesses, when set, must cosign the checkpoint of every entry the
	// log acknowledges (gateway.go): every inclusion proof it answers, and
	// GET /api/v2/checkpoint, carry the witnesses' cosignatures.
	Witnesses *WitnessPolicy
	// WitnessTimeout bounds one round of asking the witnesses; default
	// DefaultWitnessTimeout.
	WitnessTimeout time.Duration
	// PerIP and PerIdentity limit POST /api/v2/log/entries per client
	// address and per signer (a certificate's identity, a key); nil limits
	// nothing. ClientIP says which address a request is from.
	PerIP, PerIdentity *ratelimit.Limiter
	ClientIP           ratelimit.ClientIP
	Logger             *slog.Logger
	Metrics            prometheus.Registerer
}

// Log is a running transparency log.
type Log struct {
	health health
	dir    string // names the log's storage in messages
	// stateDesc and checkpointDesc name tessera's tree state and the
	// published checkpoint in messages.
	stateDesc, checkpointDesc string
	// objects reads a distributed log's resources (nil: read them in dir).
	objects    *s3.Client
	bucket     string
	prefix     string
	integrated *integration // nil: an append resolves once integrated
	closeHead  func()
	origin     string
	pub        ed25519.PublicKey
	logID      []byte
	signer     *guard
	verifier   note.Verifier
	maxBody    int64
	logger     *slog.Logger
	metrics    *metrics

	add      tessera.AddFn
	shutdown func(context.Context) error
	reader   tessera.LogReader
	awaiter  *tessera.PublicationAwaiter
	// gw collects witness cosignatures (Options.Witnesses); awaitFor
	// bounds an append's wait for them.
	gw       *gateway
	awaitFor time.Duration

	perIP, perIdentity *ratelimit.Limiter
	clientIP           ratelimit.ClientIP
	cancel             context.CancelFunc
	closeMu            sync.RWMutex
	closed             bool

	tiles *tileCache

	stateMu sync.Mutex
	state   *treeHead // newest signed tree head handed out

	errLog ratelog.Limiter // append failures, which come in floods when the disk fills

	// onDSSE, when set, is given every dsse entry appended through the
	// HTTP API (the attestation store keeps its envelope).
	onDSSE func(context.Context, *DSSEEntry, *rekorv1.TransparencyLogEntry)

	lastGoodCheckpoint atomic.Pointer[goodCheckpoint]
	damagedCheckpoint  sync.Once // log the damage once, not per request
}

// Open starts (or resumes) the log stored in opts.Dir.
func Open(ctx context.Context, opts Options) (*Log, error) {
	if opts.Dir == "" && opts.Distributed == nil {
		return nil, errors.New("tlog: Options.Dir is empty; give the directory that holds (or will hold) the log's tiles")
	}
	if opts.Signer == nil {
		return nil, errors.New("tlog: Options.Signer is nil; give the log's Ed25519 checkpoint key")
	}
	pub, ok := opts.Signer.Public().(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("tlog: Options.Signer has a %T public key; the checkpoint key must be Ed25519", opts.Signer.Public())
	}
	if !validOrigin(opts.Origin) {
		return nil, fmt.Errorf("tlog: Options.Origin %q is not a valid checkpoint origin: it must be non-empty UTF-8 without spaces or '+' (use the log's hostname)", opts.Origin)
	}
	minInterval := 100 * time.Millisecond
	if opts.Distributed != nil {
		minInterval = DistributedCheckpointInterval // tessera's AWS driver's minimum
	}
	if opts.CheckpointInterval == 0 {
		opts.CheckpointInterval = max(DefaultCheckpointInterval, minInterval)
	}
	if opts.CheckpointInterval < minInterval {
		return nil, fmt.Errorf("tlog: Options.CheckpointInterval %v is below tessera's minimum of %v for this storage", opts.CheckpointInterval, minInterval)
	}
	if opts.BatchMaxAge <= 0 {
		opts.BatchMaxAge = DefaultBatchMaxAge
	}
	if opts.BatchMaxSize == 0 {
		opts.BatchMaxSize = DefaultBatchMaxSize
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Metrics == nil {
		// Metrics must still be collectable by the code; nobody scrapes them.
		opts.Metrics = prometheus.NewRegistry()
	}

	if opts.HeadFile == "" && opts.Distributed == nil {
		opts.HeadFile = filepath.Clean(opts.Dir) + ".signed-head"
	}

	keyHash, logID := checkpointKeyID(opts.Origin, pub)
	vkey, err := note.NewEd25519VerifierKey(opts.Origin, pub)
	if err != nil {
		return nil, fmt.Errorf("tlog: checkpoint verifier key: %w", err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("tlog: checkpoint verifier: %w", err)
	}
	m, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, fmt.Errorf("tlog: registering metrics: %w", err)
	}
	if opts.WitnessTimeout <= 0 {
		opts.WitnessTimeout = DefaultWitnessTimeout
	}
	if opts.Witnesses != nil && opts.AwaitPublication {
		return nil, errors.New("tlog: Options.AwaitPublication and Options.Witnesses exclude each other: with witnesses, entries wait for a cosigned checkpoint")
	}
	key := opts.Signer
	signer := &guard{origin: opts.Origin, hash: keyHash, verifier: verifier, ready: make(chan struct{}),
		sign: func(msg []byte) ([]byte, error) { return key.Sign(nil, msg, crypto.Hash(0)) }}
	l := &Log{
		dir:            opts.Dir,
		stateDesc:      stateFile(opts.Dir),
		checkpointDesc: filepath.Join(opts.Dir, layout.CheckpointPath),
	}
	var (
		driver    tessera.Driver
		antispam  tessera.Antispam
		published uint64
	)
	if d := opts.Distributed; d != nil {
		if opts.AwaitPublication {
			return nil, errors.New("tlog: Options.AwaitPublication is not supported on a distributed log: its appends wait for integration, and any server's checkpoint covers them")
		}
		parts, err := openDistributed(ctx, d, opts.Origin)
		if err != nil {
			return nil, fmt.Errorf("tlog: distributed log %s: %w", d.where(), err)
		}
		l.dir, l.stateDesc = d.where(), "table IntCoord of "+d.where()
		l.checkpointDesc = fmt.Sprintf("s3://%s/%s%s", d.Bucket, d.Prefix, layout.CheckpointPath)
		l.objects, l.bucket, l.prefix = s3.NewFromConfig(d.AWS, d.s3Options), d.Bucket, d.Prefix
		l.closeHead = parts.head.close
		signer.store = parts.head
		driver, antispam = parts.driver, parts.antispam
		if parts.published != nil {
			// A damaged object is not removed: the next publication
			// replaces it, and until then the guard's record is served.
			size, why, err := judgeCheckpoint(parts.published, l.checkpointDesc, verifier, opts.Origin)
			if err != nil {
				parts.head.close()
				return nil, fmt.Errorf("tlog: %w", err)
			}
			if why != "" {
				opts.Logger.Warn("the published checkpoint is damaged; the next publication replaces it", "object", l.checkpointDesc, "reason", why)
			}
			published = size
		}
	} else {
		signer.store = &fileHead{path: opts.HeadFile}
	}
	closeHead := func() {
		if l.closeHead != nil {
			l.closeHead()
		}
	}
	if err := signer.load(); err != nil {
		closeHead()
		return nil, fmt.Errorf("tlog: %w", err)
	}
	if opts.Distributed == nil {
		if n, err := sweepTemporaries(opts.Dir); err != nil {
			return nil, fmt.Errorf("tlog: removing temporary files left in %s: %w", opts.Dir, err)
		} else if n > 0 {
			opts.Logger.Info("removed temporary files an interrupted write left", "dir", opts.Dir, "files", n)
		}
		var why string
		published, why, err = dropBadCheckpoint(opts.Dir, verifier, opts.Origin)
		if err != nil {
			return nil, fmt.Errorf("tlog: %w", err)
		}
		if why != "" {
			opts.Logger.Warn("removed the published checkpoint; tessera publishes a new one", "path", filepath.Join(opts.Dir, "checkpoint"), "reason", why)
		}
		driver, err = posix.New(ctx, posix.Config{Path: opts.Dir})
		if err != nil {
			return nil, fmt.Errorf("tlog: tessera POSIX storage at %s: %w", opts.Dir, err)
		}
	}
	appendOpts := tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithCheckpointInterval(opts.CheckpointInterval).
		WithBatching(opts.BatchMaxSize, opts.BatchMaxAge).
		WithAntispam(dedupEntries, antispam)
	// The appender's goroutines live until Close, not until the caller's ctx ends.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	appender, shutdown, reader, err := tessera.NewAppender(runCtx, driver, appendOpts)
	if err != nil {
		cancel()
		closeHead()
		return nil, fmt.Errorf("tlog: opening tessera log in %s: %w", l.dir, err)
	}
	l.origin = opts.Origin
	l.pub = pub
	l.logID = logID
	l.signer = signer
	l.verifier = verifier
	l.maxBody = opts.MaxRequestBytes
	l.logger = opts.Logger
	l.metrics = m
	l.add = appender.Add
	l.shutdown = shutdown
	l.reader = reader
	l.cancel = cancel
	l.tiles = newTileCache(reader.ReadTile)
	l.perIP = opts.PerIP
	l.perIdentity = opts.PerIdentity
	l.clientIP = opts.ClientIP
	size, root, err := l.checkAtStart(ctx, signer, opts.KeyInUse, published)
	signer.start(l.tiles, err)
	if err == nil {
		if _, _, have := signer.head(); !have {
			// A new log, or one from before the record existed: record the
			// tree as it stands, so that from now on nothing else is signed.
			_, err = note.Sign(&note.Note{Text: string(f_log.Checkpoint{Origin: opts.Origin, Size: size, Hash: root}.Marshal())}, signer)
			if size > 0 {
				opts.Logger.Warn("no record of the log's signed head; recording the stored tree", "tree_size", size, "head_file", opts.HeadFile)
			}
		}
	}
	if err != nil {
		_ = shutdown(ctx)
		cancel()
		closeHead()
		return nil, fmt.Errorf("tlog: %w", err)
	}
	if opts.Distributed != nil {
		l.integrated = newIntegration(reader.IntegratedSize)
		// The extra loops add nothing, so they stop at once.
		moreCtx, stopMore := context.WithCancel(runCtx)
		more := startIntegrators(moreCtx, opts.Distributed, signer, opts.CheckpointInterval, opts.Logger, m.loops)
		l.shutdown = func(ctx context.Context) error {
			stopMore()
			return errors.Join(more(ctx), shutdown(ctx))
		}
	}
	if opts.AwaitPublication {
		l.awaiter = tessera.NewPublicationAwaiter(runCtx, reader.ReadCheckpoint, awaitPollPeriod)
	}
	if opts.Witnesses != nil {
		l.awaitFor = witnessWait(opts.WitnessTimeout)
		l.gw = newGateway(opts.Witnesses, opts.WitnessTimeout, l.tiles, l.currentHead, m.witnessAnswers, opts.Logger)
		if size > 0 {
			// Have a cosigned checkpoint to serve before the first append.
			if _, err := l.coveringHead(ctx, size-1); err == nil {
				go func() {
					wctx, cancel := context.WithTimeout(runCtx, l.awaitFor)
					defer cancel()
					if _, err := l.gw.cover(wctx, size-1); err != nil {
						l.logger.Warn("no witnessed checkpoint yet", "error", err)
					}
				}()
			}
		}
	}
	m.treeSize.Set(float64(size))
	l.logger.Info("transparency log open", "storage", l.dir, "origin", opts.Origin,
		"tree_size", size, "await_publication", opts.AwaitPublication, "witnessed", opts.Witnesses != nil)
	return l, nil
}

// Close stops accepting appends, waits for those under way, lets tessera
// finish integrating and publishing, then stops it.
func (l *Log) Close(ctx context.Context) error {
	l.closeMu.Lock()
	if l.closed {
		l.closeMu.Unlock()
		return nil
	}
	l.closed = true
	l.closeMu.Unlock()
	err := l.shutdown(ctx)
	l.cancel()
	if l.closeHead != nil {
		l.closeHead()
	}
	if err != nil {
		return fmt.Errorf("tlog: shutting down tessera: %w", err)
	}
	return nil
}

// LogID is the log's identifier in trusted roots and entries: the full
// SHA-256 of the checkpoint key (C2SP signed-note key ID preimage), as
// rekor-tiles defines it.
func (l *Log) LogID() []byte { return append([]byte(nil), l.logID...) }

// PublicKey is the checkpoint verification key.
func (l *Log) PublicKey() ed25519.PublicKey { return append(ed25519.PublicKey(nil), l.pub...) }

// Origin is the checkpoint origin line.
func (l *Log) Origin() string { return l.origin }

// checkpointKeyID returns the signed-note key hash (first 4 bytes) and the
// full SHA-256 it is cut from: SHA-256(origin || "\n" || 0x01 || pubkey).
// rekor-tiles uses the full digest as the log ID.
func checkpointKeyID(origin string, pub ed25519.PublicKey) (uint32, []byte) {
	h := sha256.New()
	h.Write([]byte(origin))
	h.Write([]byte("\n"))
	h.Write([]byte{0x01}) // signed-note signature type for Ed25519
	h.Write(pub)
	sum := h.Sum(nil)
	return binary.BigEndian.Uint32(sum), sum
}

// validOrigin applies the signed-note key name rules.
func validOrigin(s string) bool {
	return s != "" && utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsSpace) < 0 && !strings.Contains(s, "+")
}

// OnDSSE sets what is done with each dsse entry appended through the HTTP
// API once it is logged; call it before serving.
func (l *Log) OnDSSE(f func(context.Context, *DSSEEntry, *rekorv1.TransparencyLogEntry)) {
	l.onDSSE = f
}
