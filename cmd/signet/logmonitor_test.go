package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// forgeCheckpoint signs a checkpoint of (size, root) with the server's own
// log key: what a log showing a client another tree would serve.
func forgeCheckpoint(t *testing.T, e *cliEnv, size uint64, root []byte) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(e.p.DataDir, "keys", "log.key"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(raw)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	priv := k.(ed25519.PrivateKey)
	u, _ := url.Parse(e.p.URL)
	origin := u.Hostname()
	text := fmt.Sprintf("%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(root))
	h := sha256.New()
	h.Write([]byte(origin + "\n\x01"))
	h.Write(priv.Public().(ed25519.PublicKey))
	sig := append(binary.BigEndian.AppendUint32(nil, binary.BigEndian.Uint32(h.Sum(nil))), ed25519.Sign(priv, []byte(text))...)
	return []byte(text + "\n— " + origin + " " + base64.StdEncoding.EncodeToString(sig) + "\n")
}

// The monitor follows the real log from a state file, proves each step,
// and stops with the evidence at a split view, a rewrite or a truncation;
// an unreachable log is exit 3, not an inconsistency.
func TestLogMonitor(t *testing.T) {
	e := newCLIEnv(t)
	state := filepath.Join(e.dir, "log.cp")
	monitor := func(extra ...string) cliRun {
		return runSignet(t, nil, append([]string{"log", "monitor", "--server", e.p.URL, "--trusted-root", e.root, "--state", state, "--once", "-o", "json"}, extra...)...)
	}
	events := func(r cliRun) []monitorEvent {
		var out []monitorEvent
		dec := json.NewDecoder(strings.NewReader(r.stdout))
		for dec.More() {
			var ev monitorEvent
			if err := dec.Decode(&ev); err != nil {
				t.Fatalf("%v in %s", err, r.stdout)
			}
			out = append(out, ev)
		}
		return out
	}
	art := e.file(t, "a.txt", "a\n")
	runSignet(t, e.serverEnv, "sign-blob", art, "--bundle", filepath.Join(e.dir, "a.sigstore.json"), "--identity-token", e.token).want(t, 0)

	first := events(monitor().want(t, 0))
	if len(first) != 1 || first[0].Event != "verified" || first[0].FromSize != nil || first[0].TreeSize == 0 {
		t.Fatalf("first run: %+v", first)
	}
	saved, err := os.ReadFile(state)
	if err != nil || !bytes.Contains(saved, []byte(fmt.Sprintf("\n%d\n", first[0].TreeSize))) {
		t.Fatalf("state %q (%v) is not the verified checkpoint", saved, err)
	}
	runSignet(t, e.serverEnv, "sign-blob", art, "--bundle", filepath.Join(e.dir, "b.sigstore.json"), "--identity-token", e.token).want(t, 0)
	second := events(monitor().want(t, 0))
	if len(second) != 1 || second[0].FromSize == nil || *second[0].FromSize != first[0].TreeSize || second[0].TreeSize <= first[0].TreeSize {
		t.Fatalf("second run: %+v, want consistency from %d", second, first[0].TreeSize)
	}
	size := second[0].TreeSize

	for _, c := range []struct {
		name      string
		forged    []byte
		want      string
		splitView bool
	}{
		{"split view", forgeCheckpoint(t, e, size, bytes.Repeat([]byte{7}, 32)), "SPLIT VIEW", true},
		{"rewritten history", forgeCheckpoint(t, e, size-1, bytes.Repeat([]byte{7}, 32)), "is NOT consistent with the old tree", false},
		{"truncation", forgeCheckpoint(t, e, size+5, bytes.Repeat([]byte{7}, 32)), "larger than the log's verified checkpoint", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(state, c.forged, 0o644); err != nil {
				t.Fatal(err)
			}
			r := monitor().want(t, 1)
			ev := events(r)
			if len(ev) != 1 || ev[0].Event != "inconsistent" || ev[0].SplitView != c.splitView || ev[0].Earlier != string(c.forged) || ev[0].Checkpoint == "" || !strings.Contains(ev[0].Error, c.want) {
				t.Errorf("events %+v, want an inconsistency saying %q", ev, c.want)
			}
			if !strings.Contains(r.stderr, "evidence") || !strings.Contains(r.stderr, string(c.forged)) {
				t.Errorf("stderr carries no evidence:\n%s", r.stderr)
			}
			if after, _ := os.ReadFile(state); !bytes.Equal(after, c.forged) {
				t.Error("the state file was overwritten after an inconsistency")
			}
			// signet log proof tells the same from the saved checkpoint.
			cp := filepath.Join(t.TempDir(), "seen.cp")
			os.WriteFile(cp, c.forged, 0o644)
			if p := runSignet(t, nil, "log", "proof", "--from-checkpoint", cp, "--server", e.p.URL, "--trusted-root", e.root).want(t, 1); !strings.Contains(p.stderr, c.want) {
				t.Errorf("log proof: %s", p.stderr)
			}
		})
	}

	// A log that does not answer: exit 3 with --once.
	os.Remove(state)
	rootJSON, err := os.ReadFile(e.root)
	if err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(e.dir, "dead-root.json")
	os.WriteFile(dead, bytes.ReplaceAll(rootJSON, []byte(e.p.URL), []byte("http://127.0.0.1:1")), 0o644)
	r := runSignet(t, nil, "log", "monitor", "--trusted-root", dead, "--log", "http://127.0.0.1:1", "--once").want(t, 3)
	if r.stderr == "" {
		t.Error("no error for an unreachable log")
	}
}
