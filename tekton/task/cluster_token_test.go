package task_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/kubetest"
	"github.com/signet-dev/signet/server/servertest"
)

// TestSignTaskWithClusterToken signs with what the kubelet would project
// into the Task's volume: a token the kube-apiserver issues by
// TokenRequest for the TaskRun's ServiceAccount, audience sigstore, ten
// minutes. The signet server trusts the cluster's issuer (type
// kubernetes, its key set from a file), and the certificate names the
// identity the READMEs tell verifiers to expect, with the cluster's
// issuer URL as OIDC issuer.
func TestSignTaskWithClusterToken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, kube-apiserver and a signet server")
	}
	task := loadTask(t, signTaskPath)
	c := kubetest.Start(t)
	c.Apply(t, fmt.Appendf(nil, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %[1]s\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: %[2]s\n  namespace: %[1]s\n", runNamespace, runSA))

	dir := t.TempDir()
	jwks := filepath.Join(dir, "cluster-jwks.json")
	if err := os.WriteFile(jwks, c.JWKS(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "oidcIssuers:\n  - url: %s\n    type: kubernetes\n    jwksFile: %s\n", c.Issuer, jwks), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, filepath.Join(dir, "server"), "--config", cfg)
	e := &env{server: srv, issuer: c.Issuer, signet: servertest.Binary(t), trustDir: t.TempDir()}
	e.binDir = filepath.Dir(e.signet)
	root, err := srv.Get("/trust/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.trustDir, "trusted_root.json"), root, 0o644); err != nil {
		t.Fatal(err)
	}
	// The projected volume's file: expirationSeconds 600, audience sigstore.
	tokenFile := filepath.Join(dir, "oidc-token")
	if err := os.WriteFile(tokenFile, []byte(c.Token(t, runNamespace, runSA, kubetest.Audience, 10*time.Minute)), 0o600); err != nil {
		t.Fatal(err)
	}

	src, files := sourceWorkspace(t)
	r := runTask(t, task, taskRun{
		params:     map[string]any{"files": files[:1], "server": srv.URL, "token-path": tokenFile},
		workspaces: map[string]string{"source": src},
	}, shells(t)[0], e.binDir)
	if r.failed() {
		t.Fatalf("the Task failed\n%v", r)
	}
	es := bundles(t, r)
	if len(es) != 1 || es[0].Command != "sign-blob" {
		t.Fatalf("entries %+v", es)
	}
	code, out := e.run(t, src, append([]string{"verify-blob", files[0]}, e.policy(identity)...)...)
	if code != 0 || out["identity"] != identity || out["issuer"] != c.Issuer {
		t.Fatalf("verify-blob as %s from %s: exit %d %v", identity, c.Issuer, code, out)
	}
	if code, out := e.run(t, src, append([]string{"verify-blob", files[0]}, e.policy(otherID)...)...); code != 1 {
		t.Errorf("verify-blob as %s: exit %d %v", otherID, code, out)
	}

	// A token for another audience is not one the CA takes: the Task fails.
	// (Not the apiserver's default audiences: those are all of
	// --api-audiences, sigstore included.)
	wrong := filepath.Join(dir, "wrong-audience")
	if err := os.WriteFile(wrong, []byte(c.Token(t, runNamespace, runSA, "https://vault.example.com", 10*time.Minute)), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runTask(t, task, taskRun{
		params:     map[string]any{"files": files[1:], "server": srv.URL, "token-path": wrong},
		workspaces: map[string]string{"source": src},
	}, shells(t)[0], e.binDir)
	if !r.failed() || r.steps[0].exitCode != 1 || !strings.Contains(r.stderr(), "audience") {
		t.Errorf("a token without audience sigstore: want exit 1 naming the audience\n%v", r)
	}
}
