package action_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"debug/elf"
	"debug/macho"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signet-dev/signet/action"
	"github.com/signet-dev/signet/action/acttest"
	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/oci/ocitest"
	"github.com/signet-dev/signet/core/verify"
	"github.com/signet-dev/signet/server/servertest"
	"gopkg.in/yaml.v3"
)

// The release the test makes: this repository, a final release (so the
// major tag moves too).
const (
	releaseRepo    = "signet-dev/signet"
	releaseVersion = "v0.0.1"
	releaseMajor   = "v0"
	releaseTag     = "refs/tags/" + releaseVersion
	releaseWF      = ".github/workflows/release.yml"
	// The actions release.yml pins, mapped to local stand-ins.
	uploadArtifact   = "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02"
	downloadArtifact = "actions/download-artifact@d3f86a106a0bac45b974a628896c90dbdf5c8093"
)

var releasePlatforms = [][2]string{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "amd64"}, {"darwin", "arm64"}}

// TestReleaseWorkflowWithAct runs .github/workflows/release.yml, unmodified,
// with act for the push of tag v0.0.1 in a throwaway clone of this checkout,
// against a real signet server whose development issuer plays GitHub's
// id-token endpoint. The workflow publishes where a self-hosted runner
// would (vars.SIGNET_RELEASE_DIR, a mirror directory), and pushes its
// release branch and tags to origin, whose push URL is a local bare
// repository standing in for GitHub. Then: every asset is there and
// verifies with the real signet CLI for the workflow's identity only, the
// tags name a commit that pins exactly these binaries, and
// install-signet.sh at that commit installs the released binary.
func TestReleaseWorkflowWithAct(t *testing.T) {
	start := time.Now()
	if _, err := acttest.Binary(); err != nil {
		t.Fatal(err)
	}
	t.Logf("act %s ready in %v", acttest.Version, time.Since(start).Round(time.Millisecond))
	s := startServer(t)
	signet := servertest.Binary(t)
	src, head, github := releaseCheckout(t)

	mirror := t.TempDir()
	reg := ocitest.Start(t)
	imageRepo := reg.Ref("signet/server")
	env := map[string]string{
		"ACTIONS_ID_TOKEN_REQUEST_URL": s.tokenURL(url.Values{"repository": {releaseRepo}, "ref": {releaseTag}, "sha": {head},
			"workflow": {releaseWF}, "run_attempt": {"1"}}),
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN": s.RequestToken,
		"GITHUB_RUN_ID":                  runID,
		"GITHUB_RUN_ATTEMPT":             "1",
		"SIGNET_E2E_ARTIFACTS":           t.TempDir(),
		// act's HOME is its own: give the steps the host's Go caches and
		// toolchain setting (the workflow then asks for go.mod's exact one).
		"GOTOOLCHAIN": "local",
	}
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		out, _ := exec.Command("go", "env", k).Output()
		env[k] = strings.TrimSpace(string(out))
	}
	standins := writeStandins(t)
	run := acttest.Run{
		Repo: src, Event: "push", Workflow: releaseWF, Env: env, Home: t.TempDir(),
		EventPath: writeFile(t, filepath.Join(t.TempDir(), "push.json"), `{"ref":"`+releaseTag+`","after":"`+head+`","deleted":false,`+
			`"repository":{"id":`+repoID+`,"full_name":"`+releaseRepo+`","owner":{"id":`+ownerID+`,"login":"signet-dev"}}}`),
		Vars: map[string]string{"SIGNET_SERVER": s.URL, "SIGNET_OIDC_ISSUER": s.Issuer, "SIGNET_RELEASE_DIR": mirror, "SIGNET_IMAGE_REPOSITORY": imageRepo},
		Actions: map[string]string{
			uploadArtifact:   filepath.Join(standins, "upload-artifact"),
			downloadArtifact: filepath.Join(standins, "download-artifact"),
		},
		// Four cross-compilations of signet, cold on a new machine.
		Timeout: 40 * time.Minute,
	}
	start = time.Now()
	out, err := run.Exec(context.Background())
	if err != nil {
		t.Fatalf("release workflow: %v\n%s", err, out)
	}
	t.Logf("release workflow ran in %v", time.Since(start).Round(time.Second))

	// The published release: binaries, SHA256SUMS, a signature of each,
	// one provenance; nothing else.
	published := filepath.Join(mirror, releaseVersion)
	var binaries []string
	for _, p := range releasePlatforms {
		binaries = append(binaries, "signet-"+releaseVersion+"-"+p[0]+"-"+p[1])
	}
	slices.Sort(binaries) // SHA256SUMS's order
	subjects := append(slices.Clone(binaries), "SHA256SUMS")
	provName := "signet-" + releaseVersion + ".slsaprovenance1.sigstore.json"
	want := []string{provName}
	for _, name := range subjects {
		want = append(want, name, name+".sigstore.json")
	}
	slices.Sort(want)
	var got []string
	entries, _ := os.ReadDir(published)
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v\n%s", got, want, out)
	}

	// SHA256SUMS is sha256sum's format over exactly the binaries.
	sums, _ := os.ReadFile(filepath.Join(published, "SHA256SUMS"))
	var wantSums string
	digests := map[string][]byte{}
	for _, name := range subjects {
		raw, _ := os.ReadFile(filepath.Join(published, name))
		sum := sha256.Sum256(raw)
		digests[name] = sum[:]
		if name != "SHA256SUMS" {
			wantSums += hex.EncodeToString(sum[:]) + "  " + name + "\n"
		}
	}
	if string(sums) != wantSums {
		t.Errorf("SHA256SUMS:\n%s\nwant:\n%s", sums, wantSums)
	}
	checkPlatforms(t, published)

	// Each bundle verifies with the signet CLI, against the server's
	// trusted root, for the release workflow at the tag, and for no other.
	wfIdentity := "https://github.com/" + releaseRepo + "/" + releaseWF + "@" + releaseTag
	verifyCLI := func(args ...string) (string, error) {
		out, err := exec.Command(signet, args...).CombinedOutput()
		return string(out), err
	}
	policy := func(identity string) []string {
		return []string{"--trusted-root", s.RootPath, "--certificate-identity", identity, "--certificate-oidc-issuer", s.Issuer}
	}
	for _, name := range subjects {
		file := filepath.Join(published, name)
		if out, err := verifyCLI(append([]string{"verify-blob", file, "--bundle", file + ".sigstore.json"}, policy(wfIdentity)...)...); err != nil {
			t.Errorf("verify-blob %s: %v\n%s", name, err, out)
		}
		if out, err := verifyCLI(append([]string{"verify-blob-attestation", file, "--bundle", filepath.Join(published, provName), "--type", "slsaprovenance1"}, policy(wfIdentity)...)...); err != nil {
			t.Errorf("verify-blob-attestation %s: %v\n%s", name, err, out)
		}
	}
	branchIdentity := "https://github.com/" + releaseRepo + "/" + releaseWF + "@refs/heads/main"
	first := filepath.Join(published, binaries[0])
	if out, err := verifyCLI(append([]string{"verify-blob", first, "--bundle", first + ".sigstore.json"}, policy(branchIdentity)...)...); err == nil || !strings.Contains(out, "identity") {
		t.Errorf("verify-blob for the workflow on a branch: err %v\n%s", err, out)
	}
	swapped := filepath.Join(published, binaries[1])
	if out, err := verifyCLI(append([]string{"verify-blob", swapped, "--bundle", first + ".sigstore.json"}, policy(wfIdentity)...)...); err == nil {
		t.Errorf("verify-blob of %s with the bundle of %s succeeded:\n%s", binaries[1], binaries[0], out)
	}

	// The provenance: one statement, the five files as subjects, this run
	// of the release workflow at the tag's commit.
	prov, err := bundle.ReadFile(filepath.Join(published, provName))
	if err != nil {
		t.Fatal(err)
	}
	res, err := verify.New(s.Root).VerifyAttestation(context.Background(), prov, verify.Digest{Algorithm: crypto.SHA256, Value: digests["SHA256SUMS"]},
		verify.Policy{Identity: verify.Exact(wfIdentity), Issuer: verify.Exact(s.Issuer)}, intoto.PredicateSLSAProvenanceV1)
	if err != nil {
		t.Fatalf("provenance: %v", err)
	}
	var stmtSubjects []string
	for _, sub := range res.Statement.GetSubject() {
		if d := sub.GetDigest()["sha256"]; d != hex.EncodeToString(digests[sub.GetName()]) {
			t.Errorf("provenance subject %s has sha256 %s, the published file %x", sub.GetName(), d, digests[sub.GetName()])
		}
		stmtSubjects = append(stmtSubjects, sub.GetName())
	}
	slices.Sort(stmtSubjects)
	if !slices.Equal(stmtSubjects, slices.Sorted(slices.Values(subjects))) {
		t.Errorf("provenance subjects %v, want %v", stmtSubjects, subjects)
	}
	js, _ := json.Marshal(res.Statement.GetPredicate().AsMap())
	for _, want := range []string{`"buildType":"` + action.BuildType + `"`, `"path":"` + releaseWF + `"`, `"ref":"` + releaseTag + `"`, `"gitCommit":"` + head + `"`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("provenance lacks %s:\n%s", want, js)
		}
	}

	// The host's binary is the release, stamped with its version, and
	// rebuilt from the tagged source elsewhere it has the same bytes.
	host := filepath.Join(published, "signet-"+releaseVersion+"-"+runtime.GOOS+"-"+runtime.GOARCH)
	if out, err := exec.Command(host, "version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "signet "+releaseVersion+" (") {
		t.Errorf("%s version: %v\n%s", host, err, out)
	}
	rebuilt := rebuildHost(t, src, head)
	if a, b := fileDigest(t, host), fileDigest(t, rebuilt); a != b {
		t.Errorf("the released %s (sha256 %s) differs from a rebuild of the tag (sha256 %s)", filepath.Base(host), a, b)
	}

	// The server image: pushed under the version, signed and attested by
	// the release workflow, and its linux binaries are the released ones.
	imageRef := imageRepo + ":" + releaseVersion
	if out, err := verifyCLI(append([]string{"verify", imageRef}, policy(wfIdentity)...)...); err != nil {
		t.Errorf("verify %s: %v\n%s", imageRef, err, out)
	}
	if out, err := verifyCLI(append([]string{"verify", imageRef}, policy(branchIdentity)...)...); err == nil {
		t.Errorf("verify %s for the workflow on a branch succeeded:\n%s", imageRef, out)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		if a, b := imageBinary(t, imageRef, arch), digests["signet-"+releaseVersion+"-linux-"+arch]; !bytes.Equal(a, b) {
			t.Errorf("the image's linux/%s /usr/bin/signet (sha256 %x) is not the released binary (sha256 %x)", arch, a, b)
		}
	}

	// GitHub's side: the tag and the major tag moved to one commit on the
	// release branch, the tag's commit plus the pin and nothing else.
	gh := func(args ...string) string { return gitOut(t, github, args...) }
	release := gh("rev-parse", releaseTag+"^{commit}")
	if release == head {
		t.Fatalf("tag %s still names the source commit", releaseVersion)
	}
	for _, ref := range []string{"refs/tags/" + releaseMajor + "^{commit}", "refs/heads/release/" + releaseVersion} {
		if c := gh("rev-parse", ref); c != release {
			t.Errorf("%s is %s, want the release commit %s", ref, c, release)
		}
	}
	if parent := gh("rev-parse", release+"^"); parent != head {
		t.Errorf("the release commit's parent is %s, want the tagged source %s", parent, head)
	}
	if changed := gh("diff", "--name-only", head, release); changed != "action/RELEASE\naction/release.sha256" {
		t.Errorf("the release commit changes %q, want only the pin", changed)
	}
	if pinned := gh("show", release+":action/release.sha256") + "\n"; pinned != string(sums) {
		t.Errorf("action/release.sha256:\n%s\nwant SHA256SUMS:\n%s", pinned, sums)
	}
	if pin := gh("show", release+":action/RELEASE"); !strings.HasSuffix(pin, "\n"+releaseVersion) {
		t.Errorf("action/RELEASE:\n%s", pin)
	}

	// The action at the new tag installs exactly the released binary from
	// the mirror, without building.
	actionAt := t.TempDir()
	archive := exec.Command("git", "--git-dir", github, "archive", release, "action.yml", "action")
	untar := exec.Command("tar", "-x", "-C", actionAt)
	untar.Stdin, _ = archive.StdoutPipe()
	if err := untar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive: %v", err)
	}
	if err := untar.Wait(); err != nil {
		t.Fatalf("tar: %v", err)
	}
	e := &installEnv{t: t, action: filepath.Join(actionAt, "action"), temp: t.TempDir(), tools: t.TempDir(), output: filepath.Join(t.TempDir(), "out")}
	installed, log, err := e.run("SIGNET_RELEASE_URL=file://" + mirror)
	if err != nil || !strings.Contains(log, "release "+releaseVersion+", sha256 verified") || !strings.HasPrefix(installed, e.tools) {
		t.Fatalf("install-signet.sh at %s: path %q err %v\n%s", releaseVersion, installed, err, log)
	}
	if a, b := fileDigest(t, installed), fileDigest(t, host); a != b {
		t.Errorf("installed %s (sha256 %s), want the released %s (sha256 %s)", installed, a, filepath.Base(host), b)
	}
	if out, err := exec.Command(installed, "version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "signet "+releaseVersion+" (") {
		t.Errorf("installed signet version: %v\n%s", err, out)
	}

	// A dry run (workflow_dispatch on main) builds and signs under the
	// version given, keeps the files as the run's artifact, and publishes
	// nothing: no new mirror directory, no ref moved.
	const dryVersion = "v0.0.2-dryrun"
	refs := gh("for-each-ref")
	dry := run
	dry.Event = "workflow_dispatch"
	dry.EventPath = writeFile(t, filepath.Join(t.TempDir(), "dispatch.json"), `{"ref":"refs/heads/main","inputs":{"version":"`+dryVersion+`"},`+
		`"repository":{"id":`+repoID+`,"full_name":"`+releaseRepo+`","owner":{"id":`+ownerID+`,"login":"signet-dev"}}}`)
	dry.Env = maps.Clone(env)
	dry.Env["ACTIONS_ID_TOKEN_REQUEST_URL"] = s.tokenURL(url.Values{"repository": {releaseRepo}, "ref": {"refs/heads/main"}, "sha": {head},
		"workflow": {releaseWF}, "run_attempt": {"1"}, "event": {"workflow_dispatch"}})
	start = time.Now()
	out, err = dry.Exec(context.Background())
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	t.Logf("dry run in %v", time.Since(start).Round(time.Second))
	dryBin := filepath.Join(env["SIGNET_E2E_ARTIFACTS"], "release", "signet-"+dryVersion+"-"+runtime.GOOS+"-"+runtime.GOARCH)
	dryPolicy := policy("https://github.com/" + releaseRepo + "/" + releaseWF + "@refs/heads/main")
	if out, err := verifyCLI(append([]string{"verify-blob", dryBin, "--bundle", dryBin + ".sigstore.json"}, dryPolicy...)...); err != nil {
		t.Errorf("dry run's signature: %v\n%s", err, out)
	}
	if out, err := verifyCLI(append([]string{"verify-blob", dryBin, "--bundle", dryBin + ".sigstore.json"}, policy(wfIdentity)...)...); err == nil {
		t.Errorf("a dry run's binary verifies as the release:\n%s", out)
	}
	if entries, _ := os.ReadDir(mirror); len(entries) != 1 {
		t.Errorf("the dry run published: the mirror holds %v", entries)
	}
	if after := gh("for-each-ref"); after != refs {
		t.Errorf("the dry run moved refs:\n%s\nwas:\n%s", after, refs)
	}
}

// releaseCheckout makes the throwaway repository the release runs in: this
// checkout's files (tracked and untracked, not ignored, modes kept), one
// commit on main tagged v0.0.1, origin https://github.com/signet-dev/signet
// (act takes github.repository from it) whose push URL is a local bare
// repository playing GitHub, which already holds main and the tag. It
// returns the repository, the tagged commit and the bare repository.
func releaseCheckout(t *testing.T) (dir, head, github string) {
	t.Helper()
	root := moduleRoot(t)
	files := strings.Split(strings.TrimRight(gitOut(t, root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"), "\x00"), "\x00")
	dir = t.TempDir()
	for _, name := range files {
		fi, err := os.Stat(filepath.Join(root, name))
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		}
		if err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dest, raw, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	github = filepath.Join(t.TempDir(), "signet.git")
	gitOut(t, "", "init", "-q", "--bare", github)
	gitOut(t, dir, "init", "-q", "-b", "main")
	gitOut(t, dir, "add", ".")
	gitOut(t, dir, "commit", "-q", "-m", "signet "+releaseVersion)
	gitOut(t, dir, "tag", "-a", releaseVersion, "-m", "signet "+releaseVersion)
	gitOut(t, dir, "remote", "add", "origin", "https://github.com/"+releaseRepo+".git")
	gitOut(t, dir, "config", "remote.origin.pushurl", github)
	gitOut(t, dir, "push", "-q", "origin", "main", releaseTag)
	return dir, gitOut(t, dir, "rev-parse", "HEAD"), github
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=ci", "GIT_AUTHOR_EMAIL=ci@example.com", "GIT_COMMITTER_NAME=ci", "GIT_COMMITTER_EMAIL=ci@example.com")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}

// checkPlatforms opens each binary as the executable format of its platform.
func checkPlatforms(t *testing.T, dir string) {
	t.Helper()
	for _, p := range releasePlatforms {
		path := filepath.Join(dir, "signet-"+releaseVersion+"-"+p[0]+"-"+p[1])
		var arch string
		switch p[0] {
		case "linux":
			f, err := elf.Open(path)
			if err != nil {
				t.Errorf("%s: %v", path, err)
				continue
			}
			arch = map[elf.Machine]string{elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64"}[f.Machine]
			f.Close()
		case "darwin":
			f, err := macho.Open(path)
			if err != nil {
				t.Errorf("%s: %v", path, err)
				continue
			}
			arch = map[macho.Cpu]string{macho.CpuAmd64: "amd64", macho.CpuArm64: "arm64"}[f.Cpu]
			f.Close()
		}
		if arch != p[1] {
			t.Errorf("%s is a binary for %q, want %s", path, arch, p[1])
		}
	}
}

// rebuildHost builds the host's binary of the release from the tagged
// commit, exported to a directory of its own, with the source's own
// release program and the commit's time.
func rebuildHost(t *testing.T, src, commit string) string {
	t.Helper()
	dir := t.TempDir()
	archive := exec.Command("git", "archive", commit)
	archive.Dir = src
	untar := exec.Command("tar", "-x", "-C", dir)
	untar.Stdin, _ = archive.StdoutPipe()
	if err := untar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive: %v", err)
	}
	if err := untar.Wait(); err != nil {
		t.Fatalf("tar: %v", err)
	}
	out := filepath.Join(t.TempDir(), "dist")
	cmd := exec.Command("go", "run", "./internal/release", "build", "-version", releaseVersion, "-out", out, "-platforms", runtime.GOOS+"/"+runtime.GOARCH)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+gitOut(t, src, "log", "-1", "--format=%ct", commit), "GOTOOLCHAIN=local")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rebuild: %v\n%s", err, b)
	}
	return filepath.Join(out, "signet-"+releaseVersion+"-"+runtime.GOOS+"-"+runtime.GOARCH)
}

func fileDigest(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// TestReleaseWorkflowShape checks what act cannot: the triggers, that each
// job has only the permissions it needs (signing without contents: write,
// publishing without an identity token), that every action from elsewhere
// is pinned by commit, and that the action's own steps pass only inputs
// action.yml declares.
func TestReleaseWorkflowShape(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(moduleRoot(t), releaseWF))
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		On struct {
			Push             struct{ Tags, Branches []string } `yaml:"push"`
			WorkflowDispatch *struct{}                         `yaml:"workflow_dispatch"`
		} `yaml:"on"`
		Permissions map[string]string `yaml:"permissions"`
		Jobs        map[string]struct {
			If          string            `yaml:"if"`
			Needs       string            `yaml:"needs"`
			Permissions map[string]string `yaml:"permissions"`
			Steps       []struct {
				Uses string            `yaml:"uses"`
				With map[string]string `yaml:"with"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(raw, &wf); err != nil {
		t.Fatalf("%s: %v", releaseWF, err)
	}
	if !slices.Equal(wf.On.Push.Tags, []string{"v*.*.*"}) || len(wf.On.Push.Branches) != 0 || wf.On.WorkflowDispatch == nil {
		t.Errorf("triggers: %+v", wf.On)
	}
	if len(wf.Permissions) != 0 {
		t.Errorf("workflow-level permissions %v: give each job its own", wf.Permissions)
	}
	wantPerms := map[string]map[string]string{
		"build":   {"contents": "read", "id-token": "write"},
		"publish": {"contents": "write"},
		"image":   {"contents": "read", "id-token": "write", "packages": "write"},
	}
	if len(wf.Jobs) != len(wantPerms) {
		t.Errorf("jobs %v, want %v", slices.Sorted(maps.Keys(wf.Jobs)), slices.Sorted(maps.Keys(wantPerms)))
	}
	a := readActionYML(t)
	pinned := regexp.MustCompile(`^[a-z0-9-]+/[a-z0-9-]+@[0-9a-f]{40}$`)
	for name, job := range wf.Jobs {
		if !maps.Equal(job.Permissions, wantPerms[name]) {
			t.Errorf("job %s permissions %v, want %v", name, job.Permissions, wantPerms[name])
		}
		for _, st := range job.Steps {
			switch {
			case st.Uses == "":
			case st.Uses == "./":
				for k := range st.With {
					if _, ok := a.Inputs[k]; !ok {
						t.Errorf("job %s: input %q of the action is not in action.yml", name, k)
					}
				}
			case !pinned.MatchString(st.Uses):
				t.Errorf("job %s uses %s: pin actions by commit SHA", name, st.Uses)
			}
		}
	}
	if p := wf.Jobs["publish"]; p.Needs != "build" || p.If != "github.event_name == 'push'" {
		t.Errorf("publish job: needs %q if %q; it must follow build, and dry runs (workflow_dispatch) must not publish", p.Needs, p.If)
	}
	if im := wf.Jobs["image"]; im.Needs != "publish" || !strings.HasPrefix(im.If, "github.event_name == 'push' && ") {
		t.Errorf("image job: needs %q if %q; it must follow publish, and dry runs must not push", im.Needs, im.If)
	}
	for _, want := range []string{uploadArtifact, downloadArtifact} {
		if !strings.Contains(string(raw), "uses: "+want+" ") {
			t.Errorf("%s does not use %s, which the act test maps to a stand-in", releaseWF, want)
		}
	}
}

// imageBinary is the SHA-256 of /usr/bin/signet in the linux/arch image of
// the index at ref.
func imageBinary(t *testing.T, ref, arch string) []byte {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: arch}))
	if err != nil {
		t.Fatalf("%s linux/%s: %v", ref, arch, err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s linux/%s has no /usr/bin/signet (%v)", ref, arch, err)
		}
		if strings.TrimPrefix(h.Name, "/") == "usr/bin/signet" {
			sum := sha256.New()
			if _, err := io.Copy(sum, tr); err != nil {
				t.Fatal(err)
			}
			return sum.Sum(nil)
		}
	}
}
