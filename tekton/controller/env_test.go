package controller_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	tektonclient "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"

	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/oci/ocitest"
	"github.com/signet-dev/signet/internal/kubetest"
	"github.com/signet-dev/signet/server/servertest"
)

// The controller's own namespace and ServiceAccount, as tekton/config
// installs them.
const (
	controllerNS = "signet-tekton"
	controllerSA = "signet-tekton"
	configName   = "signet-tekton-config"
)

// env is one real control plane, registry and signet server shared by the
// tests of this package: each test works in namespaces of its own and, when
// it needs a controller of its own, gives it its own namespace filter,
// Lease and ConfigMap.
type env struct {
	cluster          *kubetest.Cluster
	reg              *ocitest.Registry
	srv              *servertest.Process
	dir              string
	root             string // trusted_root.json
	kube             kubernetes.Interface
	tekton           tektonclient.Interface
	kubecfg          string // the controller ServiceAccount's kubeconfig
	tokenFile        string // the controller's projected token
	identity, issuer string
	serverAdmin      string // the server's admin listener, when profiling
}

var (
	envOnce sync.Once
	shared  *env
	envErr  error
	// envT keeps the shared processes for the whole test binary: they are
	// started under the first test that needs them and stopped by TestMain.
	cleanups []func()
)

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	os.Exit(code)
}

// binTB is a testing.TB whose cleanups run at the end of the test binary,
// for the shared env (kubetest, ocitest and servertest take a TB).
type binTB struct {
	testing.TB
	dir string
}

func (b *binTB) Cleanup(f func()) { cleanups = append(cleanups, f) }
func (b *binTB) TempDir() string {
	d, err := os.MkdirTemp(b.dir, "t")
	if err != nil {
		panic(err)
	}
	return d
}
func (b *binTB) Failed() bool { return false }

func getEnv(t testing.TB) *env {
	t.Helper()
	envOnce.Do(func() {
		dir, err := os.MkdirTemp("", "signet-tekton-e2e-*")
		if err != nil {
			envErr = err
			return
		}
		cleanups = append(cleanups, func() { os.RemoveAll(dir) })
		tb := &binTB{TB: t, dir: dir}
		shared, envErr = newEnv(tb, dir)
	})
	if envErr != nil {
		t.Fatal(envErr)
	}
	return shared
}

func newEnv(tb *binTB, dir string) (*env, error) {
	c := kubetest.Start(tb)
	c.InstallTektonCRDs(tb)
	e := &env{cluster: c, reg: ocitest.Start(tb), dir: dir}

	jwks := filepath.Join(dir, "cluster-jwks.json")
	if err := os.WriteFile(jwks, c.JWKS(), 0o644); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "server.yaml")
	yaml := fmt.Sprintf("oidcIssuers:\n  - url: %s\n    type: kubernetes\n    jwksFile: %s\n", c.Issuer, jwks)
	if os.Getenv("SIGNET_TEKTON_BENCH_PROFILE") != "" {
		// The benchmarks profile the server through its admin listener.
		e.serverAdmin = fmt.Sprintf("127.0.0.1:%d", servertest.FreePort(tb))
		yaml += "adminAddr: " + e.serverAdmin + "\n"
	}
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		return nil, err
	}
	e.srv = servertest.Start(tb, filepath.Join(dir, "server"), "--config", cfg)
	e.root = filepath.Join(dir, "trusted_root.json")
	root, err := e.srv.Get("/trust/trusted_root.json")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(e.root, root, 0o644); err != nil {
		return nil, err
	}

	admin := filepath.Join(dir, "admin.kubeconfig")
	if err := c.Kubeconfig(admin); err != nil {
		return nil, err
	}
	rc, err := clientcmd.BuildConfigFromFlags("", admin)
	if err != nil {
		return nil, err
	}
	rc.QPS, rc.Burst = 500, 1000
	if e.kube, err = kubernetes.NewForConfig(rc); err != nil {
		return nil, err
	}
	if e.tekton, err = tektonclient.NewForConfig(rc); err != nil {
		return nil, err
	}
	if err := e.install(tb); err != nil {
		return nil, err
	}
	e.kubecfg = filepath.Join(dir, "controller.kubeconfig")
	c.ServiceAccountKubeconfig(tb, e.kubecfg, controllerNS, controllerSA)
	e.tokenFile = filepath.Join(dir, "oidc-token")
	if err := os.WriteFile(e.tokenFile, []byte(c.Token(tb, controllerNS, controllerSA, kubetest.Audience, time.Hour)), 0o600); err != nil {
		return nil, err
	}
	e.identity = "https://kubernetes.io/namespaces/" + controllerNS + "/serviceaccounts/" + controllerSA
	e.issuer = c.Issuer
	return e, nil
}

// install applies tekton/config as a user would, without the Deployment
// (there is no kubelet): the controller then runs with exactly the RBAC
// the manifests grant.
func (e *env) install(tb testing.TB) error {
	files, err := filepath.Glob(filepath.Join(moduleRoot(), "tekton", "config", "*.yaml"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no manifests in tekton/config")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var keep [][]byte
		for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
			if regexp.MustCompile(`(?m)^kind:\s*(Deployment|Service)\s*$`).MatchString(doc) || strings.TrimSpace(doc) == "" {
				continue
			}
			keep = append(keep, []byte(doc))
		}
		if len(keep) > 0 {
			e.cluster.Apply(tb, bytes.Join(keep, []byte("\n---\n")))
		}
	}
	return nil
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds signet-tekton and signet once.
func binaries(t testing.TB) (controller, signet string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "signet-tekton-bin-*")
		if buildErr != nil {
			return
		}
		cleanups = append(cleanups, func() { os.RemoveAll(binDir) })
		for _, b := range []struct{ out, pkg string }{{"signet-tekton", "./tekton/cmd/signet-tekton"}, {"signet", "./cmd/signet"}} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, b.out), b.pkg)
			cmd.Dir = moduleRoot()
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "signet-tekton"), filepath.Join(binDir, "signet")
}

// proc is a running signet-tekton.
type proc struct {
	cmd     *exec.Cmd
	metrics string // http://127.0.0.1:PORT
	mu      sync.Mutex
	out     bytes.Buffer
	done    chan struct{}
	err     error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// stop sends SIGTERM and waits.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Errorf("signet-tekton did not stop within 30s of SIGTERM")
		<-p.done
	}
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// controller starts signet-tekton as its own ServiceAccount, watching ns,
// with the ConfigMap and Lease names tekton/config grants it. Tests run one
// after another, each stopping its controllers (which releases the Lease).
func (e *env) controller(t testing.TB, ns string, extra ...string) *proc {
	t.Helper()
	bin, _ := binaries(t)
	port := servertest.FreePort(t)
	args := append([]string{
		"--kubeconfig", e.kubecfg,
		"--server", e.srv.URL,
		"--namespace", ns,
		"--config-namespace", controllerNS,
		"--lease-duration", "3s",
		"--identity-token", e.tokenFile,
		"--metrics-addr", fmt.Sprintf("127.0.0.1:%d", port),
		"--retry-initial-delay", "200ms",
		"--retry-max-delay", "2s",
		"--log-format", "text",
		"--log-level", envOr("SIGNET_TEKTON_LOG_LEVEL", "info"),
	}, extra...)
	p := &proc{cmd: exec.Command(bin, args...), metrics: fmt.Sprintf("http://127.0.0.1:%d", port), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			// SIGTERM releases the Lease for the next test's controller.
			p.stop(t)
		}
		if t.Failed() {
			l := p.logs()
			if len(l) > 8<<10 {
				l = l[len(l)-8<<10:]
			}
			t.Logf("signet-tekton (%s) log tail:\n%s", ns, l)
		}
	})
	waitFor(t, 60*time.Second, "signet-tekton to serve /healthz", func() bool {
		select {
		case <-p.done:
			t.Fatalf("signet-tekton exited: %v\n%s", p.err, p.logs())
		default:
		}
		r, err := http.Get(p.metrics + "/healthz")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	})
	return p
}

// metric reads one sample (name with labels as Prometheus prints them).
func (p *proc) metric(t testing.TB, sample string) float64 {
	t.Helper()
	r, err := http.Get(p.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

func waitFor(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// namespace creates a namespace with a ServiceAccount "builder" (there is
// no controller-manager to make "default").
func (e *env) namespace(t testing.TB, ns string) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// config replaces the controller's ConfigMap data; the test's cleanup
// puts back what tekton/config ships.
func (e *env) config(t testing.TB, data map[string]string) {
	t.Helper()
	ctx := context.Background()
	old, err := e.kube.CoreV1().ConfigMaps(controllerNS).Get(ctx, configName, metav1.GetOptions{})
	if err == nil {
		t.Cleanup(func() {
			cm, err := e.kube.CoreV1().ConfigMaps(controllerNS).Get(ctx, configName, metav1.GetOptions{})
			if err == nil {
				cm.Data = old.Data
				_, err = e.kube.CoreV1().ConfigMaps(controllerNS).Update(ctx, cm, metav1.UpdateOptions{})
			}
			if err != nil {
				t.Errorf("restoring the ConfigMap: %v", err)
			}
		})
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: configName, Namespace: controllerNS}, Data: data}
	if _, err := e.kube.CoreV1().ConfigMaps(controllerNS).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		if _, err := e.kube.CoreV1().ConfigMaps(controllerNS).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// pushImage pushes a random single-platform image and returns its digest.
func (e *env) pushImage(t testing.TB, repo string) string {
	t.Helper()
	return e.pushImageTag(t, repo, "latest")
}

// pushImageTag is pushImage under another tag (parallel pushes to one tag
// make distribution answer 500).
func (e *env) pushImageTag(t testing.TB, repo, tag string) string {
	t.Helper()
	return ocitest.PushImage(t, e.reg.Ref(repo+":"+tag))
}

// pushIndex pushes a two-platform index and returns its digest and the
// platforms'.
func (e *env) pushIndex(t testing.TB, repo string) (string, []string) {
	t.Helper()
	return ocitest.PushIndex(t, e.reg.Ref(repo+":latest"))
}

// runSpec is what a test says of a run.
type runSpec struct {
	results     map[string]string
	failed      bool
	running     bool
	sa          string
	pipelineRun string // label tekton.dev/pipelineRun
	artifacts   *pipelinev1.Artifacts
}

// taskRun creates a TaskRun and writes the status the pipeline controller
// would when it finished.
func (e *env) taskRun(t testing.TB, ns, name string, s runSpec) *pipelinev1.TaskRun {
	t.Helper()
	tr, err := e.taskRunErr(ns, name, s)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func (e *env) taskRunErr(ns, name string, s runSpec) (*pipelinev1.TaskRun, error) {
	ctx := context.Background()
	tr := &pipelinev1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: pipelinev1.TaskRunSpec{
			ServiceAccountName: s.sa,
			TaskSpec:           &pipelinev1.TaskSpec{Steps: []pipelinev1.Step{{Name: "build", Image: "cgr.dev/chainguard/busybox", Script: "echo build"}}},
		},
	}
	if s.pipelineRun != "" {
		tr.Labels = map[string]string{"tekton.dev/pipelineRun": s.pipelineRun}
	}
	tr, err := e.tekton.TektonV1().TaskRuns(ns).Create(ctx, tr, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	now := metav1.Now()
	start := metav1.NewTime(now.Add(-30 * time.Second))
	cond := apis.Condition{Type: apis.ConditionSucceeded, Status: corev1.ConditionTrue, Reason: "Succeeded"}
	if s.failed {
		cond.Status, cond.Reason = corev1.ConditionFalse, "Failed"
	}
	completion := &now
	if s.running {
		cond.Status, cond.Reason, completion = corev1.ConditionUnknown, "Running", nil
	}
	tr.Status = pipelinev1.TaskRunStatus{
		Status: duckv1.Status{Conditions: duckv1.Conditions{cond}},
		TaskRunStatusFields: pipelinev1.TaskRunStatusFields{
			StartTime:      &start,
			CompletionTime: completion,
			PodName:        name + "-pod",
			Steps: []pipelinev1.StepState{{Name: "build", Container: "step-build",
				ImageID: "cgr.dev/chainguard/busybox@sha256:" + strings.Repeat("ab", 32)}},
			TaskSpec:  tr.Spec.TaskSpec,
			Artifacts: s.artifacts,
		},
	}
	for k, v := range s.results {
		tr.Status.Results = append(tr.Status.Results, pipelinev1.TaskRunResult{Name: k, Type: pipelinev1.ResultsTypeString, Value: *pipelinev1.NewStructuredValues(v)})
	}
	return e.tekton.TektonV1().TaskRuns(ns).UpdateStatus(ctx, tr, metav1.UpdateOptions{})
}

// annotations waits until the run is marked and returns its annotations.
func (e *env) marked(t testing.TB, kind, ns, name string, within time.Duration) map[string]string {
	t.Helper()
	var ann map[string]string
	waitFor(t, within, kind+" "+ns+"/"+name+" to be marked "+"signet.dev/signed", func() bool {
		var err error
		switch kind {
		case "taskrun":
			var tr *pipelinev1.TaskRun
			tr, err = e.tekton.TektonV1().TaskRuns(ns).Get(context.Background(), name, metav1.GetOptions{})
			if err == nil {
				ann = tr.Annotations
			}
		default:
			var pr *pipelinev1.PipelineRun
			pr, err = e.tekton.TektonV1().PipelineRuns(ns).Get(context.Background(), name, metav1.GetOptions{})
			if err == nil {
				ann = pr.Annotations
			}
		}
		return err == nil && ann["signet.dev/signed"] != ""
	})
	return ann
}

// signet runs the CLI and returns its exit code and output.
func (e *env) signet(t testing.TB, args ...string) (int, string) {
	t.Helper()
	_, bin := binaries(t)
	cmd := exec.Command(bin, args...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// policy is the verify flags for the controller's identity.
func (e *env) policy(identity string) []string {
	return []string{"--trusted-root", e.root, "--certificate-identity", identity, "--certificate-oidc-issuer", e.issuer}
}

func (e *env) events(t testing.TB, ns, name string) []corev1.Event {
	t.Helper()
	l, err := e.kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// attached counts the signatures and attestations attached to an image.
func (e *env) attached(t testing.TB, ref string) (signatures, attestations int) {
	t.Helper()
	c := oci.New(oci.Options{})
	s, err := c.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.List(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return len(l.Signatures()), len(l.Items) - len(l.Signatures())
}

// server starts a signet server of a test's own on a fixed port (so it can
// be stopped and started again at the same URL), trusting the cluster's
// service-account issuer.
func (e *env) server(t testing.TB, port int, data string) *servertest.Process {
	t.Helper()
	cfg := filepath.Join(e.dir, "server.yaml")
	return servertest.StartArgs(t, "--config", cfg, "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--data", data)
}

// finish marks a running TaskRun succeeded, as the pipeline controller
// would.
func (e *env) finish(t testing.TB, ns, name string) {
	t.Helper()
	ctx := context.Background()
	tr, err := e.tekton.TektonV1().TaskRuns(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	tr.Status.CompletionTime = &now
	tr.Status.Conditions = duckv1.Conditions{{Type: apis.ConditionSucceeded, Status: corev1.ConditionTrue, Reason: "Succeeded"}}
	if _, err := e.tekton.TektonV1().TaskRuns(ns).UpdateStatus(ctx, tr, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// pipelineRun creates a PipelineRun that finished, with the given child
// TaskRuns (by pipeline task name) in its status.
func (e *env) pipelineRun(t testing.TB, ns, name string, children map[string]string, results map[string]string) {
	t.Helper()
	ctx := context.Background()
	pr := &pipelinev1.PipelineRun{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: pipelinev1.PipelineRunSpec{
			PipelineSpec: &pipelinev1.PipelineSpec{Tasks: []pipelinev1.PipelineTask{
				{Name: "build", TaskRef: &pipelinev1.TaskRef{Name: "build"}}, {Name: "test", TaskRef: &pipelinev1.TaskRef{Name: "test"}},
			}},
			TaskRunTemplate: pipelinev1.PipelineTaskRunTemplate{ServiceAccountName: "builder"},
		},
	}
	pr, err := e.tekton.TektonV1().PipelineRuns(ns).Create(ctx, pr, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	start := metav1.NewTime(now.Add(-time.Minute))
	pr.Status.StartTime, pr.Status.CompletionTime = &start, &now
	pr.Status.Conditions = duckv1.Conditions{{Type: apis.ConditionSucceeded, Status: corev1.ConditionTrue, Reason: "Succeeded"}}
	pr.Status.PipelineSpec = pr.Spec.PipelineSpec
	for task, child := range children {
		pr.Status.ChildReferences = append(pr.Status.ChildReferences, pipelinev1.ChildStatusReference{
			TypeMeta: k8sruntime.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "TaskRun"}, Name: child, PipelineTaskName: task,
		})
	}
	for k, v := range results {
		pr.Status.Results = append(pr.Status.Results, pipelinev1.PipelineRunResult{Name: k, Value: *pipelinev1.NewStructuredValues(v)})
	}
	if _, err := e.tekton.TektonV1().PipelineRuns(ns).UpdateStatus(ctx, pr, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// statement fetches an attestation from the store and returns its
// in-toto statement.
func (e *env) statement(t testing.TB, id string) map[string]any {
	t.Helper()
	b, err := e.srv.Get("/api/v2/attestations/" + id)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Envelope struct {
			Payload []byte `json:"payload"`
		} `json:"envelope"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(rec.Envelope.Payload, &st); err != nil {
		t.Fatalf("statement of %s: %v", id, err)
	}
	return st
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
