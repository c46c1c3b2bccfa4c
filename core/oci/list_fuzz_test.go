package oci_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/signet-dev/signet/core/oci"
)

// fakeRegistry is an in-memory registry behind an http.RoundTripper: it
// answers the ping, the referrers API (when api is set, else 404), manifests
// by digest and by tag, and blobs by digest, with whatever it holds. It
// lets the fuzzer play a hostile registry without a network.
type fakeRegistry struct {
	api       bool
	referrers []byte            // the referrers API answer, else the referrers tag's index
	manifests map[string][]byte // by digest or tag
	blobs     map[string][]byte // by digest
}

func digestOf(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

func answer(req *http.Request, status int, contentType string, body []byte) *http.Response {
	h := http.Header{}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	if status == http.StatusNotFound {
		h.Set("Content-Type", "application/json")
		body = []byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}`)
	}
	return &http.Response{
		StatusCode: status, Header: h, Request: req, ContentLength: int64(len(body)),
		Body: io.NopCloser(bytes.NewReader(body)),
	}
}

func (r *fakeRegistry) RoundTrip(req *http.Request) (*http.Response, error) {
	p := req.URL.Path
	const repo = "/v2/" + fuzzRepo + "/"
	switch {
	case p == "/v2/":
		return answer(req, http.StatusOK, "application/json", []byte("{}")), nil
	case strings.HasPrefix(p, repo+"referrers/"):
		if !r.api {
			return answer(req, http.StatusNotFound, "", nil), nil
		}
		return answer(req, http.StatusOK, string(types.OCIImageIndex), r.referrers), nil
	case strings.HasPrefix(p, repo+"manifests/"):
		ref := strings.TrimPrefix(p, repo+"manifests/")
		if ref == strings.Replace(fuzzSubject.String(), ":", "-", 1) && !r.api {
			return answer(req, http.StatusOK, string(types.OCIImageIndex), r.referrers), nil
		}
		if m, ok := r.manifests[ref]; ok {
			var mt struct {
				MediaType string `json:"mediaType"`
			}
			_ = json.Unmarshal(m, &mt)
			if mt.MediaType == "" {
				mt.MediaType = string(types.OCIManifestSchema1)
			}
			resp := answer(req, http.StatusOK, mt.MediaType, m)
			resp.Header.Set("Docker-Content-Digest", digestOf(m))
			return resp, nil
		}
	case strings.HasPrefix(p, repo+"blobs/"):
		if b, ok := r.blobs[strings.TrimPrefix(p, repo+"blobs/")]; ok {
			return answer(req, http.StatusOK, "application/octet-stream", b), nil
		}
	}
	return answer(req, http.StatusNotFound, "", nil), nil
}

const fuzzRepo = "fuzz/image"

// fuzzSubject is the image whose attachments are listed.
var fuzzSubject = func() v1.Hash {
	h, _ := v1.NewHash(digestOf([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)))
	return h
}()

// Placeholders in fuzz inputs, replaced with the digests the registry holds
// so that mutations keep pointing at real content: in the referrer manifest
// @subject@, @blob@ and @blobsize@; in the index @manifest@.
func fill(s []byte, kv ...string) []byte {
	for i := 0; i+1 < len(kv); i += 2 {
		s = bytes.ReplaceAll(s, []byte(kv[i]), []byte(kv[i+1]))
	}
	return s
}

// FuzzListReferrers plays a hostile registry to Client.List, which parses
// what registries return: the referrers API index or the referrers tag
// index, each referrer manifest, and the legacy .sig tag manifest. The
// registry holds one referrer manifest, one blob (its layer) and the index;
// mode bit 0 selects the referrers API (else the referrers tag), bit 1 also
// serves the manifest as the legacy .sig tag. List must return a listing or
// an error, never both or neither, and what it lists must be what the
// registry holds: referrers only from the index, once each, whose manifest
// names the subject, bundles byte for byte the blob their layer names, and
// legacy payloads the blobs their layers name. Seeds
// (testdata/fuzz/FuzzListReferrers) are the layouts cosign v3 and signet
// write (message signature and DSSE attestation bundles from the interop
// set, a non-bundle referrer, a legacy signature) over both paths, and
// inconsistent answers. Registry answers are bounded by List's own read
// limits. For a longer run:
//
//	go test ./core/oci -run '^$' -fuzz '^FuzzListReferrers$' -fuzztime 10m
func FuzzListReferrers(f *testing.F) {
	f.Add(byte(1), []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":"@manifest@"},{"digest":"@manifest@"}]}`), []byte(`{"subject":{"digest":"sha256:00"}}`), []byte{})
	f.Add(byte(0), []byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}`), []byte(`{}`), []byte{})
	f.Add(byte(2), []byte(`not json`), []byte(`{"layers":[{"digest":"@blob@","size":-1}]}`), []byte(`{}`))
	c := oci.New(oci.Options{Keychain: authn.NewMultiKeychain(), Transport: &fakeRegistry{}})
	ref, err := c.ParseReference("127.0.0.1:5000/" + fuzzRepo + "@" + fuzzSubject.String())
	if err != nil {
		f.Fatal(err)
	}
	subject := &oci.Subject{Reference: ref, Digest: ref.(name.Digest), Descriptor: v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: fuzzSubject, Size: 78}}

	f.Fuzz(func(t *testing.T, mode byte, index, manifest, blob []byte) {
		blobDigest := digestOf(blob)
		manifest = fill(manifest, "@subject@", fuzzSubject.String(), "@blob@", blobDigest, "@blobsize@", strconv.Itoa(len(blob)))
		manifestDigest := digestOf(manifest)
		index = fill(index, "@manifest@", manifestDigest)
		reg := &fakeRegistry{
			api: mode&1 != 0, referrers: index,
			manifests: map[string][]byte{manifestDigest: manifest},
			blobs:     map[string][]byte{blobDigest: blob},
		}
		if mode&2 != 0 {
			reg.manifests[strings.Replace(fuzzSubject.String(), ":", "-", 1)+".sig"] = manifest
		}
		c := oci.New(oci.Options{Keychain: authn.NewMultiKeychain(), Transport: reg})
		l, err := c.List(context.Background(), subject)
		if (l == nil) == (err == nil) {
			t.Fatalf("List returned listing %v and error %v", l != nil, err)
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		checkListing(t, reg, subject, l)
	})
}

func checkListing(t *testing.T, reg *fakeRegistry, subject *oci.Subject, l *oci.Listing) {
	t.Helper()
	wantPath, wantSource := oci.PathReferrersTag, oci.SourceReferrersTag
	if reg.api {
		wantPath, wantSource = oci.PathReferrersAPI, oci.SourceReferrersAPI
	}
	if l.Path != wantPath || l.Subject != subject {
		t.Fatalf("listing path %q subject %v, want %q", l.Path, l.Subject, wantPath)
	}
	var im v1.IndexManifest
	_ = json.Unmarshal(reg.referrers, &im)
	listed := map[string]bool{}
	for _, d := range im.Manifests {
		listed[d.Digest.String()] = true
	}
	seen := map[string]bool{}
	for _, a := range l.Items {
		digest := a.Manifest.DigestStr()
		if a.Source == oci.SourceLegacySig || a.Source == oci.SourceLegacyAtt {
			if a.Legacy == nil || a.Bundle != nil {
				t.Fatalf("legacy item %+v", a)
			}
			if got := digestOf(a.Legacy.Payload); !bytes.Equal(reg.blobs[got], a.Legacy.Payload) {
				t.Fatalf("legacy payload %q is no blob the registry holds", a.Legacy.Payload)
			}
			continue
		}
		if a.Source != wantSource || a.Legacy != nil {
			t.Fatalf("referrer from %q, listing path %q", a.Source, l.Path)
		}
		if !listed[digest] || seen[digest] {
			t.Fatalf("referrer %s listed %v times more than the index has it (index: %s)", digest, seen[digest], reg.referrers)
		}
		seen[digest] = true
		var m struct {
			Subject *v1.Descriptor  `json:"subject"`
			Layers  []v1.Descriptor `json:"layers"`
		}
		if err := json.Unmarshal(reg.manifests[digest], &m); err != nil || m.Subject == nil || m.Subject.Digest != subject.Descriptor.Digest {
			t.Fatalf("listed referrer %s whose manifest does not name the subject (%v)", digest, err)
		}
		switch a.Kind {
		case oci.KindSignature, oci.KindAttestation:
			if a.ArtifactType != oci.BundleMediaType || len(m.Layers) != 1 {
				t.Fatalf("a %v of artifact type %q with %d layers", a.Kind, a.ArtifactType, len(m.Layers))
			}
			if b, ok := reg.blobs[m.Layers[0].Digest.String()]; !ok || !bytes.Equal(b, a.Bundle) || digestOf(a.Bundle) != m.Layers[0].Digest.String() {
				t.Fatalf("bundle %q is not the blob %s the layer names", a.Bundle, m.Layers[0].Digest)
			}
		case oci.KindOther:
			if a.Bundle != nil {
				t.Fatalf("a non-bundle referrer (%q) with bundle bytes", a.ArtifactType)
			}
		default:
			t.Fatalf("kind %v", a.Kind)
		}
	}
}
