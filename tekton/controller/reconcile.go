package controller

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	k8serrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/pipeline"
	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/tekton/artifacts"
	"github.com/signet-dev/signet/tekton/provenance"
	"github.com/signet-dev/signet/tekton/settings"
)

// ErrProvenanceNowhere is a provenance with nowhere to be kept: the signing
// services have no attestation store (--signing-config rather than a signet
// server) and the run has no image to attach it to, or attaching is off.
var ErrProvenanceNowhere = errors.New("the provenance would be kept nowhere: the signing services have no attestation store (give --server, a signet server) and it is not attached to an image (the run produced none, or artifacts.taskrun.storage / artifacts.pipelinerun.storage is empty)")

// run is what signing needs of a TaskRun or a PipelineRun.
type run struct {
	kind           string
	obj            runtime.Object
	meta           metav1.ObjectMeta
	succeeded      bool
	completed      time.Time
	serviceAccount string
	found          artifacts.Found
	predicate      func(provenance.Options) ([]byte, error)
	patch          patcher
}

func (r *run) String() string { return r.kind + " " + r.meta.Namespace + "/" + r.meta.Name }

func (c *Controller) process(ctx context.Context, key string) error {
	kind, rest, _ := strings.Cut(key, "/")
	namespace, name, _ := strings.Cut(rest, "/")
	r, err := c.lookup(ctx, kind, namespace, name)
	if err != nil || r == nil {
		return err
	}
	if r.meta.Annotations[AnnotationSigned] != "" || c.isDone(r.meta.UID) {
		return nil
	}
	st := c.settings()
	if !r.succeeded && !st.FailedRuns {
		c.metrics.skipped.WithLabelValues(r.kind, "failed-run").Inc()
		c.markDone(r.meta.UID)
		return nil
	}
	attempt := c.queue.NumRequeues(key) + 1
	if attempt == 1 {
		c.metrics.seen.WithLabelValues(r.kind).Inc()
	}
	log := c.log.With("run", r.String(), "attempt", attempt)
	if attempt == 1 {
		for _, p := range r.found.Problems {
			log.Warn("type hint skipped", "problem", p)
			c.recorder.Event(r.obj, corev1.EventTypeWarning, "TypeHintSkipped", clip(p))
		}
	}
	start := c.o.Now()
	out, signedBefore := c.pendingOutcome(r.meta.UID)
	if !signedBefore {
		out, err = c.sign(ctx, r, st)
	}
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		c.metrics.retries.WithLabelValues(r.kind).Inc()
		if attempt < st.MaxAttempts {
			log.Warn("signing failed; will retry", "error", err, "retry_in", c.backoff(attempt).String())
			return err
		}
		log.Error("signing failed; giving up", "error", err, "attempts", attempt)
		reason := fmt.Sprintf("after %d attempts: %v", attempt, err)
		c.recorder.Event(r.obj, corev1.EventTypeWarning, "SigningFailed", clip(reason))
		if perr := patchAnnotations(ctx, r.patch, r.meta.Namespace, r.meta.Name, string(r.meta.UID), outcome{signed: signedFailed, reason: reason}); perr != nil {
			return c.gone(perr, r)
		}
		c.markDone(r.meta.UID)
		c.metrics.failed.WithLabelValues(r.kind).Inc()
		return nil
	}
	out.signed = signedTrue
	markStart := c.o.Now()
	defer func() {
		c.log.Debug("phase", "run", r.String(), "phase", "mark", "elapsed", c.o.Now().Sub(markStart).Seconds())
	}()
	if err := patchAnnotations(ctx, r.patch, r.meta.Namespace, r.meta.Name, string(r.meta.UID), out); err != nil {
		// Signed but not marked: the outcome is kept, so the next attempt
		// only marks the run instead of signing it again.
		c.keepOutcome(r.meta.UID, out)
		return c.gone(err, r)
	}
	c.dropOutcome(r.meta.UID)
	c.markDone(r.meta.UID)
	c.metrics.signed.WithLabelValues(r.kind).Inc()
	if !r.completed.IsZero() {
		c.metrics.latency.WithLabelValues(r.kind).Observe(c.o.Now().Sub(r.completed).Seconds())
	}
	msg := fmt.Sprintf("signed %d subject(s) in %s", out.subjects, c.o.Now().Sub(start).Round(time.Millisecond))
	if out.reason != "" {
		msg = out.reason
	}
	if len(out.logIndexes) > 0 {
		msg += "; log entries " + strings.Join(out.logIndexes, ",")
	}
	log.Info("signed", "subjects", out.subjects, "log_entries", out.logIndexes, "attestations", out.attestations, "took", c.o.Now().Sub(start).String())
	c.recorder.Event(r.obj, corev1.EventTypeNormal, "Signed", clip(msg))
	return nil
}

// gone treats a run deleted (or re-created) while it was being signed as
// done: there is nothing left to mark.
func (c *Controller) gone(err error, r *run) error {
	// Conflict: the UID precondition failed, the run was re-created.
	if k8serrors.IsNotFound(err) || k8serrors.IsConflict(err) {
		c.log.Info("run deleted while it was signed; not marked", "run", r.String())
		c.metrics.skipped.WithLabelValues(r.kind, "deleted").Inc()
		c.dropOutcome(r.meta.UID)
		c.markDone(r.meta.UID)
		return nil
	}
	return fmt.Errorf("marking %s: %w", r, err)
}

func (c *Controller) backoff(attempt int) time.Duration {
	d := c.o.RetryBase << min(attempt-1, 30)
	if d <= 0 || d > c.o.RetryMax {
		d = c.o.RetryMax
	}
	return d
}

// lookup reads a run from the cache; nil when it is gone or not done.
func (c *Controller) lookup(ctx context.Context, kind, namespace, name string) (*run, error) {
	switch kind {
	case kindTaskRun:
		tr, err := c.taskRuns.TaskRuns(namespace).Get(name)
		if k8serrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil || !tr.IsDone() {
			return nil, err
		}
		found := artifacts.TaskRun(tr)
		return &run{
			kind:           kindTaskRun,
			obj:            tr,
			meta:           tr.ObjectMeta,
			succeeded:      tr.IsSuccessful(),
			completed:      completion(tr.Status.CompletionTime),
			serviceAccount: tr.Spec.ServiceAccountName,
			found:          found,
			predicate: func(o provenance.Options) ([]byte, error) {
				return provenance.TaskRun(tr, found, o)
			},
			patch: func(ctx context.Context, ns, n string, pt types.PatchType, data []byte, opts metav1.PatchOptions, sub ...string) error {
				_, err := c.o.Tekton.TektonV1().TaskRuns(ns).Patch(ctx, n, pt, data, opts, sub...)
				return err
			},
		}, nil
	case kindPipelineRun:
		pr, err := c.pipelineRuns.PipelineRuns(namespace).Get(name)
		if k8serrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil || !pr.IsDone() || pr.Annotations[AnnotationSigned] != "" {
			return nil, err
		}
		children, err := c.children(ctx, pr)
		if err != nil {
			return nil, err
		}
		sa := ""
		if pr.Spec.TaskRunTemplate.ServiceAccountName != "" {
			sa = pr.Spec.TaskRunTemplate.ServiceAccountName
		}
		found := artifacts.PipelineRun(pr, children)
		return &run{
			kind:           kindPipelineRun,
			obj:            pr,
			meta:           pr.ObjectMeta,
			succeeded:      pr.IsSuccessful(),
			completed:      completion(pr.Status.CompletionTime),
			serviceAccount: sa,
			found:          found,
			predicate: func(o provenance.Options) ([]byte, error) {
				return provenance.PipelineRun(pr, children, found, o)
			},
			patch: func(ctx context.Context, ns, n string, pt types.PatchType, data []byte, opts metav1.PatchOptions, sub ...string) error {
				_, err := c.o.Tekton.TektonV1().PipelineRuns(ns).Patch(ctx, n, pt, data, opts, sub...)
				return err
			},
		}, nil
	}
	return nil, nil
}

func completion(t *metav1.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time
}

// childWait is how long a PipelineRun waits before looking at its TaskRuns
// again; childPatience how long after its completion it waits for a TaskRun
// that is missing or unfinished before it is attested without it (a TaskRun
// deleted first must not hold its PipelineRun unsigned for ever).
const (
	childWait     = 2 * time.Second
	childPatience = 2 * time.Minute
)

// children are a PipelineRun's TaskRuns, all done; until they are, the
// PipelineRun waits (its provenance carries their results).
func (c *Controller) children(ctx context.Context, pr *pipelinev1.PipelineRun) ([]*pipelinev1.TaskRun, error) {
	var out []*pipelinev1.TaskRun
	patient := pr.Status.CompletionTime == nil || c.o.Now().Sub(pr.Status.CompletionTime.Time) < childPatience
	wait := func(reason string) error {
		if patient {
			return &waitError{after: childWait, reason: reason}
		}
		c.log.Warn("attesting a PipelineRun without one of its TaskRuns", "pipelinerun", pr.Namespace+"/"+pr.Name, "why", reason, "waited", childPatience.String())
		return nil
	}
	for _, ref := range pr.Status.ChildReferences {
		if ref.Kind != "" && ref.Kind != "TaskRun" {
			continue // CustomRuns carry no Chains type hints
		}
		tr, err := c.taskRuns.TaskRuns(pr.Namespace).Get(ref.Name)
		if k8serrors.IsNotFound(err) {
			if err := wait("TaskRun " + ref.Name + " not found"); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if tr.Annotations[AnnotationSigned] != "" {
			// Signed TaskRuns are cached as metadata only (see slim);
			// the provenance needs the whole run.
			if tr, err = c.o.Tekton.TektonV1().TaskRuns(pr.Namespace).Get(ctx, ref.Name, metav1.GetOptions{}); err != nil {
				if !k8serrors.IsNotFound(err) {
					return nil, err
				}
				if err := wait("TaskRun " + ref.Name + " not found"); err != nil {
					return nil, err
				}
				continue
			}
		}
		if !tr.IsDone() {
			if err := wait("TaskRun " + ref.Name + " has not finished"); err != nil {
				return nil, err
			}
			continue
		}
		out = append(out, tr)
	}
	return out, nil
}

// sign makes every bundle of one run: a signature over each image (and
// each platform of an index), and the provenance about all subjects.
func (c *Controller) sign(ctx context.Context, r *run, st settings.Settings) (outcome, error) {
	var out outcome
	if len(r.found.Images) == 0 && len(r.found.Artifacts) == 0 {
		out.reason = "nothing to sign: the run has no type-hinted results (*IMAGE_URL/*IMAGE_DIGEST, IMAGES, *ARTIFACT_OUTPUTS with isBuildArtifact) and no status.artifacts build outputs"
		return out, nil
	}
	prepStart := c.o.Now()
	defer func() {
		c.log.Debug("phase", "run", r.String(), "phase", "sign total", "elapsed", c.o.Now().Sub(prepStart).Seconds())
	}()
	services, err := c.o.Services(ctx)
	if err != nil {
		return out, err
	}
	sa := r.serviceAccount
	if sa == "" {
		sa = "default"
	}
	tok, err := c.identityToken(ctx, st.Identity, r.meta.Namespace, sa)
	if err != nil {
		return out, err
	}
	kc, err := c.keys.get(ctx, r.meta.Namespace, sa)
	if err != nil {
		return out, err
	}
	reg := oci.New(oci.Options{Keychain: kc, AllowInsecureRegistry: c.o.AllowInsecureRegistry || st.InsecureRegistry, Transport: c.o.RegistryTransport, UserAgent: "signet-tekton"})

	resolveStart := c.o.Now()
	var subjects, toSign []pipeline.Subject
	for _, img := range r.found.Images {
		s, err := reg.Resolve(ctx, img.Reference())
		if err != nil {
			return out, fmt.Errorf("%s (%s): %w", img.Reference(), img.Source, err)
		}
		ps, err := pipeline.ImageSubject(s)
		if err != nil {
			return out, err
		}
		subjects = append(subjects, ps)
		toSign = append(toSign, ps)
		if s.IsIndex() {
			platforms, err := reg.Platforms(ctx, s)
			if err != nil {
				return out, fmt.Errorf("%s: reading its platforms: %w", img.Reference(), err)
			}
			for _, p := range platforms {
				pp, err := pipeline.ImageSubject(p)
				if err != nil {
					return out, err
				}
				toSign = append(toSign, pp)
			}
		}
	}
	for _, a := range r.found.Artifacts {
		if a.Digest["sha256"] == "" {
			// Statements here name sha256 subjects; others are reported.
			c.log.Warn("subject without a sha256 digest left out", "run", r.String(), "uri", a.URI, "source", a.Source)
			continue
		}
		subjects = append(subjects, pipeline.Subject{Name: a.URI, SHA256: a.Digest["sha256"]})
	}
	out.subjects = len(subjects)
	if len(subjects) == 0 {
		out.reason = "nothing to sign: no subject has a sha256 digest"
		return out, nil
	}
	pred, err := r.predicate(provenance.Options{BuilderID: st.BuilderID, BuildType: st.BuildType})
	if err != nil {
		return out, fmt.Errorf("provenance: %w", err)
	}
	refs := &pipeline.Referrers{Client: reg}
	attachProvenance := st.TaskRunOCI
	if r.kind == kindPipelineRun {
		attachProvenance = st.PipelineRunOCI
	}
	if services.Attestations == nil && (!attachProvenance || len(r.found.Images) == 0) {
		// Without an attestation store the provenance would be logged and
		// then kept nowhere.
		return out, ErrProvenanceNowhere
	}
	opts := sign.Options{Services: services, IdentityToken: tok}
	plans := []pipeline.Plan{{
		Subjects:     subjects,
		Attestations: []pipeline.Attestation{{Type: intoto.PredicateSLSAProvenanceV1, Predicate: pred, Kind: intoto.KindProvenance}},
	}}
	for i := range plans {
		plans[i].Verifier = c.o.Verifier
	}
	if attachProvenance {
		plans[0].Destinations = []pipeline.Destination{refs}
	}
	if st.SignImages && r.succeeded && len(toSign) > 0 {
		plans = append(plans, pipeline.Plan{Subjects: toSign, Sign: true, Destinations: []pipeline.Destination{refs}, Verifier: c.o.Verifier})
	}
	for i := range plans {
		plans[i].Progress = func(e pipeline.Event) {
			c.log.Debug("step", "run", r.String(), "item", e.Item.Describe(), "step", string(e.Step), "elapsed", e.Elapsed.Seconds(), "detail", e.Detail)
		}
	}
	c.log.Debug("phase", "run", r.String(), "phase", "resolve", "elapsed", c.o.Now().Sub(resolveStart).Seconds())
	plansStart := c.o.Now()
	// One run of the pipeline: the run's bundles share a certificate and
	// each image's referrers tag is updated once.
	reports, err := pipeline.RunPlans(ctx, opts, plans...)
	if err != nil {
		return out, err
	}
	c.log.Debug("phase", "run", r.String(), "phase", "sign and store", "elapsed", c.o.Now().Sub(plansStart).Seconds())
	for _, rep := range reports {
		for _, b := range rep.Bundles {
			for _, e := range b.LogEntries {
				out.logIndexes = append(out.logIndexes, strconv.FormatInt(e.LogIndex, 10))
			}
			if b.AttestationID != "" {
				out.attestations = append(out.attestations, b.AttestationID)
			}
		}
	}
	return out, nil
}
