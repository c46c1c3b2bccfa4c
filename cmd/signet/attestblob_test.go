package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-dev/signet/core/intoto"
)

func TestAttestBlobEachPredicateType(t *testing.T) {
	e := newCLIEnv(t)
	content := "app binary\n"
	art := e.file(t, "app.bin", content)
	sum := sha256.Sum256([]byte(content))
	digest := "sha256:" + hex.EncodeToString(sum[:])

	prov, err := os.ReadFile("../../../shared/interop/provenance-predicate.json")
	if err != nil {
		prov = []byte(`{"buildDefinition":{"buildType":"https://example.com/build/v1","externalParameters":{"ref":"main"}},"runDetails":{"builder":{"id":"https://example.com/builder"}}}`)
	}
	spdxDoc, err := spdxDocument(art, sum[:], "")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		typeName, uri, predicate string
	}{
		{"slsaprovenance1", intoto.PredicateSLSAProvenanceV1, string(prov)},
		{"spdxjson", intoto.PredicateSPDX, string(spdxDoc)},
		{"cyclonedx", intoto.PredicateCycloneDX, `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,"components":[{"type":"file","name":"app.bin","hashes":[{"alg":"SHA-256","content":"` + hex.EncodeToString(sum[:]) + `"}]}]}`},
		{"https://example.com/test-result/v1", "https://example.com/test-result/v1", `{"passed":true}`},
	}
	for _, c := range cases {
		t.Run(c.typeName, func(t *testing.T) {
			pred := e.file(t, strings.NewReplacer("/", "_", ":", "_").Replace(c.typeName)+".json", c.predicate)
			var s signResult
			r := runSignet(t, e.serverEnv, "attest-blob", art, "--predicate", pred, "--type", c.typeName, "--identity-token", e.token, "-o", "json").want(t, 0)
			r.decode(t, &s)
			if s.PredicateType != c.uri || s.Digest != digest || s.AttestationID == "" || len(s.LogEntries) != 1 {
				t.Fatalf("attest-blob cliRun %+v", s)
			}
			if want := defaultAttestationBundle(art, c.uri); s.Bundle != want {
				t.Errorf("bundle %s, want %s", s.Bundle, want)
			}

			var v verifyResult
			runSignet(t, nil, append([]string{"verify-blob-attestation", art, "--bundle", s.Bundle, "--type", c.typeName, "-o", "json"}, e.policy()...)...).want(t, 0).decode(t, &v)
			if !v.Verified || v.PredicateType != c.uri || v.Digest != digest {
				t.Errorf("verify cliRun %+v", v)
			}
			// The default bundle name follows --type, as attest-blob wrote it.
			runSignet(t, nil, append([]string{"verify-blob-attestation", art, "--type", c.typeName}, e.policy()...)...).want(t, 0)
			// verify-blob takes a DSSE bundle too: the statement must name the file.
			runSignet(t, nil, append([]string{"verify-blob", art, "--bundle", s.Bundle}, e.policy()...)...).want(t, 0)

			other := "https://example.com/other/v1"
			r = runSignet(t, nil, append([]string{"verify-blob-attestation", art, "--bundle", s.Bundle, "--type", other}, e.policy()...)...).want(t, 1)
			if !strings.Contains(r.stderr, "statement: ") {
				t.Errorf("wrong type should fail the statement check:\n%s", r.stderr)
			}
			changed := e.file(t, "changed.bin", content+"x")
			r = runSignet(t, nil, append([]string{"verify-blob-attestation", changed, "--bundle", s.Bundle, "--type", c.typeName, "-o", "json"}, e.policy()...)...).want(t, 1)
			r.decode(t, &v)
			if v.Verified || v.FailedCheck != "artifact" {
				t.Errorf("a file the statement does not name: %+v", v)
			}
			r = runSignet(t, nil, "verify-blob-attestation", art, "--bundle", s.Bundle, "--type", c.typeName, "--trusted-root", e.root,
				"--certificate-identity", "https://github.com/evil/app/.github/workflows/release.yml@refs/heads/main", "--certificate-oidc-issuer", e.issuer).want(t, 1)
			if !strings.Contains(r.stderr, "identity: ") {
				t.Errorf("other identity:\n%s", r.stderr)
			}

			// The attestation store found it by the file and by its digest.
			var found searchResult
			runSignet(t, e.serverEnv, "log", "search", "--digest", art, "--type", c.typeName, "-o", "json").want(t, 0).decode(t, &found)
			if found.Digest != digest || found.PredicateType != c.uri || len(found.Attestations) != 1 {
				t.Fatalf("search found %+v", found)
			}
			a := found.Attestations[0]
			if a.ID != s.AttestationID || a.Identity != e.identity || a.Issuer != e.issuer || a.LogIndex != s.LogEntries[0].LogIndex ||
				len(a.Subjects) != 1 || a.Subjects[0].Name != filepath.Base(art) || a.Subjects[0].Digest["sha256"] != hex.EncodeToString(sum[:]) {
				t.Errorf("found %+v, want attestation %s", a, s.AttestationID)
			}
		})
	}

	t.Run("search filters", func(t *testing.T) {
		var all, byID, none searchResult
		runSignet(t, e.serverEnv, "log", "search", "--digest", digest, "-o", "json").want(t, 0).decode(t, &all)
		if len(all.Attestations) != len(cases) {
			t.Errorf("by digest: %d attestations, want %d", len(all.Attestations), len(cases))
		}
		runSignet(t, e.serverEnv, "log", "search", "--identity", e.identity, "--issuer", e.issuer, "--limit", "2", "-o", "json").want(t, 0).decode(t, &byID)
		if len(byID.Attestations) != 2 {
			t.Errorf("--limit 2 returned %d", len(byID.Attestations))
		}
		runSignet(t, e.serverEnv, "log", "search", "--identity", "https://github.com/evil/app/.github/workflows/release.yml@refs/heads/main", "-o", "json").want(t, 0).decode(t, &none)
		if len(none.Attestations) != 0 {
			t.Errorf("another identity found %d", len(none.Attestations))
		}
		r := runSignet(t, e.serverEnv, "log", "search", "--digest", digest).want(t, 0)
		if !strings.Contains(r.stdout, "4 attestation(s)") || !strings.Contains(r.stdout, intoto.PredicateSPDX) {
			t.Errorf("text output:\n%s", r.stdout)
		}
	})

	t.Run("bad predicate changes nothing", func(t *testing.T) {
		notSPDX := e.file(t, "not-spdx.json", `{"name":"x"}`)
		r := runSignet(t, e.serverEnv, "attest-blob", art, "--predicate", notSPDX, "--type", "spdxjson", "--identity-token", e.token, "--bundle", filepath.Join(e.dir, "bad.sigstore.json")).want(t, 2)
		if !strings.Contains(r.stderr, "SPDX") {
			t.Errorf("stderr: %s", r.stderr)
		}
		if _, err := os.Stat(filepath.Join(e.dir, "bad.sigstore.json")); !os.IsNotExist(err) {
			t.Errorf("a bundle was written for a refused predicate: %v", err)
		}
	})
}
