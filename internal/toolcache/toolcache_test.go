package toolcache

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
)

// Only directory replacements are redirected: a replacement by another
// module version is the tool's own choice and stays.
func TestDirectoryReplaces(t *testing.T) {
	gomod := filepath.Join(t.TempDir(), "go.mod")
	if err := os.WriteFile(gomod, []byte(`module k8s.io/kubernetes

go 1.26.0

require k8s.io/api v0.0.0

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/apimachinery v0.0.0 => ../apimachinery
	github.com/example/fork => github.com/example/fork v1.2.3
)
`), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := directoryReplaces(gomod)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"k8s.io/api", "k8s.io/apimachinery"}; !slices.Equal(got, want) {
		t.Fatalf("directoryReplaces = %v, want %v", got, want)
	}
}

// A failed step names its command and keeps the end of a long output,
// where the compiler's error is.
func TestStepFailedKeepsTheEnd(t *testing.T) {
	cmd := exec.Command("go", "build", "./x")
	cmd.Dir = "/build"
	out := strings.Repeat("noise\n", 10000) + "x.go:1: undefined: y\n"
	err := stepFailed("building x v1", cmd, errors.New("exit status 1"), []byte(out)).Error()
	for _, want := range []string{"building x v1 (go build ./x, in /build): exit status 1", "x.go:1: undefined: y"} {
		if !strings.Contains(err, want) {
			t.Errorf("error lacks %q", want)
		}
	}
	if len(err) > 9<<10 {
		t.Errorf("error is %d bytes; the output should be cut to its tail", len(err))
	}
}

func TestKubeVersionFlags(t *testing.T) {
	got := kubeVersionFlags("v1.37.2")
	for _, want := range []string{"version.gitVersion=v1.37.2 ", "version.gitMajor=1 ", "version.gitMinor=37 "} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
}

// The wrapper go.mod redirects directory replacements to ReplaceVersion and
// pins replace every version of their module, so the Go command accepts it
// and resolves each to the published version.
func TestReplaceBlock(t *testing.T) {
	tool := Tool{
		Name: "x", Module: "example.com/x", ReplaceVersion: "v0.3.0",
		Pins: []module.Version{{Path: "example.com/unserved", Version: "v1.2.3"}},
	}
	gomod := "module signet.invalid/build/x\n\ngo 1.26\n" + tool.replaceBlock([]string{"example.com/x/api"})
	mf, err := modfile.Parse("go.mod", []byte(gomod), nil)
	if err != nil {
		t.Fatalf("wrapper go.mod does not parse: %v\n%s", err, gomod)
	}
	var got []string
	for _, r := range mf.Replace {
		got = append(got, r.Old.String()+" => "+r.New.String())
	}
	want := []string{"example.com/x/api => example.com/x/api@v0.3.0", "example.com/unserved => example.com/unserved@v1.2.3"}
	if !slices.Equal(got, want) {
		t.Fatalf("replaces = %q, want %q", got, want)
	}
}

// The lifecycle reads its version from cmd.Version without the v, as its
// Makefile stamps it; the other tools build without pins.
func TestLifecycleTools(t *testing.T) {
	for _, tool := range []Tool{Lifecycle, Launcher} {
		for _, want := range []string{"-X github.com/buildpacks/lifecycle/cmd.Version=0.21.17 ", "cmd.SCMCommit=ba8eca5 ", "cmd.SCMRepository=github.com/buildpacks/lifecycle"} {
			if !strings.Contains(tool.LDFlags+" ", want) {
				t.Errorf("%s ldflags %q lack %q", tool.Name, tool.LDFlags, want)
			}
		}
		if tool.Module == "" || len(tool.Pins) != 1 || tool.Pins[0].Path != "github.com/osscontainertools/kaniko" {
			t.Errorf("%s: want a wrapper build pinning kaniko, got %+v", tool.Name, tool)
		}
	}
	if Lifecycle.key() == Launcher.key() {
		t.Errorf("lifecycle and launcher share the build key %q", Lifecycle.key())
	}
	for _, tool := range []Tool{Registry, Act, Cosign, CosignV2, Etcd, KubeAPIServer} {
		if len(tool.Pins) != 0 {
			t.Errorf("%s has pins %v", tool.Name, tool.Pins)
		}
	}
}
