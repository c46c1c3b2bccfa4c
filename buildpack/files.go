package buildpack

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/BurntSushi/toml"
)

// The files and labels the lifecycle leaves, as the platform spec (Platform
// API 0.7 to 0.15) and lifecycle v0.21.17 name their fields. These are
// signet's own small structs rather than lifecycle's platform/files types:
// importing github.com/buildpacks/lifecycle needs a replace directive for
// its kaniko dependency, upgrades signet's go-containerregistry, bbolt and
// spdx/tools-golang, links buildkit's Dockerfile parser and other lifecycle
// internals into the CLI, and puts a module the proxy does not serve in the
// graph (go list -m all fails). See docs/buildpack.md, "Design notes".

// Label keys (platform spec, "Labels").
const (
	labelLifecycle = "io.buildpacks.lifecycle.metadata"
	labelBuild     = "io.buildpacks.build.metadata"
	labelProject   = "io.buildpacks.project.metadata"
)

// reportFile is report.toml. The lifecycle writes manifest-size as an
// integer; the spec's example quotes it, so both are read.
type reportFile struct {
	Image struct {
		Tags         []string  `toml:"tags"`
		Digest       string    `toml:"digest"`
		ImageID      string    `toml:"image-id"`
		ManifestSize flexInt64 `toml:"manifest-size"`
	} `toml:"image"`
}

type flexInt64 int64

func (n *flexInt64) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		*n = flexInt64(v)
	case string:
		i, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("manifest-size %q is not a number", v)
		}
		*n = flexInt64(i)
	default:
		return fmt.Errorf("manifest-size is a %T, not a number", v)
	}
	return nil
}

// analyzedFile is analyzed.toml: the run image (and from Platform API 0.12
// its target), and the build image the restorer records (0.10+, with image
// extensions).
type analyzedFile struct {
	RunImage *struct {
		Reference string `toml:"reference"`
		Image     string `toml:"image"`
		Target    *struct {
			OS   string `toml:"os"`
			Arch string `toml:"arch"`
			// The lifecycle writes arch-variant; the spec's example says variant.
			ArchVariant string `toml:"arch-variant"`
			Variant     string `toml:"variant"`
		} `toml:"target"`
	} `toml:"run-image"`
	BuildImage *struct {
		Reference string `toml:"reference"`
	} `toml:"build-image"`
}

// groupFile is group.toml.
type groupFile struct {
	Group           []groupEntry `toml:"group"`
	GroupExtensions []groupEntry `toml:"group-extensions"`
}

type groupEntry struct {
	ID       string `toml:"id"`
	Version  string `toml:"version"`
	API      string `toml:"api"`
	Homepage string `toml:"homepage"`
}

// lifecycleMetadata is the io.buildpacks.lifecycle.metadata label, the parts
// signet reads: the SBOM layer (0.8+) and the run image. runImage.image and
// mirrors are top-level from 0.12; before, they are under stack.runImage
// (which the lifecycle still writes, deprecated).
type lifecycleMetadata struct {
	SBOM *struct {
		SHA string `json:"sha"`
	} `json:"sbom"`
	RunImage struct {
		TopLayer  string   `json:"topLayer"`
		Reference string   `json:"reference"`
		Image     string   `json:"image"`
		Mirrors   []string `json:"mirrors"`
	} `json:"runImage"`
	Stack *struct {
		RunImage struct {
			Image   string   `json:"image"`
			Mirrors []string `json:"mirrors"`
		} `json:"runImage"`
	} `json:"stack"`
}

// buildMetadata is the io.buildpacks.build.metadata label: the detected
// group and the launcher, whose version and source are the exporting
// lifecycle's own (it stamps its version there).
type buildMetadata struct {
	Buildpacks []labelElement `json:"buildpacks"`
	Extensions []labelElement `json:"extensions"`
	Launcher   struct {
		Version string `json:"version"`
		Source  struct {
			Git struct {
				Repository string `json:"repository"`
				Commit     string `json:"commit"`
			} `json:"git"`
		} `json:"source"`
	} `json:"launcher"`
}

// labelElement is a buildpack or extension in the build metadata label. The
// spec lists api from Platform API 0.11; lifecycle v0.21.17 leaves it out
// (its field is json:"-"), so group.toml supplies it.
type labelElement struct {
	ID       string `json:"id"`
	Version  string `json:"version"`
	Homepage string `json:"homepage"`
	API      string `json:"api"`
}

// projectMetadata is the io.buildpacks.project.metadata label: the JSON of
// project-metadata.toml, whose version and metadata are free-form.
type projectMetadata struct {
	Source *struct {
		Type     string         `json:"type"`
		Version  map[string]any `json:"version"`
		Metadata map[string]any `json:"metadata"`
	} `json:"source"`
}

// decodeTOML reads a TOML file; absent reports whether it does not exist.
func decodeTOML(path string, v any) (absent bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return true, err
	}
	if err != nil {
		return false, err
	}
	if _, err := toml.Decode(string(b), v); err != nil {
		return false, &FileError{Path: path, Err: err}
	}
	return false, nil
}

// decodeLabel decodes one JSON label; a missing label leaves v as it is.
func decodeLabel(labels map[string]string, key string, v any) (bool, error) {
	s, ok := labels[key]
	if !ok || s == "" {
		return false, nil
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return true, &LabelError{Label: key, Err: err}
	}
	return true, nil
}
