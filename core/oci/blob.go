package oci

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/singleflight"
)

// uploadBlob puts b in repo and returns its descriptor. A bundle is new
// content, so it is uploaded without first asking whether the registry has
// it, in one POST and one PUT (the distribution spec's monolithic upload:
// every registry implements it) instead of go-containerregistry's HEAD, POST,
// PATCH and PUT. The empty config blob every referrer shares is asked for
// once and then remembered per repository: an attach is mostly round trips.
func (c *Client) uploadBlob(ctx context.Context, repo name.Repository, b []byte, mt types.MediaType) (v1.Descriptor, error) {
	h, size, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return v1.Descriptor{}, err
	}
	desc := v1.Descriptor{MediaType: mt, Digest: h, Size: size}
	shared := mt == EmptyMediaType
	key := repo.String() + "@" + h.String()
	if shared {
		if knownBlob(key) {
			return desc, nil
		}
		// A run's bundles are attached at once; one of them uploads it.
		_, err, _ := blobFlight.Do(key, func() (any, error) { return nil, c.putBlob(ctx, repo, b, h, key, true) })
		return desc, err
	}
	return desc, c.putBlob(ctx, repo, b, h, key, false)
}

var blobFlight singleflight.Group

func (c *Client) putBlob(ctx context.Context, repo name.Repository, b []byte, h v1.Hash, key string, shared bool) error {
	hc, err := c.httpClient(ctx, repo, true)
	if err != nil {
		return err
	}
	ref := repo.Digest(h.String()).String()
	if shared {
		resp, err := c.do(ctx, hc, http.MethodHead, blobURL(repo, h.String()), nil, nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			rememberBlob(key)
			return nil
		}
	}
	start := (&url.URL{Scheme: repo.Scheme(), Host: repo.RegistryStr(), Path: "/v2/" + repo.RepositoryStr() + "/blobs/uploads/"}).String()
	resp, err := c.do(ctx, hc, http.MethodPost, start, nil, nil)
	if err != nil {
		return err
	}
	err = transport.CheckError(resp, http.StatusAccepted) // reads the error body
	resp.Body.Close()
	if err != nil {
		return classify(err, ref, repo, true)
	}
	loc, err := resp.Location()
	if err != nil {
		return classify(&transport.Error{StatusCode: resp.StatusCode, Errors: []transport.Diagnostic{{Code: "BLOB_UPLOAD_INVALID", Message: "upload started without a Location: " + err.Error()}}}, ref, repo, true)
	}
	q := loc.Query()
	q.Set("digest", h.String())
	loc.RawQuery = q.Encode()
	resp, err = c.do(ctx, hc, http.MethodPut, loc.String(), bytes.NewReader(b), map[string]string{
		"Content-Type":   "application/octet-stream",
		"Content-Length": strconv.Itoa(len(b)),
	})
	if err != nil {
		return err
	}
	err = transport.CheckError(resp, http.StatusCreated) // reads the error body
	resp.Body.Close()
	if err != nil {
		return classify(err, ref, repo, true)
	}
	if shared {
		rememberBlob(key)
	}
	return nil
}

func blobURL(repo name.Repository, digest string) string {
	return (&url.URL{Scheme: repo.Scheme(), Host: repo.RegistryStr(), Path: "/v2/" + repo.RepositoryStr() + "/blobs/" + digest}).String()
}

// blobs remembers, for ten minutes, blobs known to be in a repository: only
// the empty config blob every referrer references. A registry's garbage
// collection may remove it once no manifest does; Attach then forgets it
// and uploads it again.
var blobs = newMemo(10*time.Minute, 4096)

func knownBlob(key string) bool  { return blobs.has(key) }
func rememberBlob(key string)    { blobs.add(key) }
func forgetBlob(key string) bool { return blobs.forget(key) }

// memo is a bounded set of keys that expire: what a process learnt about a
// registry and may rely on for a while. Past max keys it starts over.
type memo struct {
	mu  sync.Mutex
	m   map[string]time.Time
	ttl time.Duration
	max int
}

func newMemo(ttl time.Duration, max int) *memo {
	return &memo{m: map[string]time.Time{}, ttl: ttl, max: max}
}

func (m *memo) has(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.m[key]
	return ok && time.Since(t) < m.ttl
}

func (m *memo) add(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.m) >= m.max {
		clear(m.m)
	}
	m.m[key] = time.Now()
}

// forget drops key and says whether it was there.
func (m *memo) forget(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.m[key]
	delete(m.m, key)
	return ok
}
