package controller

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Annotations the controller writes on a run: small values only, never a
// payload (Chains' annotation storage hits the 256 KiB limit on large runs).
const (
	// AnnotationSigned is "true" once everything the run produced is signed
	// and attested (also for a run that produced nothing), or "failed"
	// after the configured attempts.
	AnnotationSigned = "signet.dev/signed"
	// AnnotationSubjects is how many subjects the provenance names.
	AnnotationSubjects = "signet.dev/subjects"
	// AnnotationLogIndexes lists the log indexes of the entries made,
	// "12,13" (every bundle's entries, in the log the signing config names).
	AnnotationLogIndexes = "signet.dev/log-indexes"
	// AnnotationAttestations lists the attestation store's IDs.
	AnnotationAttestations = "signet.dev/attestation-ids"
	// AnnotationReason says why signing failed, or why nothing was signed.
	AnnotationReason = "signet.dev/reason"
)

const (
	signedTrue   = "true"
	signedFailed = "failed"
)

// maxAnnotation bounds each value written: a run with a thousand subjects
// must not push the object towards the apiserver's size limit.
const maxAnnotation = 4 << 10

func clip(s string) string {
	if len(s) <= maxAnnotation {
		return s
	}
	return s[:maxAnnotation-len("…")] + "…"
}

// outcome is what a finished attempt writes on the run.
type outcome struct {
	signed       string
	subjects     int
	logIndexes   []string
	attestations []string
	reason       string
}

func (o outcome) annotations() map[string]*string {
	set := func(v string) *string { return &v }
	a := map[string]*string{
		AnnotationSigned:       set(o.signed),
		AnnotationSubjects:     set(strconv.Itoa(o.subjects)),
		AnnotationLogIndexes:   nil,
		AnnotationAttestations: nil,
		AnnotationReason:       nil,
	}
	if len(o.logIndexes) > 0 {
		a[AnnotationLogIndexes] = set(clip(strings.Join(o.logIndexes, ",")))
	}
	if len(o.attestations) > 0 {
		a[AnnotationAttestations] = set(clip(strings.Join(o.attestations, ",")))
	}
	if o.reason != "" {
		a[AnnotationReason] = set(clip(o.reason))
	}
	return a
}

// patcher writes annotations with a JSON merge patch: only metadata, so
// it never conflicts with the pipeline controller's status updates. A null
// value removes an annotation an earlier attempt left.
type patcher func(ctx context.Context, namespace, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) error

func patchAnnotations(ctx context.Context, p patcher, namespace, name, uid string, o outcome) error {
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": o.annotations(),
		// The precondition: a run deleted and re-created under the same
		// name since it was read is not marked for the old one's signing.
		"uid": uid,
	}})
	if err != nil {
		return err
	}
	return p(ctx, namespace, name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: fieldManager})
}

const fieldManager = "signet-tekton"
