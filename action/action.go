// Package action is the signet GitHub Action: it reads the step's inputs,
// signs, attests or verifies through the core packages (a Cloud Native
// Buildpacks build through package buildpack), and reports back to
// the workflow through step outputs (GITHUB_OUTPUT), a job summary
// (GITHUB_STEP_SUMMARY) and ::error annotations that say what to fix.
//
// action.yml at the repository root runs it as `signet github-action`.
package action

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	githubactions "github.com/sethvargo/go-githubactions"

	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/sign/transport"
	"github.com/signet-dev/signet/core/token"
)

// Options are what the action takes from its surroundings; the zero value
// uses the real process environment.
type Options struct {
	// Getenv reads inputs (INPUT_*), GITHUB_* variables and the id-token
	// request variables. Default os.Getenv.
	Getenv func(string) string
	// Stdout receives workflow commands (::error, ::group) and the log.
	// Default os.Stdout.
	Stdout io.Writer
	// HTTPClient talks to the signet server and the id-token endpoint.
	HTTPClient *http.Client
	// Registry talks to OCI registries for the image input.
	Registry *oci.Client
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Run performs the step. A returned error has already been reported as an
// ::error annotation (and in the job summary); the caller exits non-zero.
func Run(ctx context.Context, o Options) error {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.HTTPClient == nil {
		o.HTTPClient = transport.NewClient(transport.Options{})
	}
	if o.Registry == nil {
		o.Registry = oci.New(oci.Options{})
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	a := githubactions.New(githubactions.WithGetenv(o.Getenv), githubactions.WithWriter(o.Stdout))
	r := &runner{o: o, a: a, started: o.Now()}

	in, err := ReadInputs(a, o.Getenv)
	if err != nil {
		return r.fail(nil, err)
	}
	r.in = in
	var rep *report
	switch in.Mode {
	case ModeVerify:
		rep, err = r.verify(ctx)
	case ModeBuildpack:
		rep, err = r.buildpack(ctx)
	default:
		rep, err = r.sign(ctx)
	}
	// A failed verification sets no outputs: later steps must not mistake
	// the bundles it looked at for verified ones.
	if rep != nil && len(rep.Entries) > 0 && (err == nil || in.Mode != ModeVerify) {
		r.writeOutputs(rep)
	}
	if err != nil {
		return r.fail(rep, err)
	}
	if in.ShowSummary {
		r.writeSummary(rep)
	}
	return nil
}

// runner is one execution of the action.
type runner struct {
	o       Options
	a       *githubactions.Action
	in      *Inputs
	started time.Time
}

// fail reports err as an annotation that names the fix, and in the summary.
func (r *runner) fail(rep *report, err error) error {
	msg := explain(err)
	r.a.Errorf("%s", msg)
	if r.in == nil || r.in.ShowSummary {
		r.writeFailureSummary(rep, msg)
	}
	return err
}

// explain adds what to do to errors whose own message cannot know it: the
// core packages do not know they run in a workflow.
func explain(err error) string {
	msg := err.Error()
	var ie *inputError
	var ne net.Error
	switch {
	case errors.As(err, &ie):
		return msg + " (fix the step's `with:` block)"
	case errors.Is(err, token.ErrNoToken):
		return msg
	case errors.As(err, &ne), errors.Is(err, context.DeadlineExceeded):
		return msg + "; the signet server did not answer: check the server input (URL), that the server is running and that this runner can reach it"
	}
	return msg
}

// logf writes a plain log line.
func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.o.Stdout, format+"\n", args...)
}
