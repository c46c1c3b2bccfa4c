package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Path says how referrers are stored and found in a registry.
type Path string

const (
	// PathReferrersAPI: the registry implements GET /v2/<name>/referrers/<digest>
	// and indexes referrers itself.
	PathReferrersAPI Path = "referrers API"
	// PathReferrersTag: the registry has no referrers API; referrers are
	// listed in an image index under the tag sha256-<hex> (OCI 1.1 referrers
	// tag schema), maintained by clients.
	PathReferrersTag Path = "referrers tag"
)

// AttachResult says what Attach wrote.
type AttachResult struct {
	// Referrer is the pushed referrer manifest (repository@digest).
	Referrer name.Digest
	// Descriptor is the referrer's descriptor as listed for the subject.
	Descriptor v1.Descriptor
	// Path is how the registry keeps referrers; with PathReferrersTag,
	// FallbackTag is the tag that was updated.
	Path        Path
	FallbackTag string
	// Deferred: the referrer waits in the attachment's TagBatch, and is
	// listed in FallbackTag only once the batch is flushed.
	Deferred bool
}

// referrerManifest is an OCI image manifest with the OCI 1.1 artifactType
// field, which go-containerregistry's v1.Manifest lacks.
type referrerManifest struct {
	SchemaVersion int64             `json:"schemaVersion"`
	MediaType     types.MediaType   `json:"mediaType"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        v1.Descriptor     `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Subject       *v1.Descriptor    `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// Attach attaches a Sigstore bundle to the subject as an OCI 1.1 referrer in
// cosign v3's layout. It first confirms the subject's reference still names
// the signed digest (ImageChangedError otherwise), so nothing is written for
// an image that moved.
func (c *Client) Attach(ctx context.Context, s *Subject, a Attachment) (*AttachResult, error) {
	if int64(len(a.Bundle)) > c.maxBundle {
		return nil, &TooLargeError{What: "bundle", Size: int64(len(a.Bundle)), Limit: c.maxBundle}
	}
	in, err := inspect(a, s.Descriptor.Digest.String())
	if err != nil {
		return nil, err
	}
	if err := c.checkUnchanged(ctx, s); err != nil {
		return nil, err
	}
	created := a.Created
	if created.IsZero() {
		created = time.Now()
	}
	repo := s.Digest.Context()
	cfg, err := c.uploadBlob(ctx, repo, emptyJSON, EmptyMediaType)
	if err != nil {
		return nil, err
	}
	layer, err := c.uploadBlob(ctx, repo, a.Bundle, BundleMediaType)
	if err != nil {
		return nil, err
	}
	// cosign names the layer after its digest and repeats the artifactType
	// on the config descriptor; kept so tools that key on either still work.
	layer.Annotations = map[string]string{annotationTitle: fmt.Sprintf("%s-%s.sigstore.json", layer.Digest.Algorithm, layer.Digest.Hex)}
	cfg.ArtifactType = BundleMediaType
	m := referrerManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  BundleMediaType,
		Config:        cfg,
		Layers:        []v1.Descriptor{layer},
		Subject:       &v1.Descriptor{MediaType: s.Descriptor.MediaType, Digest: s.Descriptor.Digest, Size: s.Descriptor.Size},
		Annotations:   map[string]string{},
	}
	for k, v := range a.Annotations {
		m.Annotations[k] = v
	}
	m.Annotations[AnnotationCreated] = created.UTC().Format(time.RFC3339)
	m.Annotations[AnnotationContent] = in.content
	m.Annotations[AnnotationPredicateType] = in.predicateType
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	res, err := c.putReferrer(ctx, s.Digest, raw, m.ArtifactType, m.Annotations, a.Batch)
	if err != nil && forgetBlob(repo.String()+"@"+cfg.Digest.String()) {
		// The config blob was remembered, not checked; if the registry
		// collected it since, upload it again and retry once.
		if _, uerr := c.uploadBlob(ctx, repo, emptyJSON, EmptyMediaType); uerr != nil {
			return nil, err
		}
		return c.putReferrer(ctx, s.Digest, raw, m.ArtifactType, m.Annotations, a.Batch)
	}
	return res, err
}

// putReferrer pushes a referrer manifest by digest and makes it
// discoverable: through the registry's referrers API if it has one, else by
// adding it to the referrers tag with artifactType and annotations intact.
// go-containerregistry's remote.Put would update the tag itself but drops
// the annotations (as cosign's does, sigstore/cosign#4641) and does not use
// conditional requests, hence the raw requests here.
func (c *Client) putReferrer(ctx context.Context, subject name.Digest, raw []byte, artifactType string, annotations map[string]string, batch *TagBatch) (*AttachResult, error) {
	repo := subject.Context()
	h, size, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	desc := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: h, Size: size, ArtifactType: artifactType, Annotations: annotations}
	hc, err := c.httpClient(ctx, repo, true)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, hc, http.MethodPut, manifestURL(repo, h.String()), bytes.NewReader(raw), map[string]string{"Content-Type": string(types.OCIManifestSchema1)})
	if err != nil {
		return nil, err
	}
	err = transport.CheckError(resp, http.StatusCreated, http.StatusOK, http.StatusAccepted) // reads the error body
	resp.Body.Close()
	if err != nil {
		return nil, classify(err, repo.Digest(h.String()).String(), repo, true)
	}
	res := &AttachResult{Referrer: repo.Digest(h.String()), Descriptor: desc}
	// A registry that processed the subject says so (distribution-spec 1.1
	// "Pushing Manifests with Subject"); some that index referrers do not
	// say it, so ask the endpoint before falling back.
	if resp.Header.Get("OCI-Subject") == subject.DigestStr() {
		res.Path = PathReferrersAPI
		return res, nil
	}
	if !noReferrersAPI(repo.RegistryStr()) {
		api, _, err := c.referrersAPI(ctx, hc, subject)
		if err != nil {
			return nil, err
		}
		if api {
			res.Path = PathReferrersAPI
			return res, nil
		}
		rememberNoReferrersAPI(repo.RegistryStr())
	}
	res.Path, res.FallbackTag = PathReferrersTag, fallbackTag(subject)
	if batch != nil {
		batch.add(subject, hc, desc)
		res.Deferred = true
		return res, nil
	}
	if err := c.addToReferrersTag(ctx, hc, subject, desc); err != nil {
		return nil, &ReferrersFallbackError{Repository: repo.String(), Tag: res.FallbackTag, Referrer: h.String(), Err: err}
	}
	return res, nil
}

// noAPI remembers, for a minute, registries whose referrers endpoint said
// they have none, so that a process attaching many bundles asks once rather
// than before each one. A registry that does have the API says so on every
// push (OCI-Subject), so only the absence is remembered.
var noAPI = newMemo(time.Minute, 1024)

func noReferrersAPI(registry string) bool    { return noAPI.has(registry) }
func rememberNoReferrersAPI(registry string) { noAPI.add(registry) }

// fallbackTag is the referrers tag schema's tag: <alg>-<ref>, truncated to
// the 128 characters a tag may have.
func fallbackTag(d name.Digest) string {
	t := strings.Replace(d.DigestStr(), ":", "-", 1)
	if len(t) > 128 {
		t = t[:128]
	}
	return t
}

func manifestURL(repo name.Repository, ref string) string {
	u := url.URL{Scheme: repo.Scheme(), Host: repo.RegistryStr(), Path: fmt.Sprintf("/v2/%s/manifests/%s", repo.RepositoryStr(), ref)}
	return u.String()
}

func (c *Client) do(ctx context.Context, hc *http.Client, method, u string, body io.Reader, headers map[string]string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ins *InsecureRegistryError
		if errors.As(err, &ins) {
			return nil, ins
		}
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	return resp, nil
}

// referrersAPI asks the registry's referrers endpoint for the subject. It
// returns api=false when the registry has no such endpoint (404, or a
// non-index answer), which is when the referrers tag must be used.
func (c *Client) referrersAPI(ctx context.Context, hc *http.Client, subject name.Digest) (api bool, referrers []v1.Descriptor, err error) {
	repo := subject.Context()
	next := (&url.URL{Scheme: repo.Scheme(), Host: repo.RegistryStr(), Path: fmt.Sprintf("/v2/%s/referrers/%s", repo.RepositoryStr(), subject.DigestStr())}).String()
	// The endpoint may paginate with Link headers; bound the pages so a
	// misbehaving registry cannot loop us.
	for page := 0; next != "" && page < 100; page++ {
		resp, err := c.do(ctx, hc, http.MethodGet, next, nil, map[string]string{"Accept": string(types.OCIImageIndex)})
		if err != nil {
			return false, nil, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		if err != nil {
			return false, nil, err
		}
		ct := resp.Header.Get("Content-Type")
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, string(types.OCIImageIndex)) {
			if page == 0 && (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusNotAcceptable || resp.StatusCode == http.StatusMethodNotAllowed) {
				return false, nil, nil
			}
			resp.Body = io.NopCloser(bytes.NewReader(body))
			return false, nil, classify(transport.CheckError(resp, http.StatusOK), subject.String(), repo, false)
		}
		var im v1.IndexManifest
		if err := json.Unmarshal(body, &im); err != nil {
			return false, nil, fmt.Errorf("referrers of %s: registry answered an invalid index: %v", subject, err)
		}
		referrers = append(referrers, im.Manifests...)
		next = nextLink(resp, next)
	}
	return true, referrers, nil
}

// nextLink follows a Link: <url>; rel="next" header, resolved against the request URL.
func nextLink(resp *http.Response, current string) string {
	link := resp.Header.Get("Link")
	if link == "" || !strings.Contains(link, `rel="next"`) {
		return ""
	}
	start, end := strings.Index(link, "<"), strings.Index(link, ">")
	if start < 0 || end <= start {
		return ""
	}
	base, err := url.Parse(current)
	if err != nil {
		return ""
	}
	ref, err := url.Parse(link[start+1 : end])
	if err != nil {
		return ""
	}
	return base.ResolveReference(ref).String()
}

// readReferrersTag reads the referrers tag index; a missing tag is an empty
// list. The ETag, when the registry gives one, makes the update conditional.
func (c *Client) readReferrersTag(ctx context.Context, hc *http.Client, subject name.Digest) (*v1.IndexManifest, string, error) {
	repo := subject.Context()
	tag := fallbackTag(subject)
	resp, err := c.do(ctx, hc, http.MethodGet, manifestURL(repo, tag), nil, map[string]string{"Accept": string(types.OCIImageIndex)})
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}, "", nil
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return nil, "", classify(err, repo.Tag(tag).String(), repo, false)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, "", err
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(body, &im); err != nil {
		return nil, "", fmt.Errorf("referrers tag %s:%s does not hold an image index: %v; remove or rename that tag", repo, tag, err)
	}
	if im.MediaType != types.OCIImageIndex || im.SchemaVersion != 2 {
		return nil, "", fmt.Errorf("referrers tag %s:%s holds %s, not an OCI image index; it is not a referrers list — remove or rename that tag", repo, tag, im.MediaType)
	}
	return &im, resp.Header.Get("ETag"), nil
}

// addToReferrersTag adds desc to the referrers tag by read-modify-write. The
// write is conditional on the ETag read (registries that honour If-Match
// reject a concurrent update with 412). Registries that do not (distribution
// among them) can lose an update to a concurrent writer, so the tag is read
// back after a short random pause and the update redone if the entry is
// missing; a concurrent writer's read of a half-written tag is retried too.
// Writers in this process take turns (tagLocks), so only other processes'
// writers can race it; against those, the OCI fallback has no lock to take.
// Entries queued by the same HTTP client while one update is under way are
// added by it (in its write, or in one more after its read-back), so the
// bundles of one run share the reads and the pause.
func (c *Client) addToReferrersTag(ctx context.Context, hc *http.Client, subject name.Digest, descs ...v1.Descriptor) error {
	repo := subject.Context()
	mine := make([]*tagAdd, len(descs))
	for i, d := range descs {
		mine[i] = &tagAdd{desc: d, hc: hc, done: make(chan struct{})}
	}
	l, unlock := queueTag(repo.String()+":"+fallbackTag(subject), mine...)
	defer unlock()
	var again []*tagAdd
	for _, me := range mine {
		select {
		case <-me.done:
			// Added by the holder before us, unless its own context ended.
			if me.err == nil {
				continue
			}
			if ctx.Err() != nil || !isContextError(me.err) {
				return me.err
			}
			again = append(again, &tagAdd{desc: me.desc, hc: hc, done: make(chan struct{})})
		default:
			// Still pending: take returns it.
		}
	}
	batch := append(l.take(hc), again...)
	if len(batch) == 0 {
		return nil
	}
	return c.updateReferrersTag(ctx, hc, subject, l, batch)
}

func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// updateReferrersTag adds batch to the tag and tells each entry the outcome.
func (c *Client) updateReferrersTag(ctx context.Context, hc *http.Client, subject name.Digest, l *tagLock, batch []*tagAdd) (err error) {
	defer func() {
		for _, a := range batch {
			a.err = err
			close(a.done)
		}
	}()
	repo := subject.Context()
	tag := fallbackTag(subject)
	const attempts, merges = 10, 8
	var lastErr error
	merged := 0
	for attempt := 0; attempt < attempts; attempt++ {
		if attempt > 0 {
			pause(ctx, attempt)
		}
		im, etag, err := c.readReferrersTag(ctx, hc, subject)
		if err != nil {
			if retryable(err) {
				lastErr = err
				continue
			}
			return err
		}
		if allPresent(im, batch) {
			// Listed before we wrote anything, or read back after our
			// write (and a pause in which a concurrent writer's update
			// would have landed). Entries queued meanwhile go in next.
			if merged == merges {
				return nil // whatever is still queued, its owner adds
			}
			more := l.take(hc)
			if len(more) == 0 {
				return nil
			}
			batch = append(batch, more...)
			merged++
			attempt = 0
		}
		ours := map[v1.Hash]bool{}
		for _, a := range batch {
			ours[a.desc.Digest] = true
		}
		kept := im.Manifests[:0]
		for _, d := range im.Manifests {
			if !ours[d.Digest] { // an entry without our annotations is replaced
				kept = append(kept, d)
			}
		}
		im.Manifests = kept
		for _, a := range batch {
			im.Manifests = append(im.Manifests, a.desc)
		}
		raw, err := json.Marshal(im)
		if err != nil {
			return err
		}
		headers := map[string]string{"Content-Type": string(types.OCIImageIndex)}
		if etag != "" {
			headers["If-Match"] = etag
		}
		resp, err := c.do(ctx, hc, http.MethodPut, manifestURL(repo, tag), bytes.NewReader(raw), headers)
		if err != nil {
			return err
		}
		err = transport.CheckError(resp, http.StatusCreated, http.StatusOK, http.StatusAccepted) // reads the error body
		resp.Body.Close()
		if resp.StatusCode == http.StatusPreconditionFailed {
			lastErr = fmt.Errorf("concurrent update (412)")
			continue
		}
		if err != nil {
			err = classify(err, repo.Tag(tag).String(), repo, true)
			if retryable(err) {
				lastErr = err
				continue
			}
			return err
		}
		lastErr = nil
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("the tag kept changing")
	}
	return fmt.Errorf("updating the referrers tag under concurrent writers failed after %d attempts: %w", attempts, lastErr)
}

func allPresent(im *v1.IndexManifest, batch []*tagAdd) bool {
	for _, a := range batch {
		if !present(im, a.desc) {
			return false
		}
	}
	return true
}

// retryable: registry-side failures (5xx) seen while another writer replaces
// the tag; not auth, not-found or client errors.
func retryable(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode >= 500
}

func pause(ctx context.Context, attempt int) {
	d := time.Duration(20+rand.IntN(40*attempt)) * time.Millisecond
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func present(im *v1.IndexManifest, desc v1.Descriptor) bool {
	for _, d := range im.Manifests {
		if d.Digest == desc.Digest && d.ArtifactType == desc.ArtifactType && equalMaps(d.Annotations, desc.Annotations) {
			return true
		}
	}
	return false
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TagBatch defers the referrers-tag updates of several attachments to one
// Flush: on a registry without the referrers API the bundles a run attaches
// to one image (its signature, provenance, SBOMs) cost one tag update
// together, not one each. Registries with the referrers API list a referrer
// when it is pushed; a batch changes nothing there. Safe for concurrent use.
type TagBatch struct {
	c       *Client
	mu      sync.Mutex
	pending []*batchedTag
}

type batchedTag struct {
	subject name.Digest
	hc      *http.Client
	descs   []v1.Descriptor
}

// NewTagBatch starts a batch for attachments made with c.
func (c *Client) NewTagBatch() *TagBatch { return &TagBatch{c: c} }

func (b *TagBatch) add(subject name.Digest, hc *http.Client, desc v1.Descriptor) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range b.pending {
		if t.subject == subject && t.hc == hc {
			t.descs = append(t.descs, desc)
			return
		}
	}
	b.pending = append(b.pending, &batchedTag{subject: subject, hc: hc, descs: []v1.Descriptor{desc}})
}

// Flush writes every deferred referrer into its subject's referrers tag, one
// update per tag, the tags at once; a later Flush writes what was added
// since. On failure the error names each tag and referrer left unlisted.
func (b *TagBatch) Flush(ctx context.Context) error {
	b.mu.Lock()
	todo := b.pending
	b.pending = nil
	b.mu.Unlock()
	errs := make([]error, len(todo))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, t := range todo {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := b.c.addToReferrersTag(ctx, t.hc, t.subject, t.descs...); err != nil {
				refs := make([]string, len(t.descs))
				for j, d := range t.descs {
					refs[j] = d.Digest.String()
				}
				errs[i] = &ReferrersFallbackError{Repository: t.subject.Context().String(), Tag: fallbackTag(t.subject), Referrer: strings.Join(refs, ", "), Err: err}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// referrers lists the descriptors referring to subject and says which path
// answered: the referrers API, else the referrers tag.
func (c *Client) referrers(ctx context.Context, subject name.Digest) (Path, []v1.Descriptor, error) {
	hc, err := c.httpClient(ctx, subject.Context(), false)
	if err != nil {
		return "", nil, err
	}
	api, descs, err := c.referrersAPI(ctx, hc, subject)
	if err != nil {
		return "", nil, err
	}
	if api {
		return PathReferrersAPI, descs, nil
	}
	im, _, err := c.readReferrersTag(ctx, hc, subject)
	if err != nil {
		return "", nil, err
	}
	return PathReferrersTag, im.Manifests, nil
}
