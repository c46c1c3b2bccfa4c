package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/toolcache"
)

// cosign v2, still the most deployed, verifies signet's bundles (blob
// signature and attestation) with its default checks, SCT included, given
// the trusted root: no --insecure-ignore-sct. It needs
// --use-signed-timestamps, as for any Rekor v2 bundle (the public
// instance's too): cosign v2 otherwise requires a Rekor v1 integrated time,
// which Rekor v2 entries do not carry; the RFC 3161 timestamp is the time
// source instead. Without the flag it refuses, and this pins the message.
func TestCosignV2VerifiesSignetBundles(t *testing.T) {
	start := time.Now()
	bin, err := toolcache.CosignV2.Binary()
	if err != nil {
		t.Fatalf("building cosign %s: %v", toolcache.CosignV2.Version, err)
	}
	t.Logf("cosign %s ready in %v", toolcache.CosignV2.Version, time.Since(start).Round(time.Millisecond))
	e := newCLIEnv(t)
	art := e.file(t, "v2.tar.gz", "for cosign v2\n")
	pred := e.file(t, "pred.json", slsaPredicate)
	sig := filepath.Join(e.dir, "v2.sigstore.json")
	att := filepath.Join(e.dir, "v2.att.sigstore.json")
	runSignet(t, e.serverEnv, "sign-blob", art, "--bundle", sig, "--identity-token", e.token).want(t, 0)
	runSignet(t, e.serverEnv, "attest-blob", art, "--predicate", pred, "--type", "slsaprovenance1", "--bundle", att, "--identity-token", e.token).want(t, 0)
	home := t.TempDir()
	cosign := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"HOME=" + home, "TUF_ROOT=" + filepath.Join(home, "tuf")}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	if out, err := cosign("verify-blob", "--bundle", sig, "--new-bundle-format", "--trusted-root", e.root, "--certificate-identity", e.identity, "--certificate-oidc-issuer", e.issuer, art); err == nil || !strings.Contains(out, "integrated timestamps") {
		t.Errorf("cosign v2 without --use-signed-timestamps: %v\n%s", err, out)
	}
	policy := []string{"--new-bundle-format", "--use-signed-timestamps", "--trusted-root", e.root, "--certificate-identity", e.identity, "--certificate-oidc-issuer", e.issuer}
	if out, err := cosign(append([]string{"verify-blob", "--bundle", sig}, append(policy, art)...)...); err != nil {
		t.Errorf("cosign v2 verify-blob: %v\n%s", err, out)
	}
	if out, err := cosign(append([]string{"verify-blob-attestation", "--bundle", att, "--type", "slsaprovenance1"}, append(policy, art)...)...); err != nil {
		t.Errorf("cosign v2 verify-blob-attestation: %v\n%s", err, out)
	}
	other := e.file(t, "other.tar.gz", "something else\n")
	if out, err := cosign(append([]string{"verify-blob", "--bundle", sig}, append(policy, other)...)...); err == nil {
		t.Errorf("cosign v2 verified another artifact:\n%s", out)
	}
	evil := []string{"--new-bundle-format", "--use-signed-timestamps", "--trusted-root", e.root, "--certificate-identity", "https://github.com/evil/app/.github/workflows/release.yml@refs/heads/main", "--certificate-oidc-issuer", e.issuer}
	if out, err := cosign(append([]string{"verify-blob", "--bundle", sig}, append(evil, art)...)...); err == nil {
		t.Errorf("cosign v2 verified for another identity:\n%s", out)
	}
}
