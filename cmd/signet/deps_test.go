package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The signet CLI links no Kubernetes or Tekton module: those belong to the
// Tekton controller, its own binary (tekton/cmd/signet-tekton). The one
// exception is k8s.io/klog/v2, a logging library with no Kubernetes API in
// it, which tessera (the log's storage, in `signet server`) logs through.
func TestCLILinksNoKubernetes(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	mods := slices.Compact(slices.Sorted(slices.Values(strings.Fields(string(out)))))
	if !slices.Contains(mods, "github.com/transparency-dev/tessera") {
		t.Fatalf("module list looks wrong (no tessera): %v", mods)
	}
	for _, m := range mods {
		switch {
		case m == "k8s.io/klog/v2":
		case strings.HasPrefix(m, "k8s.io/"), strings.HasPrefix(m, "sigs.k8s.io/"),
			strings.HasPrefix(m, "github.com/tektoncd/"), strings.HasPrefix(m, "knative.dev/"),
			m == "github.com/google/go-containerregistry/pkg/authn/kubernetes":
			t.Errorf("the signet CLI links %s; Kubernetes code belongs in tekton/ (signet-tekton)", m)
		}
	}
}
