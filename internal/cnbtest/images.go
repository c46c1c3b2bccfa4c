package cnbtest

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is the time every file and image the harness makes carries (the
// lifecycle's own normalized time), so that pushing the same inputs again
// gives the same digests: a rebuild must see the same run image.
var epoch = time.Date(1980, time.January, 1, 0, 0, 1, 0, time.UTC)

// StackID is the io.buildpacks.stack.id of the run and builder images, which
// Platform APIs before 0.12 name stacks by (the lifecycle only checks it on
// rebase).
const StackID = "dev.signet.cnbtest"

type mediaTypes struct{ manifest, config, layer types.MediaType }

var (
	ociTypes    = mediaTypes{types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayer}
	dockerTypes = mediaTypes{types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer}
)

type tarFile struct {
	name string // without a leading /
	mode int64
	data []byte
}

// tarLayer makes a gzipped layer of files and their parent directories,
// with fixed times and owners.
func tarLayer(files []tarFile, mt types.MediaType) (v1.Layer, error) {
	dirs := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(f.name); d != "." && d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var names []string
	for d := range dirs {
		names = append(names, d)
	}
	sort.Strings(names) // a parent sorts before its children
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	sorted := append([]tarFile(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	for _, f := range sorted {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: epoch}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(mt))
}

// image is a one-layer linux image for this machine's architecture.
func image(mt mediaTypes, files []tarFile, configure func(*v1.Config)) (v1.Image, error) {
	layer, err := tarLayer(files, mt.layer)
	if err != nil {
		return nil, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, mt.manifest), mt.config)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: mt.layer,
		History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "signet cnbtest"}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = v1.Time{Time: epoch}
	configure(&cf.Config)
	return mutate.ConfigFile(img, cf)
}

// push writes img to repo under a tag named after its digest, so that
// builds running side by side never see each other's images under one
// tag, and returns the tag and repo@digest references.
func push(img v1.Image, repo string) (tagRef, digestRef string, err error) {
	d, err := img.Digest()
	if err != nil {
		return "", "", err
	}
	tagRef = repo + ":" + d.Hex[:16]
	r, err := name.ParseReference(tagRef, name.Insecure)
	if err != nil {
		return "", "", err
	}
	if err := remote.Write(r, img); err != nil {
		return "", "", fmt.Errorf("pushing %s: %w", tagRef, err)
	}
	return tagRef, repo + "@" + d.String(), nil
}

// userEnv is what the platform spec asks of build and run images: the
// user's IDs in CNB_USER_ID and CNB_GROUP_ID and the same user in USER.
func userEnv(c *v1.Config, uid, gid int) {
	c.Env = append(c.Env, "PATH=/usr/local/bin:/usr/bin:/bin",
		"CNB_USER_ID="+strconv.Itoa(uid), "CNB_GROUP_ID="+strconv.Itoa(gid))
	c.User = fmt.Sprintf("%d:%d", uid, gid)
}

// runImage is the run image: an os-release (the distro the lifecycle reads
// into analyzed.toml's target at Platform API 0.12 and later) and the labels
// of a run image.
func runImage(mt mediaTypes, uid, gid int) (v1.Image, error) {
	osRelease := []byte("ID=cnbtest\nVERSION_ID=1\nNAME=\"signet cnbtest\"\n")
	return image(mt, []tarFile{{"etc/os-release", 0o644, osRelease}}, func(c *v1.Config) {
		userEnv(c, uid, gid)
		c.Labels = map[string]string{
			"io.buildpacks.stack.id":            StackID,
			"io.buildpacks.base.distro.name":    "cnbtest",
			"io.buildpacks.base.distro.version": "1",
		}
	})
}

// BuilderMetadata is the io.buildpacks.builder.metadata label of the
// builder image, in the form pack writes it (pack's internal/builder
// Metadata): what provenance names the builder by.
type BuilderMetadata struct {
	Description string `json:"description"`
	Buildpacks  []struct {
		ID       string `json:"id"`
		Version  string `json:"version"`
		Homepage string `json:"homepage,omitempty"`
	} `json:"buildpacks"`
	Stack struct {
		RunImage struct {
			Image   string   `json:"image"`
			Mirrors []string `json:"mirrors"`
		} `json:"runImage"`
	} `json:"stack"`
	Lifecycle struct {
		Version string `json:"version"`
		APIs    struct {
			Buildpack apiVersions `json:"buildpack"`
			Platform  apiVersions `json:"platform"`
		} `json:"apis"`
	} `json:"lifecycle"`
	CreatedBy struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"createdBy"`
}

type apiVersions struct {
	Deprecated []string `json:"deprecated"`
	Supported  []string `json:"supported"`
}

// builderImage stands in for the builder the build ran in: the lifecycle
// itself is not in it (the creator runs on the host), but the buildpack,
// order.toml, run.toml and stack.toml are, under /cnb as in a real
// builder, with its labels. Its digest is what provenance names as the builder.
func builderImage(mt mediaTypes, bp, cnb map[string][]byte, runImageTag, lifecycleVersion string, uid, gid int) (v1.Image, error) {
	var files []tarFile
	for file, data := range cnb {
		files = append(files, tarFile{"cnb/" + file, 0o644, data})
	}
	for rel, data := range bp {
		mode := int64(0o644)
		if strings.HasPrefix(rel, "bin/") {
			mode = 0o755
		}
		files = append(files, tarFile{path.Join("cnb/buildpacks", escapedBuildpackID, BuildpackVersion, rel), mode, data})
	}
	var md BuilderMetadata
	md.Description = "signet cnbtest builder"
	md.Buildpacks = append(md.Buildpacks, struct {
		ID       string `json:"id"`
		Version  string `json:"version"`
		Homepage string `json:"homepage,omitempty"`
	}{BuildpackID, BuildpackVersion, buildpackHomepage})
	md.Stack.RunImage.Image, md.Stack.RunImage.Mirrors = runImageTag, []string{}
	md.Lifecycle.Version = lifecycleVersion
	md.Lifecycle.APIs.Buildpack = apiVersions{[]string{}, BuildpackAPIs}
	md.Lifecycle.APIs.Platform = apiVersions{[]string{}, PlatformAPIs}
	md.CreatedBy.Name, md.CreatedBy.Version = "signet cnbtest", "1"
	label, err := json.Marshal(md)
	if err != nil {
		return nil, err
	}
	order, err := json.Marshal([]map[string]any{{"group": []map[string]string{{"id": BuildpackID, "version": BuildpackVersion}}}})
	if err != nil {
		return nil, err
	}
	return image(mt, files, func(c *v1.Config) {
		userEnv(c, uid, gid)
		c.Labels = map[string]string{
			"io.buildpacks.builder.metadata": string(label),
			"io.buildpacks.buildpack.order":  string(order),
			"io.buildpacks.stack.id":         StackID,
		}
	})
}
