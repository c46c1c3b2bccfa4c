package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/buildpack"
	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/pipeline"
)

// buildpackFlags are the image verbs' signing and registry flags plus where
// the lifecycle left its output.
type buildpackFlags struct {
	s          signFlags
	reg        registryFlags
	legacyTags bool

	layers, report, analyzed, group, platformAPI string
	image                                        string
	builder, platform, builderID                 string
	sourceURI, sourceDigest                      string
	startedOn, finishedOn                        string
	summary                                      string
}

func (f *buildpackFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	f.s.addCommon(fs)
	fs.StringVar(&f.layers, "layers", cmp.Or(os.Getenv("CNB_LAYERS_DIR"), "/layers"), "the lifecycle's layers directory (default $CNB_LAYERS_DIR, else /layers; with --image, \"\" for none)")
	fs.StringVar(&f.image, "image", "", "sign this exported image instead of report.toml's, where the platform leaves no report (kpack: the Build's status.latestImage); build SBOMs are read only if --layers has them")
	fs.StringVar(&f.report, "report", os.Getenv("CNB_REPORT_PATH"), "report.toml the exporter wrote (default $CNB_REPORT_PATH, else <layers>/report.toml)")
	fs.StringVar(&f.analyzed, "analyzed", os.Getenv("CNB_ANALYZED_PATH"), "analyzed.toml (default $CNB_ANALYZED_PATH, else <layers>/analyzed.toml)")
	fs.StringVar(&f.group, "group", os.Getenv("CNB_GROUP_PATH"), "group.toml (default $CNB_GROUP_PATH, else <layers>/group.toml)")
	fs.StringVar(&f.platformAPI, "platform-api", os.Getenv("CNB_PLATFORM_API"), "the Platform API the lifecycle ran with, 0.7 to 0.15 (default $CNB_PLATFORM_API)")
	fs.StringVar(&f.builder, "builder", os.Getenv("CNB_BUILD_IMAGE"), "the builder image the build ran in, resolved to a digest for the provenance (default $CNB_BUILD_IMAGE, else analyzed.toml's build image)")
	fs.StringVar(&f.platform, "platform", "", "who ran the build, for the provenance: pack, kpack, tekton, github-actions, …")
	fs.StringVar(&f.builderID, "builder-id", "", "the provenance's runDetails.builder.id (default "+buildpack.BuildType+"/platform/<platform>)")
	fs.StringVar(&f.sourceURI, "source-uri", "", "the source the build was given, e.g. git+https://github.com/acme/app (default: the image's io.buildpacks.project.metadata label)")
	fs.StringVar(&f.sourceDigest, "source-digest", "", "the source's digest as ALG:VALUE: gitCommit:<sha>, sha1:<hex>, sha256:<hex>")
	fs.StringVar(&f.startedOn, "started-on", "", "when the build started, RFC 3339 (default: when the lifecycle wrote its first file)")
	fs.StringVar(&f.finishedOn, "finished-on", "", "when the build finished, RFC 3339 (default: when the exporter wrote report.toml)")
	fs.StringVar(&f.summary, "summary", "", "also write the result as JSON to FILE, for later steps (written whole, after everything is attached)")
	fs.BoolVar(&f.legacyTags, "legacy-tags", false, "also write cosign's legacy sha256-<hex>.sig/.att tags, for policy engines that read only those")
	f.reg.add(fs)
	f.s.out.add(fs)
}

// buildpackSBOM is one SBOM attested (--output json).
type buildpackSBOM struct {
	Scope         string `json:"scope"`
	Buildpack     string `json:"buildpack"`
	Path          string `json:"path"`
	PredicateType string `json:"predicateType"`
}

// buildpackResult is what signet buildpack reports (--output json, --summary).
type buildpackResult struct {
	Image       string          `json:"image"`
	Tags        []string        `json:"tags"`
	PlatformAPI string          `json:"platformApi,omitempty"`
	Lifecycle   string          `json:"lifecycle,omitempty"`
	Builder     string          `json:"builder,omitempty"`
	RunImage    string          `json:"runImage,omitempty"`
	Buildpacks  []string        `json:"buildpacks"`
	SBOMs       []buildpackSBOM `json:"sboms"`
	Signed      []imageSigned   `json:"signed"`
}

func (r *buildpackResult) print(w io.Writer) {
	fmt.Fprintf(w, "build of %s (%s)\n", r.Image, strings.Join(r.Tags, ", "))
	fmt.Fprintf(w, "  lifecycle  %s, Platform API %s\n", r.Lifecycle, r.PlatformAPI)
	if r.Builder != "" {
		fmt.Fprintf(w, "  builder    %s\n", r.Builder)
	}
	if r.RunImage != "" {
		fmt.Fprintf(w, "  run image  %s\n", r.RunImage)
	}
	for _, b := range r.Buildpacks {
		fmt.Fprintf(w, "  buildpack  %s\n", b)
	}
	for _, s := range r.SBOMs {
		fmt.Fprintf(w, "  sbom       %s %s (%s, %s)\n", s.Scope, s.Path, s.Buildpack, s.PredicateType)
	}
	(&imageSignResult{Signed: r.Signed}).print(w)
}

func (f *buildpackFlags) options(c *oci.Client) (buildpack.Options, error) {
	o := buildpack.Options{
		LayersDir: f.layers, Image: f.image, ReportPath: f.report, AnalyzedPath: f.analyzed, GroupPath: f.group,
		PlatformAPI: f.platformAPI, Client: c, BuilderImage: f.builder,
		Platform: f.platform, BuilderID: f.builderID,
		Source: buildpack.Source{URI: f.sourceURI},
	}
	if f.sourceDigest != "" {
		alg, val, ok := strings.Cut(f.sourceDigest, ":")
		if !ok || alg == "" || val == "" {
			return o, usageError{fmt.Errorf("--source-digest %q: write it as ALG:VALUE, e.g. gitCommit:4f1e…", f.sourceDigest)}
		}
		o.Source.Digest = map[string]string{alg: val}
	}
	for _, t := range []struct {
		flag, v string
		to      *time.Time
	}{{"--started-on", f.startedOn, &o.StartedOn}, {"--finished-on", f.finishedOn, &o.FinishedOn}} {
		if t.v == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339, t.v)
		if err != nil {
			return o, usageError{fmt.Errorf("%s %q: give an RFC 3339 time, e.g. 2026-12-01T10:00:00Z", t.flag, t.v)}
		}
		*t.to = v
	}
	if f.layers == "" && f.image == "" {
		return o, usageError{errors.New("--layers: give the lifecycle's layers directory, or --image")}
	}
	if f.image != "" && f.report != "" {
		return o, usageError{errors.New("--image and --report exclude each other: --image names the exported image where there is no report.toml")}
	}
	if f.image != "" {
		if _, err := c.ParseReference(f.image); err != nil {
			return o, usageError{fmt.Errorf("--image: %w", err)}
		}
		if st, err := os.Stat(f.layers); f.layers != "" && (err != nil || !st.IsDir()) {
			// The default /layers is not there outside a build pod.
			o.LayersDir = ""
		}
	}
	return o, nil
}

// checkSummary refuses a --summary that could not be written, before
// anything is signed.
func checkSummary(path string) error {
	if path == "" {
		return nil
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".signet-summary-*")
	if err != nil {
		return usageError{fmt.Errorf("--summary %s: cannot write there: %v", path, err)}
	}
	tmp.Close()
	return os.Remove(tmp.Name())
}

func writeSummary(path string, res *buildpackResult) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".signet-summary-*")
	if err != nil {
		return fmt.Errorf("--summary: %v", err)
	}
	defer os.Remove(tmp.Name())
	if err := writeJSON(tmp, res); err != nil {
		tmp.Close()
		return fmt.Errorf("--summary: %v", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("--summary: %v", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("--summary: %v", err)
	}
	return nil
}

func (f *buildpackFlags) run(cmd *cobra.Command) error {
	if err := f.s.out.check(); err != nil {
		return err
	}
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	c := f.reg.client()
	bo, err := f.options(c)
	if err != nil {
		return err
	}
	if err := checkSummary(f.summary); err != nil {
		return err
	}
	o, who, err := f.s.options(ctx, stderr)
	if err != nil {
		return err
	}
	v, err := f.s.verifier(ctx, stderr)
	if err != nil {
		return err
	}
	b, err := buildpack.Read(ctx, bo)
	if err != nil {
		return buildpackRemedy(err)
	}
	plan, err := b.Plan([]pipeline.Destination{&pipeline.Referrers{Client: c, LegacyTags: f.legacyTags, BeforeAttach: beforeAttach}})
	if err != nil {
		return err
	}
	plan.Progress = imageProgress(stderr, who, o.Progress)
	plan.Verifier = v
	// A build's bundles (signature, SBOMs, provenance) are made at once:
	// the hook's time is added to every build.
	plan.Concurrency = 8
	res := newBuildpackResult(b)
	rep, err := pipeline.Run(ctx, o, plan)
	res.Signed = append(res.Signed, imageSignedOfReport(stderr, rep)...)
	if err != nil {
		if n := len(res.Signed); n > 0 {
			fmt.Fprintf(stderr, "note: %d bundle(s) were made and stay attached; the summary was not written\n", n)
		}
		return err
	}
	if f.summary != "" {
		if err := writeSummary(f.summary, res); err != nil {
			return err
		}
	}
	if f.s.out.json() {
		return writeJSON(cmd.OutOrStdout(), res)
	}
	res.print(cmd.OutOrStdout())
	return nil
}

func newBuildpackResult(b *buildpack.Build) *buildpackResult {
	res := &buildpackResult{
		Image: b.Image.Digest.String(), Tags: b.Tags, PlatformAPI: b.PlatformAPI, Lifecycle: b.Lifecycle,
		Builder: b.Builder.Digest, RunImage: b.RunImage.Digest,
		Buildpacks: []string{}, SBOMs: []buildpackSBOM{}, Signed: []imageSigned{},
	}
	if res.Tags == nil {
		res.Tags = []string{}
	}
	for _, bp := range b.Buildpacks {
		res.Buildpacks = append(res.Buildpacks, bp.ID+"@"+bp.Version)
	}
	for _, s := range b.SBOMs {
		res.SBOMs = append(res.SBOMs, buildpackSBOM{Scope: s.Scope, Buildpack: s.Buildpack, Path: s.Name, PredicateType: s.PredicateType})
	}
	return res
}

// buildpackRemedy adds, to what buildpack.Read found wrong, the flag or
// platform setting that changes it.
func buildpackRemedy(err error) error {
	var (
		rn *buildpack.ReportNotFoundError
		de *buildpack.DaemonExportError
		dm *buildpack.DigestMismatchError
		se *buildpack.SBOMError
		me *buildpack.MismatchError
	)
	switch {
	case errors.As(err, &rn):
		return fmt.Errorf("%w; pass --layers DIR (the layers directory the lifecycle exported from) or --report FILE", err)
	case errors.As(err, &de):
		return fmt.Errorf("%w; then run signet buildpack on that build's layers", err)
	case errors.As(err, &dm):
		return fmt.Errorf("%w; run signet buildpack right after the export, before anything else pushes to the tag", err)
	case errors.As(err, &se):
		return fmt.Errorf("%w; nothing was signed: fix the SBOM the buildpack writes", err)
	case errors.As(err, &me):
		return fmt.Errorf("%w; pass the --layers directory of the build that exported the image", err)
	}
	return err
}

func newBuildpackCmd() *cobra.Command {
	var f buildpackFlags
	cmd := &cobra.Command{
		Use:   "buildpack",
		Short: "Sign and attest the image a Cloud Native Buildpacks build exported",
		Long: `Sign the image a Cloud Native Buildpacks build exported, attest each SBOM
the buildpacks produced, and attest SLSA v1 provenance of the build, keyless.
Run it as the step after the lifecycle's export (creator or exporter), in the
same pod or job, with the same layers directory.

It reads what the lifecycle left, per the CNB platform spec (Platform API 0.7
to 0.15): report.toml (the exported tags and digest), the image's
io.buildpacks.lifecycle.metadata and io.buildpacks.build.metadata labels, the
launch SBOMs in the image's SBOM layer, the build SBOMs under
<layers>/sbom/build/, analyzed.toml and group.toml. It signs the exported
digest, never a tag (for an index, every platform manifest too), after
checking that each tag still names it.

Each SBOM is its own attestation: CycloneDX https://cyclonedx.org/bom, SPDX
https://spdx.dev/Document, Syft JSON https://syft.dev/bom. The provenance's
buildType is ` + buildpack.BuildType + ` (docs/buildpack.md), naming the
builder and run images by digest, the lifecycle version, each buildpack
id@version, the source and the build's times. Bundles are attached to the
image as OCI 1.1 referrers in cosign v3's layout; with --server, attestations
are kept in signet's attestation store too.

Nothing is signed or logged when report.toml is missing, the image went to a
Docker daemon (no registry digest), a tag no longer names the exported
digest, or an SBOM is malformed.
` + imageExitHelp + "\n" + registryHelp + "\n" + identityTokenHelp + "\n" + trustHelpSign,
		Example: `  # After 'pack build --publish' in GitHub Actions (pack leaves no layers
  # directory on the host; run the lifecycle with a layers directory, or use
  # the Action, see docs/buildpack.md):
  signet buildpack --layers /layers --server https://signet.example.com --platform pack

  # kpack or Tekton: a step after the export, same /layers volume, the pod's
  # projected token at /var/run/sigstore/cosign/oidc-token:
  signet buildpack --server $SIGNET_SERVER --builder $BUILDER_IMAGE \
    --source-uri git+https://github.com/acme/app --source-digest gitCommit:$COMMIT \
    --summary /workspace/signet.json -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.run(cmd) },
	}
	f.add(cmd)
	return cmd
}
