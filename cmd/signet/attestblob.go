package main

import (
	"crypto"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/pipeline"
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
// <FILE>.<tag>.sigstore.json (intoto.FileTag: the short name of a known
// type, else a tag derived from the URI), so attestations of several types
// sit side by side whichever way --type spells them.
func defaultAttestationBundle(file, predicateType string) string {
	return file + "." + intoto.FileTag(predicateType) + ".sigstore.json"
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

--type is one of cosign's short names or any predicate type URI:
` + intoto.TypeNamesHelp + `

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
			path, cleanup, err := spoolStdin(cmd, predicate, "--predicate")
			if err != nil {
				return err
			}
			defer cleanup()
			pred, err := readPredicate(path, pt, 0)
			if err != nil {
				return err
			}
			if err := pipeline.CheckPredicate(pt, pred); err != nil {
				return usageError{fmt.Errorf("--predicate: %w", err)}
			}
			ctx := cmd.Context()
			o, who, err := s.options(ctx, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			who.announce(cmd.ErrOrStderr(), "an attestation ("+pt+") about "+file)
			v, err := s.verifier(ctx, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			r, err := signBlob(ctx, o, v, file, s.bundle, &pipeline.Attestation{Type: pt, Predicate: pred})
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
	cmd.Flags().StringVar(&predicate, "predicate", "", "the predicate: a JSON file (SLSA provenance, SPDX or CycloneDX SBOM, …), or - for standard input")
	cmd.Flags().StringVar(&typeName, "type", "", "predicate type: slsaprovenance1, spdxjson, cyclonedx, custom, … (see above) or a URI")
	return cmd
}
