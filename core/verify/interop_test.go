package verify_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/certext"
	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/core/verify"
)

const slsaProvenanceV1 = "https://slsa.dev/provenance/v1"

type interopCase struct {
	file     string
	san      string
	issuer   string
	ext      certext.Extensions // CI extensions the policy pins
	dsse     bool
	logIndex int64
}

const githubSAN = "https://github.com/acme/widget/.github/workflows/release.yml@refs/heads/main"

var githubExt = certext.Extensions{
	SourceRepositoryURI: "https://github.com/acme/widget",
	SourceRepositoryRef: "refs/heads/main",
	BuildSignerURI:      githubSAN,
	BuildTrigger:        "push",
	RunnerEnvironment:   "github-hosted",
}

// The table mirrors the README of the interop directory.
var interopCases = []interopCase{
	{file: "cosign3-email.sigstore.json", san: "alice@example.com", issuer: "http://127.0.0.1:8088", logIndex: 0},
	{file: "sigstore-go-email.sigstore.json", san: "alice@example.com", issuer: "http://127.0.0.1:8088", logIndex: 3},
	{file: "sigstore-js-email.sigstore.json", san: "alice@example.com", issuer: "http://127.0.0.1:8088", logIndex: 4},
	{file: "cosign3-github.sigstore.json", san: githubSAN, issuer: "http://127.0.0.1:8089", ext: githubExt, logIndex: 1},
	{file: "cosign3-github-provenance.sigstore.json", san: githubSAN, issuer: "http://127.0.0.1:8089", ext: githubExt, dsse: true, logIndex: 2},
}

// interopDir locates ../shared/interop from the module root. It is shared
// test material outside the repository: required in CI, optional elsewhere.
func interopDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("module root (go.mod) not found above the test directory")
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", "interop")
	if _, err := os.Stat(filepath.Join(p, "trusted_root.json")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("interop vectors missing at %s (%v); CI must provide ../shared/interop next to the module root", p, err)
		}
		t.Skipf("interop vectors not found at %s; skipping (set CI to make this fatal)", p)
	}
	return p
}

type fixture struct {
	dir      string
	root     *trust.Root
	artifact []byte
}

func loadFixture(t testing.TB) fixture {
	dir := interopDir(t)
	root, err := trust.ReadRootFile(filepath.Join(dir, "trusted_root.json"))
	if err != nil {
		t.Fatal(err)
	}
	art, err := os.ReadFile(filepath.Join(dir, "artifact.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return fixture{dir: dir, root: root, artifact: art}
}

func (f fixture) bundleBytes(t testing.TB, name string) []byte {
	data, err := os.ReadFile(filepath.Join(f.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func policyFor(c interopCase) verify.Policy {
	return verify.Policy{Identity: verify.Exact(c.san), Issuer: verify.Exact(c.issuer), Extensions: c.ext}
}

// run verifies b the way the case's CLI command would.
func (f fixture) run(b *bundle.Bundle, c interopCase, p verify.Policy, artifact []byte) (*verify.Result, error) {
	v := verify.New(f.root)
	if c.dsse {
		d := sha256.Sum256(artifact)
		return v.VerifyAttestation(context.Background(), b, verify.Digest{Algorithm: crypto.SHA256, Value: d[:]}, p, slsaProvenanceV1)
	}
	return v.VerifyArtifact(context.Background(), b, bytes.NewReader(artifact), p)
}

func TestInteropBundlesVerify(t *testing.T) {
	f := loadFixture(t)
	for _, c := range interopCases {
		t.Run(c.file, func(t *testing.T) {
			b, err := bundle.ReadFile(filepath.Join(f.dir, c.file))
			if err != nil {
				t.Fatal(err)
			}
			res, err := f.run(b, c, policyFor(c), f.artifact)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if res.Signer.SAN != c.san || res.Signer.Issuer != c.issuer {
				t.Errorf("signer = %q / %q, want %q / %q", res.Signer.SAN, res.Signer.Issuer, c.san, c.issuer)
			}
			if len(res.Times) != 1 || !strings.HasPrefix(res.Times[0].Source, "rfc3161 ") {
				t.Fatalf("times = %+v, want one RFC 3161 time", res.Times)
			}
			// The certificate has long expired; the timestamp must be what
			// made it valid.
			ts := res.Times[0].Time
			if ts.Before(res.Certificate.NotBefore) || ts.After(res.Certificate.NotAfter) {
				t.Errorf("verified time %s outside certificate validity %s..%s", ts, res.Certificate.NotBefore, res.Certificate.NotAfter)
			}
			if len(res.Entries) != 1 || res.Entries[0].LogIndex != c.logIndex || res.Entries[0].Kind != "hashedrekord" || res.Entries[0].Version != "0.0.2" {
				t.Fatalf("entries = %+v, want one hashedrekord 0.0.2 at index %d", res.Entries, c.logIndex)
			}
			if res.Entries[0].TreeSize <= uint64(c.logIndex) {
				t.Errorf("tree size %d does not cover index %d", res.Entries[0].TreeSize, c.logIndex)
			}
			if c.dsse {
				if res.Statement == nil || res.Statement.GetPredicateType() != slsaProvenanceV1 {
					t.Fatalf("statement = %v, want SLSA provenance v1", res.Statement)
				}
			} else if res.Statement != nil {
				t.Error("message-signature bundle returned a statement")
			}
			if c.ext.SourceRepositoryURI != "" && res.Signer.Extensions.SourceRepositoryURI != c.ext.SourceRepositoryURI {
				t.Errorf("source repository = %q", res.Signer.Extensions.SourceRepositoryURI)
			}
		})
	}
}

// Regular expressions work for identity and issuer, searched for anywhere
// in the value as cosign and sigstore-go do: an unanchored substring
// matches, a pattern anchored elsewhere does not.
func TestInteropRegexpPolicy(t *testing.T) {
	f := loadFixture(t)
	c := interopCases[3]
	b, err := bundle.ReadFile(filepath.Join(f.dir, c.file))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := verify.Regexp(`^https://github\.com/acme/.*`)
	iss, _ := verify.Regexp(`^http://127\.0\.0\.1:80[0-9]+`)
	if _, err := f.run(b, c, verify.Policy{Identity: id, Issuer: iss}, f.artifact); err != nil {
		t.Fatalf("regexp policy: %v", err)
	}
	partial, _ := verify.Regexp(`acme/widget`)
	if _, err := f.run(b, c, verify.Policy{Identity: partial, Issuer: iss}, f.artifact); err != nil {
		t.Fatalf("an unanchored substring did not match, as it does in cosign: %v", err)
	}
	anchored, _ := verify.Regexp(`^acme/widget`)
	_, err = f.run(b, c, verify.Policy{Identity: anchored, Issuer: iss}, f.artifact)
	if verify.CheckOf(err) != verify.CheckIdentity {
		t.Fatalf("a pattern anchored at the start matched in the middle: %v", err)
	}
}
