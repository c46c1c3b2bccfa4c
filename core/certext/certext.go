// Package certext holds the Sigstore/Fulcio X.509 extensions that carry an
// identity token's issuer and CI provenance claims in a code-signing
// certificate (OIDs under 1.3.6.1.4.1.57264.1, see Fulcio's docs/oid-info.md).
//
// The CA renders them into the certificates it issues; verifiers parse them to
// match signing policies. Extensions .1–.6 are the deprecated GitHub-era forms
// whose value is the raw string bytes; .8 onwards are DER UTF8String values.
package certext

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Object identifiers of the Fulcio extensions.
var (
	OIDIssuer                   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1} // deprecated: raw string
	OIDGitHubWorkflowTrigger    = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 2} // deprecated: raw string
	OIDGitHubWorkflowSHA        = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 3} // deprecated: raw string
	OIDGitHubWorkflowName       = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 4} // deprecated: raw string
	OIDGitHubWorkflowRepository = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 5} // deprecated: raw string
	OIDGitHubWorkflowRef        = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 6} // deprecated: raw string

	OIDIssuerV2                            = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
	OIDBuildSignerURI                      = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 9}
	OIDBuildSignerDigest                   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 10}
	OIDRunnerEnvironment                   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 11}
	OIDSourceRepositoryURI                 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 12}
	OIDSourceRepositoryDigest              = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 13}
	OIDSourceRepositoryRef                 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 14}
	OIDSourceRepositoryIdentifier          = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 15}
	OIDSourceRepositoryOwnerURI            = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 16}
	OIDSourceRepositoryOwnerIdentifier     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 17}
	OIDBuildConfigURI                      = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 18}
	OIDBuildConfigDigest                   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 19}
	OIDBuildTrigger                        = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 20}
	OIDRunInvocationURI                    = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 21}
	OIDSourceRepositoryVisibilityAtSigning = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 22}
	OIDDeploymentEnvironment               = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 23}
	OIDSubject                             = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 24}
)

// Extensions is one certificate's set of Fulcio extensions. Empty fields are
// absent from the certificate.
type Extensions struct {
	// Issuer is the identity token's issuer (iss). Required: rendered as both
	// the deprecated .1 and the DER .8 extension, as Fulcio does.
	Issuer string

	// Deprecated GitHub Actions extensions (.2–.6), still written for GitHub
	// identities because older verifiers match on them.
	GithubWorkflowTrigger    string // .2, event_name
	GithubWorkflowSHA        string // .3, sha
	GithubWorkflowName       string // .4, workflow
	GithubWorkflowRepository string // .5, repository
	GithubWorkflowRef        string // .6, ref

	BuildSignerURI                      string // .9
	BuildSignerDigest                   string // .10
	RunnerEnvironment                   string // .11
	SourceRepositoryURI                 string // .12
	SourceRepositoryDigest              string // .13
	SourceRepositoryRef                 string // .14
	SourceRepositoryIdentifier          string // .15
	SourceRepositoryOwnerURI            string // .16
	SourceRepositoryOwnerIdentifier     string // .17
	BuildConfigURI                      string // .18
	BuildConfigDigest                   string // .19
	BuildTrigger                        string // .20
	RunInvocationURI                    string // .21
	SourceRepositoryVisibilityAtSigning string // .22
	DeploymentEnvironment               string // .23
	Subject                             string // .24, the token's raw sub claim
}

// field pairs an extension OID with the Extensions field that holds it.
type field struct {
	oid    asn1.ObjectIdentifier
	name   string
	legacy bool // raw string value instead of DER UTF8String
	get    func(*Extensions) *string
}

// fields lists every extension in the order Fulcio writes them, so rendered
// certificates lay out their extensions exactly as Fulcio's do.
var fields = []field{
	{OIDIssuer, "Issuer (deprecated)", true, func(e *Extensions) *string { return &e.Issuer }},
	{OIDGitHubWorkflowTrigger, "GitHub Workflow Trigger", true, func(e *Extensions) *string { return &e.GithubWorkflowTrigger }},
	{OIDGitHubWorkflowSHA, "GitHub Workflow SHA", true, func(e *Extensions) *string { return &e.GithubWorkflowSHA }},
	{OIDGitHubWorkflowName, "GitHub Workflow Name", true, func(e *Extensions) *string { return &e.GithubWorkflowName }},
	{OIDGitHubWorkflowRepository, "GitHub Workflow Repository", true, func(e *Extensions) *string { return &e.GithubWorkflowRepository }},
	{OIDGitHubWorkflowRef, "GitHub Workflow Ref", true, func(e *Extensions) *string { return &e.GithubWorkflowRef }},
	{OIDIssuerV2, "Issuer (V2)", false, func(e *Extensions) *string { return &e.Issuer }},
	{OIDBuildSignerURI, "Build Signer URI", false, func(e *Extensions) *string { return &e.BuildSignerURI }},
	{OIDBuildSignerDigest, "Build Signer Digest", false, func(e *Extensions) *string { return &e.BuildSignerDigest }},
	{OIDRunnerEnvironment, "Runner Environment", false, func(e *Extensions) *string { return &e.RunnerEnvironment }},
	{OIDSourceRepositoryURI, "Source Repository URI", false, func(e *Extensions) *string { return &e.SourceRepositoryURI }},
	{OIDSourceRepositoryDigest, "Source Repository Digest", false, func(e *Extensions) *string { return &e.SourceRepositoryDigest }},
	{OIDSourceRepositoryRef, "Source Repository Ref", false, func(e *Extensions) *string { return &e.SourceRepositoryRef }},
	{OIDSourceRepositoryIdentifier, "Source Repository Identifier", false, func(e *Extensions) *string { return &e.SourceRepositoryIdentifier }},
	{OIDSourceRepositoryOwnerURI, "Source Repository Owner URI", false, func(e *Extensions) *string { return &e.SourceRepositoryOwnerURI }},
	{OIDSourceRepositoryOwnerIdentifier, "Source Repository Owner Identifier", false, func(e *Extensions) *string { return &e.SourceRepositoryOwnerIdentifier }},
	{OIDBuildConfigURI, "Build Config URI", false, func(e *Extensions) *string { return &e.BuildConfigURI }},
	{OIDBuildConfigDigest, "Build Config Digest", false, func(e *Extensions) *string { return &e.BuildConfigDigest }},
	{OIDBuildTrigger, "Build Trigger", false, func(e *Extensions) *string { return &e.BuildTrigger }},
	{OIDRunInvocationURI, "Run Invocation URI", false, func(e *Extensions) *string { return &e.RunInvocationURI }},
	{OIDSourceRepositoryVisibilityAtSigning, "Source Repository Visibility At Signing", false, func(e *Extensions) *string { return &e.SourceRepositoryVisibilityAtSigning }},
	{OIDDeploymentEnvironment, "Deployment Environment", false, func(e *Extensions) *string { return &e.DeploymentEnvironment }},
	{OIDSubject, "Token Subject", false, func(e *Extensions) *string { return &e.Subject }},
}

// Render encodes the non-empty fields as non-critical certificate extensions,
// in Fulcio's order. The issuer is required.
func (e Extensions) Render() ([]pkix.Extension, error) {
	if e.Issuer == "" {
		return nil, errors.New("certificate extensions: the OIDC issuer is empty; every Fulcio certificate names the issuer of the identity token")
	}
	out := make([]pkix.Extension, 0, len(fields))
	for i := range fields {
		f := &fields[i]
		v := *f.get(&e)
		if v == "" {
			continue
		}
		if !utf8.ValidString(v) {
			return nil, fmt.Errorf("certificate extension %s (%s): value %q is not valid UTF-8", f.name, f.oid, v)
		}
		val := []byte(v)
		if !f.legacy {
			var err error
			if val, err = asn1.MarshalWithParams(v, "utf8"); err != nil {
				return nil, fmt.Errorf("certificate extension %s (%s): %v", f.name, f.oid, err)
			}
		}
		out = append(out, pkix.Extension{Id: f.oid, Value: val})
	}
	return out, nil
}

// Parse reads the Fulcio extensions out of a certificate's extension list,
// ignoring every other extension. It reads both the deprecated raw-string
// issuer (.1) and the DER one (.8); when both are present they must agree, so
// that no two verifiers can read different issuers from the same certificate.
func Parse(exts []pkix.Extension) (Extensions, error) {
	var out Extensions
	var legacyIssuer string
	seen := make(map[int]bool, 8)
	for _, ext := range exts {
		idx := fieldIndex(ext.Id)
		if idx < 0 {
			continue
		}
		f := &fields[idx]
		if seen[idx] {
			return Extensions{}, fmt.Errorf("certificate extension %s (%s) appears more than once", f.name, f.oid)
		}
		seen[idx] = true
		if f.legacy {
			if !utf8.Valid(ext.Value) {
				return Extensions{}, fmt.Errorf("certificate extension %s (%s) is not valid UTF-8", f.name, f.oid)
			}
			if idx == 0 {
				legacyIssuer = string(ext.Value)
				continue
			}
			*f.get(&out) = string(ext.Value)
			continue
		}
		v, err := parseUTF8String(ext.Value)
		if err != nil {
			return Extensions{}, fmt.Errorf("certificate extension %s (%s): %v", f.name, f.oid, err)
		}
		*f.get(&out) = v
	}
	switch {
	case out.Issuer == "":
		out.Issuer = legacyIssuer
	case legacyIssuer != "" && legacyIssuer != out.Issuer:
		return Extensions{}, fmt.Errorf("certificate names two different OIDC issuers: %q in %s and %q in %s", legacyIssuer, OIDIssuer, out.Issuer, OIDIssuerV2)
	}
	return out, nil
}

// FromCertificate is Parse applied to a certificate's extensions.
func FromCertificate(cert *x509.Certificate) (Extensions, error) {
	return Parse(cert.Extensions)
}

func fieldIndex(oid asn1.ObjectIdentifier) int {
	// Every Fulcio OID is 1.3.6.1.4.1.57264.1.N; check the arc once, then N.
	if len(oid) != 9 || !oid[:8].Equal(OIDIssuer[:8]) {
		return -1
	}
	for i := range fields {
		if fields[i].oid[8] == oid[8] {
			return i
		}
	}
	return -1
}

// parseUTF8String decodes a DER UTF8String, the encoding oid-info.md mandates
// for .8 onwards, refusing other string types and trailing bytes.
func parseUTF8String(der []byte) (string, error) {
	var raw asn1.RawValue
	rest, err := asn1.Unmarshal(der, &raw)
	if err != nil {
		return "", fmt.Errorf("value is not DER: %v", err)
	}
	if len(rest) != 0 {
		return "", errors.New("value has trailing bytes after the DER string")
	}
	if raw.Class != asn1.ClassUniversal || raw.Tag != asn1.TagUTF8String || raw.IsCompound {
		return "", fmt.Errorf("value is ASN.1 tag %d class %d, want a UTF8String (tag 12)", raw.Tag, raw.Class)
	}
	if !utf8.Valid(raw.Bytes) {
		return "", errors.New("UTF8String is not valid UTF-8")
	}
	return string(raw.Bytes), nil
}

// Difference names the first extension, other than the issuer, that want
// sets and got does not match: its name and OID as Fulcio's docs list them
// (e.g. "Source Repository Ref (1.3.6.1.4.1.57264.1.14)"). ok is false when
// every set field matches. Empty fields of want are not compared.
func Difference(want, got Extensions) (name, wantValue, gotValue string, ok bool) {
	for _, f := range fields {
		if f.get(&want) == &want.Issuer {
			continue // matched on its own, exactly or by pattern
		}
		w, g := *f.get(&want), *f.get(&got)
		if w != "" && w != g {
			return fmt.Sprintf("%s (%s)", f.name, f.oid), w, g, true
		}
	}
	return "", "", "", false
}
