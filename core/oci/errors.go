package oci

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// NotFoundError: the image (or manifest) is not in the registry.
type NotFoundError struct {
	Reference string // what was asked for
	Registry  string
	Err       error
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("image %s not found in registry %s; check the repository name and tag or digest (and that you are logged in to a private registry)", e.Reference, e.Registry)
}
func (e *NotFoundError) Unwrap() error { return e.Err }

// AccessDeniedError: the registry refused the credentials for the repository.
type AccessDeniedError struct {
	Repository string
	Push       bool // the refused operation was a write
	Err        error
}

func (e *AccessDeniedError) Error() string {
	op := "pull from"
	if e.Push {
		op = "push to"
	}
	return fmt.Sprintf("no permission to %s %s: %v; credentials come from docker login (docker config.json) or a configured credential helper — log in with an account allowed to %s it", op, e.Repository, e.Err, op)
}
func (e *AccessDeniedError) Unwrap() error { return e.Err }

// ImageChangedError: the tag pointed at another manifest when the bundle
// was about to be attached than when it was resolved (and signed).
type ImageChangedError struct {
	Reference string
	Resolved  string // digest that was signed
	Current   string // digest the reference names now; empty if it is gone
}

func (e *ImageChangedError) Error() string {
	now := e.Current
	if now == "" {
		now = "nothing (the image is gone)"
	}
	return fmt.Sprintf("image %s changed while signing: it was %s when resolved and is now %s; nothing was attached — sign again, or sign by digest", e.Reference, e.Resolved, now)
}

// TooLargeError: a blob exceeds a limit (ours or the registry's).
type TooLargeError struct {
	What  string
	Size  int64 // -1 when unknown
	Limit int64 // -1 when the registry's limit is unknown
	Err   error
}

func (e *TooLargeError) Error() string {
	if e.Limit < 0 {
		return fmt.Sprintf("%s is too large for the registry: %v", e.What, e.Err)
	}
	return fmt.Sprintf("%s is %d bytes, over the %d-byte limit", e.What, e.Size, e.Limit)
}
func (e *TooLargeError) Unwrap() error { return e.Err }

// InsecureRegistryError: plain HTTP to a registry off loopback without
// AllowInsecureRegistry.
type InsecureRegistryError struct {
	Registry string
}

func (e *InsecureRegistryError) Error() string {
	return fmt.Sprintf("refusing plain HTTP to registry %s: it is not on loopback; use HTTPS, or allow plain HTTP to it explicitly", e.Registry)
}

// ReferrersFallbackError: the registry has no referrers API and updating
// the referrers tag (sha256-<hex>) failed. The referrer manifest itself was
// pushed (by digest) but is not discoverable until the tag is updated.
type ReferrersFallbackError struct {
	Repository string
	Tag        string
	Referrer   string // digest of the pushed referrer manifest
	Err        error
}

func (e *ReferrersFallbackError) Error() string {
	return fmt.Sprintf("registry for %s has no OCI referrers API; the bundle manifest %s was pushed but adding it to the referrers tag %s failed: %v; run the command again to retry", e.Repository, e.Referrer, e.Tag, e.Err)
}
func (e *ReferrersFallbackError) Unwrap() error { return e.Err }

// classify turns go-containerregistry errors into the typed errors above.
func classify(err error, reference string, repo name.Repository, push bool) error {
	if err == nil {
		return nil
	}
	var ins *InsecureRegistryError
	if errors.As(err, &ins) {
		return ins
	}
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return err
	}
	switch {
	case terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden ||
		hasCode(terr, transport.UnauthorizedErrorCode, transport.DeniedErrorCode):
		return &AccessDeniedError{Repository: repo.String(), Push: push, Err: err}
	case terr.StatusCode == http.StatusRequestEntityTooLarge || hasCode(terr, transport.SizeInvalidErrorCode):
		return &TooLargeError{What: "upload to " + repo.String(), Size: -1, Limit: -1, Err: err}
	case terr.StatusCode == http.StatusNotFound ||
		hasCode(terr, transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode):
		return &NotFoundError{Reference: reference, Registry: repo.RegistryStr(), Err: err}
	}
	return err
}

func hasCode(terr *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range terr.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}
