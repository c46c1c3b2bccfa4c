package sign_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/rekor"
	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/sign/transport"
	"github.com/signet-dev/signet/core/token"
	"github.com/signet-dev/signet/server/servertest"
)

// TestAgainstSignetServer signs with the real signet server and verifies the
// bundles with sigstore-go, an independent Sigstore verifier.
func TestAgainstSignetServer(t *testing.T) {
	ctx := context.Background()
	p := servertest.Start(t, t.TempDir(), "--dev-oidc")
	trJSON, err := p.Get("/trust/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := root.NewTrustedRootFromJSON(trJSON)
	if err != nil {
		t.Fatal(err)
	}
	v, err := verify.NewVerifier(tr, verify.WithSignedTimestamps(1), verify.WithTransparencyLog(1))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := p.Token(ctx, url.Values{"kind": {"github"}, "repository": {"acme/app"}, "workflow": {".github/workflows/release.yml"}, "ref": {"refs/heads/main"}})
	if err != nil {
		t.Fatal(err)
	}
	// Go through token detection as the CLI does.
	tok, err := token.Detect(ctx, token.Options{Getenv: func(k string) string {
		if k == "SIGSTORE_ID_TOKEN" {
			return raw
		}
		return ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	identity, err := verify.NewShortCertificateIdentity(p.URL+"/dev/oidc", "", "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main", "")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := verify.NewShortCertificateIdentity(p.URL+"/dev/oidc", "", "https://github.com/evil/app/.github/workflows/release.yml@refs/heads/main", "")

	hc := transport.NewClient(transport.Options{})
	services, err := sign.FromServer(ctx, p.URL, hc, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	artifact := bytes.Repeat([]byte("release artifact\n"), 4096)
	artifactPath := filepath.Join(dir, "app.tar.gz")
	if err := os.WriteFile(artifactPath, artifact, 0o644); err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(artifact)

	t.Run("artifact", func(t *testing.T) {
		out := filepath.Join(dir, "app.sigstore.json")
		start := time.Now()
		if _, err := sign.Artifact(ctx, sign.Options{Services: services, IdentityToken: tok.Raw}, artifactPath, out); err != nil {
			t.Fatal(err)
		}
		t.Logf("token → certificate → signature → timestamp → log entry → bundle on disk: %v", time.Since(start))
		b, err := sgbundle.LoadJSONFromPath(out)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(b, verify.NewPolicy(verify.WithArtifact(bytes.NewReader(artifact)), verify.WithCertificateIdentity(identity))); err != nil {
			t.Fatalf("sigstore-go rejects signet's bundle: %v", err)
		}
		if _, err := v.Verify(b, verify.NewPolicy(verify.WithArtifact(bytes.NewReader(artifact)), verify.WithCertificateIdentity(other))); err == nil {
			t.Fatal("verified with another identity")
		}
		changed := append(bytes.Clone(artifact), '!')
		if _, err := v.Verify(b, verify.NewPolicy(verify.WithArtifact(bytes.NewReader(changed)), verify.WithCertificateIdentity(identity))); err == nil {
			t.Fatal("verified a changed artifact")
		}
	})

	statement := func(t *testing.T) []byte {
		prov, err := os.ReadFile("../../../shared/interop/provenance-predicate.json")
		if err != nil {
			t.Fatal(err)
		}
		st, err := intoto.NewStatement([]intoto.Subject{{Name: "app.tar.gz", Digest: map[string]string{"sha256": hex.EncodeToString(digest[:])}}}, intoto.PredicateSLSAProvenanceV1, prov)
		if err != nil {
			t.Fatal(err)
		}
		payload, err := intoto.MarshalStatement(st)
		if err != nil {
			t.Fatal(err)
		}
		return payload
	}
	for _, viaStore := range []bool{false, true} {
		name := "attestation via Rekor v2 API"
		if viaStore {
			name = "attestation via attestation store"
		}
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(dir, name+".sigstore.json")
			res, err := sign.Attestation(ctx, sign.Options{Services: services, IdentityToken: tok.Raw, ViaAttestationStore: viaStore}, statement(t), out)
			if err != nil {
				t.Fatal(err)
			}
			b, err := sgbundle.LoadJSONFromPath(out)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(b, verify.NewPolicy(verify.WithArtifact(bytes.NewReader(artifact)), verify.WithCertificateIdentity(identity))); err != nil {
				t.Fatalf("sigstore-go rejects signet's attestation bundle: %v", err)
			}
			if _, err := v.Verify(b, verify.NewPolicy(verify.WithArtifact(bytes.NewReader([]byte("other"))), verify.WithCertificateIdentity(identity))); err == nil {
				t.Fatal("attestation verified for an artifact it does not name")
			}
			if !viaStore {
				return
			}
			if res.AttestationID == "" {
				t.Fatal("no attestation ID")
			}
			found, _, err := services.Attestations.(*rekor.AttestationStore).Search(ctx, rekor.Query{Digest: "sha256:" + hex.EncodeToString(digest[:]), PredicateType: intoto.PredicateSLSAProvenanceV1})
			if err != nil {
				t.Fatal(err)
			}
			if len(found) != 1 || found[0].ID != res.AttestationID || !bytes.Equal(found[0].Envelope.GetPayload(), res.Bundle.DSSEEnvelope().GetPayload()) {
				t.Fatalf("search found %d attestations", len(found))
			}
		})
	}
}

// BenchmarkSignArtifact measures the whole keyless flow against the real
// server on loopback: certificate, signature, timestamp, log entry with
// inclusion proof, bundle on disk.
func BenchmarkSignArtifact(b *testing.B) {
	ctx := context.Background()
	p := servertest.Start(b, b.TempDir(), "--dev-oidc")
	services, err := sign.FromServer(ctx, p.URL, transport.NewClient(transport.Options{}), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	raw, err := p.Token(ctx, url.Values{"kind": {"github"}, "repository": {"acme/app"}})
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	artifact := filepath.Join(dir, "artifact")
	os.WriteFile(artifact, bytes.Repeat([]byte("x"), 1<<20), 0o644)
	out := filepath.Join(dir, "artifact.sigstore.json")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := sign.Artifact(ctx, sign.Options{Services: services, IdentityToken: raw}, artifact, out); err != nil {
			b.Fatal(err)
		}
	}
}
