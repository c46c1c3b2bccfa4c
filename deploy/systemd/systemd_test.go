// Package systemd holds the server's systemd unit; this test checks it
// with systemd's own systemd-analyze (Debian's, unpacked into the tools
// cache) and runs the unit's command line with the example config on the
// real server.
package systemd_test

import (
	"bufio"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/signet-dev/signet/internal/toolcache"
	"github.com/signet-dev/signet/server"
	"github.com/signet-dev/signet/server/servertest"
)

// Systemd is Debian 12's systemd, whose systemd-analyze checks units
// offline. Its libraries' dependencies (libseccomp2, libkmod2, libip4tc2,
// libcryptsetup's and PAM's) must be on the machine, as any Debian with
// systemd has them.
var Systemd = toolcache.DebianPackages{Name: "systemd", Version: "252.39-1~deb12u2", Packages: []string{"systemd", "libsystemd-shared"}}

const unitFile = "signet-server.service"

// unit reads the [Service] section's settings, each key's values in order.
func unit(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "["):
			section = l
		case section == "[Service]":
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("%s: %q is not KEY=VALUE", unitFile, l)
			}
			m[k] = append(m[k], v)
		}
	}
	return m
}

// analyze runs the cached systemd-analyze.
func analyze(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Fatalf("systemd units are for Linux")
	}
	root, err := Systemd.Root()
	if err != nil {
		t.Fatal(err)
	}
	lib, err := filepath.Glob(filepath.Join(root, "usr", "lib", "*-linux-gnu", "systemd"))
	if err != nil || len(lib) != 1 {
		t.Fatalf("no systemd library directory in %s", root)
	}
	cmd := exec.Command(filepath.Join(root, "usr", "bin", "systemd-analyze"), args...)
	// Its RUNPATH names the system's directory; the unpacked one comes first.
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+lib[0], "SYSTEMD_LOG_COLOR=0", "SYSTEMD_PAGER=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// testUnit writes the unit into a directory of its own, its ExecStart
// binary pointed at bin (verify checks that it exists and is executable).
func testUnit(t *testing.T, bin string, edit func(string) string) string {
	t.Helper()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "ExecStart=/usr/local/bin/signet ", "ExecStart="+bin+" ", 1)
	if edit != nil {
		s = edit(s)
	}
	p := filepath.Join(t.TempDir(), unitFile)
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUnitVerifies: systemd-analyze verify accepts the unit with not one
// warning, refuses a misspelt setting (so the check can fail), and rates
// its exposure low.
func TestUnitVerifies(t *testing.T) {
	bin := servertest.Binary(t)
	if out, err := analyze(t, "verify", "--man=no", testUnit(t, bin, nil)); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	typo := testUnit(t, bin, func(s string) string { return strings.Replace(s, "ProtectHome=", "ProtectHomes=", 1) })
	if out, _ := analyze(t, "verify", "--man=no", typo); !strings.Contains(out, "ProtectHomes") {
		t.Errorf("systemd-analyze verify said nothing of a misspelt setting:\n%s", out)
	}
	// Exposure on systemd's 0-10 scale (1.4 at the time of writing): the
	// threshold is ten times it, 2.0 here.
	out, err := analyze(t, "security", "--offline=yes", "--threshold=20", "--no-pager", testUnit(t, bin, nil))
	if err != nil {
		t.Errorf("systemd-analyze security: %v\n%s", err, out)
	}
	t.Logf("systemd-analyze security: %s", lastLine(out))
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestUnitRunsTheServer runs the unit's ExecStart with the example config,
// the data directory and listen addresses moved to a temporary directory
// and loopback ports, and checks the unit's limits against the config.
func TestUnitRunsTheServer(t *testing.T) {
	u := unit(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")

	cfg, err := server.LoadConfig("server.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(u["StateDirectory"]) != 1 || cfg.Data != "/var/lib/"+u["StateDirectory"][0] {
		t.Errorf("the config's data %s is not the unit's StateDirectory %v", cfg.Data, u["StateDirectory"])
	}
	nofile, err := strconv.Atoi(strings.Join(u["LimitNOFILE"], ""))
	if err != nil || nofile <= cfg.HTTP.MaxConnections {
		t.Errorf("LimitNOFILE %v must exceed http.maxConnections %d: every connection is a file", u["LimitNOFILE"], cfg.HTTP.MaxConnections)
	}
	stop, err := time.ParseDuration(strings.Join(u["TimeoutStopSec"], ""))
	if err != nil || stop <= cfg.ShutdownTimeout {
		t.Errorf("TimeoutStopSec %v must exceed shutdownTimeout %v, or systemd kills the drain", u["TimeoutStopSec"], cfg.ShutdownTimeout)
	}

	var doc map[string]any
	b, _ := os.ReadFile("server.yaml")
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	httpAddr, adminAddr := servertest.FreeAddr(t), servertest.FreeAddr(t)
	doc["addr"], doc["adminAddr"], doc["url"] = httpAddr, adminAddr, "http://"+httpAddr
	b, _ = yaml.Marshal(doc)
	cfgPath := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}

	execStart := strings.Fields(strings.Join(u["ExecStart"], ""))
	if len(execStart) < 2 || execStart[1] != "server" {
		t.Fatalf("ExecStart %q does not run signet server", execStart)
	}
	args := execStart[2:]
	for i, a := range args {
		switch a {
		case "/etc/signet/server.yaml":
			args[i] = cfgPath
		case cfg.Data:
			args[i] = data
		}
	}
	p := servertest.StartArgs(t, args...)
	if p.DataDir != data {
		t.Errorf("data directory %s, want %s", p.DataDir, data)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + adminAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("admin %s: HTTP %d", path, resp.StatusCode)
		}
	}
	if _, err := p.Get("/trust/signing_config.json"); err != nil {
		t.Error(err)
	}
	// What systemctl stop does: SIGTERM (KillSignal), then wait.
	if sig := strings.Join(u["KillSignal"], ""); sig != "SIGTERM" {
		t.Errorf("KillSignal %q: the server drains on SIGTERM", sig)
	}
	if err := p.Stop(stop); err != nil {
		t.Errorf("stop within TimeoutStopSec: %v\n%s", err, p.Stderr())
	}
}
