package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const interopDir = "../../../shared/interop"

// TestVerifyInteropBundles verifies what cosign v3, sigstore-go and
// sigstore-js produced (identities from interop/README.md) and rejects each
// with another identity, another issuer and a changed artifact.
func TestVerifyInteropBundles(t *testing.T) {
	if _, err := os.Stat(filepath.Join(interopDir, "README.md")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("interop vectors missing in CI: %v", err)
		}
		t.Skipf("interop vectors not present at %s (%v); they are required when CI is set", interopDir, err)
	}
	const (
		email     = "alice@example.com"
		emailIss  = "http://127.0.0.1:8088"
		github    = "https://github.com/acme/widget/.github/workflows/release.yml@refs/heads/main"
		githubIss = "http://127.0.0.1:8089"
	)
	artifact := filepath.Join(interopDir, "artifact.txt")
	root := filepath.Join(interopDir, "trusted_root.json")
	changed := filepath.Join(t.TempDir(), "artifact.txt")
	content, err := os.ReadFile(artifact)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(changed, append(content, '\n'), 0o644)

	for _, c := range []struct {
		bundle, identity, issuer string
		extra                    []string
		attestation              bool
	}{
		{"cosign3-email.sigstore.json", email, emailIss, nil, false},
		{"sigstore-go-email.sigstore.json", email, emailIss, nil, false},
		{"sigstore-js-email.sigstore.json", email, emailIss, nil, false},
		{"cosign3-github.sigstore.json", github, githubIss, []string{"--certificate-github-workflow-repository", "acme/widget", "--certificate-github-workflow-ref", "refs/heads/main"}, false},
		{"cosign3-github-provenance.sigstore.json", github, githubIss, nil, true},
	} {
		t.Run(c.bundle, func(t *testing.T) {
			cmd := []string{"verify-blob"}
			if c.attestation {
				cmd = []string{"verify-blob-attestation", "--type", "slsaprovenance1"}
			}
			run := func(file, identity, issuer string, extra ...string) cliRun {
				args := append(append([]string{}, cmd...), file, "--bundle", filepath.Join(interopDir, c.bundle), "--trusted-root", root,
					"--certificate-identity", identity, "--certificate-oidc-issuer", issuer, "-o", "json")
				return runSignet(t, nil, append(args, extra...)...)
			}
			var v verifyResult
			run(artifact, c.identity, c.issuer, c.extra...).want(t, 0).decode(t, &v)
			if !v.Verified || v.Identity != c.identity || v.Issuer != c.issuer || len(v.VerifiedTimes) == 0 || len(v.LogEntries) != 1 {
				t.Errorf("cliRun %+v", v)
			}
			for name, r := range map[string]cliRun{
				"other identity": run(artifact, "mallory@example.com", c.issuer),
				"other issuer":   run(artifact, c.identity, "https://accounts.example.com"),
				"changed file":   run(changed, c.identity, c.issuer),
				"other repo":     run(artifact, c.identity, c.issuer, "--certificate-github-workflow-repository", "acme/fork"),
			} {
				r.want(t, 1)
				var v verifyResult
				r.decode(t, &v)
				want := "identity"
				if name == "changed file" {
					want = "artifact"
				}
				if v.Verified || v.FailedCheck != want || !strings.Contains(r.stderr, "verification failed") {
					t.Errorf("%s: %+v, want failed check %q", name, v, want)
				}
			}
		})
	}
}
