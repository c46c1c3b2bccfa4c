package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/oci/ocitest"
)

// unlog turns a genuine bundle into the reported attack: a v0.1 bundle whose
// entry claims an index the log never wrote, with a garbage signed entry
// timestamp, no integrated time and no inclusion proof, keeping the
// genuine TSA timestamp.
func unlog(b map[string]any) {
	b["mediaType"] = bundle.MediaTypeV01
	vm := b["verificationMaterial"].(map[string]any)
	e := vm["tlogEntries"].([]any)[0].(map[string]any)
	e["logIndex"] = "999999"
	delete(e, "inclusionProof")
	delete(e, "integratedTime")
	e["inclusionPromise"] = map[string]any{"signedEntryTimestamp": base64.StdEncoding.EncodeToString([]byte("garbage"))}
}

// TestNeverLoggedBundleRefusedByEveryVerb runs the attack through each CLI
// path that verifies: blob signatures, blob attestations, self-managed keys
// and image referrers. Each must fail (exit 1) naming the inclusion promise,
// and none may print the entry as logged.
func TestNeverLoggedBundleRefusedByEveryVerb(t *testing.T) {
	e := newCLIEnv(t)
	art := e.file(t, "app.tar.gz", "release bits\n")
	pred := e.file(t, "result.json", `{"passed":true}`)
	priv, pub, _ := writeKeyPair(t, e, "release", must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)))

	sig := filepath.Join(e.dir, "app.sigstore.json")
	runSignet(t, e.serverEnv, "sign-blob", art, "--bundle", sig, "--identity-token", e.token).want(t, 0)
	att := filepath.Join(e.dir, "app.att.sigstore.json")
	runSignet(t, e.serverEnv, "attest-blob", art, "--predicate", pred, "--type", "https://example.com/test-result/v1", "--bundle", att, "--identity-token", e.token).want(t, 0)
	keyed := filepath.Join(e.dir, "app.key.sigstore.json")
	runSignet(t, e.serverEnv, "sign-blob", art, "--key", priv, "--bundle", keyed).want(t, 0)

	refused := func(t *testing.T, r cliRun) {
		t.Helper()
		if r.code != 1 || !strings.Contains(r.stderr, "inclusion promise") || strings.Contains(r.stdout, "Verified OK") || strings.Contains(r.stdout, "999999") {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
	}
	for _, c := range []struct {
		name string
		path string
		args []string
	}{
		{"verify-blob", sig, append([]string{"verify-blob", art}, e.policy()...)},
		{"verify-blob-attestation", att, append([]string{"verify-blob-attestation", art, "--type", "https://example.com/test-result/v1"}, e.policy()...)},
		{"verify-blob --key", keyed, []string{"verify-blob", art, "--key", pub, "--trusted-root", e.root}},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The genuine bundle verifies: the refusal is about the entry alone.
			runSignet(t, nil, append(c.args, "--bundle", c.path)...).want(t, 0)
			bad := editBundle(t, e, c.path, "unlogged-"+filepath.Base(c.path), unlog)
			refused(t, runSignet(t, nil, append(c.args, "--bundle", bad)...))
		})
	}

	t.Run("verify IMAGE", func(t *testing.T) {
		reg := ocitest.StartReferrersAPI(t)
		img := must(random.Image(512, 1))
		digest := must(img.Digest()).String()
		for _, repo := range []string{"acme/app", "acme/mirror"} {
			if err := remote.Write(must(name.ParseReference(reg.Ref(repo+":v1"), name.Insecure)), img); err != nil {
				t.Fatal(err)
			}
		}
		signed, mirror := reg.Ref("acme/app@"+digest), reg.Ref("acme/mirror@"+digest)
		e.sign(t, nil, "sign", signed).want(t, 0)
		runSignet(t, nil, append([]string{"verify", signed}, e.policy()...)...).want(t, 0)

		// Take the genuine signature, unlog it, and attach it to the same
		// image in a repository that has no genuine signature.
		ctx := context.Background()
		c := oci.New(oci.Options{})
		l := must(c.List(ctx, must(c.Resolve(ctx, signed))))
		if len(l.Signatures()) != 1 {
			t.Fatalf("listing %+v", l)
		}
		var b map[string]any
		if err := json.Unmarshal(l.Signatures()[0].Bundle, &b); err != nil {
			t.Fatal(err)
		}
		unlog(b)
		// signet's own Attach refuses a v0.1 bundle, so push the referrer
		// as an attacker would: raw, with the genuine one's annotations.
		pushReferrer(t, must(c.Resolve(ctx, mirror)), must(json.Marshal(b)), l.Signatures()[0].Annotations)
		refused(t, runSignet(t, nil, append([]string{"verify", mirror}, e.policy()...)...))

		// A genuine signature of this image, copied to another image, is a
		// signature of something else.
		other := must(random.Image(512, 1))
		otherRef := reg.Ref("acme/app@" + must(other.Digest()).String())
		if err := remote.Write(must(name.ParseReference(reg.Ref("acme/app:v2"), name.Insecure)), other); err != nil {
			t.Fatal(err)
		}
		pushReferrer(t, must(c.Resolve(ctx, otherRef)), l.Signatures()[0].Bundle, l.Signatures()[0].Annotations)
		r := runSignet(t, nil, append([]string{"verify", otherRef}, e.policy()...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "verification failed: artifact") {
			t.Fatalf("copied signature: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// pushReferrer writes a cosign v3-layout referrer manifest for subject
// holding bundleJSON, without any of signet's checks.
func pushReferrer(t *testing.T, subject *oci.Subject, bundleJSON []byte, annotations map[string]string) {
	t.Helper()
	repo := subject.Digest.Context()
	cfg := static.NewLayer([]byte("{}"), oci.EmptyMediaType)
	layer := static.NewLayer(bundleJSON, oci.BundleMediaType)
	for _, l := range []v1.Layer{cfg, layer} {
		if err := remote.WriteLayer(repo, l); err != nil {
			t.Fatal(err)
		}
	}
	desc := func(l v1.Layer, mt string) map[string]any {
		return map[string]any{"mediaType": mt, "digest": must(l.Digest()).String(), "size": must(l.Size())}
	}
	raw := must(json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "artifactType": oci.BundleMediaType,
		"config": desc(cfg, oci.EmptyMediaType), "layers": []any{desc(layer, oci.BundleMediaType)},
		"subject":     map[string]any{"mediaType": string(subject.Descriptor.MediaType), "digest": subject.Descriptor.Digest.String(), "size": subject.Descriptor.Size},
		"annotations": annotations,
	}))
	d := must(v1.NewHash(fmt.Sprintf("sha256:%x", sha256.Sum256(raw))))
	if err := remote.Put(repo.Digest(d.String()), rawManifest{raw, types.OCIManifestSchema1}); err != nil {
		t.Fatal(err)
	}
}

type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }
