package verify_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	sgroot "github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
	"google.golang.org/protobuf/proto"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/certext"
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/sign/transport"
	"github.com/signet-dev/signet/core/signer"
	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/core/verify"
	"github.com/signet-dev/signet/server/servertest"
)

// keyCase is one key type core/signer signs with.
type keyCase struct {
	name string
	key  crypto.Signer
	// sgVerifier is how sigstore-go (and cosign) load this key to verify.
	sgVerifier func() (signature.Verifier, error)
}

func keyCases(t *testing.T) []keyCase {
	t.Helper()
	ec := func(c elliptic.Curve) *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	p256, p384, p521 := ec(elliptic.P256()), ec(elliptic.P384()), ec(elliptic.P521())
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, ek, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return []keyCase{
		{"ECDSA P-256", p256, func() (signature.Verifier, error) { return signature.LoadECDSAVerifier(&p256.PublicKey, crypto.SHA256) }},
		{"ECDSA P-384", p384, func() (signature.Verifier, error) { return signature.LoadECDSAVerifier(&p384.PublicKey, crypto.SHA384) }},
		{"ECDSA P-521", p521, func() (signature.Verifier, error) { return signature.LoadECDSAVerifier(&p521.PublicKey, crypto.SHA512) }},
		{"RSA-2048", rk, func() (signature.Verifier, error) {
			return signature.LoadRSAPKCS1v15Verifier(&rk.PublicKey, crypto.SHA256)
		}},
		{"Ed25519", ek, func() (signature.Verifier, error) {
			return signature.LoadED25519phVerifier(ek.Public().(ed25519.PublicKey))
		}},
	}
}

// keyEnv is a running signet server and its trust.
type keyEnv struct {
	services *sign.Services
	root     *trust.Root
	sgRoot   *sgroot.TrustedRoot
	artifact []byte
}

func newKeyEnv(t *testing.T) *keyEnv {
	t.Helper()
	ctx := context.Background()
	p := servertest.Start(t, t.TempDir(), "--dev-oidc")
	trJSON, err := p.Get("/trust/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	root, err := trust.ParseRoot(trJSON)
	if err != nil {
		t.Fatal(err)
	}
	sgRoot, err := sgroot.NewTrustedRootFromJSON(trJSON)
	if err != nil {
		t.Fatal(err)
	}
	services, err := sign.FromServer(ctx, p.URL, transport.NewClient(transport.Options{}), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &keyEnv{services: services, root: root, sgRoot: sgRoot, artifact: []byte("release 1.2.3 built by a self-managed key\n")}
}

func (e *keyEnv) signArtifact(t *testing.T, k crypto.Signer) *protobundle.Bundle {
	t.Helper()
	s, err := signer.New(k)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sign.ArtifactReader(context.Background(), sign.Options{Services: e.services, Key: s}, bytes.NewReader(e.artifact))
	if err != nil {
		t.Fatal(err)
	}
	return res.Bundle.Proto()
}

func (e *keyEnv) signAttestation(t *testing.T, k crypto.Signer) *protobundle.Bundle {
	t.Helper()
	s, err := signer.New(k)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(e.artifact)
	st, err := intoto.NewStatement([]intoto.Subject{{Name: "app.tar.gz", Digest: map[string]string{"sha256": hex.EncodeToString(d[:])}}}, "https://example.com/test-result/v1", []byte(`{"passed":true}`))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := intoto.MarshalStatement(st)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sign.AttestationBundle(context.Background(), sign.Options{Services: e.services, Key: s}, payload)
	if err != nil {
		t.Fatal(err)
	}
	return res.Bundle.Proto()
}

// verifyKey verifies pb with signet, trusting pub, over artifact.
func (e *keyEnv) verifyKey(pb *protobundle.Bundle, pub crypto.PublicKey, artifact []byte) (*verify.Result, error) {
	b, err := bundle.FromProto(proto.Clone(pb).(*protobundle.Bundle))
	if err != nil {
		return nil, err
	}
	v := verify.New(e.root)
	if b.DSSEEnvelope() != nil {
		d := sha256.Sum256(artifact)
		return v.VerifyAttestation(context.Background(), b, verify.Digest{Algorithm: crypto.SHA256, Value: d[:]}, verify.Policy{Key: pub}, "https://example.com/test-result/v1")
	}
	return v.VerifyArtifact(context.Background(), b, bytes.NewReader(artifact), verify.Policy{Key: pub})
}

// sigstoreGoKeyVerdict verifies pb with sigstore-go v1.3.0, trusting the
// key of kc under the bundle's hint, as cosign verify-blob --key does.
func (e *keyEnv) sigstoreGoKeyVerdict(t *testing.T, pb *protobundle.Bundle, kc keyCase, artifact []byte) error {
	t.Helper()
	b, err := sgbundle.NewBundle(proto.Clone(pb).(*protobundle.Bundle))
	if err != nil {
		return err
	}
	kv, err := kc.sgVerifier()
	if err != nil {
		t.Fatal(err)
	}
	keys := sgroot.NewTrustedPublicKeyMaterialFromMapping(map[string]*sgroot.ExpiringKey{
		pb.GetVerificationMaterial().GetPublicKey().GetHint(): sgroot.NewExpiringKey(kv, time.Time{}, time.Time{}),
	})
	v, err := sgverify.NewVerifier(sgroot.TrustedMaterialCollection{e.sgRoot, keys}, sgverify.WithSignedTimestamps(1), sgverify.WithTransparencyLog(1))
	if err != nil {
		t.Fatal(err)
	}
	art := sgverify.WithArtifact(bytes.NewReader(artifact))
	if pb.GetDsseEnvelope() != nil {
		d := sha256.Sum256(artifact)
		art = sgverify.WithArtifactDigest("sha256", d[:])
	}
	_, err = v.Verify(b, sgverify.NewPolicy(art, sgverify.WithKey()))
	return err
}

// editBody rewrites the first log entry's canonicalized body (Rekor v2
// hashedrekord JSON) with edit, applied to spec.hashedRekordV002.
func editBody(t *testing.T, pb *protobundle.Bundle, edit func(spec map[string]any)) {
	t.Helper()
	e := pb.GetVerificationMaterial().GetTlogEntries()[0]
	var body map[string]any
	if err := json.Unmarshal(e.CanonicalizedBody, &body); err != nil {
		t.Fatal(err)
	}
	spec, ok := body["spec"].(map[string]any)["hashedRekordV002"].(map[string]any)
	if !ok {
		t.Fatalf("body is not a hashedrekord 0.0.2: %s", e.CanonicalizedBody)
	}
	edit(spec)
	out, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	e.CanonicalizedBody = out
}

func TestKeyBundles(t *testing.T) {
	e := newKeyEnv(t)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherDER, _ := x509.MarshalPKIXPublicKey(&other.PublicKey)

	for _, kc := range keyCases(t) {
		pub := kc.key.Public()
		wantFP, err := verify.KeyFingerprint(pub)
		if err != nil {
			t.Fatal(err)
		}
		for _, kind := range []string{"blob", "attestation"} {
			t.Run(kc.name+"/"+kind, func(t *testing.T) {
				var pb *protobundle.Bundle
				if kind == "blob" {
					pb = e.signArtifact(t, kc.key)
				} else {
					pb = e.signAttestation(t, kc.key)
				}
				res, err := e.verifyKey(pb, pub, e.artifact)
				if err != nil {
					t.Fatalf("signet rejects a bundle signed with a %s key: %v", kc.name, err)
				}
				der, _ := x509.MarshalPKIXPublicKey(pub)
				if sum := sha256.Sum256(der); res.KeyFingerprint != wantFP || wantFP != "sha256:"+hex.EncodeToString(sum[:]) {
					t.Errorf("key fingerprint %q, want sha256 of the DER public key %x", res.KeyFingerprint, sum)
				}
				if res.Signer.SAN != "" || res.Certificate != nil || res.CA != "" {
					t.Errorf("a key bundle reports a certificate signer: %+v", res)
				}
				if len(res.Entries) != 1 || res.Entries[0].Kind != "hashedrekord" || len(res.Times) != 1 || !strings.HasPrefix(res.Times[0].Source, "rfc3161 ") {
					t.Errorf("entries %+v, times %+v; want one hashedrekord entry and one RFC 3161 time", res.Entries, res.Times)
				}
				if kind == "attestation" && res.Statement == nil {
					t.Error("no statement in the result")
				}
				if err := e.sigstoreGoKeyVerdict(t, pb, kc, e.artifact); err != nil {
					t.Fatalf("sigstore-go rejects the bundle signet verified: %v", err)
				}

				// Each damage must fail with the check it concerns, and
				// sigstore-go must reject it too.
				sig := func(pb *protobundle.Bundle) []byte {
					if ms := pb.GetMessageSignature(); ms != nil {
						return ms.Signature
					}
					return pb.GetDsseEnvelope().GetSignatures()[0].Sig
				}
				type damage struct {
					name     string
					want     verify.Check
					mutate   func(pb *protobundle.Bundle)
					artifact []byte
					// body marks edits of canonicalizedBody alone. sigstore-go
					// v1.3.0 ignores that field for Rekor v2 entries (it rebuilds
					// the leaf from the bundle), so only signet can notice them;
					// both verify the inclusion proof of the same leaf.
					body bool
				}
				damages := []damage{
					{name: "changed artifact", want: verify.CheckArtifact, artifact: append(bytes.Clone(e.artifact), '!')},
					{name: "first signature byte", want: verify.CheckSignature, mutate: func(pb *protobundle.Bundle) { sig(pb)[0] ^= 1 }},
					{name: "last signature byte", want: verify.CheckSignature, mutate: func(pb *protobundle.Bundle) { s := sig(pb); s[len(s)-1] ^= 1 }},
					{name: "logged key is another key", want: verify.CheckTlogBody, body: true, mutate: func(pb *protobundle.Bundle) {
						editBody(t, pb, func(spec map[string]any) {
							spec["signature"].(map[string]any)["verifier"].(map[string]any)["publicKey"] = map[string]any{"rawBytes": base64.StdEncoding.EncodeToString(otherDER)}
						})
					}},
					{name: "logged signature changed", want: verify.CheckTlogBody, body: true, mutate: func(pb *protobundle.Bundle) {
						editBody(t, pb, func(spec map[string]any) {
							s := bytes.Clone(sig(pb))
							s[0] ^= 1
							spec["signature"].(map[string]any)["content"] = base64.StdEncoding.EncodeToString(s)
						})
					}},
					{name: "logged digest changed", want: verify.CheckTlogBody, body: true, mutate: func(pb *protobundle.Bundle) {
						editBody(t, pb, func(spec map[string]any) {
							d, _ := base64.StdEncoding.DecodeString(spec["data"].(map[string]any)["digest"].(string))
							d[0] ^= 1
							spec["data"].(map[string]any)["digest"] = base64.StdEncoding.EncodeToString(d)
						})
					}},
					{name: "logged certificate instead of key", want: verify.CheckTlogBody, body: true, mutate: func(pb *protobundle.Bundle) {
						editBody(t, pb, func(spec map[string]any) {
							spec["signature"].(map[string]any)["verifier"].(map[string]any)["publicKey"] = nil
							spec["signature"].(map[string]any)["verifier"].(map[string]any)["x509Certificate"] = map[string]any{"rawBytes": base64.StdEncoding.EncodeToString(otherDER)}
						})
					}},
					{name: "proof hash byte", want: verify.CheckInclusionProof, mutate: func(pb *protobundle.Bundle) {
						p := pb.GetVerificationMaterial().GetTlogEntries()[0].GetInclusionProof()
						if len(p.Hashes) == 0 {
							p.Hashes = [][]byte{make([]byte, 32)}
							return
						}
						p.Hashes[0][0] ^= 1
					}},
					{name: "timestamp removed", want: verify.CheckTimeSource, mutate: func(pb *protobundle.Bundle) {
						pb.GetVerificationMaterial().TimestampVerificationData = nil
					}},
				}
				if kind == "attestation" {
					damages = append(damages, damage{name: "payload byte", want: verify.CheckSignature, mutate: func(pb *protobundle.Bundle) {
						pb.GetDsseEnvelope().Payload[len(pb.GetDsseEnvelope().Payload)-2] ^= 1
					}})
				}
				for _, d := range damages {
					t.Run(d.name, func(t *testing.T) {
						bad := proto.Clone(pb).(*protobundle.Bundle)
						if d.mutate != nil {
							d.mutate(bad)
						}
						art := e.artifact
						if d.artifact != nil {
							art = d.artifact
						}
						_, err := e.verifyKey(bad, pub, art)
						if verify.CheckOf(err) != d.want {
							t.Errorf("signet: %v; want a %q failure", err, d.want)
						}
						if err := e.sigstoreGoKeyVerdict(t, bad, kc, art); err == nil && !d.body {
							t.Errorf("sigstore-go accepts what signet rejects (%v)", d.want)
						}
					})
				}

				t.Run("another key", func(t *testing.T) {
					_, err := e.verifyKey(pb, &other.PublicKey, e.artifact)
					var ve *verify.Error
					if verify.CheckOf(err) != verify.CheckKey || !errorsAs(err, &ve) || !strings.Contains(ve.Found, "sha256:") || !strings.Contains(err.Error(), "signed with another key") {
						t.Errorf("verifying with another key: %v; want a %q failure naming both keys", err, verify.CheckKey)
					}
				})
				t.Run("hint is not trusted", func(t *testing.T) {
					// The hint is unauthenticated: rewriting it neither breaks a
					// good signature nor would it make a bad one pass.
					h := proto.Clone(pb).(*protobundle.Bundle)
					h.VerificationMaterial.Content = &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: "release-key-2025"}}
					if _, err := e.verifyKey(h, pub, e.artifact); err != nil {
						t.Errorf("a free-form hint broke verification: %v", err)
					}
					sig(h)[0] ^= 1
					if _, err := e.verifyKey(h, pub, e.artifact); verify.CheckOf(err) != verify.CheckSignature {
						t.Errorf("bad signature with a free-form hint: %v; want %q", err, verify.CheckSignature)
					}
				})
				t.Run("keyless policy", func(t *testing.T) {
					b, _ := bundle.FromProto(proto.Clone(pb).(*protobundle.Bundle))
					_, err := verify.New(e.root).VerifyArtifact(context.Background(), b, bytes.NewReader(e.artifact), verify.Policy{Identity: verify.Exact("a@example.com"), Issuer: verify.Exact("https://issuer.example")})
					var ve *verify.Error
					if verify.CheckOf(err) != verify.CheckKey || !errors.As(err, &ve) || ve.Remedy != verify.RemedyUseKey {
						t.Errorf("keyless policy on a key bundle: %v; want a %q failure whose remedy is to verify with the key", err, verify.CheckKey)
					}
				})
			})
		}
	}

	t.Run("digest only", func(t *testing.T) {
		// Ed25519ph and ECDSA bundles verify from the digest alone.
		for _, kc := range keyCases(t) {
			pb := e.signArtifact(t, kc.key)
			b, _ := bundle.FromProto(pb)
			alg := crypto.SHA256
			switch pb.GetMessageSignature().GetMessageDigest().GetAlgorithm() {
			case protocommon.HashAlgorithm_SHA2_384:
				alg = crypto.SHA384
			case protocommon.HashAlgorithm_SHA2_512:
				alg = crypto.SHA512
			}
			d, _ := verify.DigestOf(alg, bytes.NewReader(e.artifact))
			if _, err := verify.New(e.root).VerifyDigest(context.Background(), b, d, verify.Policy{Key: kc.key.Public()}); err != nil {
				t.Errorf("%s: %v", kc.name, err)
			}
		}
	})
}

func errorsAs(err error, target **verify.Error) bool { return errors.As(err, target) }

// A certificate bundle verifies with --key semantics when its certificate
// holds the key; the key, not the certificate's identity, is trusted.
func TestKeyPolicyOnCertificateBundle(t *testing.T) {
	f := loadFixture(t)
	for _, c := range interopCases {
		t.Run(c.file, func(t *testing.T) {
			b, err := bundle.ReadFile(filepath.Join(f.dir, c.file))
			if err != nil {
				t.Fatal(err)
			}
			cert, err := b.Certificate()
			if err != nil {
				t.Fatal(err)
			}
			res, err := f.run(b, c, verify.Policy{Key: cert.PublicKey}, f.artifact)
			if err != nil {
				t.Fatalf("certificate bundle with its own key: %v", err)
			}
			if res.Certificate == nil || res.Signer.SAN != "" || res.CA != "" || res.KeyFingerprint == "" || len(res.Entries) == 0 {
				t.Errorf("result %+v: want the key, not the certificate identity", res)
			}
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			_, err = f.run(b, c, verify.Policy{Key: &k.PublicKey}, f.artifact)
			var ve *verify.Error
			if verify.CheckOf(err) != verify.CheckKey || !errorsAs(err, &ve) || !strings.Contains(ve.Found, "certificate") {
				t.Errorf("another key: %v; want a %q failure naming the certificate's key", err, verify.CheckKey)
			}
			if _, err := f.run(b, c, verify.Policy{Key: cert.PublicKey}, append(bytes.Clone(f.artifact), '!')); err == nil {
				t.Error("changed artifact verified")
			}
		})
	}
}

func TestKeyPolicyErrors(t *testing.T) {
	f := loadFixture(t)
	b, err := bundle.ReadFile(filepath.Join(f.dir, interopCases[0].file))
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]verify.Policy{
		"key and identity":   {Key: &k.PublicKey, Identity: verify.Exact("a@example.com")},
		"key and issuer":     {Key: &k.PublicKey, Issuer: verify.Exact("https://issuer.example")},
		"key and extensions": {Key: &k.PublicKey, Extensions: certext.Extensions{SourceRepositoryURI: "https://github.com/acme/app"}},
		"weak RSA key":       {Key: &weak.PublicKey},
		"P-224 key":          {Key: &mustEC(t, elliptic.P224()).PublicKey},
		"negative threshold": {Key: &k.PublicKey, TlogThreshold: -1},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := verify.New(f.root).VerifyArtifact(context.Background(), b, bytes.NewReader(f.artifact), p)
			if verify.CheckOf(err) != verify.CheckPolicy {
				t.Errorf("%v; want a %q failure", err, verify.CheckPolicy)
			}
		})
	}
}

func mustEC(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParsePublicKeyPEM(t *testing.T) {
	k := mustEC(t, elliptic.P256())
	pubDER, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	privDER, _ := x509.MarshalPKCS8PrivateKey(k)
	ecDER, _ := x509.MarshalECPrivateKey(k)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	f := loadFixture(t)
	b, err := bundle.ReadFile(filepath.Join(f.dir, interopCases[0].file))
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.CertificateDER()})

	got, err := verify.ParsePublicKeyPEM(pubPEM)
	if err != nil || !k.PublicKey.Equal(got) {
		t.Fatalf("PKIX public key: %v", err)
	}
	// Leading text and other blocks (e.g. openssl's EC PARAMETERS) are fine.
	if _, err := verify.ParsePublicKeyPEM(append([]byte("my release key\n"), pubPEM...)); err != nil {
		t.Errorf("public key after text: %v", err)
	}
	for name, c := range map[string]struct {
		data []byte
		want string
	}{
		"PKCS#8 private key": {pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), "private key"},
		"SEC 1 private key":  {pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}), "private key"},
		"cosign private key": {pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED SIGSTORE PRIVATE KEY", Bytes: []byte("x")}), "cosign public-key"},
		"certificate":        {certPEM, "certificate"},
		"PKCS#1 RSA public":  {pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rk.PublicKey)}), "PKIX"},
		"two public keys":    {append(bytes.Clone(pubPEM), pubPEM...), "exactly one"},
		"not PEM":            {[]byte("hello"), "PUBLIC KEY"},
		"garbage in block":   {pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("nope")}), "PUBLIC KEY block"},
		"empty":              {nil, "PUBLIC KEY"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := verify.ParsePublicKeyPEM(c.data)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v; want one mentioning %q", err, c.want)
			}
		})
	}

	path := filepath.Join(t.TempDir(), "key.pub")
	if err := os.WriteFile(path, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := verify.LoadPublicKeyFile(path); err != nil || !k.PublicKey.Equal(got) {
		t.Errorf("LoadPublicKeyFile: %v", err)
	}
	if _, err := verify.LoadPublicKeyFile(path + ".missing"); err == nil {
		t.Error("missing file loaded")
	}
}
