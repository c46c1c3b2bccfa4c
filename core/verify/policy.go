package verify

import (
	"crypto"
	"fmt"
	"regexp"
	"strings"

	"github.com/signet-dev/signet/core/certext"
)

// Matcher matches a string exactly or against a regular expression.
type Matcher struct {
	exact string
	re    *regexp.Regexp
}

// Exact matches s exactly.
func Exact(s string) Matcher { return Matcher{exact: s} }

// Regexp matches strings against expr as cosign and sigstore-go do: a Go
// regular expression searched for anywhere in the value
// (regexp.MatchString), not anchored. "https://github.com/acme/" thus also
// matches "https://evil.example/?https://github.com/acme/"; anchor it
// ("^https://github\.com/acme/") to match from the start, and end it with
// "$" to match the whole value. Unanchored says when to warn about this.
func Regexp(expr string) (Matcher, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return Matcher{}, fmt.Errorf("regular expression %q: %v", expr, err)
	}
	return Matcher{re: re}, nil
}

// Unanchored reports whether a Regexp expression has no leading '^', so that
// it matches anywhere in the value.
func Unanchored(expr string) bool { return !strings.HasPrefix(expr, "^") }

// UnanchoredWarning is the warning for a Regexp expression given as name
// (a flag or an input) to match the value called what ("identity",
// "OIDC issuer"), or "" when the expression is anchored.
func UnanchoredWarning(name, what, expr string) string {
	if !Unanchored(expr) {
		return ""
	}
	return fmt.Sprintf("%s %q has no leading ^, so it matches anywhere in the %s, as in cosign: any %s containing a match is accepted; write ^%s to match from the start (and end it with $ to match the whole %s)",
		name, expr, what, what, expr, what)
}

// IsZero reports whether the matcher was never set.
func (m Matcher) IsZero() bool { return m.exact == "" && m.re == nil }

// Match reports whether s matches.
func (m Matcher) Match(s string) bool {
	if m.re != nil {
		return m.re.MatchString(s)
	}
	return m.exact != "" && s == m.exact
}

func (m Matcher) String() string {
	if m.re != nil {
		return "/" + m.re.String() + "/"
	}
	return m.exact
}

// Policy says whom to trust and how much evidence to require: a
// certificate identity (Identity, Issuer, Extensions) or a public key (Key).
type Policy struct {
	// Identity matches the certificate's subject alternative name (email,
	// URI or Fulcio username). Required unless Key is set.
	Identity Matcher
	// Issuer matches the OIDC issuer certificate extension. Required unless
	// Key is set.
	Issuer Matcher
	// Extensions lists certificate extensions that must match exactly; empty
	// fields are not checked. Its Issuer field is ignored (see Issuer above).
	Extensions certext.Extensions
	// TimestampThreshold is the minimum number of verified time sources
	// (RFC 3161 timestamps plus Rekor v1 integrated times with a signed entry
	// timestamp). Zero means 1.
	TimestampThreshold int
	// TlogThreshold is the minimum number of verified transparency log
	// entries from distinct logs. Zero means 1.
	TlogThreshold int
	// SCTThreshold is the minimum number of distinct CT logs whose
	// verified SCT the signing certificate must carry, checked when the
	// trusted root names CT logs. Zero means 1.
	SCTThreshold int
	// IgnoreSCT skips the SCT check, as cosign's --insecure-ignore-sct:
	// for certificates of a CA that logs in no CT log.
	IgnoreSCT bool
	// Witnesses, when set, must have cosigned the checkpoint of every log
	// entry the bundle proves (see WitnessPolicy). Standard Sigstore
	// verifiers have no such policy and ignore cosignature lines.
	Witnesses *WitnessPolicy
	// Key, when set, is the signer's public key, trusted directly instead of
	// a certificate identity (see key.go); Identity, Issuer and Extensions
	// must then be empty.
	Key crypto.PublicKey
}

func (p *Policy) validate() error {
	if p.TimestampThreshold < 0 || p.TlogThreshold < 0 || p.SCTThreshold < 0 {
		return fail(CheckPolicy, nil, "thresholds must not be negative")
	}
	if p.Key != nil {
		return p.validateKeyPolicy()
	}
	if p.Identity.IsZero() {
		e := fail(CheckPolicy, nil, "no certificate identity given; name the expected signer, or trust a public key")
		e.Remedy = RemedyNamePolicy
		return e
	}
	if p.Issuer.IsZero() {
		e := fail(CheckPolicy, nil, "no OIDC issuer given; name the expected issuer")
		e.Remedy = RemedyNamePolicy
		return e
	}
	return nil
}

func (p *Policy) timestampThreshold() int { return max(p.TimestampThreshold, 1) }
func (p *Policy) tlogThreshold() int      { return max(p.TlogThreshold, 1) }

// matchExtensions compares every extension the policy sets with the
// certificate's.
func matchExtensions(want, got certext.Extensions) error {
	if name, w, g, ok := certext.Difference(want, got); ok {
		return mismatch(CheckIdentity, "certificate extension "+name, w, g)
	}
	return nil
}
