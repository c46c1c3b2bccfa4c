package action

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/signet-dev/signet/buildpack"
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/pipeline"
	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/token"
)

// Platform is how the buildpack provenance names who ran the build.
const Platform = "github-actions"

// buildpackConcurrency covers a build's signature, SBOMs and provenance.
const buildpackConcurrency = 8

// buildpack signs the image a Cloud Native Buildpacks build exported and
// attests its SBOMs and provenance, as `signet buildpack` does, with the
// source and builder taken from the workflow run.
func (r *runner) buildpack(ctx context.Context) (*report, error) {
	in := r.in
	tok, err := token.Detect(ctx, token.Options{Getenv: r.o.Getenv, HTTPClient: r.o.HTTPClient, Now: r.o.Now})
	if err != nil {
		return nil, err
	}
	r.logf("signing as %s (token from %s)", tok.Claims.Identity(), tok.Source)
	bo := buildpack.Options{
		LayersDir: in.Layers, PlatformAPI: in.PlatformAPI, BuilderImage: in.Builder, Platform: Platform,
		Client: builderRegistry{Registry: r.o.Registry, builder: in.Builder},
	}
	if in.Provenance {
		info, err := r.runInfo(tok.Raw)
		if err != nil {
			return nil, err
		}
		// pack built the workflow's checkout; the builder is the workflow,
		// named as the workflow provenance names it (provenance.go).
		bo.Source = buildpack.Source{URI: "git+" + info.ServerURL + "/" + info.Repository, Digest: map[string]string{"gitCommit": info.SHA}}
		bo.BuilderID = info.ServerURL + "/" + info.JobWorkflowRef
	}
	b, err := buildpack.Read(ctx, bo)
	if err != nil {
		return nil, buildpackRemedy(err)
	}
	r.logf("build of %s (%s): lifecycle %s, %d buildpack(s), %d SBOM(s)", b.Image.Digest, strings.Join(b.Tags, ", "), b.Lifecycle, len(b.Buildpacks), len(b.SBOMs))
	// Files as well as referrers, as image mode writes them: later steps
	// (actions/upload-artifact, a release) get the bundles without a
	// registry round trip.
	tmp := cmp.Or(r.o.Getenv("RUNNER_TEMP"), os.TempDir())
	files := &pipeline.Files{Dir: in.BundleDir, FallbackDir: filepath.Join(tmp, "signet-bundles")}
	plan, err := b.Plan([]pipeline.Destination{files, &pipeline.Referrers{Client: r.o.Registry}})
	if err != nil {
		return nil, err
	}
	if !in.Provenance {
		plan.Attestations = slices.DeleteFunc(plan.Attestations, func(a pipeline.Attestation) bool {
			return a.Type == intoto.PredicateSLSAProvenanceV1
		})
	}
	// A build's bundles are made at once, as signet buildpack makes them:
	// the step's time is added to every build.
	plan.Concurrency = buildpackConcurrency
	plan.Progress = r.progress

	services, err := sign.FromServer(ctx, in.Server, r.o.HTTPClient, r.o.Now())
	if err != nil {
		return nil, err
	}
	rep, err := pipeline.Run(ctx, sign.Options{Services: services, IdentityToken: tok.Raw}, plan)
	out := &report{Mode: in.Mode, Server: in.Server, Image: b.Image.Digest.String(), Build: b}
	if rep != nil {
		for _, bd := range rep.Bundles {
			out.Entries = append(out.Entries, r.entryOf(bd))
		}
	}
	if err != nil {
		return out, r.explain(err, files)
	}
	return out, nil
}

// runInfo is the workflow run, cross-checked with the identity token.
func (r *runner) runInfo(rawToken string) (*RunInfo, error) {
	claims, err := tokenClaims(rawToken)
	if err != nil {
		return nil, err
	}
	ghc, err := r.a.Context()
	if err != nil {
		return nil, fmt.Errorf("reading the workflow run's event (GITHUB_EVENT_PATH): %w", err)
	}
	return ReadRunInfo(r.o.Getenv, ghc.Event, claims)
}

// builderRegistry marks a failure to resolve the builder input, which
// buildpack.Read reports as an untyped error, so it can be blamed on that
// input.
type builderRegistry struct {
	buildpack.Registry
	builder string
}

type builderError struct{ err error }

func (e *builderError) Error() string { return e.err.Error() }
func (e *builderError) Unwrap() error { return e.err }

func (c builderRegistry) Resolve(ctx context.Context, ref string) (*oci.Subject, error) {
	s, err := c.Registry.Resolve(ctx, ref)
	if err != nil && c.builder != "" && ref == c.builder {
		return nil, &builderError{err}
	}
	return s, err
}

// buildpackRemedy says, for what buildpack.Read found wrong, which input
// or which part of the pack build step to change.
func buildpackRemedy(err error) error {
	var (
		rn *buildpack.ReportNotFoundError
		de *buildpack.DaemonExportError
		dm *buildpack.DigestMismatchError
		se *buildpack.SBOMError
		me *buildpack.MismatchError
		fe *buildpack.FileError
		le *buildpack.LabelError
		be *builderError
	)
	switch {
	case errors.As(err, &rn):
		// Not Read's own remedy: it names flags of the CLI.
		return badInput("layers", "no report.toml at %s: set layers to the directory given to pack build --report-output-dir (with --sbom-output-dir <that directory>/sbom), or to the lifecycle's layers directory, and run this step after the build", rn.Path)
	case errors.As(err, &de):
		return fmt.Errorf("%w; add --publish to the pack build step, and run this step after it", err)
	case errors.As(err, &dm):
		return fmt.Errorf("%w; give pack build a tag of its own (e.g. IMAGE:${{ github.sha }}) and run this step right after it, so nothing else pushes to the tag in between", err)
	case errors.As(err, &se):
		return fmt.Errorf("%w; nothing was signed: the buildpack wrote a malformed SBOM, fix the buildpack (or use a builder with a fixed one)", err)
	case errors.As(err, &me):
		return badInput("layers", "%v; layers holds another build's files: give each pack build an empty --report-output-dir (e.g. under runner.temp) and set layers to it", err)
	case errors.As(err, &fe):
		return badInput("layers", "%v; layers must hold the report.toml pack build --report-output-dir wrote for this build", err)
	case errors.As(err, &le):
		return badInput("layers", "%v; set layers to the output of the pack build that exported the image", err)
	case errors.As(err, &be):
		return badInput("builder", "%v; give the builder image pack build ran with (its --builder), by tag or digest, and log in to its registry", err)
	}
	return err
}
