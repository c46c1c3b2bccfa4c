package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	provv1 "github.com/in-toto/attestation/go/predicates/provenance/v1"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/certext"
	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/pipeline"
	"github.com/signet-dev/signet/core/rekor"
	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/trust"
	"github.com/signet-dev/signet/core/verify"
	"github.com/signet-dev/signet/server"
)

// The development identity the quickstart signs as: a GitHub Actions
// release workflow of acme/widget.
const (
	qsRepository = "acme/widget"
	qsWorkflow   = ".github/workflows/release.yml"
	qsRef        = "refs/heads/main"
)

// quickstartStep is one step of the walkthrough, as --output json reports it.
type quickstartStep struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	// Proves says, for a newcomer, what the step establishes.
	Proves string `json:"proves,omitempty"`
	Error  string `json:"error,omitempty"`
}

// quickstartResult is `signet quickstart --output json`.
type quickstartResult struct {
	Dir           string           `json:"dir"`
	Server        string           `json:"server"`
	DataDir       string           `json:"dataDir"`
	TrustedRoot   string           `json:"trustedRoot"`
	SigningConfig string           `json:"signingConfig"`
	Identity      string           `json:"identity"`
	Issuer        string           `json:"issuer"`
	Artifact      string           `json:"artifact"`
	Digest        string           `json:"digest"`
	Signed        []*signResult    `json:"signed"`
	Verified      []*verifyResult  `json:"verified"`
	Attestations  []searchJSON     `json:"attestations"`
	Steps         []quickstartStep `json:"steps"`
	// AllVerified is true only when every bundle verified offline.
	AllVerified bool     `json:"allVerified"`
	Commands    []string `json:"commands"`
}

// quickstart runs the walkthrough, narrating to w (nil in JSON mode).
type quickstart struct {
	w, stderr io.Writer
	res       quickstartResult
}

func (q *quickstart) say(format string, a ...any) {
	if q.w != nil {
		fmt.Fprintf(q.w, format+"\n", a...)
	}
}

// step records a step's outcome and narrates it; err ends the walkthrough.
func (q *quickstart) step(name, detail, proves string, err error) error {
	s := quickstartStep{Name: name, OK: err == nil, Detail: detail, Proves: proves}
	if err != nil {
		s.Error = err.Error()
		s.Proves = ""
	}
	q.res.Steps = append(q.res.Steps, s)
	n := len(q.res.Steps)
	if err != nil {
		q.say("[%d] FAILED: %s: %v", n, name, err)
		return fmt.Errorf("quickstart: %s: %w", name, err)
	}
	q.say("[%d] %s\n    %s", n, name, strings.ReplaceAll(detail, "\n", "\n    "))
	if proves != "" {
		q.say("    → %s", strings.ReplaceAll(proves, "\n", "\n      "))
	}
	q.say("")
	return nil
}

func newQuickstartCmd() *cobra.Command {
	var (
		dir, addr string
		out       outputFormat
	)
	cmd := &cobra.Command{
		Use:   "quickstart",
		Short: "See signet work end to end in one command: server, sign, attest, verify offline",
		Long: `Run the whole signet story on this machine, with nothing to install or
configure:

  1. start a signet server in this process (CA, transparency log, timestamp
     authority) with the DEVELOPMENT OIDC issuer, on a loopback port;
  2. pin its trust files (trusted_root.json, signing_config.json);
  3. mint a GitHub Actions-shaped identity token (acme/widget's release
     workflow), as CI would provide;
  4. sign a sample file;
  5. attest an SPDX SBOM of it, and
  6. a SLSA v1 provenance for it (both kept by the attestation store);
  7. verify all three OFFLINE, with the trusted root only;
  8. find the attestations by the file's digest on the server;
then print the commands to do each step by hand.

Everything is written to --dir (default ./signet-quickstart): the server's
data directory (keys are generated on first run and reused), the trust
files, the sample file, its SBOM, provenance and bundles. Delete the
directory to start over. The server stops when the quickstart ends.

Exit status: 0 only if everything signed and verified; 1 otherwise.`,
		Example: `  go run ./cmd/signet quickstart
  signet quickstart --dir /tmp/signet-demo -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			abs, err := filepath.Abs(dir)
			if err != nil {
				return usageError{fmt.Errorf("--dir: %v", err)}
			}
			if err := os.MkdirAll(abs, 0o755); err != nil {
				return usageError{fmt.Errorf("--dir: %v", err)}
			}
			q := &quickstart{stderr: cmd.ErrOrStderr()}
			if !out.json() {
				q.w = cmd.OutOrStdout()
			}
			runErr := q.run(cmd.Context(), abs, addr)
			if runErr == nil {
				q.res.Commands = q.commands()
			}
			if out.json() {
				if err := writeJSON(cmd.OutOrStdout(), q.res); err != nil {
					return err
				}
			} else if runErr == nil {
				q.printCommands()
			}
			return runErr
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "signet-quickstart", "directory for the server's data and the files the quickstart makes")
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:0", "listen address of the in-process server (port 0: any free port)")
	out.add(cmd.Flags())
	return cmd
}

func (q *quickstart) run(ctx context.Context, dir, addr string) (err error) {
	r := &q.res
	r.Dir, r.DataDir = dir, filepath.Join(dir, "server")
	q.say("signet quickstart: a private Sigstore, a signature, an SBOM and a provenance attestation, verified offline.\n")

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Server logs would drown the walkthrough; its failures reach the
	// client calls below as errors, which the steps report.
	srv, err := server.New(ctx, server.Config{Addr: addr, Data: r.DataDir, DevOIDC: true}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return q.step("start the signet server", "", "", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		if serr := <-served; serr != nil && !errors.Is(serr, context.Canceled) && err == nil {
			err = fmt.Errorf("quickstart: stopping the server: %w", serr)
		}
	}()
	r.Server = srv.URL()
	if err := q.step("started a signet server in this process",
		fmt.Sprintf("%s, data directory %s", r.Server, r.DataDir),
		"one process is a certificate authority (Fulcio API), a transparency log (Rekor v2 API)\nand a timestamp authority (RFC 3161); its keys were made on first start and are kept.\nIt also runs a DEVELOPMENT OIDC issuer that mints CI-shaped identities: never expose it.", nil); err != nil {
		return err
	}

	hc := httpClient()
	rootJSON, err := sign.FetchTrustFile(ctx, r.Server, sign.TrustedRootPath, hc)
	var root *trust.Root
	if err == nil {
		root, err = trust.ParseRoot(rootJSON)
	}
	var scJSON []byte
	if err == nil {
		scJSON, err = sign.FetchTrustFile(ctx, r.Server, sign.SigningConfigPath, hc)
	}
	r.TrustedRoot, r.SigningConfig = filepath.Join(dir, trustedRootFile), filepath.Join(dir, signingConfigFile)
	if err == nil {
		err = errors.Join(sign.WriteBundle(r.TrustedRoot, rootJSON), sign.WriteBundle(r.SigningConfig, scJSON))
	}
	if err := q.step("pinned the server's trust files", r.TrustedRoot+"\n"+r.SigningConfig,
		"trusted_root.json holds the CA certificates, the log's public key and the TSA certificate:\nall a verifier needs, offline. signing_config.json tells signers where the services are.", err); err != nil {
		return err
	}

	tok, err := srv.DevOIDC().Mint("github", url.Values{"repository": {qsRepository}, "workflow": {qsWorkflow}, "ref": {qsRef}}, "")
	if err := q.step("minted a GitHub Actions-shaped identity token",
		fmt.Sprintf("repository %s, workflow %s, ref %s, issuer %s", qsRepository, qsWorkflow, qsRef, srv.DevOIDC().IssuerURL()),
		"in real CI the platform hands out this token (GitHub Actions, GitLab, Buildkite, CircleCI,\nKubernetes, SPIFFE) and signet finds it by itself; no long-lived key exists anywhere.", err); err != nil {
		return err
	}
	services, err := sign.FromServer(ctx, r.Server, hc, time.Now())
	if err != nil {
		return q.step("read the signing config", "", "", err)
	}
	o := sign.Options{Services: services, IdentityToken: tok, Progress: progressPrinter(q.stderr)}

	r.Artifact = filepath.Join(dir, "artifact.txt")
	content := fmt.Sprintf("signet quickstart artifact, made %s\n", time.Now().UTC().Format(time.RFC3339Nano))
	if err := os.WriteFile(r.Artifact, []byte(content), 0o644); err != nil {
		return q.step("write the sample file", "", "", err)
	}
	sum := sha256.Sum256([]byte(content))
	r.Digest = "sha256:" + hex.EncodeToString(sum[:])

	sig, err := signBlob(ctx, o, nil, r.Artifact, "", nil)
	detail := ""
	if err == nil {
		r.Signed = append(r.Signed, sig)
		r.Identity, r.Issuer = sig.Identity, sig.Issuer
		detail = fmt.Sprintf("%s (%s)\n→ %s, logged as entry %d", r.Artifact, r.Digest, sig.Bundle, sig.LogEntries[0].LogIndex)
	}
	if err := q.step("signed the sample file", detail,
		fmt.Sprintf("the CA certified a fresh key for %s for 10 minutes;\nthe TSA vouched for the signing time, and the signature is now public in the log.", r.Identity), err); err != nil {
		return err
	}

	sbomPath := filepath.Join(dir, "artifact.spdx.json")
	st, err := q.attest(ctx, o, sbomPath, spdxDocument, "spdxjson")
	if err := q.step("attested an SPDX SBOM of it", st, "a signed statement of what the file contains, bound to its digest;\nthe attestation store keeps the whole envelope so anyone can find it by digest.", err); err != nil {
		return err
	}
	provPath := filepath.Join(dir, "artifact.provenance.json")
	st, err = q.attest(ctx, o, provPath, slsaProvenance, "slsaprovenance1")
	if err := q.step("attested SLSA v1 provenance for it", st, "a signed statement of how and where the file was built (which workflow, repository and commit).", err); err != nil {
		return err
	}

	// Offline: only the trusted root, no network.
	v := verify.New(root)
	pol := verify.Policy{Identity: verify.Exact(r.Identity), Issuer: verify.Exact(r.Issuer),
		Extensions: certext.Extensions{SourceRepositoryURI: "https://github.com/" + qsRepository}}
	var lines []string
	for _, s := range r.Signed {
		vr, err := q.verifyOffline(ctx, v, s, pol)
		r.Verified = append(r.Verified, vr)
		if err != nil {
			return q.step("verify offline", strings.Join(lines, "\n"), "", fmt.Errorf("%s: %w", s.Bundle, err))
		}
		what := "signature"
		if s.PredicateType != "" {
			what = s.PredicateType
		}
		lines = append(lines, fmt.Sprintf("✓ %-30s signed by %s at %s", what, vr.Identity, vr.VerifiedTimes[0].Time.Format(time.RFC3339)))
	}
	r.AllVerified = true
	if err := q.step("verified all three OFFLINE with the trusted root only", strings.Join(lines, "\n"),
		"each bundle carries its own proof: the certificate chains to the pinned CA at the timestamped\nsigning time, names the expected workflow and repository, the signature covers this exact file,\nand the log entry is included in a checkpoint signed by the pinned log key.", nil); err != nil {
		return err
	}

	found, err := searchAll(ctx, r.Server, rekor.Query{Digest: r.Digest}, 100)
	detail = ""
	if err == nil {
		r.Attestations = found
		for _, a := range found {
			detail += fmt.Sprintf("%s  %s, logged as entry %d\n", a.ID, a.PredicateType, a.LogIndex)
		}
		if len(found) != 2 {
			err = fmt.Errorf("the attestation store returned %d attestations for %s, want the 2 just made", len(found), r.Digest)
		}
	}
	return q.step(fmt.Sprintf("found the attestations about %s on the server", r.Digest), strings.TrimSpace(detail),
		"a consumer who has only the file can discover its SBOM and provenance, then verify them.", err)
}

// attest writes a predicate made by makePredicate and attests it about the
// sample file; it returns the step detail.
func (q *quickstart) attest(ctx context.Context, o sign.Options, predPath string, makePredicate func(file string, sha256sum []byte, identity string) ([]byte, error), typeName string) (string, error) {
	r := &q.res
	content, err := os.ReadFile(r.Artifact)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(content)
	pred, err := makePredicate(r.Artifact, sum[:], r.Identity)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(predPath, pred, 0o644); err != nil {
		return "", err
	}
	pt, err := intoto.PredicateType(typeName)
	if err != nil {
		return "", err
	}
	res, err := signBlob(ctx, o, nil, r.Artifact, "", &pipeline.Attestation{Type: pt, Predicate: pred})
	if err != nil {
		return "", err
	}
	r.Signed = append(r.Signed, res)
	return fmt.Sprintf("%s (%s)\n→ %s, attestation %s, logged as entry %d", predPath, pt, res.Bundle, res.AttestationID, res.LogEntries[0].LogIndex), nil
}

func (q *quickstart) verifyOffline(ctx context.Context, v *verify.Verifier, s *signResult, pol verify.Policy) (*verifyResult, error) {
	b, err := bundle.ReadFile(s.Bundle)
	if err != nil {
		return newVerifyResult(s.Artifact, s.Bundle, nil, err), err
	}
	var res *verify.Result
	if s.PredicateType == "" {
		res, err = verifyBlobFile(ctx, v, b, s.Artifact, pol)
	} else {
		res, err = verifyAttestationFile(ctx, v, b, s.Artifact, pol, s.PredicateType)
	}
	return newVerifyResult(s.Artifact, s.Bundle, res, err), err
}

// spdxDocument is a minimal valid SPDX 2.3 document describing the file.
func spdxDocument(file string, sha256sum []byte, _ string) ([]byte, error) {
	content, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	// SPDX 2.3 makes a SHA-1 checksum mandatory for files.
	s1 := sha1.Sum(content)
	name := filepath.Base(file)
	fileID := common.ElementID("File-" + name)
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      name,
		DocumentNamespace: "https://spdx.org/spdxdocs/signet-quickstart-" + name + "-" + hex.EncodeToString(sha256sum[:16]),
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{Creator: "signet-" + version, CreatorType: "Tool"}},
			Created:  time.Now().UTC().Format("2006-01-02T15:04:05Z"),
		},
		Files: []*spdx.File{{
			FileName:           "./" + name,
			FileSPDXIdentifier: fileID,
			Checksums: []common.Checksum{
				{Algorithm: common.SHA1, Value: hex.EncodeToString(s1[:])},
				{Algorithm: common.SHA256, Value: hex.EncodeToString(sha256sum)},
			},
			LicenseConcluded:  "NOASSERTION",
			FileCopyrightText: "NOASSERTION",
		}},
		Relationships: []*spdx.Relationship{{
			RefA:         common.MakeDocElementID("", "DOCUMENT"),
			RefB:         common.MakeDocElementID("", string(fileID)),
			Relationship: common.TypeRelationshipDescribe,
		}},
	}
	var buf bytes.Buffer
	if err := spdxjson.Write(doc, &buf, spdxjson.Indent("  ")); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// slsaProvenance is a SLSA v1 provenance predicate in the shape GitHub
// Actions builds produce, for the development identity.
func slsaProvenance(_ string, _ []byte, identity string) ([]byte, error) {
	ext, err := structpb.NewStruct(map[string]any{"workflow": map[string]any{
		"ref": qsRef, "repository": "https://github.com/" + qsRepository, "path": qsWorkflow,
	}})
	if err != nil {
		return nil, err
	}
	now := time.Now()
	p := &provv1.Provenance{
		BuildDefinition: &provv1.BuildDefinition{
			BuildType:          "https://actions.github.io/buildtypes/workflow/v1",
			ExternalParameters: ext,
		},
		RunDetails: &provv1.RunDetails{
			Builder:  &provv1.Builder{Id: identity},
			Metadata: &provv1.BuildMetadata{InvocationId: "signet-quickstart-" + now.UTC().Format("20060102T150405"), StartedOn: timestamppb.New(now)},
		},
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(p)
}

// rel shows p relative to the working directory when it lies below it, so
// the printed commands are short and can be pasted.
func rel(p string) string {
	if wd, err := os.Getwd(); err == nil {
		if rp, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(rp, "..") {
			return rp
		}
	}
	return p
}

// commands are the offline verifications a person can repeat by hand.
func (q *quickstart) commands() []string {
	r := &q.res
	a, tr := rel(r.Artifact), rel(r.TrustedRoot)
	policy := fmt.Sprintf(" --trusted-root %s \\\n    --certificate-identity %s \\\n    --certificate-oidc-issuer %s", tr, r.Identity, r.Issuer)
	return []string{
		"signet verify-blob " + a + policy,
		"signet verify-blob-attestation " + a + " --type spdxjson" + policy,
		"signet verify-blob-attestation " + a + " --type slsaprovenance1" + policy,
	}
}

// printCommands shows how to repeat each step by hand.
func (q *quickstart) printCommands() {
	r := &q.res
	q.say("All verified. Verify again yourself, offline, right now:\n")
	for _, c := range r.Commands {
		q.say("  %s\n", c)
	}
	q.say(`Or sign your own files by hand. In one terminal, the same server and keys:

  signet server --dev-oidc --data %[1]s/server

In another, a development identity (signet reads it like GitHub Actions'),
then each step (from a clone without an installed signet: 'go run ./cmd/signet'):

  export SIGNET_SERVER=http://127.0.0.1:8080
  export ACTIONS_ID_TOKEN_REQUEST_TOKEN=$(cat %[1]s/server/dev-oidc/request-token)
  export ACTIONS_ID_TOKEN_REQUEST_URL="$SIGNET_SERVER/dev/oidc/token?kind=github&repository=%[2]s"
  signet trust --out %[1]s/pinned
  signet sign-blob %[3]s
  signet attest-blob %[3]s --predicate %[4]s --type slsaprovenance1
  signet verify-blob %[3]s --trusted-root %[1]s/pinned/trusted_root.json \
    --certificate-identity %[5]s \
    --certificate-oidc-issuer "$SIGNET_SERVER/dev/oidc"
  signet log search --digest %[3]s
  signet log checkpoint`, rel(r.Dir), qsRepository, rel(r.Artifact), rel(filepath.Join(r.Dir, "artifact.provenance.json")), r.Identity)
}
