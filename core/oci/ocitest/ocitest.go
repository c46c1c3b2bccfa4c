// Package ocitest runs real OCI registries on loopback for tests.
//
// Start runs distribution's registry (the reference implementation, built once
// from the Go module proxy and cached outside the clone). distribution v3 has
// no referrers API, so it is the registry that exercises the OCI 1.1 referrers
// tag schema fallback. StartReferrersAPI runs go-containerregistry's in-memory
// registry with its referrers endpoint enabled: the registry that exercises the
// referrers API path.
package ocitest

import (
	"bytes"
	"fmt"
	"github.com/signet-dev/signet/internal/toolcache"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"golang.org/x/crypto/bcrypt"
)

// RegistryVersion is the distribution release the harness builds.
var RegistryVersion = toolcache.Registry.Version

// Registry is a running registry on 127.0.0.1.
type Registry struct {
	// Host is host:port, usable as the registry part of a reference.
	Host string
	// Username and Password are set when the registry requires them.
	Username, Password string
	// ReferrersAPI reports whether the registry serves GET /v2/<name>/referrers/<digest>.
	ReferrersAPI bool
}

// Ref returns the reference Host/repo:tag-or-@digest.
func (r *Registry) Ref(repoAndTag string) string { return r.Host + "/" + repoAndTag }

type config struct {
	user, password string
}

// Option configures Start.
type Option func(*config)

// WithHTPasswd requires basic-auth credentials user/password for every request.
func WithHTPasswd(user, password string) Option {
	return func(c *config) { c.user, c.password = user, password }
}

// Start runs distribution's registry with filesystem storage in a temporary
// directory and stops it when the test ends.
func Start(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	var c config
	for _, o := range opts {
		o(&c)
	}
	bin, err := Binary()
	if err != nil {
		t.Fatalf("ocitest: %v", err)
	}
	dir := t.TempDir()
	var lastErr error
	// A free port found by listening can be taken before the registry binds
	// it; a second attempt with a new port settles that race.
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("ocitest: %v", err)
		}
		host := fmt.Sprintf("127.0.0.1:%d", port)
		cfg, err := writeConfig(dir, host, c)
		if err != nil {
			t.Fatalf("ocitest: %v", err)
		}
		stop, err := run(bin, cfg, host)
		if err != nil {
			lastErr = err
			continue
		}
		t.Cleanup(stop)
		return &Registry{Host: host, Username: c.user, Password: c.password}
	}
	t.Fatalf("ocitest: starting registry: %v", lastErr)
	return nil
}

// StartReferrersAPI runs go-containerregistry's in-memory registry with the
// OCI 1.1 referrers API enabled, on loopback, for the test's lifetime. It
// stands in for registries that implement the referrers API (distribution
// does not); note that its referrers index lists artifactType from the
// config media type and drops annotations, so clients must read the
// referrer manifests themselves.
func StartReferrersAPI(t testing.TB) *Registry {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("ocitest: %v", err)
	}
	srv := httptest.NewUnstartedServer(registry.New(registry.WithReferrersSupport(true), registry.Logger(log.New(io.Discard, "", 0))))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return &Registry{Host: l.Addr().String(), ReferrersAPI: true}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func writeConfig(dir, host string, c config) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
http:
  addr: %q
`, filepath.Join(dir, "data"), host)
	if c.user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(c.password), bcrypt.MinCost)
		if err != nil {
			return "", err
		}
		pw := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(pw, fmt.Appendf(nil, "%s:%s\n", c.user, hash), 0o600); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "auth:\n  htpasswd:\n    realm: signet-test\n    path: %q\n", pw)
	}
	path := filepath.Join(dir, "config.yml")
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}

func run(bin, cfg, host string) (stop func(), err error) {
	var out bytes.Buffer
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = &out, &out
	// No tracing exporter: the registry would otherwise try an OTLP endpoint.
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_SDK_DISABLED=true")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("running %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop = func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	deadline := time.Now().Add(15 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return nil, fmt.Errorf("registry exited at start: %s", strings.TrimSpace(out.String()))
		default:
		}
		resp, err := client.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return stop, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return nil, fmt.Errorf("registry on %s not ready after 15s: %s", host, strings.TrimSpace(out.String()))
}

// Binary returns the path of distribution's registry, built on first use
// into the tools cache (internal/toolcache).
func Binary() (string, error) { return toolcache.Registry.Binary() }
