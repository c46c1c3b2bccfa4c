package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/signet-dev/signet/internal/signetbuild"
	"github.com/signet-dev/signet/internal/toolcache"
)

// What the image is. The Kubernetes manifests and docs/deploy.md name the
// same paths, user and ports.
const (
	modulePath    = "github.com/signet-dev/signet"
	defaultSource = "https://github.com/signet-dev/signet"
	// UID and GID 65532: distroless' "nonroot", which Kubernetes policies
	// and volume fsGroup settings commonly expect.
	uid, gid  = 65532, 65532
	userName  = "signet"
	binPath   = "usr/bin/signet"
	caPath    = "etc/ssl/certs/ca-certificates.crt" // the first file Go's crypto/x509 looks for on Linux
	dataDir   = "data"
	publicAPI = "8080"
	adminAPI  = "9090"
)

// caCertificates is where the default CA bundle comes from: Debian 12's
// ca-certificates, a fixed version, so the bundle (and the digest) changes
// only when this line does.
var caCertificates = toolcache.DebianPackages{Name: "ca-certificates", Version: "20230311+deb12u1", Packages: []string{"ca-certificates"}}

type options struct {
	platforms                 []v1.Platform
	version, revision, source string
	created                   time.Time
	caFile                    string
	moduleDir                 string
	push, layout, output      string
	insecure                  bool
}

type platformResult struct {
	Platform string `json:"platform"`
	Digest   string `json:"digest"`
}

type result struct {
	Digest    string           `json:"digest"`
	Reference string           `json:"reference,omitempty"` // REPO@DIGEST when pushed
	Layout    string           `json:"layout,omitempty"`
	Version   string           `json:"version"`
	Revision  string           `json:"revision,omitempty"`
	Created   string           `json:"created"`
	Platforms []platformResult `json:"platforms"`
}

func parsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	seen := map[string]bool{}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		os, arch, ok := strings.Cut(p, "/")
		if !ok || os != "linux" || arch == "" || strings.Contains(arch, "/") {
			return nil, fmt.Errorf("--platform %q: each platform is linux/ARCH (the server runs on Linux), e.g. linux/amd64,linux/arm64", p)
		}
		switch arch {
		case "amd64", "arm64", "ppc64le", "s390x", "riscv64", "386", "arm":
		default:
			return nil, fmt.Errorf("--platform %q: unknown architecture %q (use amd64, arm64, ppc64le, s390x, riscv64, 386 or arm)", p, arch)
		}
		if seen[p] {
			return nil, fmt.Errorf("--platform %q is listed twice", p)
		}
		seen[p] = true
		out = append(out, v1.Platform{OS: os, Architecture: arch})
	}
	return out, nil
}

// moduleDir finds the signet module to build: dir, or the module of the
// working directory.
func moduleDir(ctx context.Context, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Path}} {{.Dir}}")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOTOOLCHAIN=local")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("finding the signet module (go list -m in %q): %v%s; run from a clone of %s or give --module", dir, err, stderrOf(err), modulePath)
	}
	path, d, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if path != modulePath {
		return "", fmt.Errorf("the module in %q is %s, not %s: run from a clone of signet or give --module", dir, path, modulePath)
	}
	return d, nil
}

// sourceDate is the build's one timestamp: SOURCE_DATE_EPOCH when given
// (reproducible-builds.org's convention), else the commit time of HEAD, so
// a build of a commit is reproducible without any setting.
func sourceDate(ctx context.Context, epoch, dir string) (time.Time, error) {
	if epoch == "" {
		out, err := git(ctx, dir, "log", "-1", "--format=%ct")
		if err != nil {
			return time.Time{}, fmt.Errorf("no --source-date-epoch or SOURCE_DATE_EPOCH, and the commit time of HEAD is unknown (%v): set SOURCE_DATE_EPOCH to a Unix time, e.g. SOURCE_DATE_EPOCH=$(git log -1 --format=%%ct)", err)
		}
		epoch = out
	}
	n, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, usageError{fmt.Errorf("source date epoch %q: want a non-negative Unix time in seconds, e.g. 1767225600", epoch)}
	}
	return time.Unix(n, 0).UTC(), nil
}

func gitRevision(ctx context.Context, dir string) string {
	rev, err := git(ctx, dir, "rev-parse", "HEAD")
	if err != nil {
		return ""
	}
	return rev
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %v%s", strings.Join(args, " "), err, stderrOf(err))
	}
	return strings.TrimSpace(string(out)), nil
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

// build makes the index and writes it where o asks.
func build(ctx context.Context, o options, log io.Writer) (*result, error) {
	caPEM, err := caBundle(o.caFile)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "signet-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	base, err := tarLayer(baseFiles(caPEM), o.created)
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	idx = mutate.Annotations(idx, labels(o)).(v1.ImageIndex)
	res := &result{Version: o.version, Revision: o.revision, Created: o.created.Format(time.RFC3339)}
	for _, p := range o.platforms {
		fmt.Fprintf(log, "building signet %s for %s/%s\n", o.version, p.OS, p.Architecture)
		bin := filepath.Join(work, "signet-"+p.Architecture)
		if err := compile(ctx, o, p, bin); err != nil {
			return nil, err
		}
		img, err := platformImage(o, p, base, bin)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", p.OS, p.Architecture, err)
		}
		d, err := img.Digest()
		if err != nil {
			return nil, err
		}
		platform := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &platform}})
		res.Platforms = append(res.Platforms, platformResult{Platform: p.OS + "/" + p.Architecture, Digest: d.String()})
	}
	d, err := idx.Digest()
	if err != nil {
		return nil, err
	}
	res.Digest = d.String()

	if o.layout != "" {
		if err := writeLayout(o.layout, idx, o.version); err != nil {
			return nil, err
		}
		res.Layout = o.layout
	}
	if o.push != "" {
		ref, err := push(ctx, o, idx)
		if err != nil {
			return nil, err
		}
		res.Reference = ref + "@" + res.Digest
		fmt.Fprintf(log, "pushed %s\n", res.Reference)
	}
	return res, nil
}

// compile builds cmd/signet for p as a release is built
// (internal/signetbuild): the image holds the same bytes as the release
// binary of its platform.
func compile(ctx context.Context, o options, p v1.Platform, out string) error {
	return signetbuild.Build(ctx, o.moduleDir, o.version, p.OS, p.Architecture, out)
}

// caBundle reads the operator's bundle, or the pinned Debian one: the
// package holds one certificate per file, which update-ca-certificates
// would concatenate; so does this, in name order.
func caBundle(file string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--ca-certificates: %w", err)
		}
		if n := countCerts(b); n == 0 {
			return nil, fmt.Errorf("--ca-certificates %s holds no PEM CERTIFICATE block: give a PEM bundle such as /etc/ssl/certs/ca-certificates.crt", file)
		}
		return b, nil
	}
	root, err := caCertificates.Root()
	if err != nil {
		return nil, fmt.Errorf("getting the default CA bundle (Debian ca-certificates %s): %w; or give your own with --ca-certificates FILE", caCertificates.Version, err)
	}
	files, err := filepath.Glob(filepath.Join(root, "usr", "share", "ca-certificates", "mozilla", "*.crt"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("Debian ca-certificates %s in %s holds no usr/share/ca-certificates/mozilla/*.crt: remove that directory to fetch it again, or give --ca-certificates", caCertificates.Version, root)
	}
	sort.Strings(files)
	var buf bytes.Buffer
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		buf.Write(bytes.TrimSpace(b))
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}

func countCerts(b []byte) int {
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return n
		}
		if blk.Type == "CERTIFICATE" {
			n++
		}
	}
}

// file is one entry of a layer.
type file struct {
	name     string
	mode     int64
	uid, gid int
	dir      bool
	body     []byte
}

// baseFiles are the layer every platform shares: the accounts, the CA
// bundle and the data directory (the only one the server writes).
func baseFiles(caPEM []byte) []file {
	return []file{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, body: fmt.Appendf(nil,
			"root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:signet server:/%s:/sbin/nologin\n", userName, uid, gid, dataDir)},
		{name: "etc/group", mode: 0o644, body: fmt.Appendf(nil, "root:x:0:\n%s:x:%d:\n", userName, gid)},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: caPath, mode: 0o644, body: caPEM},
		{name: "usr/", mode: 0o755, dir: true},
		{name: "usr/bin/", mode: 0o755, dir: true},
		// 0700 and the server's own: what the server makes itself on a
		// bare host. Kubernetes' fsGroup makes a fresh volume group-owned.
		{name: dataDir + "/", mode: 0o700, uid: uid, gid: gid, dir: true},
	}
}

// tarLayer writes files into an uncompressed tar with every time set to
// mtime and no user or group names, then lets go-containerregistry
// compress and hash it.
func tarLayer(files []file, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.gid, ModTime: mtime, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}

func labels(o options) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.source":      o.source,
		"org.opencontainers.image.version":     o.version,
		"org.opencontainers.image.created":     o.created.Format(time.RFC3339),
		"org.opencontainers.image.title":       "signet server",
		"org.opencontainers.image.description": "A private Sigstore: CA, transparency log, RFC 3161 TSA, CT log and TUF in one process",
	}
	if o.revision != "" {
		l["org.opencontainers.image.revision"] = o.revision
	}
	return l
}

// Cmd is the listen side for a container: all interfaces (the pod or
// container network is the boundary), the admin listener beside it for the
// kubelet's probes and a scraper, and the volume as data directory. A
// --config given instead replaces all of it (Kubernetes args do).
var defaultCmd = []string{"--addr", "0.0.0.0:" + publicAPI, "--admin-addr", "0.0.0.0:" + adminAPI, "--data", "/" + dataDir}

func platformImage(o options, p v1.Platform, base v1.Layer, bin string) (v1.Image, error) {
	body, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	binLayer, err := tarLayer([]file{{name: binPath, mode: 0o755, body: body}}, o.created)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: o.created}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: created, CreatedBy: "deploy/image: /etc/passwd, /etc/group, CA certificates, /data"}},
		mutate.Addendum{Layer: binLayer, History: v1.History{Created: created, CreatedBy: "deploy/image: go build -trimpath ./cmd/signet (CGO_ENABLED=0) " + o.version}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = created
	cf.Author = ""
	cf.Config = v1.Config{
		User:         fmt.Sprintf("%d:%d", uid, gid),
		Entrypoint:   []string{"/" + binPath, "server"},
		Cmd:          defaultCmd,
		Env:          []string{"PATH=/usr/bin"},
		WorkingDir:   "/" + dataDir,
		Volumes:      map[string]struct{}{"/" + dataDir: {}},
		ExposedPorts: map[string]struct{}{publicAPI + "/tcp": {}, adminAPI + "/tcp": {}},
		Labels:       labels(o),
		StopSignal:   "SIGTERM",
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return img, nil
}

func writeLayout(dir string, idx v1.ImageIndex, version string) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return fmt.Errorf("--layout %s: %w", dir, err)
		}
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": version})); err != nil {
		return fmt.Errorf("--layout %s: %w", dir, err)
	}
	return nil
}

// push writes the index and returns the repository it went to.
func push(ctx context.Context, o options, idx v1.ImageIndex) (string, error) {
	var nopts []name.Option
	if o.insecure {
		nopts = append(nopts, name.Insecure)
	}
	ref, err := name.ParseReference(o.push, nopts...)
	if err != nil {
		return "", usageError{fmt.Errorf("--push %q: %v; want REGISTRY/REPO[:TAG]", o.push, err)}
	}
	if _, ok := ref.(name.Digest); ok {
		return "", usageError{fmt.Errorf("--push %q names a digest: push to a tag or a repository, the digest is the build's", o.push)}
	}
	if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		hint := ""
		if !o.insecure && strings.Contains(err.Error(), "http: server gave HTTP response to HTTPS client") {
			hint = " (a plain-HTTP registry: add --insecure)"
		}
		return "", fmt.Errorf("pushing to %s: %w%s", ref, err, hint)
	}
	return ref.Context().Name(), nil
}

func printResult(w io.Writer, format string, r *result) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	if r.Reference != "" {
		_, err := fmt.Fprintln(w, r.Reference)
		return err
	}
	_, err := fmt.Fprintln(w, r.Digest)
	return err
}
