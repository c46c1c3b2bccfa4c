package keyref

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
)

var osGetenv = os.Getenv

// PKCS11URI is the part of an RFC 7512 URI that selects a token and a key.
type PKCS11URI struct {
	Raw string // redacted

	// Token selection: label, serial or slot (at least one).
	Token  string
	Serial string
	SlotID *uint

	// Key selection: label (object) and/or CKA_ID.
	Object string
	ID     []byte

	ModulePath string // query module-path
	PIN        string // query pin-value
	PINSource  string // query pin-source: a file holding the PIN
}

// ParsePKCS11 parses a "pkcs11:" URI. Attributes it does not use are
// ignored, as RFC 7512 §2.4 lets a consumer do; ones it needs but cannot
// decode are errors.
func ParsePKCS11(ref string) (*PKCS11URI, error) {
	u := &PKCS11URI{Raw: Redact(ref)}
	bad := func(format string, a ...any) error {
		return &Error{Ref: u.Raw, Cause: ErrBadURI, Detail: fmt.Sprintf(format, a...)}
	}
	rest, ok := strings.CutPrefix(ref, "pkcs11:")
	if !ok {
		return nil, bad("not a pkcs11: URI")
	}
	path, query, _ := strings.Cut(rest, "?")
	for _, attr := range strings.Split(path, ";") {
		if attr == "" {
			continue
		}
		k, v, ok := strings.Cut(attr, "=")
		if !ok {
			return nil, bad("path attribute %q has no value (write name=value)", attr)
		}
		val, err := url.PathUnescape(v)
		if err != nil {
			return nil, bad("attribute %s: %v", k, err)
		}
		switch k {
		case "token":
			u.Token = val
		case "serial":
			u.Serial = val
		case "slot-id":
			n, err := strconv.ParseUint(val, 10, 64)
			if err != nil {
				return nil, bad("slot-id %q is not a decimal number", val)
			}
			s := uint(n)
			u.SlotID = &s
		case "object":
			u.Object = val
		case "id":
			u.ID = []byte(val)
		case "type":
			if val != "private" && val != "public" {
				return nil, bad("type=%s: the URI must name a key pair (type=private)", val)
			}
		}
	}
	if query != "" {
		for _, kv := range strings.Split(query, "&") {
			k, v, _ := strings.Cut(kv, "=")
			val, err := url.QueryUnescape(v)
			if err != nil {
				return nil, bad("query attribute %s: %v", k, err)
			}
			switch k {
			case "module-path":
				u.ModulePath = val
			case "pin-value":
				u.PIN = val
			case "pin-source":
				u.PINSource = strings.TrimPrefix(val, "file:")
			}
		}
	}
	if u.Token == "" && u.Serial == "" && u.SlotID == nil {
		return nil, bad("no token named: add token=LABEL (or serial=… or slot-id=…)")
	}
	if u.Object == "" && len(u.ID) == 0 {
		return nil, bad("no key named: add object=LABEL (or id=…)")
	}
	return u, nil
}

// module is the PKCS#11 library to load: module-path, else
// $SIGNET_PKCS11_MODULE.
func (u *PKCS11URI) module(getenv func(string) string) (string, error) {
	if u.ModulePath != "" {
		return u.ModulePath, nil
	}
	if p := getenv("SIGNET_PKCS11_MODULE"); p != "" {
		return p, nil
	}
	return "", &Error{Ref: u.Raw, Cause: ErrModule, Detail: "no module named: add ?module-path=/path/to/module.so to the URI or set SIGNET_PKCS11_MODULE"}
}

// pin is the user PIN: pin-value, pin-source, else $SIGNET_PKCS11_PIN.
func (u *PKCS11URI) pin(getenv func(string) string) (string, error) {
	switch {
	case u.PIN != "":
		return u.PIN, nil
	case u.PINSource != "":
		b, err := os.ReadFile(u.PINSource)
		if err != nil {
			return "", &Error{Ref: u.Raw, Cause: ErrPIN, Detail: "reading pin-source", Err: err}
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case getenv("SIGNET_PKCS11_PIN") != "":
		return getenv("SIGNET_PKCS11_PIN"), nil
	}
	return "", &Error{Ref: u.Raw, Cause: ErrPIN, Detail: "no PIN given: add ?pin-source=/path/to/pin-file to the URI or set SIGNET_PKCS11_PIN"}
}

// describeKey names the key the URI selects, for messages.
func (u *PKCS11URI) describeKey() string {
	var parts []string
	if u.Object != "" {
		parts = append(parts, "label "+strconv.Quote(u.Object))
	}
	if len(u.ID) > 0 {
		parts = append(parts, fmt.Sprintf("id %x", u.ID))
	}
	return strings.Join(parts, " and ")
}
