package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-dev/signet/core/intoto"
)

// cosign command lines drop in: its flags where the concept is the same,
// its --type names, and - for standard input.
func TestCosignCommandLines(t *testing.T) {
	e := newCLIEnv(t)
	art := e.file(t, "app.tar.gz", "release bits\n")
	pred := e.file(t, "pred.json", `{"passed":true}`)
	foreign, err := filepath.Abs("../../../shared/interop/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("--yes and --new-bundle-format", func(t *testing.T) {
		b := filepath.Join(e.dir, "yes.sigstore.json")
		runSignet(t, e.serverEnv, "sign-blob", art, "-y", "--new-bundle-format", "--bundle", b, "--identity-token", e.token).want(t, 0)
		runSignet(t, e.serverEnv, "sign-blob", art, "--yes", "--bundle", b, "--identity-token", e.token).want(t, 0)
		runSignet(t, nil, append([]string{"verify-blob", art, "--bundle", b}, e.policy()...)...).want(t, 0)
		r := runSignet(t, e.serverEnv, "sign-blob", art, "--new-bundle-format=false", "--bundle", b, "--identity-token", e.token).want(t, 2)
		if !strings.Contains(r.stderr, "v0.3") {
			t.Errorf("stderr: %s", r.stderr)
		}
	})

	t.Run("--trusted-root verifies before writing", func(t *testing.T) {
		b := filepath.Join(e.dir, "checked.sigstore.json")
		runSignet(t, e.serverEnv, "sign-blob", art, "--trusted-root", e.root, "--bundle", b, "--identity-token", e.token).want(t, 0)
		a := filepath.Join(e.dir, "checked.att.sigstore.json")
		runSignet(t, e.serverEnv, "attest-blob", art, "--trusted-root", e.root, "--predicate", pred, "--type", "custom", "--bundle", a, "--identity-token", e.token).want(t, 0)
		bad := filepath.Join(e.dir, "unchecked.sigstore.json")
		r := runSignet(t, e.serverEnv, "sign-blob", art, "--trusted-root", foreign, "--bundle", bad, "--identity-token", e.token).want(t, 1)
		if !strings.Contains(r.stderr, "does not verify against the trusted root") {
			t.Errorf("stderr: %s", r.stderr)
		}
		if _, err := os.Stat(bad); !os.IsNotExist(err) {
			t.Errorf("a bundle that does not verify was written: %v", err)
		}
	})

	t.Run("cosign --type names", func(t *testing.T) {
		for name, uri := range map[string]string{"custom": intoto.PredicateCosignCustom, "link": intoto.PredicateLinkV1, "openvex": intoto.PredicateOpenVEX, "vuln": intoto.PredicateCosignVuln} {
			var s signResult
			runSignet(t, e.serverEnv, "attest-blob", art, "--predicate", pred, "--type", name, "--identity-token", e.token, "-o", "json").want(t, 0).decode(t, &s)
			if s.PredicateType != uri {
				t.Errorf("--type %s attested %s, want %s", name, s.PredicateType, uri)
			}
			runSignet(t, nil, append([]string{"verify-blob-attestation", art, "--type", uri}, e.policy()...)...).want(t, 0)
		}
	})

	t.Run("standard input", func(t *testing.T) {
		b := filepath.Join(e.dir, "stdin.sigstore.json")
		var s signResult
		runSignetStdin(t, e.serverEnv, "piped bits\n", "sign-blob", "-", "--bundle", b, "--identity-token", e.token, "-o", "json").want(t, 0).decode(t, &s)
		if s.Artifact != "-" || s.Bundle != b {
			t.Errorf("sign-blob -: %+v", s)
		}
		runSignetStdin(t, nil, "piped bits\n", append([]string{"verify-blob", "-", "--bundle", b}, e.policy()...)...).want(t, 0)
		runSignetStdin(t, nil, "other bits\n", append([]string{"verify-blob", "-", "--bundle", b}, e.policy()...)...).want(t, 1)
		runSignetStdin(t, e.serverEnv, "x", "sign-blob", "-", "--identity-token", e.token).want(t, 2)
		a := filepath.Join(e.dir, "stdin-pred.sigstore.json")
		runSignetStdin(t, e.serverEnv, `{"from":"stdin"}`, "attest-blob", art, "--predicate", "-", "--type", "https://example.com/x/v1", "--bundle", a, "--identity-token", e.token).want(t, 0)
		runSignet(t, nil, append([]string{"verify-blob-attestation", art, "--bundle", a, "--type", "https://example.com/x/v1"}, e.policy()...)...).want(t, 0)
	})
}
