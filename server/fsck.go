package server

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	fnote "github.com/transparency-dev/formats/note"

	"github.com/signet-dev/signet/server/storage"
	"github.com/signet-dev/signet/server/tlog"
)

// FsckReport is what Fsck found in each log of a data directory.
type FsckReport struct {
	Log *tlog.FsckReport
	// Shards are the log shards of key rotations (keys.logRotations), in
	// configuration order, that the directory holds.
	Shards []ShardReport
	CTLog  *tlog.FsckReport // nil when the directory holds no CT log
}

// ShardReport is Fsck's report on one log shard.
type ShardReport struct {
	Origin string
	*tlog.FsckReport
}

// Fsck checks a stopped server's data directory (see tlog.Fsck): the
// transparency log and, when there is one, the certificate transparency
// log. It takes the directory's lock, so it refuses to run beside a live
// server. The log's origin is the configured one, else the one the
// signed-head record or the published checkpoint names, else the host of
// cfg.URL.
func Fsck(ctx context.Context, cfg Config) (*FsckReport, error) {
	dir, err := storage.Open(cfg.Data)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	key, err := dir.LogPublicKey(cfg.Keys)
	if err != nil {
		return nil, err
	}
	origin, err := storedLogOrigin(dir, cfg)
	if err != nil {
		return nil, err
	}
	rep := &FsckReport{}
	if rep.Log, err = tlog.Fsck(ctx, tlog.FsckOptions{Dir: dir.LogDir(), HeadFile: dir.SignedHeadPath(), Key: key, Origin: origin}); err != nil {
		return nil, err
	}
	held, err := dir.Shards()
	if err != nil {
		return nil, err
	}
	for i, r := range cfg.Keys.LogRotations {
		if !slices.Contains(held, r.Origin) {
			continue // not started yet
		}
		key, err := storage.LogRotationPublicKey(r)
		if err != nil {
			return nil, fmt.Errorf("keys.logRotations[%d]: %w", i, err)
		}
		shard, err := tlog.Fsck(ctx, tlog.FsckOptions{Dir: dir.ShardDir(r.Origin), HeadFile: dir.ShardHeadPath(r.Origin), Key: key, Origin: r.Origin})
		if err != nil {
			return nil, fmt.Errorf("log shard %s: %w", r.Origin, err)
		}
		rep.Shards = append(rep.Shards, ShardReport{Origin: r.Origin, FsckReport: shard})
	}
	for _, origin := range held {
		if !slices.ContainsFunc(cfg.Keys.LogRotations, func(r storage.LogRotation) bool { return r.Origin == origin }) {
			return nil, fmt.Errorf("%s holds the log shard %s, which the configuration's keys.logRotations does not name: pass the server's --config", dir.ShardDir(origin), origin)
		}
	}
	ctDir := dir.CTLogDir()
	if entries, _ := os.ReadDir(ctDir); len(entries) == 0 {
		return rep, nil
	}
	ctKey, err := dir.CTLogPublicKey(cfg.Keys)
	if err != nil {
		return nil, err
	}
	// The CT log's origin is recorded with its checkpoints; without them
	// it is the one the server would use.
	ctHead := filepath.Clean(ctDir) + ".signed-head"
	ctOriginName := recordedOrigin(ctHead, ctDir+"/checkpoint")
	if ctOriginName == "" {
		u, _ := url.Parse(cfg.URL)
		ctOriginName = ctOrigin(u, cfg.Log.Origin)
	}
	vkey, err := fnote.RFC6962VerifierString("https://"+ctOriginName, ctKey)
	if err != nil {
		return nil, err
	}
	v, err := fnote.NewRFC6962Verifier(vkey)
	if err != nil {
		return nil, err
	}
	rep.CTLog, err = tlog.Fsck(ctx, tlog.FsckOptions{Dir: ctDir, HeadFile: ctHead, Verifier: v, Origin: ctOriginName, StaticCT: true})
	return rep, err
}

// storedLogOrigin is a stopped log's origin: the configured one, else the one the
// signed-head record or the published checkpoint names, else the host of
// cfg.URL.
func storedLogOrigin(dir *storage.Dir, cfg Config) (string, error) {
	if cfg.Log.Origin != "" {
		return cfg.Log.Origin, nil
	}
	if o := recordedOrigin(dir.SignedHeadPath(), dir.LogDir()+"/checkpoint"); o != "" {
		return o, nil
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("cannot tell the log's origin: no signed-head record or checkpoint names it; pass the server's --url or set log.origin")
	}
	return u.Hostname(), nil
}

// recordedOrigin is the first line (the origin) of the first of the
// checkpoint files that exists.
func recordedOrigin(paths ...string) string {
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			if first, _, ok := strings.Cut(string(b), "\n"); ok && first != "" {
				return first
			}
		}
	}
	return ""
}
