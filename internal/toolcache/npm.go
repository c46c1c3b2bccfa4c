package toolcache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/mod/semver"
)

// NPMPackage is an npm package installed with `npm install Name@Version`
// into the tools cache, for tests that run a JavaScript client with node.
type NPMPackage struct {
	Name    string // registry name, e.g. "sigstore" or "@sigstore/verify"
	Version string // exact version, e.g. "5.0.1"
	// With pins dependencies as exact "name@version" specs installed
	// alongside. npm resolves a package's own dependencies by range, so
	// without pins the code under test would drift with new releases.
	With []string
}

// SigstoreJS is sigstore-js, the version that made the interop vectors,
// with its @sigstore packages pinned to what that release resolved to.
var SigstoreJS = NPMPackage{
	Name:    "sigstore",
	Version: "5.0.1",
	With: []string{
		"@sigstore/bundle@5.0.1",
		"@sigstore/core@4.0.1",
		"@sigstore/protobuf-specs@0.5.2",
		"@sigstore/sign@5.1.0",
		"@sigstore/tuf@5.0.1",
		"@sigstore/verify@4.1.3",
	},
}

var installed sync.Map // NPMPackage.key() -> *result

// specs are the install arguments: the package first, then the pins.
func (p NPMPackage) specs() ([]string, error) {
	all := append([]string{p.Name + "@" + p.Version}, p.With...)
	for _, s := range all {
		name, version, err := splitSpec(s)
		if err != nil {
			return nil, err
		}
		// A range would make the cache directory's name a lie.
		if semver.Canonical("v"+version) != "v"+version {
			return nil, fmt.Errorf("npm package %q: version %q is not an exact semantic version; pin one such as 1.2.3", name, version)
		}
	}
	return all, nil
}

// splitSpec splits "name@version", where a scoped name starts with "@".
func splitSpec(spec string) (name, version string, err error) {
	i := strings.LastIndex(spec, "@")
	if i <= 0 || i == len(spec)-1 {
		return "", "", fmt.Errorf("npm spec %q: want name@version", spec)
	}
	return spec[:i], spec[i+1:], nil
}

// cacheRoot is the tools cache Tool.Dir uses too.
// cacheRoot is $SIGNET_TOOLS_CACHE, default $HOME/.cache/signet-tools.
func cacheRoot() (string, error) {
	if root := os.Getenv("SIGNET_TOOLS_CACHE"); root != "" {
		return root, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no tools cache: set SIGNET_TOOLS_CACHE or HOME: %w", err)
	}
	return filepath.Join(home, ".cache", "signet-tools"), nil
}

// key identifies the exact set of specs.
func (p NPMPackage) key() string {
	return p.Name + "@" + p.Version + "+" + strings.Join(p.With, ",")
}

// Dir is where p is kept: <cache>/<name>-<version>, plus a digest of the
// pins when there are any, so changing a pin installs afresh instead of
// reusing a tree that no longer matches.
func (p NPMPackage) Dir() (string, error) {
	root, err := cacheRoot()
	if err != nil {
		return "", err
	}
	// "/" of a scoped name must not make a subdirectory.
	name := strings.ReplaceAll(strings.TrimPrefix(p.Name, "@"), "/", "+")
	base := name + "-" + p.Version
	if len(p.With) > 0 {
		sum := sha256.Sum256([]byte(strings.Join(p.With, "\n")))
		base += "-" + hex.EncodeToString(sum[:4])
	}
	return filepath.Join(root, base), nil
}

// NodeModules returns the node_modules directory holding p and its
// dependencies (for NODE_PATH), installing it on first use. A lock file
// serialises the test binaries of parallel packages so only one installs.
func (p NPMPackage) NodeModules() (string, error) {
	r, _ := installed.LoadOrStore(p.key(), &result{})
	res := r.(*result)
	res.once.Do(func() { res.path, res.err = p.install() })
	return res.path, res.err
}

func (p NPMPackage) install() (string, error) {
	specs, err := p.specs()
	if err != nil {
		return "", err
	}
	dir, err := p.Dir()
	if err != nil {
		return "", err
	}
	modules := filepath.Join(dir, "node_modules")
	npm, err := exec.LookPath("npm")
	if err != nil && p.complete(modules, specs) != nil {
		return "", fmt.Errorf("installing npm package %s@%s: npm not found on PATH (install Node.js with npm): %w", p.Name, p.Version, err)
	}
	err = underLock(dir, func() bool { return p.complete(modules, specs) == nil }, func() error { return p.fill(npm, dir, modules, specs) })
	if err != nil {
		return "", err
	}
	return modules, nil
}

// fill installs specs into modules with npm, through a scratch directory
// renamed into place.
func (p NPMPackage) fill(npm, dir, modules string, specs []string) error {
	// A tree that exists but does not match (an interrupted manual edit, a
	// different npm) is moved aside rather than trusted.
	if _, err := os.Stat(modules); err == nil {
		old, err := os.MkdirTemp(dir, "stale-")
		if err != nil {
			return err
		}
		if err := os.Rename(modules, filepath.Join(old, "node_modules")); err != nil {
			return fmt.Errorf("moving aside the stale %s: %w", modules, err)
		}
		defer os.RemoveAll(old)
	}
	// Install into a scratch directory and rename, so a half-installed tree
	// is never seen at the final path.
	tmp, err := os.MkdirTemp(dir, "install-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// A package.json of its own keeps npm from walking up to any project.
	if err := os.WriteFile(filepath.Join(tmp, "package.json"), []byte(`{"private":true}`+"\n"), 0o644); err != nil {
		return err
	}
	args := append([]string{"install", "--no-audit", "--no-fund", "--ignore-scripts", "--no-package-lock", "--loglevel=error"}, specs...)
	cmd := exec.Command(npm, args...)
	cmd.Dir = tmp
	// The npm cache stays npm's own (~/.npm): shared downloads are harmless.
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("installing npm package %s@%s (npm %s): %v\n%s", p.Name, p.Version, strings.Join(args, " "), err, out)
	}
	if err := p.complete(filepath.Join(tmp, "node_modules"), specs); err != nil {
		return fmt.Errorf("npm installed something else than asked: %w", err)
	}
	return os.Rename(filepath.Join(tmp, "node_modules"), modules)
}

// complete checks that modules holds each spec at its exact version.
func (p NPMPackage) complete(modules string, specs []string) error {
	for _, s := range specs {
		name, want, err := splitSpec(s)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(modules, filepath.FromSlash(name), "package.json"))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		var meta struct {
			Version string `json:"version"`
		}
		if err := json.Unmarshal(b, &meta); err != nil {
			return fmt.Errorf("%s/package.json: %w", name, err)
		}
		if meta.Version != want {
			return errors.New(name + " is at " + meta.Version + ", want " + want)
		}
	}
	return nil
}
