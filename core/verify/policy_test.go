package verify_test

import (
	"strings"
	"testing"

	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/signet-dev/signet/core/verify"
)

// Regexp matchers mean what cosign's and sigstore-go's flags of the same
// name mean: an unanchored search, so a cosign policy carries over as is.
func TestRegexpMatchesAsSigstoreGo(t *testing.T) {
	const wf = "https://github.com/acme/widget/.github/workflows/release.yml@refs/heads/main"
	for _, c := range []struct {
		expr, value string
		match       bool
	}{
		{`^https://github.com/acme/widget/`, wf, true}, // cosign-style prefix policy
		{`^https://github\.com/acme/widget/\.github/workflows/release\.yml@refs/heads/main$`, wf, true},
		{`acme/widget`, wf, true},                       // unanchored: a substring matches
		{`release\.yml@refs/heads/`, wf, true},          // ... anywhere
		{`^acme/widget`, wf, false},                     // anchored at the start
		{`^https://github.com/acme/widget$`, wf, false}, // anchored at both ends
		{`https://github.com/acme/`, "https://evil.example/?https://github.com/acme/", true},
		{`^https://github.com/acme/`, "https://evil.example/?https://github.com/acme/", false},
		{`(?i)^HTTPS://GITHUB.COM/ACME/`, wf, true},
		{`a|^x`, "xyz", true}, // alternation binds looser than anything signet used to wrap it in
	} {
		m, err := verify.Regexp(c.expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Match(c.value); got != c.match {
			t.Errorf("Regexp(%q).Match(%q) = %v, want %v", c.expr, c.value, got, c.match)
		}
		// sigstore-go, which cosign verifies with, decides the same.
		san, err := sgverify.NewSANMatcher("", c.expr)
		if err != nil {
			t.Fatal(err)
		}
		if sg := san.Verify(certificate.Summary{SubjectAlternativeName: c.value}) == nil; sg != c.match {
			t.Errorf("sigstore-go matches %q against %q: %v, the table says %v", c.expr, c.value, sg, c.match)
		}
		iss, err := sgverify.NewIssuerMatcher("", c.expr)
		if err != nil {
			t.Fatal(err)
		}
		if sg := iss.Verify(certificate.Summary{Extensions: certificate.Extensions{Issuer: c.value}}) == nil; sg != c.match {
			t.Errorf("sigstore-go issuer matcher on %q against %q: %v, the table says %v", c.expr, c.value, sg, c.match)
		}
	}
}

func TestUnanchoredWarning(t *testing.T) {
	w := verify.UnanchoredWarning("--certificate-identity-regexp", "identity", `https://github.com/acme/`)
	for _, want := range []string{"--certificate-identity-regexp", `"https://github.com/acme/"`, "no leading ^", "matches anywhere in the identity", "cosign", "^https://github.com/acme/"} {
		if !strings.Contains(w, want) {
			t.Errorf("warning %q does not say %q", w, want)
		}
	}
	if w := verify.UnanchoredWarning("--certificate-identity-regexp", "identity", `^https://github.com/acme/`); w != "" {
		t.Errorf("anchored pattern warned: %q", w)
	}
}
