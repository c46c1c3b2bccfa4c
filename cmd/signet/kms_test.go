package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/core/keyref"
	"github.com/signet-dev/signet/internal/kmstest"
	"github.com/signet-dev/signet/server/pki"
	"github.com/signet-dev/signet/server/servertest"
)

// keysConfig writes a server config whose keys: are the given references
// (files, PKCS#11 or KMS URIs), after the extra lines.
func keysConfig(t *testing.T, dir string, keys map[string]string, extra ...string) string {
	t.Helper()
	var b strings.Builder
	for _, e := range extra {
		b.WriteString(e + "\n")
	}
	b.WriteString("keys:\n")
	for k, v := range keys {
		fmt.Fprintf(&b, "  %s: %q\n", k, v)
	}
	p := filepath.Join(dir, fmt.Sprintf("keys-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The server with its keys in AWS KMS (local-kms on loopback, over TLS,
// reached by awskms:// URIs as a deployment reaches AWS): the CA's and
// TSA's keys made there by `signet ca init` under a file root kept outside
// the data directory, the CT log's and the TUF repository's keys made by
// `signet server keygen`. The log's checkpoint key is Ed25519, which no
// KMS offers through sigstore/sigstore, so it is a file outside the data
// directory. What the server signs verifies with signet and cosign v3, the
// KMS made those signatures, and no private key is in the data directory.
func TestKMSBackedServer(t *testing.T) {
	cosignBinary(t)
	k := kmstest.Start(t)
	k.SetEnv(t) // the server inherits it
	env := k.Env()
	work := t.TempDir()

	ctPub := runSignet(t, env, "server", "keygen", "--key", k.URI("e2e-ct")).want(t, 0).stdout
	if !strings.Contains(ctPub, "BEGIN PUBLIC KEY") {
		t.Fatalf("keygen printed no public key: %s", ctPub)
	}
	runSignet(t, env, "server", "keygen", "--key", k.URI("e2e-tuf")).want(t, 0)
	if r := runSignet(t, env, "server", "keygen", "--key", k.URI("e2e-ct")).want(t, 1); !strings.Contains(r.stderr, "already exists") {
		t.Errorf("keygen over an existing alias: %s", r.stderr)
	}
	if r := runSignet(t, env, "server", "keygen", "--algorithm", "ed25519", "--key", k.URI("e2e-ed")).want(t, 1); !strings.Contains(r.stderr, "a PEM file or a PKCS#11 key") {
		t.Errorf("keygen of an Ed25519 KMS key: %s", r.stderr)
	}
	logKey := filepath.Join(work, "log.key")
	runSignet(t, nil, "server", "keygen", "--algorithm", "ed25519", "--key", logKey).want(t, 0)

	var ir pki.InitResult
	runSignet(t, env, "ca", "init", "--out", filepath.Join(work, "ca"), "--root-key", filepath.Join(work, "offline-root.key"),
		"--key", k.URI("e2e-ca"), "--tsa-key", k.URI("e2e-tsa"), "--organization", "Example KMS", "-o", "json").want(t, 0).decode(t, &ir)
	if len(ir.Generated) != 3 || ir.CAKey != k.URI("e2e-ca") || ir.TSAKey != k.URI("e2e-tsa") {
		t.Fatalf("ca init: %+v", ir)
	}
	keys := map[string]string{
		"caKey": k.URI("e2e-ca"), "caChain": ir.CAChain,
		"tsaKey": k.URI("e2e-tsa"), "tsaChain": ir.TSAChain,
		"logKey": logKey, "ctLogKey": k.URI("e2e-ct"),
	}
	data := t.TempDir()
	e := newCLIEnvIn(t, data, "acme/kms", "--config", keysConfig(t, work, keys, fmt.Sprintf("tuf:\n  key: %q", k.URI("e2e-tuf"))))

	signed := map[string]int{}
	for _, name := range []string{"e2e-ca", "e2e-tsa", "e2e-ct"} {
		signed[name] = k.Signatures(t, name)
	}
	art := e.file(t, "app.tar.gz", "built with keys in a KMS\n")
	b := filepath.Join(e.dir, "app.sigstore.json")
	runSignet(t, e.serverEnv, "sign-blob", art, "--bundle", b, "--identity-token", e.token).want(t, 0)
	// The certificate, its SCT and the timestamp were each signed by the KMS.
	for name, before := range signed {
		if got := k.Signatures(t, name); got <= before {
			t.Errorf("the KMS made no signature with %s for sign-blob (%d before, %d after)", name, before, got)
		}
	}
	runSignet(t, nil, append([]string{"verify-blob", art, "--bundle", b}, e.policy()...)...).want(t, 0)
	mustCosign(t, append([]string{"verify-blob", "--bundle", b, art}, e.cosignVerifyFlags()...)...)
	other := e.file(t, "other.tar.gz", "something else\n")
	if _, _, err := cosignRun(t, append([]string{"verify-blob", "--bundle", b, other}, e.cosignVerifyFlags()...)...); err == nil {
		t.Error("cosign verify-blob accepted the KMS-signed bundle for another file")
	}
	runSignet(t, nil, append([]string{"verify-blob", other, "--bundle", b}, e.policy()...)...).want(t, 1)

	// Trust over TUF, every role signed by the KMS key.
	rootJSON, err := e.p.Get("/tuf/root.json")
	if err != nil {
		t.Fatal(err)
	}
	pinned := e.file(t, "root.json", string(rootJSON))
	var tr trustResult
	runSignet(t, e.serverEnv, "trust", "--root", pinned, "--out", filepath.Join(e.dir, "tuf-trust"), "-o", "json").want(t, 0).decode(t, &tr)
	if !tr.VerifiedOverTUF {
		t.Errorf("trust over the KMS-signed TUF repository: %+v", tr)
	}
	if k.Signatures(t, "e2e-tuf") == 0 {
		t.Error("the KMS made no signature with the TUF key")
	}

	err = filepath.WalkDir(data, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			if d != nil && d.Name() == "dev-oidc" {
				return filepath.SkipDir // the test's own OIDC issuer, not a server key
			}
			return err
		}
		if strings.HasSuffix(p, ".key") {
			t.Errorf("%s: a key file in the data directory; every key is in the KMS or outside it", p)
		}
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), "PRIVATE KEY") {
			t.Errorf("%s holds a private key; every key is in the KMS or outside the data directory", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// A self-managed KMS key signs as cosign's --key awskms://… does: the
	// signature verifies with its public key in signet and cosign, and not
	// with another key.
	signsWithKeyURI(t, e, env, art, k.URI("e2e-release"), k.URI("e2e-ct"))

	if strings.Contains(e.p.Stderr(), "DEVELOPMENT SETUP: root CA") {
		t.Error("the server calls a setup without root keys a development one")
	}
}

// Every KMS key misconfiguration stops the server at start with a message
// that names the key and what to fix, within the KMS timeout.
func TestServerRefusesBadKMSKeys(t *testing.T) {
	k := kmstest.Start(t)
	k.SetEnv(t)
	env := k.Env()
	work := t.TempDir()
	runSignet(t, env, "server", "keygen", "--key", k.URI("bad-ct")).want(t, 0)
	logKey := filepath.Join(work, "log.key")
	runSignet(t, nil, "server", "keygen", "--algorithm", "ed25519", "--key", logKey).want(t, 0)
	var ir pki.InitResult
	runSignet(t, env, "ca", "init", "--out", filepath.Join(work, "ca"), "--key", k.URI("bad-ca"), "--tsa-key", k.URI("bad-tsa"), "-o", "json").want(t, 0).decode(t, &ir)
	k.CreateKey(t, "rsa", "RSA_2048")
	k.CreateKey(t, "p384", "ECC_NIST_P384")
	good := map[string]string{
		"caKey": k.URI("bad-ca"), "caChain": ir.CAChain, "tsaKey": k.URI("bad-tsa"), "tsaChain": ir.TSAChain,
		"logKey": logKey, "ctLogKey": k.URI("bad-ct"),
	}
	with := func(key, v string) map[string]string {
		m := map[string]string{}
		for a, b := range good {
			m[a] = b
		}
		m[key] = v
		return m
	}
	closed := "awskms://" + kmstest.ClosedEndpoint(t) + "/alias/bad-ct"
	noCredentials := map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}

	// The configuration as given starts: each case below breaks one thing.
	p, err := servertest.StartErr(servertest.Binary(t), t.TempDir(), "--dev-oidc", "--config", keysConfig(t, work, good))
	if err != nil {
		t.Fatalf("the good configuration: %v", err)
	}
	p.Kill()

	for _, c := range []struct {
		name string
		keys map[string]string
		env  map[string]string
		say  []string
	}{
		{"alias that does not exist", with("caKey", k.URI("no-such-ca")), nil,
			[]string{"CA keys", k.URI("no-such-ca"), "no such key", "signet server keygen --key URI"}},
		{"KMS endpoint unreachable", with("ctLogKey", closed), nil,
			[]string{"CT log key", closed, "cannot connect to"}},
		{"no credentials", good, noCredentials,
			[]string{"CA keys", k.URI("bad-ca"), "no AWS credentials", "AWS_ACCESS_KEY_ID"}},
		{"no region", good, map[string]string{"AWS_REGION": "", "AWS_DEFAULT_REGION": ""},
			[]string{"CA keys", "no AWS region", "AWS_REGION"}},
		{"ECDSA key as the log key", with("logKey", k.URI("bad-ct")), nil,
			[]string{"log key", k.URI("bad-ct"), "must be Ed25519", "signet server keygen --algorithm ed25519"}},
		{"P-384 key as the CT log key", with("ctLogKey", k.URI("p384")), nil,
			[]string{"CT log key", k.URI("p384"), "must be an ECDSA P-256 key", "got ECDSA on P-384"}},
		{"RSA key that signs RSASSA-PSS as the CA key", with("caKey", k.URI("rsa")), nil,
			[]string{"CA keys", k.URI("rsa"), "RSASSA-PSS", "ECC_NIST_P256"}},
		{"key of another certificate", with("tsaKey", k.URI("bad-ca")), nil,
			[]string{"TSA keys", k.URI("bad-ca"), "does not hold the private key"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for name, v := range c.env {
				t.Setenv(name, v)
			}
			start := time.Now()
			p, err := servertest.StartErr(servertest.Binary(t), t.TempDir(), "--dev-oidc", "--config", keysConfig(t, work, c.keys))
			if err == nil {
				p.Kill()
				t.Fatal("the server started")
			}
			t.Log(err)
			if took := time.Since(start); took > keyref.KMSTimeout {
				t.Errorf("the refusal took %v, longer than the KMS timeout %v", took, keyref.KMSTimeout)
			}
			for _, s := range c.say {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("the refusal does not say %q:\n%v", s, err)
				}
			}
			if strings.Contains(err.Error(), "kmstest-secret") {
				t.Errorf("the refusal shows the secret key: %v", err)
			}
		})
	}
}

// signsWithKeyURI makes a client key at ref (signet server keygen), signs
// art with it and checks that the bundle verifies by the key's URI and by
// its public key file, in signet and cosign, and not with the key other.
func signsWithKeyURI(t *testing.T, e *cliEnv, env []string, art, ref, other string) {
	t.Helper()
	pubFile := e.file(t, "release.pub", runSignet(t, env, "server", "keygen", "--key", ref).want(t, 0).stdout)
	kb := filepath.Join(e.dir, "app.key.sigstore.json")
	var sr signResult
	runSignet(t, append(env, e.serverEnv...), "sign-blob", art, "--key", ref, "--bundle", kb, "-o", "json").want(t, 0).decode(t, &sr)
	if sr.KeyHint == "" || sr.Identity != "" {
		t.Errorf("a signature by %s: %+v", ref, sr)
	}
	runSignet(t, env, "verify-blob", art, "--bundle", kb, "--trusted-root", e.root, "--key", ref).want(t, 0)
	runSignet(t, nil, "verify-blob", art, "--bundle", kb, "--trusted-root", e.root, "--key", pubFile).want(t, 0)
	runSignet(t, env, "verify-blob", art, "--bundle", kb, "--trusted-root", e.root, "--key", other).want(t, 1)
	mustCosign(t, "verify-blob", "--bundle", kb, "--trusted-root", e.root, "--key", pubFile, art)
}
