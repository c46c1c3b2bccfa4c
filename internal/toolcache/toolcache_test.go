package toolcache

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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
