package action

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	githubactions "github.com/sethvargo/go-githubactions"

	"github.com/signet-dev/signet/buildpack"
	"github.com/signet-dev/signet/core/intoto"
)

// Mode is what the action does.
type Mode string

// The modes of the `mode` input.
const (
	// ModeSign signs each file (or the image) and adds the attestations the
	// inputs ask for (provenance by default).
	ModeSign Mode = "sign"
	// ModeAttest only attests: subjects may be digests without content.
	ModeAttest Mode = "attest"
	// ModeVerify verifies bundles against a signer policy, offline.
	ModeVerify Mode = "verify"
	// ModeBuildpack signs the image a Cloud Native Buildpacks build
	// exported and attests its SBOMs and provenance (package buildpack).
	ModeBuildpack Mode = "buildpack"
)

// Inputs are the action's inputs (action.yml), parsed and checked.
type Inputs struct {
	Mode   Mode
	Server string

	// Subjects: exactly one of these kinds is given.
	SubjectPaths     []string // glob patterns, one a line; "!pattern" excludes
	SubjectDigest    string   // "sha256:<hex>", with SubjectName
	SubjectName      string
	SubjectChecksums string // a sha256sum file
	Image            string

	PushToRegistry bool
	SBOMPath       string
	PredicateType  string // resolved URI
	Predicate      string
	PredicatePath  string
	Provenance     bool
	BundleDir      string
	ShowSummary    bool

	// Verify mode.
	BundlePaths        []string
	CertIdentity       string
	CertIdentityRegexp string
	CertIssuer         string
	CertIssuerRegexp   string
	TrustedRoot        string

	// Buildpack mode.
	Layers      string // pack's --report-output-dir, or a lifecycle layers directory
	Builder     string // the builder image pack ran
	PlatformAPI string
}

// inputError is a mistake in the workflow's `with:` block.
type inputError struct {
	input string
	msg   string
}

func (e *inputError) Error() string { return "input " + e.input + ": " + e.msg }

func badInput(input, format string, args ...any) error {
	return &inputError{input: input, msg: fmt.Sprintf(format, args...)}
}

// ReadInputs reads and checks the inputs. getenv supplies SIGNET_SERVER when
// the server input is empty.
func ReadInputs(a *githubactions.Action, getenv func(string) string) (*Inputs, error) {
	in := &Inputs{
		Mode:               Mode(strings.ToLower(strings.TrimSpace(a.GetInput("mode")))),
		Server:             strings.TrimSpace(a.GetInput("server")),
		SubjectPaths:       lines(a.GetInput("subject-path")),
		SubjectDigest:      strings.TrimSpace(a.GetInput("subject-digest")),
		SubjectName:        strings.TrimSpace(a.GetInput("subject-name")),
		SubjectChecksums:   strings.TrimSpace(a.GetInput("subject-checksums")),
		Image:              strings.TrimSpace(a.GetInput("image")),
		SBOMPath:           strings.TrimSpace(a.GetInput("sbom-path")),
		Predicate:          a.GetInput("predicate"),
		PredicatePath:      strings.TrimSpace(a.GetInput("predicate-path")),
		BundleDir:          strings.TrimSpace(a.GetInput("bundle-dir")),
		BundlePaths:        lines(a.GetInput("bundle-path")),
		CertIdentity:       strings.TrimSpace(a.GetInput("certificate-identity")),
		CertIdentityRegexp: strings.TrimSpace(a.GetInput("certificate-identity-regexp")),
		CertIssuer:         strings.TrimSpace(a.GetInput("certificate-oidc-issuer")),
		CertIssuerRegexp:   strings.TrimSpace(a.GetInput("certificate-oidc-issuer-regexp")),
		TrustedRoot:        strings.TrimSpace(a.GetInput("trusted-root")),
		Layers:             strings.TrimSpace(a.GetInput("layers")),
		Builder:            strings.TrimSpace(a.GetInput("builder")),
		PlatformAPI:        strings.TrimSpace(a.GetInput("platform-api")),
	}
	if in.Mode == "" {
		in.Mode = ModeSign
	}
	if pt := strings.TrimSpace(a.GetInput("predicate-type")); pt != "" {
		uri, err := intoto.PredicateType(pt)
		if err != nil {
			return nil, badInput("predicate-type", "%v", err)
		}
		in.PredicateType = uri
	}
	switch in.Mode {
	case ModeSign, ModeAttest, ModeVerify, ModeBuildpack:
	default:
		return nil, badInput("mode", "%q is not a mode; use sign, attest, verify or buildpack", in.Mode)
	}
	var err error
	if in.Provenance, err = boolInput(a, "provenance", true); err != nil {
		return nil, err
	}
	if in.PushToRegistry, err = boolInput(a, "push-to-registry", false); err != nil {
		return nil, err
	}
	if in.ShowSummary, err = boolInput(a, "show-summary", true); err != nil {
		return nil, err
	}
	if in.Server == "" {
		in.Server = strings.TrimSpace(getenv("SIGNET_SERVER"))
	}
	if in.Server != "" {
		u, err := url.Parse(in.Server)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, badInput("server", "%q is not an http(s) URL; give the signet server's base URL, e.g. https://signet.example.com", in.Server)
		}
		in.Server = strings.TrimRight(in.Server, "/")
	}
	if in.Mode == ModeBuildpack {
		return in, in.checkBuildpack()
	}
	for _, f := range [][2]string{{"layers", in.Layers}, {"builder", in.Builder}, {"platform-api", in.PlatformAPI}} {
		if f[1] != "" {
			return nil, badInput(f[0], "%s is an input of mode buildpack; in mode %s it does nothing (set mode: buildpack to sign a pack build)", f[0], in.Mode)
		}
	}
	if err := in.checkSubjects(); err != nil {
		return nil, err
	}
	if in.Mode == ModeVerify {
		return in, in.checkVerify()
	}
	return in, in.checkSigning()
}

// checkSubjects enforces one kind of subject, as actions/attest does: mixing
// them would make it unclear what one attestation is about.
func (in *Inputs) checkSubjects() error {
	var given []string
	if len(in.SubjectPaths) > 0 {
		given = append(given, "subject-path")
	}
	if in.SubjectDigest != "" || in.SubjectName != "" {
		given = append(given, "subject-digest")
	}
	if in.SubjectChecksums != "" {
		given = append(given, "subject-checksums")
	}
	if in.Image != "" {
		given = append(given, "image")
	}
	switch {
	case len(given) == 0:
		return badInput("subject-path", "no subject: give subject-path (files, globs allowed), subject-digest with subject-name, subject-checksums (a sha256sum file) or image")
	case len(given) > 1:
		return badInput(given[1], "give only one of subject-path, subject-digest, subject-checksums and image (got %s)", strings.Join(given, " and "))
	}
	if in.SubjectDigest != "" || in.SubjectName != "" {
		if in.SubjectDigest == "" || in.SubjectName == "" {
			return badInput("subject-digest", "subject-digest and subject-name go together: the digest says what, the name says which artifact")
		}
		if _, err := parseDigest(in.SubjectDigest); err != nil {
			return badInput("subject-digest", "%v", err)
		}
	}
	return nil
}

func (in *Inputs) checkSigning() error {
	if in.Server == "" {
		return badInput("server", "no signet server: set the server input (or SIGNET_SERVER) to the server's URL, e.g. https://signet.example.com")
	}
	if in.Mode == ModeSign && (in.SubjectDigest != "" || in.SubjectChecksums != "") {
		return badInput("mode", "mode sign signs file contents, but subject-digest/subject-checksums name artifacts by digest only; use mode: attest, or subject-path")
	}
	if in.PushToRegistry && in.Image == "" {
		return badInput("push-to-registry", "push-to-registry attaches bundles to an image; set the image input too")
	}
	if in.Predicate != "" && in.PredicatePath != "" {
		return badInput("predicate", "give predicate or predicate-path, not both")
	}
	if (in.Predicate != "" || in.PredicatePath != "") && in.PredicateType == "" {
		return badInput("predicate-type", "a predicate needs its type: set predicate-type (a URI, or slsaprovenance1, spdxjson, cyclonedx)")
	}
	if in.PredicateType != "" && in.Predicate == "" && in.PredicatePath == "" {
		return badInput("predicate", "predicate-type %s is set but there is no predicate: give predicate (JSON) or predicate-path (a JSON file)", in.PredicateType)
	}
	if len(in.BundlePaths) > 0 {
		return badInput("bundle-path", "bundle-path is an input of mode verify only; in mode %s the bundles are written and bundle-path is an output (choose the directory with bundle-dir)", in.Mode)
	}
	return nil
}

func (in *Inputs) checkVerify() error {
	if in.TrustedRoot == "" && in.Server == "" {
		return badInput("trusted-root", "verification needs trust: give trusted-root (a trusted_root.json, fully offline) or server (its trusted_root.json is fetched)")
	}
	if len(in.BundlePaths) == 0 && in.Image == "" {
		return badInput("bundle-path", "nothing to verify: give bundle-path (bundle files, globs allowed), or image to verify the bundles attached to it")
	}
	if (in.CertIdentity == "") == (in.CertIdentityRegexp == "") {
		return badInput("certificate-identity", "give exactly one of certificate-identity and certificate-identity-regexp: whom you trust, e.g. https://github.com/OWNER/REPO/.github/workflows/release.yml@refs/heads/main")
	}
	if (in.CertIssuer == "") == (in.CertIssuerRegexp == "") {
		return badInput("certificate-oidc-issuer", "give exactly one of certificate-oidc-issuer and certificate-oidc-issuer-regexp, e.g. https://token.actions.githubusercontent.com")
	}
	if in.SubjectChecksums != "" {
		return badInput("subject-checksums", "verify mode checks files or digests: give subject-path or subject-digest")
	}
	if in.SBOMPath != "" || in.Predicate != "" || in.PredicatePath != "" {
		return badInput("sbom-path", "sbom-path, predicate and predicate-path make attestations; they do not apply to mode verify (use predicate-type to require a type)")
	}
	return nil
}

// checkBuildpack: the build says what is signed and attested, so the
// inputs that name subjects or predicates would contradict it.
func (in *Inputs) checkBuildpack() error {
	if in.Server == "" {
		return badInput("server", "no signet server: set the server input (or SIGNET_SERVER) to the server's URL, e.g. https://signet.example.com")
	}
	if in.Layers == "" {
		return badInput("layers", "mode buildpack needs the build's output: set layers to the directory given to pack build --report-output-dir (with --sbom-output-dir <that directory>/sbom), or to the lifecycle's layers directory")
	}
	for _, c := range []struct {
		name  string
		given bool
		why   string
	}{
		{"subject-path", len(in.SubjectPaths) > 0, "the image report.toml names is the subject"},
		{"subject-digest", in.SubjectDigest != "" || in.SubjectName != "", "the image report.toml names is the subject"},
		{"subject-checksums", in.SubjectChecksums != "", "the image report.toml names is the subject"},
		{"image", in.Image != "", "the image report.toml names is the subject (its digest is the image output)"},
		{"sbom-path", in.SBOMPath != "", "every SBOM the buildpacks wrote is attested"},
		{"predicate-type", in.PredicateType != "", "the attestations are the build's SBOMs and provenance"},
		{"predicate", in.Predicate != "", "the attestations are the build's SBOMs and provenance"},
		{"predicate-path", in.PredicatePath != "", "the attestations are the build's SBOMs and provenance"},
		{"bundle-path", len(in.BundlePaths) > 0, "bundle-path is an input of mode verify"},
	} {
		if c.given {
			return badInput(c.name, "mode buildpack does not take %s: %s; remove it", c.name, c.why)
		}
	}
	if in.PlatformAPI != "" && !supportedPlatformAPI(in.PlatformAPI) {
		return badInput("platform-api", "%q: signet reads lifecycle output of Platform API %s to %s; give the CNB_PLATFORM_API the build ran with, or leave platform-api out", in.PlatformAPI, buildpack.MinPlatformAPI, buildpack.MaxPlatformAPI)
	}
	return nil
}

// supportedPlatformAPI checks v (0.N) against buildpack's bounds here, so a
// typo is an input error before anything is read.
func supportedPlatformAPI(v string) bool {
	minor := func(v string) int {
		m, ok := strings.CutPrefix(v, "0.")
		n, err := strconv.Atoi(m)
		if !ok || err != nil || strconv.Itoa(n) != m {
			return -1
		}
		return n
	}
	n := minor(v)
	return n >= 0 && n >= minor(buildpack.MinPlatformAPI) && n <= minor(buildpack.MaxPlatformAPI)
}

func boolInput(a *githubactions.Action, name string, def bool) (bool, error) {
	v := strings.TrimSpace(a.GetInput(name))
	switch strings.ToLower(v) {
	case "":
		return def, nil
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, badInput(name, "%q is not a boolean; use true or false", v)
}

// lines splits a multi-line input into its non-empty, trimmed lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
