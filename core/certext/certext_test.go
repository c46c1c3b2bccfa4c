package certext

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// interopCert loads the leaf certificate of a bundle in /work/shared/interop,
// issued by a real Fulcio v1.8.8.
func interopCert(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "interop", name))
	if err != nil {
		t.Fatalf("read interop bundle: %v", err)
	}
	var b struct {
		VerificationMaterial struct {
			Certificate struct {
				RawBytes string `json:"rawBytes"`
			} `json:"certificate"`
		} `json:"verificationMaterial"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatalf("decode bundle: %v", err)
	}
	der, err := base64.StdEncoding.DecodeString(b.VerificationMaterial.Certificate.RawBytes)
	if err != nil {
		t.Fatalf("decode certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	return cert
}

func fulcioExtensions(cert *x509.Certificate) []pkix.Extension {
	var out []pkix.Extension
	for _, e := range cert.Extensions {
		if len(e.Id) == 9 && e.Id[:8].Equal(OIDIssuer[:8]) {
			out = append(out, e)
		}
	}
	return out
}

var githubWant = Extensions{
	Issuer:                              "http://127.0.0.1:8089",
	GithubWorkflowTrigger:               "push",
	GithubWorkflowSHA:                   strings.Repeat("a", 40),
	GithubWorkflowName:                  "release",
	GithubWorkflowRepository:            "acme/widget",
	GithubWorkflowRef:                   "refs/heads/main",
	BuildSignerURI:                      "https://github.com/acme/widget/.github/workflows/release.yml@refs/heads/main",
	BuildSignerDigest:                   strings.Repeat("a", 40),
	RunnerEnvironment:                   "github-hosted",
	SourceRepositoryURI:                 "https://github.com/acme/widget",
	SourceRepositoryDigest:              strings.Repeat("a", 40),
	SourceRepositoryRef:                 "refs/heads/main",
	SourceRepositoryIdentifier:          "1",
	SourceRepositoryOwnerURI:            "https://github.com/acme",
	SourceRepositoryOwnerIdentifier:     "2",
	BuildConfigURI:                      "https://github.com/acme/widget/.github/workflows/release.yml@refs/heads/main",
	BuildConfigDigest:                   strings.Repeat("a", 40),
	BuildTrigger:                        "push",
	RunInvocationURI:                    "https://github.com/acme/widget/actions/runs/42/attempts/1",
	SourceRepositoryVisibilityAtSigning: "public",
	Subject:                             "repo:acme/widget:ref:refs/heads/main",
}

func TestParseReadsFulcioGitHubCertificate(t *testing.T) {
	cert := interopCert(t, "cosign3-github.sigstore.json")
	got, err := FromCertificate(cert)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got != githubWant {
		t.Fatalf("Parse mismatch\n got %+v\nwant %+v", got, githubWant)
	}
}

func TestParseReadsFulcioEmailCertificate(t *testing.T) {
	for _, name := range []string{"cosign3-email.sigstore.json", "sigstore-go-email.sigstore.json"} {
		got, err := FromCertificate(interopCert(t, name))
		if err != nil {
			t.Fatalf("%s: Parse: %v", name, err)
		}
		want := Extensions{Issuer: "http://127.0.0.1:8088", Subject: "alice@example.com"}
		if got != want {
			t.Fatalf("%s: got %+v want %+v", name, got, want)
		}
	}
}

// Rendering what Parse read must reproduce Fulcio's extensions exactly: same
// OIDs, same order, same bytes, same criticality.
func TestRenderRoundTripsFulcioBytes(t *testing.T) {
	for _, name := range []string{"cosign3-github.sigstore.json", "cosign3-email.sigstore.json"} {
		cert := interopCert(t, name)
		parsed, err := FromCertificate(cert)
		if err != nil {
			t.Fatalf("%s: Parse: %v", name, err)
		}
		rendered, err := parsed.Render()
		if err != nil {
			t.Fatalf("%s: Render: %v", name, err)
		}
		want := fulcioExtensions(cert)
		if len(rendered) != len(want) {
			t.Fatalf("%s: rendered %d extensions, certificate has %d", name, len(rendered), len(want))
		}
		for i := range want {
			if !rendered[i].Id.Equal(want[i].Id) || rendered[i].Critical != want[i].Critical || !bytes.Equal(rendered[i].Value, want[i].Value) {
				t.Errorf("%s: extension %d: rendered %v %x, Fulcio wrote %v %x", name, i, rendered[i].Id, rendered[i].Value, want[i].Id, want[i].Value)
			}
		}
	}
}

func TestRenderOmitsEmptyAndRequiresIssuer(t *testing.T) {
	if _, err := (Extensions{Subject: "x"}).Render(); err == nil || !strings.Contains(err.Error(), "issuer") {
		t.Fatalf("Render without issuer: err = %v, want an error naming the issuer", err)
	}
	exts, err := Extensions{Issuer: "https://issuer.example", DeploymentEnvironment: "prod"}.Render()
	if err != nil {
		t.Fatal(err)
	}
	var oids []string
	for _, e := range exts {
		oids = append(oids, e.Id.String())
	}
	want := "1.3.6.1.4.1.57264.1.1 1.3.6.1.4.1.57264.1.8 1.3.6.1.4.1.57264.1.23"
	if strings.Join(oids, " ") != want {
		t.Fatalf("rendered OIDs %v, want %s", oids, want)
	}
	back, err := Parse(exts)
	if err != nil || back.DeploymentEnvironment != "prod" || back.Issuer != "https://issuer.example" {
		t.Fatalf("Parse(Render) = %+v, %v", back, err)
	}
	if _, err := (Extensions{Issuer: "https://i", SourceRepositoryRef: "\xff"}).Render(); err == nil {
		t.Fatal("Render accepted a non-UTF-8 value")
	}
}

func TestRenderLongValueUsesLongFormLength(t *testing.T) {
	long := "https://example.com/" + strings.Repeat("x", 300)
	exts, err := Extensions{Issuer: "https://i", BuildConfigURI: long}.Render()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(exts)
	if err != nil || got.BuildConfigURI != long {
		t.Fatalf("long value did not round-trip: %v", err)
	}
}

func mustDER(t *testing.T, v any, params string) []byte {
	t.Helper()
	b, err := asn1.MarshalWithParams(v, params)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRefusesMalformedExtensions(t *testing.T) {
	good := mustDER(t, "https://issuer.example", "utf8")
	tests := []struct {
		name string
		exts []pkix.Extension
		want string
	}{
		{"printable string instead of UTF8String", []pkix.Extension{{Id: OIDBuildTrigger, Value: mustDER(t, "push", "printable")}}, "UTF8String"},
		{"trailing bytes", []pkix.Extension{{Id: OIDBuildTrigger, Value: append(mustDER(t, "push", "utf8"), 0)}}, "trailing"},
		{"not DER", []pkix.Extension{{Id: OIDBuildTrigger, Value: []byte("push")}}, "not DER"},
		{"duplicate", []pkix.Extension{{Id: OIDIssuerV2, Value: good}, {Id: OIDIssuerV2, Value: good}}, "more than once"},
		{"conflicting issuers", []pkix.Extension{{Id: OIDIssuer, Value: []byte("https://other.example")}, {Id: OIDIssuerV2, Value: good}}, "two different OIDC issuers"},
		{"legacy not UTF-8", []pkix.Extension{{Id: OIDGitHubWorkflowRef, Value: []byte{0xff}}}, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.exts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestParseLegacyOnlyAndIgnoresOthers(t *testing.T) {
	got, err := Parse([]pkix.Extension{
		{Id: asn1.ObjectIdentifier{2, 5, 29, 15}, Value: []byte{3, 2, 7, 128}},
		{Id: OIDIssuer, Value: []byte("https://legacy.example")},
		{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 99}, Value: []byte("future")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != (Extensions{Issuer: "https://legacy.example"}) {
		t.Fatalf("got %+v", got)
	}
}
