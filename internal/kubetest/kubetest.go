// Package kubetest runs a real Kubernetes control plane on loopback for
// tests: etcd and kube-apiserver, built once from the Go module proxy into
// the tools cache (internal/toolcache), with client-certificate and
// service-account-token authentication, RBAC authorization, and the
// apiserver as its own OIDC issuer. There is no kubelet and no
// controller-manager: nothing runs pods, namespaces are never finalized
// once deleted, and no "default" ServiceAccount appears in a namespace, so
// tests create the objects they need and write status themselves, as the
// controller they stand in for would.
//
// It talks plain REST (net/http, JSON) so that no client library is needed
// to use it.
package kubetest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/toolcache"
)

// Versions of the parts a Cluster runs.
const (
	KubernetesVersion     = toolcache.KubernetesVersion
	EtcdVersion           = toolcache.EtcdVersion
	TektonPipelineVersion = toolcache.TektonPipelineVersion
)

// Audience is the extra audience the apiserver accepts tokens for, the one a
// Sigstore CA expects.
const Audience = "sigstore"

// Cluster is a running control plane on 127.0.0.1.
type Cluster struct {
	// URL is the apiserver, https://127.0.0.1:PORT.
	URL string
	// Issuer is the service-account token issuer: URL itself, so its OIDC
	// discovery document is at Issuer+"/.well-known/openid-configuration".
	// Anonymous clients may read it and the key set.
	Issuer string
	// CAPEM is the CA of the apiserver's serving certificate (and of the
	// admin's client certificate); CAFile holds the same.
	CAPEM  []byte
	CAFile string
	// AdminCertPEM and AdminKeyPEM are a client certificate in group
	// system:masters, which every authorizer lets do anything.
	AdminCertPEM, AdminKeyPEM []byte
	// EtcdURL is etcd's client URL (plain http on loopback).
	EtcdURL string

	admin *http.Client
	jwks  []byte
	procs []*process // etcd, kube-apiserver

	mu        sync.Mutex
	resources map[string][]apiResource // "group/version" -> discovery
}

type config struct {
	apiserverFlags []string
}

// Option configures Start.
type Option func(*config)

// WithAPIServerFlags adds kube-apiserver flags (e.g. --feature-gates=...)
// after the harness's: a single-valued flag given again overrides it, a list
// flag (--disable-admission-plugins) adds to it.
func WithAPIServerFlags(flags ...string) Option {
	return func(c *config) { c.apiserverFlags = append(c.apiserverFlags, flags...) }
}

// Start runs etcd and kube-apiserver for the test's lifetime and returns
// once the apiserver is ready (RBAC's bootstrap policy written). Their
// logs are in the test's temporary directory; the ends of both are printed
// if the test fails.
func Start(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	etcdBin, apiserverBin := binaries(t)
	dir := t.TempDir()
	p, err := newPKI(filepath.Join(dir, "pki"))
	if err != nil {
		t.Fatalf("kubetest: generating keys: %v", err)
	}
	var logs []string
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range logs {
				t.Logf("kubetest: end of %s:\n%s", l, logTail(l, 6<<10))
			}
		}
	})

	begin := time.Now()
	etcd, etcdURL, err := startEtcd(etcdBin, dir)
	if etcd != nil {
		logs = append(logs, etcd.log)
	}
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	t.Cleanup(etcd.stop)
	etcdReady := time.Since(begin)

	c := &Cluster{
		CAPEM:        p.caPEM,
		CAFile:       p.caFile,
		AdminCertPEM: p.adminCertPEM,
		AdminKeyPEM:  p.adminKeyPEM,
		EtcdURL:      etcdURL,
		resources:    map[string][]apiResource{},
	}
	c.admin, err = c.httpClient(true)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	t.Cleanup(c.admin.CloseIdleConnections)
	apiserver, err := c.startAPIServer(apiserverBin, dir, p, cfg.apiserverFlags)
	if apiserver != nil {
		logs = append(logs, apiserver.log)
	}
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	t.Cleanup(apiserver.stop)
	c.procs = []*process{etcd, apiserver}
	t.Logf("kubetest: etcd %s ready in %v, kube-apiserver %s at %s ready in %v",
		EtcdVersion, etcdReady.Round(time.Millisecond), KubernetesVersion, c.URL, (time.Since(begin) - etcdReady).Round(time.Millisecond))

	// Real clusters that publish their issuer (GKE, EKS) let anyone read
	// discovery; without this binding only service accounts may.
	c.Apply(t, []byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kubetest:service-account-issuer-discovery:unauthenticated
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:service-account-issuer-discovery
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: system:unauthenticated
`))
	status, body := c.Do(t, c.admin, http.MethodGet, "/openid/v1/jwks", nil)
	if status != http.StatusOK {
		t.Fatalf("kubetest: GET /openid/v1/jwks: %d %s", status, body)
	}
	c.jwks = body
	return c
}

// binaries builds (first use) or finds etcd and kube-apiserver. A build
// that fails fails the test, except where no go command exists at all
// outside CI.
func binaries(t testing.TB) (etcd, apiserver string) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil && os.Getenv("CI") == "" {
		t.Skipf("kubetest: etcd and kube-apiserver are built with the go command, which is not on PATH: %v", err)
	}
	var wg sync.WaitGroup
	var etcdErr, apiserverErr error
	// Concurrently: one's downloads overlap the other's compiling.
	wg.Add(2)
	go func() { defer wg.Done(); etcd, etcdErr = toolcache.Etcd.Binary() }()
	go func() { defer wg.Done(); apiserver, apiserverErr = toolcache.KubeAPIServer.Binary() }()
	wg.Wait()
	if err := errors.Join(etcdErr, apiserverErr); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	return etcd, apiserver
}

// JWKS returns the issuer's JSON Web Key Set, as served at
// /openid/v1/jwks, for verifiers configured with a key set file.
func (c *Cluster) JWKS() []byte { return bytes.Clone(c.jwks) }

// Admin returns an HTTP client authenticated as the admin.
func (c *Cluster) Admin() *http.Client { return c.admin }

// TokenClient returns an HTTP client that trusts the apiserver and sends
// token as its bearer token.
func (c *Cluster) TokenClient(token string) *http.Client {
	hc, _ := c.httpClient(false) // only the admin's key pair can fail to load
	hc.Transport = bearer{token: token, next: hc.Transport}
	return hc
}

// AnonymousClient returns an HTTP client that trusts the apiserver and sends
// no credentials.
func (c *Cluster) AnonymousClient() *http.Client {
	hc, _ := c.httpClient(false)
	return hc
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

func (c *Cluster) httpClient(admin bool) (*http.Client, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CAPEM)
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if admin {
		pair, err := tls.X509KeyPair(c.AdminCertPEM, c.AdminKeyPEM)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true},
		Timeout:   30 * time.Second,
	}, nil
}

// process is a started etcd or kube-apiserver in its own process group.
type process struct {
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	once   sync.Once
}

func startProcess(bin, logPath string, args ...string) (*process, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer log.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own group, so stop reaches anything it starts; Pdeathsig, so a test
	// binary killed by its timeout leaves neither process behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(log, "kubetest: %s %s\n", bin, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("running %s: %w", bin, err)
	}
	p := &process{cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// stop asks the group to terminate, as a supervisor would, and kills it if
// it has not within 10 s.
func (p *process) stop() {
	p.once.Do(func() {
		pgid := -p.cmd.Process.Pid
		_ = syscall.Kill(pgid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
		}
		// Also after a clean exit: a child left in the group goes too.
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-p.exited
	})
}

func (p *process) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func startEtcd(bin, dir string) (*process, string, error) {
	var last error
	var p *process
	// A port found free can be taken before etcd binds it: retry afresh.
	for attempt := 0; attempt < 3; attempt++ {
		ports, err := freePorts(2)
		if err != nil {
			return p, "", err
		}
		client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
		data := filepath.Join(dir, fmt.Sprintf("etcd-data-%d", attempt))
		p, err = startProcess(bin, filepath.Join(dir, "etcd.log"),
			"--name=kubetest",
			"--data-dir="+data,
			"--listen-client-urls="+client, "--advertise-client-urls="+client,
			"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
			"--initial-cluster=kubetest="+peer,
			// Test data need not survive a crash; fsync is most of etcd's latency.
			"--unsafe-no-fsync",
			"--log-level=warn",
		)
		if err != nil {
			return p, "", err
		}
		hc := &http.Client{Timeout: 2 * time.Second}
		if last = waitReady(p, "etcd", 30*time.Second, func() bool {
			resp, err := hc.Get(client + "/health")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			var h struct{ Health string }
			return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&h) == nil && h.Health == "true"
		}); last == nil {
			return p, client, nil
		}
		p.stop()
	}
	return p, "", last
}

func (c *Cluster) startAPIServer(bin, dir string, p *pki, extra []string) (*process, error) {
	var last error
	var proc *process
	for attempt := 0; attempt < 3; attempt++ {
		ports, err := freePorts(1)
		if err != nil {
			return proc, err
		}
		url := fmt.Sprintf("https://127.0.0.1:%d", ports[0])
		args := []string{
			"--etcd-servers=" + c.EtcdURL,
			"--bind-address=127.0.0.1",
			fmt.Sprintf("--secure-port=%d", ports[0]),
			"--advertise-address=127.0.0.1",
			// No kubelet or pods behind the "kubernetes" Service: keep its
			// Endpoints unmanaged rather than pointing at loopback.
			"--endpoint-reconciler-type=none",
			// Service ClusterIPs are only allocated, never routed here; a
			// loopback range keeps any stray dial on this machine.
			"--service-cluster-ip-range=127.0.100.0/24",
			"--cert-dir=" + filepath.Join(dir, "apiserver-certs"),
			"--tls-cert-file=" + p.servingCert,
			"--tls-private-key-file=" + p.servingKey,
			"--client-ca-file=" + p.caFile,
			"--authorization-mode=RBAC",
			"--service-account-issuer=" + url,
			"--service-account-key-file=" + p.saPublicKey,
			"--service-account-signing-key-file=" + p.saKey,
			// The issuer is the default audience (what a token requested
			// without audiences gets); "sigstore" is what a Sigstore CA
			// asks for, and the apiserver accepts both.
			"--api-audiences=" + url + "," + Audience,
			// ServiceAccount admission rejects a pod whose ServiceAccount
			// does not exist, and only the controller-manager creates each
			// namespace's "default" one. ServiceAccounts and TokenRequest
			// need no controller; no other default plugin blocks a request
			// without one.
			"--disable-admission-plugins=ServiceAccount",
		}
		proc, err = startProcess(bin, filepath.Join(dir, "kube-apiserver.log"), append(args, extra...)...)
		if err != nil {
			return proc, err
		}
		c.URL, c.Issuer = url, url
		// Two shared cores: the first start (post-start hooks, RBAC bootstrap)
		// takes tens of seconds when the machine is busy.
		if last = waitReady(proc, "kube-apiserver", 3*time.Minute, func() bool {
			resp, err := c.admin.Get(url + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}); last == nil {
			return proc, nil
		}
		proc.stop()
		if !strings.Contains(logTail(proc.log, 16<<10), "address already in use") {
			break
		}
	}
	return proc, last
}

// waitReady polls ready until it holds, the process exits, or timeout.
func waitReady(p *process, name string, timeout time.Duration, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.hasExited() {
			return fmt.Errorf("%s exited at start (%v); its log is %s", name, p.cmd.ProcessState, p.log)
		}
		if ready() {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v; its log is %s", name, timeout, p.log)
}

func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free loopback port: %w", err)
		}
		defer l.Close() // held until all are found, so they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// logTail is the last max bytes of the file at path.
func logTail(path string, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		_, _ = f.Seek(fi.Size()-max, 0)
	}
	var b bytes.Buffer
	_, _ = b.ReadFrom(f)
	return b.String()
}
