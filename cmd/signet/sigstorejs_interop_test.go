package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/signet-dev/signet/internal/toolcache"
)

// The real sigstore-js (npm sigstore 5.0.1, run by node) against signet:
// sigstore-js verifies offline, with signet's trusted root, what signet's
// sign-blob and attest-blob produce, and rejects it for another identity or
// changed content; sigstore-js signs a blob with signet's signing config
// and signet verifies.

// sigstoreJSScript drives sigstore-js. Verification is what sigstore.verify
// does (bundleFromJSON, toSignedEntity, Verifier, and sigstore's own mapping
// of certificateIdentityURI/certificateIssuer to a policy), with the trusted
// root read from a file instead of fetched by TUF. Signing uses
// @sigstore/sign's builder from a signing config (Fulcio, Rekor v2, TSA).
const sigstoreJSScript = `'use strict';
const fs = require('fs');
const crypto = require('crypto');
const { bundleFromJSON, bundleToJSON } = require('@sigstore/bundle');
const { TrustedRoot, SigningConfig } = require('@sigstore/protobuf-specs');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');
const { bundleBuilderFromSigningConfig } = require('@sigstore/sign');
const { createVerificationPolicy } = require('sigstore/dist/config');

const readJSON = (p) => JSON.parse(fs.readFileSync(p, 'utf8'));

function verify(job) {
  const trust = toTrustMaterial(TrustedRoot.fromJSON(readJSON(job.trustedRoot)));
  // sigstore-js's defaults: one SCT, one log entry, one timestamp.
  const verifier = new Verifier(trust);
  return job.cases.map((c) => {
    const out = { name: c.name };
    try {
      const entity = toSignedEntity(bundleFromJSON(readJSON(c.bundle)), c.artifact ? fs.readFileSync(c.artifact) : undefined);
      const policy = createVerificationPolicy({ certificateIdentityURI: c.identity, certificateIssuer: c.issuer });
      const signer = verifier.verify(entity, policy);
      out.ok = true;
      out.identity = signer.identity?.subjectAlternativeName;
      out.issuer = signer.identity?.extensions?.issuer;
    } catch (e) {
      out.ok = false;
      out.error = { kind: e.constructor.name, code: e.code || '', message: String(e.message) };
    }
    return out;
  });
}

async function sign(job) {
  const builder = bundleBuilderFromSigningConfig({
    signingConfig: SigningConfig.fromJSON(readJSON(job.signingConfig)),
    identityProvider: { getToken: async () => job.token },
    bundleType: job.predicate ? 'dsseEnvelope' : 'messageSignature',
  });
  const data = fs.readFileSync(job.artifact);
  let artifact = { data };
  if (job.predicate) {
    const statement = {
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: job.subjectName, digest: { sha256: crypto.createHash('sha256').update(data).digest('hex') } }],
      predicateType: 'https://slsa.dev/provenance/v1',
      predicate: readJSON(job.predicate),
    };
    artifact = { data: Buffer.from(JSON.stringify(statement)), type: 'application/vnd.in-toto+json' };
  }
  const bundle = await builder.create(artifact);
  fs.writeFileSync(job.bundle, JSON.stringify(bundleToJSON(bundle)));
  return { ok: true };
}

// tufverify is sigstore.verify as users call it: the trusted root comes
// from a TUF mirror, bootstrapped from a pinned root.json.
async function tufverify(job) {
  const sigstore = require('sigstore');
  const out = [];
  for (const c of job.cases) {
    try {
      await sigstore.verify(readJSON(c.bundle), fs.readFileSync(c.artifact), {
        certificateIdentityURI: c.identity, certificateIssuer: c.issuer,
        tufMirrorURL: job.mirror, tufRootPath: job.root, tufCachePath: job.cache, retry: 0,
      });
      out.push({ name: c.name, ok: true });
    } catch (e) {
      out.push({ name: c.name, ok: false, error: { kind: e.constructor.name, code: e.code || '', message: String(e.message) } });
    }
  }
  return out;
}

(async () => {
  const [mode, jobFile] = process.argv.slice(2);
  const job = readJSON(jobFile);
  const result = mode === 'verify' ? verify(job) : mode === 'tufverify' ? await tufverify(job) : await sign(job);
  process.stdout.write(JSON.stringify(result));
})().catch((e) => {
  process.stderr.write((e && e.stack) || String(e));
  process.exit(1);
});
`

// sigstoreJS is how to run the script: node and sigstore-js's node_modules.
type sigstoreJS struct {
	node, modules, script string
}

// newSigstoreJS finds node and installs sigstore-js (once per machine). A
// machine without node or npm skips, except in CI where it fails.
func newSigstoreJS(t *testing.T) *sigstoreJS {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is required in CI for the sigstore-js interop test: %v; install Node.js with npm", tool, err)
			}
			t.Skipf("%s not found (%v): install Node.js with npm to run the sigstore-js interop test (required when CI is set)", tool, err)
		}
	}
	node, _ := exec.LookPath("node")
	start := time.Now()
	modules, err := toolcache.SigstoreJS.NodeModules()
	if err != nil {
		t.Fatalf("installing sigstore-js %s: %v", toolcache.SigstoreJS.Version, err)
	}
	t.Logf("sigstore-js %s ready in %s at %s", toolcache.SigstoreJS.Version, time.Since(start).Round(time.Millisecond), modules)
	script := filepath.Join(t.TempDir(), "sigstore-js.cjs")
	if err := os.WriteFile(script, []byte(sigstoreJSScript), 0o644); err != nil {
		t.Fatal(err)
	}
	return &sigstoreJS{node: node, modules: modules, script: script}
}

// exec runs the script in mode with job.
func (s *sigstoreJS) exec(t *testing.T, mode string, job any) (stdout, stderr string, err error) {
	t.Helper()
	jobFile := filepath.Join(t.TempDir(), "job.json")
	b, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(jobFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(s.node, s.script, mode, jobFile)
	// No HOME of the user's: sigstore-js must not find a TUF cache or config.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "NODE_PATH=" + s.modules}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err = cmd.Run()
	t.Logf("sigstore-js %s took %s", mode, time.Since(start).Round(time.Millisecond))
	return out.String(), errb.String(), err
}

// run is exec that must succeed, decoding the script's JSON result into v.
func (s *sigstoreJS) run(t *testing.T, mode string, job, v any) {
	t.Helper()
	out, stderr, err := s.exec(t, mode, job)
	if err != nil {
		t.Fatalf("sigstore-js %s: %v\nstderr:\n%s", mode, err, stderr)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("sigstore-js %s printed no JSON result: %v\nstdout:\n%s\nstderr:\n%s", mode, err, out, stderr)
	}
}

// jsVerifyCase is one bundle for sigstore-js to verify, and its outcome.
type jsVerifyCase struct {
	Name     string `json:"name"`
	Bundle   string `json:"bundle"`
	Artifact string `json:"artifact,omitempty"` // message signatures only
	Identity string `json:"identity"`
	Issuer   string `json:"issuer"`
}

type jsVerifyResult struct {
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Identity string `json:"identity"`
	Issuer   string `json:"issuer"`
	Error    *struct {
		Kind    string `json:"kind"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// newSigstoreJSEnv is a signet server and a development token for
// acme/widget's release workflow.
func newSigstoreJSEnv(t *testing.T) *cliEnv {
	t.Helper()
	return newCLIEnvFor(t, "acme/widget")
}

// tamperDSSEPayload writes a copy of a DSSE bundle whose in-toto statement
// names another subject digest, keeping the signature: what an attacker
// re-pointing an attestation at another artifact would produce.
func tamperDSSEPayload(t *testing.T, src, dst, otherDigest string) {
	t.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var b map[string]any
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	env, ok := b["dsseEnvelope"].(map[string]any)
	if !ok {
		t.Fatalf("%s has no dsseEnvelope", src)
	}
	payload, err := base64.StdEncoding.DecodeString(env["payload"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Subject []struct {
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
	}
	if err := json.Unmarshal(payload, &st); err != nil || len(st.Subject) != 1 {
		t.Fatalf("DSSE payload is not a one-subject statement (%v): %s", err, payload)
	}
	old := st.Subject[0].Digest["sha256"]
	changed := bytes.Replace(payload, []byte(old), []byte(otherDigest), 1)
	if bytes.Equal(changed, payload) {
		t.Fatalf("subject digest %s not found in the payload", old)
	}
	env["payload"] = base64.StdEncoding.EncodeToString(changed)
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestSigstoreJSInterop(t *testing.T) {
	js := newSigstoreJS(t)
	e := newSigstoreJSEnv(t)
	const content, otherContent = "release 1.2.3\n", "release 1.2.4\n"
	art := e.file(t, "widget.tar.gz", content)
	other := e.file(t, "widget-changed.tar.gz", otherContent)
	pred := e.file(t, "provenance.json", slsaPredicate)

	t.Run("signet signs, sigstore-js verifies", func(t *testing.T) {
		blob := filepath.Join(e.dir, "blob.sigstore.json")
		att := filepath.Join(e.dir, "att.sigstore.json")
		runSignet(t, e.serverEnv, "sign-blob", art, "--bundle", blob, "--identity-token", e.token).want(t, 0)
		runSignet(t, e.serverEnv, "attest-blob", art, "--predicate", pred, "--type", "slsaprovenance1", "--bundle", att, "--identity-token", e.token).want(t, 0)
		tampered := filepath.Join(e.dir, "att-tampered.sigstore.json")
		tamperDSSEPayload(t, att, tampered, sha256Hex(otherContent))

		const someone = "https://github.com/evil/widget/.github/workflows/release.yml@refs/heads/main"
		cases := []jsVerifyCase{
			{"blob", blob, art, e.identity, e.issuer},
			{"attestation", att, "", e.identity, e.issuer},
			{"blob, other identity", blob, art, someone, e.issuer},
			{"blob, other issuer", blob, art, e.identity, "https://token.actions.githubusercontent.com"},
			{"blob, changed artifact", blob, other, e.identity, e.issuer},
			{"attestation, other identity", att, "", someone, e.issuer},
			{"attestation, changed subject", tampered, "", e.identity, e.issuer},
		}
		// Why each must fail: the identity policy, or the content. sigstore-js
		// checks the log entry's digest before the signature, so changed
		// content may be caught by either.
		content := []string{"TLOG_BODY_ERROR", "SIGNATURE_ERROR"}
		policy := []string{"UNTRUSTED_SIGNER_ERROR"}
		wantCode := map[string][]string{
			"blob, other identity":         policy,
			"blob, other issuer":           policy,
			"blob, changed artifact":       content,
			"attestation, other identity":  policy,
			"attestation, changed subject": content,
		}
		var results []jsVerifyResult
		js.run(t, "verify", map[string]any{"trustedRoot": e.root, "cases": cases}, &results)
		if len(results) != len(cases) {
			t.Fatalf("sigstore-js returned %d results for %d cases: %+v", len(results), len(cases), results)
		}
		for i, r := range results {
			c := cases[i]
			codes, mustFail := wantCode[c.Name]
			switch {
			case r.Name != c.Name:
				t.Errorf("result %d is for %q, want %q", i, r.Name, c.Name)
			case !mustFail && !r.OK:
				t.Errorf("%s: sigstore-js rejected signet's bundle: %+v", c.Name, r.Error)
			case !mustFail && (r.Identity != e.identity || r.Issuer != e.issuer):
				t.Errorf("%s: sigstore-js saw signer %q from %q, want %q from %q", c.Name, r.Identity, r.Issuer, e.identity, e.issuer)
			case mustFail && r.OK:
				t.Errorf("%s: sigstore-js accepted it", c.Name)
			case mustFail && r.Error == nil:
				t.Errorf("%s: sigstore-js rejected it without an error", c.Name)
			case mustFail && !slices.Contains(codes, r.Error.Code):
				t.Errorf("%s: sigstore-js failed with %s %s (%s), want one of %v", c.Name, r.Error.Kind, r.Error.Code, r.Error.Message, codes)
			}
		}
	})

	t.Run("sigstore-js signs, signet verifies", func(t *testing.T) {
		_, sc := e.trustFiles()
		blob := filepath.Join(e.dir, "by-js.sigstore.json")
		var res struct {
			OK bool `json:"ok"`
		}
		js.run(t, "sign", map[string]any{"signingConfig": sc, "token": e.token, "artifact": art, "bundle": blob}, &res)
		if !res.OK {
			t.Fatal("sigstore-js sign reported no success")
		}
		var v verifyResult
		runSignet(t, nil, append([]string{"verify-blob", art, "--bundle", blob, "-o", "json"}, e.policy()...)...).want(t, 0).decode(t, &v)
		if !v.Verified || v.Identity != e.identity || v.Issuer != e.issuer || len(v.LogEntries) != 1 || len(v.VerifiedTimes) == 0 {
			t.Errorf("signet's verdict on sigstore-js's bundle: %+v", v)
		}
		runSignet(t, nil, append([]string{"verify-blob", other, "--bundle", blob}, e.policy()...)...).want(t, 1)
		runSignet(t, nil, "verify-blob", art, "--bundle", blob, "--trusted-root", e.root,
			"--certificate-identity", "https://github.com/evil/widget/.github/workflows/release.yml@refs/heads/main", "--certificate-oidc-issuer", e.issuer).want(t, 1)
	})

	// @sigstore/sign 5 logs a DSSE envelope to Rekor v2 as a dsseRequestV002
	// entry (what actions/attest does), which rekor-tiles v2.3 dropped and
	// signet's log takes: the attestation is logged, kept by the attestation
	// store, and verifies in signet and in sigstore-js. sigstore-go v1.3.0
	// reads only hashedrekord v0.0.2 Rekor v2 bodies and refuses it.
	t.Run("sigstore-js attests, signet and sigstore-js verify", func(t *testing.T) {
		_, sc := e.trustFiles()
		att := filepath.Join(e.dir, "att-by-js.sigstore.json")
		var res struct {
			OK bool `json:"ok"`
		}
		js.run(t, "sign", map[string]any{
			"signingConfig": sc, "token": e.token, "artifact": art, "subjectName": filepath.Base(art), "predicate": pred, "bundle": att,
		}, &res)
		if !res.OK {
			t.Fatal("sigstore-js attest reported no success")
		}
		var v verifyResult
		runSignet(t, nil, append([]string{"verify-blob-attestation", art, "--bundle", att, "--type", "slsaprovenance1", "-o", "json"}, e.policy()...)...).want(t, 0).decode(t, &v)
		if !v.Verified || v.Identity != e.identity || len(v.LogEntries) != 1 || len(v.VerifiedTimes) == 0 {
			t.Errorf("signet's verdict on sigstore-js's attestation: %+v", v)
		}
		var b struct {
			VerificationMaterial struct {
				TlogEntries []struct {
					KindVersion struct{ Kind, Version string }
				}
			}
		}
		raw, _ := os.ReadFile(att)
		if json.Unmarshal(raw, &b) != nil || len(b.VerificationMaterial.TlogEntries) != 1 || b.VerificationMaterial.TlogEntries[0].KindVersion.Kind != "dsse" {
			t.Errorf("sigstore-js's attestation is not logged as a dsse entry: %s", raw)
		}
		// A changed subject, another artifact, another identity fail.
		tampered := filepath.Join(e.dir, "att-by-js-tampered.sigstore.json")
		tamperDSSEPayload(t, att, tampered, sha256Hex(otherContent))
		runSignet(t, nil, append([]string{"verify-blob-attestation", other, "--bundle", tampered, "--type", "slsaprovenance1"}, e.policy()...)...).want(t, 1)
		runSignet(t, nil, append([]string{"verify-blob-attestation", other, "--bundle", att, "--type", "slsaprovenance1"}, e.policy()...)...).want(t, 1)
		runSignet(t, nil, "verify-blob-attestation", art, "--bundle", att, "--type", "slsaprovenance1", "--trusted-root", e.root,
			"--certificate-identity", "https://github.com/evil/widget/.github/workflows/release.yml@refs/heads/main", "--certificate-oidc-issuer", e.issuer).want(t, 1)

		// sigstore-js verifies its own attestation against signet's root.
		var results []jsVerifyResult
		js.run(t, "verify", map[string]any{"trustedRoot": e.root, "cases": []jsVerifyCase{{"js attestation", att, "", e.identity, e.issuer}}}, &results)
		if len(results) != 1 || !results[0].OK {
			t.Errorf("sigstore-js does not verify its attestation logged by signet: %+v", results)
		}

		// sigstore-go v1.3.0 reads only hashedrekord Rekor v2 bodies: it
		// refuses the dsse entry (docs/verification.md); this fails once it
		// reads them.
		trJSON, _ := os.ReadFile(e.root)
		sgRoot, err := root.NewTrustedRootFromJSON(trJSON)
		if err != nil {
			t.Fatal(err)
		}
		sgv, _ := sgverify.NewVerifier(sgRoot, sgverify.WithSignedCertificateTimestamps(1), sgverify.WithSignedTimestamps(1), sgverify.WithTransparencyLog(1))
		id, _ := sgverify.NewShortCertificateIdentity(e.issuer, "", e.identity, "")
		d := sha256.Sum256([]byte(content))
		// sigstore-go checks entry bodies as it loads a bundle.
		sgb, err := sgbundle.LoadJSONFromPath(att)
		if err == nil {
			_, err = sgv.Verify(sgb, sgverify.NewPolicy(sgverify.WithArtifactDigest("sha256", d[:]), sgverify.WithCertificateIdentity(id)))
		}
		if err == nil {
			t.Error("sigstore-go now verifies Rekor v2 dsse entries: update docs/verification.md's list of differences")
		} else {
			t.Logf("sigstore-go v1.3.0 on a dsse v0.0.2 entry: %v", err)
		}

		// The attestation store kept the envelope: found by the artifact's digest.
		body, err := e.p.Get("/api/v2/attestations?digest=sha256:" + sha256Hex(content))
		if err != nil || !strings.Contains(string(body), "https://slsa.dev/provenance/v1") || !strings.Contains(string(body), "dsse") {
			t.Errorf("the attestation store does not hold sigstore-js's attestation (%v):\n%s", err, body)
		}
	})
}

// TestSigstoreJSVerifiesOverTUF: sigstore.verify, given only signet's TUF
// mirror and the pinned root.json, fetches signet's trusted root through
// @sigstore/tuf and verifies a signet bundle; another identity fails.
func TestSigstoreJSVerifiesOverTUF(t *testing.T) {
	js := newSigstoreJS(t)
	e := newSigstoreJSEnv(t)
	pinned := pinTUFRoot(t, e, "root.json")
	art := e.file(t, "widget.tar.gz", "widget 2.0\n")
	b := filepath.Join(e.dir, "widget.sigstore.json")
	runSignet(t, e.serverEnv, "sign-blob", art, "--bundle", b, "--identity-token", e.token).want(t, 0)
	job := map[string]any{
		"mirror": e.p.URL + "/tuf", "root": pinned, "cache": t.TempDir(),
		"cases": []jsVerifyCase{
			{Name: "signet bundle", Bundle: b, Artifact: art, Identity: e.identity, Issuer: e.issuer},
			{Name: "another identity", Bundle: b, Artifact: art, Identity: "https://github.com/evil/widget/.github/workflows/release.yml@refs/heads/main", Issuer: e.issuer},
		},
	}
	var res []jsVerifyResult
	js.run(t, "tufverify", job, &res)
	if len(res) != 2 || !res[0].OK {
		t.Fatalf("sigstore-js over signet's TUF mirror: %+v", res)
	}
	if res[1].OK {
		t.Fatal("sigstore-js accepted the bundle for another identity")
	}
}
