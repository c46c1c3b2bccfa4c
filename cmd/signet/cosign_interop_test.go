package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/oci/ocitest"
	"github.com/signet-dev/signet/internal/toolcache"
)

// The real cosign v3.1.3 against signet: cosign signs with signet's server
// and signet verifies, signet signs and cosign verifies — images and blobs.

// cosignRun runs the cosign binary with a clean environment: no TUF cache
// of the public good instance, no ambient token.
func cosignRun(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	bin := cosignBinary(t)
	cmd := exec.Command(bin, args...)
	home := t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TUF_ROOT=" + filepath.Join(home, "tuf")}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func mustCosign(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, err := cosignRun(t, args...)
	if err != nil {
		t.Fatalf("cosign %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

// cosignBinary builds cosign (minutes on a cold cache). Tests call it before
// minting identity tokens, which would otherwise expire during the build.
func cosignBinary(t *testing.T) string {
	t.Helper()
	bin, err := toolcache.Cosign.Binary()
	if err != nil {
		t.Fatalf("building cosign %s: %v", toolcache.Cosign.Version, err)
	}
	return bin
}

// trustFiles are the server's trust files as cosign takes them.
func (e *cliEnv) trustFiles() (trustedRoot, signingConfig string) {
	return e.root, filepath.Join(filepath.Dir(e.root), signingConfigFile)
}

// cosignVerifyFlags are what cosign v3 needs to verify offline against a
// signet root: its default checks, SCT included.
func (e *cliEnv) cosignVerifyFlags() []string {
	return []string{"--trusted-root", e.root, "--certificate-identity", e.identity, "--certificate-oidc-issuer", e.issuer}
}

func TestCosignImageInterop(t *testing.T) {
	cosignBinary(t)
	e := newImageEnv(t)
	reg := ocitest.Start(t)
	root, sc := e.trustFiles()

	t.Run("cosign sign, signet verify", func(t *testing.T) {
		ref := reg.Ref("acme/by-cosign:v1")
		digest := pushImage(t, ref)
		mustCosign(t, "sign", "--trusted-root", root, "--signing-config", sc, "--identity-token", e.token,
			"--allow-http-registry", "-y", reg.Ref("acme/by-cosign@"+digest))
		var v imageVerifyResult
		runSignet(t, nil, append([]string{"verify", ref, "-o", "json"}, e.policy()...)...).want(t, 0).decode(t, &v)
		if a := v.Subjects[0].Attachments; len(a) != 1 || !a[0].Verified || a[0].Identity != e.identity || a[0].PredicateType != oci.CosignSignPredicateType {
			t.Errorf("cosign's signature: %+v", a)
		}
		// cosign attest, signet verify-attestation.
		pred := e.file(t, "cosign-prov.json", slsaPredicate)
		mustCosign(t, "attest", "--trusted-root", root, "--signing-config", sc, "--identity-token", e.token,
			"--allow-http-registry", "-y", "--type", "slsaprovenance1", "--predicate", pred, reg.Ref("acme/by-cosign@"+digest))
		runSignet(t, nil, append([]string{"verify-attestation", ref, "--type", "slsaprovenance1"}, e.policy()...)...).want(t, 0)
		// And signet does not take cosign's signature for another signer.
		runSignet(t, nil, "verify", ref, "--trusted-root", e.root, "--certificate-identity", "someone@example.com", "--certificate-oidc-issuer", e.issuer).want(t, 1)
	})

	t.Run("signet sign, cosign verify", func(t *testing.T) {
		ref := reg.Ref("acme/by-signet:v1")
		digest := pushImage(t, ref)
		e.sign(t, nil, "sign", ref).want(t, 0)
		pred := e.file(t, "signet-prov.json", slsaPredicate)
		e.sign(t, nil, "attest", ref, "--predicate", pred, "--type", "slsaprovenance1").want(t, 0)
		digestRef := reg.Ref("acme/by-signet@" + digest)
		out := mustCosign(t, append([]string{"verify", "--allow-http-registry", digestRef}, e.cosignVerifyFlags()...)...)
		if !strings.Contains(out, `"image":{"docker-manifest-digest":"`+digest+`"},"type":"`+oci.CosignSignPredicateType+`"`) {
			t.Errorf("cosign verify printed no signature payload naming %s:\n%s", digest, out)
		}
		mustCosign(t, append([]string{"verify-attestation", "--allow-http-registry", "--type", "slsaprovenance1", digestRef}, e.cosignVerifyFlags()...)...)
		// cosign rejects it for another identity: the check above is real.
		if _, _, err := cosignRun(t, "verify", "--allow-http-registry", digestRef, "--trusted-root", e.root,
			"--certificate-identity", "someone@example.com", "--certificate-oidc-issuer", e.issuer); err == nil {
			t.Error("cosign verify accepted another identity")
		}
	})
}

func TestCosignBlobInterop(t *testing.T) {
	cosignBinary(t)
	e := newImageEnv(t)
	root, sc := e.trustFiles()
	art := e.file(t, "app.tar.gz", "release 1.2.3\n")

	t.Run("cosign sign-blob, signet verify-blob", func(t *testing.T) {
		b := filepath.Join(e.dir, "by-cosign.sigstore.json")
		mustCosign(t, "sign-blob", "--trusted-root", root, "--signing-config", sc, "--identity-token", e.token, "--bundle", b, "-y", art)
		runSignet(t, nil, append([]string{"verify-blob", art, "--bundle", b}, e.policy()...)...).want(t, 0)
		runSignet(t, nil, "verify-blob", art, "--bundle", b, "--trusted-root", e.root, "--certificate-identity", "someone@example.com", "--certificate-oidc-issuer", e.issuer).want(t, 1)
	})

	t.Run("signet sign-blob, cosign verify-blob", func(t *testing.T) {
		b := filepath.Join(e.dir, "by-signet.sigstore.json")
		runSignet(t, e.serverEnv, "sign-blob", art, "--bundle", b, "--identity-token", e.token).want(t, 0)
		mustCosign(t, append([]string{"verify-blob", "--bundle", b, art}, e.cosignVerifyFlags()...)...)
		other := e.file(t, "other.tar.gz", "release 1.2.4\n")
		if _, _, err := cosignRun(t, append([]string{"verify-blob", "--bundle", b, other}, e.cosignVerifyFlags()...)...); err == nil {
			t.Error("cosign verify-blob accepted the bundle for another file")
		}
	})

	t.Run("attestations both ways", func(t *testing.T) {
		pred := e.file(t, "prov.json", slsaPredicate)
		byCosign := filepath.Join(e.dir, "att-by-cosign.sigstore.json")
		mustCosign(t, "attest-blob", "--trusted-root", root, "--signing-config", sc, "--identity-token", e.token,
			"--type", "slsaprovenance1", "--predicate", pred, "--bundle", byCosign, "-y", art)
		runSignet(t, nil, append([]string{"verify-blob-attestation", art, "--bundle", byCosign, "--type", "slsaprovenance1"}, e.policy()...)...).want(t, 0)

		bySignet := filepath.Join(e.dir, "att-by-signet.sigstore.json")
		runSignet(t, e.serverEnv, "attest-blob", art, "--predicate", pred, "--type", "slsaprovenance1", "--bundle", bySignet, "--identity-token", e.token).want(t, 0)
		mustCosign(t, append([]string{"verify-blob-attestation", "--bundle", bySignet, "--type", "slsaprovenance1", art}, e.cosignVerifyFlags()...)...)
	})
}
