package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/signet-dev/signet/core/oci/ocitest"
	"github.com/signet-dev/signet/server/servertest"
)

const (
	testEpoch   = 1767225600 // 2026-01-01T00:00:00Z
	testVersion = "v0.0.0-deploytest"
	testCommit  = "0123456789abcdef0123456789abcdef01234567"
)

// buildJSON runs the command as `go run ./deploy/image ARGS -o json` would
// and decodes its answer.
func buildJSON(t *testing.T, args ...string) result {
	t.Helper()
	var out, log bytes.Buffer
	if err := run(context.Background(), append(args, "-o", "json"), &out, &log); err != nil {
		t.Fatalf("image %s: %v\n%s", strings.Join(args, " "), err, log.String())
	}
	var r result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("image -o json: %v\n%s", err, out.String())
	}
	return r
}

// TestImage builds the image for this machine's platform, pushes it to a
// real registry, builds it again for the same digest, then pulls it back
// and runs it as a container runtime would: its user, its entrypoint and
// arguments, its environment, a read-only root filesystem and a writable
// volume at /data, nothing else. The server it runs is the signing server
// the image itself is then signed against, with the image's own signet CLI.
func TestImage(t *testing.T) {
	reg := ocitest.Start(t)
	platform := runtime.GOOS + "/" + runtime.GOARCH
	// Both builds are of one snapshot of the module: the clone may change
	// between them (others edit it), and a changed tree is another image.
	snap := snapshotModule(t)
	common := []string{"--module", snap, "--platform", platform, "--source-date-epoch", strconv.Itoa(testEpoch), "--version", testVersion, "--revision", testCommit}
	tag := reg.Ref("signet/server:" + testVersion)
	pushed := buildJSON(t, append(common, "--push", tag, "--insecure")...)
	repo := reg.Ref("signet/server")
	if want := repo + "@" + pushed.Digest; pushed.Reference != want {
		t.Fatalf("reference %q, want %q", pushed.Reference, want)
	}
	// A second build, into a layout this time, is the same bytes.
	layoutDir := t.TempDir()
	again := buildJSON(t, append(common, "--layout", layoutDir)...)
	if again.Digest != pushed.Digest || again.Platforms[0].Digest != pushed.Platforms[0].Digest {
		t.Fatalf("two builds of the same tree and epoch differ: %+v and %+v", pushed, again)
	}
	if _, err := os.Stat(filepath.Join(layoutDir, "blobs", "sha256", strings.TrimPrefix(pushed.Digest, "sha256:"))); err != nil {
		t.Fatalf("--layout holds no index blob: %v", err)
	}

	img := pullImage(t, tag, pushed, platform)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	checkConfig(t, cf)
	root := t.TempDir()
	files := unpack(t, img, root)
	checkFiles(t, root, files)

	uidS, gidS, _ := strings.Cut(cf.Config.User, ":")
	uid, _ := strconv.Atoi(uidS)
	gid, _ := strconv.Atoi(gidS)
	data := t.TempDir()
	srv := startImage(t, root, data, uid, gid, cf)

	t.Run("sign and verify with the image's own CLI", func(t *testing.T) {
		signWithImage(t, filepath.Join(root, binPath), srv, data, repo+"@"+pushed.Digest)
	})

	// A graceful stop, as the kubelet sends it, and the state is on the volume.
	srv.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-srv.done:
		if srv.err != nil {
			t.Fatalf("server exited with %v after SIGTERM\n%s", srv.err, srv.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop within 30s of SIGTERM")
	}
	for _, p := range []string{"keys/log.key", "signed-head", "attestations.db", "log/checkpoint"} {
		if _, err := os.Stat(filepath.Join(data, p)); err != nil {
			t.Errorf("the volume has no %s: %v", p, err)
		}
	}

	t.Run("PKCS#11 keys are refused clearly", func(t *testing.T) {
		data := t.TempDir()
		cfg := "devOIDC: true\nkeys:\n  tsaKey: \"pkcs11:token=signet;object=tsa\"\n  tsaChain: /data/tsa-chain.pem\n"
		if err := os.WriteFile(filepath.Join(data, "server.yaml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		argv := append(slices.Clone(cf.Config.Entrypoint), "--config", "/data/server.yaml", "--data", "/data", "--addr", "127.0.0.1:0")
		cmd := sandboxCommand(t, root, data, uid, gid, cf.Config, argv)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("want exit status 1, got %v%s\n%s", err, userNamespaceHint(err), out)
		}
		if !strings.Contains(string(out), "no PKCS#11 support (it was built without cgo)") {
			t.Fatalf("the refusal does not say the build lacks PKCS#11:\n%s", out)
		}
	})
}

// snapshotModule copies the module this test is in, without .git, into a
// temporary directory.
func snapshotModule(t *testing.T) string {
	t.Helper()
	src, err := moduleDir(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	err = filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		case d.Type().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
		}
		return nil // symlinks and the like: no part of a Go build
	})
	if err != nil {
		t.Fatalf("copying the module: %v", err)
	}
	return dst
}

// pullImage reads the index back from the registry and returns the image
// of platform, checking the index on the way.
func pullImage(t *testing.T, tag string, pushed result, platform string) v1.Image {
	t.Helper()
	ref, err := name.ParseReference(tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := idx.Digest(); d.String() != pushed.Digest {
		t.Fatalf("the registry's %s is %s, the build said %s", tag, d, pushed.Digest)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex || len(im.Manifests) != 1 {
		t.Fatalf("index %s with %d manifests, want one OCI index entry", im.MediaType, len(im.Manifests))
	}
	if p := im.Manifests[0].Platform; p == nil || p.OS+"/"+p.Architecture != platform {
		t.Fatalf("index entry platform %+v, want %s", p, platform)
	}
	if got := im.Annotations["org.opencontainers.image.revision"]; got != testCommit {
		t.Errorf("index revision annotation %q, want %q", got, testCommit)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("image media type %s, want %s", mt, types.OCIManifestSchema1)
	}
	return img
}

func checkConfig(t *testing.T, cf *v1.ConfigFile) {
	t.Helper()
	c := cf.Config
	uid, _, _ := strings.Cut(c.User, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("config User %q: want a numeric non-root uid (Kubernetes' runAsNonRoot can check only a number)", c.User)
	}
	if want := []string{"/usr/bin/signet", "server"}; !slices.Equal(c.Entrypoint, want) {
		t.Errorf("entrypoint %q, want %q", c.Entrypoint, want)
	}
	if i := slices.Index(c.Cmd, "--data"); i < 0 || i+1 >= len(c.Cmd) || c.Cmd[i+1] != "/data" {
		t.Errorf("cmd %q does not make /data the data directory", c.Cmd)
	}
	if _, ok := c.Volumes["/data"]; !ok || len(c.Volumes) != 1 {
		t.Errorf("volumes %v, want /data alone", c.Volumes)
	}
	want := map[string]string{
		"org.opencontainers.image.source":   defaultSource,
		"org.opencontainers.image.version":  testVersion,
		"org.opencontainers.image.revision": testCommit,
		"org.opencontainers.image.created":  "2026-01-01T00:00:00Z",
	}
	for k, v := range want {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}
	if cf.Created.Unix() != testEpoch {
		t.Errorf("config created %v, want the source date", cf.Created)
	}
	for _, h := range cf.History {
		if h.Created.Unix() != testEpoch {
			t.Errorf("history %q created %v, want the source date", h.CreatedBy, h.Created)
		}
	}
}

// unpack extracts the image's filesystem into root as a runtime would and
// returns the tar headers by path.
func unpack(t *testing.T, img v1.Image, root string) map[string]*tar.Header {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		clean := filepath.Clean(h.Name)
		files[clean] = h
		dst := filepath.Join(root, clean)
		switch h.Typeflag {
		case tar.TypeDir:
			// The top layer comes first, so a directory may already exist.
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dst, os.FileMode(h.Mode)&0o777|0o700); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o777)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		default:
			t.Errorf("unexpected entry %s of type %c", h.Name, h.Typeflag)
		}
	}
}

// checkFiles: the image holds exactly the server, its accounts, CA
// certificates and the data directory; no shell, no package manager.
func checkFiles(t *testing.T, root string, files map[string]*tar.Header) {
	t.Helper()
	var regular []string
	for p, h := range files {
		if h.ModTime.Unix() != testEpoch {
			t.Errorf("%s has mtime %v, want the source date", p, h.ModTime)
		}
		if h.Typeflag == tar.TypeReg {
			regular = append(regular, p)
		}
	}
	slices.Sort(regular)
	if want := []string{"etc/group", "etc/passwd", "etc/ssl/certs/ca-certificates.crt", "usr/bin/signet"}; !slices.Equal(regular, want) {
		t.Errorf("files %q, want exactly %q (no shell or tools)", regular, want)
	}
	if d := files["data"]; d == nil || d.Uid != uid || d.Gid != gid || d.Mode&0o777 != 0o700 {
		t.Errorf("/data is %+v, want a 0700 directory of %d:%d", d, uid, gid)
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc", "passwd"))
	if !strings.Contains(string(passwd), fmt.Sprintf("signet:x:%d:%d:", uid, gid)) {
		t.Errorf("/etc/passwd names no signet user %d:\n%s", uid, passwd)
	}
	bundle, _ := os.ReadFile(filepath.Join(root, caPath))
	if n := countCerts(bundle); n < 100 {
		t.Errorf("the CA bundle holds %d certificates, want Mozilla's (over 100)", n)
	}
}

// imageServer is the image's entrypoint running in the sandbox.
type imageServer struct {
	url, admin string
	cmd        *exec.Cmd
	stderr     *bytes.Buffer
	done       chan struct{}
	err        error
}

// startImage runs the image's entrypoint with its Cmd and Env in the
// sandbox. The listen addresses are moved to free loopback ports (the test
// shares the machine's network), and --dev-oidc is added so the server can
// sign; the data directory stays /data, where the volume is mounted.
func startImage(t *testing.T, root, data string, uid, gid int, cf *v1.ConfigFile) *imageServer {
	t.Helper()
	args := slices.Clone(cf.Config.Cmd)
	var admin string
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--addr", "--admin-addr":
			if host, _, err := net.SplitHostPort(args[i+1]); err != nil || host != "0.0.0.0" {
				t.Fatalf("image cmd %s %q: want 0.0.0.0:PORT, reachable from outside the container", args[i], args[i+1])
			}
			args[i+1] = "127.0.0.1:" + strconv.Itoa(servertest.FreePort(t))
			if args[i] == "--admin-addr" {
				admin = "http://" + args[i+1]
			}
		}
	}
	if admin == "" {
		t.Fatalf("image cmd %q has no --admin-addr: the probes would share the public listener", cf.Config.Cmd)
	}
	argv := append(append(slices.Clone(cf.Config.Entrypoint), args...), "--dev-oidc", "--log-level", "warn")
	cmd := sandboxCommand(t, root, data, uid, gid, cf.Config, argv)
	s := &imageServer{admin: admin, cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = s.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the image in a user namespace: %v%s", err, userNamespaceHint(err))
	}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			t.Logf("image server stderr:\n%s", s.stderr.String())
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(2 * time.Minute)
	for s.url == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				<-s.done
				var ee *exec.ExitError
				if errors.As(s.err, &ee) && ee.ExitCode() == probeFailed {
					t.Fatalf("the sandbox's root filesystem is writable:\n%s", s.stderr.String())
				}
				t.Fatalf("the image's server exited before listening: %v\n%s", s.err, s.stderr.String())
			}
			if rest, ok := strings.CutPrefix(l, "signet server at "); ok {
				s.url = strings.TrimSpace(rest)
			}
		case <-deadline:
			t.Fatalf("the image's server printed no URL within 2 minutes\n%s", s.stderr.String())
		}
	}
	go func() {
		for range lines {
		}
	}()

	for _, u := range []string{s.admin + "/healthz", s.admin + "/readyz", s.url + "/healthz", s.url + "/readyz"} {
		waitOK(t, u)
	}
	// Nobody inside: the image's user alone, with no capability left.
	pid := cmd.Process.Pid
	m, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pid))
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(string(m)); len(f) != 3 || f[0] != strconv.Itoa(uid) || f[2] != "1" {
		t.Errorf("uid map %q: want the image's uid %d alone", m, uid)
	}
	st, err := processStatus(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"CapEff", "CapPrm", "CapAmb"} {
		if st[k] != "0000000000000000" {
			t.Errorf("the server runs with %s %s, want none", k, st[k])
		}
	}
	return s
}

func waitOK(t *testing.T, u string) {
	t.Helper()
	var last string
	for i := 0; i < 100; i++ {
		resp, err := http.Get(u)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s: %s", u, last)
}

// signWithImage signs ref with the image's signet binary against the
// image's server, keyless with a development token, and verifies it.
func signWithImage(t *testing.T, bin string, srv *imageServer, data, ref string) {
	reqToken, err := os.ReadFile(filepath.Join(data, "dev-oidc", "request-token"))
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"audience": {"sigstore"}, "kind": {"github"}, "repository": {"acme/signet-image"}, "workflow": {".github/workflows/release.yml"}, "ref": {"refs/heads/main"}}
	req, _ := http.NewRequest(http.MethodGet, srv.url+"/dev/oidc/token?"+q.Encode(), nil)
	req.Header.Set("Authorization", "bearer "+strings.TrimSpace(string(reqToken)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Value string }
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || tok.Value == "" {
		t.Fatalf("development token: HTTP %d, %v", resp.StatusCode, err)
	}
	trustDir := t.TempDir()
	env := append(os.Environ(), "SIGNET_SERVER="+srv.url, "HOME="+t.TempDir())
	signet := func(wantStatus int, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		status := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			status = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if status != wantStatus {
			t.Fatalf("signet %s: exit %d, want %d\n%s%s", strings.Join(args, " "), status, wantStatus, out.String(), errb.String())
		}
		return out.String()
	}
	signet(0, "trust", "--out", trustDir)
	signet(0, "sign", ref, "--identity-token", tok.Value)
	policy := []string{"--trusted-root", filepath.Join(trustDir, "trusted_root.json"), "--certificate-oidc-issuer", srv.url + "/dev/oidc"}
	identity := "https://github.com/acme/signet-image/.github/workflows/release.yml@refs/heads/main"
	out := signet(0, append([]string{"verify", ref, "-o", "json", "--certificate-identity", identity}, policy...)...)
	if !strings.Contains(out, identity) {
		t.Errorf("verify -o json does not name the signer %s:\n%s", identity, out)
	}
	signet(1, append([]string{"verify", ref, "--certificate-identity", "https://github.com/acme/other/.github/workflows/release.yml@refs/heads/main"}, policy...)...)
}

func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--platform", "windows/amd64"}, "each platform is linux/ARCH"},
		{[]string{"--platform", "linux/amd64,linux/amd64"}, "listed twice"},
		{[]string{"--platform", "linux/sparc"}, "unknown architecture"},
		{[]string{"-o", "yaml"}, "use text or json"},
		{[]string{"extra"}, "every input is a flag"},
		{[]string{"--source-date-epoch", "yesterday"}, "non-negative Unix time"},
		{[]string{"--no-such-flag"}, "unknown flag"},
	} {
		err := run(context.Background(), tc.args, io.Discard, io.Discard)
		var u usageError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
	err := run(context.Background(), []string{"--source-date-epoch", "1", "--ca-certificates", "/dev/null", "--platform", "linux/amd64"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "holds no PEM CERTIFICATE block") {
		t.Errorf("an empty CA bundle: got %v", err)
	}
}
