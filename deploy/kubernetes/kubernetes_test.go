// Package kubernetes holds the server's Kubernetes manifests; this test
// applies them to a real kube-apiserver with strict field validation, reads
// them back, and runs the real server with the ConfigMap's configuration.
package kubernetes_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/signet-dev/signet/internal/kubetest"
	"github.com/signet-dev/signet/server"
	"github.com/signet-dev/signet/server/servertest"
)

// manifests reads every object of the directory's YAML files except the
// kustomization, checking the kustomization lists exactly those files.
func manifests(t *testing.T) []map[string]any {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `yaml:"resources"`
	}
	b, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return f == "kustomization.yaml" })
	if got := slices.Sorted(slices.Values(k.Resources)); !slices.Equal(got, files) {
		t.Fatalf("kustomization.yaml lists %q, the directory holds %q", got, files)
	}
	var objs []map[string]any
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var obj map[string]any
			err := dec.Decode(&obj)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if obj == nil {
				continue
			}
			if meta, _ := obj["metadata"].(map[string]any); meta["namespace"] != nil {
				t.Errorf("%s: %v names a namespace; the manifests are namespace-less", f, meta["name"])
			}
			objs = append(objs, obj)
		}
	}
	return objs
}

// object finds kind/name among objs and decodes it into out, strictly.
func object(t *testing.T, objs []map[string]any, kind, name string, out any) {
	t.Helper()
	for _, o := range objs {
		meta, _ := o["metadata"].(map[string]any)
		if o["kind"] == kind && meta["name"] == name {
			b, err := json.Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			if err := sigsyaml.UnmarshalStrict(b, out); err != nil {
				t.Fatalf("%s %s: %v", kind, name, err)
			}
			return
		}
	}
	t.Fatalf("no %s %s in the manifests", kind, name)
}

func port(t *testing.T, what, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	n, perr := strconv.Atoi(p)
	if err != nil || perr != nil {
		t.Fatalf("%s %q is not host:port", what, addr)
	}
	return int32(n)
}

// TestManifestsMatchTheConfig: every port and path the manifests name is
// the one the ConfigMap's server configuration uses.
func TestManifestsMatchTheConfig(t *testing.T) {
	objs := manifests(t)
	var cm corev1.ConfigMap
	object(t, objs, "ConfigMap", "signet-config", &cm)
	var sts appsv1.StatefulSet
	object(t, objs, "StatefulSet", "signet", &sts)
	var api, admin corev1.Service
	object(t, objs, "Service", "signet", &api)
	object(t, objs, "Service", "signet-admin", &admin)
	var pdb policyv1.PodDisruptionBudget
	object(t, objs, "PodDisruptionBudget", "signet", &pdb)
	var np networkingv1.NetworkPolicy
	object(t, objs, "NetworkPolicy", "signet", &np)

	cfg := loadConfigMap(t, cm, t.TempDir())
	httpPort, adminPort := port(t, "addr", cfg.Addr), port(t, "adminAddr", cfg.AdminAddr)

	spec := sts.Spec.Template.Spec
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 1 {
		t.Errorf("replicas %v: the log has one writer, so 1", sts.Spec.Replicas)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want the server alone", len(spec.Containers))
	}
	c := spec.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["http"] != httpPort || ports["admin"] != adminPort {
		t.Errorf("container ports %v, the config listens on %d (addr) and %d (adminAddr)", ports, httpPort, adminPort)
	}
	resolve := func(what string, p intstr.IntOrString) int32 {
		if p.Type == intstr.String {
			n, ok := ports[p.StrVal]
			if !ok {
				t.Errorf("%s names port %q, which the container does not declare", what, p.StrVal)
			}
			return n
		}
		return p.IntVal
	}
	for what, pr := range map[string]*corev1.Probe{"startupProbe": c.StartupProbe, "livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe} {
		if pr == nil || pr.HTTPGet == nil {
			t.Errorf("%s: want an HTTP probe", what)
			continue
		}
		want := "/healthz"
		if what == "readinessProbe" {
			want = "/readyz"
		}
		if pr.HTTPGet.Path != want || resolve(what, pr.HTTPGet.Port) != adminPort {
			t.Errorf("%s GET %s on %v, want %s on the admin port %d", what, pr.HTTPGet.Path, pr.HTTPGet.Port.String(), want, adminPort)
		}
	}
	if len(api.Spec.Ports) != 1 || resolve("Service signet", api.Spec.Ports[0].TargetPort) != httpPort {
		t.Errorf("Service signet ports %+v: want the public port %d alone (the admin port stays inside)", api.Spec.Ports, httpPort)
	}
	if len(admin.Spec.Ports) != 1 || resolve("Service signet-admin", admin.Spec.Ports[0].TargetPort) != adminPort || admin.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service signet-admin %+v: want a headless service of the admin port %d", admin.Spec, adminPort)
	}
	if sts.Spec.ServiceName != admin.Name {
		t.Errorf("serviceName %q, want the headless %q", sts.Spec.ServiceName, admin.Name)
	}

	// The config file is where --config says, and the data directory is
	// the volume.
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	i := slices.Index(c.Args, "--config")
	if i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("args %q: no --config", c.Args)
	}
	var configVolume *corev1.Volume
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == cm.Name {
			configVolume = &v
		}
	}
	if configVolume == nil || filepath.Join(mounts[configVolume.Name], "server.yaml") != c.Args[i+1] {
		t.Errorf("--config %s is not the ConfigMap's server.yaml (mounts %v)", c.Args[i+1], mounts)
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 || mounts[sts.Spec.VolumeClaimTemplates[0].Name] != cfg.Data {
		t.Errorf("the config's data directory %s is not the volume claim's mount (mounts %v)", cfg.Data, mounts)
	}

	// Hardening.
	psc, sc := spec.SecurityContext, c.SecurityContext
	switch {
	case psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0:
		t.Errorf("pod securityContext %+v: want runAsNonRoot and a non-root runAsUser", psc)
	case psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("pod seccompProfile %+v: want RuntimeDefault", psc.SeccompProfile)
	case sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("container securityContext %+v: want readOnlyRootFilesystem", sc)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("container securityContext: want allowPrivilegeEscalation false")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Errorf("capabilities %+v: want drop ALL, add none", sc.Capabilities)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}
	if g := spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= cfg.ShutdownTimeout {
		t.Errorf("terminationGracePeriodSeconds %v must exceed the config's shutdownTimeout %v", g, cfg.ShutdownTimeout)
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 0 || !reflect.DeepEqual(pdb.Spec.Selector, sts.Spec.Selector) {
		t.Errorf("PodDisruptionBudget %+v: want maxUnavailable 0 over the StatefulSet's pods", pdb.Spec)
	}
	// The NetworkPolicy admits the admin port from a selected peer only.
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port != nil && resolve("NetworkPolicy", *p.Port) == adminPort && len(rule.From) == 0 {
				t.Errorf("the NetworkPolicy admits the admin port from anywhere")
			}
		}
	}
	if !reflect.DeepEqual(np.Spec.PodSelector.MatchLabels, sts.Spec.Selector.MatchLabels) {
		t.Errorf("NetworkPolicy selects %v, the StatefulSet's pods are %v", np.Spec.PodSelector.MatchLabels, sts.Spec.Selector.MatchLabels)
	}
}

// loadConfigMap writes the ConfigMap's server.yaml to dir and loads it as
// the server does.
func loadConfigMap(t *testing.T, cm corev1.ConfigMap, dir string) server.Config {
	t.Helper()
	body, ok := cm.Data["server.yaml"]
	if !ok {
		t.Fatalf("ConfigMap %s has no server.yaml", cm.Name)
	}
	path := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := server.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestServerAcceptsTheConfigMap runs the real server on the ConfigMap's
// configuration, with the data directory and listen addresses moved to a
// temporary directory and loopback ports, and probes it where the
// StatefulSet's probes do.
func TestServerAcceptsTheConfigMap(t *testing.T) {
	objs := manifests(t)
	var cm corev1.ConfigMap
	object(t, objs, "ConfigMap", "signet-config", &cm)
	var sts appsv1.StatefulSet
	object(t, objs, "StatefulSet", "signet", &sts)

	var doc map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["server.yaml"]), &doc); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	httpAddr, adminAddr := "127.0.0.1:"+strconv.Itoa(servertest.FreePort(t)), "127.0.0.1:"+strconv.Itoa(servertest.FreePort(t))
	for k, v := range map[string]any{"data": filepath.Join(dir, "data"), "addr": httpAddr, "adminAddr": adminAddr, "url": "http://" + httpAddr} {
		if _, ok := doc[k]; !ok {
			t.Fatalf("the ConfigMap's config has no %s", k)
		}
		doc[k] = v
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// As the StatefulSet runs it: its args, with the config path adapted.
	args := slices.Clone(sts.Spec.Template.Spec.Containers[0].Args)
	args[slices.Index(args, "--config")+1] = cfgPath
	p := servertest.StartArgs(t, args...)
	if p.DataDir != filepath.Join(dir, "data") {
		t.Errorf("the server uses data directory %s, want the config's", p.DataDir)
	}
	c := sts.Spec.Template.Spec.Containers[0]
	for _, pr := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
		u := "http://" + adminAddr + pr.HTTPGet.Path
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("probe GET %s: HTTP %d %s", u, resp.StatusCode, body)
		}
	}
	// The public listener (the Service's port) serves the trust files.
	if _, err := p.Get("/trust/trusted_root.json"); err != nil {
		t.Error(err)
	}
	if err := p.Stop(30 * time.Second); err != nil {
		t.Errorf("graceful stop: %v\n%s", err, p.Stderr())
	}
}

// TestManifestsApply applies every manifest to a real kube-apiserver
// (RBAC on) by server-side apply with fieldValidation=Strict, so an
// unknown or misplaced field is an error rather than dropped, and reads
// each object back: every field sent must be there as sent.
func TestManifestsApply(t *testing.T) {
	objs := manifests(t)
	c := kubetest.Start(t)
	const ns = "signet-deploy"
	c.Apply(t, []byte("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: "+ns+"\n"))
	for _, obj := range objs {
		kind := obj["kind"].(string)
		name := obj["metadata"].(map[string]any)["name"].(string)
		path := strictApply(t, c, ns, obj)
		status, body := c.Do(t, c.Admin(), http.MethodGet, path, nil)
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, status, body)
		}
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		// Round-trip the sent object through JSON, as the apiserver saw it.
		sent, _ := json.Marshal(obj)
		var want map[string]any
		json.Unmarshal(sent, &want)
		if diff := missing(want, got, ""); diff != "" {
			t.Errorf("%s %s read back without what was applied: %s", kind, name, diff)
		}
	}

	// The validation is strict: a misspelt field is refused, not dropped.
	// (Server-side apply refuses fields its schema lacks whatever
	// fieldValidation says; kube-apiserver answers that with 500.)
	var sts map[string]any
	for _, o := range objs {
		if o["kind"] == "StatefulSet" {
			b, _ := json.Marshal(o)
			json.Unmarshal(b, &sts)
		}
	}
	spec := sts["spec"].(map[string]any)
	spec["replica"] = spec["replicas"]
	status, body := apply(t, c, ns, sts)
	if status/100 == 2 || !strings.Contains(string(body), ".spec.replica: field not declared in schema") {
		t.Errorf("a StatefulSet with an unknown field: %d %s, want a refusal naming it", status, body)
	}
}

func strictApply(t *testing.T, c *kubetest.Cluster, ns string, obj map[string]any) string {
	t.Helper()
	status, body := apply(t, c, ns, obj)
	if status/100 != 2 {
		t.Fatalf("apply %s %v: %d %s", obj["kind"], obj["metadata"].(map[string]any)["name"], status, body)
	}
	path, _ := c.ResourcePath(obj["apiVersion"].(string), obj["kind"].(string), ns, obj["metadata"].(map[string]any)["name"].(string))
	return path
}

// apply sends obj by server-side apply with strict field validation (what
// `kubectl apply --server-side --validate=strict` sends): unknown fields
// and duplicate fields are errors.
func apply(t *testing.T, c *kubetest.Cluster, ns string, obj map[string]any) (int, []byte) {
	t.Helper()
	meta := obj["metadata"].(map[string]any)
	path, err := c.ResourcePath(obj["apiVersion"].(string), obj["kind"].(string), ns, meta["name"].(string))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPatch, c.URL+path+"?fieldManager=signet-deploy-test&fieldValidation=Strict&force=true", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/apply-patch+yaml")
	req.Header.Set("Accept", "application/json")
	resp, err := c.Admin().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// missing describes the first value of want that got lacks or holds
// differently ("" if none). Quantities and ports are compared as the
// apiserver writes them back, so manifests must use canonical forms.
func missing(want, got any, at string) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: %v, want an object", at, got)
		}
		for k, v := range w {
			if d := missing(v, g[k], at+"."+k); d != "" {
				return d
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s: %v, want %v", at, got, w)
		}
		for i := range w {
			if d := missing(w[i], g[i], fmt.Sprintf("%s[%d]", at, i)); d != "" {
				return d
			}
		}
	default:
		if !reflect.DeepEqual(want, got) {
			return fmt.Sprintf("%s: %v, want %v", at, got, want)
		}
	}
	return ""
}
