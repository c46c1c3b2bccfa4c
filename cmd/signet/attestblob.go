package main

import (
	"context"
	"crypto"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/verify"
)

// predicateTypeArg resolves --type; a wrong value is a usage error.
func predicateTypeArg(name string) (string, error) {
	pt, err := intoto.PredicateType(name)
	if err != nil {
		return "", usageError{fmt.Errorf("--type: %w", err)}
	}
	return pt, nil
}

// defaultAttestationBundle is where attest-blob writes and
// verify-blob-attestation looks when --bundle is not given:
// <FILE>.<type>.sigstore.json, so attestations of several types sit side by side.
func defaultAttestationBundle(file, typeName string) string {
	short := typeName
	if strings.Contains(typeName, "/") {
		short = "attestation"
	}
	return file + "." + short + ".sigstore.json"
}

// fileDigest is the SHA-256 of a file, the digest in-toto subjects name.
func fileDigest(path string) (verify.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return verify.Digest{}, err
	}
	defer f.Close()
	return verify.DigestOf(crypto.SHA256, f)
}

// statement is an in-toto statement about one file, ready to sign.
type statement struct {
	file          string
	digest        verify.Digest
	predicateType string
	payload       []byte
}

// newStatement makes the statement whose subject is file (by base name and
// SHA-256); a predicate that does not fit its type is a usage error.
func newStatement(file string, predicate []byte, predicateType string) (*statement, error) {
	d, err := fileDigest(file)
	if err != nil {
		return nil, fmt.Errorf("artifact: %w", err)
	}
	st, err := intoto.NewStatement([]intoto.Subject{{Name: filepath.Base(file), Digest: map[string]string{"sha256": hex.EncodeToString(d.Value)}}}, predicateType, predicate)
	if err != nil {
		return nil, usageError{fmt.Errorf("--predicate: %w", err)}
	}
	payload, err := intoto.MarshalStatement(st)
	if err != nil {
		return nil, err
	}
	return &statement{file: file, digest: d, predicateType: predicateType, payload: payload}, nil
}

// attestBlob signs the statement into bundlePath. With a signet server the
// envelope goes to its attestation store, which logs it like any other entry.
func attestBlob(ctx context.Context, o sign.Options, st *statement, bundlePath string) (*signResult, error) {
	o.ViaAttestationStore = o.Services.Attestations != nil
	res, err := sign.Attestation(ctx, o, st.payload, bundlePath)
	if err != nil {
		return nil, err
	}
	r := newSignResult(st.file, bundlePath, o, res)
	r.Digest, r.PredicateType = st.digest.String(), st.predicateType
	return r, nil
}

func newAttestBlobCmd() *cobra.Command {
	var (
		s                   signFlags
		predicate, typeName string
	)
	cmd := &cobra.Command{
		Use:   "attest-blob FILE --predicate P.json --type TYPE",
		Short: "Attest to a file (SLSA provenance, SBOM, any in-toto predicate) and log it",
		Long: `Make an in-toto Statement v1 whose subject is FILE (by name and SHA-256) and
whose predicate is P.json, sign it as a DSSE envelope and log it. The result
is a Sigstore bundle, as cosign attest-blob writes it.

--type is a short name or any predicate type URI:
  slsaprovenance1   https://slsa.dev/provenance/v1 (checked to be SLSA v1)
  spdxjson          https://spdx.dev/Document (checked to be SPDX 2.x JSON)
  cyclonedx         https://cyclonedx.org/bom (checked to be CycloneDX JSON)
  <URI>             anything else; the predicate must be a JSON object

Against a signet server (--server) the whole envelope is also kept in the
server's attestation store, so 'signet log search --digest FILE' finds it.

Exit status: 0 attested, 1 signing failed, 2 usage error (including a
predicate that is not what --type says).
` + identityTokenHelp + "\n" + trustHelpSign,
		Example: `  # SLSA provenance for a release archive, in CI:
  signet attest-blob dist/app.tar.gz --predicate provenance.json \
    --type slsaprovenance1 --server https://signet.example.com

  # An SBOM made by syft:
  syft dist/app.tar.gz -o spdx-json > sbom.spdx.json
  signet attest-blob dist/app.tar.gz --predicate sbom.spdx.json --type spdxjson \
    --bundle app.sbom.sigstore.json --server $SIGNET_SERVER -o json`,
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			if err := checkFile("FILE", file); err != nil {
				return err
			}
			if predicate == "" || typeName == "" {
				return usageError{fmt.Errorf("attest-blob needs --predicate P.json and --type (slsaprovenance1, spdxjson, cyclonedx or a predicate type URI)")}
			}
			pt, err := predicateTypeArg(typeName)
			if err != nil {
				return err
			}
			if err := checkFile("--predicate", predicate); err != nil {
				return err
			}
			pred, err := os.ReadFile(predicate)
			if err != nil {
				return usageError{fmt.Errorf("--predicate: %v", err)}
			}
			st, err := newStatement(file, pred, pt)
			if err != nil {
				return err
			}
			bundlePath := s.bundle
			if bundlePath == "" {
				bundlePath = defaultAttestationBundle(file, typeName)
			}
			ctx := cmd.Context()
			o, who, err := s.options(ctx, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			who.announce(cmd.ErrOrStderr(), "an attestation ("+pt+") about "+file)
			r, err := attestBlob(ctx, o, st, bundlePath)
			if err != nil {
				return err
			}
			if s.out.json() {
				return writeJSON(cmd.OutOrStdout(), r)
			}
			r.print(cmd.OutOrStdout())
			return nil
		},
	}
	s.add(cmd.Flags())
	cmd.Flags().StringVar(&predicate, "predicate", "", "the predicate: a JSON file (SLSA provenance, SPDX or CycloneDX SBOM, …)")
	cmd.Flags().StringVar(&typeName, "type", "", "predicate type: slsaprovenance1, spdxjson, cyclonedx or a URI")
	return cmd
}
