package server

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signet-dev/signet/server/storage"
	"github.com/signet-dev/signet/server/tlog"
	"github.com/signet-dev/signet/server/trust"
)

// openShards opens the first log with first and one shard per log key
// rotation, each in its own directory with its own signed-head record.
func (s *Server) openShards(ctx context.Context, first tlog.Options, rotations []storage.LogShard, reg prometheus.Registerer) (_ *tlog.Shards, err error) {
	held, err := s.dir.Shards()
	if err != nil {
		return nil, fmt.Errorf("listing the log shards in %s: %w", s.dir.Root(), err)
	}
	for _, origin := range held {
		if !slices.ContainsFunc(rotations, func(r storage.LogShard) bool { return r.Origin == origin }) {
			return nil, fmt.Errorf("%s holds the log shard %s, which keys.logRotations no longer names: put its rotation back (its entries verify only while trusted_root.json lists it); a shard is never dropped", s.dir.ShardDir(origin), origin)
		}
	}
	firstPub := first.Signer.Public().(ed25519.PublicKey)
	for i, r := range rotations {
		if r.Origin == first.Origin {
			return nil, fmt.Errorf("keys.logRotations[%d]: origin %s is the first log's; each shard needs a host name of its own (Sigstore clients take the checkpoint origin from the host of the log's URL)", i, r.Origin)
		}
		if !slices.Contains(held, r.Origin) && r.From.Before(time.Now()) {
			// The first log took entries until now: its period in
			// trusted_root.json cannot end before.
			return nil, fmt.Errorf("keys.logRotations[%d]: from %s has passed, and the shard %s is new: the log before it took entries until now; give a start in the future (a minute ahead is enough)", i, r.From.UTC().Format(time.RFC3339), r.Origin)
		}
		pub := r.Signer.Public().(ed25519.PublicKey)
		if pub.Equal(firstPub) {
			return nil, fmt.Errorf("keys.logRotations[%d]: the key is the first log's; a new shard needs a new key ('signet server keygen --key FILE --algorithm ed25519')", i)
		}
		for j, o := range rotations[:i] {
			if o.Origin == r.Origin {
				return nil, fmt.Errorf("keys.logRotations[%d] and [%d] have the same origin %s; give each shard its own host name", j, i, r.Origin)
			}
			if pub.Equal(o.Signer.Public()) {
				return nil, fmt.Errorf("keys.logRotations[%d] and [%d] have the same key; give each shard its own", j, i)
			}
		}
	}

	log, err := tlog.Open(ctx, first)
	if err != nil {
		return nil, err
	}
	var more []tlog.Shard
	defer func() {
		if err != nil {
			_ = log.Close(ctx)
			for _, sh := range more {
				_ = sh.Log.Close(ctx)
			}
		}
	}()
	for i, r := range rotations {
		o := first
		o.Dir, o.HeadFile = s.dir.ShardDir(r.Origin), s.dir.ShardHeadPath(r.Origin)
		o.Signer, o.Origin = r.Signer, r.Origin
		// Made before: a shard found empty without its record was wiped.
		o.KeyInUse = slices.Contains(held, r.Origin)
		o.Logger = s.logger.With("service", "log", "origin", r.Origin)
		o.Metrics = prometheus.WrapRegistererWith(prometheus.Labels{"origin": r.Origin}, reg)
		l, err := tlog.Open(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("keys.logRotations[%d] (%s): %w", i, r.Origin, err)
		}
		more = append(more, tlog.Shard{Log: l, From: r.From})
	}
	return tlog.NewShards(log, more...)
}

// moreTrustLogs are the log shards after the first for trusted_root.json
// and the signing config: each under the server's URL with its origin as
// host name.
func (s *Server) moreTrustLogs(u *url.URL) []trust.Log {
	var out []trust.Log
	all := s.logs.All()
	for i, sh := range all[1:] {
		_, shardURL := logOrigin(u, sh.Log.Origin())
		out = append(out, trust.Log{URL: shardURL, PublicKey: sh.Log.PublicKey(), LogID: sh.Log.LogID(), Start: sh.From, End: s.logs.End(i + 1)})
	}
	return out
}
