package pipeline_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorv2 "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/pipeline"
	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/signer"
)

// fakeLog and fakeStore count what reaches them; entries are shaped enough
// for a bundle to be assembled (these tests check routing and refusals, not
// proofs: the real-server tests do that).
type fakeLog struct {
	mu    sync.Mutex
	calls int
	fail  func(n int) error
}

func entry(i int) *protorekor.TransparencyLogEntry {
	return &protorekor.TransparencyLogEntry{
		LogIndex: int64(i), LogId: &protocommon.LogId{KeyId: []byte{1, 2, 3}},
		KindVersion:       &protorekor.KindVersion{Kind: "hashedrekord", Version: "0.0.2"},
		CanonicalizedBody: []byte("{}"),
		InclusionProof:    &protorekor.InclusionProof{Checkpoint: &protorekor.Checkpoint{Envelope: "fake.example/log\n1\nAAAA\n"}},
	}
}

func (l *fakeLog) URL() string { return "https://log.fake" }
func (l *fakeLog) CreateHashedRekord(ctx context.Context, digest, sig []byte, v *rekorv2.Verifier) (*protorekor.TransparencyLogEntry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.fail != nil {
		if err := l.fail(l.calls); err != nil {
			return nil, err
		}
	}
	return entry(l.calls), nil
}

type fakeStore struct{ fakeLog }

func (s *fakeStore) Submit(ctx context.Context, env *protodsse.Envelope, v *rekorv2.Verifier) (string, *protorekor.TransparencyLogEntry, error) {
	e, err := s.CreateHashedRekord(ctx, nil, nil, v)
	return "att-1", e, err
}

// fakes returns key-signing options over a fake log and store.
func fakes(t *testing.T, withStore bool) (sign.Options, *fakeLog, *fakeStore) {
	key, err := signer.Ephemeral()
	if err != nil {
		t.Fatal(err)
	}
	l, st := &fakeLog{}, &fakeStore{}
	s := &sign.Services{Logs: []sign.Log{l}, LogsNeeded: 1}
	if withStore {
		s.Attestations = st
	}
	return sign.Options{Services: s, Key: key}, l, st
}

func file(t *testing.T, dir, name, content string) pipeline.Subject {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := pipeline.FileSubject(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const slsa = `{"buildDefinition":{"buildType":"https://example.com/build/v1","externalParameters":{"repository":"https://example.com/app"}},"runDetails":{"builder":{"id":"https://example.com/builder"}}}`

// Routing is decided once: message signatures to the log, attestations to
// the store when there is one, image signatures to the log (they are
// signatures, as cosign's are, even though they are DSSE statements).
func TestRoutingAndNames(t *testing.T) {
	dir := t.TempDir()
	a, b := file(t, dir, "a.bin", "a"), file(t, dir, "b.bin", "b")
	o, log, store := fakes(t, true)
	atts := filepath.Join(dir, "atts")
	rep, err := pipeline.Run(context.Background(), o, pipeline.Plan{
		Subjects:     []pipeline.Subject{a, b},
		Sign:         true,
		Attestations: []pipeline.Attestation{{Type: intoto.PredicateSLSAProvenanceV1, Predicate: []byte(slsa)}},
		Destinations: []pipeline.Destination{&pipeline.Files{FallbackDir: atts}, &pipeline.Files{Dir: filepath.Join(dir, "copy")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if log.calls != 2 || store.calls != 1 {
		t.Errorf("log got %d, store %d; want the 2 signatures in the log and the attestation in the store", log.calls, store.calls)
	}
	if len(rep.Bundles) != 3 {
		t.Fatalf("%d bundles, want 3", len(rep.Bundles))
	}
	for i, s := range []pipeline.Subject{a, b} {
		got := rep.Bundles[i]
		want := []string{s.Path + ".sigstore.json", filepath.Join(dir, "copy", s.Name+".sigstore.json")}
		if got.Kind != intoto.KindSignature || got.AttestationID != "" || len(got.Placements) != 2 || got.Placements[0].Location != want[0] || got.Placements[1].Location != want[1] {
			t.Errorf("signature %d: %+v, want files %v", i, got, want)
		}
		if bd, err := bundle.ReadFile(want[0]); err != nil || bd.MessageSignature() == nil {
			t.Errorf("%s: %v", want[0], err)
		}
	}
	prov := rep.Bundles[2]
	sum := sha256.Sum256(prov.Item.Statement)
	name := "subjects-" + hex.EncodeToString(sum[:6]) + ".slsaprovenance1.sigstore.json"
	if prov.Kind != intoto.KindProvenance || prov.AttestationID != "att-1" || len(prov.Subjects) != 2 ||
		prov.Placements[0].Location != filepath.Join(atts, name) || prov.Placements[1].Location != filepath.Join(dir, "copy", name) {
		t.Errorf("provenance: %+v", prov)
	}
	st, err := intoto.ParseStatement(prov.Item.Statement)
	if err != nil || len(st.GetSubject()) != 2 || st.GetSubject()[1].GetDigest()["sha256"] != b.SHA256 {
		t.Errorf("one statement names both subjects: %v %v", st, err)
	}

	// Without a store, attestations go to the log.
	o, log, _ = fakes(t, false)
	if _, err := pipeline.Run(context.Background(), o, pipeline.Plan{
		Subjects: []pipeline.Subject{a}, Attestations: []pipeline.Attestation{{Type: "https://example.com/x/v1", Predicate: []byte("{}")}},
		Destinations: []pipeline.Destination{&pipeline.Files{}},
	}); err != nil || log.calls != 1 {
		t.Errorf("attestation without a store: %v, %d log calls", err, log.calls)
	}
}

// Attestations of two custom types about one file get two files, and the
// name is found again from the type URI.
func TestDefaultNamesNeverCollide(t *testing.T) {
	dir := t.TempDir()
	a := file(t, dir, "a.bin", "a")
	o, _, _ := fakes(t, true)
	rep, err := pipeline.Run(context.Background(), o, pipeline.Plan{
		Subjects: []pipeline.Subject{a},
		Attestations: []pipeline.Attestation{
			{Type: "https://example.com/test-result/v1", Predicate: []byte(`{"passed":true}`)},
			{Type: "https://example.com/lint/v1", Predicate: []byte(`{"clean":true}`)},
			{Type: intoto.PredicateCosignCustom, Predicate: []byte(`{}`)},
		},
		Destinations: []pipeline.Destination{&pipeline.Files{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, b := range rep.Bundles {
		p := b.Placements[0].Location
		if seen[p] {
			t.Errorf("two bundles written to %s", p)
		}
		seen[p] = true
		if want := a.Path + "." + intoto.FileTag(b.PredicateType) + ".sigstore.json"; p != want {
			t.Errorf("%s went to %s, want %s", b.PredicateType, p, want)
		}
	}
	if !seen[a.Path+".custom.sigstore.json"] {
		t.Errorf("cosign's custom type is not named by its short name: %v", seen)
	}
}

// Every refusal a destination can make locally comes before anything is
// signed: nothing reaches the log for a bundle that cannot be stored.
func TestRefusedBeforeAnythingIsLogged(t *testing.T) {
	dir := t.TempDir()
	a, b := file(t, dir, "a.bin", "a"), file(t, dir, "b.bin", "b")
	notADir := filepath.Join(dir, "plain")
	os.WriteFile(notADir, []byte("x"), 0o644)
	// An earlier attestation where a signature would go.
	o, _, _ := fakes(t, false)
	attest := pipeline.Plan{Subjects: []pipeline.Subject{a}, Attestations: []pipeline.Attestation{{Type: "https://example.com/x/v1", Predicate: []byte("{}")}},
		Destinations: []pipeline.Destination{&pipeline.Files{Path: filepath.Join(dir, "earlier.sigstore.json")}}}
	if _, err := pipeline.Run(context.Background(), o, attest); err != nil {
		t.Fatal(err)
	}
	sig := func(d pipeline.Destination, subs ...pipeline.Subject) pipeline.Plan {
		return pipeline.Plan{Subjects: subs, Sign: true, Destinations: []pipeline.Destination{d}}
	}
	cases := []struct {
		name string
		plan pipeline.Plan
		want error
	}{
		{"bundle path is the artifact", sig(&pipeline.Files{Path: a.Path}, a), pipeline.ErrNotABundle},
		{"bundle path is a directory", sig(&pipeline.Files{Path: dir}, a), pipeline.ErrPathIsDir},
		{"parent is a file", sig(&pipeline.Files{Path: filepath.Join(notADir, "x.sigstore.json")}, a), pipeline.ErrParentNotADir},
		{"other kind of bundle", sig(&pipeline.Files{Path: filepath.Join(dir, "earlier.sigstore.json")}, a), pipeline.ErrOtherKind},
		{"one path, two bundles", sig(&pipeline.Files{Path: filepath.Join(dir, "one.sigstore.json")}, a, b), pipeline.ErrOnePath},
		{"same name from two subjects", sig(&pipeline.Files{Dir: filepath.Join(dir, "flat")}, a, pipeline.Subject{Name: "a.bin", SHA256: b.SHA256, Path: b.Path}), pipeline.ErrSamePath},
		{"digest subject with nowhere to go", pipeline.Plan{Subjects: []pipeline.Subject{{Name: "d", SHA256: a.SHA256}},
			Attestations: []pipeline.Attestation{{Type: "https://example.com/x/v1", Predicate: []byte("{}")}}, Destinations: []pipeline.Destination{&pipeline.Files{}}}, pipeline.ErrNoBundleDir},
		{"signature of a digest", sig(&pipeline.Files{Dir: dir}, pipeline.Subject{Name: "d", SHA256: a.SHA256}), pipeline.ErrNothingToSign},
		{"plugin destination refuses", sig(&memory{refuse: errors.New("annotation too large")}, a), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, log, store := fakes(t, true)
			before, _ := os.ReadFile(a.Path)
			rep, err := pipeline.Run(context.Background(), o, c.plan)
			if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if rep != nil || log.calls+store.calls != 0 {
				t.Errorf("refused after %d log and %d store calls (report %v)", log.calls, store.calls, rep)
			}
			if after, _ := os.ReadFile(a.Path); string(after) != string(before) {
				t.Error("the artifact was overwritten")
			}
		})
	}
	// Re-signing over one's own earlier bundle is fine.
	o, _, _ = fakes(t, false)
	if _, err := pipeline.Run(context.Background(), o, sig(&pipeline.Files{}, a)); err != nil {
		t.Fatal(err)
	}
	if _, err := pipeline.Run(context.Background(), o, sig(&pipeline.Files{}, a)); err != nil {
		t.Errorf("signing again over the earlier signature: %v", err)
	}
}

// memory is a plugin's own destination: it keeps bundles in memory, as a
// controller might keep them for an annotation or an upload.
type memory struct {
	mu      sync.Mutex
	refuse  error
	bundles map[string][]byte
}

func (m *memory) Name() string                                          { return "memory" }
func (m *memory) Check(_ context.Context, items []*pipeline.Item) error { return m.refuse }
func (m *memory) Put(_ context.Context, it *pipeline.Item, b *pipeline.Signed) ([]pipeline.Placement, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bundles == nil {
		m.bundles = map[string][]byte{}
	}
	key := string(it.Kind) + ":" + it.Subjects[0].Name
	m.bundles[key] = b.JSON
	return []pipeline.Placement{{Destination: m.Name(), Location: key}}, nil
}

// A log failure mid-run: the report keeps what was made before it, and the
// error names the bundle that failed.
func TestFailureMidRun(t *testing.T) {
	dir := t.TempDir()
	var subs []pipeline.Subject
	for _, n := range []string{"a", "b", "c", "d"} {
		subs = append(subs, file(t, dir, n, n))
	}
	o, log, _ := fakes(t, false)
	log.fail = func(n int) error {
		if n == 3 {
			return errors.New("log unavailable")
		}
		return nil
	}
	rep, err := pipeline.Run(context.Background(), o, pipeline.Plan{Subjects: subs, Sign: true, Concurrency: 1, Destinations: []pipeline.Destination{&pipeline.Files{}}})
	var ie *pipeline.ItemError
	if !errors.As(err, &ie) || ie.Item.Subjects[0].Name != "c" || !strings.Contains(err.Error(), "log unavailable") {
		t.Fatalf("err = %v", err)
	}
	if len(rep.Bundles) != 2 || rep.Bundles[1].Subjects[0].Name != "b" {
		t.Errorf("report after failure: %+v", rep.Bundles)
	}
	if _, err := os.Stat(subs[2].Path + ".sigstore.json"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a bundle was written for the failed signature: %v", err)
	}
}

// A caller that gives up gets an error, not an empty report that looks done.
func TestCancelledRunFails(t *testing.T) {
	dir := t.TempDir()
	a := file(t, dir, "a", "a")
	o, log, _ := fakes(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := pipeline.Run(ctx, o, pipeline.Plan{Subjects: []pipeline.Subject{a}, Sign: true, Destinations: []pipeline.Destination{&pipeline.Files{}}})
	if !errors.Is(err, context.Canceled) || len(rep.Bundles) != 0 || log.calls != 0 {
		t.Fatalf("cancelled run: %v, %d bundles, %d log calls", err, len(rep.Bundles), log.calls)
	}
}

// With AttestSubjects, every subject is signed but the attestations are
// about those only, each its own statement with PerSubject.
func TestAttestSubjects(t *testing.T) {
	dir := t.TempDir()
	a, b, c := file(t, dir, "a.bin", "a"), file(t, dir, "b.bin", "b"), file(t, dir, "c.bin", "c")
	o, _, _ := fakes(t, false)
	items, err := pipeline.Items(o, pipeline.Plan{
		Subjects: []pipeline.Subject{a, b, c}, Sign: true, PerSubject: true,
		AttestSubjects: []pipeline.Subject{a, c},
		Attestations:   []pipeline.Attestation{{Type: intoto.PredicateSLSAProvenanceV1, Predicate: []byte(slsa)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var signed, attested []string
	for _, it := range items {
		if it.Kind == intoto.KindSignature {
			signed = append(signed, it.Subjects[0].Name)
		} else {
			attested = append(attested, it.Subjects[0].Name)
		}
	}
	if strings.Join(signed, ",") != "a.bin,b.bin,c.bin" || strings.Join(attested, ",") != "a.bin,c.bin" {
		t.Errorf("signed %v, attested %v; want all three signed and a, c attested", signed, attested)
	}
}

// Two attestations of one type about the same subject (a build's two
// CycloneDX SBOMs) get two bundle files, the later named by its statement's
// digest; both are written.
func TestSameTypeTwiceGetsTwoFiles(t *testing.T) {
	dir := t.TempDir()
	a := file(t, dir, "a.bin", "a")
	o, _, _ := fakes(t, false)
	cdx := func(n string) pipeline.Attestation {
		return pipeline.Attestation{Type: intoto.PredicateCycloneDX, Predicate: []byte(`{"bomFormat":"CycloneDX","specVersion":"1.5","serialNumber":"` + n + `"}`)}
	}
	rep, err := pipeline.Run(context.Background(), o, pipeline.Plan{
		Subjects: []pipeline.Subject{a}, Attestations: []pipeline.Attestation{cdx("1"), cdx("2")},
		Destinations: []pipeline.Destination{&pipeline.Files{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	p0, p1 := rep.Bundles[0].Placements[0].Location, rep.Bundles[1].Placements[0].Location
	if p0 == p1 || p0 != a.Path+".cyclonedx.sigstore.json" || !strings.HasPrefix(p1, a.Path+".cyclonedx-") {
		t.Errorf("files %s and %s", p0, p1)
	}
	for _, p := range []string{p0, p1} {
		if _, err := bundle.ReadFile(p); err != nil {
			t.Error(err)
		}
	}
}

// finishing records Puts and Finishes in order.
type finishing struct {
	mu    sync.Mutex
	order []string
}

func (f *finishing) Name() string                                  { return "finishing" }
func (f *finishing) Check(context.Context, []*pipeline.Item) error { return nil }
func (f *finishing) Put(_ context.Context, it *pipeline.Item, _ *pipeline.Signed) ([]pipeline.Placement, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.order = append(f.order, "put")
	return []pipeline.Placement{{Destination: "finishing", Location: it.Describe()}}, nil
}
func (f *finishing) Finish(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.order = append(f.order, "finish")
	return nil
}

// RunPlans makes the bundles of several plans as one run: a destination
// they share finishes only after every bundle of every plan was put, also
// when one of them failed; the reports are in plan order.
func TestRunPlansFinishesAfterEveryPut(t *testing.T) {
	dir := t.TempDir()
	o, l, _ := fakes(t, true)
	d := &finishing{}
	a, b := file(t, dir, "a.txt", "a"), file(t, dir, "b.txt", "b")
	reps, err := pipeline.RunPlans(context.Background(), o,
		pipeline.Plan{Subjects: []pipeline.Subject{a, b}, Sign: true, Destinations: []pipeline.Destination{d}},
		pipeline.Plan{Subjects: []pipeline.Subject{a}, Attestations: []pipeline.Attestation{{Type: intoto.PredicateSLSAProvenanceV1, Predicate: []byte(slsa)}}, Destinations: []pipeline.Destination{d}})
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 2 || len(reps[0].Bundles) != 2 || len(reps[1].Bundles) != 1 || reps[1].Bundles[0].Kind != intoto.KindProvenance {
		t.Fatalf("reports %+v; want two signatures, then one provenance", reps)
	}
	if got := strings.Join(d.order, ","); got != "put,put,put,finish,finish" {
		t.Errorf("destination saw %s; want every put before the finishes", got)
	}

	// A failed bundle: what was made is still finished.
	d.order = nil
	l.fail = func(n int) error {
		if n == 4 { // the second run's second signature
			return errors.New("log down")
		}
		return nil
	}
	_, err = pipeline.RunPlans(context.Background(), o, pipeline.Plan{Subjects: []pipeline.Subject{a, b}, Sign: true, Concurrency: 1, Destinations: []pipeline.Destination{d}})
	if err == nil {
		t.Fatal("a run whose log failed succeeded")
	}
	if got := strings.Join(d.order, ","); got != "put,finish" {
		t.Errorf("after a failure the destination saw %s; want put,finish", got)
	}
}
