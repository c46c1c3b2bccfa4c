package tlog

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	f_log "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/signet-dev/signet/core/certext"
	"github.com/signet-dev/signet/server/apierror"
	"github.com/signet-dev/signet/server/ratelimit"
)

// Register adds the Rekor v2 write API and the C2SP tlog-tiles read API.
func (l *Log) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v2/log/entries", l.handleCreateEntry)
	l.registerReads(mux, "")
}

// registerReads serves the checkpoint and tiles, on requests to host only
// when host is set (a later shard's origin).
func (l *Log) registerReads(mux *http.ServeMux, host string) {
	mux.HandleFunc("GET "+host+"/api/v2/checkpoint", l.handleCheckpoint)
	mux.HandleFunc("GET "+host+"/api/v2/tile/entries/{path...}", l.handleEntryBundle)
	mux.HandleFunc("GET "+host+"/api/v2/tile/{level}/{path...}", l.handleTile)
}

// Like rekor-tiles' gateway: reject unknown fields (a typo must not silently
// drop part of an entry) and answer with every field present.
var (
	requestJSON  = protojson.UnmarshalOptions{DiscardUnknown: false}
	responseJSON = protojson.MarshalOptions{EmitUnpopulated: true}
)

func (l *Log) handleCreateEntry(w http.ResponseWriter, r *http.Request) {
	if ok, wait := l.allowAddress(r); !ok {
		l.metrics.rejected.WithLabelValues(reasonRateLimited).Inc()
		w.Header().Set("Retry-After", ratelimit.RetryAfter(wait))
		apierror.Write(w, http.StatusTooManyRequests, "too many log entries from this address; retry after %ss", ratelimit.RetryAfter(wait))
		return
	}
	if !apierror.JSONBody(w, r) {
		l.metrics.rejected.WithLabelValues(reasonBadRequest).Inc()
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, l.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			l.metrics.rejected.WithLabelValues(reasonTooLarge).Inc()
			apierror.Write(w, http.StatusRequestEntityTooLarge, "request body exceeds %d bytes; a log entry carries a digest, a signature and one certificate or key", tooBig.Limit)
			return
		}
		l.metrics.rejected.WithLabelValues(reasonBadRequest).Inc()
		apierror.Write(w, http.StatusBadRequest, "reading request body: %v", err)
		return
	}
	var req rekorv2.CreateEntryRequest
	if err := requestJSON.Unmarshal(body, &req); err != nil {
		l.metrics.rejected.WithLabelValues(reasonBadRequest).Inc()
		apierror.Write(w, http.StatusBadRequest, "request body is not a JSON CreateEntryRequest: %v; send {\"hashedRekordRequestV002\": {...}}", err)
		return
	}
	if l.perIdentity != nil {
		if key := identityKey(&req); key != "" {
			if ok, wait := l.perIdentity.Allow(key, time.Now()); !ok {
				l.metrics.rejected.WithLabelValues(reasonRateLimited).Inc()
				w.Header().Set("Retry-After", ratelimit.RetryAfter(wait))
				apierror.Write(w, http.StatusTooManyRequests, "too many log entries for this signer; retry after %ss", ratelimit.RetryAfter(wait))
				return
			}
		}
	}
	var (
		tle *rekorv1.TransparencyLogEntry
		dup bool
	)
	switch spec := req.GetSpec().(type) {
	case *rekorv2.CreateEntryRequest_HashedRekordRequestV002:
		tle, dup, err = l.appendHashedRekordDup(r.Context(), spec.HashedRekordRequestV002)
	case *rekorv2.CreateEntryRequest_DsseRequestV002:
		var e *DSSEEntry
		tle, e, dup, err = l.AppendDSSE(r.Context(), spec.DsseRequestV002)
		if err == nil && !dup && l.onDSSE != nil {
			// The envelope is kept (the attestation store); the entry is
			// logged whatever becomes of that, as the answer says.
			l.onDSSE(r.Context(), e, tle)
		}
	default:
		l.metrics.rejected.WithLabelValues(reasonUnsupported).Inc()
		apierror.Write(w, http.StatusBadRequest, "request has no entry; send hashedRekordRequestV002 or dsseRequestV002")
		return
	}
	if err != nil {
		writeAppendError(w, err)
		return
	}
	if dup {
		// As rekor-tiles answers: 409 with the existing index in X-Log-Index.
		w.Header().Set("X-Log-Index", strconv.FormatInt(tle.GetLogIndex(), 10))
		apierror.Write(w, http.StatusConflict, "an equivalent entry already exists in the transparency log with index %d", tle.GetLogIndex())
		return
	}
	out, err := responseJSON.Marshal(tle)
	if err != nil {
		l.logger.ErrorContext(r.Context(), "marshalling transparency log entry", "error", err)
		apierror.Write(w, http.StatusInternalServerError, "marshalling the log entry failed; the entry is in the log at index %d", tle.LogIndex)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(out)
}

func writeAppendError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrInvalidEntry):
		apierror.Write(w, http.StatusBadRequest, "%v", err)
	case errors.Is(err, ErrOverloaded):
		w.Header().Set("Retry-After", "1")
		apierror.Write(w, http.StatusServiceUnavailable, "%v; retry shortly", err)
	case errors.Is(err, ErrStorageFull):
		// Say what is wrong without the server's paths or raw OS errors.
		w.Header().Set("Retry-After", "30")
		apierror.Write(w, http.StatusInsufficientStorage, "the transparency log's storage is full; the entry was not logged; retry later (the operator must free space)")
	case errors.Is(err, ErrStorageUnavailable):
		// Not the client's fault, and not lasting: say so without the
		// server's addresses or the driver's text.
		w.Header().Set("Retry-After", "5")
		apierror.Write(w, http.StatusServiceUnavailable, "the transparency log's database or object store is not answering; the entry may not be logged; retry shortly")
	case errors.Is(err, ErrClosed):
		apierror.Write(w, http.StatusServiceUnavailable, "the transparency log is shutting down; retry against a running server")
	case errors.Is(err, ErrNotWitnessed):
		// The witnesses, not the client, are at fault. The entry stays in
		// the log: a retry soon is answered 409 with its index (X-Log-Index).
		w.Header().Set("Retry-After", "5")
		apierror.Write(w, http.StatusServiceUnavailable, "%v: the log's witnesses are unreachable or refuse its checkpoints; the entry is logged and will be covered by the next cosigned checkpoint", err)
	case errors.Is(err, context.DeadlineExceeded):
		apierror.Write(w, http.StatusGatewayTimeout, "timed out waiting for the entry to be integrated; it may still appear in the log")
	case errors.Is(err, context.Canceled):
		// The client is gone; nobody reads this. 499 as grpc-gateway does.
		apierror.Write(w, 499, "request canceled")
	default:
		apierror.Write(w, http.StatusInternalServerError, "appending to the transparency log failed; retry, and report it if it persists")
	}
}

// Cache lifetimes (C2SP tlog-tiles): full tiles and bundles never change;
// partial ones may be deleted once full, the checkpoint moves on.
const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cachePartial    = "public, max-age=10"
	cacheCheckpoint = "no-cache"
)

func (l *Log) handleCheckpoint(w http.ResponseWriter, r *http.Request) {
	cp, err := l.reader.ReadCheckpoint(r.Context())
	size, valid := l.validCheckpoint(cp)
	if err == nil && !valid {
		// The file was emptied or overwritten under the running server, and
		// tessera does not republish over a checkpoint it cannot parse.
		// Serve the newest tree the key signed and remove the file so that
		// tessera publishes afresh.
		l.damagedCheckpoint.Do(func() {
			l.logger.ErrorContext(r.Context(), "the published checkpoint does not verify with the log key; serving the last signed checkpoint and republishing", "path", l.checkpointDesc)
		})
		if l.objects == nil {
			_ = os.Remove(filepath.Join(l.dir, layout.CheckpointPath))
		}
		if cp = l.signer.latest(); cp == nil {
			err = os.ErrNotExist
		}
	}
	// Every acknowledged entry is covered by a signed head the guard
	// recorded. When tessera cannot publish (a full disk), serve that head,
	// so the public checkpoint never lags what clients were told.
	if headSize, _, ok := l.signer.head(); ok && (err != nil || valid && headSize > size) {
		if latest := l.signer.latest(); latest != nil {
			cp, err = latest, nil
		}
	}
	// With witnesses, the newest cosigned checkpoint: it covers every
	// acknowledged entry, and monitors holding the log to a witness policy
	// must find the cosignatures (tessera's published file has none).
	if l.gw != nil {
		if th := l.gw.cosigned(); th != nil {
			cp, err = th.checkpoint, nil
		}
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			apierror.Write(w, http.StatusNotFound, "no checkpoint has been published yet; retry in a moment")
			return
		}
		l.logger.ErrorContext(r.Context(), "reading checkpoint", "error", err)
		apierror.Write(w, http.StatusInternalServerError, "reading the checkpoint failed")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", cacheCheckpoint)
	w.Header().Set("Content-Length", strconv.Itoa(len(cp)))
	_, _ = w.Write(cp)
}

// validCheckpoint reports whether cp is a checkpoint of this log's origin
// that the log key verifies. The last good one is remembered, so the common
// case costs a comparison.
func (l *Log) validCheckpoint(cp []byte) (uint64, bool) {
	if cp == nil {
		return 0, false
	}
	if last := l.lastGoodCheckpoint.Load(); last != nil && bytes.Equal(last.raw, cp) {
		return last.size, true
	}
	n, err := note.Open(cp, note.VerifierList(l.verifier))
	if err != nil {
		return 0, false
	}
	var c f_log.Checkpoint
	if _, err := c.Unmarshal([]byte(n.Text)); err != nil || c.Origin != l.origin {
		return 0, false
	}
	l.lastGoodCheckpoint.Store(&goodCheckpoint{raw: cp, size: c.Size})
	return c.Size, true
}

type goodCheckpoint struct {
	raw  []byte
	size uint64
}

func (l *Log) handleTile(w http.ResponseWriter, r *http.Request) {
	level, index, width, err := layout.ParseTileLevelIndexPartial(r.PathValue("level"), r.PathValue("path"))
	if err != nil {
		apierror.Write(w, http.StatusBadRequest, "tile path %s: %v; use tile/<L>/<N>[.p/<W>] as in C2SP tlog-tiles", r.URL.Path, err)
		return
	}
	l.serveResource(w, r, layout.TilePath(level, index, width), width, false)
}

func (l *Log) handleEntryBundle(w http.ResponseWriter, r *http.Request) {
	index, width, err := layout.ParseTileIndexPartial(r.PathValue("path"))
	if err != nil {
		apierror.Write(w, http.StatusBadRequest, "entry bundle path %s: %v; use tile/entries/<N>[.p/<W>] as in C2SP tlog-tiles", r.URL.Path, err)
		return
	}
	l.serveResource(w, r, layout.EntriesPath(index, width), width, true)
}

// readResource reads a tile or bundle at rel in the tlog-tiles layout.
func (l *Log) readResource(ctx context.Context, rel string) ([]byte, error) {
	if l.objects == nil {
		return os.ReadFile(filepath.Join(l.dir, filepath.FromSlash(rel)))
	}
	data, err := readObject(ctx, l.objects, l.bucket, l.prefix+rel, maxResourceBytes)
	if err == nil && data == nil {
		err = os.ErrNotExist
	}
	return data, err
}

// maxResourceBytes bounds a tile or bundle read from the object store: a
// full entry bundle of the largest entries.
const maxResourceBytes = layout.EntryBundleWidth * (maxEntryBytes + 2)

// serveResource serves a tile or bundle from tessera's layout. rel is
// rebuilt from the parsed coordinates, so only canonical spellings are served
// and nothing outside the layout can be named.
func (l *Log) serveResource(w http.ResponseWriter, r *http.Request, rel string, width uint8, compressible bool) {
	if !strings.HasSuffix(r.URL.Path, "/"+rel) {
		apierror.Write(w, http.StatusBadRequest, "%s is not the canonical path of that resource; use /api/v2/%s", r.URL.Path, rel)
		return
	}
	data, err := l.readResource(r.Context(), rel)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			apierror.Write(w, http.StatusNotFound, "%s does not exist; fetch only resources a checkpoint requires (a partial one may have been replaced by the full one)", rel)
			return
		}
		l.logger.ErrorContext(r.Context(), "reading log resource", "path", rel, "error", err)
		apierror.Write(w, http.StatusInternalServerError, "reading %s failed", rel)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	if width == 0 {
		h.Set("Cache-Control", cacheImmutable)
	} else {
		h.Set("Cache-Control", cachePartial)
	}
	if compressible {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			h.Set("Content-Encoding", "gzip")
			gz := gzip.NewWriter(w)
			_, _ = gz.Write(data)
			_ = gz.Close()
			return
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(data)))
	_, _ = w.Write(data)
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") && strings.ReplaceAll(strings.TrimSpace(params), " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// identityKey is who signs an entry, for per-identity limits: a
// certificate's identity (SAN and OIDC issuer; keyless certificates are
// new every time, their identity is not) or a public key's digest. An
// entry whose verifier does not parse is left to the entry checks.
func identityKey(req *rekorv2.CreateEntryRequest) string {
	var v *rekorv2.Verifier
	switch spec := req.GetSpec().(type) {
	case *rekorv2.CreateEntryRequest_HashedRekordRequestV002:
		v = spec.HashedRekordRequestV002.GetSignature().GetVerifier()
	case *rekorv2.CreateEntryRequest_DsseRequestV002:
		if vs := spec.DsseRequestV002.GetVerifiers(); len(vs) > 0 {
			v = vs[0]
		}
	}
	if c := v.GetX509Certificate().GetRawBytes(); c != nil {
		cert, err := x509.ParseCertificate(c)
		if err != nil {
			return ""
		}
		san, issuer := certext.Identity(cert)
		return "cert " + issuer + " " + san
	}
	if k := v.GetPublicKey().GetRawBytes(); k != nil {
		sum := sha256.Sum256(k)
		return "key " + hex.EncodeToString(sum[:])
	}
	return ""
}

// allowAddress applies the per-address limit (no work when there is none).
func (l *Log) allowAddress(r *http.Request) (bool, time.Duration) {
	if l.perIP == nil {
		return true, 0
	}
	return l.perIP.Allow(l.clientIP.Of(r), time.Now())
}
