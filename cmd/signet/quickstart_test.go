package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestQuickstart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "qs")
	var res quickstartResult
	runSignet(t, nil, "quickstart", "--dir", dir, "-o", "json").want(t, 0).decode(t, &res)
	if !res.AllVerified || len(res.Verified) != 3 || len(res.Signed) != 3 || len(res.Attestations) != 2 || len(res.Commands) != 3 {
		t.Fatalf("quickstart result: verified %v, %d verified, %d signed, %d attestations, %d commands",
			res.AllVerified, len(res.Verified), len(res.Signed), len(res.Attestations), len(res.Commands))
	}
	for _, v := range res.Verified {
		if !v.Verified || v.Identity != res.Identity || v.Digest != res.Digest {
			t.Errorf("verified %+v", v)
		}
	}
	for _, s := range res.Steps {
		if !s.OK || s.Proves == "" {
			t.Errorf("step %+v", s)
		}
	}
	// What it left behind verifies by hand, offline, after the server stopped.
	for _, c := range res.Commands {
		args := strings.Fields(strings.ReplaceAll(c, "\\\n", " "))[1:]
		runSignet(t, nil, args...).want(t, 0)
	}
	for _, f := range []string{"trusted_root.json", "signing_config.json", "artifact.txt", "artifact.spdx.json", "artifact.provenance.json", "server"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}

	// A second run reuses the keys and reads as a story.
	r := runSignet(t, nil, "quickstart", "--dir", dir).want(t, 0)
	for _, s := range []string{"OFFLINE", "All verified", "signet server --dev-oidc --data", "signet verify-blob-attestation"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("text output lacks %q:\n%s", s, r.stdout)
		}
	}
}
