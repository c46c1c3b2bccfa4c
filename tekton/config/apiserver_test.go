package manifests_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/signet-dev/signet/internal/kubetest"
)

// Where the test's runs live: another namespace than the controller's.
const (
	runNS     = "builds"
	runSA     = "builder"
	runSecret = "registry-credentials"
)

// applyDir applies every manifest of dir, in file order, as `kubectl apply
// -f dir` (not recursive) does.
func applyDir(t *testing.T, c *kubetest.Cluster, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", dir, err)
	}
	sort.Strings(files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c.Apply(t, data)
	}
}

// api is a client of the apiserver as one identity.
type api struct {
	t  *testing.T
	c  *kubetest.Cluster
	hc *http.Client
	as string
}

// expect sends a request and fails unless the answer has status want.
func (a api) expect(want int, method, path string, body any) []byte {
	a.t.Helper()
	status, resp := a.c.Do(a.t, a.hc, method, path, body)
	if status != want {
		a.t.Errorf("%s: %s %s: %d, want %d: %s", a.as, method, path, status, want, clip(resp))
	}
	return resp
}

// eventually is expect for a request RBAC has just been changed to allow:
// the authorizer's caches follow within moments.
func (a api) eventually(want int, method, path string, body any) []byte {
	a.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, resp := a.c.Do(a.t, a.hc, method, path, body)
		if status == want {
			return resp
		}
		if time.Now().After(deadline) || (status != http.StatusForbidden && status/100 != 2) {
			a.t.Fatalf("%s: %s %s: %d, want %d: %s", a.as, method, path, status, want, clip(resp))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// forbidden asserts RBAC refuses the request.
func (a api) forbidden(method, path string, body any) {
	a.t.Helper()
	status, resp := a.c.Do(a.t, a.hc, method, path, body)
	if status != http.StatusForbidden || !strings.Contains(string(resp), "forbidden") {
		a.t.Errorf("%s: %s %s: %d, want 403 forbidden: %s", a.as, method, path, status, clip(resp))
	}
}

func clip(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

func newObj(apiVersion, kind, name string, rest map[string]any) map[string]any {
	o := map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": map[string]any{"name": name}}
	for k, v := range rest {
		o[k] = v
	}
	return o
}

// TestOnAPIServer applies the manifests to a real kube-apiserver (RBAC,
// admission, Pod Security on) and acts as the controller's ServiceAccount,
// with its own token, doing everything the controller does and a list of
// things it must not be able to do.
func TestOnAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	c := kubetest.Start(t)
	c.InstallTektonCRDs(t)
	applyDir(t, c, ".")
	admin := api{t, c, c.Admin(), "admin"}

	// What a cluster with Tekton running would hold: a namespace with a
	// ServiceAccount naming an image pull secret, a finished TaskRun and a
	// PipelineRun, and objects of the controller's namespace it must not
	// touch.
	c.Apply(t, []byte(fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: %[1]s
---
apiVersion: v1
kind: Secret
metadata:
  name: %[3]s
  namespace: %[1]s
type: kubernetes.io/dockerconfigjson
data:
  .dockerconfigjson: eyJhdXRocyI6e319
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: %[2]s
  namespace: %[1]s
imagePullSecrets:
- name: %[3]s
---
apiVersion: tekton.dev/v1
kind: TaskRun
metadata:
  name: build-1
  namespace: %[1]s
  annotations:
    example.com/owner: team-a
  labels:
    app: widget
spec:
  serviceAccountName: %[2]s
  taskSpec:
    steps:
    - name: build
      image: busybox
      script: "true"
---
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: release-1
  namespace: %[1]s
spec:
  pipelineSpec:
    tasks:
    - name: build
      taskSpec:
        steps:
        - name: build
          image: busybox
          script: "true"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: not-the-config
  namespace: signet-tekton
data: {}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: someone-elses-lease
  namespace: signet-tekton
spec:
  holderIdentity: other
`, runNS, runSA, runSecret)))

	ctl := api{t, c, c.TokenClient(c.Token(t, namespace, serviceAccount, "", time.Hour)), "signet-tekton"}
	taskRuns := "/apis/tekton.dev/v1/namespaces/" + runNS + "/taskruns"
	pipelineRuns := "/apis/tekton.dev/v1/namespaces/" + runNS + "/pipelineruns"
	configMaps := "/api/v1/namespaces/" + namespace + "/configmaps"
	leases := "/apis/coordination.k8s.io/v1/namespaces/" + namespace + "/leases"

	t.Run("can", func(t *testing.T) {
		ctl, admin := api{t, c, ctl.hc, ctl.as}, api{t, c, admin.hc, admin.as}
		// Informers: list and watch runs in every namespace. The first
		// request waits for RBAC to see the bindings just applied.
		for _, res := range []string{"taskruns", "pipelineruns"} {
			body := ctl.eventually(http.StatusOK, http.MethodGet, "/apis/tekton.dev/v1/"+res, nil)
			var list struct {
				Items []struct {
					Metadata struct{ Name, Namespace string }
				}
			}
			if err := json.Unmarshal(body, &list); err != nil || len(list.Items) != 1 || list.Items[0].Metadata.Namespace != runNS {
				t.Errorf("list %s: %v %s", res, err, clip(body))
			}
			// A watch from no resourceVersion starts with the existing
			// objects as ADDED events, then ends after timeoutSeconds.
			body = ctl.expect(http.StatusOK, http.MethodGet, "/apis/tekton.dev/v1/"+res+"?watch=true&timeoutSeconds=1", nil)
			if !strings.Contains(string(body), `"type":"ADDED"`) {
				t.Errorf("watch %s: no ADDED event: %s", res, clip(body))
			}
			ctl.expect(http.StatusOK, http.MethodGet, "/apis/tekton.dev/v1/namespaces/"+runNS+"/"+res, nil)
		}
		ctl.expect(http.StatusOK, http.MethodGet, taskRuns+"/build-1", nil)

		// Mark runs: a merge patch of signet.dev/ annotations (the
		// admission policy lets it through).
		mark := map[string]any{"metadata": map[string]any{"annotations": map[string]any{
			"signet.dev/signed": "true", "signet.dev/log-indexes": "log.example/7",
		}}}
		body := ctl.expect(http.StatusOK, http.MethodPatch, taskRuns+"/build-1", mark)
		if !strings.Contains(string(body), `"signet.dev/signed":"true"`) || !strings.Contains(string(body), `"example.com/owner":"team-a"`) {
			t.Errorf("patched TaskRun: %s", clip(body))
		}
		ctl.expect(http.StatusOK, http.MethodPatch, pipelineRuns+"/release-1", mark)
		// Removing its own annotation is a change to signet.dev/ too.
		ctl.expect(http.StatusOK, http.MethodPatch, taskRuns+"/build-1",
			map[string]any{"metadata": map[string]any{"annotations": map[string]any{"signet.dev/log-indexes": nil}}})

		// Its ConfigMap: get, and list and watch by name as the informer does.
		ctl.expect(http.StatusOK, http.MethodGet, configMaps+"/"+configMapName, nil)
		body = ctl.expect(http.StatusOK, http.MethodGet, configMaps+"?fieldSelector=metadata.name%3D"+configMapName, nil)
		if !strings.Contains(string(body), `"signet.identity":"controller"`) {
			t.Errorf("list of the ConfigMap: %s", clip(body))
		}
		ctl.expect(http.StatusOK, http.MethodGet, configMaps+"?watch=true&timeoutSeconds=1&fieldSelector=metadata.name%3D"+configMapName, nil)

		// Leader election: create the Lease, read it, renew it.
		now := time.Now().UTC().Format("2006-01-02T15:04:05.000000Z")
		lease := newObj("coordination.k8s.io/v1", "Lease", leaseName, map[string]any{"spec": map[string]any{
			"holderIdentity": "signet-tekton-0", "leaseDurationSeconds": 15, "acquireTime": now, "renewTime": now,
		}})
		ctl.expect(http.StatusCreated, http.MethodPost, leases, lease)
		body = ctl.expect(http.StatusOK, http.MethodGet, leases+"/"+leaseName, nil)
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		got["spec"].(map[string]any)["renewTime"] = time.Now().UTC().Format("2006-01-02T15:04:05.000000Z")
		ctl.expect(http.StatusOK, http.MethodPut, leases+"/"+leaseName, got)

		// Events about a run, in the run's namespace: core v1 (client-go's
		// recorder) and events.k8s.io, created and then patched.
		ref := map[string]any{"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "namespace": runNS, "name": "build-1"}
		stamp := time.Now().UTC().Format(time.RFC3339)
		ctl.expect(http.StatusCreated, http.MethodPost, "/api/v1/namespaces/"+runNS+"/events", newObj("v1", "Event", "build-1.signed", map[string]any{
			"involvedObject": ref, "reason": "Signed", "message": "signed 1 image", "type": "Normal",
			"source": map[string]any{"component": "signet-tekton"}, "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
		}))
		ctl.expect(http.StatusOK, http.MethodPatch, "/api/v1/namespaces/"+runNS+"/events/build-1.signed", map[string]any{"count": 2})
		ctl.expect(http.StatusCreated, http.MethodPost, "/apis/events.k8s.io/v1/namespaces/"+runNS+"/events", newObj("events.k8s.io/v1", "Event", "build-1.signed2", map[string]any{
			"regarding": ref, "reason": "Signed", "note": "signed 1 image", "type": "Normal", "action": "Sign",
			"eventTime": time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"), "reportingController": "signet.dev/signet-tekton", "reportingInstance": "signet-tekton-0",
		}))
		ctl.expect(http.StatusOK, http.MethodPatch, "/apis/events.k8s.io/v1/namespaces/"+runNS+"/events/build-1.signed2", map[string]any{
			"series": map[string]any{"count": 2, "lastObservedTime": time.Now().UTC().Format("2006-01-02T15:04:05.000000Z")},
		})
		// An Event on its own ConfigMap (a refused configuration).
		ctl.expect(http.StatusCreated, http.MethodPost, "/api/v1/namespaces/"+namespace+"/events", newObj("v1", "Event", "config.refused", map[string]any{
			"involvedObject": map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "namespace": namespace, "name": configMapName},
			"reason":         "ConfigRefused", "message": "x", "type": "Warning", "source": map[string]any{"component": "signet-tekton"},
			"firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
		}))

		// Registry credentials the way Chains finds them: the run's
		// ServiceAccount, then each image pull secret by name.
		body = ctl.expect(http.StatusOK, http.MethodGet, "/api/v1/namespaces/"+runNS+"/serviceaccounts/"+runSA, nil)
		if !strings.Contains(string(body), runSecret) {
			t.Errorf("ServiceAccount: %s", clip(body))
		}
		ctl.expect(http.StatusOK, http.MethodGet, "/api/v1/namespaces/"+runNS+"/secrets/"+runSecret, nil)

		// The admin still may change anything: the policy is the controller's only.
		admin.expect(http.StatusOK, http.MethodPatch, taskRuns+"/build-1", map[string]any{"metadata": map[string]any{"labels": map[string]any{"reviewed": "yes"}}})
	})

	t.Run("cannot", func(t *testing.T) {
		ctl := api{t, c, ctl.hc, ctl.as}
		run := taskRuns + "/build-1"
		// Runs: no delete, create, update, status.
		ctl.forbidden(http.MethodDelete, run, nil)
		ctl.forbidden(http.MethodDelete, pipelineRuns+"/release-1", nil)
		ctl.forbidden(http.MethodDelete, taskRuns, nil)
		ctl.forbidden(http.MethodPost, taskRuns, newObj("tekton.dev/v1", "TaskRun", "mine", map[string]any{"spec": map[string]any{"taskRef": map[string]any{"name": "x"}}}))
		ctl.forbidden(http.MethodPatch, run+"/status", map[string]any{"status": map[string]any{"podName": "x"}})
		body := ctl.expect(http.StatusOK, http.MethodGet, run, nil)
		ctl.forbidden(http.MethodPut, run, body)

		// Secrets only by name: no list or watch, here or anywhere.
		ctl.forbidden(http.MethodGet, "/api/v1/namespaces/"+runNS+"/secrets", nil)
		ctl.forbidden(http.MethodGet, "/api/v1/secrets", nil)
		ctl.forbidden(http.MethodGet, "/api/v1/secrets?watch=true&timeoutSeconds=1", nil)
		ctl.forbidden(http.MethodPost, "/api/v1/namespaces/"+runNS+"/secrets", newObj("v1", "Secret", "mine", nil))
		ctl.forbidden(http.MethodGet, "/api/v1/namespaces/"+runNS+"/serviceaccounts", nil)

		// Nothing that runs code or mints credentials.
		pod := newObj("v1", "Pod", "mine", map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "x", "image": "busybox"}}}})
		ctl.forbidden(http.MethodPost, "/api/v1/namespaces/"+runNS+"/pods", pod)
		ctl.forbidden(http.MethodPost, "/api/v1/namespaces/"+namespace+"/pods", pod)
		ctl.forbidden(http.MethodGet, "/api/v1/pods", nil)
		token := "/api/v1/namespaces/" + runNS + "/serviceaccounts/" + runSA + "/token"
		tokenRequest := map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": map[string]any{"audiences": []string{"sigstore"}, "expirationSeconds": 600}}
		ctl.forbidden(http.MethodPost, token, tokenRequest)
		ctl.forbidden(http.MethodPost, "/api/v1/namespaces/"+namespace+"/serviceaccounts/"+serviceAccount+"/token", tokenRequest)

		// Its ConfigMap is read only; no other ConfigMap at all.
		ctl.forbidden(http.MethodGet, configMaps, nil)
		ctl.forbidden(http.MethodGet, configMaps+"/not-the-config", nil)
		ctl.forbidden(http.MethodPatch, configMaps+"/"+configMapName, map[string]any{"data": map[string]any{"signet.identity": "run-serviceaccount"}})
		ctl.forbidden(http.MethodPost, configMaps, newObj("v1", "ConfigMap", "mine", nil))
		ctl.forbidden(http.MethodGet, "/api/v1/namespaces/"+runNS+"/configmaps", nil)
		// Only its own Lease, only in its namespace, never deleted.
		ctl.forbidden(http.MethodGet, leases+"/someone-elses-lease", nil)
		ctl.forbidden(http.MethodPatch, leases+"/someone-elses-lease", map[string]any{"spec": map[string]any{"holderIdentity": "me"}})
		ctl.forbidden(http.MethodDelete, leases+"/"+leaseName, nil)
		ctl.forbidden(http.MethodPost, "/apis/coordination.k8s.io/v1/namespaces/"+runNS+"/leases", newObj("coordination.k8s.io/v1", "Lease", "x", nil))
		// No reading of Events or RBAC.
		ctl.forbidden(http.MethodGet, "/api/v1/namespaces/"+runNS+"/events", nil)
		ctl.forbidden(http.MethodGet, "/apis/rbac.authorization.k8s.io/v1/clusterroles", nil)
	})

	t.Run("patches only signet.dev annotations", func(t *testing.T) {
		ctl := api{t, c, ctl.hc, ctl.as}
		run := taskRuns + "/build-1"
		for what, patch := range map[string]map[string]any{
			"labels":            {"metadata": map[string]any{"labels": map[string]any{"app": "other"}}},
			"a new label":       {"metadata": map[string]any{"labels": map[string]any{"signet.dev/x": "y"}}},
			"other annotations": {"metadata": map[string]any{"annotations": map[string]any{"example.com/owner": "me"}}},
			"annotations":       {"metadata": map[string]any{"annotations": map[string]any{"tekton.dev/x": "y"}}},
			"spec":              {"spec": map[string]any{"status": "TaskRunCancelled"}},
			"finalizers":        {"metadata": map[string]any{"finalizers": []string{"signet.dev/hold"}}},
		} {
			status, body := c.Do(t, ctl.hc, http.MethodPatch, run, patch)
			if status != http.StatusForbidden || !strings.Contains(string(body), "signet-tekton may change only signet.dev/ annotations") {
				t.Errorf("patch of %s: %d %s, want 403 from the admission policy", what, status, clip(body))
			}
		}
		// Removing another's annotation is a change too.
		status, body := c.Do(t, ctl.hc, http.MethodPatch, run, map[string]any{"metadata": map[string]any{"annotations": map[string]any{"example.com/owner": nil}}})
		if status != http.StatusForbidden {
			t.Errorf("removing example.com/owner: %d %s, want 403", status, clip(body))
		}
		body = api{t, c, c.Admin(), "admin"}.expect(http.StatusOK, http.MethodGet, run, nil)
		var tr struct {
			Metadata struct {
				Labels, Annotations map[string]string
				Finalizers          []string
			}
			Spec map[string]any
		}
		if err := json.Unmarshal(body, &tr); err != nil {
			t.Fatal(err)
		}
		if tr.Metadata.Labels["app"] != "widget" || tr.Metadata.Annotations["example.com/owner"] != "team-a" || tr.Spec["status"] != nil || len(tr.Metadata.Finalizers) > 0 {
			t.Errorf("the TaskRun changed: %s", clip(body))
		}
	})

	t.Run("pod template meets the restricted Pod Security Standard", func(t *testing.T) {
		// No kubelet runs the Deployment, but creating its pod goes
		// through the same admission (the namespace enforces restricted).
		admin := api{t, c, c.Admin(), "admin"}
		var d appsv1.Deployment
		if err := decodeStrict(load(t, ".").one(t, "Deployment").raw, &d); err != nil {
			t.Fatal(err)
		}
		pod := corev1.Pod{ObjectMeta: d.Spec.Template.ObjectMeta, Spec: d.Spec.Template.Spec}
		pod.APIVersion, pod.Kind, pod.Name = "v1", "Pod", "template-check"
		admin.expect(http.StatusCreated, http.MethodPost, "/api/v1/namespaces/"+namespace+"/pods", pod)

		// And the check is real: the same pod as root is refused.
		root := *pod.DeepCopy()
		root.Name = "template-check-root"
		f := false
		root.Spec.SecurityContext.RunAsNonRoot = &f
		root.Spec.Containers[0].SecurityContext.RunAsNonRoot = nil
		status, body := c.Do(t, admin.hc, http.MethodPost, "/api/v1/namespaces/"+namespace+"/pods", root)
		if status != http.StatusForbidden || !strings.Contains(string(body), "violates PodSecurity") {
			t.Errorf("a root pod: %d %s, want refused by Pod Security", status, clip(body))
		}
	})

	// Last: the optional manifest adds token requests, and only that.
	t.Run("optional run-serviceaccount tokens", func(t *testing.T) {
		ctl := api{t, c, ctl.hc, ctl.as}
		token := "/api/v1/namespaces/" + runNS + "/serviceaccounts/" + runSA + "/token"
		tokenRequest := map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": map[string]any{"audiences": []string{"sigstore"}, "expirationSeconds": 600}}
		ctl.forbidden(http.MethodPost, token, tokenRequest)
		applyDir(t, c, optionalDir)
		body := ctl.eventually(http.StatusCreated, http.MethodPost, token, tokenRequest)
		var tr struct {
			Status struct{ Token string }
		}
		if err := json.Unmarshal(body, &tr); err != nil {
			t.Fatal(err)
		}
		claims := jwtClaims(t, tr.Status.Token)
		if claims.Sub != "system:serviceaccount:"+runNS+":"+runSA || !contains(claims.Aud, "sigstore") || claims.Iss != c.Issuer {
			t.Errorf("token claims %+v", claims)
		}
		// Still no reading of secrets or creating pods.
		ctl.forbidden(http.MethodGet, "/api/v1/namespaces/"+runNS+"/secrets", nil)
		ctl.forbidden(http.MethodPost, "/api/v1/namespaces/"+runNS+"/pods",
			newObj("v1", "Pod", "mine", map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "x", "image": "busybox"}}}}))
	})
}

type claims struct {
	Iss, Sub string
	Aud      []string
}

func jwtClaims(t *testing.T, jwt string) claims {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c claims
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
