package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"strings"
	"testing"
	"time"

	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/signet-dev/signet/core/signer"
)

func TestSignBlobVerifyBlob(t *testing.T) {
	e := newCLIEnv(t)
	content := "release 1.2.3\n"
	art := e.file(t, "app.tar.gz", content)
	sum := sha256.Sum256([]byte(content))

	r := runSignet(t, e.serverEnv, "sign-blob", art, "--identity-token", e.token, "-o", "json").want(t, 0)
	var signed signResult
	r.decode(t, &signed)
	if signed.Bundle != art+".sigstore.json" || signed.Artifact != art {
		t.Errorf("bundle %q for artifact %q; want the default <FILE>.sigstore.json", signed.Bundle, signed.Artifact)
	}
	if signed.Digest != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("digest %s, want sha256 of the file", signed.Digest)
	}
	if signed.Identity != e.identity || signed.Issuer != e.issuer {
		t.Errorf("signer %s / %s, want %s / %s", signed.Identity, signed.Issuer, e.identity, e.issuer)
	}
	if len(signed.LogEntries) != 1 || signed.LogEntries[0].LogID == "" || signed.LogEntries[0].Origin != "127.0.0.1" {
		t.Errorf("log entries %+v", signed.LogEntries)
	}
	for _, step := range []string{"requesting certificate", "certificate", "timestamp", "log index"} {
		if !strings.Contains(r.stderr, step) {
			t.Errorf("progress on stderr lacks %q:\n%s", step, r.stderr)
		}
	}

	t.Run("verifies", func(t *testing.T) {
		r := runSignet(t, nil, append([]string{"verify-blob", art}, e.policy()...)...).want(t, 0)
		if !strings.Contains(r.stdout, "Verified OK") || !strings.Contains(r.stdout, e.identity) {
			t.Errorf("stdout:\n%s", r.stdout)
		}
		var v verifyResult
		runSignet(t, nil, append([]string{"verify-blob", art, "-o", "json"}, e.policy(
			"--certificate-github-workflow-repository", "acme/app",
			"--certificate-source-repository-uri", "https://github.com/acme/app",
			"--certificate-runner-environment", "github-hosted")...)...).want(t, 0).decode(t, &v)
		if !v.Verified || v.Identity != e.identity || v.Issuer != e.issuer || v.Digest != signed.Digest {
			t.Errorf("cliRun %+v", v)
		}
		if len(v.VerifiedTimes) != 1 || !strings.HasPrefix(v.VerifiedTimes[0].Source, "rfc3161 ") {
			t.Errorf("verified times %+v", v.VerifiedTimes)
		}
		if len(v.LogEntries) != 1 || v.LogEntries[0].LogIndex != signed.LogEntries[0].LogIndex || v.LogEntries[0].LogURL != e.p.URL {
			t.Errorf("log entries %+v, signed %+v", v.LogEntries, signed.LogEntries)
		}
		if v.Extensions["githubWorkflowRepository"] != "acme/app" || v.CA != e.p.URL {
			t.Errorf("extensions %v, CA %s", v.Extensions, v.CA)
		}
	})

	// Regexps match as in cosign and sigstore-go: searched for anywhere in
	// the value, so a cosign policy anchored with ^ means the same here,
	// and an unanchored one matches a substring, with a warning saying so.
	t.Run("regexp", func(t *testing.T) {
		r := runSignet(t, nil, "verify-blob", art, "--trusted-root", e.root,
			"--certificate-identity-regexp", `^https://github\.com/acme/app/`, "--certificate-oidc-issuer-regexp", `^http://127\.0\.0\.1:\d+/dev/oidc$`).want(t, 0)
		if strings.Contains(r.stderr, "warning") {
			t.Errorf("anchored patterns warned:\n%s", r.stderr)
		}
		r = runSignet(t, nil, "verify-blob", art, "--trusted-root", e.root,
			"--certificate-identity-regexp", `acme/app/\.github`, "--certificate-oidc-issuer-regexp", `/dev/oidc`).want(t, 0)
		for _, want := range []string{
			`warning: --certificate-identity-regexp "acme/app/\\.github" has no leading ^, so it matches anywhere in the identity`,
			`warning: --certificate-oidc-issuer-regexp "/dev/oidc" has no leading ^, so it matches anywhere in the OIDC issuer`,
		} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
		runSignet(t, nil, "verify-blob", art, "--trusted-root", e.root,
			"--certificate-identity-regexp", `^acme/app/`, "--certificate-oidc-issuer", e.issuer).want(t, 1)
	})

	t.Run("rejects", func(t *testing.T) {
		tampered := e.file(t, "tampered.tar.gz", content+"!")
		for name, c := range map[string]struct {
			args  []string
			check string
		}{
			"other identity":   {[]string{"verify-blob", art, "--trusted-root", e.root, "--certificate-identity", "https://github.com/evil/app/.github/workflows/release.yml@refs/heads/main", "--certificate-oidc-issuer", e.issuer}, "identity"},
			"other issuer":     {[]string{"verify-blob", art, "--trusted-root", e.root, "--certificate-identity", e.identity, "--certificate-oidc-issuer", "https://token.actions.githubusercontent.com"}, "identity"},
			"identity regexp":  {[]string{"verify-blob", art, "--trusted-root", e.root, "--certificate-identity-regexp", "^https://github.com/acme/app$", "--certificate-oidc-issuer", e.issuer}, "identity"},
			"other repository": {append([]string{"verify-blob", art}, e.policy("--certificate-github-workflow-repository", "acme/fork")...), "identity"},
			"other ref":        {append([]string{"verify-blob", art}, e.policy("--certificate-source-repository-ref", "refs/tags/v1")...), "identity"},
			"tampered file":    {append([]string{"verify-blob", tampered, "--bundle", signed.Bundle}, e.policy()...), "artifact"},
			"not a bundle":     {append([]string{"verify-blob", art, "--bundle", tampered}, e.policy()...), "bundle"},
		} {
			t.Run(name, func(t *testing.T) {
				r := runSignet(t, nil, c.args...).want(t, 1)
				if !strings.Contains(r.stderr, "verification failed: "+c.check+": ") {
					t.Errorf("stderr does not name check %q:\n%s", c.check, r.stderr)
				}
				var v verifyResult
				runSignet(t, nil, append(c.args, "-o", "json")...).want(t, 1).decode(t, &v)
				if v.Verified || v.FailedCheck != c.check || v.Error == "" {
					t.Errorf("json %+v, want failedCheck %q", v, c.check)
				}
			})
		}
	})

	t.Run("sigstore-go verifies it", func(t *testing.T) {
		if err := e.sigstoreGoVerify(t, signed.Bundle, []byte(content)); err != nil {
			t.Fatalf("sigstore-go rejects the bundle signet sign-blob wrote: %v", err)
		}
		if err := e.sigstoreGoVerify(t, signed.Bundle, []byte(content+"!")); err == nil {
			t.Fatal("sigstore-go verified a changed artifact")
		}
	})

	t.Run("self-managed key", func(t *testing.T) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		keyPath := e.file(t, "release.key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
		var s signResult
		runSignet(t, e.serverEnv, "sign-blob", art, "--key", keyPath, "--bundle", art+".key.sigstore.json", "-o", "json").want(t, 0).decode(t, &s)
		sk, err := signer.New(k)
		if err != nil {
			t.Fatal(err)
		}
		hint, _ := sk.KeyHint()
		if s.KeyHint != hint || s.Identity != "" || len(s.LogEntries) != 1 {
			t.Errorf("key-signed cliRun %+v, want key hint %s", s, hint)
		}
		b, err := sgbundle.LoadJSONFromPath(s.Bundle)
		if err != nil {
			t.Fatal(err)
		}
		// sigstore-go checks the signature with the key we trust for the hint.
		trJSON, _ := os.ReadFile(e.root)
		tr, err := root.NewTrustedRootFromJSON(trJSON)
		if err != nil {
			t.Fatal(err)
		}
		kv, err := signature.LoadECDSAVerifier(&k.PublicKey, crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		keyRoot := root.NewTrustedPublicKeyMaterialFromMapping(map[string]*root.ExpiringKey{hint: root.NewExpiringKey(kv, time.Time{}, time.Time{})})
		v, err := sgverify.NewVerifier(root.TrustedMaterialCollection{tr, keyRoot}, sgverify.WithSignedTimestamps(1), sgverify.WithTransparencyLog(1))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(b, sgverify.NewPolicy(sgverify.WithArtifact(bytes.NewReader([]byte(content))), sgverify.WithKey())); err != nil {
			t.Fatalf("sigstore-go rejects the key-signed bundle: %v", err)
		}
	})
}

func TestSignBlobUsageErrors(t *testing.T) {
	dir := t.TempDir()
	art := dir + "/a.txt"
	os.WriteFile(art, []byte("a"), 0o644)
	for name, args := range map[string][]string{
		"no file":               {"sign-blob"},
		"two files":             {"sign-blob", art, art},
		"missing file":          {"sign-blob", dir + "/missing", "--server", "http://127.0.0.1:1"},
		"directory":             {"sign-blob", dir, "--server", "http://127.0.0.1:1"},
		"no services":           {"sign-blob", art},
		"bad server URL":        {"sign-blob", art, "--server", "ftp://x"},
		"bad output":            {"sign-blob", art, "-o", "yaml", "--server", "http://127.0.0.1:1"},
		"unknown flag":          {"sign-blob", art, "--nope"},
		"key and token":         {"sign-blob", art, "--key", art, "--identity-token", "x", "--signing-config", "../../../shared/interop/signing_config.json"},
		"missing key":           {"sign-blob", art, "--key", dir + "/missing.pem", "--signing-config", "../../../shared/interop/signing_config.json"},
		"attest no predicate":   {"attest-blob", art, "--type", "slsaprovenance1"},
		"attest bad type":       {"attest-blob", art, "--predicate", art, "--type", "slsa"},
		"attest bad predicate":  {"attest-blob", art, "--predicate", art, "--type", "spdxjson", "--server", "http://127.0.0.1:1"},
		"verify no identity":    {"verify-blob", art, "--certificate-oidc-issuer", "x"},
		"verify no issuer":      {"verify-blob", art, "--certificate-identity", "x"},
		"verify both":           {"verify-blob", art, "--certificate-identity", "x", "--certificate-identity-regexp", "x", "--certificate-oidc-issuer", "x"},
		"verify bad regexp":     {"verify-blob", art, "--certificate-identity-regexp", "(", "--certificate-oidc-issuer", "x"},
		"verify no trust":       {"verify-blob", art, "--bundle", art, "--certificate-identity", "x", "--certificate-oidc-issuer", "x"},
		"verify missing bundle": {"verify-blob", art, "--certificate-identity", "x", "--certificate-oidc-issuer", "x", "--trusted-root", art},
		"verify-att no bundle":  {"verify-blob-attestation", art, "--certificate-identity", "x", "--certificate-oidc-issuer", "x"},
		"trust no server":       {"trust"},
		"log no subcommand":     {"log"},
		"log entry not number":  {"log", "entry", "x", "--server", "http://127.0.0.1:1"},
		"log proof nothing":     {"log", "proof", "--server", "http://127.0.0.1:1"},
		"log search no filter":  {"log", "search", "--server", "http://127.0.0.1:1"},
		"log search bad digest": {"log", "search", "--digest", "sha256:abc", "--server", "http://127.0.0.1:1"},
		"quickstart bad output": {"quickstart", "-o", "xml"},
	} {
		t.Run(name, func(t *testing.T) {
			r := runSignet(t, nil, args...).want(t, 2)
			if !strings.HasPrefix(r.stderr, "Error: ") || len(r.stderr) < 20 {
				t.Errorf("stderr should explain: %q", r.stderr)
			}
		})
	}
}

// sigstoreGoVerify verifies a bundle of the env's identity with sigstore-go
// as cosign does by default (SCT, signed timestamp, log entry required).
func (e *cliEnv) sigstoreGoVerify(t *testing.T, bundlePath string, artifact []byte) error {
	t.Helper()
	trJSON, err := os.ReadFile(e.root)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := root.NewTrustedRootFromJSON(trJSON)
	if err != nil {
		t.Fatal(err)
	}
	v, err := sgverify.NewVerifier(tr, sgverify.WithSignedCertificateTimestamps(1), sgverify.WithSignedTimestamps(1), sgverify.WithTransparencyLog(1))
	if err != nil {
		t.Fatal(err)
	}
	b, err := sgbundle.LoadJSONFromPath(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	id, err := sgverify.NewShortCertificateIdentity(e.issuer, "", e.identity, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(b, sgverify.NewPolicy(sgverify.WithArtifact(bytes.NewReader(artifact)), sgverify.WithCertificateIdentity(id)))
	return err
}
