package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	f_log "github.com/transparency-dev/formats/log"
)

// logSize is the size of the server's published tree.
func (e *cliEnv) logSize(t *testing.T) uint64 {
	t.Helper()
	raw, err := e.p.Get("/api/v2/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	var cp f_log.Checkpoint
	if _, err := cp.Unmarshal(raw[:strings.Index(string(raw), "\n\n")+1]); err != nil {
		t.Fatalf("checkpoint %q: %v", raw, err)
	}
	return cp.Size
}

// A bundle path that cannot take the bundle is refused before any service
// is called: nothing is logged for a bundle that would be lost, and nothing
// already on disk is overwritten.
func TestBadBundlePathLogsNothing(t *testing.T) {
	e := newCLIEnv(t)
	art := e.file(t, "app.tar.gz", "release bits\n")
	pred := e.file(t, "result.json", `{"passed":true}`)
	plain := e.file(t, "notes.txt", "not a directory")
	earlier := filepath.Join(e.dir, "earlier.sigstore.json")
	runSignet(t, e.serverEnv, "attest-blob", art, "--predicate", pred, "--type", "https://example.com/test-result/v1", "--bundle", earlier, "--identity-token", e.token).want(t, 0)
	before := e.logSize(t)

	cases := []struct {
		name, bundle, want string
	}{
		{"the artifact itself", art, "not a Sigstore bundle"},
		{"a directory", e.dir, "is a directory"},
		{"under a file", filepath.Join(plain, "x.sigstore.json"), "not a directory"},
		{"over an attestation", earlier, "another kind"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runSignet(t, e.serverEnv, "sign-blob", art, "--bundle", c.bundle, "--identity-token", e.token).want(t, 2)
			if !strings.Contains(r.stderr, "--bundle") || !strings.Contains(r.stderr, c.want) {
				t.Errorf("stderr does not name --bundle and %q:\n%s", c.want, r.stderr)
			}
		})
	}
	if got, _ := os.ReadFile(art); string(got) != "release bits\n" {
		t.Errorf("the artifact was overwritten: %q", got)
	}
	if after := e.logSize(t); after != before {
		t.Errorf("the log grew from %d to %d entries for bundles that were never written", before, after)
	}
}

// Two attest-blob calls with different custom types write two files, and
// verify-blob-attestation finds each by its type, spelled as a URI or as
// cosign's short name.
func TestAttestationBundleNamesFollowType(t *testing.T) {
	e := newCLIEnv(t)
	art := e.file(t, "app.tar.gz", "release bits\n")
	pred := e.file(t, "pred.json", `{"passed":true}`)
	types := []string{"https://example.com/test-result/v1", "https://example.com/lint/v1", "custom"}
	var paths []string
	for _, ty := range types {
		var s signResult
		runSignet(t, e.serverEnv, "attest-blob", art, "--predicate", pred, "--type", ty, "--identity-token", e.token, "-o", "json").want(t, 0).decode(t, &s)
		paths = append(paths, s.Bundle)
	}
	if paths[0] == paths[1] || paths[1] == paths[2] || paths[0] == paths[2] {
		t.Fatalf("bundles share a file: %v", paths)
	}
	for _, ty := range types {
		runSignet(t, nil, append([]string{"verify-blob-attestation", art, "--type", ty}, e.policy()...)...).want(t, 0)
	}
	// cosign's URI for custom finds the bundle written for the short name.
	runSignet(t, nil, append([]string{"verify-blob-attestation", art, "--type", "https://cosign.sigstore.dev/attestation/v1"}, e.policy()...)...).want(t, 0)
	// A type with no bundle is not satisfied by another type's bundle.
	r := runSignet(t, nil, append([]string{"verify-blob-attestation", art, "--type", "https://example.com/other/v1"}, e.policy()...)...).want(t, 2)
	if !strings.Contains(r.stderr, "no attestation of type https://example.com/other/v1") {
		t.Errorf("stderr: %s", r.stderr)
	}
}
