// Package tlog is a transparency log as its clients see it: a Rekor v2 log
// of a trusted root, read over C2SP tlog-tiles, pinned at its latest
// checkpoint verified against the root's log key. Every proof and entry a
// Log hands out is proven against that one checkpoint, so a caller sees a
// single, signed view of the log.
//
// Proofs are built from the tiles with tessera's client and verified with
// transparency-dev/merkle; checkpoints are verified by core/verify, as for
// bundles.
package tlog

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"

	"github.com/transparency-dev/tessera/client"

	"github.com/signet-dev/signet/core/sign/transport"
	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/core/verify"
)

// Log is one log of a trusted root with its verified latest checkpoint.
// It is safe for concurrent use.
type Log struct {
	trusted *trust.Log
	fetcher *client.HTTPFetcher
	cp      Checkpoint

	// The proof builder caches the tiles it fetched, so proofs after the
	// first cost little; it is not safe for concurrent use.
	mu sync.Mutex
	pb *client.ProofBuilder
}

// Checkpoint is a checkpoint that verified against the trusted root's key
// for its log.
type Checkpoint struct {
	Origin string
	Size   uint64
	Hash   []byte // the tree's RFC 6962 root hash
	// Note is the signed note as the log served it: what to keep for a later
	// consistency proof (Log.ConsistencyFrom).
	Note []byte
}

// Open picks the log at baseURL from root (any log when baseURL is "" and
// root lists exactly one), fetches its latest checkpoint and verifies it
// with the root's key. A nil hc uses signet's default client.
//
// Errors: *LogChoiceError when root yields no log for baseURL;
// *CheckpointError when the served checkpoint does not verify; otherwise
// the log could not be reached.
func Open(ctx context.Context, root *trust.Root, baseURL string, hc *http.Client) (*Log, error) {
	lg, err := choose(root, baseURL)
	if err != nil {
		return nil, err
	}
	base, err := url.Parse(strings.TrimRight(lg.BaseURL, "/") + "/api/v2/")
	if err != nil {
		return nil, fmt.Errorf("log URL %q: %v", lg.BaseURL, err)
	}
	if hc == nil {
		hc = transport.NewClient(transport.Options{})
	}
	f, err := client.NewHTTPFetcher(base, hc)
	if err != nil {
		return nil, err
	}
	raw, err := f.ReadCheckpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("log %s: reading the checkpoint: %w", lg.BaseURL, err)
	}
	l := &Log{trusted: lg, fetcher: f}
	cp, err := l.verifyCheckpoint(raw, true)
	if err != nil {
		return nil, err
	}
	l.cp = *cp
	if l.pb, err = client.NewProofBuilder(ctx, cp.Size, f.ReadTile); err != nil {
		return nil, fmt.Errorf("log %s: reading tiles: %w", lg.BaseURL, err)
	}
	return l, nil
}

// Trusted is what the trusted root says of the log: base URL, key, key ID.
func (l *Log) Trusted() *trust.Log { return l.trusted }

// Checkpoint is the verified checkpoint every proof of l is against.
func (l *Log) Checkpoint() Checkpoint { return l.cp }

// verifyCheckpoint opens a signed note with the trusted root's key; served
// says whether the log served it (for the error).
func (l *Log) verifyCheckpoint(note []byte, served bool) (*Checkpoint, error) {
	cp, err := verify.OpenCheckpoint(l.trusted, note)
	if err != nil {
		return nil, &CheckpointError{LogURL: l.trusted.BaseURL, Served: served, Err: err}
	}
	return &Checkpoint{Origin: cp.Origin, Size: cp.Size, Hash: cp.Hash, Note: note}, nil
}

// choose finds the log a caller means: the one at baseURL (trailing slashes
// do not count), or the root's only log.
func choose(root *trust.Root, baseURL string) (*trust.Log, error) {
	want := strings.TrimRight(baseURL, "/")
	var known []string
	var lg *trust.Log
	for _, x := range root.Logs {
		known = append(known, x.BaseURL)
		if want == "" || strings.TrimRight(x.BaseURL, "/") == want {
			lg = x
		}
	}
	sort.Strings(known)
	switch {
	case want == "" && len(root.Logs) != 1:
		return nil, &LogChoiceError{Known: known, Err: ErrNoDefaultLog}
	case lg == nil:
		return nil, &LogChoiceError{Want: want, Known: known, Err: ErrLogNotInRoot}
	}
	return lg, nil
}

// Sentinels that LogChoiceError wraps.
var (
	// ErrLogNotInRoot: the base URL asked for is not a log of the root.
	ErrLogNotInRoot = errors.New("not a log in the trusted root")
	// ErrNoDefaultLog: no base URL was given and the root does not list
	// exactly one log to default to.
	ErrNoDefaultLog = errors.New("the trusted root does not list exactly one log")
)

// LogChoiceError is why a trusted root yields no log for a base URL. It
// carries what the root lists, for the caller to offer instead.
type LogChoiceError struct {
	Want  string   // the base URL asked for, without trailing slashes; "" when none was
	Known []string // the base URLs of the root's logs, sorted
	Err   error    // ErrLogNotInRoot or ErrNoDefaultLog
}

func (e *LogChoiceError) Error() string {
	if e.Want == "" {
		return fmt.Sprintf("the trusted root lists %d logs (%s) and none was chosen", len(e.Known), strings.Join(e.Known, ", "))
	}
	return fmt.Sprintf("%s is %v (it lists %s)", e.Want, e.Err, strings.Join(e.Known, ", "))
}

func (e *LogChoiceError) Unwrap() error { return e.Err }

// CheckpointError is a checkpoint that does not verify against the trusted
// root's key for the log: a forgery, another key's, another origin's, or
// malformed.
type CheckpointError struct {
	LogURL string
	// Served: the log served it; otherwise the caller gave it (a checkpoint
	// saved earlier).
	Served bool
	Err    error // a *verify.Error with verify.CheckCheckpoint (or CheckWitness, from Monitor)
}

func (e *CheckpointError) Error() string {
	if e.Served && verify.CheckOf(e.Err) == verify.CheckWitness {
		return fmt.Sprintf("log %s serves a checkpoint without the cosignatures the witness policy requires: %v", e.LogURL, e.Err)
	}
	if e.Served {
		return fmt.Sprintf("log %s serves a checkpoint that does not verify against the trusted root: %v", e.LogURL, e.Err)
	}
	return fmt.Sprintf("the checkpoint given for log %s does not verify against the trusted root: %v", e.LogURL, e.Err)
}

func (e *CheckpointError) Unwrap() error { return e.Err }
