package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sgtuf "github.com/sigstore/sigstore-go/pkg/tuf"

	"github.com/signet-dev/signet/server/servertest"
	"github.com/signet-dev/signet/server/tuf"
)

// ceremony runs `signet tuf` commands in one workspace.
type ceremony struct {
	t        *testing.T
	dir, cer string
}

func (c *ceremony) run(env []string, args ...string) cliRun {
	c.t.Helper()
	return runSignet(c.t, env, append(args, "--dir", c.cer)...)
}

// key makes a key pair with `signet tuf keygen` and returns the private
// key file and its key ID.
func (c *ceremony) key(name string, env []string, extra ...string) (string, string) {
	c.t.Helper()
	p := filepath.Join(c.dir, name+".key")
	var res struct {
		Key, PublicKey, KeyID, Type string
		Encrypted                   bool
	}
	runSignet(c.t, env, append([]string{"tuf", "keygen", "--out", p, "-o", "json"}, extra...)...).want(c.t, 0).decode(c.t, &res)
	if res.Encrypted != (len(env) > 0) {
		c.t.Fatalf("keygen %s: encrypted %v", name, res.Encrypted)
	}
	return p, res.KeyID
}

func (c *ceremony) status() tuf.Status {
	c.t.Helper()
	var st tuf.Status
	runSignet(c.t, nil, "tuf", "status", "--dir", c.cer, "-o", "json").want(c.t, 0).decode(c.t, &st)
	return st
}

func tufConfig(t *testing.T, dir, published, onlineKey string) string {
	t.Helper()
	p := filepath.Join(dir, fmt.Sprintf("server-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(p, fmt.Appendf(nil, "tuf:\n  dir: %s\n  onlineKey: %s\n", published, onlineKey), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The whole ceremony through the CLI against the real server: a 2-of-3
// root (one key encrypted, one ECDSA) is signed key holder by key holder,
// published and served; root version 2 changes the root key set and the
// online key. A version 2 signed by a threshold of the new keys only is
// refused by publish, by the server at start and by `signet trust`, each
// naming the threshold; completed, it is followed by sigstore-go's TUF
// client, `signet trust --root` and `cosign initialize --mirror`, all
// pinned to version 1. The timestamp is signed by the new online key
// alone, which version 1 does not trust: a client that did not walk to
// version 2 could fetch nothing.
func TestTUFCeremonyRootRotationIsFollowed(t *testing.T) {
	bin := cosignBinary(t)
	dataDir := t.TempDir()
	// One address throughout: the trust files the ceremony signs name it.
	addr := fmt.Sprintf("127.0.0.1:%d", servertest.FreePort(t))
	first := servertest.Start(t, dataDir, "--dev-oidc", "--addr", addr)
	trustDir := filepath.Join(t.TempDir(), "trust")
	runSignet(t, nil, "trust", "--server", first.URL, "--out", trustDir).want(t, 0)
	first.Kill()

	c := &ceremony{t: t, dir: t.TempDir()}
	c.cer = filepath.Join(c.dir, "ceremony")
	pass := []string{"SIGNET_TUF_PASSPHRASE=alice's secret"}
	alice, _ := c.key("alice", pass)
	bob, _ := c.key("bob", nil)
	carol, _ := c.key("carol", nil)
	dave, _ := c.key("dave", nil, "--type", "ecdsa-p256")
	online1, _ := c.key("online1", nil)
	online2, online2ID := c.key("online2", nil)
	pub := filepath.Join(c.dir, "published")

	c.run(nil, "tuf", "init", "--root-key", alice+".pub", "--root-key", bob+".pub", "--root-key", carol+".pub", "--root-threshold", "2",
		"--targets-key", alice+".pub", "--online-key", online1+".pub").want(t, 0)
	c.run(nil, "tuf", "targets", "--trusted-root", filepath.Join(trustDir, trustedRootFile), "--signing-config", filepath.Join(trustDir, signingConfigFile)).want(t, 0)
	if r := c.run(nil, "tuf", "sign", "--role", "root", "--key", alice).want(t, 2); !strings.Contains(r.stderr, "SIGNET_TUF_PASSPHRASE") {
		t.Errorf("an encrypted key without its passphrase: %s", r.stderr)
	}
	c.run(pass, "tuf", "sign", "--role", "root", "--key", alice).want(t, 0)
	c.run(pass, "tuf", "sign", "--role", "targets", "--key", alice).want(t, 0)
	if r := c.run(nil, "tuf", "publish", "--to", pub).want(t, 1); !strings.Contains(r.stderr, "1.root.json: threshold not met") {
		t.Errorf("publishing a root signed by 1 of 2: %s", r.stderr)
	}
	c.run(nil, "tuf", "sign", "--role", "root", "--key", bob).want(t, 0)
	c.run(nil, "tuf", "publish", "--to", pub).want(t, 0)
	pinned := filepath.Join(c.cer, "1.root.json")

	e1 := newCLIEnvIn(t, dataDir, "acme/app", "--addr", addr, "--config", tufConfig(t, c.dir, pub, online1))
	var tr trustResult
	runSignet(t, nil, "trust", "--server", e1.p.URL, "--root", pinned, "--out", filepath.Join(c.dir, "v1"), "-o", "json").want(t, 0).decode(t, &tr)
	if !tr.VerifiedOverTUF {
		t.Errorf("trust over the ceremony's repository: %+v", tr)
	}
	e1.p.Kill()

	// Version 2: root keys {bob, carol, dave}, online key online2.
	c.run(nil, "tuf", "root", "new-version", "--root-key", bob+".pub", "--root-key", carol+".pub", "--root-key", dave, "--root-threshold", "2",
		"--online-key", online2).want(t, 0)
	c.run(nil, "tuf", "sign", "--role", "root", "--key", dave).want(t, 0)
	c.run(nil, "tuf", "sign", "--role", "root", "--key", carol).want(t, 0)
	st := c.status()
	if st.Ready || st.Root.Version != 2 || len(st.Root.Thresholds) != 2 || st.Root.Thresholds[0].Have != 2 || st.Root.Thresholds[1].By != "1.root.json" || st.Root.Thresholds[1].Have != 1 {
		t.Fatalf("version 2 signed by carol and dave: %+v", st.Root)
	}
	if r := c.run(nil, "tuf", "publish", "--to", pub).want(t, 1); !strings.Contains(r.stderr, "2.root.json: threshold not met") || !strings.Contains(r.stderr, "1.root.json") {
		t.Errorf("publishing version 2 without the old root's threshold: %s", r.stderr)
	}
	// Copied by hand instead, the server refuses it, naming the cause...
	byHand := filepath.Join(c.dir, "by-hand")
	if err := os.CopyFS(byHand, os.DirFS(c.cer)); err != nil {
		t.Fatal(err)
	}
	if p, err := servertest.StartErr(servertest.Binary(t), dataDir, "--dev-oidc", "--addr", addr, "--config", tufConfig(t, c.dir, byHand, online2)); err == nil {
		p.Kill()
		t.Error("the server started with a root version below its predecessor's threshold")
	} else if !strings.Contains(err.Error(), "2.root.json: threshold not met") {
		t.Errorf("the server's refusal: %v", err)
	}
	// ...and so does a client served it.
	mux := http.NewServeMux()
	mux.Handle("/tuf/", http.StripPrefix("/tuf/", http.FileServer(http.Dir(byHand))))
	bad := httptest.NewServer(mux)
	defer bad.Close()
	if r := runSignet(t, nil, "trust", "--server", bad.URL, "--root", pinned, "--out", filepath.Join(c.dir, "refused")).want(t, 1); !strings.Contains(r.stderr, "threshold not met") || !strings.Contains(r.stderr, "want 2") {
		t.Errorf("signet trust served a root below threshold: %s", r.stderr)
	}

	c.run(nil, "tuf", "sign", "--role", "root", "--key", bob).want(t, 0)
	if st := c.status(); !st.Ready {
		t.Fatalf("after bob: %v", st.Problems)
	}
	c.run(nil, "tuf", "publish", "--to", pub).want(t, 0)
	// The rotated-out online key no longer starts the server.
	if p, err := servertest.StartErr(servertest.Binary(t), dataDir, "--dev-oidc", "--addr", addr, "--config", tufConfig(t, c.dir, pub, online1)); err == nil {
		p.Kill()
		t.Error("the server started with the rotated-out online key")
	} else if !strings.Contains(err.Error(), "online key") {
		t.Errorf("the server's refusal: %v", err)
	}
	e := newCLIEnvIn(t, dataDir, "acme/app", "--addr", addr, "--config", tufConfig(t, c.dir, pub, online2))

	ts, err := e.p.Get("/tuf/timestamp.json")
	if err != nil {
		t.Fatal(err)
	}
	var tsm struct {
		Signatures []struct {
			KeyID string `json:"keyid"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(ts, &tsm); err != nil || len(tsm.Signatures) != 1 || tsm.Signatures[0].KeyID != online2ID {
		t.Fatalf("timestamp signatures %+v (%v), want online2 %s alone", tsm.Signatures, err, online2ID)
	}

	// sigstore-go's TUF client, pinned to version 1.
	root1, _ := os.ReadFile(pinned)
	want, _ := os.ReadFile(filepath.Join(trustDir, trustedRootFile))
	cl, err := sgtuf.New(&sgtuf.Options{Root: root1, RepositoryBaseURL: e.p.URL + "/tuf", CachePath: t.TempDir(), DisableLocalCache: true})
	if err != nil {
		t.Fatalf("sigstore-go's TUF client pinned to version 1: %v", err)
	}
	if got, err := cl.GetTarget(tuf.TrustedRootTarget); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("sigstore-go after the rotation: %v", err)
	}
	// signet trust, pinned to version 1.
	runSignet(t, nil, "trust", "--server", e.p.URL, "--root", pinned, "--out", filepath.Join(c.dir, "v2"), "-o", "json").want(t, 0).decode(t, &tr)
	// cosign initialize, pinned to version 1, then signs and verifies with
	// what it got.
	cosign := cosignHome(t, bin)
	if out, err := cosign("initialize", "--mirror", e.p.URL+"/tuf", "--root", pinned); err != nil {
		t.Fatalf("cosign initialize after the rotation: %v\n%s", err, out)
	}
	art := e.file(t, "rotated.txt", "after the rotation\n")
	b := filepath.Join(e.dir, "rotated.sigstore.json")
	if out, err := cosign("sign-blob", "-y", "--bundle", b, "--identity-token", e.token, art); err != nil {
		t.Fatalf("cosign sign-blob: %v\n%s", err, out)
	}
	if out, err := cosign("verify-blob", "--bundle", b, "--certificate-identity", e.identity, "--certificate-oidc-issuer", e.issuer, art); err != nil {
		t.Fatalf("cosign verify-blob: %v\n%s", err, out)
	}
}

// Targets that expired (copied into tuf.dir by hand: publish refuses
// them) do not stop the server, which logs the error, but every client
// refuses them and `signet trust` says the metadata expired.
func TestTrustRefusesExpiredTUFMetadata(t *testing.T) {
	c := &ceremony{t: t, dir: t.TempDir()}
	c.cer = filepath.Join(c.dir, "ceremony")
	root, _ := c.key("root", nil)
	online, _ := c.key("online", nil)
	c.run(nil, "tuf", "init", "--root-key", root, "--root-threshold", "1", "--targets-key", root, "--online-key", online).want(t, 0)
	if _, err := (&tuf.Ceremony{Dir: c.cer}).Targets(map[string][]byte{tuf.TrustedRootTarget: []byte("{}\n")}, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	c.run(nil, "tuf", "sign", "--role", "root", "--key", root).want(t, 0)
	c.run(nil, "tuf", "sign", "--role", "targets", "--key", root).want(t, 0)
	pub := filepath.Join(c.dir, "published")
	if r := c.run(nil, "tuf", "publish", "--to", pub).want(t, 1); !strings.Contains(r.stderr, "1.targets.json expired") {
		t.Errorf("publishing expired targets: %s", r.stderr)
	}
	if err := os.CopyFS(pub, os.DirFS(c.cer)); err != nil {
		t.Fatal(err)
	}
	p := servertest.Start(t, t.TempDir(), "--dev-oidc", "--config", tufConfig(t, c.dir, pub, online))
	r := runSignet(t, nil, "trust", "--server", p.URL, "--root", filepath.Join(c.cer, "1.root.json"), "--out", filepath.Join(c.dir, "out")).want(t, 1)
	if !strings.Contains(r.stderr, "expired metadata") || !strings.Contains(r.stderr, "targets is expired") {
		t.Errorf("signet trust with expired targets: %s", r.stderr)
	}
	if !strings.Contains(p.Stderr(), "published TUF metadata expired") {
		t.Errorf("the server did not log the expiry:\n%s", p.Stderr())
	}
}
