package task_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/signet-dev/signet/core/oci/ocitest"
	"github.com/signet-dev/signet/core/token"
	"github.com/signet-dev/signet/server/servertest"
)

const signTaskPath = "signet-sign/0.1/signet-sign.yaml"

// The Kubernetes identity the tests sign as, and the SAN signet's CA puts
// in its certificate (server/identity: Fulcio's form).
const (
	runNamespace = "builds"
	runSA        = "release-bot"
	identity     = "https://kubernetes.io/namespaces/" + runNamespace + "/serviceaccounts/" + runSA
	otherID      = "https://kubernetes.io/namespaces/" + runNamespace + "/serviceaccounts/other-bot"
)

const slsaPredicate = `{"buildDefinition":{"buildType":"https://tekton.dev/chains/v2/slsa","externalParameters":{"runSpec":{"pipelineRef":{"name":"release"}}}},"runDetails":{"builder":{"id":"https://tekton.dev/chains/v2"}}}`

// TestSignTaskDeclaration: what Tekton and a cluster see of the Task
// before anything runs.
func TestSignTaskDeclaration(t *testing.T) {
	task := loadTask(t, signTaskPath)
	params := map[string]v1.ParamSpec{}
	for _, p := range task.Spec.Params {
		params[p.Name] = p
	}
	for name, typ := range map[string]v1.ParamType{
		"images": v1.ParamTypeArray, "files": v1.ParamTypeArray, "mode": v1.ParamTypeString,
		"predicate-type": v1.ParamTypeString, "predicate": v1.ParamTypeString, "server": v1.ParamTypeString,
		"signing-config": v1.ParamTypeString, "trusted-root": v1.ParamTypeString,
		"allow-insecure-registry": v1.ParamTypeString, "signet-image": v1.ParamTypeString, "token-path": v1.ParamTypeString,
	} {
		p, ok := params[name]
		if !ok || p.Type != typ || p.Default == nil {
			t.Errorf("param %s: %+v, want a %s with a default", name, p, typ)
		}
	}
	if d := params["signet-image"].Default; d == nil || d.StringVal != "ghcr.io/signet-dev/signet:latest" {
		t.Errorf("signet-image default %+v", d)
	}
	if d := params["mode"].Default; d == nil || d.StringVal != "sign" {
		t.Errorf("mode default %+v", d)
	}
	// The token: the projected path signet finds by itself.
	if d := params["token-path"].Default; d == nil || d.StringVal != token.DefaultKubernetesTokenPath {
		t.Errorf("token-path default %+v, want %s", d, token.DefaultKubernetesTokenPath)
	}
	var tokenVolume string
	for _, v := range task.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, src := range v.Projected.Sources {
			if sa := src.ServiceAccountToken; sa != nil {
				if sa.Audience != token.DefaultAudience || sa.Path != filepath.Base(token.DefaultKubernetesTokenPath) || sa.ExpirationSeconds == nil || *sa.ExpirationSeconds != 600 {
					t.Errorf("token projection %+v, want audience sigstore, path oidc-token, 600 s", sa)
				}
				tokenVolume = v.Name
			}
		}
	}
	if tokenVolume == "" {
		t.Fatal("no projected serviceAccountToken volume")
	}
	if len(task.Spec.Steps) != 1 {
		t.Fatalf("%d steps", len(task.Spec.Steps))
	}
	step := task.Spec.Steps[0]
	if i := slices.IndexFunc(step.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.Name == tokenVolume && m.MountPath == filepath.Dir(token.DefaultKubernetesTokenPath) && m.ReadOnly
	}); i < 0 {
		t.Errorf("the step mounts %+v, want %s read-only at %s", step.VolumeMounts, tokenVolume, filepath.Dir(token.DefaultKubernetesTokenPath))
	}
	if step.Image != "$(params.signet-image)" {
		t.Errorf("step image %q", step.Image)
	}
	// No parameter is substituted into the script, where a value would be
	// shell code: they come as environment variables and arguments.
	if m := variable.FindAllString(step.Script, -1); len(m) > 0 {
		t.Errorf("the script references %v; pass values through env or args", m)
	}
	// And every parameter reaches the step.
	var uses strings.Builder
	uses.WriteString(step.Image + strings.Join(step.Args, " "))
	for _, e := range step.Env {
		uses.WriteString(" " + e.Value)
	}
	for name := range params {
		if !strings.Contains(uses.String(), "$(params."+name+")") && !strings.Contains(uses.String(), "$(params."+name+"[*])") {
			t.Errorf("param %s is declared but never reaches the step", name)
		}
	}
	if len(task.Spec.Results) != 1 || task.Spec.Results[0].Name != "bundles" {
		t.Errorf("results %+v, want bundles", task.Spec.Results)
	}
}

// TestCatalogLayout: task/<name>/<version>/<name>.yaml with a README, its
// name and version label matching the path, as the Tekton catalog lays
// Tasks out.
func TestCatalogLayout(t *testing.T) {
	files, err := filepath.Glob("*/*/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Tasks (%v)", err)
	}
	for _, f := range files {
		parts := strings.Split(filepath.ToSlash(f), "/")
		taskName, version := parts[0], parts[1]
		if parts[2] != taskName+".yaml" {
			t.Errorf("%s: the file must be named %s.yaml", f, taskName)
		}
		task := loadTask(t, f)
		if task.Name != taskName || task.Labels["app.kubernetes.io/version"] != version {
			t.Errorf("%s: name %q, version label %q", f, task.Name, task.Labels["app.kubernetes.io/version"])
		}
		if task.Annotations["tekton.dev/pipelines.minVersion"] == "" || task.Spec.Description == "" {
			t.Errorf("%s: needs tekton.dev/pipelines.minVersion and a description", f)
		}
		readme, err := os.ReadFile(filepath.Join(filepath.Dir(f), "README.md"))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for _, p := range task.Spec.Params {
			if !bytes.Contains(readme, []byte("`"+p.Name+"`")) {
				t.Errorf("%s: README.md does not document param %s", f, p.Name)
			}
		}
		for _, w := range task.Spec.Workspaces {
			if !bytes.Contains(readme, []byte("`"+w.Name+"`")) {
				t.Errorf("%s: README.md does not document workspace %s", f, w.Name)
			}
		}
		for _, r := range task.Spec.Results {
			if !bytes.Contains(readme, []byte("`"+r.Name+"`")) {
				t.Errorf("%s: README.md does not document result %s", f, r.Name)
			}
		}
	}
}

// env is what the run tests share: a signet server with the development
// issuer, a registry, the signet binary, and a token for
// builds/release-bot.
type env struct {
	server         *servertest.Process
	issuer         string
	registry       *ocitest.Registry
	binDir, signet string
	tokenFile      string
	trustDir       string
	singleDigest   string // of registry/app
	index          string // of registry/lib, two platforms
	indexPlatforms []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{}
	e.signet = servertest.Binary(t)
	e.binDir = filepath.Dir(e.signet)
	e.server = servertest.Start(t, t.TempDir(), "--dev-oidc")
	e.issuer = e.server.URL + "/dev/oidc"
	e.registry = ocitest.Start(t)
	tok, err := e.server.Token(context.Background(), url.Values{
		"kind": {"kubernetes"}, "audience": {"sigstore"}, "namespace": {runNamespace}, "serviceaccount": {runSA},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.tokenFile = filepath.Join(t.TempDir(), "oidc-token")
	if err := os.WriteFile(e.tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.trustDir = t.TempDir()
	for _, f := range []string{"trusted_root.json", "signing_config.json"} {
		b, err := e.server.Get("/trust/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(e.trustDir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.singleDigest = pushImage(t, e.registry.Ref("app:1"))
	e.index, e.indexPlatforms = pushIndex(t, e.registry.Ref("lib:2"))
	return e
}

// sourceWorkspace is a workspace as a build would leave it: two artifacts
// (one with a name that needs escaping in JSON) and a provenance predicate.
func sourceWorkspace(t *testing.T) (dir string, files []string) {
	t.Helper()
	dir = t.TempDir()
	files = []string{"dist/app.tar.gz", `dist/we"ird\ name.txt`}
	if err := os.MkdirAll(filepath.Join(dir, "dist"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b := make([]byte, 4096)
		_, _ = rand.Read(b)
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "provenance.json"), []byte(slsaPredicate), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, files
}

// entry is one object of the bundles result.
type entry struct {
	Command       string `json:"command"`
	Image         string `json:"image"`
	Artifact      string `json:"artifact"`
	Bundle        string `json:"bundle"`
	Digest        string `json:"digest"`
	PredicateType string `json:"predicateType"`
	AttestationID string `json:"attestationId"`
	LogIndexes    []int  `json:"logIndexes"`
}

func bundles(t *testing.T, r runResult) []entry {
	t.Helper()
	raw, ok := r.results["bundles"]
	if !ok {
		t.Fatalf("no bundles result\n%v", r)
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	var es []entry
	if err := dec.Decode(&es); err != nil {
		t.Fatalf("bundles result is not the JSON documented: %v\n%s", err, raw)
	}
	if n := terminationMessageSize(r.results); n > 4096 {
		t.Errorf("results need %d bytes of termination message; Tekton allows 4096", n)
	}
	return es
}

// signet runs the CLI for a verification and returns its exit status and
// JSON output.
func (e *env) run(t *testing.T, dir string, args ...string) (int, map[string]any) {
	t.Helper()
	cmd := exec.Command(e.signet, append(args, "--trusted-root", filepath.Join(e.trustDir, "trusted_root.json"), "-o", "json")...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("signet %v: output is not JSON (%v): %s\n%s", args, err, stdout.String(), stderr.String())
	}
	return code, out
}

// policy is the signer policy flags for id.
func (e *env) policy(id string) []string {
	return []string{"--certificate-identity", id, "--certificate-oidc-issuer", e.issuer}
}

// logIndexesOf collects every logIndex in a verification's JSON.
func logIndexesOf(v any) []int {
	var out []int
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if f, ok := val.(float64); ok && k == "logIndex" {
				out = append(out, int(f))
			} else {
				out = append(out, logIndexesOf(val)...)
			}
		}
	case []any:
		for _, val := range x {
			out = append(out, logIndexesOf(val)...)
		}
	}
	return out
}

func TestSignTaskRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a signet server and a registry")
	}
	task := loadTask(t, signTaskPath)
	e := newEnv(t)
	appRef := e.registry.Ref("app@" + e.singleDigest)
	libTag := e.registry.Ref("lib:2")
	libDigestRef := e.registry.Ref("lib@" + e.index)

	for _, shell := range shells(t) {
		t.Run("both/"+filepath.Base(shell[0]), func(t *testing.T) {
			src, files := sourceWorkspace(t)
			r := runTask(t, task, taskRun{
				params: map[string]any{
					"images": []string{appRef, libTag}, "files": files, "mode": "both",
					"predicate-type": "slsaprovenance1", "predicate": "provenance.json",
					"server": e.server.URL, "token-path": e.tokenFile,
				},
				workspaces: map[string]string{"source": src},
			}, shell, e.binDir)
			if r.failed() {
				t.Fatalf("the Task failed\n%v", r)
			}
			es := bundles(t, r)
			t.Logf("bundles result: %d bytes, %d of Tekton's 4096 in the termination message:\n%s", len(r.results["bundles"]), terminationMessageSize(r.results), r.results["bundles"])
			want := []struct{ command, subject string }{
				{"sign", appRef}, {"attest", appRef}, {"sign", libTag}, {"attest", libDigestRef},
				{"sign-blob", files[0]}, {"attest-blob", files[0]}, {"sign-blob", files[1]}, {"attest-blob", files[1]},
			}
			if len(es) != len(want) {
				t.Fatalf("%d entries, want %d: %+v", len(es), len(want), es)
			}
			seen := map[int]bool{}
			for i, w := range want {
				got := es[i]
				subject := got.Image + got.Artifact
				if got.Command != w.command || subject != w.subject {
					t.Errorf("entry %d: %s %s, want %s %s", i, got.Command, subject, w.command, w.subject)
				}
				for _, idx := range got.LogIndexes {
					if seen[idx] {
						t.Errorf("entry %d: log index %d twice", i, idx)
					}
					seen[idx] = true
				}
				attest := strings.HasPrefix(got.Command, "attest")
				if attest && (got.PredicateType != "https://slsa.dev/provenance/v1" || got.AttestationID == "") {
					t.Errorf("entry %d: predicate type %q, attestation ID %q", i, got.PredicateType, got.AttestationID)
				}
			}
			// Images: by digest, the index and both platforms with -r
			// (the default), and the attestation names what was signed.
			if es[0].Digest != appRef || len(es[0].LogIndexes) != 1 {
				t.Errorf("app signature: %+v", es[0])
			}
			if es[2].Digest != libDigestRef || len(es[2].LogIndexes) != 1+len(e.indexPlatforms) {
				t.Errorf("lib signature: %+v, want %s and %d log entries", es[2], libDigestRef, 1+len(e.indexPlatforms))
			}
			if es[3].Digest != es[2].Digest || len(es[3].LogIndexes) != 1+len(e.indexPlatforms) {
				t.Errorf("lib attestation %+v does not cover what the signature signed", es[3])
			}
			// Files: bundles next to each file, as signet names them.
			for i, f := range files {
				sig, att := es[4+2*i], es[5+2*i]
				if sig.Bundle != f+".sigstore.json" || att.Bundle != f+".slsaprovenance1.sigstore.json" {
					t.Errorf("%s: bundles %q, %q", f, sig.Bundle, att.Bundle)
				}
				if !strings.HasPrefix(sig.Digest, "sha256:") || sig.Digest != att.Digest {
					t.Errorf("%s: digests %q, %q", f, sig.Digest, att.Digest)
				}
			}

			// Every bundle verifies as release-bot's, and its log entries
			// are the ones the result lists.
			check := func(what string, logIndexes []int, args ...string) {
				t.Helper()
				code, out := e.run(t, src, append(args, e.policy(identity)...)...)
				if code != 0 || out["verified"] != true {
					t.Errorf("%s: exit %d: %v", what, code, out)
					return
				}
				got := logIndexesOf(out)
				for _, idx := range logIndexes {
					if !slices.Contains(got, idx) {
						t.Errorf("%s: verified log entries %v lack the result's %d", what, got, idx)
					}
				}
				// The wrong signer is refused, naming the identity check.
				code, out = e.run(t, src, append(args, e.policy(otherID)...)...)
				if code != 1 || out["verified"] != false || !strings.Contains(failedChecks(out), "identity") {
					t.Errorf("%s as %s: exit %d: %v", what, otherID, code, out)
				}
				// And so is the right name from another issuer.
				code, out = e.run(t, src, append(args, "--certificate-identity", identity, "--certificate-oidc-issuer", "https://kubernetes.default.svc.cluster.local")...)
				if code != 1 || out["verified"] != false {
					t.Errorf("%s from another issuer: exit %d: %v", what, code, out)
				}
			}
			check("app signature", es[0].LogIndexes, "verify", appRef)
			check("app attestation", es[1].LogIndexes, "verify-attestation", appRef, "--type", "slsaprovenance1")
			check("lib signatures", es[2].LogIndexes, "verify", libTag, "-r")
			check("lib attestations", es[3].LogIndexes, "verify-attestation", libTag, "-r", "--type", "slsaprovenance1")
			for i, f := range files {
				check(f+" signature", es[4+2*i].LogIndexes, "verify-blob", f, "--bundle", es[4+2*i].Bundle)
				check(f+" attestation", es[5+2*i].LogIndexes, "verify-blob-attestation", f, "--type", "slsaprovenance1")
			}
		})
	}

	sh := shells(t)[0]
	t.Run("sign with trust files from a workspace, no server", func(t *testing.T) {
		// A fresh image: nothing attached to it before.
		d := pushImage(t, e.registry.Ref("tool:1"))
		ref := e.registry.Ref("tool:1")
		r := runTask(t, task, taskRun{
			params: map[string]any{
				"images": []string{ref}, "signing-config": "signing_config.json", "trusted-root": "trusted_root.json",
				"token-path": e.tokenFile, "recursive": "false",
			},
			workspaces: map[string]string{"trust": e.trustDir},
		}, sh, e.binDir)
		if r.failed() {
			t.Fatalf("the Task failed\n%v", r)
		}
		es := bundles(t, r)
		if len(es) != 1 || es[0].Command != "sign" || es[0].Digest != e.registry.Ref("tool@"+d) || es[0].AttestationID != "" || len(es[0].LogIndexes) != 1 {
			t.Fatalf("entries %+v", es)
		}
		if code, out := e.run(t, "", append([]string{"verify", ref}, e.policy(identity)...)...); code != 0 {
			t.Errorf("verify: exit %d %v", code, out)
		}
		// Signed only: no attestation is attached.
		if code, out := e.run(t, "", append([]string{"verify-attestation", ref}, e.policy(identity)...)...); code != 1 || !strings.Contains(failedChecks(out), "attachment") {
			t.Errorf("verify-attestation of a signed-only image: exit %d %v", code, out)
		}
	})

	t.Run("attest a file only", func(t *testing.T) {
		src, files := sourceWorkspace(t)
		r := runTask(t, task, taskRun{
			params: map[string]any{
				"files": files[:1], "mode": "attest", "predicate-type": "slsaprovenance1", "predicate": "provenance.json",
				"server": e.server.URL, "token-path": e.tokenFile,
			},
			workspaces: map[string]string{"source": src},
		}, sh, e.binDir)
		if r.failed() {
			t.Fatalf("the Task failed\n%v", r)
		}
		if es := bundles(t, r); len(es) != 1 || es[0].Command != "attest-blob" {
			t.Fatalf("entries %+v", es)
		}
		if _, err := os.Stat(filepath.Join(src, files[0]+".sigstore.json")); err == nil {
			t.Error("mode attest wrote a signature bundle")
		}
		if code, out := e.run(t, src, append([]string{"verify-blob-attestation", files[0], "--type", "slsaprovenance1"}, e.policy(identity)...)...); code != 0 {
			t.Errorf("verify-blob-attestation: exit %d %v", code, out)
		}
	})

	// Refusals: the Task fails, says why, and signs nothing.
	src, files := sourceWorkspace(t)
	base := func(over map[string]any) map[string]any {
		p := map[string]any{"files": files[:1], "server": e.server.URL, "token-path": e.tokenFile}
		for k, v := range over {
			p[k] = v
		}
		return p
	}
	for _, c := range []struct {
		name       string
		params     map[string]any
		workspaces map[string]string
		exit       int
		says       string
	}{
		{"unknown mode", base(map[string]any{"mode": "verify"}), map[string]string{"source": src}, 2, "mode must be sign, attest or both"},
		{"attest without predicate", base(map[string]any{"mode": "both", "predicate-type": "slsaprovenance1"}), map[string]string{"source": src}, 2, "needs predicate"},
		{"attest without type", base(map[string]any{"mode": "attest", "predicate": "provenance.json"}), map[string]string{"source": src}, 2, "needs predicate-type"},
		{"nothing to sign", map[string]any{"server": e.server.URL, "token-path": e.tokenFile}, nil, 2, "nothing to do"},
		{"no server", map[string]any{"files": files[:1], "token-path": e.tokenFile}, map[string]string{"source": src}, 2, "give server"},
		{"trust file without the workspace", base(map[string]any{"server": "", "signing-config": "signing_config.json"}), map[string]string{"source": src}, 2, "trust workspace, which is not bound"},
		{"bad boolean", base(map[string]any{"recursive": "yes"}), map[string]string{"source": src}, 2, "recursive takes true or false"},
		{"empty image", base(map[string]any{"images": []string{""}}), map[string]string{"source": src}, 2, "an empty entry in images"},
		{"missing file", base(map[string]any{"files": []string{"dist/missing.tar.gz"}}), map[string]string{"source": src}, 2, "missing.tar.gz"},
		{"missing token", base(map[string]any{"token-path": filepath.Join(src, "no-token")}), map[string]string{"source": src}, 2, "no-token"},
		{"image not in the registry", base(map[string]any{"files": []string{}, "images": []string{e.registry.Ref("nothing:1")}}), nil, 1, "nothing"},
	} {
		t.Run("refuses "+c.name, func(t *testing.T) {
			r := runTask(t, task, taskRun{params: c.params, workspaces: c.workspaces}, sh, e.binDir)
			if !r.failed() || r.steps[len(r.steps)-1].exitCode != c.exit || !strings.Contains(r.stderr(), c.says) {
				t.Fatalf("want exit %d saying %q\n%v", c.exit, c.says, r)
			}
			if es := r.results["bundles"]; strings.Contains(es, "logIndexes") {
				t.Errorf("something was signed: %s", es)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(src, files[0]+".sigstore.json")); err == nil {
		t.Error("a refused run wrote a bundle")
	}
}

// failedChecks gathers every failedCheck of a verification's JSON.
func failedChecks(v any) string {
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				if s, ok := val.(string); ok && k == "failedCheck" {
					out = append(out, s)
				}
				walk(val)
			}
		case []any:
			for _, val := range x {
				walk(val)
			}
		}
	}
	walk(v)
	return strings.Join(out, ",")
}

func pushImage(t *testing.T, ref string) string { return ocitest.PushImage(t, ref) }

func pushIndex(t *testing.T, ref string) (string, []string) { return ocitest.PushIndex(t, ref) }
