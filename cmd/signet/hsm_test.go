//go:build cgo

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/hsmtest"
	"github.com/signet-dev/signet/server/pki"
	"github.com/signet-dev/signet/server/servertest"
)

// The server with every signing key in a PKCS#11 token (SoftHSM2): the
// log's Ed25519 checkpoint key and the CT log's key made in the token by
// `signet server keygen`, the CA's and TSA's keys made there by `signet ca
// init`, whose root key is a file outside the data directory (the offline
// root). What the HSM-backed server signs verifies with signet and with
// cosign v3 at its default, strict settings (SCT, log entry, timestamp);
// no private key is in the data directory, and a changed artifact fails.
func TestHSMBackedServer(t *testing.T) {
	cosignBinary(t)
	tok := hsmtest.New(t)
	work := t.TempDir()
	env := tok.Env()

	logPub := runSignet(t, env, "server", "keygen", "--algorithm", "ed25519", "--key", tok.URI("e2e-log")).want(t, 0).stdout
	if !strings.Contains(logPub, "BEGIN PUBLIC KEY") {
		t.Fatalf("keygen printed no public key: %s", logPub)
	}
	runSignet(t, env, "server", "keygen", "--key", tok.URI("e2e-ct")).want(t, 0)
	runSignet(t, env, "server", "keygen", "--algorithm", "ed25519", "--key", tok.URI("e2e-tuf")).want(t, 0)
	if r := runSignet(t, env, "server", "keygen", "--key", tok.URI("e2e-ct")).want(t, 1); !strings.Contains(r.stderr, "already exists") {
		t.Errorf("keygen over an existing key: %s", r.stderr)
	}
	var ir pki.InitResult
	runSignet(t, env, "ca", "init", "--out", filepath.Join(work, "ca"), "--root-key", filepath.Join(work, "offline-root.key"),
		"--key", tok.URI("e2e-ca"), "--tsa-key", tok.URI("e2e-tsa"), "--organization", "Example HSM", "-o", "json").want(t, 0).decode(t, &ir)
	if len(ir.Generated) != 3 || strings.Contains(ir.CAKey, tok.PIN) {
		t.Fatalf("ca init: %+v", ir)
	}
	keys := map[string]string{
		"caKey": tok.URI("e2e-ca"), "caChain": ir.CAChain,
		"tsaKey": tok.URI("e2e-tsa"), "tsaChain": ir.TSAChain,
		"logKey": tok.URI("e2e-log"), "ctLogKey": tok.URI("e2e-ct"),
	}
	data := t.TempDir()
	e := newCLIEnvIn(t, data, "acme/hsm", "--config", keysConfig(t, work, keys, fmt.Sprintf("tuf:\n  key: %q", tok.URI("e2e-tuf"))))

	art := e.file(t, "app.tar.gz", "built with keys in hardware\n")
	b := filepath.Join(e.dir, "app.sigstore.json")
	runSignet(t, e.serverEnv, "sign-blob", art, "--bundle", b, "--identity-token", e.token).want(t, 0)
	runSignet(t, nil, append([]string{"verify-blob", art, "--bundle", b}, e.policy()...)...).want(t, 0)
	mustCosign(t, append([]string{"verify-blob", "--bundle", b, art}, e.cosignVerifyFlags()...)...)
	other := e.file(t, "other.tar.gz", "something else\n")
	if _, _, err := cosignRun(t, append([]string{"verify-blob", "--bundle", b, other}, e.cosignVerifyFlags()...)...); err == nil {
		t.Error("cosign verify-blob accepted the HSM-signed bundle for another file")
	}
	// Trust over TUF, every role signed in the token.
	rootJSON, err := e.p.Get("/tuf/root.json")
	if err != nil {
		t.Fatal(err)
	}
	pinned := e.file(t, "root.json", string(rootJSON))
	var tr trustResult
	runSignet(t, e.serverEnv, "trust", "--root", pinned, "--out", filepath.Join(e.dir, "tuf-trust"), "-o", "json").want(t, 0).decode(t, &tr)
	if !tr.VerifiedOverTUF {
		t.Errorf("trust over the token-signed TUF repository: %+v", tr)
	}

	err = filepath.WalkDir(data, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			if d != nil && d.Name() == "dev-oidc" {
				return filepath.SkipDir // the test's own OIDC issuer, not a server key
			}
			return err
		}
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), "PRIVATE KEY") {
			t.Errorf("%s holds a private key; every key is in the token", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A self-managed key in the token signs as cosign's --key pkcs11:… does;
	// the signature verifies with the key named by URI, with its public key
	// file in signet and cosign, and not with another key.
	signsWithKeyURI(t, e, env, art, tok.URI("e2e-release"), tok.URI("e2e-ct"))

	if strings.Contains(e.p.Stderr(), "DEVELOPMENT SETUP: root CA") {
		t.Error("the server calls a setup without root keys a development one")
	}
}

// Every key misconfiguration stops the server at start with a message
// that names the key and what to fix.
func TestServerRefusesBadKeys(t *testing.T) {
	tok := hsmtest.New(t)
	work := t.TempDir()
	env := tok.Env()
	runSignet(t, env, "server", "keygen", "--algorithm", "ed25519", "--key", tok.URI("bad-log")).want(t, 0)
	runSignet(t, env, "server", "keygen", "--key", tok.URI("bad-ct")).want(t, 0)
	var ir pki.InitResult
	runSignet(t, env, "ca", "init", "--out", filepath.Join(work, "ca"), "--key", tok.URI("bad-ca"), "--tsa-key", tok.URI("bad-tsa"), "-o", "json").want(t, 0).decode(t, &ir)
	good := map[string]string{
		"caKey": tok.URI("bad-ca"), "caChain": ir.CAChain, "tsaKey": tok.URI("bad-tsa"), "tsaChain": ir.TSAChain,
		"logKey": tok.URI("bad-log"), "ctLogKey": tok.URI("bad-ct"),
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range good {
			m[a] = b
		}
		m[k] = v
		return m
	}
	// An intermediate that expired: made six years ago for one year.
	expired := filepath.Join(work, "expired")
	if _, err := pki.InitCA(context.Background(), pki.InitOptions{Out: expired, Key: filepath.Join(expired, "ca.key"),
		Now: time.Now().AddDate(-6, 0, 0), Validity: 365 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	wrongPIN := strings.Replace(tok.URI("bad-log"), "pin-source="+tok.PINFile, "pin-value=000000", 1)
	for _, c := range []struct {
		name string
		keys map[string]string
		env  []string
		say  []string
	}{
		{"wrong PIN", with("logKey", wrongPIN), nil, []string{"log key", "the token refused the PIN", "check the PIN"}},
		{"missing label", with("caKey", tok.URI("no-such-ca")), nil, []string{"CA keys", `label "no-such-ca"`}},
		{"key of another certificate", with("caKey", tok.URI("bad-tsa")), nil, []string{"CA keys", "does not hold the private key"}},
		{"ECDSA log key", with("logKey", tok.URI("bad-ct")), nil, []string{"log key", "must be Ed25519"}},
		{"unsupported scheme", with("tsaKey", "k8s://signet/tsa"), nil, []string{"TSA keys", "unsupported key URI scheme", "pkcs11:"}},
		{"KMS unreachable", with("ctLogKey", "hashivault://signet-ct"), []string{"VAULT_ADDR=http://127.0.0.1:1", "VAULT_TOKEN=x"}, []string{"CT log key", "hashivault://signet-ct", "KMS"}},
		{"expired intermediate", with("caKey", filepath.Join(expired, "ca.key")), nil, []string{"CA keys", "expired on", "signet ca issue-intermediate"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "expired intermediate" {
				c.keys["caChain"] = filepath.Join(expired, "ca-chain.pem")
			}
			for _, kv := range c.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			p, err := servertest.StartErr(servertest.Binary(t), t.TempDir(), "--dev-oidc", "--config", keysConfig(t, work, c.keys))
			if err == nil {
				p.Kill()
				t.Fatal("the server started")
			}
			for _, s := range c.say {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("the refusal does not say %q:\n%v", s, err)
				}
			}
			if strings.Contains(err.Error(), "000000") {
				t.Errorf("the refusal shows the PIN: %v", err)
			}
		})
	}
}
