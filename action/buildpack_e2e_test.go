package action_test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/action/acttest"
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/oci/ocitest"
	"github.com/signet-dev/signet/core/pipeline"
	"github.com/signet-dev/signet/core/verify"
	"github.com/signet-dev/signet/internal/cnbtest"
	"github.com/signet-dev/signet/internal/toolcache"
)

// TestBuildpackWorkflowWithAct runs examples/buildpack/github-pack.yml with
// act, unmodified, as TestExampleWorkflowsWithAct runs the others: pack
// build, the action in mode buildpack, its verify mode and cosign v3 on the
// result, against the real server and a loopback registry.
//
// pack is not here (it needs a Docker daemon and pulls its builder), so a
// stand-in `pack` takes its place in the workflow's pack build step, and the
// build itself is the real lifecycle (cnbtest's creator, the program pack
// runs in its build container), run beforehand on the commit the workflow
// builds. The stand-in checks the command line (the image tag, --publish,
// the builder) and leaves what pack leaves on the runner: report.toml in
// --report-output-dir and the SBOMs in --sbom-output-dir. So the workflow's
// flags and the action's layers input are tested to agree, which pointing
// the layers input at the lifecycle's directory would not test.
func TestBuildpackWorkflowWithAct(t *testing.T) {
	start := time.Now()
	if _, err := acttest.Binary(); err != nil {
		t.Fatal(err)
	}
	// Built before any identity token is minted: a cold build takes minutes.
	cosign, err := toolcache.Cosign.Binary()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("act %s and cosign %s ready in %v", acttest.Version, toolcache.Cosign.Version, time.Since(start).Round(time.Millisecond))
	s := startServer(t)
	reg := ocitest.Start(t)
	signetBin, signetEnv := signetForAction(t)

	const wfPath = ".github/workflows/github-pack.yml"
	repoDir, head := actRepo(t, s, map[string]string{
		"app.txt": "the widget app\n",
		wfPath:    readExample(t, "buildpack", "github-pack.yml"),
	})
	// The image the workflow's pack build names: $IMAGE:$GITHUB_SHA.
	b := cnbtest.Run(t, cnbtest.Options{Registry: reg.Host, Repository: repo, Tag: head,
		SBOMs: []cnbtest.SBOM{{Scope: cnbtest.ScopeLaunch, Format: cnbtest.CycloneDX}, {Scope: cnbtest.ScopeBuild, Format: cnbtest.SPDX}}})
	t.Logf("lifecycle build of %s in %v", b.Ref(), b.Wall)

	standins := writeStandins(t)
	writePackStandins(t, standins, cosign)
	env := map[string]string{
		"ACTIONS_ID_TOKEN_REQUEST_URL":   s.tokenURL(url.Values{"workflow": {wfPath}, "sha": {head}, "run_attempt": {"1"}}),
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN": s.RequestToken,
		"GITHUB_RUN_ID":                  runID,
		"GITHUB_RUN_ATTEMPT":             "1",
		"SIGNET_BINARY":                  signetBin,
		"SIGNET_E2E_PACK_IMAGE":          b.Image,
		"SIGNET_E2E_PACK_BUILDER":        b.BuilderImage,
		"SIGNET_E2E_CNB_REPORT":          b.ReportPath,
		"SIGNET_E2E_CNB_LAYERS":          b.LayersDir,
		// The loopback registry speaks plain HTTP; cosign reads its flags
		// from COSIGN_* variables too.
		"COSIGN_ALLOW_HTTP_REGISTRY": "true",
	}
	for k, v := range signetEnv {
		env[k] = v
	}
	vars := map[string]string{"SIGNET_SERVER": s.URL, "SIGNET_OIDC_ISSUER": s.Issuer, "REGISTRY": reg.Host, "CNB_BUILDER": b.BuilderImage}
	actions := map[string]string{
		"signet-dev/signet@v1":             releasedAction(t),
		"buildpacks/github-actions@v5.9.6": filepath.Join(standins, "github-actions"),
		"docker/login-action@v3":           filepath.Join(standins, "login-action"),
		"sigstore/cosign-installer@v3":     filepath.Join(standins, "cosign-installer"),
	}
	repoJSON := `"repository":{"id":` + repoID + `,"full_name":"` + repo + `","owner":{"id":` + ownerID + `,"login":"acme"}}`
	pushEvent := writeFile(t, filepath.Join(t.TempDir(), "push.json"), `{"ref":"`+ref+`","after":"`+head+`",`+repoJSON+`}`)
	run := acttest.Run{Repo: repoDir, Event: "push", EventPath: pushEvent, Workflow: wfPath, Env: env, Vars: vars, Actions: actions, Home: t.TempDir()}
	start = time.Now()
	out, err := run.Exec(context.Background())
	if err != nil {
		t.Fatalf("buildpack workflow: %v\n%s", err, out)
	}
	t.Logf("buildpack workflow ran in %v", time.Since(start).Round(time.Millisecond))
	// The stand-in ran, and cosign verified each type in the workflow.
	for _, want := range []string{"pack stand-in: published " + b.Image, "verified cyclonedx attestation of " + b.Ref(), "verified spdxjson attestation of " + b.Ref(), "verified slsaprovenance1 attestation of " + b.Ref()} {
		if !strings.Contains(out, want) {
			t.Errorf("workflow output lacks %q:\n%s", want, out)
		}
	}

	// What the registry holds verifies as signed by this workflow on main,
	// and not as anyone else's.
	wfIdentity := "https://github.com/" + repo + "/" + wfPath + "@" + ref
	other := "https://github.com/" + repo + "/.github/workflows/other.yml@" + ref
	for _, w := range []pipeline.Want{{Kind: intoto.KindSignature}, {PredicateType: intoto.PredicateCycloneDX}, {PredicateType: intoto.PredicateSPDX}, {PredicateType: intoto.PredicateSLSAProvenanceV1}} {
		if vr := verifyAttached(t, s, b.Ref(), w, wfIdentity); !vr.Verified {
			_, err := vr.FirstFailure()
			t.Errorf("%+v: %v", w, err)
		}
		vr := verifyAttached(t, s, b.Ref(), w, other)
		if _, err := vr.FirstFailure(); vr.Verified || verify.CheckOf(err) != verify.CheckIdentity {
			t.Errorf("%+v for another workflow: verified %v, %v", w, vr.Verified, err)
		}
	}
	provs := verifiedStatements(verifyAttached(t, s, b.Ref(), pipeline.Want{PredicateType: intoto.PredicateSLSAProvenanceV1}, wfIdentity))
	if len(provs) != 1 {
		t.Fatalf("%d provenance statements", len(provs))
	}
	checkBuildpackProvenance(t, provs[0], b, wfIdentity, head, "")

	// cosign too refuses another workflow's identity.
	cmd := exec.Command(cosign, "verify-attestation", b.Ref(), "--type", "cyclonedx", "--allow-http-registry", "--trusted-root", s.RootPath,
		"--certificate-identity", other, "--certificate-oidc-issuer", s.Issuer)
	if o, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(o), `expected SAN value "`+other+`", got "`+wfIdentity+`"`) {
		t.Errorf("cosign for another workflow: %v\n%s", err, o)
	}
}

// writePackStandins adds, to the stand-ins of writeStandins, the remote
// actions examples/buildpack/github-pack.yml uses: setup-pack (in
// buildpacks/github-actions) putting the stand-in pack on PATH, a
// docker/login-action that does nothing (the loopback registry has no
// auth), and a cosign-installer putting the real cosign on PATH.
func writePackStandins(t *testing.T, dir, cosign string) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "github-actions", "setup-pack", "action.yml"), `name: setup-pack stand-in
description: puts the stand-in pack on PATH
runs:
  using: composite
  steps:
    - shell: bash
      run: echo "${{ github.action_path }}/bin" >> "$GITHUB_PATH"
`)
	writeExecutable(t, filepath.Join(dir, "github-actions", "setup-pack", "bin", "pack"), packStandin)
	writeFile(t, filepath.Join(dir, "login-action", "action.yml"), `name: login-action stand-in
description: the loopback registry needs no login
inputs:
  registry: {required: false}
  username: {required: false}
  password: {required: false}
runs:
  using: composite
  steps:
    - shell: bash
      run: echo "logged in to ${{ inputs.registry }}"
`)
	writeFile(t, filepath.Join(dir, "cosign-installer", "action.yml"), `name: cosign-installer stand-in
description: puts the cosign the tests build on PATH
runs:
  using: composite
  steps:
    - shell: bash
      run: echo "${{ github.action_path }}/bin" >> "$GITHUB_PATH"
`)
	writeExecutable(t, filepath.Join(dir, "cosign-installer", "bin", "cosign"), "#!/bin/sh\nexec "+shellQuoteTest(cosign)+" \"$@\"\n")
}

// packStandin is `pack build` as far as the workflow sees it: the build was
// made beforehand (SIGNET_E2E_*); it checks the command line and copies out
// report.toml and <layers>/sbom as pack's --report-output-dir and
// --sbom-output-dir do.
const packStandin = `#!/usr/bin/env bash
set -euo pipefail
fail() { echo "pack stand-in: $*" >&2; exit 1; }
[ "${1:-}" = build ] || fail "only pack build is stood in for, got: $*"
image=${2:?pack build IMAGE}
shift 2
publish= builder= report= sbom=
while [ $# -gt 0 ]; do
  case "$1" in
    --publish) publish=1 ;;
    --builder|-B) builder=$2; shift ;;
    --report-output-dir) report=$2; shift ;;
    --sbom-output-dir) sbom=$2; shift ;;
    *) fail "unexpected argument $1" ;;
  esac
  shift
done
[ "$image" = "$SIGNET_E2E_PACK_IMAGE" ] || fail "image $image, but the lifecycle exported $SIGNET_E2E_PACK_IMAGE"
[ -n "$publish" ] || fail "without --publish pack exports to the Docker daemon"
[ "$builder" = "$SIGNET_E2E_PACK_BUILDER" ] || fail "builder $builder, but the lifecycle ran $SIGNET_E2E_PACK_BUILDER"
if [ -n "$report" ]; then mkdir -p "$report" && cp "$SIGNET_E2E_CNB_REPORT" "$report/report.toml"; fi
if [ -n "$sbom" ]; then mkdir -p "$sbom" && cp -R "$SIGNET_E2E_CNB_LAYERS/sbom/." "$sbom/"; fi
echo "pack stand-in: published $image"
`

func writeExecutable(t *testing.T, path, content string) {
	t.Helper()
	writeFile(t, path, content)
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

// shellQuoteTest quotes s for sh.
func shellQuoteTest(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
