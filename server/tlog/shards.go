package tlog

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
)

// Shard is one log of a rotated set and the time it starts taking entries.
type Shard struct {
	Log  *Log
	From time.Time // zero for the first
}

// Shards are the logs of a server whose log key was rotated (Rekor v2's
// sharding): each has its own key and origin, new entries go to the one
// whose start has passed last, the ones before it are frozen and still
// serve their tiles and checkpoints. A single log is one shard.
type Shards struct {
	shards []Shard // sorted by From
	now    func() time.Time
}

// NewShards orders the shards by start. The first log takes entries until
// the next one's start.
func NewShards(first *Log, more ...Shard) (*Shards, error) {
	s := &Shards{shards: append([]Shard{{Log: first}}, more...), now: time.Now}
	slices.SortStableFunc(s.shards[1:], func(a, b Shard) int { return a.From.Compare(b.From) })
	seen := map[string]bool{}
	for i, sh := range s.shards {
		if seen[sh.Log.origin] {
			return nil, fmt.Errorf("tlog: two log shards have the origin %s; each shard needs a host name of its own", sh.Log.origin)
		}
		seen[sh.Log.origin] = true
		if i > 0 && sh.From.IsZero() {
			return nil, fmt.Errorf("tlog: shard %s has no start", sh.Log.origin)
		}
		if i > 1 && sh.From.Equal(s.shards[i-1].From) {
			return nil, fmt.Errorf("tlog: shards %s and %s start at the same time %s", s.shards[i-1].Log.origin, sh.Log.origin, sh.From.Format(time.RFC3339))
		}
	}
	return s, nil
}

// All lists the shards, oldest first.
func (s *Shards) All() []Shard { return slices.Clone(s.shards) }

// At is the shard that takes entries at t.
func (s *Shards) At(t time.Time) *Log {
	l := s.shards[0].Log
	for _, sh := range s.shards[1:] {
		if t.Before(sh.From) {
			break
		}
		l = sh.Log
	}
	return l
}

// Active is the shard that takes entries now.
func (s *Shards) Active() *Log { return s.At(s.now()) }

// End is when the shard starting at index i stops taking entries: the next
// one's start, zero for the newest.
func (s *Shards) End(i int) time.Time {
	if i+1 < len(s.shards) {
		return s.shards[i+1].From
	}
	return time.Time{}
}

// AppendHashedRekord appends to the active shard.
func (s *Shards) AppendHashedRekord(ctx context.Context, req *rekorv2.HashedRekordRequestV002) (*rekorv1.TransparencyLogEntry, error) {
	return s.Active().AppendHashedRekord(ctx, req)
}

// AppendHashedRekordAt appends to the shard that took entries at t: a
// timestamp dated before a rotation is logged in the shard whose period
// holds its time, which verifiers check.
func (s *Shards) AppendHashedRekordAt(ctx context.Context, t time.Time, req *rekorv2.HashedRekordRequestV002) (*rekorv1.TransparencyLogEntry, error) {
	return s.At(t).AppendHashedRekord(ctx, req)
}

// AppendDSSE appends to the active shard.
func (s *Shards) AppendDSSE(ctx context.Context, req *rekorv2.DSSERequestV002) (*rekorv1.TransparencyLogEntry, *DSSEEntry, bool, error) {
	return s.Active().AppendDSSE(ctx, req)
}

// OnDSSE sets the dsse hook of every shard.
func (s *Shards) OnDSSE(f func(context.Context, *DSSEEntry, *rekorv1.TransparencyLogEntry)) {
	for _, sh := range s.shards {
		sh.Log.OnDSSE(f)
	}
}

// Ready is the active shard's readiness: the frozen ones take no entries.
func (s *Shards) Ready() error { return s.Active().Ready() }

// Close closes every shard.
func (s *Shards) Close(ctx context.Context) error {
	var errs []error
	for _, sh := range s.shards {
		errs = append(errs, sh.Log.Close(ctx))
	}
	return errors.Join(errs...)
}

// Register serves the shards. Entries are created in the active shard
// whichever shard's URL a client posts to: a client whose signing config
// predates a rotation keeps working, and the entry it gets back names the
// shard (its log ID) that verifiers look up in trusted_root.json. Tiles
// and checkpoints are served per shard: the first shard's on every host
// name, each later one's on requests to its own origin (the host name of
// its URL), as Go's ServeMux prefers host-specific patterns.
func (s *Shards) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v2/log/entries", func(w http.ResponseWriter, r *http.Request) {
		s.Active().handleCreateEntry(w, r)
	})
	for i, sh := range s.shards {
		host := ""
		if i > 0 {
			host = sh.Log.origin
		}
		sh.Log.registerReads(mux, host)
	}
}
