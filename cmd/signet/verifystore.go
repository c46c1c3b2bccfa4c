package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/core/intoto"
	"github.com/signet-dev/signet/core/pipeline"
	"github.com/signet-dev/signet/core/rekor"
	"github.com/signet-dev/signet/core/verify"
)

// storePageSize is how many of the newest attestations about a digest are
// fetched and tried.
const storePageSize = 50

// verifyFromStore verifies the attestations a signet server's store holds
// about a digest (or a file's), each fetched as a whole bundle and verified
// offline against the trusted root: the server is trusted for nothing.
func verifyFromStore(cmd *cobra.Command, v *verifyFlags, args []string, digestFlag, typeName string) error {
	if err := v.out.check(); err != nil {
		return err
	}
	if v.bundle != "" {
		return usageError{errors.New("--bundle and --digest/--from-store exclude each other: give the bundle, or let signet fetch the attestations from the server")}
	}
	var (
		subject  pipeline.Subject
		artifact string
		err      error
	)
	if digestFlag != "" {
		d, err := digestArg(digestFlag)
		if err != nil {
			return err
		}
		subject, artifact = pipeline.Subject{Name: d, SHA256: strings.TrimPrefix(d, "sha256:")}, d
	} else {
		artifact = args[0]
		if err := checkFile("FILE", artifact); err != nil {
			return err
		}
		if subject, err = pipeline.FileSubject(artifact); err != nil {
			return usageError{fmt.Errorf("FILE: %w", err)}
		}
	}
	pt := ""
	if typeName != "" {
		if pt, err = predicateTypeArg(typeName); err != nil {
			return err
		}
	}
	var pol verify.Policy
	if v.key != "" {
		pol, err = v.keyPolicy(cmd)
	} else {
		pol, err = v.policy.policy()
	}
	if err == nil {
		err = v.policy.witnesses(&pol)
	}
	if err != nil {
		return err
	}
	srv, err := v.trust.serverURL()
	if err != nil {
		return err
	}
	if srv == "" {
		return usageError{fmt.Errorf("--digest and --from-store fetch from a signet server's attestation store: pass --server URL or set $%s", serverEnv)}
	}
	ctx := cmd.Context()
	root, err := v.trust.root(ctx, httpClient(), cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	store, err := rekor.NewAttestationStore(srv, httpClient())
	if err != nil {
		return usageError{fmt.Errorf("--server: %w", err)}
	}
	found, _, err := store.Search(ctx, rekor.Query{Digest: "sha256:" + subject.SHA256, PredicateType: pt, PageSize: storePageSize})
	if err != nil {
		return err
	}
	var cands []pipeline.Candidate
	for _, a := range found {
		loc := srv + "/api/v2/attestations/" + a.ID + "/bundle"
		raw, err := store.Bundle(ctx, a.ID)
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "note: skipped attestation %s: %v\n", a.ID, err)
			continue
		}
		cands = append(cands, pipeline.Candidate{Source: "attestation store", Location: loc, Raw: raw, PredicateType: a.PredicateType})
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "fetched %d attestation bundle(s) about sha256:%s from %s\n", len(cands), subject.SHA256, srv)
	var res *verify.Result
	where := srv
	if len(cands) == 0 {
		what := "attestation"
		if pt != "" {
			what += " of type " + pt
		}
		err = &verify.Error{Check: pipeline.CheckAttachment, Msg: fmt.Sprintf("the attestation store at %s holds no %s about sha256:%s that it can serve as a bundle", srv, what, subject.SHA256)}
	} else {
		vr, verr := pipeline.Verify(ctx, verify.New(root.Root), pipeline.VerifyPlan{
			Subjects: []pipeline.Subject{subject}, Bundles: cands,
			Want: pipeline.Want{Kind: intoto.KindAttestation, PredicateType: pt}, Policy: pol,
		})
		if verr != nil {
			return verr
		}
		sr := vr.Subjects[0]
		err = sr.Err
		for _, c := range sr.Bundles {
			if c.Err == nil {
				res, where, err = c.Result, c.Location, nil
				break
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "  not verified: %s — %v\n", c.Location, c.Err)
		}
	}
	return v.report(cmd, newVerifyResult(artifact, where, res, err))
}
