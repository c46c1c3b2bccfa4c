package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newImageCopyCmd() *cobra.Command {
	var (
		reg registryFlags
		out outputFormat
	)
	cmd := &cobra.Command{
		Use:   "copy SRC DST",
		Short: "Copy a container image with its signatures, attestations and SBOMs",
		Long: `Copy SRC (a tag or digest; an index with all its platform manifests) to DST
(a repository, or repository:tag) with everything attached to it and to each
platform manifest: OCI 1.1 referrers (written at the destination through its
referrers API or referrers tag, annotations intact) and cosign's legacy
.sig/.att tags. Digests are preserved, so every signature still verifies
at the destination.

Exit status: 0 copied; 1 the registry failed (not found, no permission to
push); 2 usage error.
` + registryHelp,
		Example: `  signet copy ghcr.io/acme/app:1.2.3 registry.internal.example.com/mirror/app:1.2.3
  signet verify registry.internal.example.com/mirror/app:1.2.3 --trusted-root trusted_root.json \
    --certificate-identity … --certificate-oidc-issuer …`,
		Args: exactArgs(2, "SRC and DST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			ctx := cmd.Context()
			c := reg.client()
			subjects, err := resolveImage(ctx, c, args[0], false)
			if err != nil {
				return err
			}
			res, err := c.Copy(ctx, subjects[0], args[1])
			if err != nil {
				return err
			}
			cr := copyResult{Source: subjects[0].Digest.String(), Destination: res.Destination.String(), Path: string(res.Path), Referrers: []string{}, LegacyTags: []string{}}
			if res.Tag != nil {
				cr.Tag = res.Tag.String()
			}
			for _, r := range res.Referrers {
				cr.Referrers = append(cr.Referrers, r.String())
			}
			for _, t := range res.LegacyTags {
				cr.LegacyTags = append(cr.LegacyTags, t.String())
			}
			if out.json() {
				return writeJSON(cmd.OutOrStdout(), cr)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "copied %s\n  to         %s\n", cr.Source, cr.Destination)
			if cr.Tag != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "  tagged     %s\n", cr.Tag)
			}
			for _, r := range cr.Referrers {
				fmt.Fprintf(cmd.OutOrStdout(), "  referrer   %s (%s)\n", r, cr.Path)
			}
			for _, t := range cr.LegacyTags {
				fmt.Fprintf(cmd.OutOrStdout(), "  legacy tag %s\n", t)
			}
			return nil
		},
	}
	reg.add(cmd.Flags())
	out.add(cmd.Flags())
	return cmd
}

// copyResult is what copy reports (--output json).
type copyResult struct {
	Source      string   `json:"source"`
	Destination string   `json:"destination"`
	Tag         string   `json:"tag,omitempty"`
	Path        string   `json:"path,omitempty"`
	Referrers   []string `json:"referrers"`
	LegacyTags  []string `json:"legacyTags"`
}
