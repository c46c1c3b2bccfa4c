package controller_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os/exec"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/signet-dev/signet/core/oci/ocitest"
	"github.com/signet-dev/signet/server/servertest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The whole keyless flow for one TaskRun with Chains' IMAGE_URL and
// IMAGE_DIGEST results: the image is signed and its provenance attested,
// both attached as referrers and verifiable by the controller's identity,
// and the run is marked with small annotations and an Event.
func TestTaskRunImage(t *testing.T) {
	e := getEnv(t)
	const ns = "image"
	e.namespace(t, ns)
	p := e.controller(t, ns)
	digest := e.pushImage(t, "team/app")
	repo := e.reg.Ref("team/app")
	e.taskRun(t, ns, "build-1", runSpec{results: map[string]string{"IMAGE_URL": repo + ":v1", "IMAGE_DIGEST": digest}})
	ann := e.marked(t, "taskrun", ns, "build-1", time.Minute)
	if ann["signet.dev/signed"] != "true" || ann["signet.dev/subjects"] != "1" {
		t.Fatalf("annotations %v; want signed=true for 1 subject", ann)
	}
	if n := len(strings.Split(ann["signet.dev/log-indexes"], ",")); n != 2 {
		t.Errorf("log indexes %q: want 2 (image signature, provenance)", ann["signet.dev/log-indexes"])
	}
	if ann["signet.dev/attestation-ids"] == "" || ann["signet.dev/reason"] != "" {
		t.Errorf("annotations %v: want an attestation ID and no reason", ann)
	}

	ref := repo + "@" + digest
	if code, out := e.signet(t, append([]string{"verify", ref}, e.policy(e.identity)...)...); code != 0 {
		t.Errorf("signet verify: exit %d\n%s", code, out)
	}
	if code, out := e.signet(t, append([]string{"verify-attestation", ref, "--type", "slsaprovenance1"}, e.policy(e.identity)...)...); code != 0 {
		t.Errorf("signet verify-attestation: exit %d\n%s", code, out)
	}
	other := "https://kubernetes.io/namespaces/" + ns + "/serviceaccounts/builder"
	if code, out := e.signet(t, append([]string{"verify-attestation", ref, "--type", "slsaprovenance1"}, e.policy(other)...)...); code != 1 {
		t.Errorf("verify-attestation with another identity: exit %d, want 1\n%s", code, out)
	}
	otherImage := e.reg.Ref("team/app@" + e.pushImage(t, "team/app"))
	if code, out := e.signet(t, append([]string{"verify-attestation", otherImage, "--type", "slsaprovenance1"}, e.policy(e.identity)...)...); code != 1 {
		t.Errorf("verify-attestation of an image the run did not build: exit %d, want 1\n%s", code, out)
	}

	var signedEvent bool
	for _, ev := range e.events(t, ns, "build-1") {
		if ev.Reason == "Signed" && ev.Type == "Normal" {
			signedEvent = true
		}
	}
	if !signedEvent {
		t.Errorf("no Signed event on the TaskRun: %s", mustJSON(e.events(t, ns, "build-1")))
	}
	if got := p.metric(t, `signet_tekton_runs_signed_total{kind="taskrun"}`); got != 1 {
		t.Errorf("signet_tekton_runs_signed_total = %v, want 1", got)
	}

	// Marked runs are not signed again (the next resync or any update).
	tr, err := e.tekton.TektonV1().TaskRuns(ns).Get(context.Background(), "build-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr.Labels = map[string]string{"touched": "yes"}
	if _, err := e.tekton.TektonV1().TaskRuns(ns).Update(context.Background(), tr, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if got := p.metric(t, `signet_tekton_runs_signed_total{kind="taskrun"}`); got != 1 {
		t.Errorf("after an update of a signed run, signet_tekton_runs_signed_total = %v, want still 1", got)
	}
}

func signedRef(t *testing.T, e *env, repo string) (ref, digest string) {
	t.Helper()
	digest = e.pushImage(t, repo)
	return e.reg.Ref(repo + "@" + digest), digest
}

// An index is signed, and so is each of its platforms; the provenance
// names the index.
func TestImageIndex(t *testing.T) {
	e := getEnv(t)
	const ns = "index"
	e.namespace(t, ns)
	e.controller(t, ns)
	digest, platforms := e.pushIndex(t, "team/multi")
	repo := e.reg.Ref("team/multi")
	e.taskRun(t, ns, "build", runSpec{results: map[string]string{"IMAGE_URL": repo, "IMAGE_DIGEST": digest}})
	ann := e.marked(t, "taskrun", ns, "build", time.Minute)
	if ann["signet.dev/signed"] != "true" || len(strings.Split(ann["signet.dev/log-indexes"], ",")) != 4 {
		t.Fatalf("annotations %v; want 4 log entries (index + 2 platforms signed, provenance)", ann)
	}
	for _, d := range append([]string{digest}, platforms...) {
		if code, out := e.signet(t, append([]string{"verify", repo + "@" + d}, e.policy(e.identity)...)...); code != 0 {
			t.Errorf("signet verify %s: exit %d\n%s", d, code, out)
		}
	}
	if code, out := e.signet(t, append([]string{"verify-attestation", repo + "@" + digest, "--type", "slsaprovenance1"}, e.policy(e.identity)...)...); code != 0 {
		t.Errorf("verify-attestation of the index: exit %d\n%s", code, out)
	}
}

// A failed run is not signed by default; with signet.failed-runs its
// provenance is attested, and its images are still not signed.
func TestFailedRun(t *testing.T) {
	e := getEnv(t)
	const ns = "failed"
	e.namespace(t, ns)
	p := e.controller(t, ns)
	ref, digest := signedRef(t, e, "team/failed")
	repo := e.reg.Ref("team/failed")
	e.taskRun(t, ns, "broken", runSpec{failed: true, results: map[string]string{"IMAGE_URL": repo, "IMAGE_DIGEST": digest}})
	waitFor(t, 30*time.Second, "the failed run to be skipped", func() bool {
		return p.metric(t, `signet_tekton_runs_skipped_total{kind="taskrun",reason="failed-run"}`) == 1
	})
	tr, err := e.tekton.TektonV1().TaskRuns(ns).Get(context.Background(), "broken", metav1.GetOptions{})
	if err != nil || tr.Annotations["signet.dev/signed"] != "" {
		t.Fatalf("failed run annotated %v (%v); want no signet.dev/ annotation", tr.Annotations, err)
	}
	if s, a := e.attached(t, ref); s+a != 0 {
		t.Fatalf("%d signatures, %d attestations attached for a failed run; want none", s, a)
	}

	e.config(t, map[string]string{"signet.failed-runs": "true"})
	time.Sleep(time.Second) // the informer delivers the change
	e.taskRun(t, ns, "broken-2", runSpec{failed: true, results: map[string]string{"IMAGE_URL": repo, "IMAGE_DIGEST": digest}})
	ann := e.marked(t, "taskrun", ns, "broken-2", time.Minute)
	if ann["signet.dev/signed"] != "true" || strings.Contains(ann["signet.dev/log-indexes"], ",") {
		t.Fatalf("annotations %v; want signed with one log entry (provenance only)", ann)
	}
	if s, a := e.attached(t, ref); s != 0 || a != 1 {
		t.Errorf("%d signatures, %d attestations; want only the provenance", s, a)
	}
	if code, _ := e.signet(t, append([]string{"verify", ref}, e.policy(e.identity)...)...); code != 1 {
		t.Errorf("signet verify of a failed run's image: exit %d, want 1 (never signed)", code)
	}
}

// A run that produced nothing signet can name is marked, with the reason,
// and nothing is logged.
func TestNoSubjects(t *testing.T) {
	e := getEnv(t)
	const ns = "nothing"
	e.namespace(t, ns)
	e.controller(t, ns)
	e.taskRun(t, ns, "lint", runSpec{results: map[string]string{"REPORT": "all good"}})
	ann := e.marked(t, "taskrun", ns, "lint", time.Minute)
	if ann["signet.dev/signed"] != "true" || ann["signet.dev/subjects"] != "0" || ann["signet.dev/log-indexes"] != "" || !strings.Contains(ann["signet.dev/reason"], "nothing to sign") {
		t.Errorf("annotations %v; want signed=true, subjects=0, no log entries, the reason", ann)
	}
}

// While the server is down, attempts fail and are retried with backoff;
// when it is back at the same URL, the run is signed. Past the configured
// attempts, the run is marked failed with the reason and a Warning event.
func TestServerDownAndBack(t *testing.T) {
	e := getEnv(t)
	const ns = "outage"
	e.namespace(t, ns)
	port := servertest.FreePort(t)
	data := t.TempDir()
	srv := e.server(t, port, data)
	url := srv.URL
	srv.Kill()
	e.config(t, map[string]string{"signet.max-attempts": "100"})
	p := e.controller(t, ns, "--server", url)
	ref, digest := signedRef(t, e, "team/outage")
	e.taskRun(t, ns, "during-outage", runSpec{results: map[string]string{"IMAGE_URL": e.reg.Ref("team/outage"), "IMAGE_DIGEST": digest}})
	waitFor(t, 30*time.Second, "failed attempts", func() bool {
		return p.metric(t, `signet_tekton_sign_errors_total{kind="taskrun"}`) >= 3
	})
	tr, _ := e.tekton.TektonV1().TaskRuns(ns).Get(context.Background(), "during-outage", metav1.GetOptions{})
	if tr.Annotations["signet.dev/signed"] != "" {
		t.Fatalf("marked %v while the server is down", tr.Annotations)
	}
	srv = e.server(t, port, data)
	ann := e.marked(t, "taskrun", ns, "during-outage", time.Minute)
	if ann["signet.dev/signed"] != "true" {
		t.Fatalf("annotations %v after the server came back", ann)
	}
	root := filepath.Join(t.TempDir(), "root.json")
	b, err := srv.Get("/trust/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(root, b, 0o644)
	pol := []string{"--trusted-root", root, "--certificate-identity", e.identity, "--certificate-oidc-issuer", e.issuer}
	if code, out := e.signet(t, append([]string{"verify-attestation", ref, "--type", "slsaprovenance1"}, pol...)...); code != 0 {
		t.Errorf("verify-attestation after the outage: exit %d\n%s", code, out)
	}

	// Giving up: two attempts, the server down again.
	srv.Kill()
	e.config(t, map[string]string{"signet.max-attempts": "2"})
	time.Sleep(time.Second)
	_, digest2 := signedRef(t, e, "team/outage2")
	e.taskRun(t, ns, "given-up", runSpec{results: map[string]string{"IMAGE_URL": e.reg.Ref("team/outage2"), "IMAGE_DIGEST": digest2}})
	ann = e.marked(t, "taskrun", ns, "given-up", time.Minute)
	if ann["signet.dev/signed"] != "failed" || !strings.Contains(ann["signet.dev/reason"], "after 2 attempts") || !strings.Contains(ann["signet.dev/reason"], url) {
		t.Errorf("annotations %v; want signed=failed with a reason naming the attempts and the server", ann)
	}
	var warned bool
	for _, ev := range e.events(t, ns, "given-up") {
		warned = warned || (ev.Type == "Warning" && ev.Reason == "SigningFailed" && strings.Contains(ev.Message, "after 2 attempts"))
	}
	if !warned {
		t.Errorf("no SigningFailed warning: %s", mustJSON(e.events(t, ns, "given-up")))
	}
	if got := p.metric(t, `signet_tekton_runs_failed_total{kind="taskrun"}`); got != 1 {
		t.Errorf("signet_tekton_runs_failed_total = %v, want 1", got)
	}
}

// Deleting a run is never held up: the controller sets no finalizer, and a
// run deleted before it could be signed is simply gone.
func TestDeleteUnsigned(t *testing.T) {
	e := getEnv(t)
	const ns = "deleted"
	e.namespace(t, ns)
	port := servertest.FreePort(t)
	srv := e.server(t, port, t.TempDir())
	url := srv.URL
	srv.Kill() // every attempt fails
	p := e.controller(t, ns, "--server", url)
	_, digest := signedRef(t, e, "team/deleted")
	e.taskRun(t, ns, "doomed", runSpec{results: map[string]string{"IMAGE_URL": e.reg.Ref("team/deleted"), "IMAGE_DIGEST": digest}})
	waitFor(t, 30*time.Second, "a failed attempt", func() bool {
		return p.metric(t, `signet_tekton_sign_errors_total{kind="taskrun"}`) >= 1
	})
	ctx := context.Background()
	tr, err := e.tekton.TektonV1().TaskRuns(ns).Get(ctx, "doomed", metav1.GetOptions{})
	if err != nil || len(tr.Finalizers) != 0 {
		t.Fatalf("finalizers %v (%v); want none", tr.Finalizers, err)
	}
	if err := e.tekton.TektonV1().TaskRuns(ns).Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.tekton.TektonV1().TaskRuns(ns).Get(ctx, "doomed", metav1.GetOptions{}); err == nil {
		t.Fatal("the TaskRun is still there right after its deletion")
	}
	// The controller carries on: the next run (server back) is signed.
	e.server(t, port, t.TempDir())
	_, digest2 := signedRef(t, e, "team/deleted")
	e.taskRun(t, ns, "next", runSpec{results: map[string]string{"IMAGE_URL": e.reg.Ref("team/deleted"), "IMAGE_DIGEST": digest2}})
	if ann := e.marked(t, "taskrun", ns, "next", time.Minute); ann["signet.dev/signed"] != "true" {
		t.Errorf("annotations %v", ann)
	}
}

// backlog creates n completed runs, each with an image of its own, and
// returns the image references by run name.
func (e *env) backlog(t *testing.T, ns, prefix string, n int) map[string]string {
	t.Helper()
	refs := map[string]string{}
	for i := range n {
		name := fmt.Sprintf("%s-%02d", prefix, i)
		ref, digest := signedRef(t, e, "team/"+ns)
		refs[name] = ref
		e.taskRun(t, ns, name, runSpec{results: map[string]string{"IMAGE_URL": e.reg.Ref("team/" + ns), "IMAGE_DIGEST": digest}})
	}
	return refs
}

// exactlyOnce waits for every run to be marked signed and checks that each
// image carries one signature and one provenance: no run signed twice.
func (e *env) exactlyOnce(t *testing.T, ns string, refs map[string]string) {
	t.Helper()
	for name, ref := range refs {
		if ann := e.marked(t, "taskrun", ns, name, 2*time.Minute); ann["signet.dev/signed"] != "true" {
			t.Errorf("%s: annotations %v", name, ann)
			continue
		}
		if s, a := e.attached(t, ref); s != 1 || a != 1 {
			t.Errorf("%s: %d signatures and %d attestations attached; want one of each", name, s, a)
		}
	}
}

// A controller stopped mid-backlog (SIGTERM, as a rolling update does)
// finishes what it holds; the next one signs the rest, none twice.
func TestRestartMidBacklog(t *testing.T) {
	e := getEnv(t)
	const ns = "restart"
	e.namespace(t, ns)
	refs := e.backlog(t, ns, "run", 40)
	p := e.controller(t, ns, "--workers", "2")
	waitFor(t, time.Minute, "a few runs signed", func() bool {
		return p.metric(t, `signet_tekton_runs_signed_total{kind="taskrun"}`) >= 5
	})
	p.stop(t)
	signed := 0
	for name := range refs {
		tr, err := e.tekton.TektonV1().TaskRuns(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && tr.Annotations["signet.dev/signed"] != "" {
			signed++
		}
	}
	if signed == len(refs) {
		t.Fatalf("all %d runs were signed before the restart; the test needs a backlog left", signed)
	}
	e.controller(t, ns)
	e.exactlyOnce(t, ns, refs)
}

// Two replicas: one holds the Lease and signs; the other stands by and
// takes over when the first stops. Every run is signed once.
func TestTwoReplicas(t *testing.T) {
	e := getEnv(t)
	const ns = "replicas"
	e.namespace(t, ns)
	a := e.controller(t, ns, "--id", "replica-a")
	waitFor(t, 30*time.Second, "replica-a to lead", func() bool { return a.metric(t, "signet_tekton_leader") == 1 })
	b := e.controller(t, ns, "--id", "replica-b")
	refs := e.backlog(t, ns, "first", 10)
	for name := range refs {
		e.marked(t, "taskrun", ns, name, time.Minute)
	}
	if got := b.metric(t, `signet_tekton_runs_signed_total{kind="taskrun"}`); got != 0 || b.metric(t, "signet_tekton_leader") != 0 {
		t.Errorf("the standby signed %v runs (leader=%v); want none", got, b.metric(t, "signet_tekton_leader"))
	}
	a.stop(t)
	more := e.backlog(t, ns, "second", 10)
	waitFor(t, 30*time.Second, "replica-b to lead", func() bool { return b.metric(t, "signet_tekton_leader") == 1 })
	for k, v := range more {
		refs[k] = v
	}
	e.exactlyOnce(t, ns, refs)
	if got := b.metric(t, `signet_tekton_runs_signed_total{kind="taskrun"}`); got != 10 {
		t.Errorf("replica-b signed %v runs; want the 10 made after replica-a stopped", got)
	}
}

// The ConfigMap is reloaded without a restart; a refused edit keeps the
// settings in force, says why on the ConfigMap, and a controller started
// with a refused ConfigMap exits 2 naming the key.
func TestConfigReload(t *testing.T) {
	e := getEnv(t)
	const ns = "reload"
	e.namespace(t, ns)
	p := e.controller(t, ns)
	e.config(t, map[string]string{"artifacts.oci.storage": ""})
	waitFor(t, 30*time.Second, "the new settings", func() bool { return strings.Contains(p.logs(), "settings changed") })
	ref, digest := signedRef(t, e, "team/reload")
	e.taskRun(t, ns, "no-image-signature", runSpec{results: map[string]string{"IMAGE_URL": e.reg.Ref("team/reload"), "IMAGE_DIGEST": digest}})
	e.marked(t, "taskrun", ns, "no-image-signature", time.Minute)
	if s, a := e.attached(t, ref); s != 0 || a != 1 {
		t.Errorf("artifacts.oci.storage empty: %d signatures, %d attestations; want the provenance only", s, a)
	}

	e.config(t, map[string]string{"artifacts.oci.storage": "", "transparency.enabled": "manual"})
	waitFor(t, 30*time.Second, "the refusal", func() bool { return strings.Contains(p.logs(), "ConfigMap refused") })
	waitFor(t, 30*time.Second, "a ConfigRefused event", func() bool {
		for _, ev := range e.events(t, controllerNS, configName) {
			if ev.Reason == "ConfigRefused" && strings.Contains(ev.Message, "transparency.enabled") {
				return true
			}
		}
		return false
	})
	ref2, digest2 := signedRef(t, e, "team/reload")
	e.taskRun(t, ns, "still-no-signature", runSpec{results: map[string]string{"IMAGE_URL": e.reg.Ref("team/reload"), "IMAGE_DIGEST": digest2}})
	e.marked(t, "taskrun", ns, "still-no-signature", time.Minute)
	if s, a := e.attached(t, ref2); s != 0 || a != 1 {
		t.Errorf("after a refused edit: %d signatures, %d attestations; want the settings in force kept", s, a)
	}
	p.stop(t)

	bin, _ := binaries(t)
	out, err := exec.Command(bin, "--kubeconfig", e.kubecfg, "--server", e.srv.URL, "--namespace", ns, "--config-namespace", controllerNS, "--metrics-addr", "127.0.0.1:0").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), `"transparency.enabled"`) || !strings.Contains(string(out), "kubectl edit configmap -n signet-tekton signet-tekton-config") {
		t.Errorf("start with a refused ConfigMap: %v\n%s", err, out)
	}
}

// With signet.identity run-serviceaccount, the certificate names the run's
// own ServiceAccount, not the controller (which needs the optional
// serviceaccounts/token rule).
func TestRunServiceAccountIdentity(t *testing.T) {
	e := getEnv(t)
	const ns = "own-identity"
	e.namespace(t, ns)
	data, err := os.ReadFile(filepath.Join(moduleRoot(), "tekton", "config", "optional", "run-serviceaccount-tokens.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e.cluster.Apply(t, data)
	e.config(t, map[string]string{"signet.identity": "run-serviceaccount"})
	e.controller(t, ns)
	ref, digest := signedRef(t, e, "team/own")
	e.taskRun(t, ns, "build", runSpec{sa: "builder", results: map[string]string{"IMAGE_URL": e.reg.Ref("team/own"), "IMAGE_DIGEST": digest}})
	if ann := e.marked(t, "taskrun", ns, "build", time.Minute); ann["signet.dev/signed"] != "true" {
		t.Fatalf("annotations %v", ann)
	}
	builder := "https://kubernetes.io/namespaces/" + ns + "/serviceaccounts/builder"
	if code, out := e.signet(t, append([]string{"verify-attestation", ref, "--type", "slsaprovenance1"}, e.policy(builder)...)...); code != 0 {
		t.Errorf("verify-attestation as the run's ServiceAccount: exit %d\n%s", code, out)
	}
	if code, _ := e.signet(t, append([]string{"verify", ref}, e.policy(e.identity)...)...); code != 1 {
		t.Errorf("verify as the controller: exit %d, want 1 (the run's identity signed)", code)
	}
}

// Registry credentials come from the run's ServiceAccount's image pull
// secrets, as in Tekton Chains.
func TestPullSecrets(t *testing.T) {
	e := getEnv(t)
	const ns = "private"
	e.namespace(t, ns)
	reg := ocitest.Start(t, ocitest.WithHTPasswd("ci", "s3cret"))
	img, _ := random.Image(256, 1)
	ref, _ := name.ParseReference(reg.Ref("team/private:v1"), name.Insecure)
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "ci", Password: "s3cret"})); err != nil {
		t.Fatal(err)
	}
	digest, _ := img.Digest()
	ctx := context.Background()
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.Host, base64.StdEncoding.EncodeToString([]byte("ci:s3cret")))
	if _, err := e.kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "registry"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(cfg)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sa, _ := e.kube.CoreV1().ServiceAccounts(ns).Get(ctx, "builder", metav1.GetOptions{})
	sa.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "registry"}}
	if _, err := e.kube.CoreV1().ServiceAccounts(ns).Update(ctx, sa, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.controller(t, ns)
	e.taskRun(t, ns, "anonymous", runSpec{results: map[string]string{"IMAGE_URL": reg.Ref("team/private"), "IMAGE_DIGEST": digest.String()}})
	e.taskRun(t, ns, "with-secret", runSpec{sa: "builder", results: map[string]string{"IMAGE_URL": reg.Ref("team/private"), "IMAGE_DIGEST": digest.String()}})
	if ann := e.marked(t, "taskrun", ns, "with-secret", time.Minute); ann["signet.dev/signed"] != "true" {
		t.Errorf("with the pull secret: annotations %v", ann)
	}
	// Without credentials every attempt is refused; by default 5 attempts.
	ann := e.marked(t, "taskrun", ns, "anonymous", time.Minute)
	if ann["signet.dev/signed"] != "failed" || !strings.Contains(ann["signet.dev/reason"], "team/private") {
		t.Errorf("without credentials: annotations %v; want failed, naming the image", ann)
	}
}

// A PipelineRun is attested once every one of its TaskRuns is done, and its
// provenance names what they built.
func TestPipelineRunAfterItsTaskRuns(t *testing.T) {
	e := getEnv(t)
	const ns = "pipeline"
	e.namespace(t, ns)
	p := e.controller(t, ns)
	ref, digest := signedRef(t, e, "team/pipeline")
	e.taskRun(t, ns, "pr-build", runSpec{pipelineRun: "pr", sa: "builder", results: map[string]string{"IMAGE_URL": e.reg.Ref("team/pipeline"), "IMAGE_DIGEST": digest}})
	e.taskRun(t, ns, "pr-test", runSpec{pipelineRun: "pr", sa: "builder", running: true, results: map[string]string{"COVERAGE": "91%"}})
	e.pipelineRun(t, ns, "pr", map[string]string{"build": "pr-build", "test": "pr-test"}, nil)
	e.marked(t, "taskrun", ns, "pr-build", time.Minute)
	time.Sleep(3 * time.Second) // longer than the controller's wait for children
	if pr, _ := e.tekton.TektonV1().PipelineRuns(ns).Get(context.Background(), "pr", metav1.GetOptions{}); pr.Annotations["signet.dev/signed"] != "" {
		t.Fatalf("PipelineRun marked %v while one of its TaskRuns runs", pr.Annotations)
	}
	e.finish(t, ns, "pr-test")
	ann := e.marked(t, "pipelinerun", ns, "pr", time.Minute)
	if ann["signet.dev/signed"] != "true" || ann["signet.dev/subjects"] != "1" {
		t.Fatalf("PipelineRun annotations %v; want signed, 1 subject", ann)
	}
	// The TaskRun's provenance and the PipelineRun's, one image signature
	// (the PipelineRun signs the image again: it is its output too).
	if s, a := e.attached(t, ref); a != 2 || s < 1 {
		t.Errorf("%d signatures, %d attestations; want both provenances", s, a)
	}
	if got := p.metric(t, `signet_tekton_runs_signed_total{kind="pipelinerun"}`); got != 1 {
		t.Errorf("signet_tekton_runs_signed_total{pipelinerun} = %v", got)
	}
	code, out := e.signet(t, append([]string{"verify-attestation", ref, "--type", "slsaprovenance1", "-o", "json"}, e.policy(e.identity)...)...)
	if code != 0 {
		t.Fatalf("verify-attestation: exit %d\n%s", code, out)
	}
	// The PipelineRun's provenance, from the attestation store: Chains'
	// shape, naming the PipelineRun and carrying its TaskRuns' results.
	ids := strings.Split(ann["signet.dev/attestation-ids"], ",")
	st := e.statement(t, ids[0])
	pred := st["predicate"].(map[string]any)
	bd := pred["buildDefinition"].(map[string]any)
	md := pred["runDetails"].(map[string]any)["metadata"].(map[string]any)
	pr, _ := e.tekton.TektonV1().PipelineRuns(ns).Get(context.Background(), "pr", metav1.GetOptions{})
	if bd["buildType"] != "https://tekton.dev/chains/v2/slsa" || md["invocationId"] != string(pr.UID) {
		t.Errorf("provenance buildType %v, invocationId %v; want Chains' and the PipelineRun's UID %s", bd["buildType"], md["invocationId"], pr.UID)
	}
	if b := mustJSON(pred["runDetails"]); !strings.Contains(b, "COVERAGE") {
		t.Errorf("the PipelineRun's byproducts do not carry its TaskRuns' results: %s", b)
	}
}

// With --signing-config (any Sigstore deployment, so no attestation store),
// provenance goes only where it can be kept: attached to the run's images.
// A run whose provenance would be kept nowhere is refused, not logged and
// lost.
func TestSigningConfigWithoutStore(t *testing.T) {
	e := getEnv(t)
	const ns = "no-store"
	e.namespace(t, ns)
	sc := filepath.Join(t.TempDir(), "signing_config.json")
	b, err := e.srv.Get("/trust/signing_config.json")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(sc, b, 0o644)
	e.config(t, map[string]string{"signet.max-attempts": "1"})
	e.controller(t, ns, "--server", "", "--signing-config", sc, "--trusted-root", e.root)
	ref, digest := signedRef(t, e, "team/no-store")
	e.taskRun(t, ns, "image", runSpec{results: map[string]string{"IMAGE_URL": e.reg.Ref("team/no-store"), "IMAGE_DIGEST": digest}})
	if ann := e.marked(t, "taskrun", ns, "image", time.Minute); ann["signet.dev/signed"] != "true" || ann["signet.dev/attestation-ids"] != "" {
		t.Fatalf("annotations %v; want signed, no attestation store IDs", ann)
	}
	if code, out := e.signet(t, append([]string{"verify-attestation", ref, "--type", "slsaprovenance1"}, e.policy(e.identity)...)...); code != 0 {
		t.Errorf("verify-attestation: exit %d\n%s", code, out)
	}
	e.hintTaskRun(t, ns, "file-only", hintRun{results: []pipelinev1.TaskRunResult{
		hintObject("app-ARTIFACT_OUTPUTS", "uri", "https://files.example.com/app.tar.gz", "digest", "sha256:"+strings.Repeat("c", 64), "isBuildArtifact", "true"),
	}})
	ann := e.marked(t, "taskrun", ns, "file-only", time.Minute)
	if ann["signet.dev/signed"] != "failed" || !strings.Contains(ann["signet.dev/reason"], "kept nowhere") || ann["signet.dev/log-indexes"] != "" {
		t.Errorf("annotations %v; want failed, the reason, and nothing logged", ann)
	}
}
