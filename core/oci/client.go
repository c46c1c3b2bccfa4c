// Package oci attaches Sigstore bundles to container images in OCI
// registries, lists what is attached and copies images with their
// attachments, on go-containerregistry.
//
// Bundles are stored as OCI 1.1 referrers in the layout cosign v3 writes
// (an artifact manifest of artifactType application/vnd.dev.sigstore.bundle.v0.3+json
// whose subject is the image), through the referrers API where the registry
// has one and the referrers tag schema (tag sha256-<hex>) where it does not.
// The legacy cosign tags sha256-<hex>.sig and .att can be written and read
// too, for policy engines that only read those.
package oci

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// DefaultMaxBundleSize bounds a bundle read from or written to a registry.
// Signatures are a few KiB, SBOM attestations of large images tens of MB;
// the bound keeps a hostile registry from
// making a listing read an unbounded blob.
const DefaultMaxBundleSize = 64 << 20

// Options configures a Client. The zero value is usable.
type Options struct {
	// Keychain supplies registry credentials. Nil means
	// authn.DefaultKeychain: docker config.json and credential helpers, as
	// `docker login` leaves them.
	Keychain authn.Keychain
	// AllowInsecureRegistry permits plain HTTP to registries that are not on
	// loopback. Loopback registries (127.0.0.0/8, ::1, localhost) always may
	// use plain HTTP.
	AllowInsecureRegistry bool
	// Transport is the base HTTP transport; nil means remote.DefaultTransport.
	Transport http.RoundTripper
	// UserAgent is sent to registries.
	UserAgent string
	// MaxBundleSize bounds one bundle or legacy layer; 0 means DefaultMaxBundleSize.
	MaxBundleSize int64
	// MaxListBytes bounds all the bundles and legacy layers one List holds,
	// so that a registry listing many large ones cannot exhaust memory; 0
	// means DefaultMaxListBytes.
	MaxListBytes int64
}

// DefaultMaxListBytes bounds what one List reads: four bundles of the
// largest size, far more than any image carries in practice.
const DefaultMaxListBytes = 4 * DefaultMaxBundleSize

// tagLocks serialises this process's updates of one referrers tag, across
// clients: a registry without If-Match would otherwise let parallel
// attaches overwrite each other (the Tekton controller makes a client per
// run, and runs share images). A tag's lock lives while someone holds or
// waits for it, so a long-running process keeps none for idle tags.
var tagLocks = struct {
	sync.Mutex
	m map[string]*tagLock
}{m: map[string]*tagLock{}}

type tagLock struct {
	sync.Mutex
	users int
	// pending are the entries waiting to be added to the tag (guarded by
	// tagLocks' mutex): the holder adds those of its own HTTP client with
	// its own, so a run's bundles cost one tag update, not one each.
	pending []*tagAdd
}

// tagAdd is one descriptor waiting to be added to a referrers tag.
type tagAdd struct {
	desc v1.Descriptor
	hc   *http.Client
	done chan struct{} // closed when another holder has added it (err says how)
	err  error
}

// lockTag takes the lock of one registry/repository:tag; the returned
// function releases it.
func lockTag(key string) (unlock func()) {
	_, unlock = queueTag(key)
	return unlock
}

// queueTag is lockTag that first queues adds as pending, so that whoever
// holds the lock meanwhile may add them.
func queueTag(key string, adds ...*tagAdd) (*tagLock, func()) {
	tagLocks.Lock()
	l := tagLocks.m[key]
	if l == nil {
		l = &tagLock{}
		tagLocks.m[key] = l
	}
	l.users++
	l.pending = append(l.pending, adds...)
	tagLocks.Unlock()
	l.Lock()
	return l, func() {
		l.Unlock()
		tagLocks.Lock()
		if l.users--; l.users == 0 {
			delete(tagLocks.m, key)
		}
		tagLocks.Unlock()
	}
}

// take removes and returns the pending entries of hc; the caller holds l.
func (l *tagLock) take(hc *http.Client) []*tagAdd {
	tagLocks.Lock()
	defer tagLocks.Unlock()
	var mine []*tagAdd
	kept := l.pending[:0]
	for _, a := range l.pending {
		if a.hc == hc {
			mine = append(mine, a)
		} else {
			kept = append(kept, a)
		}
	}
	clear(l.pending[len(kept):])
	l.pending = kept
	return mine
}

// Client talks to OCI registries.
type Client struct {
	// reuse holds go-containerregistry's Puller and Pusher, and hc the raw
	// requests' clients, so that one client authenticates (and pings) once
	// per repository instead of once per call: an attach is a dozen calls.
	reuseOnce sync.Once
	reuse     []remote.Option
	hc        sync.Map // "push|repo" or "pull|repo" -> *http.Client

	keychain      authn.Keychain
	allowInsecure bool
	rt            http.RoundTripper
	userAgent     string
	maxBundle     int64
	maxList       int64
}

// New returns a Client.
func New(o Options) *Client {
	c := &Client{
		keychain:      o.Keychain,
		allowInsecure: o.AllowInsecureRegistry,
		userAgent:     o.UserAgent,
		maxBundle:     o.MaxBundleSize,
		maxList:       o.MaxListBytes,
	}
	if c.keychain == nil {
		c.keychain = authn.DefaultKeychain
	}
	if c.maxBundle <= 0 {
		c.maxBundle = DefaultMaxBundleSize
	}
	if c.maxList <= 0 {
		c.maxList = DefaultMaxListBytes
	}
	base := o.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	c.rt = &schemePolicy{base: &pingCache{base: base}, allowInsecure: o.AllowInsecureRegistry}
	return c
}

// ParseReference parses an image reference (tag or digest). Loopback
// registries, and any registry when AllowInsecureRegistry is set, are
// addressed over plain HTTP.
func (c *Client) ParseReference(s string) (name.Reference, error) {
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %v; write it as registry/repository:tag or registry/repository@sha256:<hex>", s, err)
	}
	if c.allowInsecure || IsLoopback(ref.Context().RegistryStr()) {
		return name.ParseReference(s, name.Insecure)
	}
	return ref, nil
}

// parseRepository is ParseReference for a repository without tag or digest.
func (c *Client) parseRepository(s string) (name.Repository, error) {
	repo, err := name.NewRepository(s)
	if err != nil {
		return name.Repository{}, fmt.Errorf("repository %q: %v; write it as registry/repository", s, err)
	}
	if c.allowInsecure || IsLoopback(repo.RegistryStr()) {
		return name.NewRepository(s, name.Insecure)
	}
	return repo, nil
}

// IsLoopback reports whether a registry host[:port] is on the loopback
// interface: localhost, 127.0.0.0/8 or ::1.
func IsLoopback(registry string) bool {
	host := registry
	if h, _, err := net.SplitHostPort(registry); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// schemePolicy refuses plain HTTP to registries off loopback unless allowed.
// go-containerregistry on its own falls back to HTTP for RFC 1918 addresses
// and .local names, which would send credentials and unsigned content in the
// clear without the user asking for it.
type schemePolicy struct {
	base          http.RoundTripper
	allowInsecure bool
}

func (p *schemePolicy) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !p.allowInsecure && !IsLoopback(req.URL.Host) {
		return nil, &InsecureRegistryError{Registry: req.URL.Host}
	}
	return p.base.RoundTrip(req)
}

func (c *Client) remoteOptions(ctx context.Context) []remote.Option {
	opts := c.baseOptions()
	c.reuseOnce.Do(func() {
		if puller, err := remote.NewPuller(opts...); err == nil {
			c.reuse = append(c.reuse, remote.Reuse(puller))
		}
		if pusher, err := remote.NewPusher(opts...); err == nil {
			c.reuse = append(c.reuse, remote.Reuse(pusher))
		}
	})
	return append(append(opts, remote.WithContext(ctx)), c.reuse...)
}

func (c *Client) baseOptions() []remote.Option {
	opts := []remote.Option{
		remote.WithAuthFromKeychain(c.keychain),
		remote.WithTransport(c.rt),
	}
	if c.userAgent != "" {
		opts = append(opts, remote.WithUserAgent(c.userAgent))
	}
	return opts
}

// httpClient returns an authenticated client for the raw requests
// go-containerregistry has no call for (conditional manifest PUTs, reading
// the OCI-Subject header, probing the referrers endpoint).
func (c *Client) httpClient(ctx context.Context, repo name.Repository, push bool) (*http.Client, error) {
	key := "pull|" + repo.String()
	if push {
		key = "push|" + repo.String()
	}
	if hc, ok := c.hc.Load(key); ok {
		return hc.(*http.Client), nil
	}
	auth, err := authn.Resolve(ctx, c.keychain, repo)
	if err != nil {
		return nil, fmt.Errorf("registry credentials for %s: %w", repo.RegistryStr(), err)
	}
	scopes := []string{repo.Scope(transport.PullScope)}
	if push {
		scopes = []string{repo.Scope(transport.PushScope)}
	}
	rt := c.rt
	if c.userAgent != "" {
		rt = transport.NewUserAgent(rt, c.userAgent)
	}
	t, err := transport.NewWithContext(ctx, repo.Registry, auth, rt, scopes)
	if err != nil {
		return nil, classify(err, repo.String(), repo, push)
	}
	hc := &http.Client{Transport: t}
	c.hc.Store(key, hc)
	return hc, nil
}
