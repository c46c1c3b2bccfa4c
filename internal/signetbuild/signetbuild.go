// Package signetbuild compiles cmd/signet reproducibly: the release
// binaries (internal/release) and the server image (deploy/image) are made
// by this one function, so the image holds the released binary's bytes.
package signetbuild

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// Env is the environment of a reproducible go command for goos/goarch.
// Each setting that changes the output is given a value here, so neither
// the caller's environment nor its `go env -w` file can change the bytes:
// a non-empty variable wins over the file.
func Env(goos, goarch string) []string {
	set := map[string]string{
		// No C toolchain, and so no PKCS#11 (core/keyref says so when asked).
		"CGO_ENABLED": "0",
		// Replaces any GOFLAGS (e.g. -race, -tags) of the environment or
		// the go env file; the build's own flags are on its command line.
		"GOFLAGS": "-mod=readonly",
		"GOWORK":  "off",
		"GOOS":    goos,
		"GOARCH":  goarch,
		// The defaults, named: a GOAMD64=v3 left in an environment would
		// make other (and less portable) amd64 binaries.
		"GOAMD64": "v1",
		"GOARM64": "v8.0",
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; !ok {
			env = append(env, kv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		env = append(env, k+"="+set[k])
	}
	return env
}

// Build compiles module's ./cmd/signet for goos/goarch into out, with
// version stamped (signet version, signet_build_info).
func Build(ctx context.Context, module, version, goos, goarch, out string) error {
	// -trimpath: no directory of this machine in the binary;
	// -buildvcs=false: no checkout state (the same commit gives the same
	// bytes whether or not .git is there or the tree is dirty);
	// -s -w: no symbol table or DWARF, smaller downloads.
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -X main.version="+version, "-o", out, "./cmd/signet")
	cmd.Dir = module
	cmd.Env = Env(goos, goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/signet for %s/%s: %v\n%s", goos, goarch, err, b)
	}
	return nil
}
