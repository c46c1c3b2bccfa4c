package kubetest

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TestCluster drives the control plane as the tekton controller's tests
// will: Tekton's CRDs, a TaskRun whose status the test writes as Tekton's
// controller would, RBAC that refuses a service account until a Role
// grants it, and service-account tokens verifiable against the issuer's
// published keys.
func TestCluster(t *testing.T) {
	var procs []*process
	t.Run("cluster", func(t *testing.T) {
		start := time.Now()
		c := Start(t)
		t.Logf("cluster up in %v", time.Since(start).Round(time.Millisecond))
		procs = c.procs
		testCluster(t, c)
	})
	// The subtest's cleanups have run: nothing of either process group is left.
	for _, p := range procs {
		if err := syscall.Kill(-p.cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process group of %s still there after cleanup (kill 0: %v)", p.cmd.Path, err)
		}
	}
}

func testCluster(t *testing.T, c *Cluster) {

	crds := time.Now()
	c.InstallTektonCRDs(t)
	t.Logf("Tekton %s CRDs established in %v", TektonPipelineVersion, time.Since(crds).Round(time.Millisecond))

	const ns, sa = "builds", "chains"
	c.Apply(t, []byte(fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: %[1]s
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: %[2]s
  namespace: %[1]s
`, ns, sa)))

	taskRuns, err := c.ResourcePath("tekton.dev/v1", "TaskRun", ns, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := "/apis/tekton.dev/v1/namespaces/builds/taskruns"; taskRuns != want {
		t.Fatalf("TaskRun collection at %s, want %s", taskRuns, want)
	}
	expect := func(status int, body []byte, want int, what string) {
		t.Helper()
		if status != want {
			t.Fatalf("%s: %d, want %d: %s", what, status, want, body)
		}
	}

	// Create a TaskRun, then complete it through /status the way Tekton's
	// controller does (an update of the status subresource).
	status, body := c.Do(t, c.Admin(), http.MethodPost, taskRuns, map[string]any{
		"apiVersion": "tekton.dev/v1", "kind": "TaskRun",
		"metadata": map[string]any{"name": "build-1"},
		"spec": map[string]any{"taskSpec": map[string]any{
			"results": []any{map[string]any{"name": "IMAGE_URL"}, map[string]any{"name": "IMAGE_DIGEST"}},
			"steps":   []any{map[string]any{"name": "build", "image": "registry.invalid/builder", "script": "true"}},
		}},
	})
	expect(status, body, http.StatusCreated, "creating the TaskRun")
	var tr map[string]any
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tr["status"] = map[string]any{
		"podName":        "build-1-pod",
		"startTime":      now,
		"completionTime": now,
		"conditions": []any{map[string]any{
			"type": "Succeeded", "status": "True", "reason": "Succeeded",
			"message": "All Steps have completed executing", "lastTransitionTime": now,
		}},
		"results": []any{
			map[string]any{"name": "IMAGE_URL", "type": "string", "value": "registry.invalid/app"},
			map[string]any{"name": "IMAGE_DIGEST", "type": "string", "value": digest},
		},
	}
	// A controller learns of the change by watching v1 (which needs no
	// conversion webhook): watch from the created version.
	created := tr["metadata"].(map[string]any)["resourceVersion"].(string)
	resp, err := c.Admin().Get(c.URL + taskRuns + "?watch=true&timeoutSeconds=20&resourceVersion=" + created)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("watching TaskRuns: %s", resp.Status)
	}
	status, body = c.Do(t, c.Admin(), http.MethodPut, taskRuns+"/build-1/status", tr)
	expect(status, body, http.StatusOK, "updating the TaskRun's status")
	var event struct {
		Type   string
		Object struct {
			Status struct {
				Conditions []struct{ Type, Status string }
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&event); err != nil {
		t.Fatalf("reading the watch: %v", err)
	}
	if event.Type != "MODIFIED" || len(event.Object.Status.Conditions) != 1 || event.Object.Status.Conditions[0].Status != "True" {
		t.Fatalf("watch event %+v, want MODIFIED with Succeeded=True", event)
	}

	status, body = c.Do(t, c.Admin(), http.MethodGet, taskRuns+"/build-1", nil)
	expect(status, body, http.StatusOK, "reading the TaskRun back")
	var got struct {
		Spec struct {
			TaskSpec struct{ Steps []struct{ Name string } }
		}
		Status struct {
			Conditions []struct{ Type, Status string }
			Results    []struct{ Name, Value string }
		}
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.TaskSpec.Steps) != 1 || len(got.Status.Conditions) != 1 ||
		got.Status.Conditions[0].Type != "Succeeded" || got.Status.Conditions[0].Status != "True" {
		t.Fatalf("TaskRun read back with spec steps %+v and conditions %+v", got.Spec.TaskSpec.Steps, got.Status.Conditions)
	}
	results := map[string]string{}
	for _, r := range got.Status.Results {
		results[r.Name] = r.Value
	}
	if results["IMAGE_URL"] != "registry.invalid/app" || results["IMAGE_DIGEST"] != digest {
		t.Fatalf("TaskRun results %v", results)
	}

	// RBAC: the service account may not list TaskRuns until a Role lets it.
	token := c.Token(t, ns, sa, "", 10*time.Minute)
	asSA := c.TokenClient(token)
	status, body = c.Do(t, asSA, http.MethodGet, taskRuns, nil)
	expect(status, body, http.StatusForbidden, "listing TaskRuns as the service account before any grant")
	if !strings.Contains(string(body), "system:serviceaccount:"+ns+":"+sa) {
		t.Fatalf("the refusal does not name the service account: %s", body)
	}
	c.Apply(t, []byte(fmt.Sprintf(`apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: taskrun-reader
  namespace: %[1]s
rules:
- apiGroups: [tekton.dev]
  resources: [taskruns]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: %[2]s-reads-taskruns
  namespace: %[1]s
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: taskrun-reader
subjects:
- kind: ServiceAccount
  name: %[2]s
  namespace: %[1]s
`, ns, sa)))
	// The authorizer reads RBAC objects through an informer: allow it a moment.
	deadline := time.Now().Add(30 * time.Second)
	for status, body = c.Do(t, asSA, http.MethodGet, taskRuns, nil); status == http.StatusForbidden && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		status, body = c.Do(t, asSA, http.MethodGet, taskRuns, nil)
	}
	expect(status, body, http.StatusOK, "listing TaskRuns as the service account once granted")
	var list struct {
		Items []struct{ Metadata struct{ Name string } }
	}
	if err := json.Unmarshal(body, &list); err != nil || len(list.Items) != 1 || list.Items[0].Metadata.Name != "build-1" {
		t.Fatalf("TaskRuns listed as the service account: %s (%v)", body, err)
	}
	status, body = c.Do(t, asSA, http.MethodDelete, taskRuns+"/build-1", nil)
	expect(status, body, http.StatusForbidden, "deleting a TaskRun as the service account, which the Role does not grant")

	// OIDC: anyone can discover the issuer; a "sigstore" token verifies
	// against the keys it publishes, which are those JWKS returns.
	anon := c.AnonymousClient()
	status, body = c.Do(t, anon, http.MethodGet, "/.well-known/openid-configuration", nil)
	expect(status, body, http.StatusOK, "anonymous OIDC discovery")
	var disco struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &disco); err != nil {
		t.Fatal(err)
	}
	if disco.Issuer != c.Issuer || disco.JWKSURI != c.Issuer+"/openid/v1/jwks" {
		t.Fatalf("discovery says issuer %q, jwks_uri %q; want %q and its /openid/v1/jwks", disco.Issuer, disco.JWKSURI, c.Issuer)
	}
	status, body = c.Do(t, anon, http.MethodGet, strings.TrimPrefix(disco.JWKSURI, c.URL), nil)
	expect(status, body, http.StatusOK, "anonymous GET of the jwks_uri")
	if string(body) != string(c.JWKS()) {
		t.Fatalf("the jwks_uri serves %s, JWKS() returns %s", body, c.JWKS())
	}
	var keys jose.JSONWebKeySet
	if err := json.Unmarshal(body, &keys); err != nil {
		t.Fatal(err)
	}

	idToken := c.Token(t, ns, sa, Audience, 10*time.Minute)
	parsed, err := jwt.ParseSigned(idToken, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	matching := keys.Key(parsed.Headers[0].KeyID)
	if len(matching) != 1 {
		t.Fatalf("%d published keys have the token's kid %q", len(matching), parsed.Headers[0].KeyID)
	}
	var claims jwt.Claims
	var k8s struct {
		K8s struct {
			Namespace      string `json:"namespace"`
			ServiceAccount struct {
				Name string `json:"name"`
			} `json:"serviceaccount"`
		} `json:"kubernetes.io"`
	}
	if err := parsed.Claims(matching[0].Key, &claims, &k8s); err != nil {
		t.Fatalf("the token's signature does not verify against the published key: %v", err)
	}
	if err := claims.Validate(jwt.Expected{Issuer: c.Issuer, AnyAudience: jwt.Audience{Audience}, Subject: "system:serviceaccount:" + ns + ":" + sa}); err != nil {
		t.Fatalf("token claims: %v", err)
	}
	if k8s.K8s.Namespace != ns || k8s.K8s.ServiceAccount.Name != sa {
		t.Fatalf("token's kubernetes.io claim names %s/%s", k8s.K8s.Namespace, k8s.K8s.ServiceAccount.Name)
	}
	// The apiserver accepts its "sigstore" tokens too (--api-audiences).
	status, body = c.Do(t, c.TokenClient(idToken), http.MethodGet, taskRuns, nil)
	expect(status, body, http.StatusOK, "listing TaskRuns with the sigstore-audience token")

	// One cluster start is most of this test's time: share it.
	t.Run("kubeconfigs", func(t *testing.T) { checkKubeconfigs(t, c, ns, sa) })
}

// checkKubeconfigs checks the kubeconfigs a program under test is given
// name the cluster and carry working credentials.
func checkKubeconfigs(t *testing.T, c *Cluster, ns, sa string) {
	dir := t.TempDir()
	adminPath, saPath := filepath.Join(dir, "admin"), filepath.Join(dir, "sa")
	if err := c.Kubeconfig(adminPath); err != nil {
		t.Fatal(err)
	}
	c.ServiceAccountKubeconfig(t, saPath, ns, sa)
	for _, tc := range []struct {
		path string
		want int // listing namespaces: the admin may, the account may not
	}{{adminPath, http.StatusOK}, {saPath, http.StatusForbidden}} {
		hc, server := clientFromKubeconfig(t, tc.path)
		if server != c.URL {
			t.Fatalf("%s: server %s, want %s", tc.path, server, c.URL)
		}
		status, body := c.Do(t, hc, http.MethodGet, "/api/v1/namespaces", nil)
		if status != tc.want {
			t.Fatalf("%s: listing namespaces: %d, want %d: %s", tc.path, status, tc.want, body)
		}
	}
}

// clientFromKubeconfig reads what writeKubeconfig writes, as client-go would.
func clientFromKubeconfig(t *testing.T, path string) (*http.Client, string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Clusters []struct {
			Cluster struct {
				Server string `json:"server"`
				CA     []byte `json:"certificate-authority-data"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			User struct {
				Cert  []byte `json:"client-certificate-data"`
				Key   []byte `json:"client-key-data"`
				Token string `json:"token"`
			} `json:"user"`
		} `json:"users"`
		CurrentContext string `json:"current-context"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil || len(cfg.Clusters) != 1 || len(cfg.Users) != 1 || cfg.CurrentContext == "" {
		t.Fatalf("%s: %v\n%s", path, err, data)
	}
	cl := &Cluster{CAPEM: cfg.Clusters[0].Cluster.CA, URL: cfg.Clusters[0].Cluster.Server}
	u := cfg.Users[0].User
	if u.Token != "" {
		return cl.TokenClient(u.Token), cl.URL
	}
	pair, err := tls.X509KeyPair(u.Cert, u.Key)
	if err != nil {
		t.Fatal(err)
	}
	hc := cl.AnonymousClient()
	hc.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{pair}
	if !slices.Contains(pair.Leaf.Subject.Organization, "system:masters") {
		t.Fatalf("admin certificate's groups %v", pair.Leaf.Subject.Organization)
	}
	return hc, cl.URL
}
