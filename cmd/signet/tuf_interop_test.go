package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// cosign bootstraps signet's trust root over TUF, as from Sigstore's own
// repository: `cosign initialize --mirror <server>/tuf --root root.json`,
// then signs and verifies with no --trusted-root or --signing-config at all.
func TestCosignInitializeFromSignetTUF(t *testing.T) {
	bin := cosignBinary(t)
	e := newCLIEnv(t)
	pinned := pinTUFRoot(t, e, "tuf-root.json")
	cosign := cosignHome(t, bin)
	if out, err := cosign("initialize", "--mirror", e.p.URL+"/tuf", "--root", pinned); err != nil {
		t.Fatalf("cosign initialize from signet's TUF mirror: %v\n%s", err, out)
	}
	art := e.file(t, "tuf.txt", "over TUF\n")
	b := filepath.Join(e.dir, "tuf.sigstore.json")
	// The signing config comes from TUF too (signing_config.v0.2.json).
	if out, err := cosign("sign-blob", "-y", "--bundle", b, "--identity-token", e.token, art); err != nil {
		t.Fatalf("cosign sign-blob with the TUF-fetched signing config: %v\n%s", err, out)
	}
	if out, err := cosign("verify-blob", "--bundle", b, "--certificate-identity", e.identity, "--certificate-oidc-issuer", e.issuer, art); err != nil {
		t.Fatalf("cosign verify-blob with the TUF-fetched trusted root: %v\n%s", err, out)
	}
	if out, err := cosign("verify-blob", "--bundle", b, "--certificate-identity", "https://github.com/evil/app/.github/workflows/release.yml@refs/heads/main", "--certificate-oidc-issuer", e.issuer, art); err == nil || !strings.Contains(out, "no matching CertificateIdentity") {
		t.Errorf("cosign verified for another identity (%v):\n%s", err, out)
	}
	// signet verifies what cosign made.
	runSignet(t, nil, append([]string{"verify-blob", art, "--bundle", b}, e.policy()...)...).want(t, 0)
}

// signet trust --root fetches the two files through the server's TUF
// repository, verified from the pinned root; a root the repository was not
// made under is refused, naming TUF, and writes nothing.
func TestTrustOverTUF(t *testing.T) {
	e := newCLIEnv(t)
	pinned := pinTUFRoot(t, e, "tuf-root.json")
	out := filepath.Join(e.dir, "over-tuf")
	var res trustResult
	runSignet(t, nil, "trust", "--server", e.p.URL, "--root", pinned, "--out", out, "-o", "json").want(t, 0).decode(t, &res)
	if !res.VerifiedOverTUF {
		t.Errorf("result %+v", res)
	}
	for file, path := range map[string]string{trustedRootFile: "/trust/trusted_root.json", signingConfigFile: "/trust/signing_config.json"} {
		got, _ := os.ReadFile(filepath.Join(out, file))
		want, _ := e.p.Get(path)
		if len(got) == 0 || !bytes.Equal(got, want) {
			t.Errorf("%s over TUF differs from %s", file, path)
		}
	}

	bad := pinTUFRoot(t, newCLIEnv(t), "foreign-root.json") // another server: another TUF key
	fresh := filepath.Join(e.dir, "refused")
	r := runSignet(t, nil, "trust", "--server", e.p.URL, "--root", bad, "--out", fresh).want(t, 1)
	if !strings.Contains(r.stderr, "TUF repository "+e.p.URL+"/tuf") || !strings.Contains(r.stderr, "--root") {
		t.Errorf("stderr: %s", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(fresh, trustedRootFile)); err == nil {
		t.Error("a refused TUF update wrote trusted_root.json")
	}
}

// With $SIGNET_TUF_ROOT, --server commands take the signing config and the
// trusted root through the server's TUF repository: no "as the network
// delivered it" note; a root of another repository stops them before
// anything is signed.
func TestServerCommandsOverTUF(t *testing.T) {
	e := newCLIEnv(t)
	pinned := pinTUFRoot(t, e, "tuf-root.json")
	env := append([]string{"SIGNET_TUF_ROOT=" + pinned}, e.serverEnv...)
	art := e.file(t, "over-tuf.txt", "signed with TUF-verified services\n")
	b := filepath.Join(e.dir, "over-tuf.sigstore.json")
	runSignet(t, env, "sign-blob", art, "--bundle", b, "--identity-token", e.token).want(t, 0)
	v := runSignet(t, env, "verify-blob", art, "--bundle", b, "--certificate-identity", e.identity, "--certificate-oidc-issuer", e.issuer).want(t, 0)
	if strings.Contains(v.stderr, "as the network delivered it") {
		t.Errorf("verify-blob over TUF still warns:\n%s", v.stderr)
	}
	plain := runSignet(t, e.serverEnv, "verify-blob", art, "--bundle", b, "--certificate-identity", e.identity, "--certificate-oidc-issuer", e.issuer).want(t, 0)
	if !strings.Contains(plain.stderr, "as the network delivered it") {
		t.Errorf("verify-blob without a pinned TUF root does not say it trusts the network:\n%s", plain.stderr)
	}

	bad := pinTUFRoot(t, newCLIEnv(t), "foreign-root.json") // another server: another TUF key
	refused := filepath.Join(e.dir, "refused.sigstore.json")
	r := runSignet(t, append([]string{"SIGNET_TUF_ROOT=" + bad}, e.serverEnv...), "sign-blob", art, "--bundle", refused, "--identity-token", e.token).want(t, 1)
	if !strings.Contains(r.stderr, "SIGNET_TUF_ROOT") || !strings.Contains(r.stderr, "TUF repository") {
		t.Errorf("stderr: %s", r.stderr)
	}
	if _, err := os.Stat(refused); err == nil {
		t.Error("a bundle was written with services TUF did not verify")
	}
}

// pinTUFRoot writes the server's current TUF root into e's directory, as
// an operator hands it out, and returns its path.
func pinTUFRoot(t *testing.T, e *cliEnv, name string) string {
	t.Helper()
	root, err := e.p.Get("/tuf/root.json")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(e.dir, name)
	if err := os.WriteFile(path, root, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// cosignHome runs cosign with a home (and TUF cache) of its own, kept
// across the calls of one test, output and errors combined.
func cosignHome(t *testing.T, bin string) func(args ...string) (string, error) {
	home := t.TempDir()
	return func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TUF_ROOT=" + filepath.Join(home, "tuf")}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
}
