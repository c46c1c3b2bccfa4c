// Package keyref opens signing keys named by a reference that is not a file:
// a PKCS#11 URI (RFC 7512, "pkcs11:token=…;object=…") or a KMS URI of the
// providers sigstore/sigstore ships (awskms://, gcpkms://, azurekms://,
// hashivault://), the same strings cosign takes for --key. A reference that
// is not a URI is a file path, which the caller loads itself (the CLI's
// encrypted cosign keys and the server's PEM files differ).
//
// Every key opened here is a crypto.Signer whose private half stays in the
// token or the KMS.
package keyref

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Causes a caller can tell apart with errors.Is. Each *Error wraps one.
var (
	// ErrUnsupportedScheme: the reference has a URI scheme signet does not open.
	ErrUnsupportedScheme = errors.New("unsupported key URI scheme")
	// ErrBadURI: the URI does not parse, or lacks what names the key.
	ErrBadURI = errors.New("malformed key URI")
	// ErrNoPKCS11: this build has no PKCS#11 support (built without cgo).
	ErrNoPKCS11 = errors.New("this build of signet has no PKCS#11 support (it was built without cgo)")
	// ErrModule: the PKCS#11 module cannot be loaded.
	ErrModule = errors.New("PKCS#11 module cannot be loaded")
	// ErrTokenNotFound: no token of the module matches the URI.
	ErrTokenNotFound = errors.New("no PKCS#11 token matches")
	// ErrPIN: the token refused the PIN (or none was given).
	ErrPIN = errors.New("the token refused the PIN")
	// ErrKeyNotFound: the token or KMS holds no key the URI names.
	ErrKeyNotFound = errors.New("no such key")
	// ErrKeyType: the key exists but is of a type signet cannot sign with.
	ErrKeyType = errors.New("unsupported key type")
	// ErrKMS: the KMS could not be reached or refused the request.
	ErrKMS = errors.New("the KMS did not answer with the key")
	// ErrKMSCredentials: no credentials for the KMS were found, or it
	// refused them.
	ErrKMSCredentials = errors.New("no usable KMS credentials")
)

// Error is a failure to open one key reference. Ref is the reference with
// any PIN removed, safe to log.
type Error struct {
	Ref    string
	Cause  error // one of the Err… values above
	Detail string
	Err    error // the underlying library error, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "key %s: %v", e.Ref, e.Cause)
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, " (%v)", e.Err)
	}
	return b.String()
}

func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Cause, e.Err}
	}
	return []error{e.Cause}
}

// KMSSchemes are the KMS URI prefixes signet opens through sigstore/sigstore.
var KMSSchemes = []string{"awskms://", "gcpkms://", "azurekms://", "hashivault://"}

// Supported names every accepted form, for messages.
const Supported = "a PEM file path, pkcs11:…, awskms://…, gcpkms://…, azurekms://… or hashivault://…"

var schemeRE = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9+.-]+):`)

// IsURI reports whether ref is a key URI rather than a file path. A one
// letter scheme is a Windows drive, and anything with a path separator
// before the colon is a path.
func IsURI(ref string) bool {
	m := schemeRE.FindStringSubmatch(ref)
	return m != nil && !strings.ContainsAny(m[1], `/\`)
}

// Options tune Open.
type Options struct {
	// Getenv reads the environment (SIGNET_PKCS11_MODULE, SIGNET_PKCS11_PIN
	// and the KMS providers' own variables); nil means os.Getenv.
	Getenv func(string) string
}

// Open opens the key a URI names. It fails with *Error for a path (use
// IsURI first) or an unsupported scheme.
func Open(ctx context.Context, ref string, o Options) (crypto.Signer, error) {
	if !IsURI(ref) {
		return nil, &Error{Ref: ref, Cause: ErrBadURI, Detail: "not a key URI; a file path is loaded by the caller"}
	}
	switch {
	case strings.HasPrefix(ref, "pkcs11:"):
		u, err := ParsePKCS11(ref)
		if err != nil {
			return nil, err
		}
		return openPKCS11(u, o.getenv())
	case isKMS(ref):
		return openKMS(ctx, ref)
	}
	scheme := schemeRE.FindStringSubmatch(ref)[1]
	return nil, &Error{Ref: Redact(ref), Cause: ErrUnsupportedScheme, Detail: fmt.Sprintf("%q; give %s", scheme+":", Supported)}
}

// IsKMS reports whether ref is a KMS URI.
func IsKMS(ref string) bool { return isKMS(ref) }

func isKMS(ref string) bool {
	for _, s := range KMSSchemes {
		if strings.HasPrefix(ref, s) {
			return true
		}
	}
	return false
}

func (o Options) getenv() func(string) string {
	if o.Getenv != nil {
		return o.Getenv
	}
	return osGetenv
}

// Redact removes a pin-value from a PKCS#11 URI (and any userinfo from a KMS
// URI), for messages and logs.
func Redact(ref string) string {
	if strings.HasPrefix(ref, "pkcs11:") {
		path, query, ok := strings.Cut(ref, "?")
		if !ok {
			return ref
		}
		var kept []string
		for _, kv := range strings.Split(query, "&") {
			if k, _, _ := strings.Cut(kv, "="); k == "pin-value" {
				kv = "pin-value=REDACTED"
			}
			kept = append(kept, kv)
		}
		return path + "?" + strings.Join(kept, "&")
	}
	if u, err := url.Parse(ref); err == nil && u.User != nil {
		u.User = url.User("REDACTED")
		return u.String()
	}
	return ref
}
