package action

import (
	"cmp"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/signet-dev/signet/buildpack"
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/pipeline"
)

// Entry is one bundle the action wrote or verified.
type Entry struct {
	Kind          string    `json:"kind"`
	PredicateType string    `json:"predicateType,omitempty"`
	Subjects      []Subject `json:"-"`
	BundlePath    string    `json:"bundlePath"`
	// Identity and Issuer are the signing certificate's.
	Identity string `json:"identity"`
	Issuer   string `json:"issuer"`
	LogIndex int64  `json:"logIndex"`
	// LogOrigin is the checkpoint origin of the log entry's proof.
	LogOrigin      string `json:"logOrigin,omitempty"`
	AttestationID  string `json:"attestationId,omitempty"`
	AttestationURL string `json:"attestationUrl,omitempty"`
	// Referrer is the OCI referrer the bundle was attached as.
	Referrer string `json:"referrer,omitempty"`
	// LogEntries are all the bundle's entries, named as the CLI's -o json
	// names them (logIndex and logOrigin above are the first one's).
	LogEntries []pipeline.LogEntry `json:"logEntries"`
}

// MarshalJSON adds the subjects in in-toto form.
func (e Entry) MarshalJSON() ([]byte, error) {
	type plain Entry
	subs := make([]map[string]any, len(e.Subjects))
	for i, s := range e.Subjects {
		subs[i] = map[string]any{"name": s.Name, "digest": map[string]string{"sha256": s.SHA256}}
	}
	if e.LogEntries == nil {
		e.LogEntries = []pipeline.LogEntry{}
	}
	// bundle is the CLI's name for bundlePath, which stays for workflows
	// that read it.
	return json.Marshal(struct {
		plain
		Bundle   string           `json:"bundle"`
		Subjects []map[string]any `json:"subjects"`
	}{plain(e), e.BundlePath, subs})
}

// report is what one run did.
type report struct {
	Mode    Mode
	Server  string
	Entries []Entry
	// Image is the image signed or verified, repository@sha256:<hex>, when
	// the run had one.
	Image string
	// Build is what mode buildpack read.
	Build *buildpack.Build
}

// writeOutputs sets the step outputs. Lists are one value a line, in the
// order of the bundles output, so later steps can pair them up.
func (r *runner) writeOutputs(rep *report) {
	if r.o.Getenv("GITHUB_OUTPUT") == "" {
		return // not in a workflow (go-githubactions would panic)
	}
	var paths, indexes, ids, urls []string
	anyPath := false
	for _, e := range rep.Entries {
		paths = append(paths, e.BundlePath)
		anyPath = anyPath || e.BundlePath != ""
		indexes = append(indexes, strconv.FormatInt(e.LogIndex, 10))
		if e.AttestationID != "" {
			ids = append(ids, e.AttestationID)
			urls = append(urls, e.AttestationURL)
		}
	}
	if !anyPath {
		paths = nil // mode buildpack only attaches: no blank lines
	}
	r.a.SetOutput("bundle-path", strings.Join(paths, "\n"))
	r.a.SetOutput("log-index", strings.Join(indexes, "\n"))
	r.a.SetOutput("attestation-id", strings.Join(ids, "\n"))
	r.a.SetOutput("attestation-url", strings.Join(urls, "\n"))
	js, _ := json.Marshal(rep.Entries)
	r.a.SetOutput("bundles", string(js))
	if rep.Mode == ModeVerify {
		r.a.SetOutput("verified", "true")
	}
	// Later steps (deploy, cosign verify) need the digest, and in mode
	// buildpack only report.toml knew it.
	if rep.Image != "" {
		_, digest, _ := strings.Cut(rep.Image, "@")
		r.a.SetOutput("image", rep.Image)
		r.a.SetOutput("digest", digest)
	}
}

func (r *runner) summaryEnabled() bool { return r.o.Getenv("GITHUB_STEP_SUMMARY") != "" }

// writeSummary renders the job summary: what was signed, where the bundles
// and log entries are, and how to verify them.
func (r *runner) writeSummary(rep *report) {
	if !r.summaryEnabled() {
		return
	}
	var b strings.Builder
	if rep.Mode == ModeVerify {
		b.WriteString("## signet: verified\n\n")
		b.WriteString("| Bundle | Kind | Subject | SHA-256 | Signer | Log entry |\n|---|---|---|---|---|---|\n")
	} else {
		b.WriteString("## signet: signed\n\n")
		if rep.Build != nil {
			writeBuild(&b, rep.Build)
		}
		b.WriteString("| Subject | SHA-256 | Kind | Bundle | Log entry | Attestation |\n|---|---|---|---|---|---|\n")
	}
	for _, e := range rep.Entries {
		for _, s := range e.Subjects {
			logCell := fmt.Sprintf("%d", e.LogIndex)
			if e.LogOrigin != "" {
				logCell += " in " + e.LogOrigin
			}
			if rep.Mode == ModeVerify {
				fmt.Fprintf(&b, "| %s | %s | %s | `%s` | %s | %s |\n", cell(e.BundlePath), kindCell(e), cell(s.Name), s.SHA256, cell(e.Identity), cell(logCell))
				continue
			}
			att := ""
			if e.AttestationURL != "" {
				att = fmt.Sprintf("[%s](%s)", cell(e.AttestationID), e.AttestationURL)
			}
			// An attached bundle is named by its referrer, which outlives
			// the runner's files.
			fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %s | %s |\n", cell(s.Name), s.SHA256, kindCell(e), cell(cmp.Or(e.Referrer, e.BundlePath)), cell(logCell), att)
		}
	}
	if rep.Mode != ModeVerify && len(rep.Entries) > 0 {
		b.WriteString("\n### Verify\n\n")
		e := rep.Entries[0]
		fmt.Fprintf(&b, "Signed as `%s` (issuer `%s`).\n\n```sh\n", e.Identity, e.Issuer)
		for _, c := range verifyCommands(rep) {
			b.WriteString(c + "\n")
		}
		b.WriteString("```\n")
	}
	r.a.AddStepSummary(b.String())
}

// writeBuild describes a buildpacks build: what the SBOM and provenance
// attestations below are of.
func writeBuild(b *strings.Builder, bd *buildpack.Build) {
	fmt.Fprintf(b, "Cloud Native Buildpacks build of `%s`", bd.Image)
	if len(bd.Tags) > 0 {
		fmt.Fprintf(b, " (%s)", cell(strings.Join(bd.Tags, ", ")))
	}
	b.WriteString("\n\n| | |\n|---|---|\n")
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(b, "| %s | %s |\n", k, cell(v))
		}
	}
	lifecycle := bd.Lifecycle
	if bd.PlatformAPI != "" {
		lifecycle += ", Platform API " + bd.PlatformAPI
	}
	row("Lifecycle", lifecycle)
	row("Builder", cmp.Or(bd.Builder.Digest, bd.Builder.Reference))
	row("Run image", cmp.Or(bd.RunImage.Digest, bd.RunImage.Reference))
	for _, bp := range bd.Buildpacks {
		row("Buildpack", bp.ID+"@"+bp.Version)
	}
	for _, s := range bd.SBOMs {
		row(s.Scope+" SBOM", fmt.Sprintf("%s (%s, %s)", s.Name, s.Buildpack, intoto.ShortName(s.PredicateType)))
	}
	b.WriteString("\n")
}

func (r *runner) writeFailureSummary(rep *report, msg string) {
	if !r.summaryEnabled() {
		return
	}
	var b strings.Builder
	b.WriteString("## signet: failed\n\n")
	b.WriteString("> " + strings.ReplaceAll(msg, "\n", "\n> ") + "\n")
	if rep != nil && len(rep.Entries) > 0 {
		b.WriteString("\nWritten before the failure:\n\n")
		for _, e := range rep.Entries {
			fmt.Fprintf(&b, "- %s: `%s`\n", e.Kind, e.BundlePath)
		}
	}
	r.a.AddStepSummary(b.String())
}

func kindCell(e Entry) string {
	if e.Kind == KindAttestation {
		return cell(e.PredicateType)
	}
	return e.Kind
}

// verifyCommands are copy-paste commands that check the bundles with the
// signer identity of this run: verify-blob for files, verify and
// verify-attestation for images (which read the attached bundles), the
// action's verify mode for digests (which have no file to hand the CLI).
func verifyCommands(rep *report) []string {
	var out []string
	seen := map[string]bool{}
	for _, e := range rep.Entries {
		policy := fmt.Sprintf("--certificate-identity %s --certificate-oidc-issuer %s --server %s", shellQuote(e.Identity), shellQuote(e.Issuer), shellQuote(rep.Server))
		file := ""
		if len(e.Subjects) > 0 {
			file = e.Subjects[0].Path
		}
		switch {
		case len(e.Subjects) > 0 && e.Subjects[0].Image != nil:
			// One command per image and type: it checks every bundle of
			// that type attached (a build has several SBOMs of one type).
			for _, s := range e.Subjects {
				c := "signet verify " + shellQuote(s.Image.String()) + " " + policy
				if e.Kind != KindSignature {
					c = "signet verify-attestation " + shellQuote(s.Image.String()) + " --type " + shellQuote(typeArg(e)) + " " + policy
				}
				if !seen[c] {
					seen[c] = true
					out = append(out, c)
				}
			}
		case file == "":
			out = append(out, fmt.Sprintf("# %s of %s: in a workflow, uses: signet-dev/signet@v1 with mode: verify, bundle-path: %s, certificate-identity: %s, certificate-oidc-issuer: %s", e.Kind, subjectList(e.Subjects), e.BundlePath, e.Identity, e.Issuer))
		case e.Kind == KindSignature:
			out = append(out, fmt.Sprintf("signet verify-blob %s --bundle %s %s", shellQuote(file), shellQuote(e.BundlePath), policy))
		default:
			for _, s := range e.Subjects {
				out = append(out, fmt.Sprintf("signet verify-blob-attestation %s --bundle %s --type %s %s", shellQuote(s.Path), shellQuote(e.BundlePath), shellQuote(typeArg(e)), policy))
			}
		}
	}
	return out
}

func typeArg(e Entry) string {
	return intoto.ShortName(e.PredicateType)
}

func subjectList(subs []Subject) string {
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.Name + "@sha256:" + s.SHA256[:12]
	}
	return strings.Join(names, ", ")
}

// cell escapes a Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/._-:@=+,", c))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
