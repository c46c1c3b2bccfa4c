package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTrust(t *testing.T) {
	e := newCLIEnv(t) // pinned to e.dir/trust already
	out := filepath.Join(e.dir, "trust")
	served, err := e.p.Get("/trust/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := os.ReadFile(filepath.Join(out, trustedRootFile))
	if err != nil || !bytes.Equal(pinned, served) {
		t.Fatalf("pinned trusted root differs from the served one (%v)", err)
	}
	sc, _ := e.p.Get("/trust/signing_config.json")
	if pinnedSC, err := os.ReadFile(filepath.Join(out, signingConfigFile)); err != nil || !bytes.Equal(pinnedSC, sc) {
		t.Fatalf("pinned signing config differs from the served one (%v)", err)
	}

	var res trustResult
	runSignet(t, nil, "trust", "--server", e.p.URL, "--out", out, "-o", "json").want(t, 0).decode(t, &res)
	if res.Changed || len(res.CAs) != 1 || len(res.Logs) != 1 || len(res.TSAs) != 1 || len(res.CAs[0].RootSHA256) != 64 || len(res.Logs[0].KeySHA256) != 64 {
		t.Fatalf("re-pin of the same server: %+v", res)
	}
	// The log ID printed is the one in the trusted root.
	var tr struct {
		Tlogs []struct {
			LogID struct {
				KeyID string `json:"keyId"`
			} `json:"logId"`
		} `json:"tlogs"`
	}
	if err := json.Unmarshal(served, &tr); err != nil || len(tr.Tlogs) != 1 {
		t.Fatalf("trusted root: %v", err)
	}
	id, _ := base64.StdEncoding.DecodeString(tr.Tlogs[0].LogID.KeyID)
	if res.Logs[0].LogID != hex.EncodeToString(id) || res.Services.Logs[0] != e.p.URL {
		t.Errorf("log fingerprint %+v, services %+v", res.Logs[0], res.Services)
	}
	r := runSignet(t, nil, "trust", "--server", e.p.URL, "--out", out).want(t, 0)
	for _, s := range []string{"root sha256 " + res.CAs[0].RootSHA256, "key sha256 " + res.Logs[0].KeySHA256, "log ID " + res.Logs[0].LogID} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("text output lacks %q:\n%s", s, r.stdout)
		}
	}

	// A pin that no longer matches is refused and left alone, until --force.
	other := []byte(strings.Replace(string(served), `"tlogs"`, `"tlogs" `, 1))
	if err := os.WriteFile(filepath.Join(out, trustedRootFile), other, 0o644); err != nil {
		t.Fatal(err)
	}
	r = runSignet(t, nil, "trust", "--server", e.p.URL, "--out", out).want(t, 1)
	if !strings.Contains(r.stderr, "--force") || !strings.Contains(r.stdout, "NOT pinned") {
		t.Errorf("refusal should explain:\nstdout %s\nstderr %s", r.stdout, r.stderr)
	}
	if now, _ := os.ReadFile(filepath.Join(out, trustedRootFile)); !bytes.Equal(now, other) {
		t.Error("a refused pin changed the file")
	}
	runSignet(t, nil, "trust", "--server", e.p.URL, "--out", out, "--force", "-o", "json").want(t, 0).decode(t, &res)
	if now, _ := os.ReadFile(filepath.Join(out, trustedRootFile)); !res.Changed || !bytes.Equal(now, served) {
		t.Error("--force did not replace the pin")
	}
	runSignet(t, nil, "trust", "--server", "http://127.0.0.1:1", "--out", t.TempDir()).want(t, 1)
}

func TestLog(t *testing.T) {
	e := newCLIEnv(t)
	art := e.file(t, "a.txt", "a\n")
	var signed signResult
	runSignet(t, e.serverEnv, "sign-blob", art, "--identity-token", e.token, "-o", "json").want(t, 0).decode(t, &signed)
	index := signed.LogEntries[0].LogIndex
	logArgs := func(args ...string) []string { return append(args, "--trusted-root", e.root, "--server", e.p.URL) }

	// The log publishes a checkpoint every 100 ms: wait for one with the entry.
	var cp checkpointJSON
	saved := filepath.Join(e.dir, "cp.txt")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		runSignet(t, nil, logArgs("log", "checkpoint", "--save", saved, "-o", "json")...).want(t, 0).decode(t, &cp)
		if cp.TreeSize > uint64(index) || time.Now().After(deadline) {
			break
		}
	}
	if !cp.Verified || cp.TreeSize < uint64(index)+1 || cp.Origin != "127.0.0.1" || cp.LogURL != e.p.URL || !strings.HasPrefix(cp.Note, "127.0.0.1\n") {
		t.Fatalf("checkpoint %+v", cp)
	}
	if b, _ := os.ReadFile(saved); string(b) != cp.Note {
		t.Error("--save did not write the signed note")
	}

	// The signature's entry (the timestamp's may come before it).
	idx := fmt.Sprint(index)
	var ent entryJSON
	runSignet(t, nil, logArgs("log", "entry", idx, "-o", "json")...).want(t, 0).decode(t, &ent)
	if !ent.InclusionVerified || ent.Kind != "hashedrekord" || ent.APIVersion != "0.0.2" || ent.Identity != e.identity || ent.Issuer != e.issuer || ent.Digest != signed.Digest || len(ent.Body) == 0 {
		t.Errorf("entry %d: %+v", index, ent)
	}
	r := runSignet(t, nil, logArgs("log", "entry", idx)...).want(t, 0)
	if !strings.Contains(r.stdout, "included in the verified checkpoint") {
		t.Errorf("text: %s", r.stdout)
	}

	var p proofJSON
	runSignet(t, nil, logArgs("log", "proof", "--index", idx, "-o", "json")...).want(t, 0).decode(t, &p)
	if !p.Verified || p.Type != "inclusion" || p.LogIndex == nil || *p.LogIndex != uint64(index) || p.LeafHash != ent.LeafHash {
		t.Errorf("inclusion proof %+v", p)
	}

	// Grow the log, then prove the saved checkpoint's tree is a prefix.
	for i := 0; i < 3; i++ {
		runSignet(t, e.serverEnv, "sign-blob", art, "--identity-token", e.token, "--bundle", filepath.Join(e.dir, "more.sigstore.json")).want(t, 0)
	}
	time.Sleep(300 * time.Millisecond) // a checkpoint past the saved one
	p = proofJSON{}
	runSignet(t, nil, logArgs("log", "proof", "--from-checkpoint", saved, "-o", "json")...).want(t, 0).decode(t, &p)
	if !p.Verified || p.Type != "consistency" || !p.OldCheckpointVerified || p.OldTreeSize != cp.TreeSize || p.OldRootHash != cp.RootHash {
		t.Errorf("consistency proof %+v, old checkpoint %+v", p, cp)
	}
	p = proofJSON{} // decode fresh: omitted fields must read as unset
	runSignet(t, nil, logArgs("log", "proof", "--from-size", "1", "-o", "json")...).want(t, 0).decode(t, &p)
	if !p.Verified || p.OldTreeSize != 1 || p.OldCheckpointVerified {
		t.Errorf("consistency from size 1: %+v", p)
	}
	// The root of size 1 is the leaf hash of entry 0 (RFC 6962).
	var first entryJSON
	runSignet(t, nil, logArgs("log", "entry", "0", "-o", "json")...).want(t, 0).decode(t, &first)
	if root, _ := base64.StdEncoding.DecodeString(p.OldRootHash); hex.EncodeToString(root) != first.LeafHash {
		t.Errorf("root of size 1 %x, leaf 0 %s", root, first.LeafHash)
	}

	t.Run("forged checkpoint", func(t *testing.T) {
		note := []byte(cp.Note)
		lines := strings.SplitN(string(note), "\n", 4)
		lines[2] = base64.StdEncoding.EncodeToString(make([]byte, 32))
		forged := filepath.Join(e.dir, "forged.txt")
		os.WriteFile(forged, []byte(strings.Join(lines, "\n")), 0o644)
		r := runSignet(t, nil, logArgs("log", "proof", "--from-checkpoint", forged)...).want(t, 1)
		if !strings.Contains(r.stderr, "checkpoint") {
			t.Errorf("stderr: %s", r.stderr)
		}
	})
	t.Run("another server's root", func(t *testing.T) {
		other := newCLIEnv(t)
		r := runSignet(t, nil, "log", "checkpoint", "--trusted-root", other.root, "--server", e.p.URL).want(t, 2)
		if !strings.Contains(r.stderr, "is not a log in the trusted root") {
			t.Errorf("stderr: %s", r.stderr)
		}
		r = runSignet(t, nil, "log", "checkpoint", "--trusted-root", other.root).want(t, 0)
		if !strings.Contains(r.stdout, other.p.URL) {
			t.Errorf("the root's only log should be the default: %s", r.stdout)
		}
	})
	runSignet(t, nil, logArgs("log", "entry", "1000")...).want(t, 2)
	runSignet(t, nil, logArgs("log", "proof", "--index", "1000")...).want(t, 2)
}
