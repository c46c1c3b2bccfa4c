package buildpack

import (
	"fmt"
	"strings"
)

// Errors name causes; cmd/signet adds the flags that remedy them. Every one
// is returned by Read, before anything is signed.

// ReportNotFoundError: there is no report.toml where it was looked for.
type ReportNotFoundError struct {
	Path string
}

func (e *ReportNotFoundError) Error() string {
	return fmt.Sprintf("no report.toml at %s: the lifecycle's exporter writes it when an export finishes; run this after the export, with the export's layers directory (or its report path)", e.Path)
}

// DaemonExportError: report.toml names no registry digest, as when the
// image was exported to a Docker daemon (image-id only) or not at all.
type DaemonExportError struct {
	Path    string
	ImageID string
	Tags    []string
}

func (e *DaemonExportError) Error() string {
	if e.ImageID != "" {
		return fmt.Sprintf("%s has image-id %s but no digest: the image %s was exported to a Docker daemon, not a registry; only an image in a registry can be signed — export with the lifecycle's registry (daemonless) mode, e.g. pack build --publish",
			e.Path, e.ImageID, strings.Join(e.Tags, ", "))
	}
	return fmt.Sprintf("%s has no image digest: the export did not write the image %s to a registry", e.Path, strings.Join(e.Tags, ", "))
}

// DigestMismatchError: a tag from report.toml names another manifest in the
// registry than the one the lifecycle exported (a later push moved it), or
// is gone.
type DigestMismatchError struct {
	Tag      string
	Report   string // digest report.toml names
	Registry string // digest the registry serves for Tag; "" when the tag is gone
}

func (e *DigestMismatchError) Error() string {
	now := e.Registry
	if now == "" {
		now = "nothing (the tag does not exist)"
	}
	return fmt.Sprintf("report.toml says %s was exported as %s, but the registry now serves %s for it: the tag moved after the export; nothing was signed", e.Tag, e.Report, now)
}

// SBOMError: an SBOM the buildpacks left is malformed or cannot be attested.
type SBOMError struct {
	Scope     string // "launch" or "build"
	Buildpack string // buildpack ID, as far as the path tells
	Path      string
	Err       error
}

func (e *SBOMError) Error() string {
	bp := e.Buildpack
	if bp == "" {
		bp = "no buildpack"
	}
	return fmt.Sprintf("%s SBOM %s (buildpack %s): %v", e.Scope, e.Path, bp, e.Err)
}
func (e *SBOMError) Unwrap() error { return e.Err }

// FileError: a lifecycle file (report.toml, analyzed.toml, group.toml) is
// not what the platform spec describes.
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return fmt.Sprintf("%s: %v", e.Path, e.Err) }
func (e *FileError) Unwrap() error { return e.Err }

// LabelError: an image label the lifecycle writes is missing or malformed.
type LabelError struct {
	Image string
	Label string
	Err   error
}

func (e *LabelError) Error() string {
	where := ""
	if e.Image != "" {
		where = " of " + e.Image
	}
	return fmt.Sprintf("label %s%s: %v", e.Label, where, e.Err)
}
func (e *LabelError) Unwrap() error { return e.Err }

// MismatchError: the files in the layers directory describe another build
// than the exported image's labels (a layers directory left from an
// earlier build).
type MismatchError struct {
	What string
}

func (e *MismatchError) Error() string {
	return "the layers directory does not belong to the exported image: " + e.What
}
