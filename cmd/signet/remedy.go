package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/signet-dev/signet/core/keyref"
	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/sign"
	"github.com/signet-dev/signet/core/verify"
)

// remedies say, in the CLI's flags, what to change for an error core names
// by its cause. Core knows no flags; this is where they are named.
var remedies = []struct {
	is     func(error) bool
	remedy string
}{
	{errIs(sign.ErrNoServices), "give --signing-config FILE or --server URL"},
	{errIs(sign.ErrNoCA), "add caUrls to the signing config, or sign with --key"},
	{errIs(sign.ErrNoIdentityToken), "pass --identity-token, or run where signet finds one (see 'signet sign-blob --help')"},
	{errIs(sign.ErrNoAttestationStore), "pass --server URL (a signet server)"},
	{func(err error) bool { var e *oci.InsecureRegistryError; return errors.As(err, &e) }, "pass --allow-insecure-registry to allow it"},
	{missingAWSKMSAlias, "'signet server keygen --key URI' makes an AWS KMS key under that alias"},
	{verifyRemedy(verify.RemedyUseKey), "pass the signer's public key with --key"},
	{verifyRemedy(verify.RemedyIgnoreSCT), "if the CA logs in no CT log (a signet server with ct.disabled, a private Fulcio without one), pass --insecure-ignore-sct, as with cosign"},
	{verifyRemedy(verify.RemedyNamePolicy), "pass --certificate-identity (or --certificate-identity-regexp) and --certificate-oidc-issuer (or --certificate-oidc-issuer-regexp), or trust a public key with --key"},
}

func errIs(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

// missingAWSKMSAlias: an awskms:// alias with no key, which signet can create.
func missingAWSKMSAlias(err error) bool {
	var e *keyref.Error
	return errors.As(err, &e) && errors.Is(e.Cause, keyref.ErrKeyNotFound) &&
		strings.HasPrefix(e.Ref, "awskms://") && strings.Contains(e.Ref, "/alias/")
}

func verifyRemedy(r verify.Remedy) func(error) bool {
	return func(err error) bool {
		var e *verify.Error
		return errors.As(err, &e) && e.Remedy == r
	}
}

// withRemedy appends the remedy for err in flag terms, when there is one.
// The result still unwraps to err, so the exit code is unchanged.
func withRemedy(err error) error {
	for _, r := range remedies {
		if r.is(err) {
			return fmt.Errorf("%w; %s", err, r.remedy)
		}
	}
	return err
}
