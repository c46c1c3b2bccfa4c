package controller_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/internal/toolcache"
)

// Every kind of bundle the controller makes verifies with the real cosign
// v3: an image's signature, each platform's of an index, a TaskRun's and a
// PipelineRun's provenance attached to an image, and the provenance of a
// file kept in the attestation store, against the server's trusted root and
// the controller's identity; another identity, image or file fails.
//
// cosign v3's verify accepts any bundle attached to the image that verifies,
// the provenance included, and prints each one's payload with its type: a
// signature is told by the cosign sign type, not by cosign's exit status.

// cosignTool builds cosign (minutes on a cold tools cache); tests call it
// before anything that could time out while it builds.
func cosignTool(t *testing.T) string {
	t.Helper()
	bin, err := toolcache.Cosign.Binary()
	if err != nil {
		t.Fatalf("building cosign %s: %v", toolcache.Cosign.Version, err)
	}
	return bin
}

// cosignCmd runs cosign with a clean environment (no TUF cache of the
// public good instance, no ambient credentials) and returns stdout, stderr
// and the error.
func cosignCmd(t *testing.T, bin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	home := t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TUF_ROOT=" + filepath.Join(home, "tuf")}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// cosignPolicy is the verification policy for identity, offline against the
// env's trusted root, with cosign's default SCT check.
func (e *env) cosignPolicy(identity string) []string {
	return []string{"--trusted-root", e.root, "--certificate-identity", identity, "--certificate-oidc-issuer", e.issuer}
}

// cosignStatements decodes the in-toto statements cosign verify-attestation
// prints, one DSSE envelope per line.
func cosignStatements(t *testing.T, out string) []map[string]any {
	t.Helper()
	var sts []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var env struct {
			PayloadType string `json:"payloadType"`
			Payload     string `json:"payload"`
		}
		if err := json.Unmarshal([]byte(line), &env); err != nil {
			t.Fatalf("cosign printed %q: %v", line, err)
		}
		raw, err := base64.StdEncoding.DecodeString(env.Payload)
		if err != nil {
			t.Fatalf("payload of %q: %v", line, err)
		}
		var st map[string]any
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatalf("statement %s: %v", raw, err)
		}
		sts = append(sts, st)
	}
	return sts
}

// cosignSigned says whether what cosign verify printed holds an image
// signature over digest: cosign v3 prints every bundle it verified, the
// provenance attached as a referrer too (with its predicate type), so the
// type is what tells a signature.
func cosignSigned(t *testing.T, out, digest string) bool {
	t.Helper()
	var payloads []struct {
		Critical struct {
			Image struct {
				Digest string `json:"docker-manifest-digest"`
			} `json:"image"`
			Type string `json:"type"`
		} `json:"critical"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &payloads); err != nil {
		t.Fatalf("cosign verify printed %q: %v", out, err)
	}
	for _, p := range payloads {
		if p.Critical.Type == oci.CosignSignPredicateType && p.Critical.Image.Digest == digest {
			return true
		}
	}
	return false
}

func invocationID(st map[string]any) string {
	pred, _ := st["predicate"].(map[string]any)
	rd, _ := pred["runDetails"].(map[string]any)
	md, _ := rd["metadata"].(map[string]any)
	id, _ := md["invocationId"].(string)
	return id
}

func statementNames(st map[string]any, hex string) bool {
	subs, _ := st["subject"].([]any)
	for _, s := range subs {
		d, _ := s.(map[string]any)["digest"].(map[string]any)
		if d["sha256"] == hex {
			return true
		}
	}
	return false
}

func TestCosignVerifiesControllerBundles(t *testing.T) {
	cosign := cosignTool(t)
	e := getEnv(t)
	const ns = "cosign-bundles"
	e.namespace(t, ns)
	e.controller(t, ns)

	// A TaskRun building one image.
	digest := e.pushImage(t, "cosign/app")
	ref := e.reg.Ref("cosign/app@" + digest)
	tr := e.taskRun(t, ns, "image", runSpec{results: map[string]string{"IMAGE_URL": e.reg.Ref("cosign/app"), "IMAGE_DIGEST": digest}})
	// One building an index (the index and each platform are signed).
	idx, platforms := e.pushIndex(t, "cosign/multi")
	e.taskRun(t, ns, "index", runSpec{results: map[string]string{"IMAGE_URL": e.reg.Ref("cosign/multi"), "IMAGE_DIGEST": idx}})
	// One building a file: its provenance is in the attestation store only.
	dir := t.TempDir()
	content := []byte("cosign: release tarball 2.0\n")
	file := filepath.Join(dir, "app-2.0.tar.gz")
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	e.hintTaskRun(t, ns, "file", hintRun{results: []pipelinev1.TaskRunResult{
		hintObject("tarball-ARTIFACT_OUTPUTS", "uri", "https://downloads.example.com/app-2.0.tar.gz", "digest", "sha256:"+hexSHA256(content), "isBuildArtifact", "true"),
	}})
	// A PipelineRun whose TaskRun built an image: two provenances on it.
	prDigest := e.pushImage(t, "cosign/pipeline")
	prRef := e.reg.Ref("cosign/pipeline@" + prDigest)
	prBuild := e.taskRun(t, ns, "pr-build", runSpec{pipelineRun: "pr", sa: "builder", results: map[string]string{"IMAGE_URL": e.reg.Ref("cosign/pipeline"), "IMAGE_DIGEST": prDigest}})
	e.taskRun(t, ns, "pr-test", runSpec{pipelineRun: "pr", sa: "builder", results: map[string]string{"COVERAGE": "80%"}})
	e.pipelineRun(t, ns, "pr", map[string]string{"build": "pr-build", "test": "pr-test"}, nil)

	for _, run := range []string{"image", "index", "file", "pr-build", "pr-test"} {
		if ann := e.marked(t, "taskrun", ns, run, time.Minute); ann["signet.dev/signed"] != "true" {
			t.Fatalf("%s: annotations %v", run, ann)
		}
	}
	prAnn := e.marked(t, "pipelinerun", ns, "pr", time.Minute)
	if prAnn["signet.dev/signed"] != "true" {
		t.Fatalf("pr: annotations %v", prAnn)
	}
	other := "https://kubernetes.io/namespaces/" + ns + "/serviceaccounts/builder"
	unsigned := e.reg.Ref("cosign/app@" + e.pushImage(t, "cosign/app"))

	mustCosign := func(t *testing.T, args ...string) string {
		t.Helper()
		out, stderr, err := cosignCmd(t, cosign, args...)
		if err != nil {
			t.Fatalf("cosign %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr)
		}
		return out
	}
	mustFail := func(t *testing.T, why string, args ...string) {
		t.Helper()
		if out, stderr, err := cosignCmd(t, cosign, args...); err == nil {
			t.Errorf("cosign %s accepted %s\nstdout:\n%s\nstderr:\n%s", args[0], why, out, stderr)
		}
	}
	verify := func(ref, identity string) []string {
		return append([]string{"verify", "--allow-http-registry", ref}, e.cosignPolicy(identity)...)
	}
	verifyAtt := func(ref, identity string) []string {
		return append([]string{"verify-attestation", "--allow-http-registry", "--type", "slsaprovenance1", ref}, e.cosignPolicy(identity)...)
	}

	t.Run("image signature", func(t *testing.T) {
		if out := mustCosign(t, verify(ref, e.identity)...); !cosignSigned(t, out, digest) {
			t.Errorf("cosign verify found no image signature (%s) over %s:\n%s", oci.CosignSignPredicateType, digest, out)
		}
		mustFail(t, "another identity", verify(ref, other)...)
		mustFail(t, "an image the controller did not sign", verify(unsigned, e.identity)...)
	})

	t.Run("TaskRun provenance", func(t *testing.T) {
		sts := cosignStatements(t, mustCosign(t, verifyAtt(ref, e.identity)...))
		if len(sts) != 1 || !statementNames(sts[0], strings.TrimPrefix(digest, "sha256:")) || invocationID(sts[0]) != string(tr.UID) {
			t.Errorf("cosign verified %d statements; want the TaskRun's (invocationId %s) about %s: %v", len(sts), tr.UID, digest, sts)
		}
		mustFail(t, "another identity", verifyAtt(ref, other)...)
		mustFail(t, "an image without provenance", verifyAtt(unsigned, e.identity)...)
	})

	t.Run("index and platforms", func(t *testing.T) {
		for _, d := range append([]string{idx}, platforms...) {
			if out := mustCosign(t, verify(e.reg.Ref("cosign/multi@"+d), e.identity)...); !cosignSigned(t, out, d) {
				t.Errorf("cosign verify found no image signature over %s:\n%s", d, out)
			}
		}
		mustCosign(t, verifyAtt(e.reg.Ref("cosign/multi@"+idx), e.identity)...)
		mustFail(t, "another identity", verify(e.reg.Ref("cosign/multi@"+platforms[0]), other)...)
	})

	t.Run("file provenance from the attestation store", func(t *testing.T) {
		got := e.storedFor(t, "sha256:"+hexSHA256(content))
		if len(got) != 1 {
			t.Fatalf("the store has %d attestations for the file; want 1", len(got))
		}
		b, err := e.srv.Get("/api/v2/attestations/" + got[0].ID + "/bundle")
		if err != nil {
			t.Fatal(err)
		}
		bundle := filepath.Join(dir, "file.sigstore.json")
		if err := os.WriteFile(bundle, b, 0o644); err != nil {
			t.Fatal(err)
		}
		verifyBlob := func(file, identity string) []string {
			return append([]string{"verify-blob-attestation", "--bundle", bundle, "--type", "slsaprovenance1", file}, e.cosignPolicy(identity)...)
		}
		mustCosign(t, verifyBlob(file, e.identity)...)
		otherFile := filepath.Join(dir, "other.tar.gz")
		if err := os.WriteFile(otherFile, []byte("cosign: another tarball\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		mustFail(t, "a file the run did not build", verifyBlob(otherFile, e.identity)...)
		mustFail(t, "another identity", verifyBlob(file, other)...)
	})

	t.Run("PipelineRun provenance", func(t *testing.T) {
		pr, err := e.tekton.TektonV1().PipelineRuns(ns).Get(context.Background(), "pr", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sts := cosignStatements(t, mustCosign(t, verifyAtt(prRef, e.identity)...))
		var ids []string
		for _, st := range sts {
			if !statementNames(st, strings.TrimPrefix(prDigest, "sha256:")) {
				t.Errorf("a statement cosign verified does not name %s: %v", prDigest, st["subject"])
			}
			ids = append(ids, invocationID(st))
		}
		slices.Sort(ids)
		want := []string{string(pr.UID), string(prBuild.UID)}
		slices.Sort(want)
		if !slices.Equal(ids, want) {
			t.Errorf("cosign verified provenances of %v; want the PipelineRun's and its TaskRun's %v", ids, want)
		}
		if out := mustCosign(t, verify(prRef, e.identity)...); !cosignSigned(t, out, prDigest) {
			t.Errorf("cosign verify found no image signature over %s:\n%s", prDigest, out)
		}
		mustFail(t, "another identity", verifyAtt(prRef, other)...)
	})
}
