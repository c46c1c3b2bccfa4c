package main

import (
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// With -o json every outcome is one JSON object: results, failed
// verifications (their report, nothing more), usage errors and failed
// operations alike; the exit code follows the one rule.
func TestJSONForEveryOutcome(t *testing.T) {
	e := newCLIEnv(t)
	art := e.file(t, "app.tar.gz", "bits\n")
	bundle := art + ".sigstore.json"
	runSignet(t, e.serverEnv, "sign-blob", art, "--identity-token", e.token, "-o", "json").want(t, 0).decode(t, &signResult{})

	var v verifyResult
	runSignet(t, nil, "verify-blob", art, "--bundle", bundle, "--trusted-root", e.root, "--certificate-identity", "someone@example.com", "--certificate-oidc-issuer", e.issuer, "-o", "json").want(t, 1).decode(t, &v)
	if v.Verified || v.FailedCheck != "identity" {
		t.Errorf("failed verification: %+v", v)
	}

	cases := []struct {
		name  string
		args  []string
		code  int
		check string
	}{
		{"unknown flag", []string{"sign-blob", art, "--no-such-flag", "-o", "json"}, 2, ""},
		{"missing file", []string{"sign-blob", "/does/not/exist", "-o", "json"}, 2, ""},
		{"bad output format", []string{"verify-blob", art, "-o", "yaml"}, 2, ""},
		{"unreachable server", []string{"sign-blob", art, "--server", "http://127.0.0.1:1", "--identity-token", e.token, "-o", "json"}, 1, ""},
		{"no policy", []string{"verify-blob", art, "--trusted-root", e.root, "-o", "json"}, 2, ""},
		{"version", []string{"version", "-o", "json"}, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runSignet(t, nil, c.args...).want(t, c.code)
			if c.code == 0 {
				var m map[string]any
				r.decode(t, &m)
				return
			}
			if !strings.Contains(strings.Join(c.args, " "), "-o json") {
				if strings.TrimSpace(r.stdout) != "" {
					t.Errorf("text mode printed on stdout: %s", r.stdout)
				}
				return
			}
			var ej errorJSON
			r.decode(t, &ej)
			if ej.OK || ej.ExitCode != c.code || ej.Error == "" || !strings.HasPrefix(ej.Command, "signet ") {
				t.Errorf("error object: %+v", ej)
			}
			if !strings.Contains(r.stderr, ej.Error) {
				t.Errorf("stderr and the JSON error differ:\n%s\n%s", r.stderr, ej.Error)
			}
		})
	}
}

// Every command's help states the exit codes.
func TestEveryHelpNamesExitCodes(t *testing.T) {
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			p := append(append([]string{}, path...), sub.Name())
			if sub.Runnable() {
				r := runSignet(t, nil, append(p, "--help")...).want(t, 0)
				if !strings.Contains(r.stdout, "Exit status") {
					t.Errorf("signet %s --help does not state the exit status", strings.Join(p, " "))
				}
			}
			walk(sub, p)
		}
	}
	walk(newRootCmd(), nil)
}

// --output-file takes the result (and a failure's JSON) off stdout.
func TestOutputFile(t *testing.T) {
	dir := t.TempDir()
	out := dir + "/version.json"
	r := runSignet(t, nil, "version", "-o", "json", "--output-file", out).want(t, 0)
	if strings.TrimSpace(r.stdout) != "" {
		t.Errorf("stdout: %q", r.stdout)
	}
	b, err := os.ReadFile(out)
	if err != nil || !strings.Contains(string(b), `"schemaVersion": 1`) {
		t.Fatalf("output file: %q %v", b, err)
	}
	runSignet(t, nil, "sign-blob", "/does/not/exist", "-o", "json", "--output-file", out).want(t, 2)
	if b, _ := os.ReadFile(out); !strings.Contains(string(b), `"exitCode": 2`) {
		t.Errorf("failure JSON not in the output file: %s", b)
	}
	runSignet(t, nil, "version", "--output-file", dir+"/no/such/dir/x").want(t, 2)
}
