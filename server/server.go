// Package server is signet's bundled server: a private Sigstore in one
// binary. One listener carries a certificate authority (Fulcio v2 API), a
// transparency log (Rekor v2 API on tessera, plus an attestation store), an
// RFC 3161 timestamp authority and the trust files, all over one data
// directory (package storage).
package server

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	rekorv1 "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"golang.org/x/net/netutil"
	"k8s.io/klog/v2"

	"github.com/signet-dev/signet/core/keyref"
	"github.com/signet-dev/signet/server/apierror"
	"github.com/signet-dev/signet/server/attest"
	"github.com/signet-dev/signet/server/ca"
	"github.com/signet-dev/signet/server/ctlog"
	"github.com/signet-dev/signet/server/devoidc"
	"github.com/signet-dev/signet/server/identity"
	"github.com/signet-dev/signet/server/ratelimit"
	"github.com/signet-dev/signet/server/ratelog"
	"github.com/signet-dev/signet/server/storage"
	"github.com/signet-dev/signet/server/tlog"
	"github.com/signet-dev/signet/server/trust"
	"github.com/signet-dev/signet/server/tsa"
	"github.com/signet-dev/signet/server/tuf"
)

// Server is a configured, listening server.
type Server struct {
	cfg      Config
	logger   *slog.Logger
	url      string
	listener net.Listener
	http     *http.Server
	dir      *storage.Dir
	logs     *tlog.Shards // one per log key (keys.logRotations)
	ct       *ctlog.Log   // nil when ct.disabled
	tuf      *tuf.Repo
	attest   *attest.Store
	dev      *devoidc.Issuer
	trust    *trust.Files
	admin    *admin // nil without adminAddr
	adminURL string
	draining atomic.Bool // shutting down: /readyz answers 503
	// backingUp is set while GET /backup writes one.
	backingUp atomic.Bool
}

// New opens the data directory (generating keys on first start), binds the
// listener and builds every service. Nothing is served until Serve.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Server, err error) {
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	logger = slog.New(requestIDs{logger.Handler()})
	// tessera logs through klog; send it to the same structured log.
	klog.SetSlogLogger(logger.With("service", "log", "component", "tessera"))
	s := &Server{cfg: cfg, logger: logger}
	defer func() {
		if err != nil {
			s.closeAll(context.Background())
		}
	}()

	if s.dir, err = storage.Open(cfg.Data); err != nil {
		return nil, err
	}
	var dist *tlog.Distributed
	if cfg.Storage.Distributed() {
		if err := checkSharedKeys(s.dir, cfg); err != nil {
			return nil, err
		}
		if dist, err = distributedLog(ctx, cfg.Storage, logger); err != nil {
			return nil, err
		}
	}
	keys, err := s.dir.Keys(cfg.Keys, cfg.Operator)
	if err != nil {
		return nil, err
	}
	if err := checkPeriods("ca", keys.CAChain[len(keys.CAChain)-1].NotBefore, keys.CARotations, keys.CARetired); err != nil {
		return nil, err
	}
	if err := checkPeriods("tsa", keys.TSAChain[0].NotBefore, keys.TSARotations, keys.TSARetired); err != nil {
		return nil, err
	}
	if len(keys.OnlineRoots) > 0 {
		logger.Warn("DEVELOPMENT SETUP: root CA private keys are in the data directory; the server never uses them, and whoever can read them can issue trusted certificates: move them offline (docs/operations.md, \"Take the root keys offline\")", "files", keys.OnlineRoots)
	}

	if s.listener, err = net.Listen("tcp", cfg.Addr); err != nil {
		return nil, fmt.Errorf("listen on %s: %w; choose another address with --addr", cfg.Addr, err)
	}
	s.listener = netutil.LimitListener(s.listener, cfg.HTTP.MaxConnections)
	scheme := "http"
	if cfg.TLS.Cert != "" {
		scheme = "https"
	}
	s.url = strings.TrimRight(cfg.URL, "/")
	if s.url == "" {
		s.url = scheme + "://" + s.listener.Addr().String()
	}
	u, _ := url.Parse(s.url)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	certs := map[string]*x509.Certificate{
		"ca_issuing": keys.CAChain[0], "ca_root": keys.CAChain[len(keys.CAChain)-1],
		"tsa_signing": keys.TSAChain[0], "tsa_root": keys.TSAChain[len(keys.TSAChain)-1],
	}
	// A rotation's certificate must outlive its start by the time it is
	// in use: alert on it as on the current one.
	for i, r := range keys.CARotations {
		certs[fmt.Sprintf("ca_issuing_rotation_%d", i+1)] = r.Chain[0]
	}
	for i, r := range keys.TSARotations {
		certs[fmt.Sprintf("tsa_signing_rotation_%d", i+1)] = r.Chain[0]
	}
	if err := registerBuildAndExpiry(reg, certs); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()

	issuers := append([]identity.IssuerConfig(nil), cfg.OIDCIssuers...)
	if cfg.DevOIDC {
		s.dev, err = devoidc.New(devoidc.Options{IssuerURL: s.url + "/dev/oidc", DataDir: s.dir.Root(), Logger: logger.With("service", "dev-oidc"), Metrics: reg})
		if err != nil {
			return nil, err
		}
		s.dev.Register(mux)
		// The development issuer mints SPIFFE IDs in the example.org trust domain.
		issuers = append(issuers, identity.IssuerConfig{URL: s.dev.IssuerURL(), Type: identity.TypeAuto, KeySet: s.dev.KeySet(), SPIFFETrustDomain: "example.org"})
	}
	verifier, err := identity.NewVerifier(ctx, issuers, identity.WithLogger(logger.With("service", "identity")),
		identity.WithTokenLimits(cfg.CA.MaxTokenLifetime, 0))
	if err != nil {
		return nil, fmt.Errorf("OIDC issuers: %w", err)
	}

	// The CT log comes before the CA, which logs every certificate in it.
	var sctSource ca.SCTSource
	if !cfg.CT.Disabled {
		if err := s.dir.CTLogKey(keys, cfg.Keys, s.dir.CTLogDir()); err != nil {
			return nil, err
		}
		ctDir := s.dir.CTLogDir()
		var ctDist *tlog.Distributed
		if dist != nil {
			if ctDist, err = distributedCT(cfg.Storage, dist); err != nil {
				return nil, err
			}
			ctDir = ""
			// A key file's time differs between the copies each server
			// has; the trust files every server serves must not.
			keys.CTLogCreated = keys.CAChain[len(keys.CAChain)-1].NotBefore
		}
		s.ct, err = ctlog.Open(ctx, ctlog.Options{
			Dir:         ctDir,
			Distributed: ctDist,
			Signer:      keys.CTLog,
			// static-ct-api: the submission prefix without scheme; a
			// port cannot be in it (tesseract parses it as a URL), so
			// the host name the log's origin uses.
			Origin:             ctOrigin(u, cfg.Log.Origin),
			CAChain:            keys.CAChain,
			MoreCAChains:       rotatedChains(keys),
			BatchMaxAge:        cfg.CT.BatchMaxAge,
			CheckpointInterval: cfg.CT.CheckpointInterval,
			Logger:             logger.With("service", "ctlog"),
			Metrics:            reg,
		})
		if err != nil {
			return nil, err
		}
		s.ct.Register(mux)
		sctSource = s.ct
	}

	proxies, err := ratelimit.ParsePrefixes("limits.trustedProxies", cfg.Limits.TrustedProxies)
	if err != nil {
		return nil, err
	}
	clientIP := ratelimit.ClientIP{Trusted: proxies}
	authority, err := ca.New(ca.Options{
		Signer:          keys.CA,
		Chain:           keys.CAChain,
		Next:            caRotations(keys),
		CT:              sctSource,
		Identity:        verifier,
		Validity:        cfg.CA.Validity,
		MaxRequestBytes: cfg.CA.MaxRequestBytes,
		BaseURL:         s.url,
		PerIP:           ratelimit.New(cfg.Limits.Certificates.PerIP, 0),
		PerIdentity:     ratelimit.New(cfg.Limits.Certificates.PerIdentity, 0),
		ClientIP:        clientIP,
		Logger:          logger.With("service", "ca"),
		Metrics:         reg,
	})
	if err != nil {
		return nil, err
	}
	authority.Register(mux)

	// Sigstore verifiers name the checkpoint key after the host name of
	// the log's URL in trusted_root.json, without the port (as rekor-tiles
	// does): the origin is that host name, and a configured origin is the
	// host the trust files name the log under.
	origin, logURL := logOrigin(u, cfg.Log.Origin)
	var witnesses *tlog.WitnessPolicy
	if cfg.Log.WitnessPolicy != "" {
		text, err := os.ReadFile(cfg.Log.WitnessPolicy)
		if err != nil {
			return nil, fmt.Errorf("log.witnessPolicy: %w", err)
		}
		if witnesses, err = tlog.ParseWitnessPolicy(text); err != nil {
			return nil, fmt.Errorf("log.witnessPolicy %s: %w", cfg.Log.WitnessPolicy, err)
		}
	}
	logOpts := tlog.Options{
		Dir:                s.dir.LogDir(),
		Signer:             keys.Log,
		Origin:             origin,
		CheckpointInterval: cfg.Log.CheckpointInterval,
		BatchMaxAge:        cfg.Log.BatchMaxAge,
		BatchMaxSize:       cfg.Log.BatchMaxSize,
		MaxRequestBytes:    cfg.Log.MaxRequestBytes,
		Witnesses:          witnesses,
		WitnessTimeout:     cfg.Log.WitnessTimeout,
		PerIP:              ratelimit.New(cfg.Limits.LogEntries.PerIP, 0),
		PerIdentity:        ratelimit.New(cfg.Limits.LogEntries.PerIdentity, 0),
		ClientIP:           clientIP,
		HeadFile:           s.dir.SignedHeadPath(),
		KeyInUse:           !keys.Generated,
		Distributed:        dist,
		Logger:             logger.With("service", "log"),
		Metrics:            prometheus.WrapRegistererWith(prometheus.Labels{"origin": origin}, reg),
	}
	if dist != nil {
		// The log's record lives in the shared database; the keys were
		// copied or are the operator's (checkSharedKeys), so their age
		// says nothing about this log.
		logOpts.Dir, logOpts.HeadFile, logOpts.KeyInUse = "", "", false
	}
	if s.logs, err = s.openShards(ctx, logOpts, keys.LogShards, reg); err != nil {
		return nil, err
	}
	s.logs.Register(mux)

	// The attestation store timestamps what it stores with this TSA, in
	// process, so it can serve whole bundles.
	tsaOpts := tsa.Options{Signer: keys.TSA, Chain: keys.TSAChain, Next: tsaRotations(keys), MaxRequestBytes: cfg.TSA.MaxRequestBytes, Logger: logger.With("service", "tsa"), Metrics: reg}
	if cfg.TSA.LogTimestamps == nil || *cfg.TSA.LogTimestamps {
		if tsaOpts.Record, err = timestampRecorder(s.logs); err != nil {
			return nil, err
		}
	}
	stamper, err := tsa.New(tsaOpts)
	if err != nil {
		return nil, err
	}
	stamper.Register(mux)

	// Only signers certified by this CA may index attestations under an identity.
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(keys.CAChain[len(keys.CAChain)-1])
	for _, c := range keys.CAChain[:len(keys.CAChain)-1] {
		inters.AddCert(c)
	}
	attestPath, attestDSN := s.dir.AttestationsPath(), ""
	if dist != nil {
		// Beside the log's tables: one database holds a deployment.
		attestPath, attestDSN = "", dist.DSN
	}
	s.attest, err = attest.New(attest.Options{
		Path:             attestPath,
		DSN:              attestDSN,
		Roots:            roots,
		Intermediates:    inters,
		Log:              s.logs,
		Timestamp:        stamper.Timestamp,
		MaxEnvelopeBytes: cfg.Attestations.MaxEnvelopeBytes,
		MaxInflightBytes: cfg.Attestations.MaxInflightBytes,
		Logger:           logger.With("service", "attestations"),
		Metrics:          reg,
	})
	if err != nil {
		return nil, err
	}
	s.attest.Register(mux)
	// Attestations logged as dsse entries (sigstore-js, actions/attest) are
	// kept and found by digest like those submitted to the store.
	s.logs.OnDSSE(func(ctx context.Context, e *tlog.DSSEEntry, tle *rekorv1.TransparencyLogEntry) {
		s.attest.KeepLogged(context.WithoutCancel(ctx), e.Envelope, e.Verifiers[0], tle)
	})

	var ctLog *trust.CTLog
	if s.ct != nil {
		ctLog = &trust.CTLog{URL: s.url + s.ct.PathPrefix(), PublicKey: s.ct.SPKI(), LogID: s.ct.LogID(), ValidFrom: keys.CTLogCreated}
	}
	caEnd, moreCAs := periods(keys.CARotations, keys.CARetired)
	tsaEnd, moreTSAs := periods(keys.TSARotations, keys.TSARetired)
	s.trust, err = trust.Build(trust.Inputs{
		BaseURL:      s.url,
		CTLog:        ctLog,
		LogURL:       logURL,
		LogPublicKey: s.logs.All()[0].Log.PublicKey(),
		LogID:        s.logs.All()[0].Log.LogID(),
		LogValidFrom: keys.LogCreated,
		LogEnd:       s.logs.End(0),
		MoreLogs:     s.moreTrustLogs(u),
		Operator:     cfg.Operator,
		CAChain:      keys.CAChain,
		CAEnd:        caEnd,
		MoreCAs:      moreCAs,
		TSAChain:     keys.TSAChain,
		TSAEnd:       tsaEnd,
		MoreTSAs:     moreTSAs,
	})
	if err != nil {
		return nil, err
	}
	s.trust.Register(mux)

	// The same two files through TUF, for clients that bootstrap with a
	// pinned root (cosign initialize --mirror, sigstore-go's TUF client).
	tufOpts := tuf.Options{Dir: s.dir.TUFDir(), Logger: logger.With("service", "tuf"),
		Targets: map[string][]byte{tuf.TrustedRootTarget: s.trust.TrustedRoot, tuf.SigningConfigTarget: s.trust.SigningConfig}}
	if dist != nil {
		// One repository for every server: each signing its own versions
		// would show a client moving between them a rollback.
		tufOpts.DSN = dist.DSN
	}
	if cfg.TUF.Dir != "" {
		// A key ceremony's repository: only the online key is here.
		tufOpts.Dir, tufOpts.Published = cfg.TUF.Dir, true
		if tufOpts.Online, err = tuf.LoadSigner(cfg.TUF.OnlineKey, nil); err != nil {
			return nil, fmt.Errorf("tuf.onlineKey: %w", err)
		}
	} else if cfg.TUF.Key != "" {
		if tufOpts.Online, err = tuf.LoadSigner(cfg.TUF.Key, nil); err != nil {
			return nil, fmt.Errorf("tuf.key: %w", err)
		}
	} else if tufOpts.Key, err = s.dir.TUFKey(); err != nil {
		return nil, err
	}
	if s.tuf, err = tuf.Open(tufOpts); err != nil {
		return nil, err
	}
	s.tuf.Register(mux)
	if cfg.TUF.Dir == "" {
		logger.Warn("the TUF repository's root key is online ("+tufKeyWhere(cfg.TUF.Key)+"): a development setup; pin "+s.url+"/tuf/root.json only where that is acceptable, or run a key ceremony ('signet tuf --help') and set tuf.dir", "service", "tuf")
	}

	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	if cfg.AdminAddr == "" {
		mux.Handle("GET /metrics", metrics)
	} else {
		// Metrics and profiling only on the admin listener: they describe
		// the deployment, which is no business of the public.
		if s.admin, err = newAdmin(cfg.AdminAddr, metrics, s, logger); err != nil {
			return nil, err
		}
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// The catch-all also catches a known path with the wrong method,
		// which ServeMux would answer 405 without it.
		if allow := allowedMethods(mux, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			apierror.Write(w, http.StatusMethodNotAllowed, "%s does not take %s; use %s", r.URL.Path, r.Method, strings.Join(allow, " or "))
			return
		}
		apierror.Write(w, http.StatusNotFound, "no such endpoint: %s %s; see %s for the trust files and the API list in the README", r.Method, r.URL.Path, s.url+trust.TrustedRootPath)
	})

	cs := newConns(reg, cfg.HTTP.MaxConnections)
	s.http = &http.Server{
		Handler:           instrument(mux, reg, logger, cs),
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		ConnState:         cs.state,
		ConnContext:       cs.context,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if cfg.TLS.Cert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
		s.http.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return s, nil
}

// ctOrigin is the CT log's checkpoint origin: the transparency log's host
// name and the CT log's path.
func ctOrigin(u *url.URL, logOrigin string) string {
	return cmp.Or(logOrigin, u.Hostname()) + ctlog.DefaultPathPrefix
}

// URL is the server's public base URL.
// allowedMethods lists the methods mux routes r's path to a handler for,
// other than the catch-all.
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	return allow
}

func (s *Server) URL() string { return s.url }

// DataDir is the absolute data directory.
func (s *Server) DataDir() string { return s.dir.Root() }

// DevOIDC is the development issuer, or nil when it is off.
func (s *Server) DevOIDC() *devoidc.Issuer { return s.dev }

// Serve answers requests until ctx is cancelled, then shuts down gracefully:
// in-flight requests finish (their log entries are acknowledged or not at
// all), then the log and the attestation database are closed.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		var err error
		if s.http.TLSConfig != nil {
			err = s.http.ServeTLS(s.listener, "", "")
		} else {
			err = s.http.Serve(s.listener)
		}
		errc <- err
	}()
	if s.admin != nil {
		go s.admin.serve()
		defer s.admin.close()
	}
	s.logger.Info("signet server listening", "url", s.url, "data", s.dir.Root())
	select {
	case err := <-errc:
		s.closeAll(context.Background())
		return err
	case <-ctx.Done():
	}
	// Unready first, so load balancers stop sending new requests while the
	// ones in flight finish.
	s.draining.Store(true)
	s.logger.Info("shutting down", "timeout", s.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.http.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("shutdown: requests still in flight after shutdownTimeout (%s) were cut off", s.cfg.ShutdownTimeout)
	}
	if cerr := s.closeAll(sctx); err == nil {
		err = cerr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (s *Server) closeAll(ctx context.Context) error {
	var errs []error
	if s.attest != nil {
		errs = append(errs, s.attest.Close())
	}
	if s.logs != nil {
		errs = append(errs, s.logs.Close(ctx))
	}
	if s.ct != nil {
		errs = append(errs, s.ct.Close(ctx))
	}
	if s.tuf != nil {
		s.tuf.Close()
	}
	if s.listener != nil && s.http == nil {
		errs = append(errs, s.listener.Close())
	}
	if s.admin != nil && s.http == nil {
		errs = append(errs, s.admin.ln.Close())
	}
	if s.dir != nil {
		errs = append(errs, s.dir.Close())
	}
	return errors.Join(errs...)
}

// conns counts the client connections open (signet_http_connections_open)
// beside the limit (signet_http_max_connections): at the limit, new
// clients wait in the listen backlog. Connections closed before a whole
// request reached a handler (cut at http.readHeaderTimeout, or left by the
// client) are counted too: no request metric sees them.
type conns struct {
	open, maxConns prometheus.Gauge
	noRequest      prometheus.Counter
	served         sync.Map // net.Conn -> struct{}: a request reached a handler
}

type connKey struct{}

func newConns(reg *prometheus.Registry, limit int) *conns {
	c := &conns{
		open:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "signet_http_connections_open", Help: "Client connections open on the public listener."}),
		maxConns:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "signet_http_max_connections", Help: "The most client connections served at once (http.maxConnections)."}),
		noRequest: prometheus.NewCounter(prometheus.CounterOpts{Name: "signet_http_connections_without_request_total", Help: "Client connections closed before a whole request reached a handler: cut at http.readHeaderTimeout, or left by the client."}),
	}
	c.maxConns.Set(float64(limit))
	reg.MustRegister(c.open, c.maxConns, c.noRequest)
	return c
}

// context is http.Server.ConnContext: it lets the handler mark its
// connection as served.
func (c *conns) context(ctx context.Context, conn net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, conn)
}

// request marks the connection of r as having carried a request.
func (c *conns) request(r *http.Request) {
	if conn, ok := r.Context().Value(connKey{}).(net.Conn); ok {
		c.served.LoadOrStore(conn, struct{}{})
	}
}

// state is http.Server.ConnState.
func (c *conns) state(conn net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		c.open.Inc()
	case http.StateClosed, http.StateHijacked:
		c.open.Dec()
		if _, ok := c.served.LoadAndDelete(conn); !ok {
			c.noRequest.Inc()
		}
	}
}

// instrument records per-route request counts and latencies. Routes are
// labelled by their mux pattern, never the raw path, to bound cardinality.
func instrument(next http.Handler, reg prometheus.Registerer, logger *slog.Logger, cs *conns) http.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "signet_http_requests_total",
		Help: "HTTP requests by route and status code.",
	}, []string{"route", "code"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "signet_http_request_duration_seconds",
		Help:    "HTTP request latency by route.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route"})
	reg.MustRegister(requests, latency)
	// Server errors come in floods when a disk fills or a dependency goes:
	// the metrics count each one, the log a line a second.
	var failures ratelog.Limiter
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		cs.request(r)
		id := requestID(r)
		w.Header().Set("X-Request-Id", id)
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" || route == "/" {
			route = "unmatched"
		}
		elapsed := time.Since(start)
		requests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
		latency.WithLabelValues(route).Observe(elapsed.Seconds())
		args := []any{"method", r.Method, "path", r.URL.Path, "route", route, "status", rec.status, "duration_ms", float64(elapsed.Microseconds()) / 1000, "remote", r.RemoteAddr, "request_id", id}
		level := slog.LevelDebug
		switch {
		case rec.status >= 500:
			failures.Error(logger, "request", args...)
			return
		case rec.status >= 400:
			level = slog.LevelInfo
		}
		logger.Log(r.Context(), level, "request", args...)
	})
}

// requestIDKey carries a request's ID in its context, for requestIDs.
type requestIDKey struct{}

// requestIDs adds the request_id of the request a record was logged for
// (by a service's *Context call) to every record: one request's lines are
// found by its ID, whichever service wrote them.
type requestIDs struct{ slog.Handler }

func (h requestIDs) Handle(ctx context.Context, r slog.Record) error {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDs) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDs{h.Handler.WithAttrs(attrs)}
}

func (h requestIDs) WithGroup(name string) slog.Handler { return requestIDs{h.Handler.WithGroup(name)} }

// requestID names a request in the server's log and its answer
// (X-Request-Id): the caller's own ID when it sends a short, plain one (a
// load balancer's), else a new random one.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); len(id) > 0 && len(id) <= 64 && strings.IndexFunc(id, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.')
	}) < 0 {
		return id
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// tufKeyWhere names where the zero-config TUF repository's key is, for the
// development-setup warning.
func tufKeyWhere(ref string) string {
	if ref == "" {
		return "keys/tuf.key in the data directory"
	}
	return "tuf.key, " + keyref.Redact(ref)
}

// caRotations are the CA's configured rotations.
func caRotations(k *storage.Keys) []ca.Issuer {
	var out []ca.Issuer
	for _, r := range k.CARotations {
		out = append(out, ca.Issuer{From: r.From, Signer: r.Signer, Chain: r.Chain})
	}
	return out
}

// tsaRotations are the TSA's configured rotations.
func tsaRotations(k *storage.Keys) []tsa.Issuer {
	var out []tsa.Issuer
	for _, r := range k.TSARotations {
		out = append(out, tsa.Issuer{From: r.From, Signer: r.Signer, Chain: r.Chain})
	}
	return out
}

// rotatedChains are the chains the CA issues under besides keys.caChain.
func rotatedChains(k *storage.Keys) [][]*x509.Certificate {
	var out [][]*x509.Certificate
	for _, r := range k.CARotations {
		out = append(out, r.Chain)
	}
	return out
}

// checkPeriods refuses rotations and retired chains whose periods in
// trusted_root.json would be empty or reversed; start is when the
// configured key's period starts.
func checkPeriods(what string, start time.Time, rot []storage.Rotated, ret []storage.Retired) error {
	if len(rot) > 0 && !rot[0].From.After(start) {
		return fmt.Errorf("keys.%sRotations[0].from %s is not after the current %s key's period starts (%s): a rotation replaces a key that was in use", what, rot[0].From.UTC().Format(time.RFC3339), what, start.UTC().Format(time.RFC3339))
	}
	for i, r := range ret {
		if s := r.Chain[len(r.Chain)-1].NotBefore; !r.Until.After(s) {
			return fmt.Errorf("keys.%sRetired[%d].until %s is not after its root's notBefore %s", what, i, r.Until.UTC().Format(time.RFC3339), s.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// periods are the end of the configured key's period in trusted_root.json
// (the first rotation's start) and the other chains with theirs: each
// rotation until the next, each retired chain until its until.
func periods(rot []storage.Rotated, ret []storage.Retired) (end time.Time, more []trust.CA) {
	if len(rot) > 0 {
		end = rot[0].From
	}
	for i, r := range rot {
		c := trust.CA{Chain: r.Chain, Start: r.From}
		if i+1 < len(rot) {
			c.End = rot[i+1].From
		}
		more = append(more, c)
	}
	for _, r := range ret {
		more = append(more, trust.CA{Chain: r.Chain, Start: r.Chain[len(r.Chain)-1].NotBefore, End: r.Until})
	}
	return end, more
}
