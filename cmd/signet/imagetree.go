package main

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/core/bundle"
	"github.com/signet-dev/signet/core/certext"
	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/sbom"
)

// treeItem is one thing attached to a manifest (--output json). Signer and
// log index are read from the bundle as claimed, not verified: 'signet
// verify' is what checks them.
type treeItem struct {
	// Kind is signature, attestation, sbom (an SBOM attestation) or other.
	Kind          string     `json:"kind"`
	Source        string     `json:"source"`
	Manifest      string     `json:"manifest"`
	ArtifactType  string     `json:"artifactType,omitempty"`
	PredicateType string     `json:"predicateType,omitempty"`
	Identity      string     `json:"identity,omitempty"`
	Issuer        string     `json:"issuer,omitempty"`
	LogIndexes    []int64    `json:"logIndexes,omitempty"`
	Created       *time.Time `json:"created,omitempty"`
	// Annotations are the referrer's annotations other than those the
	// fields above already show (for example the scope of a buildpack
	// SBOM); unsigned, like the rest of the listing.
	Annotations map[string]string `json:"annotations,omitempty"`
}

// shownAnnotations are the annotations treeItem's own fields already carry.
var shownAnnotations = map[string]bool{
	oci.AnnotationContent: true, oci.AnnotationPredicateType: true, oci.AnnotationCreated: true,
	oci.AnnotationLegacySignature: true, oci.AnnotationLegacyCertificate: true, oci.AnnotationLegacyChain: true,
	oci.AnnotationLegacyBundle: true, oci.AnnotationLegacyTimestamp: true, oci.AnnotationLegacyPredicate: true,
}

type treeSubject struct {
	Digest   string `json:"digest"`
	Platform string `json:"platform,omitempty"`
	// Path is how the registry answered for referrers.
	Path  string     `json:"path"`
	Items []treeItem `json:"items"`
}

type treeResult struct {
	Image    string        `json:"image"`
	Subjects []treeSubject `json:"subjects"`
}

func newTreeItem(a oci.Attached) treeItem {
	it := treeItem{Kind: a.Kind.String(), Source: string(a.Source), Manifest: a.Manifest.String(), ArtifactType: a.ArtifactType, PredicateType: a.PredicateType}
	if a.Kind == oci.KindAttestation && sbom.IsPredicateType(a.PredicateType) {
		it.Kind = "sbom"
	}
	for k, v := range a.Annotations {
		if !shownAnnotations[k] {
			if it.Annotations == nil {
				it.Annotations = map[string]string{}
			}
			it.Annotations[k] = v
		}
	}
	if !a.Created.IsZero() {
		t := a.Created.UTC()
		it.Created = &t
	}
	var cert *x509.Certificate
	switch {
	case a.Bundle != nil:
		if b, err := bundle.Parse(a.Bundle); err == nil {
			cert, _ = b.Certificate()
			for _, e := range b.TlogEntries() {
				it.LogIndexes = append(it.LogIndexes, e.GetLogIndex())
			}
		}
	case a.Legacy != nil:
		if blk, _ := pem.Decode([]byte(a.Legacy.Certificate)); blk != nil {
			cert, _ = x509.ParseCertificate(blk.Bytes)
		}
		var rb struct {
			Payload struct {
				LogIndex int64 `json:"logIndex"`
			} `json:"Payload"`
		}
		if a.Legacy.RekorBundle != "" && json.Unmarshal([]byte(a.Legacy.RekorBundle), &rb) == nil {
			it.LogIndexes = []int64{rb.Payload.LogIndex}
		}
	}
	if cert != nil {
		it.Identity, it.Issuer = certext.Identity(cert)
	}
	return it
}

func (r *treeResult) print(w io.Writer) {
	fmt.Fprintf(w, "%s\n", r.Image)
	for _, s := range r.Subjects {
		head := s.Digest
		if s.Platform != "" {
			head += " (" + s.Platform + ")"
		}
		fmt.Fprintf(w, "└── %s  [referrers via the %s]\n", head, s.Path)
		if len(s.Items) == 0 {
			fmt.Fprintf(w, "    (nothing attached)\n")
		}
		for _, it := range s.Items {
			what := it.Kind
			if it.PredicateType != "" && it.Kind != "signature" {
				what += " " + it.PredicateType
			}
			if it.Kind == "other" {
				what += " " + it.ArtifactType
			}
			fmt.Fprintf(w, "    ├── %s\n", what)
			fmt.Fprintf(w, "    │     found in  %s %s\n", it.Source, it.Manifest)
			if it.Identity != "" {
				fmt.Fprintf(w, "    │     signer    %s (issuer %s)\n", it.Identity, it.Issuer)
			}
			for _, i := range it.LogIndexes {
				fmt.Fprintf(w, "    │     log index %d\n", i)
			}
			for _, k := range slices.Sorted(maps.Keys(it.Annotations)) {
				fmt.Fprintf(w, "    │     %s=%s\n", k, it.Annotations[k])
			}
		}
	}
}

func newImageTreeCmd() *cobra.Command {
	var (
		reg registryFlags
		out outputFormat
	)
	cmd := &cobra.Command{
		Use:   "tree IMAGE",
		Short: "List the signatures, attestations and SBOMs attached to a container image",
		Long: `List what is attached to IMAGE and, for a multi-platform index, to each
platform manifest: signatures, attestations (SBOM attestations shown as
sbom) and other OCI referrers, each with the signer identity and log index
its bundle names, where it was found (referrers API, referrers tag,
legacy .sig/.att tag) and any other annotations it carries (such as
dev.signet.buildpack.sbom.scope, launch or build, on a buildpack SBOM).

Nothing is verified: the signer shown is what the attachment claims. Use
'signet verify' / 'signet verify-attestation' to check it.

Exit status: 0 listed; 1 the registry failed (image not found, no
permission); 2 usage error.
` + registryHelp,
		Example: `  signet tree ghcr.io/acme/app:1.2.3
  signet tree 127.0.0.1:5000/app@sha256:4f1e… -o json`,
		Args: exactArgs(1, "IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			ctx := cmd.Context()
			c := reg.client()
			subjects, err := resolveImage(ctx, c, args[0], true)
			if err != nil {
				return err
			}
			res := &treeResult{Image: args[0]}
			for _, s := range subjects {
				l, err := c.List(ctx, s)
				if err != nil {
					return err
				}
				ts := treeSubject{Digest: s.Digest.String(), Platform: platformString(s.Platform), Path: string(l.Path), Items: []treeItem{}}
				for _, a := range l.Items {
					ts.Items = append(ts.Items, newTreeItem(a))
				}
				res.Subjects = append(res.Subjects, ts)
			}
			if out.json() {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			res.print(cmd.OutOrStdout())
			return nil
		},
	}
	reg.add(cmd.Flags())
	out.add(cmd.Flags())
	return cmd
}
