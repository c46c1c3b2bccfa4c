package kubetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/signet-dev/signet/internal/toolcache"
)

// Do sends a request to the apiserver at path ("/api/v1/namespaces") with hc
// (Admin, TokenClient, AnonymousClient, or a client of the test's own) and
// returns the status and body. body is sent as is if it is a []byte, else
// as JSON; PATCH sends a JSON merge patch. Transport errors fail the test.
func (c *Cluster) Do(t testing.TB, hc *http.Client, method, path string, body any) (int, []byte) {
	t.Helper()
	contentType := "application/json"
	if method == http.MethodPatch {
		contentType = "application/merge-patch+json"
	}
	status, resp, err := c.request(hc, method, path, contentType, body)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	return status, resp
}

func (c *Cluster) request(hc *http.Client, method, path, contentType string, body any) (int, []byte, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, err := json.Marshal(body)
		if err != nil {
			return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.URL+path, r)
	if err != nil {
		return 0, nil, err
	}
	if r != nil {
		req.Header.Set("Content-Type", contentType)
	}
	// JSON first; */* for the few endpoints that serve only their own type
	// (/openid/v1/jwks: application/jwk-set+json).
	req.Header.Set("Accept", "application/json, */*;q=0.5")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	return resp.StatusCode, data, nil
}

// adminDo sends an admin request that must answer 2xx, decoding its JSON
// answer into out unless out is nil.
func (c *Cluster) adminDo(method, path, contentType string, body, out any) error {
	status, resp, err := c.request(c.admin, method, path, contentType, body)
	if err != nil {
		return err
	}
	if status/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, status, bytes.TrimSpace(resp))
	}
	if out != nil {
		if err := json.Unmarshal(resp, out); err != nil {
			return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
		}
	}
	return nil
}

// Apply creates or updates, as the admin, each object of a YAML or JSON
// stream of documents, by server-side apply (what `kubectl apply
// --server-side` does), in order. A namespaced object without a namespace
// goes to "default". For each CustomResourceDefinition it waits until the
// CRD is Established, so its resources can be used at once.
func (c *Cluster) Apply(t testing.TB, docs []byte) {
	t.Helper()
	if err := c.apply(docs); err != nil {
		t.Fatalf("kubetest: apply: %v", err)
	}
}

func (c *Cluster) apply(docs []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(docs))
	for i := 0; ; i++ {
		var obj map[string]any
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
		if obj == nil { // an empty document between "---"
			continue
		}
		if err := c.applyObject(obj); err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
	}
}

func (c *Cluster) applyObject(obj map[string]any) error {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	namespace, _ := meta["namespace"].(string)
	if apiVersion == "" || kind == "" || name == "" {
		return fmt.Errorf("object needs apiVersion, kind and metadata.name (got %q, %q, %q)", apiVersion, kind, name)
	}
	path, err := c.ResourcePath(apiVersion, kind, namespace, name)
	if err != nil {
		return err
	}
	body, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("%s %s: %w", kind, name, err)
	}
	// force: the harness owns what it applies, whoever wrote the fields before.
	if err := c.adminDo(http.MethodPatch, path+"?fieldManager=kubetest&force=true", "application/apply-patch+yaml", body, nil); err != nil {
		return err
	}
	if apiVersion == "apiextensions.k8s.io/v1" && kind == "CustomResourceDefinition" {
		return c.waitEstablished(path, name)
	}
	return nil
}

func (c *Cluster) waitEstablished(path, name string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		var crd struct {
			Status struct {
				Conditions []struct{ Type, Status, Message string }
			}
		}
		if err := c.adminDo(http.MethodGet, path, "", nil, &crd); err != nil {
			return err
		}
		var last string
		for _, cond := range crd.Status.Conditions {
			if cond.Type == "Established" && cond.Status == "True" {
				return nil
			}
			last = fmt.Sprintf("%s=%s %s", cond.Type, cond.Status, cond.Message)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("CRD %s not Established after 1m (%s)", name, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// apiResource is one entry of an APIResourceList.
type apiResource struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	Namespaced bool   `json:"namespaced"`
}

// ResourcePath returns the REST path of the object of kind in apiVersion
// ("v1", "tekton.dev/v1") with the given name ("" for the collection) and
// namespace ("" is "default" for a namespaced kind), from the apiserver's
// discovery. A kind of a just-established CRD can take a moment to be
// discovered, so a kind not found is looked up again for a few seconds.
func (c *Cluster) ResourcePath(apiVersion, kind, namespace, name string) (string, error) {
	base := "/apis/" + apiVersion
	if !strings.Contains(apiVersion, "/") {
		base = "/api/" + apiVersion // the core group
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		list, ok := c.resources[apiVersion]
		c.mu.Unlock()
		i := slices.IndexFunc(list, func(r apiResource) bool { return r.Kind == kind && !strings.Contains(r.Name, "/") })
		if i >= 0 {
			r := list[i]
			path := base
			if r.Namespaced {
				if namespace == "" {
					namespace = "default"
				}
				path += "/namespaces/" + url.PathEscape(namespace)
			}
			path += "/" + r.Name
			if name != "" {
				path += "/" + url.PathEscape(name)
			}
			return path, nil
		}
		if ok && time.Now().After(deadline) {
			return "", fmt.Errorf("the apiserver serves no kind %s in %s", kind, apiVersion)
		}
		if ok {
			time.Sleep(200 * time.Millisecond)
		}
		var fresh struct {
			Resources []apiResource `json:"resources"`
		}
		status, resp, err := c.request(c.admin, http.MethodGet, base, "", nil)
		switch {
		case err != nil:
			return "", err
		case status == http.StatusNotFound: // the group is not served (yet)
		case status != http.StatusOK:
			return "", fmt.Errorf("discovery GET %s: %d %s", base, status, bytes.TrimSpace(resp))
		default:
			if err := json.Unmarshal(resp, &fresh); err != nil {
				return "", fmt.Errorf("discovery GET %s: %w", base, err)
			}
		}
		c.mu.Lock()
		c.resources[apiVersion] = fresh.Resources
		c.mu.Unlock()
	}
}

// InstallTektonCRDs applies the CustomResourceDefinitions of Tekton
// Pipelines TektonPipelineVersion (config/300-crds of its module) and
// waits until they are Established.
//
// They are applied as released: v1 is the storage version, and converting
// to or from v1beta1 needs Tekton's conversion webhook, which does not run
// here, so use v1.
func (c *Cluster) InstallTektonCRDs(t testing.TB) {
	t.Helper()
	dir, err := toolcache.TektonPipeline.Dir()
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "config", "300-crds", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("kubetest: no CRDs in %s/config/300-crds (%v)", dir, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("kubetest: %v", err)
		}
		if err := c.apply(data); err != nil {
			t.Fatalf("kubetest: applying %s: %v", filepath.Base(f), err)
		}
	}
}

// Token requests a token for service account sa in namespace ns by the
// TokenRequest API, as the kubelet does for a projected token. An empty
// audience gets the apiserver's own (Issuer); ttl is at least 10 minutes.
func (c *Cluster) Token(t testing.TB, ns, sa, audience string, ttl time.Duration) string {
	t.Helper()
	spec := map[string]any{"expirationSeconds": int64(ttl / time.Second)}
	if audience != "" {
		spec["audiences"] = []string{audience}
	}
	var tr struct {
		Status struct {
			Token string `json:"token"`
		} `json:"status"`
	}
	path := fmt.Sprintf("/api/v1/namespaces/%s/serviceaccounts/%s/token", url.PathEscape(ns), url.PathEscape(sa))
	if err := c.adminDo(http.MethodPost, path, "application/json", map[string]any{
		"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec,
	}, &tr); err != nil {
		t.Fatalf("kubetest: requesting a token for %s/%s: %v", ns, sa, err)
	}
	return tr.Status.Token
}

// Kubeconfig writes a kubeconfig for the admin (client certificate) to
// path, for programs under test that take one.
func (c *Cluster) Kubeconfig(path string) error {
	return c.writeKubeconfig(path, map[string]any{
		"client-certificate-data": c.AdminCertPEM,
		"client-key-data":         c.AdminKeyPEM,
	})
}

// ServiceAccountKubeconfig writes a kubeconfig to path that authenticates
// as service account sa of namespace ns with a one-hour token from Token,
// so a program under test runs with only what RBAC grants that account.
func (c *Cluster) ServiceAccountKubeconfig(t testing.TB, path, ns, sa string) {
	t.Helper()
	if err := c.writeKubeconfig(path, map[string]any{"token": c.Token(t, ns, sa, "", time.Hour)}); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
}

// writeKubeconfig writes a one-context kubeconfig as JSON, which is YAML
// and so what client-go and kubectl read; []byte values are base64, as
// the *-data fields are.
func (c *Cluster) writeKubeconfig(path string, user map[string]any) error {
	cfg := map[string]any{
		"apiVersion": "v1",
		"kind":       "Config",
		"clusters": []any{map[string]any{"name": "kubetest", "cluster": map[string]any{
			"server": c.URL, "certificate-authority-data": c.CAPEM,
		}}},
		"users": []any{map[string]any{"name": "kubetest", "user": user}},
		"contexts": []any{map[string]any{"name": "kubetest", "context": map[string]any{
			"cluster": "kubetest", "user": "kubetest",
		}}},
		"current-context": "kubetest",
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o600)
}
