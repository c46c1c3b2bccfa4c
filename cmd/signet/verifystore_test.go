package main

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
)

// With only a digest, the attestations come from the server's store as
// whole bundles and are verified offline against the pinned root: the
// server is trusted for nothing.
func TestVerifyAttestationFromStore(t *testing.T) {
	e := newCLIEnv(t)
	const content = "release bits\n"
	art := e.file(t, "app.tar.gz", content)
	sum := sha256.Sum256([]byte(content))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	pred := e.file(t, "pred.json", `{"passed":true}`)
	runSignet(t, e.serverEnv, "attest-blob", art, "--predicate", pred, "--type", "https://example.com/test-result/v1", "--identity-token", e.token).want(t, 0)
	srv := []string{"--server", e.p.URL}

	var v verifyResult
	runSignet(t, nil, append(append([]string{"verify-blob-attestation", "--digest", digest, "--type", "https://example.com/test-result/v1", "-o", "json"}, srv...), e.policy()...)...).want(t, 0).decode(t, &v)
	if !v.Verified || v.Artifact != digest || !strings.Contains(v.Bundle, "/api/v2/attestations/") || v.Identity != e.identity {
		t.Errorf("from the store: %+v", v)
	}
	// A file, fetched by its digest.
	runSignet(t, nil, append(append([]string{"verify-blob-attestation", art, "--from-store", "--type", "https://example.com/test-result/v1"}, srv...), e.policy()...)...).want(t, 0)

	// Another signer, another type, another root: not verified.
	r := runSignet(t, nil, append([]string{"verify-blob-attestation", "--digest", digest, "--type", "https://example.com/test-result/v1", "-o", "json",
		"--trusted-root", e.root, "--certificate-identity", "someone@example.com", "--certificate-oidc-issuer", e.issuer}, srv...)...).want(t, 1)
	r.decode(t, &v)
	if v.Verified || v.FailedCheck != "identity" {
		t.Errorf("another identity: %+v", v)
	}
	r = runSignet(t, nil, append(append([]string{"verify-blob-attestation", "--digest", digest, "--type", "https://example.com/other/v1", "-o", "json"}, srv...), e.policy()...)...).want(t, 1)
	r.decode(t, &v)
	if v.Verified || v.FailedCheck != "attachment" {
		t.Errorf("another type: %+v", v)
	}
	foreign, _ := filepath.Abs("../../../shared/interop/trusted_root.json")
	runSignet(t, nil, append([]string{"verify-blob-attestation", "--digest", digest, "--type", "https://example.com/test-result/v1",
		"--trusted-root", foreign, "--certificate-identity", e.identity, "--certificate-oidc-issuer", e.issuer}, srv...)...).want(t, 1)

	// Usage.
	runSignet(t, nil, append(append([]string{"verify-blob-attestation", "--digest", digest, "--bundle", "x.json", "--type", "custom"}, srv...), e.policy()...)...).want(t, 2)
	runSignet(t, nil, append([]string{"verify-blob-attestation", "--digest", digest, "--type", "custom"}, e.policy()...)...).want(t, 2)
	runSignet(t, nil, append(append([]string{"verify-blob-attestation", art, "--digest", digest}, srv...), e.policy()...)...).want(t, 2)
	runSignet(t, nil, append(append([]string{"verify-blob-attestation", "--digest", "sha256:abc"}, srv...), e.policy()...)...).want(t, 2)
}
