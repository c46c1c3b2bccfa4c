package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/pipeline"
	"github.com/signet-dev/signet/core/sbom"
	"github.com/signet-dev/signet/core/sign"
)

// imageSignFlags are the flags sign and attest share: sign-blob's, without
// --bundle (the bundle goes to the registry), plus the registry flags.
type imageSignFlags struct {
	s          signFlags
	reg        registryFlags
	recursive  bool
	legacyTags bool
}

func (f *imageSignFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	f.s.addCommon(fs)
	fs.BoolVarP(&f.recursive, "recursive", "r", false, "for a multi-platform index, also sign each platform manifest (what docker pull and Kubernetes resolve to)")
	fs.BoolVar(&f.legacyTags, "legacy-tags", false, "also write cosign's legacy sha256-<hex>.sig/.att tags, for policy engines that read only those (Kyverno, policy-controller)")
	f.reg.add(fs)
	f.s.out.add(fs)
}

// imageSigned is one bundle signed and attached (--output json).
type imageSigned struct {
	// Digest is the signed manifest, repository@sha256:<hex>.
	Digest   string `json:"digest"`
	Platform string `json:"platform,omitempty"`
	// Kind is "signature" or "attestation".
	Kind          string `json:"kind"`
	PredicateType string `json:"predicateType"`
	Identity      string `json:"identity,omitempty"`
	Issuer        string `json:"issuer,omitempty"`
	KeyHint       string `json:"keyHint,omitempty"`
	// Referrer is the pushed referrer manifest, repository@sha256:<hex>.
	Referrer string `json:"referrer"`
	// Path is how the registry keeps referrers: "referrers API" or
	// "referrers tag" (then FallbackTag names the tag updated).
	Path          string         `json:"path"`
	FallbackTag   string         `json:"fallbackTag,omitempty"`
	LegacyTags    []string       `json:"legacyTags,omitempty"`
	AttestationID string         `json:"attestationId,omitempty"`
	LogEntries    []logEntryJSON `json:"logEntries"`
}

// imageSignResult is what sign and attest report (--output json).
type imageSignResult struct {
	Image  string        `json:"image"`
	Signed []imageSigned `json:"signed"`
}

func (r *imageSignResult) print(w io.Writer) {
	for _, s := range r.Signed {
		fmt.Fprintf(w, "attached %s to %s\n", s.Kind, s.Digest)
		if s.Platform != "" {
			fmt.Fprintf(w, "  platform   %s\n", s.Platform)
		}
		if s.Identity != "" {
			fmt.Fprintf(w, "  signer     %s\n  issuer     %s\n", s.Identity, s.Issuer)
		} else {
			fmt.Fprintf(w, "  key        %s\n", s.KeyHint)
		}
		fmt.Fprintf(w, "  predicate  %s\n", s.PredicateType)
		fmt.Fprintf(w, "  referrer   %s (%s)\n", s.Referrer, s.Path)
		for _, t := range s.LegacyTags {
			fmt.Fprintf(w, "  legacy tag %s\n", t)
		}
		if s.AttestationID != "" {
			fmt.Fprintf(w, "  stored as  attestation %s\n", s.AttestationID)
		}
		for _, e := range s.LogEntries {
			fmt.Fprintf(w, "  logged as  entry %d in %s (log ID %s)\n", e.LogIndex, e.Origin, e.LogID)
		}
	}
}

// beforeAttach, when set (tests only), runs after a bundle is signed and
// before it is attached: the window in which a tag can move.
var beforeAttach func(*oci.Subject)

// imageJob is what gets made for each subject: its signature, or an
// attestation of one predicate.
type imageJob struct {
	kind        oci.Kind
	attestation pipeline.Attestation
}

// run signs (or attests) every subject through the pipeline and attaches
// each bundle; what was attached before a failure stays attached and is
// reported on stderr.
func (f *imageSignFlags) run(cmd *cobra.Command, image string, job imageJob) error {
	if err := f.s.out.check(); err != nil {
		return err
	}
	if f.legacyTags && f.s.key != "" {
		return usageError{errors.New("--legacy-tags needs keyless signing: cosign's legacy layout carries a certificate, not a key hint; drop --key or --legacy-tags")}
	}
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	c := f.reg.client()
	if _, err := c.ParseReference(image); err != nil {
		return usageError{fmt.Errorf("IMAGE: %w", err)}
	}
	// The token and services first: a missing token is a usage error,
	// reported before the registry is contacted.
	o, who, err := f.s.options(ctx, stderr)
	if err != nil {
		return err
	}
	v, err := f.s.verifier(ctx, stderr)
	if err != nil {
		return err
	}
	resolved, err := resolveImage(ctx, c, image, f.recursive)
	if err != nil {
		return err
	}
	if !f.recursive {
		recursiveNote(ctx, stderr, c, resolved[0], "sign", "signed")
	}
	plan := pipeline.Plan{
		Sign:         job.kind == oci.KindSignature,
		PerSubject:   true,
		Destinations: []pipeline.Destination{&pipeline.Referrers{Client: c, LegacyTags: f.legacyTags, BeforeAttach: beforeAttach}},
		// One manifest at a time, in order, as the user reads the output.
		Concurrency: 1,
		Progress:    imageProgress(stderr, who, o.Progress),
		Verifier:    v,
	}
	if job.kind == oci.KindAttestation {
		plan.Attestations = []pipeline.Attestation{job.attestation}
	}
	for _, s := range resolved {
		sub, err := pipeline.ImageSubject(s)
		if err != nil {
			return err
		}
		plan.Subjects = append(plan.Subjects, sub)
	}
	rep, err := pipeline.Run(ctx, o, plan)
	res := &imageSignResult{Image: image, Signed: imageSignedOfReport(stderr, rep)}
	if err != nil {
		if n := len(res.Signed); n > 0 {
			fmt.Fprintf(stderr, "note: %d earlier manifest(s) were signed and stay attached\n", n)
		}
		var pe *pipeline.PredicateError
		if errors.As(err, &pe) {
			return usageError{fmt.Errorf("--predicate: %w", err)}
		}
		return err
	}
	if f.s.out.json() {
		return writeJSON(cmd.OutOrStdout(), res)
	}
	res.print(cmd.OutOrStdout())
	return nil
}

// imageProgress announces each bundle as it starts and prints its steps.
func imageProgress(stderr io.Writer, who signerInfo, steps func(sign.Event)) func(pipeline.Event) {
	return func(e pipeline.Event) {
		if e.Step == "" {
			s := e.Item.Subjects[0].Image
			what := "image " + describe(s)
			if e.Item.Kind != intoto.KindSignature {
				what = "an attestation (" + e.Item.PredicateType + ") about image " + describe(s)
			}
			who.announce(stderr, what)
			return
		}
		if steps != nil {
			steps(sign.Event{Step: e.Step, Detail: e.Detail, Elapsed: e.Elapsed})
		}
	}
}

// imageSignedOf reports one bundle attached to one manifest.
// imageSignedOfReport is every bundle a run made (rep may be nil).
func imageSignedOfReport(stderr io.Writer, rep *pipeline.Report) []imageSigned {
	var out []imageSigned
	if rep != nil {
		for _, b := range rep.Bundles {
			out = append(out, imageSignedOf(stderr, b))
		}
	}
	return out
}

func imageSignedOf(stderr io.Writer, b pipeline.Bundle) imageSigned {
	s := b.Subjects[0].Image
	kind := oci.KindAttestation
	if b.Kind == intoto.KindSignature {
		kind = oci.KindSignature
	}
	out := imageSigned{
		Digest: s.Digest.String(), Platform: platformString(s.Platform),
		Kind: kind.String(), PredicateType: b.PredicateType,
		Identity: b.Identity, Issuer: b.Issuer, KeyHint: b.KeyHint,
		AttestationID: b.AttestationID, LogEntries: b.LogEntries,
	}
	for _, p := range b.Placements {
		switch {
		case p.Destination != "oci":
		case p.Via == "legacy tag":
			out.LegacyTags = append(out.LegacyTags, p.Tag)
		default:
			out.Referrer, out.Path, out.FallbackTag = p.Location, p.Via, p.Tag
			if p.Via == string(oci.PathReferrersTag) {
				ref, _ := name.NewDigest(p.Location)
				fmt.Fprintf(stderr, "info: registry %s has no OCI referrers API; listed %s under the referrers tag %s (OCI 1.1 fallback, read by cosign v3 and signet)\n",
					s.Digest.RegistryStr(), ref.DigestStr(), strings.TrimPrefix(p.Tag, s.Digest.Context().String()+":"))
			}
		}
	}
	return out
}

const imageExitHelp = `
Progress goes to stderr, the result to stdout. Exit status: 0 signed and
attached; 1 failed (image not found, no permission to push, the image
changed while signing, a service refused); 2 usage error.`

func newImageSignCmd() *cobra.Command {
	var f imageSignFlags
	cmd := &cobra.Command{
		Use:   "sign IMAGE",
		Short: "Sign a container image and attach the signature in the registry",
		Long: `Sign a container image as cosign v3 does: IMAGE (a tag or a digest) is
resolved once to its manifest digest, an in-toto statement of predicate type
https://sigstore.dev/cosign/sign/v1 naming that digest is signed as a DSSE
envelope, logged, and the Sigstore bundle is attached to the image as an OCI
1.1 referrer. 'cosign verify' and 'signet verify' accept it.

Registries without the OCI referrers API get the referrers tag
sha256-<hex> instead (the OCI 1.1 fallback, which cosign reads too); signet
says so on stderr. Before attaching, signet checks that the tag still names
the digest it signed, and attaches nothing if it moved.

--legacy-tags also writes cosign's older sha256-<hex>.sig tag (a separately
signed simple-signing payload) for policy engines that read only that.
` + imageExitHelp + "\n" + registryHelp + "\n" + identityTokenHelp + "\n" + trustHelpSign,
		Example: `  # In GitHub Actions (permissions: id-token: write, packages: write):
  signet sign ghcr.io/acme/app@sha256:4f1e… --server https://signet.example.com

  # A multi-platform image: the index and every platform manifest:
  signet sign -r ghcr.io/acme/app:1.2.3 --server $SIGNET_SERVER -o json

  # Also for Kyverno / policy-controller, which read the .sig tag:
  signet sign registry.example.com/app:1.2.3 --legacy-tags --signing-config signing_config.json`,
		Args: exactArgs(1, "IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, args[0], imageJob{kind: oci.KindSignature})
		},
	}
	f.add(cmd)
	return cmd
}

// predicateSlack is what an attestation bundle adds around the predicate:
// statement, certificate, timestamp, log entry. The predicate itself grows
// by a third (base64 in the envelope).
const predicateSlack = 16 << 10

// loadPredicate reads --predicate for --type. An SBOM is recognised and its
// size checked in one streamed pass before it is read whole, so a wrong or
// oversized file is refused without holding it in memory.
func loadPredicate(path, predicateType string) ([]byte, error) {
	return readPredicate(path, predicateType, oci.DefaultMaxBundleSize)
}

// readPredicate is loadPredicate with the bundle size limit maxBundle (0:
// none, for a bundle file).
func readPredicate(path, predicateType string, maxBundle int64) ([]byte, error) {
	if err := checkFile("--predicate", path); err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, usageError{fmt.Errorf("--predicate: %v", err)}
	}
	if sbom.IsPredicateType(predicateType) {
		info, err := sbom.RecognizeFile(path)
		if err != nil {
			return nil, usageError{fmt.Errorf("--predicate: %w", err)}
		}
		if !strings.HasPrefix(predicateType, info.PredicateType) {
			return nil, usageError{fmt.Errorf("--predicate %s is %s %s, but --type says %s; pass --type %s", path, info.Format, info.Version, predicateType, intoto.ShortName(info.PredicateType))}
		}
	}
	if bundleSize := st.Size()*4/3 + predicateSlack; maxBundle > 0 && bundleSize > maxBundle {
		return nil, fmt.Errorf("--predicate %s is %d bytes; its bundle would be about %d bytes, over the %d-byte limit for a bundle attached to an image; attach a smaller document (e.g. an SBOM without file-level entries) or publish it as an artifact and attest its digest with attest-blob",
			path, st.Size(), bundleSize, int64(oci.DefaultMaxBundleSize))
	}
	return os.ReadFile(path)
}

func newImageAttestCmd() *cobra.Command {
	var (
		f                   imageSignFlags
		predicate, typeName string
	)
	cmd := &cobra.Command{
		Use:   "attest IMAGE --predicate P.json --type TYPE",
		Short: "Attest to a container image (SLSA provenance, SBOM, any in-toto predicate) and attach it",
		Long: `Make an in-toto Statement v1 whose subject is IMAGE's manifest (by repository
name and SHA-256 digest, as cosign attest does) and whose predicate is
P.json, sign it as a DSSE envelope, log it, and attach the bundle to the
image as an OCI 1.1 referrer. 'cosign verify-attestation' and 'signet
verify-attestation' accept it.

--type is one of cosign's short names or any predicate type URI:
` + intoto.TypeNamesHelp + `
SBOMs are recognised in one streamed pass before they are loaded. Against a
signet server (--server) the envelope is also kept in the server's
attestation store, whose size limit then applies.

--legacy-tags also adds the envelope to cosign's older sha256-<hex>.att tag.
` + imageExitHelp + "\n" + registryHelp + "\n" + identityTokenHelp + "\n" + trustHelpSign,
		Example: `  # SLSA provenance for every platform of a release image:
  signet attest -r ghcr.io/acme/app:1.2.3 --predicate provenance.json \
    --type slsaprovenance1 --server https://signet.example.com

  # An SBOM made by syft:
  syft ghcr.io/acme/app:1.2.3 -o spdx-json > sbom.spdx.json
  signet attest ghcr.io/acme/app:1.2.3 --predicate sbom.spdx.json --type spdxjson`,
		Args: exactArgs(1, "IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if predicate == "" || typeName == "" {
				return usageError{errors.New("attest needs --predicate P.json and --type (slsaprovenance1, spdxjson, cyclonedx or a predicate type URI)")}
			}
			pt, err := predicateTypeArg(typeName)
			if err != nil {
				return err
			}
			path, cleanup, err := spoolStdin(cmd, predicate, "--predicate")
			if err != nil {
				return err
			}
			defer cleanup()
			pred, err := loadPredicate(path, pt)
			if err != nil {
				return err
			}
			// A predicate that does not fit its type is a usage error, found
			// before anything is resolved or signed.
			if err := pipeline.CheckPredicate(pt, pred); err != nil {
				return usageError{fmt.Errorf("--predicate: %w", err)}
			}
			return f.run(cmd, args[0], imageJob{kind: oci.KindAttestation, attestation: pipeline.Attestation{Type: pt, Predicate: pred}})
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&predicate, "predicate", "", "the predicate: a JSON file (SLSA provenance, SPDX or CycloneDX SBOM, …), or - for standard input")
	cmd.Flags().StringVar(&typeName, "type", "", "predicate type: slsaprovenance1, spdxjson, cyclonedx, custom, … (see above) or a URI")
	return cmd
}
