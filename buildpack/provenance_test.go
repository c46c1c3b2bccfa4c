package buildpack_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/signet-dev/signet/buildpack"
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/pipeline"
)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestProvenance(t *testing.T) {
	start := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600))
	b := &buildpack.Build{
		Tags:        []string{"registry.example/acme/app:1.0", "registry.example/acme/app:latest"},
		RunImage:    buildpack.Image{Reference: "registry.example/run:jammy", Digest: "registry.example/run@sha256:" + hex64("a")},
		Builder:     buildpack.Image{Reference: "registry.example/builder:jammy", Digest: "registry.example/builder@sha256:" + hex64("b")},
		Lifecycle:   "0.21.17",
		PlatformAPI: "0.13",
		Platform:    "kpack",
		BuilderID:   buildpack.DefaultBuilderID("kpack"),
		Buildpacks:  []buildpack.Buildpack{{ID: bpID, Version: bpVersion, API: "0.10"}, {ID: bp2ID, Version: bp2Version}},
		Extensions:  []buildpack.Buildpack{{ID: "acme/curl", Version: "0.1.0"}},
		Source:      buildpack.Source{Type: "git", URI: "git+https://github.com/acme/app.git", Digest: map[string]string{"gitCommit": "63a73f1b0f2a4f6978c19184b0ea33ad3f092913"}},
		SBOMs: []buildpack.SBOM{
			{Scope: "launch", Buildpack: bpID, Name: "sbom/launch/acme_node/sbom.cdx.json", Format: "cyclonedx", PredicateType: intoto.PredicateCycloneDX, MediaType: "application/vnd.cyclonedx+json", Content: cdx},
			{Scope: "build", Buildpack: bp2ID, Layer: "tools", Name: "sbom/build/acme_procfile/tools/sbom.syft.json", Format: "syft", PredicateType: buildpack.PredicateSyft, MediaType: "application/vnd.syft+json", Content: syft},
		},
		StartedOn:  start,
		FinishedOn: start.Add(90 * time.Second),
	}
	raw, err := b.Provenance()
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.CheckPredicate(intoto.PredicateSLSAProvenanceV1, raw); err != nil {
		t.Fatalf("core refuses the provenance: %v", err)
	}
	var p struct {
		BuildDefinition struct {
			BuildType            string           `json:"buildType"`
			ExternalParameters   map[string]any   `json:"externalParameters"`
			InternalParameters   map[string]any   `json:"internalParameters"`
			ResolvedDependencies []map[string]any `json:"resolvedDependencies"`
		} `json:"buildDefinition"`
		RunDetails struct {
			Builder struct {
				ID      string            `json:"id"`
				Version map[string]string `json:"version"`
			} `json:"builder"`
			Metadata   map[string]any   `json:"metadata"`
			Byproducts []map[string]any `json:"byproducts"`
		} `json:"runDetails"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	bd, rd := p.BuildDefinition, p.RunDetails
	if bd.BuildType != "https://signet.dev/buildpack/v1" {
		t.Errorf("buildType %q", bd.BuildType)
	}
	eq := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %#v\nwant %#v", what, got, want)
		}
	}
	eq("externalParameters", bd.ExternalParameters, map[string]any{
		"tags":        []any{"registry.example/acme/app:1.0", "registry.example/acme/app:latest"},
		"source":      map[string]any{"uri": "git+https://github.com/acme/app.git", "digest": map[string]any{"gitCommit": "63a73f1b0f2a4f6978c19184b0ea33ad3f092913"}},
		"platform":    "kpack",
		"platformApi": "0.13",
	})
	eq("internalParameters", bd.InternalParameters, map[string]any{
		"lifecycleVersion": "0.21.17",
		"buildpacks":       []any{"acme/node@1.2.3", "acme/procfile@5.0.0"},
		"extensions":       []any{"acme/curl@0.1.0"},
	})
	eq("resolvedDependencies", bd.ResolvedDependencies, []map[string]any{
		{"name": "source", "uri": "git+https://github.com/acme/app.git", "digest": map[string]any{"gitCommit": "63a73f1b0f2a4f6978c19184b0ea33ad3f092913"}},
		{"name": "builder", "uri": "oci://registry.example/builder", "digest": map[string]any{"sha256": hex64("b")}},
		{"name": "runImage", "uri": "oci://registry.example/run", "digest": map[string]any{"sha256": hex64("a")}},
		{"name": "buildpack/acme/node", "uri": "urn:cnb:builder:acme/node@1.2.3"},
		{"name": "buildpack/acme/procfile", "uri": "urn:cnb:builder:acme/procfile@5.0.0"},
		{"name": "extension/acme/curl", "uri": "urn:cnb:builder:acme/curl@0.1.0"},
	})
	eq("builder.id", rd.Builder.ID, "https://signet.dev/buildpack/v1/platform/kpack")
	eq("builder.version", rd.Builder.Version, map[string]string{"lifecycle": "0.21.17"})
	eq("metadata", rd.Metadata, map[string]any{"startedOn": "2026-03-04T04:06:07Z", "finishedOn": "2026-03-04T04:07:37Z"})
	eq("byproducts", rd.Byproducts, []map[string]any{
		{"name": "sbom/launch/acme_node/sbom.cdx.json", "digest": map[string]any{"sha256": sum(cdx)}, "mediaType": "application/vnd.cyclonedx+json",
			"annotations": map[string]any{"scope": "launch", "buildpack": bpID, "predicateType": "https://cyclonedx.org/bom"}},
		{"name": "sbom/build/acme_procfile/tools/sbom.syft.json", "digest": map[string]any{"sha256": sum(syft)}, "mediaType": "application/vnd.syft+json",
			"annotations": map[string]any{"scope": "build", "buildpack": bp2ID, "predicateType": "https://syft.dev/bom"}},
	})
}

// TestProvenanceMinimal: what a Platform API 0.7 daemon-less export with
// nothing else known gives is still valid provenance.
func TestProvenanceMinimal(t *testing.T) {
	b := &buildpack.Build{
		Tags:       []string{"registry.example/app:1"},
		RunImage:   buildpack.Image{Reference: "registry.example/run:bionic"},
		BuilderID:  buildpack.DefaultBuilderID(""),
		Buildpacks: []buildpack.Buildpack{{ID: bpID, Version: bpVersion}},
	}
	raw, err := b.Provenance()
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.CheckPredicate(intoto.PredicateSLSAProvenanceV1, raw); err != nil {
		t.Fatal(err)
	}
	var p map[string]map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	deps := p["buildDefinition"]["resolvedDependencies"].([]any)
	if len(deps) != 2 || !reflect.DeepEqual(deps[0], map[string]any{"name": "runImage", "uri": "oci://registry.example/run:bionic"}) {
		t.Errorf("resolvedDependencies %v", deps)
	}
	if p["runDetails"]["builder"].(map[string]any)["id"] != "https://signet.dev/buildpack/v1/platform/unknown" {
		t.Errorf("builder %v", p["runDetails"]["builder"])
	}
	if _, ok := p["runDetails"]["metadata"]; ok {
		t.Errorf("metadata %v with no times known", p["runDetails"]["metadata"])
	}
}
