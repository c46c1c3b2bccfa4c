package verify

import (
	"errors"
	"fmt"
)

// Check names one verification step. Every failure is an *Error carrying the
// Check that failed, so callers (and tests) can tell which step rejected a
// bundle.
type Check string

// The verification steps, in the order the verifier runs them.
const (
	CheckBundle    Check = "bundle"
	CheckPolicy    Check = "policy"
	CheckTimestamp Check = "timestamp"
	// CheckTimestampLog: a timestamp that carries a time transparency log
	// entry (core/timelog) is proven included in a trusted log.
	CheckTimestampLog     Check = "timestamp log"
	CheckCertificateChain Check = "certificate chain"
	// CheckCertificateProfile: the leaf is a code-signing certificate as
	// Fulcio issues them, whatever CA signed it.
	CheckCertificateProfile Check = "certificate profile"
	// CheckSCT: the certificate carries a verified SCT from a CT log of
	// the trusted root (when the root names any).
	CheckSCT            Check = "sct"
	CheckIdentity       Check = "identity"
	CheckKey            Check = "key" // the trusted key (Policy.Key) versus the bundle's
	CheckArtifact       Check = "artifact"
	CheckSignature      Check = "signature"
	CheckStatement      Check = "statement"
	CheckTlogBody       Check = "tlog body"
	CheckInclusionProof Check = "inclusion proof"
	CheckCheckpoint     Check = "checkpoint"
	// CheckWitness: the checkpoint carries the cosignatures the witness
	// policy (Policy.Witnesses) requires.
	CheckWitness          Check = "witness"
	CheckInclusionPromise Check = "inclusion promise"
	CheckTlog             Check = "tlog"
	CheckTimeSource       Check = "time source"
)

// Error is a verification failure: which check failed, what was wrong and,
// where it applies, what was expected versus found.
type Error struct {
	Check    Check
	Msg      string
	Expected string // empty when not a mismatch
	Found    string
	Err      error // underlying cause, if any
	// Remedy, when set, names what the caller can change (see Remedy).
	Remedy Remedy
}

func (e *Error) Error() string {
	s := string(e.Check) + ": " + e.Msg
	if e.Expected != "" || e.Found != "" {
		s += fmt.Sprintf(": expected %s, found %s", quoteEmpty(e.Expected), quoteEmpty(e.Found))
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Remedy names what a caller can change to pass a check, so a CLI or an
// action can say it in its own terms (a flag, an input).
type Remedy string

// Remedies an Error can carry.
const (
	// RemedyUseKey: the bundle names a public key; verify with that key.
	RemedyUseKey Remedy = "use-key"
	// RemedyNamePolicy: the policy names no identity or issuer.
	RemedyNamePolicy Remedy = "name-policy"
	// RemedyIgnoreSCT: the certificate has no SCT; only a policy that
	// does not require one accepts it.
	RemedyIgnoreSCT Remedy = "ignore-sct"
)

func quoteEmpty(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

// CheckOf returns the check that err failed, or "" if err is not an *Error.
func CheckOf(err error) Check {
	var e *Error
	if errors.As(err, &e) {
		return e.Check
	}
	return ""
}

func fail(c Check, err error, format string, args ...any) *Error {
	return &Error{Check: c, Msg: fmt.Sprintf(format, args...), Err: err}
}

func mismatch(c Check, what, expected, found string) *Error {
	return &Error{Check: c, Msg: what + " does not match", Expected: expected, Found: found}
}
