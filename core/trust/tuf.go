package trust

import (
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// Target names of Sigstore's root-signing repository.
const (
	TUFTrustedRootTarget   = "trusted_root.json"
	TUFSigningConfigTarget = "signing_config.v0.2.json"
)

// TUFError is a TUF update that failed: the repository's metadata did not
// verify from the pinned root (expired, a threshold not met, a rollback,
// a target that does not match its hash), or could not be fetched.
type TUFError struct {
	Repository string
	// Cause names what failed, one of the TUFCause values ("" when none
	// applies), so the message and scripts can tell them apart.
	Cause TUFCause
	Err   error
}

// TUFCause is the class of a TUF refusal.
type TUFCause string

const (
	TUFExpired      TUFCause = "expired metadata"
	TUFThreshold    TUFCause = "threshold not met"
	TUFRollback     TUFCause = "rollback (a version lower than one already trusted, or not one above the last root)"
	TUFHashMismatch TUFCause = "length or hash mismatch"
	TUFUnreachable  TUFCause = "download failed"
)

func (e *TUFError) Error() string {
	if e.Cause != "" {
		return fmt.Sprintf("TUF repository %s: %s: %v", e.Repository, e.Cause, e.Err)
	}
	return fmt.Sprintf("TUF repository %s: %v", e.Repository, e.Err)
}

// tufErr classifies go-tuf's error by its type.
func tufErr(repo string, err error) *TUFError {
	e := &TUFError{Repository: repo, Err: err}
	switch {
	case errors.Is(err, &metadata.ErrExpiredMetadata{}):
		e.Cause = TUFExpired
	case errors.Is(err, &metadata.ErrUnsignedMetadata{}):
		e.Cause = TUFThreshold
	case errors.Is(err, &metadata.ErrBadVersionNumber{}):
		e.Cause = TUFRollback
	case errors.Is(err, &metadata.ErrLengthOrHashMismatch{}):
		e.Cause = TUFHashMismatch
	case errors.Is(err, &metadata.ErrDownload{}), errors.Is(err, &metadata.ErrDownloadHTTP{}):
		e.Cause = TUFUnreachable
	}
	return e
}
func (e *TUFError) Unwrap() error { return e.Err }

// FetchOverTUF updates from the TUF repository at repoURL, starting from
// the pinned root metadata, and returns the named targets, each verified
// against the repository's signed targets metadata (go-tuf's updater: root
// rotation, expiry, thresholds, rollback and hash checks). Nothing is
// cached: every call walks from the pinned root.
func FetchOverTUF(repoURL string, pinnedRoot []byte, hc *http.Client, targets ...string) (map[string][]byte, error) {
	cfg, err := config.New(repoURL, pinnedRoot)
	if err != nil {
		return nil, tufErr(repoURL, err)
	}
	dir, err := os.MkdirTemp("", "signet-tuf-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cfg.LocalMetadataDir, cfg.LocalTargetsDir = dir, dir
	cfg.DisableLocalCache = true
	if hc != nil {
		// NewDefaultFetcher tries once; NewFetcherWithHTTPClient would
		// retry a 404 (the end of the root chain) without end.
		f := fetcher.NewDefaultFetcher()
		f.SetHTTPClient(hc)
		cfg.Fetcher = f
	}
	up, err := updater.New(cfg)
	if err != nil {
		return nil, tufErr(repoURL, fmt.Errorf("the pinned root: %w", err))
	}
	if err := up.Refresh(); err != nil {
		return nil, tufErr(repoURL, err)
	}
	out := map[string][]byte{}
	for _, name := range targets {
		ti, err := up.GetTargetInfo(name)
		if err != nil {
			return nil, tufErr(repoURL, fmt.Errorf("target %s: %w", name, err))
		}
		_, data, err := up.DownloadTarget(ti, "", "")
		if err != nil {
			return nil, tufErr(repoURL, fmt.Errorf("target %s: %w", name, err))
		}
		out[name] = data
	}
	if len(out) != len(targets) {
		return nil, tufErr(repoURL, errors.New("a target was not found"))
	}
	return out, nil
}
