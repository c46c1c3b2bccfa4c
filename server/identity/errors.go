package identity

import "fmt"

// Reason classifies why a token was refused; it is stable and meant for
// metrics labels and for choosing an HTTP status.
type Reason string

// Refusal reasons.
const (
	ReasonMalformed         Reason = "malformed_token"
	ReasonIssuer            Reason = "issuer_not_configured"
	ReasonAudience          Reason = "wrong_audience"
	ReasonExpired           Reason = "expired_token"
	ReasonNotYetValid       Reason = "token_not_yet_valid"
	ReasonSignature         Reason = "bad_token_signature"
	ReasonClaim             Reason = "missing_or_invalid_claim"
	ReasonEmailUnverified   Reason = "email_not_verified"
	ReasonIssuerUnavailable Reason = "issuer_unavailable" // the server could not fetch the issuer's keys
)

// Error is a refused token. Its message names the cause and what to do.
type Error struct {
	Reason Reason
	msg    string
}

func (e *Error) Error() string { return e.msg }

func refuse(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, msg: fmt.Sprintf(format, args...)}
}
