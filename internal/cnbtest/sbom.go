package cnbtest

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/google/uuid"
)

// SBOM formats the test buildpack can write, by their file extension's
// middle part (<name>.sbom.<format>.json).
const (
	CycloneDX = "cdx"
	SPDX      = "spdx"
	Syft      = "syft"
)

// SBOM scopes.
const (
	ScopeLaunch = "launch"
	ScopeBuild  = "build"
)

// SBOM is one document the test buildpack writes.
type SBOM struct {
	Scope  string // ScopeLaunch or ScopeBuild
	Format string // CycloneDX (CycloneDX 1.5 JSON), SPDX (SPDX 2.3 JSON), Syft (Syft JSON)
	Size   int    // pad the document to at least this many bytes (0: small); for the 1 MB-per-SBOM benchmark
	Broken bool   // malformed JSON (the valid document cut to two thirds), for the hook's error tests
}

// SBOMFile is where one SBOM of Options.SBOMs ended up.
type SBOMFile struct {
	SBOM
	// Written is where the buildpack wrote it: <layers>/<buildpack>/<name>.sbom.<format>.json.
	Written string
	// Path is where the lifecycle copied it:
	// <layers>/sbom/<scope>/<buildpack>/[<layer>/]sbom.<format>.json. For a
	// launch SBOM the image's SBOM layer holds the same path (without the
	// leading /). Empty at Platform API 0.7, where the lifecycle ignores
	// SBOM files.
	Path string
	// Layer is the buildpack layer the SBOM describes; "" for the
	// layer-less launch.sbom.* or build.sbom.* file.
	Layer string
	// Digest is sha256:<hex> of the document's bytes; Data the bytes.
	Digest string
	Data   []byte `json:"-"`
}

// placement decides the file name of the i-th SBOM so that any mix fits the
// Buildpack API's layout, which allows one document per format per place:
// the first launch SBOM of a format describes the launch layer "runtime",
// the second is launch.sbom.<format>.json, further ones get launch layers
// of their own (runtime-2, ...); the first build SBOM of a format is
// build.sbom.<format>.json, further ones describe build-only layers
// (tools-1, ...), which the lifecycle files under sbom/build.
func placement(sboms []SBOM) (names, layers []string, err error) {
	seen := map[string]int{}
	for i, s := range sboms {
		if s.Scope != ScopeLaunch && s.Scope != ScopeBuild {
			return nil, nil, fmt.Errorf("SBOM %d: scope %q is neither %q nor %q", i, s.Scope, ScopeLaunch, ScopeBuild)
		}
		if s.Format != CycloneDX && s.Format != SPDX && s.Format != Syft {
			return nil, nil, fmt.Errorf("SBOM %d: format %q is none of %q, %q, %q", i, s.Format, CycloneDX, SPDX, Syft)
		}
		k := seen[s.Scope+"/"+s.Format]
		seen[s.Scope+"/"+s.Format]++
		var layer, base string
		switch {
		case s.Scope == ScopeLaunch && k == 0:
			layer = "runtime"
		case s.Scope == ScopeLaunch && k == 1:
			base = "launch"
		case s.Scope == ScopeLaunch:
			layer = fmt.Sprintf("runtime-%d", k)
		case k == 0:
			base = "build"
		default:
			layer = fmt.Sprintf("tools-%d", k)
		}
		if layer != "" {
			base = layer
		}
		names = append(names, base+".sbom."+s.Format+".json")
		layers = append(layers, layer)
	}
	return names, layers, nil
}

// lifecyclePath is where the lifecycle's builder copies an SBOM file the
// buildpack wrote (platform spec, "Software Bill of Materials").
func lifecyclePath(layersDir string, s SBOM, layer string) string {
	return filepath.Join(layersDir, "sbom", s.Scope, escapedBuildpackID, layer, "sbom."+s.Format+".json")
}

type cdxComponent struct {
	Type    string `json:"type"`
	Name    string `json:"name"`
	Version string `json:"version"`
	PURL    string `json:"purl"`
}

type spdxPackage struct {
	Name             string `json:"name"`
	SPDXID           string `json:"SPDXID"`
	VersionInfo      string `json:"versionInfo"`
	DownloadLocation string `json:"downloadLocation"`
	FilesAnalyzed    bool   `json:"filesAnalyzed"`
}

type syftArtifact struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Version   string   `json:"version"`
	Type      string   `json:"type"`
	FoundBy   string   `json:"foundBy"`
	Locations []any    `json:"locations"`
	Licenses  []any    `json:"licenses"`
	Language  string   `json:"language"`
	CPEs      []string `json:"cpes"`
	PURL      string   `json:"purl"`
}

type docKey struct {
	SBOM
	name string
}

var documents sync.Map // docKey -> []byte: padding a megabyte takes a few marshals; benchmarks build many times

// document is the SBOM's content: deterministic for its name and options,
// so that a rebuild writes the same bytes and exports the same image.
func document(s SBOM, name string) []byte {
	if b, ok := documents.Load(docKey{s, name}); ok {
		return b.([]byte)
	}
	b := makeDocument(s, name)
	documents.Store(docKey{s, name}, b)
	return b
}

func makeDocument(s SBOM, name string) []byte {
	const created = "1980-01-01T00:00:01Z" // the lifecycle's normalized time
	doc := func(n int) []byte {
		var v any
		switch s.Format {
		case CycloneDX:
			comps := make([]cdxComponent, n)
			for i := range comps {
				comps[i] = cdxComponent{"library", fmt.Sprintf("example.com/%s/pkg-%d", name, i), fmt.Sprintf("1.0.%d", i),
					fmt.Sprintf("pkg:golang/example.com/%s/pkg-%d@1.0.%d", name, i, i)}
			}
			v = map[string]any{
				"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
				"serialNumber": "urn:uuid:" + uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://signet.invalid/cnbtest/"+name)).String(),
				"metadata": map[string]any{
					"timestamp": created,
					"tools":     map[string]any{"components": []any{map[string]any{"type": "application", "name": "signet-cnbtest"}}},
					"component": map[string]any{"type": "application", "name": name},
				},
				"components": comps,
			}
		case SPDX:
			pkgs := make([]spdxPackage, n)
			rels := make([]map[string]string, n)
			for i := range pkgs {
				id := fmt.Sprintf("SPDXRef-Package-%d", i)
				pkgs[i] = spdxPackage{fmt.Sprintf("example.com/%s/pkg-%d", name, i), id, fmt.Sprintf("1.0.%d", i), "NOASSERTION", false}
				rels[i] = map[string]string{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": id}
			}
			v = map[string]any{
				"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": name,
				"documentNamespace": "https://signet.invalid/cnbtest/" + name,
				"creationInfo":      map[string]any{"created": created, "creators": []string{"Tool: signet-cnbtest"}},
				"packages":          pkgs,
				"relationships":     rels,
			}
		case Syft:
			arts := make([]syftArtifact, n)
			for i := range arts {
				arts[i] = syftArtifact{fmt.Sprintf("%016x", i), fmt.Sprintf("example.com/%s/pkg-%d", name, i), fmt.Sprintf("1.0.%d", i),
					"go-module", "cnbtest", []any{}, []any{}, "go", []string{},
					fmt.Sprintf("pkg:golang/example.com/%s/pkg-%d@1.0.%d", name, i, i)}
			}
			v = map[string]any{
				"artifacts": arts, "artifactRelationships": []any{},
				"source":     map[string]any{"id": "", "type": "directory", "target": "/workspace"},
				"distro":     map[string]any{},
				"descriptor": map[string]any{"name": "signet-cnbtest", "version": "1.0.0"},
				"schema": map[string]any{"version": "16.0.0",
					"url": "https://raw.githubusercontent.com/anchore/syft/main/schema/json/schema-16.0.0.json"},
			}
		}
		b, err := json.Marshal(v)
		if err != nil {
			panic(err) // only maps, strings and numbers
		}
		return b
	}
	b := doc(1)
	if s.Size > len(b) {
		// Entries grow slowly with their index, so proportional steps from
		// a first estimate come within a few entries of the size.
		per := len(doc(2)) - len(b)
		n := 1 + (s.Size-len(b))/per
		for range 3 {
			n = max(1, n*s.Size/len(doc(n)))
		}
		for len(doc(n)) < s.Size {
			n++
		}
		for n > 1 && len(doc(n-1)) >= s.Size {
			n--
		}
		b = doc(n)
	}
	if s.Broken {
		b = b[:len(b)*2/3]
	}
	return b
}
