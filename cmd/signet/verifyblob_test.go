package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"strings"
	"testing"
)

// writeKeyPair writes k as a PKCS#8 private key and a PKIX public key file
// and returns their paths and the public key's fingerprint.
func writeKeyPair(t *testing.T, e *cliEnv, name string, k crypto.Signer) (priv, pub, fp string) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(pubDER)
	priv = e.file(t, name+".key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	pub = e.file(t, name+".pub", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})))
	return priv, pub, "sha256:" + hex.EncodeToString(sum[:])
}

// editBundle rewrites a bundle file's JSON with edit and returns the new path.
func editBundle(t *testing.T, e *cliEnv, path, name string, edit func(b map[string]any)) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var b map[string]any
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	edit(b)
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return e.file(t, name, string(out))
}

// flipBase64 flips the first bit of a base64 string's decoded bytes.
func flipBase64(t *testing.T, s string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	raw[0] ^= 1
	return base64.StdEncoding.EncodeToString(raw)
}

func hexDigest(alg, s string) string {
	var sum []byte
	switch alg {
	case "sha384":
		h := sha512.Sum384([]byte(s))
		sum = h[:]
	case "sha512":
		h := sha512.Sum512([]byte(s))
		sum = h[:]
	default:
		h := sha256.Sum256([]byte(s))
		sum = h[:]
	}
	return hex.EncodeToString(sum)
}

func TestVerifyBlobKey(t *testing.T) {
	e := newCLIEnv(t)
	content := "release 1.2.3 signed with a self-managed key\n"
	art := e.file(t, "app.tar.gz", content)
	changed := e.file(t, "changed.tar.gz", content+"!")

	gen := func(c elliptic.Curve) crypto.Signer {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, ek, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, otherPub, _ := writeKeyPair(t, e, "other", gen(elliptic.P256()))

	for _, kc := range []struct {
		name string
		key  crypto.Signer
		hash string
	}{
		{"ECDSA-P256", gen(elliptic.P256()), "sha256"},
		{"ECDSA-P384", gen(elliptic.P384()), "sha384"},
		{"RSA-2048", rk, "sha256"},
		{"Ed25519", ek, "sha512"}, // Ed25519ph
	} {
		t.Run(kc.name, func(t *testing.T) {
			priv, pub, fp := writeKeyPair(t, e, kc.name, kc.key)
			bundlePath := art + "." + kc.name + ".sigstore.json"
			var signed signResult
			runSignet(t, e.serverEnv, "sign-blob", art, "--key", priv, "--bundle", bundlePath, "-o", "json").want(t, 0).decode(t, &signed)
			if signed.Key != fp {
				t.Errorf("sign-blob reports key %q, verify-blob will report %q", signed.Key, fp)
			}

			r := runSignet(t, nil, "verify-blob", art, "--bundle", bundlePath, "--trusted-root", e.root, "--key", pub).want(t, 0)
			if !strings.Contains(r.stdout, "Verified OK") || !strings.Contains(r.stdout, "key        "+fp) || strings.Contains(r.stdout, "signer") {
				t.Errorf("stdout should name the key, not a signer:\n%s", r.stdout)
			}
			var v verifyResult
			runSignet(t, nil, "verify-blob", art, "--bundle", bundlePath, "--trusted-root", e.root, "--key", pub, "-o", "json").want(t, 0).decode(t, &v)
			if !v.Verified || v.Key != fp || v.Identity != "" || v.Issuer != "" || v.CA != "" || len(v.Extensions) != 0 ||
				len(v.LogEntries) != 1 || len(v.VerifiedTimes) != 1 || !strings.HasPrefix(v.VerifiedTimes[0].Source, "rfc3161 ") {
				t.Errorf("json %+v: want key %s, one log entry and one RFC 3161 time", v, fp)
			}
			// The digest is made with the hash the key type signs with.
			if want := kc.hash + ":" + hexDigest(kc.hash, content); v.Digest != want {
				t.Errorf("digest %s, want %s", v.Digest, want)
			}
			// The trust can also come from the server, as for keyless bundles.
			runSignet(t, e.serverEnv, "verify-blob", art, "--bundle", bundlePath, "--key", pub).want(t, 0)

			sigTampered := editBundle(t, e, bundlePath, kc.name+".sig.json", func(b map[string]any) {
				ms := b["messageSignature"].(map[string]any)
				ms["signature"] = flipBase64(t, ms["signature"].(string))
			})
			bodyTampered := editBundle(t, e, bundlePath, kc.name+".body.json", func(b map[string]any) {
				entry := b["verificationMaterial"].(map[string]any)["tlogEntries"].([]any)[0].(map[string]any)
				body, _ := base64.StdEncoding.DecodeString(entry["canonicalizedBody"].(string))
				var m map[string]any
				if err := json.Unmarshal(body, &m); err != nil {
					t.Fatal(err)
				}
				data := m["spec"].(map[string]any)["hashedRekordV002"].(map[string]any)["data"].(map[string]any)
				data["digest"] = flipBase64(t, data["digest"].(string))
				body, _ = json.Marshal(m)
				entry["canonicalizedBody"] = base64.StdEncoding.EncodeToString(body)
			})
			for _, c := range []struct {
				name, file, bundle, key, check string
			}{
				{"another key", art, bundlePath, otherPub, "key"},
				{"changed file", changed, bundlePath, pub, "artifact"},
				{"signature byte", art, sigTampered, pub, "signature"},
				{"log entry body", art, bodyTampered, pub, "tlog body"},
			} {
				t.Run(c.name, func(t *testing.T) {
					r := runSignet(t, nil, "verify-blob", c.file, "--bundle", c.bundle, "--trusted-root", e.root, "--key", c.key).want(t, 1)
					if !strings.Contains(r.stderr, "verification failed: "+c.check+": ") {
						t.Errorf("stderr should name the %q check:\n%s", c.check, r.stderr)
					}
					var v verifyResult
					runSignet(t, nil, "verify-blob", c.file, "--bundle", c.bundle, "--trusted-root", e.root, "--key", c.key, "-o", "json").want(t, 1).decode(t, &v)
					if v.Verified || v.FailedCheck != c.check || v.Key != "" {
						t.Errorf("json %+v, want failedCheck %q", v, c.check)
					}
				})
			}
		})
	}

	t.Run("attestation", func(t *testing.T) {
		priv, pub, fp := writeKeyPair(t, e, "attest", gen(elliptic.P256()))
		pred := e.file(t, "result.json", `{"passed":true}`)
		typ := "https://example.com/test-result/v1"
		var s signResult
		runSignet(t, e.serverEnv, "attest-blob", art, "--predicate", pred, "--type", typ, "--key", priv, "-o", "json").want(t, 0).decode(t, &s)
		var v verifyResult
		runSignet(t, nil, "verify-blob-attestation", art, "--bundle", s.Bundle, "--type", typ, "--trusted-root", e.root, "--key", pub, "-o", "json").want(t, 0).decode(t, &v)
		if !v.Verified || v.Key != fp || v.PredicateType != typ || v.Identity != "" {
			t.Errorf("json %+v", v)
		}
		r := runSignet(t, nil, "verify-blob-attestation", art, "--bundle", s.Bundle, "--type", typ, "--trusted-root", e.root, "--key", pub).want(t, 0)
		if !strings.Contains(r.stdout, "Verified OK: attestation") || !strings.Contains(r.stdout, fp) {
			t.Errorf("stdout:\n%s", r.stdout)
		}
		for _, c := range []struct {
			name  string
			args  []string
			check string
		}{
			{"another key", []string{art, "--key", otherPub}, "key"},
			{"file not in the statement", []string{changed, "--key", pub}, "artifact"},
			{"other predicate type", []string{art, "--key", pub, "--type", "https://example.com/other/v1"}, "statement"},
		} {
			t.Run(c.name, func(t *testing.T) {
				args := append([]string{"verify-blob-attestation", "--bundle", s.Bundle, "--type", typ, "--trusted-root", e.root}, c.args...)
				r := runSignet(t, nil, args...).want(t, 1)
				if !strings.Contains(r.stderr, "verification failed: "+c.check+": ") {
					t.Errorf("stderr should name the %q check:\n%s", c.check, r.stderr)
				}
			})
		}
	})

	t.Run("keyless bundle with --key", func(t *testing.T) {
		// A certificate bundle verifies with --key only if the certificate
		// holds that key; an ephemeral keyless key is never a given key.
		runSignet(t, e.serverEnv, "sign-blob", art, "--identity-token", e.token, "--bundle", art+".keyless.json").want(t, 0)
		r := runSignet(t, nil, "verify-blob", art, "--bundle", art+".keyless.json", "--trusted-root", e.root, "--key", otherPub).want(t, 1)
		if !strings.Contains(r.stderr, "key: certificate's public key does not match") {
			t.Errorf("stderr:\n%s", r.stderr)
		}
	})

	t.Run("key bundle with an identity policy", func(t *testing.T) {
		priv, _, _ := writeKeyPair(t, e, "idpolicy", gen(elliptic.P256()))
		runSignet(t, e.serverEnv, "sign-blob", art, "--key", priv, "--bundle", art+".idpolicy.json").want(t, 0)
		r := runSignet(t, nil, append([]string{"verify-blob", art, "--bundle", art + ".idpolicy.json"}, e.policy()...)...).want(t, 1)
		if !strings.Contains(r.stderr, "key: bundle is signed with a self-managed key") || !strings.Contains(r.stderr, "--key") {
			t.Errorf("stderr should point to --key:\n%s", r.stderr)
		}
	})
}

func TestVerifyBlobKeyUsageErrors(t *testing.T) {
	dir := t.TempDir()
	art := dir + "/a.txt"
	os.WriteFile(art, []byte("a"), 0o644)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pubDER, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	privDER, _ := x509.MarshalPKCS8PrivateKey(k)
	pub := dir + "/k.pub"
	os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644)
	priv := dir + "/k.key"
	os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	weakDER, _ := x509.MarshalPKIXPublicKey(&weak.PublicKey)
	weakPath := dir + "/weak.pub"
	os.WriteFile(weakPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: weakDER}), 0o644)
	root := "../../../shared/interop/trusted_root.json"

	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"key and identity":       {[]string{"verify-blob", art, "--bundle", art, "--trusted-root", root, "--key", pub, "--certificate-identity", "x"}, "--key excludes --certificate-identity"},
		"key and issuer regexp":  {[]string{"verify-blob", art, "--bundle", art, "--trusted-root", root, "--key", pub, "--certificate-oidc-issuer-regexp", ".*"}, "--certificate-oidc-issuer-regexp"},
		"key and extension":      {[]string{"verify-blob", art, "--bundle", art, "--trusted-root", root, "--key", pub, "--certificate-github-workflow-repository", "acme/app"}, "no certificate identity is checked"},
		"private key":            {[]string{"verify-blob", art, "--bundle", art, "--trusted-root", root, "--key", priv}, "private key"},
		"not a key file":         {[]string{"verify-blob", art, "--bundle", art, "--trusted-root", root, "--key", art}, "PUBLIC KEY"},
		"weak key":               {[]string{"verify-blob", art, "--bundle", art, "--trusted-root", root, "--key", weakPath}, "too weak"},
		"missing key":            {[]string{"verify-blob", art, "--bundle", art, "--trusted-root", root, "--key", dir + "/missing.pub"}, "--key"},
		"attestation with ident": {[]string{"verify-blob-attestation", art, "--bundle", art, "--trusted-root", root, "--key", pub, "--certificate-identity", "x"}, "--key excludes"},
		"attestation private":    {[]string{"verify-blob-attestation", art, "--bundle", art, "--trusted-root", root, "--key", priv}, "private key"},
	} {
		t.Run(name, func(t *testing.T) {
			r := runSignet(t, nil, c.args...).want(t, 2)
			if !strings.HasPrefix(r.stderr, "Error: ") || !strings.Contains(r.stderr, c.want) {
				t.Errorf("stderr should explain (%q): %q", c.want, r.stderr)
			}
		})
	}
}
