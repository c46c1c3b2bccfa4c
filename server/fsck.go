package server

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/signet-dev/signet/server/storage"
	"github.com/signet-dev/signet/server/tlog"
)

// Fsck checks a stopped server's data directory (see tlog.Fsck). It takes
// the directory's lock, so it refuses to run beside a live server. The log's
// origin is the configured one, else the one the signed-head record or the
// published checkpoint names, else the host of cfg.URL.
func Fsck(ctx context.Context, cfg Config) (*tlog.FsckReport, error) {
	dir, err := storage.Open(cfg.Data)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	key, err := dir.LogPublicKey(cfg.Keys)
	if err != nil {
		return nil, err
	}
	origin := cfg.Log.Origin
	for _, p := range []string{dir.SignedHeadPath(), dir.LogDir() + "/checkpoint"} {
		if origin != "" {
			break
		}
		if b, err := os.ReadFile(p); err == nil {
			if first, _, ok := strings.Cut(string(b), "\n"); ok && first != "" {
				origin = first
			}
		}
	}
	if origin == "" {
		u, err := url.Parse(cfg.URL)
		if err != nil || u.Hostname() == "" {
			return nil, fmt.Errorf("cannot tell the log's origin: no signed-head record or checkpoint names it; pass the server's --url or set log.origin")
		}
		origin = u.Hostname()
	}
	return tlog.Fsck(ctx, tlog.FsckOptions{Dir: dir.LogDir(), HeadFile: dir.SignedHeadPath(), Key: key, Origin: origin})
}
