// Package pipeline is the one signing pipeline every signet plugin calls:
// subjects (files, digests, images) and a plan of what to make for them
// (signatures, provenance, SBOMs, any in-toto predicate) go in; bundles come
// out, logged, and put where they belong (bundle files, OCI referrers, or a
// plugin's own destination); a report says what went where.
//
// Routing is decided here, once: message signatures and image signatures go
// to the transparency log; attestations go through a signet server's
// attestation store when there is one (it logs them and keeps the
// envelope), else to the log. Every destination checks what it will be given
// before anything is signed, so nothing is logged for a bundle that cannot
// be stored.
package pipeline

import (
	"bytes"
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"golang.org/x/sync/errgroup"

	"github.com/signet-dev/signet/core/certext"
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/verify"
)

// Attestation is one predicate to attest to.
type Attestation struct {
	// Type is the predicate type URI (intoto.PredicateType resolves short names).
	Type string
	// Predicate is the predicate, a JSON object.
	Predicate []byte
	// Kind overrides intoto.KindOf(Type) in the report, e.g. provenance
	// under a plugin's own predicate type.
	Kind intoto.Kind
	// Annotations go on the OCI referrer of each bundle (unsigned), for
	// what a listing should show before verifying, e.g. an SBOM's scope.
	Annotations map[string]string
}

// Plan says what to make for which subjects.
type Plan struct {
	Subjects []Subject
	// Sign makes one signature per subject: a message signature over a
	// file's content, cosign v3's image signature for an image.
	Sign bool
	// Attestations are made about the subjects: each as one statement
	// naming all subjects (as actions/attest and Tekton Chains do), or, with
	// PerSubject, one statement per subject (one per platform manifest).
	Attestations []Attestation
	PerSubject   bool
	// AttestSubjects, if set, are what the attestations are about instead
	// of Subjects (all of which are still signed): a build signs the index
	// it pushed and every platform in it, but attests only to the index and
	// the platform it built.
	AttestSubjects []Subject
	// Destinations receive every bundle; each takes what it stores.
	Destinations []Destination
	// Concurrency bounds the signatures made at once (default 4: each is a
	// few round trips, and the log batches entries anyway).
	Concurrency int
	// Progress, if set, is called as each bundle starts and after each
	// step, from one goroutine at a time.
	Progress func(Event)
	// Verifier, if set, verifies each bundle offline against its trusted
	// root, as signed by the identity (or key) the bundle names, before any
	// destination gets it: what the services returned is proven before it is
	// kept (cosign v3's --trusted-root on signing).
	Verifier *verify.Verifier
}

// Event reports progress on one item.
type Event struct {
	Item *Item
	// Step is "" when the item starts, else the step completed.
	Step    sign.Step
	Detail  string
	Elapsed time.Duration
}

// Item is one bundle to make.
type Item struct {
	Kind intoto.Kind
	// PredicateType is the statement's; empty for a message signature.
	PredicateType string
	Subjects      []Subject
	// Statement is the in-toto statement signed as a DSSE envelope; nil for
	// a message signature over Subjects[0]'s file.
	Statement []byte
	// ViaAttestationStore says the envelope goes through the attestation
	// store, which logs it and keeps it, instead of straight to the log.
	ViaAttestationStore bool
	// Annotations are the attestation's, for referrers.
	Annotations map[string]string
}

// Describe names the item for progress output.
func (it *Item) Describe() string {
	what := string(it.Kind)
	if it.Kind != intoto.KindSignature {
		what += " (" + it.PredicateType + ")"
	}
	names := make([]string, len(it.Subjects))
	for i, s := range it.Subjects {
		names[i] = s.Name
		if s.Image != nil {
			names[i] = s.Image.Digest.String()
		}
	}
	if len(names) > 3 {
		names = append(names[:3], fmt.Sprintf("and %d more", len(names)-3))
	}
	return what + " of " + strings.Join(names, ", ")
}

// Destination stores finished bundles: bundle files, OCI referrers, or
// whatever a plugin adds (a Kubernetes annotation, an upload).
type Destination interface {
	// Name names the destination in placements and errors: "file", "oci".
	Name() string
	// Check is called with every item before anything is signed, and
	// refuses what the destination could not store.
	Check(ctx context.Context, items []*Item) error
	// Put stores one finished bundle and says where it went; no placement
	// means the destination does not take this kind of item.
	Put(ctx context.Context, it *Item, b *Signed) ([]Placement, error)
}

// Signed is a finished bundle handed to destinations.
type Signed struct {
	*sign.Result
	o sign.Options
}

// SignArtifact signs more content with the same services and identity
// (cosign's legacy .sig tag needs a simple-signing payload signed apart).
func (s *Signed) SignArtifact(ctx context.Context, content []byte) (*sign.Result, error) {
	o := s.o
	o.ViaAttestationStore = false
	return sign.ArtifactReader(ctx, o, bytes.NewReader(content))
}

// Placement is where a destination put a bundle.
type Placement struct {
	// Destination is "file", "oci" or a plugin's name.
	Destination string `json:"destination"`
	// Location is the file path, or the referrer manifest
	// (repository@sha256:…), or what the destination names.
	Location string `json:"location"`
	// Subject is the image the bundle was attached to (oci).
	Subject string `json:"subject,omitempty"`
	// Via says how: "referrers API", "referrers tag", "legacy tag".
	Via string `json:"via,omitempty"`
	// Tag is the tag written, for the referrers tag and legacy tags.
	Tag string `json:"tag,omitempty"`
}

// LogEntry is a transparency log entry a bundle carries, as reports show it.
type LogEntry struct {
	LogIndex int64  `json:"logIndex"`
	LogID    string `json:"logId"` // hex
	// LogURL is the log's base URL from the trusted root (verification only).
	LogURL string `json:"logUrl,omitempty"`
	// Origin is the checkpoint origin the entry's proof is signed under.
	Origin   string `json:"origin,omitempty"`
	TreeSize uint64 `json:"treeSize,omitempty"`
	// Witnesses cosigned the checkpoint, as the witness policy required
	// (verification with a witness policy only).
	Witnesses []string `json:"witnesses,omitempty"`
}

// SignedEntries describes the entries a signing service returned.
func SignedEntries(entries []*protorekor.TransparencyLogEntry) []LogEntry {
	out := make([]LogEntry, 0, len(entries))
	for _, e := range entries {
		origin, _, _ := strings.Cut(e.GetInclusionProof().GetCheckpoint().GetEnvelope(), "\n")
		out = append(out, LogEntry{
			LogIndex: e.GetLogIndex(),
			LogID:    hex.EncodeToString(e.GetLogId().GetKeyId()),
			Origin:   origin,
			TreeSize: uint64(e.GetInclusionProof().GetTreeSize()),
		})
	}
	return out
}

// VerifiedEntries describes the entries a verification proved.
func VerifiedEntries(entries []verify.LogEntry) []LogEntry {
	out := make([]LogEntry, 0, len(entries))
	for _, e := range entries {
		out = append(out, LogEntry{LogIndex: e.LogIndex, LogID: hex.EncodeToString(e.LogID), LogURL: e.BaseURL, TreeSize: e.TreeSize, Witnesses: e.Witnesses})
	}
	return out
}

// Bundle is one bundle made, and where it went.
type Bundle struct {
	Kind          intoto.Kind `json:"kind"`
	PredicateType string      `json:"predicateType,omitempty"`
	Subjects      []Subject   `json:"-"`
	// Identity and Issuer are the certificate's; KeyHint the public key's
	// hint when a self-managed key signed.
	Identity      string      `json:"identity,omitempty"`
	Issuer        string      `json:"issuer,omitempty"`
	KeyHint       string      `json:"keyHint,omitempty"`
	LogEntries    []LogEntry  `json:"logEntries"`
	AttestationID string      `json:"attestationId,omitempty"`
	Placements    []Placement `json:"placements"`
	// Item and Result are the item made and everything about it.
	Item   *Item        `json:"-"`
	Result *sign.Result `json:"-"`
}

// Report is what a run made, in plan order: signatures in subject order,
// then attestations in the order planned.
type Report struct {
	Bundles []Bundle
}

// Items expands a plan into the bundles it makes, with their statements
// built and checked and their routes decided, without signing anything.
func Items(o sign.Options, p Plan) ([]*Item, error) {
	if len(p.Subjects) == 0 {
		return nil, errors.New("the plan has no subjects")
	}
	for _, s := range append(p.Subjects, p.AttestSubjects...) {
		if err := s.check(); err != nil {
			return nil, err
		}
	}
	store := o.Services != nil && o.Services.Attestations != nil
	var items []*Item
	if p.Sign {
		for _, s := range p.Subjects {
			it := &Item{Kind: intoto.KindSignature, Subjects: []Subject{s}}
			switch {
			case s.Image != nil:
				// cosign v3's image signature names the digest only.
				st, err := intoto.Statement([]intoto.Subject{{Digest: map[string]string{"sha256": s.SHA256}}}, intoto.PredicateCosignSign, []byte("{}"))
				if err != nil {
					return nil, err
				}
				it.Statement = st
				it.PredicateType = intoto.PredicateCosignSign
			case s.Path == "":
				return nil, fmt.Errorf("subject %s: %w", s.Name, ErrNothingToSign)
			}
			items = append(items, it)
		}
	}
	attested := p.Subjects
	if len(p.AttestSubjects) > 0 {
		attested = p.AttestSubjects
	}
	groups := [][]Subject{attested}
	if p.PerSubject {
		groups = nil
		for _, s := range attested {
			groups = append(groups, []Subject{s})
		}
	}
	for _, a := range p.Attestations {
		kind := a.Kind
		if kind == "" {
			kind = intoto.KindOf(a.Type)
		}
		for _, g := range groups {
			subs := make([]intoto.Subject, len(g))
			for i, s := range g {
				subs[i] = s.intoto()
			}
			raw, err := intoto.Statement(subs, a.Type, a.Predicate)
			if err != nil {
				return nil, &PredicateError{Type: a.Type, Err: err}
			}
			items = append(items, &Item{Kind: kind, PredicateType: a.Type, Subjects: g, Statement: raw, ViaAttestationStore: store, Annotations: a.Annotations})
		}
	}
	if len(items) == 0 {
		return nil, errors.New("the plan makes nothing: no signature and no attestation")
	}
	return items, nil
}

// PredicateError is a predicate that does not fit its type.
type PredicateError struct {
	Type string
	Err  error
}

func (e *PredicateError) Error() string { return e.Err.Error() }
func (e *PredicateError) Unwrap() error { return e.Err }

// Run makes every bundle of the plan and hands each to the destinations.
// Everything local is checked first (statements, destinations), then the
// bundles are made in parallel. On failure the report holds the bundles
// that were made and stored before it, and the error names what failed.
func Run(ctx context.Context, o sign.Options, p Plan) (*Report, error) {
	reps, err := RunPlans(ctx, o, p)
	if reps == nil {
		return nil, err
	}
	return reps[0], err
}

// RunPlans runs several plans as one: every plan is checked before anything
// is signed, their bundles are made together, keyless bundles share one key
// and certificate (unless o.Credential already names one), and each
// destination finishes once (bundles attached to one image update its
// referrers tag once). The reports are in plan order.
func RunPlans(ctx context.Context, o sign.Options, plans ...Plan) ([]*Report, error) {
	type planned struct {
		p     Plan
		items []*Item
	}
	all := make([]planned, len(plans))
	n := 0
	for i, p := range plans {
		items, err := Items(o, p)
		if err != nil {
			return nil, err
		}
		for _, d := range p.Destinations {
			if err := d.Check(ctx, items); err != nil {
				return nil, err
			}
		}
		all[i] = planned{p, items}
		c := p.Concurrency
		if c <= 0 {
			c = 4
		}
		n += c
	}
	if o.Key == nil && o.Credential == nil {
		o.Credential = &sign.Credential{}
	}
	start := time.Now()
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	done := make([][]*Bundle, len(all))
	for pi, pl := range all {
		p := pl.p
		progress := func(e Event) {
			if p.Progress == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			e.Elapsed = time.Since(start)
			p.Progress(e)
		}
		done[pi] = make([]*Bundle, len(pl.items))
		for i, it := range pl.items {
			g.Go(func() error {
				if err := gctx.Err(); err != nil {
					// An earlier item failed (its error is the one Wait
					// returns) or the caller gave up.
					return err
				}
				b, err := make1(gctx, o, it, p.Destinations, p.Verifier, progress)
				if b != nil {
					done[pi][i] = b
				}
				if err != nil {
					return &ItemError{Item: it, Err: err}
				}
				return nil
			})
		}
	}
	err := g.Wait()
	// Destinations finish even after a failure: what was made and logged is
	// stored.
	for _, pl := range all {
		for _, d := range pl.p.Destinations {
			if f, ok := d.(Finisher); ok {
				if ferr := f.Finish(ctx); ferr != nil {
					perr := &PutError{Destination: d.Name(), Err: ferr}
					if err == nil {
						err = perr
					} else {
						err = errors.Join(err, perr)
					}
				}
			}
		}
	}
	reps := make([]*Report, len(all))
	for pi := range all {
		reps[pi] = &Report{}
		for _, b := range done[pi] {
			if b != nil {
				reps[pi].Bundles = append(reps[pi].Bundles, *b)
			}
		}
	}
	return reps, err
}

// Finisher is a Destination that completes its work after the last bundle
// of a run was put (the referrers tag, written once for all of them). Finish
// may be called more than once; later calls have nothing left to do.
type Finisher interface {
	Finish(ctx context.Context) error
}

// ItemError is the failure of one bundle of a plan.
type ItemError struct {
	Item *Item
	Err  error
}

func (e *ItemError) Error() string { return e.Item.Describe() + ": " + e.Err.Error() }
func (e *ItemError) Unwrap() error { return e.Err }

// SelfVerifyError is a bundle the services returned that does not verify
// against the trusted root given to check it; no destination got it.
type SelfVerifyError struct{ Err error }

func (e *SelfVerifyError) Error() string {
	return "the bundle the services returned does not verify against the trusted root, so it was not written: " + e.Err.Error()
}
func (e *SelfVerifyError) Unwrap() error { return e.Err }

// selfVerify verifies a fresh bundle as signed by whom it says signed it.
func selfVerify(ctx context.Context, v *verify.Verifier, o sign.Options, it *Item, res *sign.Result) error {
	var pol verify.Policy
	if res.Certificate != nil {
		san, issuer := certext.Identity(res.Certificate)
		pol.Identity, pol.Issuer = verify.Exact(san), verify.Exact(issuer)
	} else {
		pol.Key = o.Key.Public()
	}
	s := it.Subjects[0]
	sum, err := hex.DecodeString(s.SHA256)
	if err != nil {
		return err
	}
	d := verify.Digest{Algorithm: crypto.SHA256, Value: sum}
	if it.Statement == nil {
		_, err = v.VerifyDigest(ctx, res.Bundle, verify.Digest{Algorithm: res.Hash, Value: res.Digest}, pol)
		return err
	}
	_, err = v.VerifyAttestation(ctx, res.Bundle, d, pol, it.PredicateType)
	return err
}

// PutError is a bundle that was made (and logged) but that a destination
// failed to store.
type PutError struct {
	Destination string
	Err         error
}

func (e *PutError) Error() string { return e.Err.Error() }
func (e *PutError) Unwrap() error { return e.Err }

// make1 signs one item and stores it. A bundle that was made but not stored
// everywhere is returned with the error, so the report says where it went.
func make1(ctx context.Context, o sign.Options, it *Item, dests []Destination, v *verify.Verifier, progress func(Event)) (*Bundle, error) {
	progress(Event{Item: it, Detail: "signing " + it.Describe()})
	o.ViaAttestationStore = it.ViaAttestationStore
	o.Progress = func(e sign.Event) { progress(Event{Item: it, Step: e.Step, Detail: e.Detail}) }
	var (
		res *sign.Result
		err error
	)
	if it.Statement == nil {
		res, err = sign.ArtifactFile(ctx, o, it.Subjects[0].Path)
	} else {
		res, err = sign.AttestationBundle(ctx, o, it.Statement)
	}
	if err != nil {
		return nil, err
	}
	if v != nil {
		if err := selfVerify(ctx, v, o, it, res); err != nil {
			return nil, &SelfVerifyError{Err: err}
		}
	}
	b := newBundle(it, res)
	s := &Signed{Result: res, o: o}
	for _, d := range dests {
		ps, err := d.Put(ctx, it, s)
		b.Placements = append(b.Placements, ps...)
		if err != nil {
			return b, &PutError{Destination: d.Name(), Err: err}
		}
		for _, p := range ps {
			detail := p.Destination + " " + p.Location
			if p.Via != "" {
				detail += " (" + p.Via + ")"
			}
			progress(Event{Item: it, Step: StepStored, Detail: detail})
		}
	}
	return b, nil
}

// StepStored is the progress step after a destination stored a bundle.
const StepStored sign.Step = "stored"

func newBundle(it *Item, res *sign.Result) *Bundle {
	b := &Bundle{Kind: it.Kind, PredicateType: it.PredicateType, Subjects: it.Subjects, AttestationID: res.AttestationID,
		Item: it, Result: res, Placements: []Placement{}}
	if res.Certificate != nil {
		b.Identity, b.Issuer = certext.Identity(res.Certificate)
	} else if pk := res.Bundle.Proto().GetVerificationMaterial().GetPublicKey(); pk != nil {
		b.KeyHint = pk.GetHint()
	}
	b.LogEntries = SignedEntries(res.Entries)
	return b
}

// CheckPredicate checks a predicate against its type before any subject is
// known, so a wrong predicate is refused before anything is resolved.
func CheckPredicate(predicateType string, predicate []byte) error {
	if _, err := intoto.Statement([]intoto.Subject{{Name: "check", Digest: map[string]string{"sha256": strings.Repeat("0", 64)}}}, predicateType, predicate); err != nil {
		return &PredicateError{Type: predicateType, Err: err}
	}
	return nil
}
