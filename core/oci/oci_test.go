package oci_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/oci/ocitest"
)

const interop = "../../../shared/interop/"

// The bundles below are the interop bundles made by cosign v3 with their
// content re-pointed at a test image. Their signatures no longer verify;
// this package checks bundle structure and binding, not signatures.

func loadBundle(t testing.TB, file string) *protobundle.Bundle {
	t.Helper()
	raw, err := os.ReadFile(interop + file)
	if err != nil {
		t.Fatal(err)
	}
	var pb protobundle.Bundle
	if err := protojson.Unmarshal(raw, &pb); err != nil {
		t.Fatal(err)
	}
	return &pb
}

func marshal(t testing.TB, pb *protobundle.Bundle) []byte {
	t.Helper()
	b, err := protojson.Marshal(pb)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// messageBundle is a message-signature bundle over digest (hex sha256).
func messageBundle(t testing.TB, digestHex string) []byte {
	pb := loadBundle(t, "cosign3-email.sigstore.json")
	d, err := hex.DecodeString(digestHex)
	if err != nil {
		t.Fatal(err)
	}
	pb.GetMessageSignature().MessageDigest.Digest = d
	return marshal(t, pb)
}

// dsseBundle is a DSSE bundle whose in-toto statement names digest with predicateType.
func dsseBundle(t testing.TB, digestHex, predicateType string) []byte {
	pb := loadBundle(t, "cosign3-github-provenance.sigstore.json")
	st := fmt.Sprintf(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"img","digest":{"sha256":%q}}],"predicateType":%q,"predicate":{"k":"v"}}`, digestHex, predicateType)
	pb.GetDsseEnvelope().Payload = []byte(st)
	return marshal(t, pb)
}

type staticKeychain struct{ host, user, pass string }

func (k staticKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if r.RegistryStr() == k.host {
		return &authn.Basic{Username: k.user, Password: k.pass}, nil
	}
	return authn.Anonymous, nil
}

func anonymous() *oci.Client { return oci.New(oci.Options{Keychain: authn.NewMultiKeychain()}) }

func pushImage(t *testing.T, ref string, opts ...remote.Option) v1.Image {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatal(err)
	}
	return img
}

func pushIndex(t *testing.T, ref string) v1.ImageIndex {
	t.Helper()
	var idx v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(128, 1)
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	// buildkit's attestation manifests carry platform unknown/unknown.
	att, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"}}})
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

func hexOf(s *oci.Subject) string { return s.Descriptor.Digest.Hex }

// rawManifest fetches a manifest's bytes as a generic map for shape assertions.
func rawManifest(t *testing.T, ref string) map[string]any {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(d.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// assertCosignShape checks a referrer manifest against cosign v3's layout.
func assertCosignShape(t *testing.T, ref string, subject *oci.Subject, content, predicateType string, bundle []byte) {
	t.Helper()
	m := rawManifest(t, ref)
	sum := sha256.Sum256(bundle)
	want := map[string]any{
		"schemaVersion": float64(2),
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"artifactType":  "application/vnd.dev.sigstore.bundle.v0.3+json",
		"config": map[string]any{
			"mediaType":    "application/vnd.oci.empty.v1+json",
			"artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
			"digest":       "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
			"size":         float64(2),
		},
		"layers": []any{map[string]any{
			"mediaType":   "application/vnd.dev.sigstore.bundle.v0.3+json",
			"digest":      "sha256:" + hex.EncodeToString(sum[:]),
			"size":        float64(len(bundle)),
			"annotations": map[string]any{"org.opencontainers.image.title": "sha256-" + hex.EncodeToString(sum[:]) + ".sigstore.json"},
		}},
		"subject": map[string]any{
			"mediaType": string(subject.Descriptor.MediaType),
			"digest":    subject.Descriptor.Digest.String(),
			"size":      float64(subject.Descriptor.Size),
		},
	}
	ann, _ := m["annotations"].(map[string]any)
	delete(m, "annotations")
	if got, _ := json.Marshal(m); string(got) != string(mustJSON(t, want)) {
		t.Errorf("referrer manifest shape:\n got %s\nwant %s", got, mustJSON(t, want))
	}
	if ann["dev.sigstore.bundle.content"] != content || ann["dev.sigstore.bundle.predicateType"] != predicateType || len(ann) != 3 {
		t.Errorf("annotations = %v", ann)
	}
	if _, err := time.Parse(time.RFC3339, fmt.Sprint(ann["org.opencontainers.image.created"])); err != nil {
		t.Errorf("created annotation: %v", err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAttachListFallbackTag(t *testing.T) {
	ctx := context.Background()
	reg := ocitest.Start(t)
	pushImage(t, reg.Ref("app:v1"))
	c := anonymous()

	byTag, err := c.Resolve(ctx, reg.Ref("app:v1"))
	if err != nil {
		t.Fatal(err)
	}
	byDigest, err := c.Resolve(ctx, byTag.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	if byDigest.Descriptor.Digest != byTag.Descriptor.Digest {
		t.Fatalf("tag and digest resolve differently: %v %v", byTag.Digest, byDigest.Digest)
	}

	sig := messageBundle(t, hexOf(byTag))
	att := dsseBundle(t, hexOf(byTag), "https://slsa.dev/provenance/v1")
	dsseSig := dsseBundle(t, hexOf(byTag), oci.CosignSignPredicateType) // cosign v3's image signature form

	rs, err := c.Attach(ctx, byTag, oci.Attachment{Kind: oci.KindSignature, Bundle: sig})
	if err != nil {
		t.Fatal(err)
	}
	ra, err := c.Attach(ctx, byDigest, oci.Attachment{Kind: oci.KindAttestation, Bundle: att, PredicateType: "https://slsa.dev/provenance/v1"})
	if err != nil {
		t.Fatal(err)
	}
	rd, err := c.Attach(ctx, byDigest, oci.Attachment{Kind: oci.KindSignature, Bundle: dsseSig})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*oci.AttachResult{rs, ra, rd} {
		if r.Path != oci.PathReferrersTag || r.FallbackTag != "sha256-"+hexOf(byTag) {
			t.Errorf("distribution has no referrers API; got path %q tag %q", r.Path, r.FallbackTag)
		}
	}
	assertCosignShape(t, rs.Referrer.String(), byTag, "message-signature", oci.CosignSignPredicateType, sig)
	assertCosignShape(t, ra.Referrer.String(), byTag, "dsse-envelope", "https://slsa.dev/provenance/v1", att)
	assertCosignShape(t, rd.Referrer.String(), byTag, "dsse-envelope", oci.CosignSignPredicateType, dsseSig)

	// The referrers tag lists each referrer with artifactType and annotations intact.
	idx := rawManifest(t, reg.Ref("app:sha256-"+hexOf(byTag)))
	if idx["mediaType"] != "application/vnd.oci.image.index.v1+json" {
		t.Fatalf("fallback tag media type %v", idx["mediaType"])
	}
	entries := idx["manifests"].([]any)
	if len(entries) != 3 {
		t.Fatalf("fallback index has %d entries, want 3", len(entries))
	}
	for _, e := range entries {
		e := e.(map[string]any)
		ann := e["annotations"].(map[string]any)
		if e["artifactType"] != oci.BundleMediaType || ann["dev.sigstore.bundle.content"] == nil || ann["dev.sigstore.bundle.predicateType"] == nil || ann["org.opencontainers.image.created"] == nil {
			t.Errorf("fallback entry lost fields: %v", e)
		}
	}

	// Attaching the same manifest again adds nothing.
	if _, err := c.Attach(ctx, byTag, oci.Attachment{Kind: oci.KindSignature, Bundle: sig, Created: mustTime(t, rawManifest(t, rs.Referrer.String()))}); err != nil {
		t.Fatal(err)
	}
	if n := len(rawManifest(t, reg.Ref("app:sha256-"+hexOf(byTag)))["manifests"].([]any)); n != 3 {
		t.Errorf("re-attaching the same referrer made %d entries", n)
	}

	l, err := c.List(ctx, byTag)
	if err != nil {
		t.Fatal(err)
	}
	if l.Path != oci.PathReferrersTag || len(l.Items) != 3 || len(l.Signatures()) != 2 || len(l.Attestations()) != 1 {
		t.Fatalf("listing: path %q, %d items, %d signatures, %d attestations", l.Path, len(l.Items), len(l.Signatures()), len(l.Attestations()))
	}
	got := map[string]oci.Attached{}
	for _, it := range l.Items {
		got[string(it.Bundle)] = it
		if it.Source != oci.SourceReferrersTag || it.ArtifactType != oci.BundleMediaType || it.Created.IsZero() {
			t.Errorf("item %+v", it)
		}
	}
	if it := got[string(att)]; it.Kind != oci.KindAttestation || it.PredicateType != "https://slsa.dev/provenance/v1" || it.Content != oci.ContentDSSE {
		t.Errorf("attestation item %+v", it)
	}
	if it := got[string(sig)]; it.Kind != oci.KindSignature || it.Content != oci.ContentMessageSignature {
		t.Errorf("signature item %+v", it)
	}
	if it := got[string(dsseSig)]; it.Kind != oci.KindSignature || it.Content != oci.ContentDSSE {
		t.Errorf("dsse signature item %+v", it)
	}
}

func mustTime(t *testing.T, m map[string]any) time.Time {
	ts, err := time.Parse(time.RFC3339, m["annotations"].(map[string]any)["org.opencontainers.image.created"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestAttachListReferrersAPI(t *testing.T) {
	ctx := context.Background()
	reg := ocitest.StartReferrersAPI(t)
	pushImage(t, reg.Ref("app:v1"))
	c := anonymous()
	s, err := c.Resolve(ctx, reg.Ref("app:v1"))
	if err != nil {
		t.Fatal(err)
	}
	att := dsseBundle(t, hexOf(s), "https://spdx.dev/Document")
	r, err := c.Attach(ctx, s, oci.Attachment{Kind: oci.KindAttestation, Bundle: att})
	if err != nil {
		t.Fatal(err)
	}
	if r.Path != oci.PathReferrersAPI || r.FallbackTag != "" {
		t.Errorf("path %q tag %q", r.Path, r.FallbackTag)
	}
	assertCosignShape(t, r.Referrer.String(), s, "dsse-envelope", "https://spdx.dev/Document", att)
	// No referrers tag is written where the API exists.
	tag, _ := name.NewTag(reg.Ref("app:sha256-"+hexOf(s)), name.Insecure)
	if _, err := remote.Head(tag); err == nil {
		t.Error("a referrers tag was written although the registry has the referrers API")
	}
	l, err := c.List(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if l.Path != oci.PathReferrersAPI || len(l.Items) != 1 {
		t.Fatalf("listing %+v", l)
	}
	// This registry's index reports the config media type and no
	// annotations; the listing reads the manifest itself.
	it := l.Items[0]
	if it.Kind != oci.KindAttestation || it.PredicateType != "https://spdx.dev/Document" || string(it.Bundle) != string(att) || it.ArtifactType != oci.BundleMediaType {
		t.Errorf("item %+v", it)
	}
}

func TestPlatformsRecursive(t *testing.T) {
	ctx := context.Background()
	reg := ocitest.Start(t)
	pushIndex(t, reg.Ref("multi:v1"))
	c := anonymous()
	s, err := c.Resolve(ctx, reg.Ref("multi:v1"))
	if err != nil {
		t.Fatal(err)
	}
	if !s.IsIndex() {
		t.Fatalf("media type %s", s.Descriptor.MediaType)
	}
	ps, err := c.Platforms(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Platform.Architecture != "amd64" || ps[1].Platform.Architecture != "arm64" {
		t.Fatalf("platforms %+v", ps)
	}
	for _, p := range append([]*oci.Subject{s}, ps...) {
		if _, err := c.Attach(ctx, p, oci.Attachment{Kind: oci.KindSignature, Bundle: messageBundle(t, hexOf(p))}); err != nil {
			t.Fatal(err)
		}
		l, err := c.List(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Signatures()) != 1 {
			t.Errorf("%v: %d signatures", p.Digest, len(l.Signatures()))
		}
	}
	single, err := c.Resolve(ctx, ps[0].Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Platforms(ctx, single); err != nil || got != nil {
		t.Errorf("Platforms of a single image = %v, %v", got, err)
	}
}

// simpleSigning is a cosign simple-signing payload for the digest.
func simpleSigning(ref, digest string) []byte {
	return fmt.Appendf(nil, `{"critical":{"identity":{"docker-reference":%q},"image":{"docker-manifest-digest":%q},"type":"cosign container image signature"},"optional":null}`, ref, digest)
}

func TestLegacyTags(t *testing.T) {
	ctx := context.Background()
	reg := ocitest.Start(t)
	pushImage(t, reg.Ref("legacy:v1"))
	c := anonymous()
	s, err := c.Resolve(ctx, reg.Ref("legacy:v1"))
	if err != nil {
		t.Fatal(err)
	}
	payload := simpleSigning(s.Digest.Context().String(), s.Descriptor.Digest.String())
	sum := sha256.Sum256(payload)
	sigBundle := messageBundle(t, hex.EncodeToString(sum[:]))
	tag, err := c.AttachLegacySignature(ctx, s, payload, sigBundle)
	if err != nil {
		t.Fatal(err)
	}
	if tag.TagStr() != "sha256-"+hexOf(s)+".sig" {
		t.Errorf("sig tag %s", tag)
	}
	att := dsseBundle(t, hexOf(s), "https://slsa.dev/provenance/v1")
	if _, err := c.AttachLegacyAttestation(ctx, s, att); err != nil {
		t.Fatal(err)
	}
	// A signature bundle that does not sign the payload is refused.
	if _, err := c.AttachLegacySignature(ctx, s, payload, messageBundle(t, hexOf(s))); err == nil || !strings.Contains(err.Error(), "does not sign this simple-signing payload") {
		t.Errorf("mismatched legacy signature: %v", err)
	}
	if _, err := c.AttachLegacySignature(ctx, s, simpleSigning("x", "sha256:"+strings.Repeat("0", 64)), sigBundle); err == nil || !strings.Contains(err.Error(), "payload names image") {
		t.Errorf("payload for another image: %v", err)
	}

	m := rawManifest(t, reg.Ref("legacy:sha256-"+hexOf(s)+".att"))
	layer := m["layers"].([]any)[0].(map[string]any)
	ann := layer["annotations"].(map[string]any)
	if layer["mediaType"] != oci.DSSEMediaType || ann["predicateType"] != "https://slsa.dev/provenance/v1" || !strings.HasPrefix(fmt.Sprint(ann["dev.sigstore.cosign/certificate"]), "-----BEGIN CERTIFICATE-----") || ann["dev.cosignproject.cosign/signature"] != "" {
		t.Errorf("att layer %v", layer)
	}
	if !strings.Contains(fmt.Sprint(ann["dev.sigstore.cosign/rfc3161timestamp"]), `"SignedRFC3161Timestamp":"`) {
		t.Errorf("timestamp annotation %v", ann["dev.sigstore.cosign/rfc3161timestamp"])
	}
	if m["config"].(map[string]any)["mediaType"] != "application/vnd.oci.image.config.v1+json" {
		t.Errorf("legacy config %v", m["config"])
	}

	l, err := c.List(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != 2 {
		t.Fatalf("%d items", len(l.Items))
	}
	for _, it := range l.Items {
		switch it.Source {
		case oci.SourceLegacySig:
			if it.Kind != oci.KindSignature || string(it.Legacy.Payload) != string(payload) || it.Legacy.Signature == "" || it.Legacy.MediaType != oci.SimpleSigningMediaType {
				t.Errorf("sig %+v", it.Legacy)
			}
		case oci.SourceLegacyAtt:
			var env struct {
				PayloadType string `json:"payloadType"`
			}
			if err := json.Unmarshal(it.Legacy.Payload, &env); err != nil || env.PayloadType != "application/vnd.in-toto+json" || it.PredicateType != "https://slsa.dev/provenance/v1" {
				t.Errorf("att %+v %v", it, err)
			}
		default:
			t.Errorf("unexpected source %q", it.Source)
		}
	}
}

func TestCopyWithAttachments(t *testing.T) {
	ctx := context.Background()
	regA := ocitest.Start(t)
	regB := ocitest.StartReferrersAPI(t)
	pushIndex(t, regA.Ref("src:v1"))
	c := anonymous()
	s, err := c.Resolve(ctx, regA.Ref("src:v1"))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := c.Platforms(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{} // bundle -> subject digest
	for _, p := range append([]*oci.Subject{s}, ps...) {
		b := messageBundle(t, hexOf(p))
		if _, err := c.Attach(ctx, p, oci.Attachment{Kind: oci.KindSignature, Bundle: b}); err != nil {
			t.Fatal(err)
		}
		want[string(b)] = p.Descriptor.Digest.String()
	}
	att := dsseBundle(t, hexOf(s), "https://slsa.dev/provenance/v1")
	if _, err := c.AttachLegacyAttestation(ctx, s, att); err != nil {
		t.Fatal(err)
	}

	for _, dst := range []string{regA.Ref("promoted:v1"), regB.Ref("prod/app:v1")} {
		t.Run(dst, func(t *testing.T) {
			res, err := c.Copy(ctx, s, dst)
			if err != nil {
				t.Fatal(err)
			}
			if res.Destination.DigestStr() != s.Descriptor.Digest.String() || len(res.Referrers) != 3 || len(res.LegacyTags) != 1 {
				t.Fatalf("copy result %+v", res)
			}
			d, err := c.Resolve(ctx, dst)
			if err != nil {
				t.Fatal(err)
			}
			if d.Descriptor.Digest != s.Descriptor.Digest {
				t.Fatalf("copied digest %s, want %s", d.Descriptor.Digest, s.Descriptor.Digest)
			}
			dps, err := c.Platforms(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			found := 0
			for _, p := range append([]*oci.Subject{d}, dps...) {
				l, err := c.List(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				for _, it := range l.Items {
					if it.Legacy != nil {
						if it.PredicateType != "https://slsa.dev/provenance/v1" {
							t.Errorf("legacy item %+v", it)
						}
						continue
					}
					if want[string(it.Bundle)] != p.Descriptor.Digest.String() || it.Annotations[oci.AnnotationContent] != oci.ContentMessageSignature {
						t.Errorf("%s: unexpected item %+v", p.Digest, it)
					}
					found++
				}
			}
			if found != 3 {
				t.Errorf("found %d bundles at destination, want 3", found)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	reg := ocitest.Start(t)
	pushImage(t, reg.Ref("app:v1"))
	c := anonymous()

	t.Run("not found", func(t *testing.T) {
		for _, ref := range []string{reg.Ref("app:missing"), reg.Ref("nosuchrepo:v1"), reg.Ref("app@sha256:" + strings.Repeat("a", 64))} {
			_, err := c.Resolve(ctx, ref)
			var nf *oci.NotFoundError
			if !errors.As(err, &nf) || !strings.Contains(err.Error(), reg.Host) {
				t.Errorf("Resolve(%s) = %v; want NotFoundError naming the registry", ref, err)
			}
		}
	})

	t.Run("image changed between resolve and attach", func(t *testing.T) {
		s, err := c.Resolve(ctx, reg.Ref("app:moving"))
		if err == nil {
			t.Fatal("unpushed tag resolved")
		}
		pushImage(t, reg.Ref("app:moving"))
		s, err = c.Resolve(ctx, reg.Ref("app:moving"))
		if err != nil {
			t.Fatal(err)
		}
		pushImage(t, reg.Ref("app:moving")) // the tag moves while "signing"
		_, err = c.Attach(ctx, s, oci.Attachment{Kind: oci.KindSignature, Bundle: messageBundle(t, hexOf(s))})
		var ch *oci.ImageChangedError
		if !errors.As(err, &ch) || ch.Resolved != s.Descriptor.Digest.String() || ch.Current == "" || ch.Current == ch.Resolved {
			t.Fatalf("Attach after the tag moved = %v", err)
		}
		l, err := c.List(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Items) != 0 {
			t.Errorf("something was attached: %+v", l.Items)
		}
	})

	t.Run("bad bundles change nothing", func(t *testing.T) {
		s, err := c.Resolve(ctx, reg.Ref("app:v1"))
		if err != nil {
			t.Fatal(err)
		}
		other := strings.Repeat("b", 64)
		for _, tc := range []struct {
			a    oci.Attachment
			want string
		}{
			{oci.Attachment{Kind: oci.KindSignature, Bundle: messageBundle(t, other)}, "not the image"},
			{oci.Attachment{Kind: oci.KindAttestation, Bundle: dsseBundle(t, other, "https://slsa.dev/provenance/v1")}, "do not include the image"},
			{oci.Attachment{Kind: oci.KindAttestation, Bundle: messageBundle(t, hexOf(s))}, "not a DSSE envelope"},
			{oci.Attachment{Kind: oci.KindSignature, Bundle: dsseBundle(t, hexOf(s), "https://slsa.dev/provenance/v1")}, "attach it as an attestation"},
			{oci.Attachment{Kind: oci.KindAttestation, Bundle: dsseBundle(t, hexOf(s), "https://slsa.dev/provenance/v1"), PredicateType: "https://spdx.dev/Document"}, "not the expected"},
			{oci.Attachment{Kind: oci.KindSignature, Bundle: []byte(`{"mediaType":"nope"}`)}, "unsupported mediaType"},
			{oci.Attachment{Bundle: messageBundle(t, hexOf(s))}, "attach a signature or an attestation"},
		} {
			if _, err := c.Attach(ctx, s, tc.a); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Attach = %v; want error containing %q", err, tc.want)
			}
		}
		small := oci.New(oci.Options{Keychain: authn.NewMultiKeychain(), MaxBundleSize: 100})
		_, err = small.Attach(ctx, s, oci.Attachment{Kind: oci.KindSignature, Bundle: messageBundle(t, hexOf(s))})
		var tl *oci.TooLargeError
		if !errors.As(err, &tl) || tl.Limit != 100 {
			t.Errorf("oversized bundle: %v", err)
		}
		l, err := c.List(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Items) != 0 {
			t.Errorf("refused bundles left %d items", len(l.Items))
		}
	})

	t.Run("push denied", func(t *testing.T) {
		locked := ocitest.Start(t, ocitest.WithHTPasswd("ci", "s3cret"))
		s, err := c.Resolve(ctx, reg.Ref("app:v1"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Copy(ctx, s, locked.Ref("prod/app:v1"))
		var ad *oci.AccessDeniedError
		if !errors.As(err, &ad) || !ad.Push || !strings.Contains(err.Error(), locked.Host+"/prod/app") || !strings.Contains(err.Error(), "docker login") {
			t.Fatalf("Copy without credentials = %v; want a push AccessDeniedError", err)
		}
		// Pulling without credentials is refused as a pull.
		if _, err := c.Resolve(ctx, locked.Ref("prod/app:v1")); !errors.As(err, &ad) || ad.Push {
			t.Errorf("Resolve without credentials = %v", err)
		}
		// With the credentials from the keychain the same copy goes through.
		authed := oci.New(oci.Options{Keychain: staticKeychain{locked.Host, "ci", "s3cret"}})
		if _, err := authed.Copy(ctx, s, locked.Ref("prod/app:v1")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("plain HTTP off loopback", func(t *testing.T) {
		for _, h := range []string{"127.0.0.1:5000", "127.3.4.5", "localhost:80", "[::1]:5000", "::1"} {
			if !oci.IsLoopback(h) {
				t.Errorf("IsLoopback(%q) = false", h)
			}
		}
		for _, h := range []string{"10.0.0.1:5000", "192.168.1.2", "registry.local", "example.com"} {
			if oci.IsLoopback(h) {
				t.Errorf("IsLoopback(%q) = true", h)
			}
		}
		// 10.0.0.0/8 is plain HTTP to go-containerregistry; the client's
		// transport refuses it before any connection is made.
		recorder := &recordingTransport{}
		strict := oci.New(oci.Options{Keychain: authn.NewMultiKeychain(), Transport: recorder})
		_, err := strict.Resolve(ctx, "10.255.255.1:5000/app:v1")
		var ins *oci.InsecureRegistryError
		if !errors.As(err, &ins) || !strings.Contains(err.Error(), "allow plain HTTP") || strings.Contains(err.Error(), "--") {
			t.Errorf("Resolve over plain HTTP = %v", err)
		}
		for _, u := range recorder.urls {
			if strings.HasPrefix(u, "http://") {
				t.Errorf("plain HTTP request was sent: %s", u)
			}
		}
		// With the option, plain HTTP is used.
		recorder.urls = nil
		lax := oci.New(oci.Options{Keychain: authn.NewMultiKeychain(), Transport: recorder, AllowInsecureRegistry: true})
		_, _ = lax.Resolve(ctx, "10.255.255.1:5000/app:v1")
		if !hasPrefix(recorder.urls, "http://10.255.255.1:5000/") {
			t.Errorf("with AllowInsecureRegistry no plain HTTP request was made: %v", recorder.urls)
		}
	})
}

// recordingTransport records URLs and fails every request without network.
type recordingTransport struct{ urls []string }

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.urls = append(r.urls, req.URL.String())
	return nil, errors.New("no network in this test")
}

func hasPrefix(urls []string, p string) bool {
	for _, u := range urls {
		if strings.HasPrefix(u, p) {
			return true
		}
	}
	return false
}

// One List holds at most MaxListBytes of bundles and legacy layers, however
// many a registry lists: the referrers and the legacy tags share the budget.
func TestListIsBounded(t *testing.T) {
	ctx := context.Background()
	reg := ocitest.Start(t)
	pushImage(t, reg.Ref("many:v1"))
	c := anonymous()
	s, err := c.Resolve(ctx, reg.Ref("many:v1"))
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for i := range 3 {
		b := dsseBundle(t, hexOf(s), fmt.Sprintf("https://example.com/p%d/v1", i))
		total += int64(len(b))
		if _, err := c.Attach(ctx, s, oci.Attachment{Kind: oci.KindAttestation, Bundle: b}); err != nil {
			t.Fatal(err)
		}
	}
	att := dsseBundle(t, hexOf(s), "https://slsa.dev/provenance/v1")
	if _, err := c.AttachLegacyAttestation(ctx, s, att); err != nil {
		t.Fatal(err)
	}
	if l, err := oci.New(oci.Options{MaxListBytes: 1 << 20}).List(ctx, s); err != nil || len(l.Items) != 4 {
		t.Fatalf("within the budget: %v", err)
	}
	// Enough for the referrers, not for the legacy layer on top.
	_, err = oci.New(oci.Options{MaxListBytes: total + 10}).List(ctx, s)
	var tl *oci.TooLargeError
	if !errors.As(err, &tl) || !strings.Contains(err.Error(), "attached to") {
		t.Fatalf("over the budget: %v", err)
	}
	if _, err := oci.New(oci.Options{MaxListBytes: total / 2}).List(ctx, s); !errors.As(err, &tl) {
		t.Fatalf("half the referrers: %v", err)
	}
}
