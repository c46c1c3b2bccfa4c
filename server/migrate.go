package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"

	fnote "github.com/transparency-dev/formats/note"

	"github.com/signet-dev/signet/server/attest"
	"github.com/signet-dev/signet/server/ctlog"
	"github.com/signet-dev/signet/server/storage"
	"github.com/signet-dev/signet/server/tlog"
)

// MigrateReport says what Migrate copied.
type MigrateReport struct {
	Log *tlog.MigrateReport
	// CTLog is nil when the data directory holds no CT log; CTIssuers the
	// issuer certificates copied beside it.
	CTLog     *tlog.MigrateReport
	CTIssuers int
	// Attestations is the attestation store's copy (nil: the data
	// directory has none).
	Attestations *attest.CopyReport
}

// Migrate copies a stopped embedded server's data directory (cfg.Data)
// into the distributed storage cfg.Storage names, without changing any
// tree: the transparency log keeps its entries at their indexes, so every
// bundle it logged still proves its inclusion against checkpoints the
// distributed servers sign. It takes the data directory's lock, so it
// refuses to run beside a live server, and it is idempotent: after an
// interruption run it again. The keys stay where they are (the data
// directory or the configured files); every distributed server needs the
// same ones.
func Migrate(ctx context.Context, cfg Config, logger *slog.Logger) (*MigrateReport, error) {
	if !cfg.Storage.Distributed() {
		return nil, errors.New("migrate copies a data directory into distributed storage, and this configuration's storage.driver is embedded: give the configuration of the distributed deployment (storage.driver: distributed with storage.database and storage.objects)")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// storage.Open would create a missing directory, and migrate it empty.
	if fi, err := os.Stat(cfg.Data); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("there is no data directory at %s: give the stopped server's --data", cfg.Data)
	}
	dir, err := storage.Open(cfg.Data)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	if held, err := dir.Shards(); err != nil {
		return nil, err
	} else if len(held) > 0 {
		return nil, fmt.Errorf("%s holds log shards of key rotations (%v), which the distributed storage does not support yet: it is not migrated", cfg.Data, held)
	}
	key, err := dir.LogPublicKey(cfg.Keys)
	if err != nil {
		return nil, err
	}
	origin, err := migratedOrigin(dir, cfg)
	if err != nil {
		return nil, err
	}
	dist, err := distributedLog(ctx, cfg.Storage, logger)
	if err != nil {
		return nil, err
	}
	// Everything the CT log's copy needs is checked before anything is copied.
	ct, err := planCT(dir, cfg, dist)
	if err != nil {
		return nil, fmt.Errorf("the certificate transparency log: %w", err)
	}
	rep := &MigrateReport{}
	logger.Info("migrating the transparency log", "from", dir.LogDir(), "to", dist.Bucket+"/"+dist.Prefix)
	if rep.Log, err = tlog.Migrate(ctx, tlog.MigrateOptions{Dir: dir.LogDir(), HeadFile: dir.SignedHeadPath(), Key: key, Origin: origin, To: dist}); err != nil {
		return nil, fmt.Errorf("the transparency log: %w", err)
	}
	if ct != nil {
		logger.Info("migrating the certificate transparency log", "from", ct.Dir, "to", ct.To.Bucket+"/"+ct.To.Prefix)
		if rep.CTLog, err = tlog.Migrate(ctx, *ct); err != nil {
			return nil, fmt.Errorf("the certificate transparency log: %w", err)
		}
		if rep.CTIssuers, err = ctlog.CopyIssuers(ctx, ct.Dir, ct.To); err != nil {
			return nil, fmt.Errorf("the certificate transparency log: %w", err)
		}
	}
	// The attestations last: their log entries are in the migrated tree.
	if _, err := os.Stat(dir.AttestationsPath()); err == nil {
		logger.Info("migrating the attestation store", "from", dir.AttestationsPath())
		cr, err := attest.Copy(ctx, dir.AttestationsPath(), dist.DSN, attest.CopyOptions{
			MaxEnvelopeBytes: cfg.Attestations.MaxEnvelopeBytes,
			Logger:           logger.With("service", "attest"),
			Progress: func(done, total int) {
				logger.Info("copying attestations", "done", done, "total", total)
			},
		})
		if err != nil {
			return nil, fmt.Errorf("the attestation store: %w", err)
		}
		rep.Attestations = &cr
	}
	return rep, nil
}

// planCT says how to copy the data directory's CT log, if it has one (nil
// if not), beside the log: the certificates it issued carry SCTs from it,
// which verifiers check against its key in the trust files, and monitors
// read its tree.
func planCT(dir *storage.Dir, cfg Config, dist *tlog.Distributed) (*tlog.MigrateOptions, error) {
	ctDir := dir.CTLogDir()
	if entries, _ := os.ReadDir(ctDir); len(entries) == 0 {
		return nil, nil
	}
	if cfg.CT.Disabled {
		return nil, fmt.Errorf("%s holds a CT log, and this configuration has ct.disabled: true, so the distributed servers would neither serve it nor list its key: set storage.ctDatabase and remove ct.disabled", ctDir)
	}
	ctDist, err := distributedCT(cfg.Storage, dist)
	if err != nil {
		return nil, err
	}
	ctKey, err := dir.CTLogPublicKey(cfg.Keys)
	if err != nil {
		return nil, err
	}
	ctHead := filepath.Clean(ctDir) + ".signed-head"
	origin := recordedOrigin(ctHead, ctDir+"/checkpoint")
	if u, err := url.Parse(cfg.URL); err == nil && u.Hostname() != "" {
		target := ctOrigin(u, cfg.Log.Origin)
		if origin != "" && origin != target {
			return nil, fmt.Errorf("the CT log in %s has the origin %s, but the distributed servers would run it as %s: keep url's host (or log.origin) as it was", ctDir, origin, target)
		}
		origin = cmp.Or(origin, target)
	}
	if origin == "" {
		return nil, errors.New("cannot tell the CT log's origin: nothing in its directory names it; set url in the configuration")
	}
	vkey, err := fnote.RFC6962VerifierString("https://"+origin, ctKey)
	if err != nil {
		return nil, err
	}
	v, err := fnote.NewRFC6962Verifier(vkey)
	if err != nil {
		return nil, err
	}
	return &tlog.MigrateOptions{Dir: ctDir, HeadFile: ctHead, Verifier: v, Origin: origin, StaticCT: true, To: ctDist}, nil
}

// migratedOrigin is the origin the data directory's log records, which
// the distributed servers must sign under too: a configuration from which
// they would derive another is refused, since every checkpoint they
// signed would then fail verification for every client.
func migratedOrigin(dir *storage.Dir, cfg Config) (string, error) {
	recorded := recordedOrigin(dir.SignedHeadPath(), dir.LogDir()+"/checkpoint")
	target := cfg.Log.Origin
	if u, err := url.Parse(cfg.URL); err == nil && u.Hostname() != "" {
		target, _ = logOrigin(u, cfg.Log.Origin)
	}
	switch {
	case recorded != "" && target != "" && recorded != target:
		return "", fmt.Errorf("the log in %s has the origin %s, but the distributed servers would sign under %s (from url and log.origin): set log.origin: %s (its name must reach the servers), so that clients' verifiers accept both old and new checkpoints", dir.LogDir(), recorded, target, recorded)
	case recorded != "":
		return recorded, nil
	case target != "":
		return target, nil
	}
	return "", errors.New("cannot tell the log's origin: no signed-head record or checkpoint names it; set url (or log.origin) in the configuration")
}
