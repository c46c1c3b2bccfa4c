// Command signet-tekton is signet's Tekton Chains-style controller: it signs
// what completed TaskRuns and PipelineRuns built and attests their SLSA v1
// provenance, keyless, on a signet server or any Sigstore deployment given
// its trust files. It is its own binary so that the signet CLI links no
// Kubernetes module.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"
	tektonclient "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/sign/transport"
	"github.com/signet-dev/signet/core/token"
	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/core/verify"
	"github.com/signet-dev/signet/tekton/controller"
)

const usage = `signet-tekton signs what Tekton pipelines build, keyless.

It watches v1 TaskRuns and PipelineRuns. When one completes it reads what it
built from Tekton Chains' type hints (IMAGE_URL/IMAGE_DIGEST, IMAGES,
*IMAGE_URL/*IMAGE_DIGEST, *ARTIFACT_OUTPUTS with isBuildArtifact) and
status.artifacts build outputs, signs each image (and each platform
of an index), attests SLSA v1 provenance in Chains' slsa/v2alpha4 shape,
attaches the bundles to the images as OCI referrers (cosign v3's layout),
keeps them in the signet server's attestation store, and marks the run with
signet.dev/ annotations.

Usage:
  signet-tekton --server https://signet.example.com [flags]
  signet-tekton --signing-config signing_config.json --trusted-root trusted_root.json [flags]

Settings that may change while it runs are in its ConfigMap (--config); see
docs/tekton.md for every key.

Flags:
`

const exitHelp = `
Exit status: 0 after a clean shutdown (SIGTERM), 1 on a runtime failure
(including losing the leader-election Lease: the Deployment restarts it as a
follower), 2 on bad flags or a refused ConfigMap at start.
`

type flags struct {
	kubeconfig, server, signingConfig, trustedRoot    string
	namespace, config, configNamespace, leaseName, id string
	identityToken, metricsAddr, logFormat, logLevel   string
	workers                                           int
	qps                                               float32
	burst                                             int
	insecure, profiling                               bool
	retryBase, retryMax, leaseDuration                time.Duration
}

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	var f flags
	fs := pflag.NewFlagSet("signet-tekton", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
		fmt.Fprint(stderr, exitHelp)
	}
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: the in-cluster service account)")
	fs.StringVar(&f.server, "server", "", "signet server URL: its CA, log, TSA and attestation store")
	fs.StringVar(&f.signingConfig, "signing-config", "", "signing_config.json naming the CA, logs and TSAs (instead of --server); needs --trusted-root")
	fs.StringVar(&f.trustedRoot, "trusted-root", "", "trusted_root.json: every bundle is verified against it before it is stored")
	fs.StringVar(&f.namespace, "namespace", "", "watch runs in this namespace only (default: all namespaces)")
	fs.StringVar(&f.config, "config", "signet-tekton-config", "name of the ConfigMap holding the settings (in --config-namespace)")
	fs.StringVar(&f.configNamespace, "config-namespace", envOr("POD_NAMESPACE", "signet-tekton"), "namespace of the ConfigMap and of the leader-election Lease")
	fs.StringVar(&f.leaseName, "lease-name", "signet-tekton", "leader-election Lease: only the replica holding it signs")
	fs.DurationVar(&f.leaseDuration, "lease-duration", 15*time.Second, "how long a replica that stopped renewing keeps the Lease")
	fs.StringVar(&f.id, "id", envOr("POD_NAME", hostname()), "this replica's name in the Lease")
	fs.StringVar(&f.identityToken, "identity-token", token.DefaultKubernetesTokenPath, "the controller's projected service-account token (audience sigstore), read afresh for each run")
	fs.IntVar(&f.workers, "workers", controller.DefaultWorkers, "runs signed at once")
	fs.StringVar(&f.metricsAddr, "metrics-addr", ":9090", "address serving /metrics and /healthz")
	fs.BoolVar(&f.profiling, "profiling", false, "also serve Go's pprof profiles under /debug/pprof/ on --metrics-addr (as Chains' profiling.enable)")
	fs.BoolVar(&f.insecure, "allow-insecure-registry", false, "allow plain HTTP to registries off loopback (loopback registries always may)")
	fs.Float32Var(&f.qps, "kube-api-qps", 200, "Kubernetes API requests per second (client-side limit)")
	fs.IntVar(&f.burst, "kube-api-burst", 400, "Kubernetes API request burst")
	fs.DurationVar(&f.retryBase, "retry-initial-delay", time.Second, "delay before a failed run is tried again; it doubles with each attempt")
	fs.DurationVar(&f.retryMax, "retry-max-delay", 5*time.Minute, "longest delay between attempts")
	fs.StringVar(&f.logFormat, "log-format", "json", "json or text")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug (each signing step and its time), info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "signet-tekton takes no arguments (got %q); see --help\n", fs.Args())
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		fmt.Fprintf(stderr, "--log-level %q: takes debug, info, warn or error\n", f.logLevel)
		return 2
	}
	hopts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler
	switch f.logFormat {
	case "json":
		handler = slog.NewJSONHandler(stderr, hopts)
	case "text":
		handler = slog.NewTextHandler(stderr, hopts)
	default:
		fmt.Fprintf(stderr, "--log-format %q: takes json or text\n", f.logFormat)
		return 2
	}
	log := slog.New(handler)
	if code := f.check(stderr); code != 0 {
		return code
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cfg, err := restConfig(f.kubeconfig)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	cfg.QPS, cfg.Burst, cfg.UserAgent = f.qps, f.burst, "signet-tekton"
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	tekton, err := tektonclient.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	services, err := f.services(f.workers)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	var verifier *verify.Verifier
	if f.trustedRoot != "" {
		root, err := trust.ReadRootFile(f.trustedRoot)
		if err != nil {
			fmt.Fprintf(stderr, "--trusted-root: %v\n", err)
			return 2
		}
		verifier = verify.New(root)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	c, err := controller.New(ctx, controller.Options{
		Kube: kube, Tekton: tekton,
		Namespace: f.namespace, ConfigNamespace: f.configNamespace, ConfigName: f.config,
		Services: services, IdentityTokenFile: f.identityToken,
		AllowInsecureRegistry: f.insecure, Workers: f.workers,
		RetryBase: f.retryBase, RetryMax: f.retryMax,
		LeaseName: f.leaseName, Identity: f.id, LeaseDuration: f.leaseDuration,
		Logger: log, Registerer: reg,
		Verifier: verifier,
	})
	if err != nil {
		var ce *controller.ConfigError
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "%v\nFix the ConfigMap (kubectl edit configmap -n %s %s) or point --config at another one.\n", err, ce.Namespace, ce.Name)
			return 2
		}
		fmt.Fprintln(stderr, err)
		return 1
	}
	srv, err := serveMetrics(f.metricsAddr, reg, f.profiling, log)
	if err != nil {
		fmt.Fprintf(stderr, "--metrics-addr %s: %v\n", f.metricsAddr, err)
		return 2
	}
	defer srv.Close()
	log.Info("signet-tekton starting", "id", f.id, "server", f.server, "signing_config", f.signingConfig, "metrics", srv.Addr)
	if err := c.Run(ctx); err != nil {
		log.Error("stopped", "error", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

func (f *flags) check(stderr io.Writer) int {
	switch {
	case f.server == "" && f.signingConfig == "":
		fmt.Fprintln(stderr, "give --server URL (a signet server) or --signing-config FILE with --trusted-root FILE (any Sigstore deployment)")
		return 2
	case f.server != "" && f.signingConfig != "":
		fmt.Fprintln(stderr, "--server and --signing-config both name the signing services; give one")
		return 2
	case f.signingConfig != "" && f.trustedRoot == "":
		fmt.Fprintln(stderr, "--signing-config needs --trusted-root: the bundles made with those services are verified against it")
		return 2
	case f.workers < 1:
		fmt.Fprintln(stderr, "--workers must be at least 1")
		return 2
	case f.retryBase <= 0 || f.retryMax < f.retryBase:
		fmt.Fprintln(stderr, "--retry-initial-delay must be positive and at most --retry-max-delay")
		return 2
	case f.leaseDuration < 3*time.Second:
		fmt.Fprintln(stderr, "--lease-duration must be at least 3s")
		return 2
	}
	return 0
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %v", kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("not running in a cluster (%v); give --kubeconfig FILE", err)
	}
	return cfg, nil
}

// servicesTTL is how long one reading of the signing config is used: the
// services it lists have validity windows, and a server may rotate them.
const servicesTTL = 10 * time.Minute

// services returns the signing services, read once per servicesTTL; a
// failure (the server is down) is not kept, so the next attempt asks again.
func (f *flags) services(workers int) (func(context.Context) (*sign.Services, error), error) {
	// Every worker talks to the CA, TSA and log at once (two bundles per
	// run): keep a connection each, instead of opening new ones under load.
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 2 * workers
	hc := transport.NewClient(transport.Options{Base: base, UserAgent: "signet-tekton/" + transport.Version})
	var sc *trust.SigningConfig
	if f.signingConfig != "" {
		var err error
		if sc, err = trust.ReadSigningConfigFile(f.signingConfig); err != nil {
			return nil, fmt.Errorf("--signing-config: %w", err)
		}
	}
	var (
		mu      sync.Mutex
		cached  *sign.Services
		fetched time.Time
	)
	return func(ctx context.Context) (*sign.Services, error) {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if cached != nil && now.Sub(fetched) < servicesTTL {
			return cached, nil
		}
		var s *sign.Services
		var err error
		if sc != nil {
			s, err = sign.FromSigningConfig(sc, hc, now)
		} else {
			s, err = sign.FromServer(ctx, f.server, hc, now)
		}
		if err != nil {
			return nil, err
		}
		cached, fetched = s, now
		return s, nil
	}, nil
}

func serveMetrics(addr string, reg *prometheus.Registry, profiling bool, log *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	write := 30 * time.Second
	if profiling {
		// Off by default: profiles show what the controller is doing to
		// anyone who can reach the port.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		write = 2 * time.Minute // a CPU profile takes ?seconds= to answer
	}
	srv := &http.Server{Addr: ln.Addr().String(), Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: write}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "error", err)
		}
	}()
	return srv, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "signet-tekton"
	}
	return h
}
