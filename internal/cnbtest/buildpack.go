package cnbtest

import (
	"fmt"
	"runtime"
	"strings"
)

// The test buildpack.
const (
	BuildpackID      = "signet-dev/cnbtest"
	BuildpackVersion = "1.0.0"
	// BuildpackAPI is the newest Buildpack API lifecycle v0.21.17 supports;
	// SBOM files (sbom-formats) need 0.7 or later.
	BuildpackAPI      = "0.12"
	buildpackHomepage = "https://github.com/signet-dev/signet"
	// escapedBuildpackID is the buildpack's directory name under <layers>
	// and <layers>/sbom/<scope>: the lifecycle replaces / by _.
	escapedBuildpackID = "signet-dev_cnbtest"
)

// buildpackFiles are the buildpack's files relative to its directory
// (buildpacks/<id>/<version>/), and where each SBOM ends up. bin/build makes
// the launch layer "runtime" (with a file, so the image has a buildpack
// layer), a default process, and copies each SBOM document from sbom-data/
// to its place in the buildpack's layers directory; the documents are
// generated here so bin/build stays a POSIX sh script of cp and cat.
func buildpackFiles(sboms []SBOM, layersDir string, lifecycleCopies bool) (map[string][]byte, []SBOMFile, error) {
	names, layers, err := placement(sboms)
	if err != nil {
		return nil, nil, err
	}
	files := map[string][]byte{
		"buildpack.toml": fmt.Appendf(nil, `api = %q

[buildpack]
id = %q
version = %q
name = "signet cnbtest"
homepage = %q
sbom-formats = ["application/vnd.cyclonedx+json", "application/spdx+json", "application/vnd.syft+json"]

[[targets]]
os = "linux"
arch = %q
`, BuildpackAPI, BuildpackID, BuildpackVersion, buildpackHomepage, runtime.GOARCH),
		// Always detects; no build plan.
		"bin/detect": []byte("#!/bin/sh\nexit 0\n"),
	}
	var script strings.Builder
	script.WriteString(`#!/bin/sh
# signet cnbtest buildpack: bin/build <layers> <platform> <plan>
set -eu
layers="$CNB_LAYERS_DIR"
data="$CNB_BUILDPACK_DIR/sbom-data"
# A rebuild gets layer metadata and layer SBOMs restored; start clean so
# only what this build writes is exported.
rm -rf "$layers"/runtime* "$layers"/tools-*
rm -f "$layers"/*.sbom.*.json "$layers"/*.toml
mkdir -p "$layers/runtime"
printf 'runtime layer of the signet cnbtest buildpack\n' > "$layers/runtime/README"
cat > "$layers/runtime.toml" <<'EOF'
[types]
launch = true

[metadata]
version = "1.0.0"
EOF
cat > "$layers/launch.toml" <<'EOF'
[[processes]]
type = "web"
command = ["/bin/sh"]
args = ["-c", "cat README"]
default = true
EOF
`)
	made := map[string]bool{"runtime": true}
	var out []SBOMFile
	for i, s := range sboms {
		layer := layers[i]
		if layer != "" && !made[layer] {
			made[layer] = true
			launch := s.Scope == ScopeLaunch
			fmt.Fprintf(&script, "mkdir -p \"$layers/%[1]s\"\nprintf '%[1]s\\n' > \"$layers/%[1]s/README\"\n"+
				"printf '[types]\\nlaunch = %[2]t\\nbuild = %[3]t\\n' > \"$layers/%[1]s.toml\"\n", layer, launch, !launch)
		}
		data := document(s, fmt.Sprintf("cnbtest-%s-%s-%d", s.Scope, s.Format, i))
		src := fmt.Sprintf("sbom-data/%d.json", i)
		files[src] = data
		fmt.Fprintf(&script, "cp \"$data/%d.json\" \"$layers/%s\"\n", i, names[i])
		f := SBOMFile{SBOM: s, Layer: layer, Data: data, Digest: sha256Digest(data),
			Written: layersDir + "/" + escapedBuildpackID + "/" + names[i]}
		if lifecycleCopies {
			f.Path = lifecyclePath(layersDir, s, layer)
		}
		out = append(out, f)
	}
	files["bin/build"] = []byte(script.String())
	return files, out, nil
}
